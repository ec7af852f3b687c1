// GET /containerLogs: PodLogOptions from the query (validated as upstream), and
// reading a CRI log file with them (upstream kuberuntime ReadLogs): sinceTime
// filter, tail from the end of the file, timestamps, stdout/stderr selection,
// a byte limit, and follow until the container stops running.
import { open, stat } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import type { Clock } from '../../lib/clock.ts';
import { compareTimestamps, parseLogLine, rfc3339Nano } from '../../cri/logformat.ts';

export interface LogOptions {
  follow: boolean;
  previous: boolean;
  timestamps: boolean;
  /** Last N lines of the file; undefined = all. */
  tailLines?: number;
  limitBytes?: number;
  /** Only records at or after this RFC3339Nano time. */
  sinceTime?: string;
  stream: 'All' | 'Stdout' | 'Stderr';
}

export type ParseResult = { ok: true; options: LogOptions } | { ok: false; status: number; message: string };

/** Go strconv.ParseBool. */
function parseBool(v: string | null): boolean | undefined {
  if (v === null) return false;
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(v)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(v)) return false;
  return undefined;
}

function parseInt64(v: string | null): number | undefined | null {
  if (v === null || v === '') return undefined;
  return /^-?\d+$/.test(v) ? Number(v) : null;
}

/**
 * The kubelet's query handling: "tail" is an old spelling of tailLines ("all" =
 * unset); undecodable values are 400, invalid ones 422 (ValidatePodLogOptions).
 */
export function parseLogOptions(q: URLSearchParams, nowMs: number): ParseResult {
  const bad = { ok: false as const, status: 400, message: '{"message": "Unable to decode query."}' };
  const invalid = { ok: false as const, status: 422, message: '{"message": "Invalid request."}' };
  const follow = parseBool(q.get('follow'));
  const previous = parseBool(q.get('previous'));
  const timestamps = parseBool(q.get('timestamps'));
  if (follow === undefined || previous === undefined || timestamps === undefined) return bad;
  let tailRaw = q.get('tailLines');
  const tail = q.get('tail');
  if (tail) tailRaw = tail === 'all' ? null : tail;
  const tailLines = parseInt64(tailRaw);
  const limitBytes = parseInt64(q.get('limitBytes'));
  const sinceSeconds = parseInt64(q.get('sinceSeconds'));
  if (tailLines === null || limitBytes === null || sinceSeconds === null) return bad;
  const sinceTimeRaw = q.get('sinceTime');
  let sinceTime: string | undefined;
  if (sinceTimeRaw) {
    const ms = Date.parse(sinceTimeRaw);
    if (!/^\d{4}-\d\d-\d\dT/.test(sinceTimeRaw) || Number.isNaN(ms)) return bad;
    // metav1.Time has second precision on the wire.
    sinceTime = rfc3339Nano(Math.floor(ms / 1000), 0);
  }
  const streamRaw = q.get('stream') ?? 'All';
  if (streamRaw !== 'All' && streamRaw !== 'Stdout' && streamRaw !== 'Stderr') {
    return { ok: false, status: 400, message: `invalid stream type "${streamRaw}"` };
  }
  if (tailLines !== undefined && tailLines < 0) return invalid;
  if (limitBytes !== undefined && limitBytes < 1) return invalid;
  if (sinceSeconds !== undefined && sinceSeconds < 1) return invalid;
  if (sinceSeconds !== undefined && sinceTime !== undefined) return invalid;
  if (streamRaw !== 'All' && tailLines !== undefined) return invalid; // upstream: tailLines only with All
  if (sinceSeconds !== undefined) sinceTime = rfc3339Nano(Math.floor(nowMs / 1000) - sinceSeconds, (nowMs % 1000) * 1e6);
  const options: LogOptions = { follow, previous, timestamps, stream: streamRaw };
  if (tailLines !== undefined) options.tailLines = tailLines;
  if (limitBytes !== undefined) options.limitBytes = limitBytes;
  if (sinceTime !== undefined) options.sinceTime = sinceTime;
  return { ok: true, options };
}

/** Turns CRI log lines into what the client sees, applying the filters and the byte limit. */
export class LogFormatter {
  private readonly opts: LogOptions;
  private remaining: number;

  constructor(opts: LogOptions) {
    this.opts = opts;
    this.remaining = opts.limitBytes ?? Infinity;
  }

  /** The byte limit was reached: nothing more will be produced. */
  get exhausted(): boolean {
    return this.remaining <= 0;
  }

