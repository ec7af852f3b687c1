// The CRI container log format, one line per chunk of output:
//   2016-10-06T00:17:09.669794202Z stdout F the message
// RFC3339Nano timestamp (UTC; trailing zeros of the fraction trimmed as Go's
// time.RFC3339Nano does), stream, tag (F = full line, P = partial: the line
// continues in the next record), message. The kubelet layout puts the files at
// <logRoot>/<ns>_<pod>_<uid>/<container>/<restartCount>.log.
import path from 'node:path';

export type LogStream = 'stdout' | 'stderr';
export const TAG_FULL = 'F';
export const TAG_PARTIAL = 'P';
/** Longest message per record; longer lines are split into P records (as containerd: 16 KiB). */
export const MAX_LOG_LINE = 16 * 1024;

/** Go's time.RFC3339Nano in UTC from seconds and nanoseconds: fraction without trailing zeros. */
export function rfc3339Nano(epochSeconds: number, nanos: number): string {
  const base = new Date(epochSeconds * 1000).toISOString().slice(0, 19); // YYYY-MM-DDTHH:MM:SS
  const frac = String(nanos).padStart(9, '0').replace(/0+$/, '');
  return `${base}${frac ? '.' + frac : ''}Z`;
}

/** Parses an RFC3339(Nano) timestamp into [epochSeconds, nanos]; undefined when malformed. */
export function parseRfc3339Nano(ts: string): [number, number] | undefined {
  const m = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)$/.exec(ts);
  if (!m) return undefined;
  const ms = Date.parse(`${m[1]}${m[3]}`);
  if (Number.isNaN(ms)) return undefined;
  return [ms / 1000, Number((m[2] ?? '').padEnd(9, '0') || '0')];
}

/** Compares two RFC3339Nano timestamps in time order (-1, 0, 1). */
export function compareTimestamps(a: string, b: string): number {
  const pa = parseRfc3339Nano(a);
  const pb = parseRfc3339Nano(b);
  if (!pa || !pb) return a < b ? -1 : a > b ? 1 : 0;
  if (pa[0] !== pb[0]) return pa[0] < pb[0] ? -1 : 1;
  return pa[1] === pb[1] ? 0 : pa[1] < pb[1] ? -1 : 1;
}

export function formatLogLine(timestamp: string, stream: LogStream, partial: boolean, message: string | Buffer): Buffer {
  const head = Buffer.from(`${timestamp} ${stream} ${partial ? TAG_PARTIAL : TAG_FULL} `);
  return Buffer.concat([head, Buffer.isBuffer(message) ? message : Buffer.from(message), Buffer.from('\n')]);
}

/**
 * The records for one line of output (without its '\n'): messages longer than
 * max go out as P records followed by a final F record. `complete` false means
 * the output ended without a newline: the last record is P too.
 */
export function formatLogRecords(
  timestamp: string,
  stream: LogStream,
  line: Buffer,
  complete = true,
  max = MAX_LOG_LINE,
): Buffer[] {
  const out: Buffer[] = [];
  let rest = line;
  while (rest.length > max) {
    out.push(formatLogLine(timestamp, stream, true, rest.subarray(0, max)));
    rest = rest.subarray(max);
  }
  out.push(formatLogLine(timestamp, stream, !complete, rest));
  return out;
}

export interface LogRecord {
  timestamp: string;
  stream: LogStream;
  partial: boolean;
  message: string;
}

/** Parses one CRI log line (without or with its trailing '\n'). */
export function parseLogLine(line: string): LogRecord | undefined {
  const m = /^(\S+) (stdout|stderr) ([FP]) (.*?)\n?$/s.exec(line);
  if (!m || !parseRfc3339Nano(m[1]!)) return undefined;
  return { timestamp: m[1]!, stream: m[2] as LogStream, partial: m[3] === TAG_PARTIAL, message: m[4]! };
}

/** Joins P records into whole lines per stream, the way `kubectl logs` shows them. */
export function joinRecords(records: LogRecord[]): { stream: LogStream; line: string }[] {
  const out: { stream: LogStream; line: string }[] = [];
  const pending: Partial<Record<LogStream, string>> = {};
  for (const r of records) {
    const acc = (pending[r.stream] ?? '') + r.message;
    if (r.partial) pending[r.stream] = acc;
    else {
      delete pending[r.stream];
      out.push({ stream: r.stream, line: acc });
    }
  }
  return out;
}

/** <logRoot>/<namespace>_<name>_<uid>: CRI PodSandboxConfig.log_directory as the kubelet sets it. */
export function podLogDirectory(logRoot: string, namespace: string, name: string, uid: string): string {
  return path.join(logRoot, `${namespace}_${name}_${uid}`);
}

/** <container>/<restartCount>.log: CRI ContainerConfig.log_path, relative to the pod's directory. */
export function containerLogPath(containerName: string, restartCount: number): string {
  return path.join(containerName, `${restartCount}.log`);
}

/**
 * Splits one stream of Docker log output fetched with timestamps=true into
 * (timestamp, line) pairs: Docker prefixes each entry with its RFC3339Nano time
 * and a space. Feed chunks in order; `end()` flushes an unterminated tail.
 */
export class TimestampedLineSplitter {
  private buf: Buffer = Buffer.alloc(0);
  private readonly emit: (timestamp: string, line: Buffer, complete: boolean) => void;

  constructor(emit: (timestamp: string, line: Buffer, complete: boolean) => void) {
    this.emit = emit;
  }

  push(chunk: Buffer): void {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    let nl: number;
    while ((nl = this.buf.indexOf(0x0a)) >= 0) {
      this.line(this.buf.subarray(0, nl), true);
      this.buf = this.buf.subarray(nl + 1);
    }
  }

  /** The output ended: an unterminated tail is a whole line (F), as containerd writes it. */
  end(): void {
    if (this.buf.length) this.line(this.buf, true);
    this.buf = Buffer.alloc(0);
  }

  private line(raw: Buffer, complete: boolean): void {
    const sp = raw.indexOf(0x20);
    const ts = sp > 0 ? raw.subarray(0, sp).toString() : '';
    if (parseRfc3339Nano(ts)) this.emit(ts, raw.subarray(sp + 1), complete);
    else this.emit(nowTimestamp(), raw, complete); // not prefixed: stamp it now
  }
}

export function nowTimestamp(): string {
  const ms = Date.now();
  const sub = Number(process.hrtime.bigint() % 1_000_000n); // sub-millisecond digits (not exact, monotone enough)
  return rfc3339Nano(Math.floor(ms / 1000), (ms % 1000) * 1_000_000 + sub);
}
