// The kubelet side of port-forward over SPDY (upstream cri-streaming's
// portforward/httpstream.go). For every forwarded connection the client opens
// two streams with the same `requestid` and `port` headers: an error stream,
// then a data stream. Once both exist, the data stream is joined to a
// connection to that port inside the pod's network namespace; a failure is
// written as text on the error stream and both streams are reset.
import type { Duplex } from 'node:stream';
import { describeError, errorCode } from '../../lib/errors.ts';
import type { Logger } from '../../lib/log.ts';
import type { SpdyConnection, SpdyStream } from './spdy.ts';
import { STREAM_CREATION_TIMEOUT_MS } from './remotecommand.ts';

/** Why a stream is refused (upstream's httpStreamReceived checks), or undefined when it is fine. */
export function checkPortForwardStream(headers: { port: string; streamType: string }): string | undefined {
  if (!headers.port) return '"port" header is required';
  const port = Number(headers.port);
  if (!/^\d+$/.test(headers.port) || port > 65535) return `unable to parse "${headers.port}" as a port`;
  if (port < 1) return `port "${headers.port}" must be > 0`;
  if (!headers.streamType) return '"streamType" header is required';
  if (headers.streamType !== 'error' && headers.streamType !== 'data') return `invalid stream type "${headers.streamType}"`;
  return undefined;
}

/** The pairing key: the requestID header, else derived from the stream id as upstream (error = id, data = id - 2). */
export function pairKey(requestId: string, streamType: string, streamId: number): string {
  if (requestId) return requestId;
  return String(streamType === 'data' ? streamId - 2 : streamId);
}

interface Pair {
  error?: SpdyStream;
  data?: SpdyStream;
  timer: NodeJS.Timeout;
}

/** Serves one upgraded port-forward connection until it closes. */
export class PortForwardHandler {
  private readonly pairs = new Map<string, Pair>();
  private readonly dial: (port: number) => Promise<Duplex>;
  private readonly log: Logger;
  private readonly timeoutMs: number;

  constructor(opts: { dial: (port: number) => Promise<Duplex>; log: Logger; timeoutMs?: number }) {
    this.dial = opts.dial;
    this.log = opts.log;
    this.timeoutMs = opts.timeoutMs ?? STREAM_CREATION_TIMEOUT_MS;
  }

  /** Register as the connection's onStream. */
  accept = (s: SpdyStream): boolean => {
    const streamType = s.header('streamtype');
    const port = s.header('port');
    const why = checkPortForwardStream({ port, streamType });
    if (why) {
      this.log.debug('port-forward stream refused', { reason: why });
      return false;
    }
    const key = pairKey(s.header('requestid'), streamType, s.id);
    let p = this.pairs.get(key);
    if (!p) {
      const timer = setTimeout(() => {
        const pair = this.pairs.get(key);
        this.pairs.delete(key);
        if (pair?.error) pair.error.end(`timed out waiting for streams of request ${key}`);
        pair?.data?.reset();
      }, this.timeoutMs);
      timer.unref();
      p = { timer };
      this.pairs.set(key, p);
    }
    const slot = streamType as 'error' | 'data';
    if (p[slot]) {
      queueMicrotask(() => p.error?.write(`error processing stream for request ${key}: ${slot} stream already assigned`));
      return true;
    }
    p[slot] = s;
    if (p.error && p.data) {
      clearTimeout(p.timer);
      this.pairs.delete(key);
      const { error, data } = p;
      queueMicrotask(() => void this.forward(Number(port), data, error));
    }
    return true;
  };

  /** Stops pending pair timers (the connection is gone). */
  close(): void {
    for (const p of this.pairs.values()) clearTimeout(p.timer);
    this.pairs.clear();
  }

  private async forward(port: number, data: SpdyStream, error: SpdyStream): Promise<void> {
    let upstream: Duplex;
    try {
      upstream = await this.dial(port);
    } catch (err) {
      this.failPair(port, data, error, err);
      return;
    }
    let failed = false;
    upstream.on('error', (err) => {
      if (failed) return;
      failed = true;
      if (errorCode(err) === 'ERR_STREAM_PREMATURE_CLOSE') {
        // The pod closed the connection while our side was still open (a relay
        // that exits before its input ends reports it so): a normal end.
        data.end();
        error.end();
        return;
      }
      this.failPair(port, data, error, err);
      upstream.destroy();
    });
    data.on('error', () => upstream.destroy());
    data.pipe(upstream);
    upstream.pipe(data);
    // Both directions done: close our halves as upstream's portForward does.
    let ended = 0;
    const oneDone = () => {
      if (++ended === 2 && !failed) error.end();
    };
    upstream.once('end', oneDone);
    data.once('end', oneDone);
    data.once('close', () => upstream.destroy());
  }

  private failPair(port: number, data: SpdyStream, error: SpdyStream, err: unknown): void {
    const msg = `error forwarding port ${port} to pod: ${describeError(err)}`;
    this.log.debug('port-forward failed', { port, err: describeError(err) });
    error.write(msg, () => {
      data.reset();
      error.reset();
    });
  }
}