  /** Output for one file line (without '\n'); empty when filtered out or malformed. */
  line(text: string): Buffer {
    if (this.exhausted) return Buffer.alloc(0);
    const r = parseLogLine(text);
    if (!r) return Buffer.alloc(0);
    if (this.opts.sinceTime && compareTimestamps(r.timestamp, this.opts.sinceTime) < 0) return Buffer.alloc(0);
    if (this.opts.stream === 'Stdout' && r.stream !== 'stdout') return Buffer.alloc(0);
    if (this.opts.stream === 'Stderr' && r.stream !== 'stderr') return Buffer.alloc(0);
    let out = Buffer.from(`${this.opts.timestamps ? r.timestamp + ' ' : ''}${r.message}${r.partial ? '' : '\n'}`);
    if (out.length > this.remaining) out = out.subarray(0, this.remaining);
    this.remaining -= out.length;
    return out;
  }
}

/** Byte offset where the last `n` lines of the file start (a final unterminated line counts as one). */
export async function tailOffset(fh: FileHandle, size: number, n: number): Promise<number> {
  if (n <= 0 || size === 0) return size;
  const last = Buffer.alloc(1);
  await fh.read(last, 0, 1, size - 1);
  // The newline that ends the last line does not start another one.
  let pos = last[0] === 0x0a ? size - 1 : size;
  const block = 64 * 1024;
  let newlines = 0;
  while (pos > 0) {
    const start = Math.max(0, pos - block);
    const buf = Buffer.alloc(pos - start);
    await fh.read(buf, 0, buf.length, start);
    for (let i = buf.length - 1; i >= 0; i--) {
      if (buf[i] === 0x0a && ++newlines === n) return start + i + 1;
    }
    pos = start;
  }
  return 0;
}

export interface LogSink {
  /** Resolves once the bytes are accepted (after a drain if needed). */
  write(buf: Buffer): Promise<void>;
}

export interface FollowControl {
  clock: Clock;
  /** Whether the container still runs (follow ends once it does not and the file is drained). */
  isRunning(): Promise<boolean>;
  signal?: AbortSignal;
  pollMs?: number;
}

/** Streams a CRI log file to `sink` with `opts`; returns when done (or aborted). */
export async function readLogFile(file: string, opts: LogOptions, sink: LogSink, follow: FollowControl): Promise<void> {
  const fmt = new LogFormatter(opts);
  let fh = await open(file, 'r');
  try {
    let ino = (await fh.stat()).ino;
    let pos = opts.tailLines !== undefined ? await tailOffset(fh, (await fh.stat()).size, opts.tailLines) : 0;
    let pending = Buffer.alloc(0);
    const buf = Buffer.alloc(64 * 1024);
    const pollMs = follow.pollMs ?? 200;
    let idleSince = follow.clock.now();
    for (;;) {
      if (follow.signal?.aborted || fmt.exhausted) return;
      const { bytesRead } = await fh.read(buf, 0, buf.length, pos);
      if (bytesRead > 0) {
        pos += bytesRead;
        idleSince = follow.clock.now();
        pending = Buffer.concat([pending, buf.subarray(0, bytesRead)]);
        let nl: number;
        const outs: Buffer[] = [];
        while ((nl = pending.indexOf(0x0a)) >= 0) {
          const o = fmt.line(pending.subarray(0, nl).toString('utf8'));
          if (o.length) outs.push(o);
          pending = pending.subarray(nl + 1);
        }
        if (outs.length) await sink.write(Buffer.concat(outs));
        continue;
      }
      if (!opts.follow) {
        // An unterminated last line is still a record (the writer may be mid-line).
        if (pending.length) {
          const o = fmt.line(pending.toString('utf8'));
          if (o.length) await sink.write(o);
        }
        return;
      }
      // Rotated (a new file under the same name) or truncated: read the new file from its start.
      const now = await stat(file).catch(() => undefined);
      if (now && (now.ino !== ino || now.size < pos)) {
        await fh.close();
        fh = await open(file, 'r');
        ino = (await fh.stat()).ino;
        pos = 0;
        pending = Buffer.alloc(0);
        continue;
      }
      if (follow.clock.now() - idleSince >= 1000) {
        if (!(await follow.isRunning())) {
          // One last read: output written just before the exit.
          const { bytesRead: last } = await fh.read(buf, 0, buf.length, pos);
          if (last > 0) continue;
          return;
        }
        idleSince = follow.clock.now();
      }
      await follow.clock.sleep(pollMs, follow.signal);
    }
  } finally {
    await fh.close().catch(() => undefined);
  }
}
