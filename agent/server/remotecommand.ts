// The kubelet side of exec and attach over SPDY (upstream cri-streaming's
// remotecommand): query options, protocol negotiation, waiting for the
// client's streams, wiring them to a runtime StreamSession, and the final
// status on the error stream.
//
// Streams are opened by the client, one per role, named by the `streamtype`
// header: error (always), stdin, stdout, stderr (not with a tty), resize (tty,
// v3+). Channel numbers (0 stdin .. 4 resize) belong to the WebSocket framing
// that the API server translates from; on SPDY each role is its own stream.
import type { Readable, Writable } from 'node:stream';
import type { StreamSession } from '../../cri/runtime.ts';
import type { SpdyConnection, SpdyStream } from './spdy.ts';

export const PROTOCOL_V4 = 'v4.channel.k8s.io';
export const PROTOCOL_V3 = 'v3.channel.k8s.io';
export const PROTOCOL_V2 = 'v2.channel.k8s.io';
export const PROTOCOL_V1 = 'channel.k8s.io';
/** What we accept, most preferred first (upstream's order). */
export const REMOTECOMMAND_PROTOCOLS = [PROTOCOL_V4, PROTOCOL_V3, PROTOCOL_V2, PROTOCOL_V1] as const;
export const PORTFORWARD_PROTOCOLS = ['portforward.k8s.io'] as const;

export const STREAM_CREATION_TIMEOUT_MS = 30_000;

export interface StreamRequestOptions {
  stdin: boolean;
  stdout: boolean;
  stderr: boolean;
  tty: boolean;
}

/** Upstream NewOptions: input/output/error/tty = "1"; tty drops stderr; at least one stream. */
export function parseStreamOptions(q: URLSearchParams): StreamRequestOptions | { error: string } {
  const tty = q.get('tty') === '1';
  const stdin = q.get('input') === '1';
  const stdout = q.get('output') === '1';
  let stderr = q.get('error') === '1';
  if (tty && stderr) stderr = false;
  if (!stdin && !stdout && !stderr) return { error: 'you must specify at least 1 of stdin, stdout, stderr' };
  return { stdin, stdout, stderr, tty };
}

/** Values of X-Stream-Protocol-Version, which may come as several headers or comma-separated. */
export function splitProtocols(values: string | string[] | undefined): string[] {
  const list = values === undefined ? [] : Array.isArray(values) ? values : [values];
  return list.flatMap((v) => v.split(',')).map((v) => v.trim()).filter((v) => v !== '');
}

/** Upstream negotiateProtocol: the first client protocol the server supports. */
export function negotiateProtocol(client: readonly string[], server: readonly string[]): string | undefined {
  return client.find((p) => server.includes(p));
}

export function expectedStreams(opts: StreamRequestOptions, protocol: string): number {
  let n = 1; // error
  if (opts.stdin) n++;
  if (opts.stdout) n++;
  if (opts.stderr) n++;
  if (opts.tty && (protocol === PROTOCOL_V4 || protocol === PROTOCOL_V3)) n++;
  return n;
}

/** metav1.Status as the error stream carries it (only the fields upstream sets). */
export interface StreamStatus {
  status: 'Success' | 'Failure';
  message?: string;
  reason?: string;
  details?: { causes: Array<{ reason: string; message: string }> };
  code?: number;
}

export const SUCCESS: StreamStatus = { status: 'Success' };

/** A command that ran and exited non-zero (upstream's NonZeroExitCode with an ExitCode cause). */
export function exitStatus(cmd: readonly string[], code: number): StreamStatus {
  return {
    status: 'Failure',
    reason: 'NonZeroExitCode',
    details: { causes: [{ reason: 'ExitCode', message: String(code) }] },
    message: `command terminated with non-zero exit code: error executing command [${cmd.join(' ')}], exit code ${code}`,
  };
}

export function internalErrorStatus(message: string): StreamStatus {
  return { status: 'Failure', reason: 'InternalError', message: `Internal error occurred: ${message}`, code: 500 };
}

/**
 * The bytes written on the error stream: v4 sends the Status as JSON (also on
 * success); older protocols send only a failure's message.
 */
export function encodeStatus(protocol: string, st: StreamStatus): Buffer | undefined {
  if (protocol === PROTOCOL_V4) return Buffer.from(JSON.stringify(st));
  return st.status === 'Success' ? undefined : Buffer.from(st.message ?? '');
}

/** Terminal sizes from the resize stream: concatenated JSON objects {"Width":w,"Height":h}. */
export class ResizeDecoder {
  private buf = '';

  push(chunk: string): Array<{ width: number; height: number }> {
    this.buf += chunk;
    const out: Array<{ width: number; height: number }> = [];
    for (;;) {
      const end = jsonObjectEnd(this.buf);
      if (end < 0) break;
      const text = this.buf.slice(0, end);
      this.buf = this.buf.slice(end);
      try {
        const v = JSON.parse(text) as { Width?: unknown; Height?: unknown };
        if (typeof v.Width === 'number' && typeof v.Height === 'number') out.push({ width: v.Width, height: v.Height });
      } catch {
        // A malformed object ends nothing; skip it as upstream's decoder would stop, harmlessly.
      }
    }
    return out;
  }
}

