// Container logs in the CRI format at the path the kubelet chose
// (<logDirectory>/<container>/<restart>.log). Docker keeps each container's
// output in its own json-file log; a copier per container follows that with
// `docker logs --follow --timestamps` and appends CRI records. Docker's entry
// timestamps are kept, so after a nodelet restart a copier resumes from the
// last timestamp in the file without duplicating lines (entries with the same
// nanosecond as the last one written are skipped: a rare loss, documented).
// Rotation by size and count as the kubelet's container log manager does it:
// the full file is renamed to <file>.<YYYYMMDD-HHMMSS.mmm> and the oldest
// rotated files beyond maxFiles - 1 are deleted (no compression).
import { once } from 'node:events';
import { closeSync, existsSync, fstatSync, mkdirSync, openSync, readdirSync, readSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import type Dockerode from 'dockerode';
import type { Logger } from '../../lib/log.ts';
import { describeError } from '../../lib/errors.ts';
import {
  compareTimestamps,
  formatLogRecords,
  type LogStream,
  parseLogLine,
  parseRfc3339Nano,
  TimestampedLineSplitter,
} from '../logformat.ts';

type LogDocker = Pick<Dockerode, 'getContainer' | 'modem'>;

/** How long a followed stream may stay open after its container stopped. */
const EXIT_GRACE_MS = 2000;

export interface RotationOptions {
  /** Rotate when the file reaches this many bytes (0: never). */
  maxSize: number;
  /** Files kept per container, the live one included (>= 1). */
  maxFiles: number;
}

export const DEFAULT_ROTATION: RotationOptions = { maxSize: 10 * 1024 * 1024, maxFiles: 5 };

/** Suffix of a rotated file, sortable as text: 20240501-100005.123 (UTC). */
export function rotationSuffix(ms: number): string {
  const iso = new Date(ms).toISOString(); // 2024-05-01T10:00:05.123Z
  return `${iso.slice(0, 10).replace(/-/g, '')}-${iso.slice(11, 19).replace(/:/g, '')}.${iso.slice(20, 23)}`;
}

const ROTATED = /^\.\d{8}-\d{6}\.\d{3}(?:\.\d+)?$/;

/** Rotated siblings of file, oldest first. */
export function rotatedFiles(file: string): string[] {
  const dir = path.dirname(file);
  const base = path.basename(file);
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => f.startsWith(base) && ROTATED.test(f.slice(base.length)))
    .sort()
    .map((f) => path.join(dir, f));
}

/** Which rotated files to delete so that at most maxFiles - 1 remain (input oldest first). */
export function rotatedToDelete(rotated: string[], maxFiles: number): string[] {
  const keep = Math.max(0, maxFiles - 1);
  return rotated.slice(0, Math.max(0, rotated.length - keep));
}

/** An append-only file that rotates itself by size. */
export class RotatingFile {
  private fd: number;
  private size: number;
  private readonly file: string;
  private readonly opts: RotationOptions;
  private readonly now: () => number;

  constructor(file: string, opts: RotationOptions, now: () => number = Date.now) {
    this.file = file;
    this.opts = opts;
    this.now = now;
    this.fd = openSync(file, 'a');
    this.size = fstatSync(this.fd).size;
  }

  write(b: Buffer): void {
    if (this.opts.maxSize > 0 && this.size > 0 && this.size + b.length > this.opts.maxSize) this.rotate();
    writeSync(this.fd, b);
    this.size += b.length;
  }

  close(): void {
    closeSync(this.fd);
  }

  private rotate(): void {
    closeSync(this.fd);
    let target = `${this.file}.${rotationSuffix(this.now())}`;
    for (let i = 1; existsSync(target); i++) target = `${this.file}.${rotationSuffix(this.now())}.${i}`;
    renameSync(this.file, target);
    for (const old of rotatedToDelete(rotatedFiles(this.file), this.opts.maxFiles)) rmSync(old, { force: true });
    this.fd = openSync(this.file, 'a');
    this.size = 0;
  }
}

/** The last timestamp written for a container: in its log file, else in its newest rotated file. */
export function lastTimestamp(file: string): string | undefined {
  const own = lastTimestampIn(file);
  if (own) return own;
  const rotated = rotatedFiles(file);
  return rotated.length ? lastTimestampIn(rotated[rotated.length - 1]!) : undefined;
}

/** The timestamp of the last record in one CRI log file, if any (reads only its tail). */
function lastTimestampIn(file: string): string | undefined {
  if (!existsSync(file)) return undefined;
  const size = statSync(file).size;
  if (size === 0) return undefined;
  const len = Math.min(size, 64 * 1024);
  const buf = Buffer.alloc(len);
  const fd = openSync(file, 'r');
  try {
    readSync(fd, buf, 0, len, size - len);
  } finally {
    closeSync(fd);
  }
  const lines = buf.toString().split('\n').filter(Boolean);
  for (let i = lines.length - 1; i >= 0; i--) {
    const r = parseLogLine(lines[i]!);
    if (r) return r.timestamp;
  }
  return undefined;
}

/** Docker's `since` parameter (seconds with a fraction) from an RFC3339Nano timestamp. */
export function sinceParam(ts: string): string {
  const p = parseRfc3339Nano(ts);
  if (!p) return '0';
  return `${Math.floor(p[0])}.${String(p[1]).padStart(9, '0')}`;
}

/** Writes one stream's lines into the CRI file: (timestamp, line, complete). */
type LineWriter = (stream: LogStream) => (ts: string, line: Buffer, complete: boolean) => void;

interface Copier {
  done: Promise<void>;
  stop: () => void;
}

export class LogCopiers {
  private readonly docker: LogDocker;
  private readonly log: Logger;
  private readonly copiers = new Map<string, Copier>();
  private readonly rotation: RotationOptions;

