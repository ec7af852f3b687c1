// What one probe attempt says, as upstream's probe.Result plus its output:
// success, warning (success worth an event, e.g. a redirect to another host),
// failure (the output is the event text), or unknown (the probe could not be
// run at all; the worker keeps its previous verdict).
export type ProbeResult = 'success' | 'warning' | 'failure' | 'unknown';

export interface ProbeOutcome {
  result: ProbeResult;
  output: string;
}

/** Upstream reads at most 10 KiB of a probe's response or command output. */
export const MAX_PROBE_OUTPUT = 10 * 1024;

/** A Go duration for whole seconds ("1s", "1m30s"), as upstream's messages print timeouts. */
export function goSeconds(seconds: number): string {
  if (seconds < 60) return `${seconds}s`;
  const m = Math.floor(seconds / 60);
  const s = seconds % 60;
  if (m < 60) return `${m}m${s}s`;
  return `${Math.floor(m / 60)}h${m % 60}m${s}s`;
}

/**
 * A socket error worded as Go's net package words it ("dial tcp 10.0.0.1:80:
 * connect: connection refused"), so events read as upstream's.
 */
export function dialError(addr: string, err: unknown): string {
  type SysError = { code?: string; syscall?: string; message?: string; cause?: unknown };
  let e = err as SysError | undefined;
  // HTTP/2 wraps the socket's error ("The pending stream has been canceled"): use the socket's.
  const cause = e?.cause as SysError | undefined;
  if (cause?.syscall) e = cause;
  const texts: Record<string, string> = {
    ECONNREFUSED: 'connect: connection refused',
    EHOSTUNREACH: 'connect: no route to host',
    ENETUNREACH: 'connect: network is unreachable',
    ETIMEDOUT: 'i/o timeout',
    ECONNRESET: 'read: connection reset by peer',
    EADDRNOTAVAIL: 'connect: cannot assign requested address',
  };
  const text = (e?.code && texts[e.code]) || e?.message || String(err);
  return e?.syscall === 'connect' || e?.code === 'ECONNREFUSED' ? `dial tcp ${addr}: ${text}` : text;
}
