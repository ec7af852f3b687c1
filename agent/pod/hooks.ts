// Lifecycle hooks (postStart, preStop) as upstream's lifecycle.handlerRunner:
// exec runs in the container through the runtime; httpGet calls the pod (its
// IP unless the hook names a host); sleep waits. Returns the failure text, or
// undefined on success. The timeout is the grace period (upstream runs preStop
// within it, postStart without one; we bound both).
import type { V1Container, V1LifecycleHandler, V1Pod } from '@kubernetes/client-node';
import type { RuntimeService } from '../../cri/runtime.ts';
import type { Clock } from '../../lib/clock.ts';
import { describeError } from '../../lib/errors.ts';

export interface HookRunner {
  run(containerId: string, pod: V1Pod, c: V1Container, handler: V1LifecycleHandler, podIP: string, timeoutSeconds: number): Promise<string | undefined>;
}

/** Fetches a URL; non-2xx/3xx is a failure. Injected so tests need no sockets. */
export type HttpGetter = (url: string, headers: Record<string, string>, timeoutMs: number) => Promise<{ status: number; body: string }>;

export const fetchGetter: HttpGetter = async (url, headers, timeoutMs) => {
  const res = await fetch(url, { headers, signal: AbortSignal.timeout(timeoutMs), redirect: 'manual' });
  const body = (await res.text()).slice(0, 10_240);
  return { status: res.status, body };
};

/** A port given by number or by the name of one of the container's ports. */
export function resolvePort(port: number | string | undefined, c: V1Container): number | undefined {
  if (typeof port === 'number') return port;
  if (port === undefined || port === '') return undefined;
  if (/^\d+$/.test(port)) return Number(port);
  return c.ports?.find((p) => p.name === port)?.containerPort;
}

export class RuntimeHookRunner implements HookRunner {
  private readonly runtime: RuntimeService;
  private readonly clock: Clock;
  private readonly http: HttpGetter;

  constructor(deps: { runtime: RuntimeService; clock: Clock; http?: HttpGetter }) {
    this.runtime = deps.runtime;
    this.clock = deps.clock;
    this.http = deps.http ?? fetchGetter;
  }

  async run(containerId: string, pod: V1Pod, c: V1Container, h: V1LifecycleHandler, podIP: string, timeoutSeconds: number): Promise<string | undefined> {
    const timeout = Math.max(1, timeoutSeconds);
    if (h.exec) {
      const cmd = h.exec.command ?? [];
      try {
        const r = await this.runtime.execSync(containerId, cmd, timeout);
        if (r.exitCode === 0) return undefined;
        const out = Buffer.concat([r.stdout, r.stderr].map((b) => Buffer.from(b))).toString().trim();
        return `command '${cmd.join(' ')}' exited with ${r.exitCode}: ${out}`;
      } catch (err) {
        return describeError(err);
      }
    }
    if (h.httpGet) {
      const g = h.httpGet;
      const host = g.host || podIP || pod.status?.podIP || '';
      const port = resolvePort(g.port as number | string | undefined, c);
      if (!host || port === undefined) return `invalid httpGet hook: host "${host}" port "${String(g.port)}"`;
      const scheme = (g.scheme ?? 'HTTP').toLowerCase();
      const path = g.path ? (g.path.startsWith('/') ? g.path : `/${g.path}`) : '/';
      const url = `${scheme}://${host.includes(':') ? `[${host}]` : host}:${port}${path}`;
      const headers: Record<string, string> = { 'user-agent': 'kube-lifecycle/1.37' };
      for (const hh of g.httpHeaders ?? []) headers[hh.name.toLowerCase()] = hh.value;
      try {
        const r = await this.http(url, headers, timeout * 1000);
        if (r.status >= 200 && r.status < 400) return undefined;
        return `HTTP lifecycle hook (${path}) for Container "${c.name}" in Pod "${pod.metadata?.name ?? ''}" failed - error: HTTP ${r.status}, message: "${r.body}"`;
      } catch (err) {
        return `HTTP lifecycle hook (${path}) for Container "${c.name}" in Pod "${pod.metadata?.name ?? ''}" failed - error: ${describeError(err)}`;
      }
    }
    if (h.sleep) {
      await this.clock.sleep(Math.min(h.sleep.seconds, timeout) * 1000);
      return undefined;
    }
    return 'a lifecycle hook needs exec, httpGet or sleep';
  }
}