/** Index just past the first complete top-level JSON object in s (leading whitespace skipped), or -1. */
function jsonObjectEnd(s: string): number {
  let depth = 0;
  let inStr = false;
  let esc = false;
  let started = false;
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (!started) {
      if (c === '{') {
        started = true;
        depth = 1;
      } else if (!/\s/.test(c)) return i + 1; // junk: drop one char
      continue;
    }
    if (inStr) {
      if (esc) esc = false;
      else if (c === '\\') esc = true;
      else if (c === '"') inStr = false;
      continue;
    }
    if (c === '"') inStr = true;
    else if (c === '{') depth++;
    else if (c === '}' && --depth === 0) return i + 1;
  }
  return -1;
}

export interface ClientStreams {
  error?: SpdyStream;
  stdin?: SpdyStream;
  stdout?: SpdyStream;
  stderr?: SpdyStream;
  resize?: SpdyStream;
}

/**
 * Collects the client's streams as they arrive (register `accept` as the
 * connection's onStream). `ready` resolves once `expected` streams came, and
 * rejects after the timeout or when the connection closes first.
 */
export class StreamCollector {
  readonly streams: ClientStreams = {};
  readonly ready: Promise<ClientStreams>;
  private count = 0;
  private expected = Infinity;
  private resolve!: (s: ClientStreams) => void;
  private reject!: (e: Error) => void;
  private timer: NodeJS.Timeout | undefined;

  constructor() {
    this.ready = new Promise((res, rej) => {
      this.resolve = res;
      this.reject = rej;
    });
    this.ready.catch(() => undefined);
  }

  start(expected: number, conn: SpdyConnection, timeoutMs = STREAM_CREATION_TIMEOUT_MS): void {
    this.expected = expected;
    this.timer = setTimeout(() => this.reject(new Error('timed out waiting for client to create streams')), timeoutMs);
    this.timer.unref();
    conn.onClose(() => this.reject(new Error('connection closed before the client created its streams')));
    this.check();
  }

  accept = (s: SpdyStream): boolean => {
    const type = s.header('streamtype') as keyof ClientStreams;
    if (!['error', 'stdin', 'stdout', 'stderr', 'resize'].includes(type)) return true; // upstream replies and ignores it
    this.streams[type] = s;
    this.count++;
    // The reply goes out after onStream returns; count it as received then.
    queueMicrotask(() => this.check());
    return true;
  };

  private check(): void {
    if (this.count >= this.expected) {
      if (this.timer) clearTimeout(this.timer);
      this.resolve(this.streams);
    }
  }
}

/**
 * Runs one exec or attach session to its end: client stdin into the process,
 * process output to the client, resizes, then resolves with the status to
 * send (exec: the exit code; attach: success once the output ends).
 */
export async function pumpSession(
  session: StreamSession,
  streams: ClientStreams,
  mode: { kind: 'exec'; cmd: readonly string[] } | { kind: 'attach' },
  conn: SpdyConnection,
): Promise<StreamStatus | undefined> {
  const gone = new Promise<'gone'>((resolve) => conn.onClose(() => resolve('gone')));
  if (streams.stdin) {
    const target = session.stdin;
    streams.stdin.on('data', (c: Buffer) => target?.write(c));
    streams.stdin.on('end', () => target?.end());
    target?.on('error', () => undefined);
  }
  if (streams.resize) {
    const dec = new ResizeDecoder();
    streams.resize.setEncoding('utf8');
    streams.resize.on('data', (c: string) => {
      for (const sz of dec.push(c)) void session.resize(sz.width, sz.height).catch(() => undefined);
    });
  }
  const outputs = [copyOut(session.stdout, streams.stdout), copyOut(session.stderr, streams.stderr)];
  const done = (async (): Promise<StreamStatus> => {
    await Promise.all(outputs);
    if (mode.kind === 'attach') return SUCCESS;
    const code = await session.exitCode;
    return code === 0 ? SUCCESS : exitStatus(mode.cmd, code);
  })().catch((err: unknown) =>
    // No exit code (the runtime lost the process): upstream reports an internal error.
    internalErrorStatus(`error executing command in container: ${err instanceof Error ? err.message : String(err)}`),
  );
  const r = await Promise.race([done, gone]);
  return r === 'gone' ? undefined : r;
}

/** Copies a process output to a client stream (or drains it when the client did not ask for it). */
function copyOut(src: Readable | undefined, dst: Writable | undefined): Promise<void> {
  if (!src) return Promise.resolve();
  return new Promise((resolve) => {
    src.on('data', (c: Buffer) => {
      if (dst && !dst.destroyed && !dst.write(c)) {
        src.pause();
        dst.once('drain', () => src.resume());
      }
    });
    src.once('end', () => resolve());
    src.once('close', () => resolve());
    src.once('error', () => resolve());
  });
}
