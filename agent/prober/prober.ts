// Runs one probe of one container (upstream's prober.runProbe): picks the
// handler (exec, httpGet, tcpSocket, grpc), resolves host and port, and
// returns what it said. Thresholds and scheduling are the worker's.
import type { V1Container, V1Pod, V1Probe } from '@kubernetes/client-node';
import type { RuntimeService } from '../../cri/runtime.ts';
import { describeError, errorCode } from '../../lib/errors.ts';
import { resolvePort } from '../pod/hooks.ts';
import { grpcProbe } from './grpc.ts';
import { httpProbe, probeHeaders, probeURL } from './http.ts';
import { goSeconds, MAX_PROBE_OUTPUT, type ProbeOutcome } from './outcome.ts';
import { tcpProbe } from './tcp.ts';

export type ProbeType = 'liveness' | 'readiness' | 'startup';

/** As upstream prints probe types in events and metric labels. */
export const PROBE_TYPE_NAMES: Record<ProbeType, string> = { liveness: 'Liveness', readiness: 'Readiness', startup: 'Startup' };

/** Upstream's API defaults. */
export const DEFAULT_PERIOD_SECONDS = 10;
export const DEFAULT_TIMEOUT_SECONDS = 1;
export const DEFAULT_SUCCESS_THRESHOLD = 1;
export const DEFAULT_FAILURE_THRESHOLD = 3;

export interface ProbeTarget {
  pod: V1Pod;
  container: V1Container;
  containerId: string;
  /** The pod's IP ('' when unknown): the default host. */
  podIP: string;
}

export interface ProbeRunner {
  run(probe: V1Probe, target: ProbeTarget): Promise<ProbeOutcome>;
}

/** The port of a probe handler, or the upstream-worded reason it has none. */
function port(given: number | string | undefined, c: V1Container): number | string {
  const p = resolvePort(given, c);
  if (p === undefined) return typeof given === 'string' ? `strconv.Atoi: parsing "${given}": invalid syntax` : `invalid port number: ${String(given)}`;
  if (!Number.isInteger(p) || p < 1 || p > 65535) return `invalid port number: ${p}`;
  return p;
}

export class RuntimeProber implements ProbeRunner {
  private readonly runtime: Pick<RuntimeService, 'execSync'>;

  constructor(deps: { runtime: Pick<RuntimeService, 'execSync'> }) {
    this.runtime = deps.runtime;
  }

  async run(p: V1Probe, t: ProbeTarget): Promise<ProbeOutcome> {
    const timeoutSeconds = p.timeoutSeconds && p.timeoutSeconds > 0 ? p.timeoutSeconds : DEFAULT_TIMEOUT_SECONDS;
    if (p.exec) return this.exec(p.exec.command ?? [], t.containerId, timeoutSeconds);
    if (p.httpGet) {
      const g = p.httpGet;
      const host = g.host || t.podIP;
      const pp = port(g.port as number | string | undefined, t.container);
      if (typeof pp === 'string') return { result: 'unknown', output: pp };
      if (!host) return { result: 'unknown', output: 'the pod has no IP yet' };
      let url: URL;
      try {
        url = probeURL(g.scheme ?? 'HTTP', host, pp, g.path ?? '');
      } catch (err) {
        return { result: 'unknown', output: describeError(err) };
      }
      return httpProbe(url, probeHeaders(g.httpHeaders ?? []), timeoutSeconds * 1000);
    }
    if (p.tcpSocket) {
      const host = p.tcpSocket.host || t.podIP;
      const pp = port(p.tcpSocket.port as number | string | undefined, t.container);
      if (typeof pp === 'string') return { result: 'unknown', output: pp };
      if (!host) return { result: 'unknown', output: 'the pod has no IP yet' };
      return tcpProbe(host, pp, timeoutSeconds * 1000);
    }
    if (p.grpc) {
      const pp = port(p.grpc.port, t.container);
      if (typeof pp === 'string') return { result: 'unknown', output: pp };
      if (!t.podIP) return { result: 'unknown', output: 'the pod has no IP yet' };
      return grpcProbe(t.podIP, pp, p.grpc.service ?? '', timeoutSeconds);
    }
    return { result: 'unknown', output: `missing probe handler for ${t.pod.metadata?.namespace ?? 'default'}/${t.pod.metadata?.name ?? ''}:${t.container.name}` };
  }

  private async exec(cmd: string[], containerId: string, timeoutSeconds: number): Promise<ProbeOutcome> {
    try {
      const r = await this.runtime.execSync(containerId, cmd, timeoutSeconds);
      const output = Buffer.concat([Buffer.from(r.stdout), Buffer.from(r.stderr)]).subarray(0, MAX_PROBE_OUTPUT).toString('utf8');
      return { result: r.exitCode === 0 ? 'success' : 'failure', output };
    } catch (err) {
      // A command that outlives timeoutSeconds failed (upstream's ExecProbeTimeout).
      if (errorCode(err) === 'CRI_EXEC_TIMEOUT') {
        return { result: 'failure', output: `command timed out: "${cmd.join(' ')}" timed out after ${goSeconds(timeoutSeconds)}` };
      }
      return { result: 'unknown', output: describeError(err) };
    }
  }
}