  constructor(docker: LogDocker, log: Logger, rotation: RotationOptions = DEFAULT_ROTATION) {
    this.docker = docker;
    this.log = log;
    this.rotation = rotation;
  }

  has(containerId: string): boolean {
    return this.copiers.has(containerId);
  }

  /** Starts following a container into file unless a copier already runs; resolves once following. */
  async start(containerId: string, file: string, tty: boolean): Promise<void> {
    if (this.copiers.has(containerId)) return;
    mkdirSync(path.dirname(file), { recursive: true });
    const after = lastTimestamp(file);
    const opts = { follow: true as const, stdout: true, stderr: true, timestamps: true, since: after ? sinceParam(after) : 0 };
    const placeholder: Copier = { done: Promise.resolve(), stop: () => {} };
    this.copiers.set(containerId, placeholder);
    let stream: NodeJS.ReadableStream;
    try {
      stream = await this.docker.getContainer(containerId).logs(opts as Dockerode.ContainerLogsOptions & { follow: true });
    } catch (err) {
      this.copiers.delete(containerId);
      this.log.warn('cannot follow container output', { container: containerId, err: describeError(err) });
      return;
    }
    const out_ = new RotatingFile(file, this.rotation);
    let newest = after; // the newest timestamp in the file, for the catch-up read
    const write: LineWriter = (stream_) => (ts, line, complete) => {
      if (after && compareTimestamps(ts, after) <= 0) return;
      for (const rec of formatLogRecords(ts, stream_, line, complete)) out_.write(rec);
      if (!newest || compareTimestamps(ts, newest) > 0) newest = ts;
    };
    const followed = this.copy(stream, tty, write);
    const ended = Promise.race([once(stream, 'end'), once(stream, 'close')]).catch(() => undefined);
    stream.on('error', (err) => this.log.debug('log stream error', { container: containerId, err: describeError(err) }));
    // Docker 20.10 sometimes keeps a followed log stream open after the container
    // exits, so its unterminated last line would never be flushed: once the
    // container has stopped, give the stream a moment to end, then end it ourselves.
    void Promise.resolve()
      .then(() => this.docker.getContainer(containerId).wait())
      .then(() => Promise.race([ended, new Promise((r) => setTimeout(r, EXIT_GRACE_MS).unref())]))
      .then(() => (stream as unknown as { destroy?: () => void }).destroy?.())
      .catch(() => undefined); // the stream's own end or error still finishes the copier
    let stopped = false;
    const done = ended
      .then(() => followed.finish())
      .then(async () => {
        // A followed stream that ended by itself, or that we ended after the exit, may
        // have missed the last entries (the stream stalled, or Docker wrote them after
        // it closed): read once more, without following, what is newer than the file.
        if (stopped) return;
        await this.catchUp(containerId, tty, newest, write).catch((err) => this.log.debug('cannot read the rest of a container\'s output', { container: containerId, err: describeError(err) }));
      })
      .then(() => {
        out_.close();
        if (this.copiers.get(containerId) === copier) this.copiers.delete(containerId);
      });
    const copier: Copier = {
      done,
      stop: () => {
        stopped = true;
        (stream as unknown as { destroy?: () => void }).destroy?.();
      },
    };
    this.copiers.set(containerId, copier);
  }

  /** Feeds Docker's log stream (multiplexed unless tty) to line splitters; finish() flushes them once it ended. */
  private copy(stream: NodeJS.ReadableStream, tty: boolean, write: LineWriter): { finish(): Promise<void> } {
    const outSplit = new TimestampedLineSplitter(write('stdout'));
    const errSplit = new TimestampedLineSplitter(write('stderr'));
    if (tty) {
      stream.on('data', (b: Buffer) => outSplit.push(b));
    } else {
      const out = new PassThrough();
      const errs = new PassThrough();
      out.on('data', (b: Buffer) => outSplit.push(b));
      errs.on('data', (b: Buffer) => errSplit.push(b));
      this.docker.modem.demuxStream(stream, out, errs);
    }
    return {
      // Let the demuxer hand over what it still holds, then flush unterminated tails.
      finish: () =>
        new Promise<void>((r) => setImmediate(r)).then(() => {
          outSplit.end();
          errSplit.end();
        }),
    };
  }

  /** Appends what Docker has of a container's output after `newest` (one read, not followed). */
  private async catchUp(containerId: string, tty: boolean, newest: string | undefined, write: LineWriter): Promise<void> {
    const opts = { follow: false as const, stdout: true, stderr: true, timestamps: true, since: newest ? sinceParam(newest) : 0 };
    // Without follow, dockerode hands back the whole answer as one buffer.
    const body: unknown = await this.docker.getContainer(containerId).logs(opts);
    const source = new PassThrough();
    const newer: LineWriter = (s) => {
      const w = write(s);
      return (ts, line, complete) => {
        if (!newest || compareTimestamps(ts, newest) > 0) w(ts, line, complete);
      };
    };
    const read = this.copy(source, tty, newer);
    source.end(Buffer.isBuffer(body) ? body : Buffer.from(typeof body === 'string' ? body : ''));
    await once(source, 'end').catch(() => undefined);
    await read.finish();
  }

  /** Waits until a container's copier has written everything (after the container exited). */
  async drain(containerId: string, timeoutMs = 5000): Promise<void> {
    const c = this.copiers.get(containerId);
    if (!c) return;
    await Promise.race([c.done, new Promise((r) => setTimeout(r, timeoutMs).unref())]);
  }

  stop(containerId: string): void {
    this.copiers.get(containerId)?.stop();
  }

  async stopAll(): Promise<void> {
    const all = [...this.copiers.values()];
    for (const c of all) c.stop();
    await Promise.all(all.map((c) => c.done));
  }
}
