// Before a deleted pod's containers get SIGTERM, the agent waits (bounded)
// until this node's service proxy sends no new connections to the pod's IPs:
// `nodelet proxy` answers GET /nodelet/routed?ip=A on its health server from
// the state of its last successful sync. The endpoint controller marks a
// deleted pod's endpoints not ready at once, so during a rolling update the
// wait is one proxy sync (about a second), and the app is signalled only once
// nothing new reaches it: no failed requests and no preStop sleep. Where no
// nodelet proxy answers (upstream kube-proxy, another mode, none), the agent
// does not wait.
import type { Clock } from '../../lib/clock.ts';
import { describeError } from '../../lib/errors.ts';
import type { Logger } from '../../lib/log.ts';

/** unrouted: the proxy sends nothing new there; timeout: still routed at the bound; unknown: no proxy to ask. */
export type GateResult = 'unrouted' | 'timeout' | 'unknown';

export interface TrafficGate {
  waitUnrouted(ips: readonly string[], timeoutMs: number): Promise<GateResult>;
}

export interface ProxyTrafficGateDeps {
  /** The proxy's health server, e.g. http://127.0.0.1:10256. */
  baseURL: string;
  clock: Clock;
  log: Logger;
  fetch?: typeof fetch;
  /** How often to ask again while an IP is routed (default 100 ms). */
  pollMs?: number;
}

const ASK_TIMEOUT_MS = 1000;

export class ProxyTrafficGate implements TrafficGate {
  private readonly d: ProxyTrafficGateDeps;

  constructor(d: ProxyTrafficGateDeps) {
    this.d = d;
  }

  async waitUnrouted(ips: readonly string[], timeoutMs: number): Promise<GateResult> {
    const { clock } = this.d;
    const deadline = clock.now() + timeoutMs;
    const pending = new Set(ips);
    for (;;) {
      for (const ip of [...pending]) {
        const routed = await this.ask(ip);
        if (routed === undefined) return 'unknown';
        if (!routed) pending.delete(ip);
      }
      if (pending.size === 0) return 'unrouted';
      const left = deadline - clock.now();
      if (left <= 0) return 'timeout';
      await clock.sleep(Math.min(this.d.pollMs ?? 100, left));
    }
  }

  /** Whether the proxy routes new connections to `ip`; undefined when it cannot say. */
  private async ask(ip: string): Promise<boolean | undefined> {
    const f = this.d.fetch ?? fetch;
    try {
      const res = await f(`${this.d.baseURL}/nodelet/routed?ip=${encodeURIComponent(ip)}`, { signal: AbortSignal.timeout(ASK_TIMEOUT_MS) });
      if (res.status !== 200) {
        await res.body?.cancel();
        return undefined;
      }
      const body = (await res.json()) as { routed?: unknown };
      return typeof body.routed === 'boolean' ? body.routed : undefined;
    } catch (err) {
      this.d.log.debug('service proxy not asked', { ip, err: describeError(err) });
      return undefined;
    }
  }
}
