// SPDY/3.1 as the API server speaks it to the kubelet for exec, attach and
// port-forward (Go's moby/spdystream on the other side). v1.37.2 still uses it
// toward a node that does not declare ExtendWebSocketsToKubelet: it translates
// kubectl's WebSocket streams (v5.channel.k8s.io) into SPDY, and unwraps
// port-forward's SPDY-over-WebSocket tunnel into plain SPDY.
//
// What spdystream needs from a server: SYN_REPLY for every SYN_STREAM (data it
// receives before the reply is dropped), DATA with FIN to half-close,
// RST_STREAM, PING echo, GOAWAY. It does no flow control (never sends
// WINDOW_UPDATE), so neither do we: honouring SPDY's 64 KiB window would stall.
//
// Header blocks are zlib streams with the SPDY/3 dictionary that last for the
// whole connection. Incoming blocks are inflated by one stateful inflater (async,
// so frames are handled in order through a promise chain). Outgoing blocks are
// written as zlib "stored" (uncompressed) deflate blocks: valid for any zlib
// reader, and no compressor state to keep.
import { Duplex } from 'node:stream';
import zlib from 'node:zlib';
import { NodeletError } from '../../lib/errors.ts';

export const SPDY_VERSION = 3;
export const TYPE_SYN_STREAM = 1;
export const TYPE_SYN_REPLY = 2;
export const TYPE_RST_STREAM = 3;
export const TYPE_SETTINGS = 4;
export const TYPE_PING = 6;
export const TYPE_GOAWAY = 7;
export const TYPE_HEADERS = 8;
export const TYPE_WINDOW_UPDATE = 9;
export const FLAG_FIN = 0x01;

export const RST_PROTOCOL_ERROR = 1;
export const RST_INVALID_STREAM = 2;
export const RST_REFUSED_STREAM = 3;
export const RST_CANCEL = 5;

/** Largest DATA payload we send per frame (the format allows 2^24-1). */
export const MAX_DATA_CHUNK = 32 * 1024;
const MAX_FRAME_LENGTH = 0xffffff;

// The SPDY/3 header dictionary (draft-mbelshe-httpbis-spdy-00 section 2.6.10.1):
// length-prefixed words, then a run of plain text.
const DICT_WORDS = [
  'options', 'head', 'post', 'put', 'delete', 'trace', 'accept', 'accept-charset', 'accept-encoding',
  'accept-language', 'accept-ranges', 'age', 'allow', 'authorization', 'cache-control', 'connection',
  'content-base', 'content-encoding', 'content-language', 'content-length', 'content-location', 'content-md5',
  'content-range', 'content-type', 'date', 'etag', 'expect', 'expires', 'from', 'host', 'if-match',
  'if-modified-since', 'if-none-match', 'if-range', 'if-unmodified-since', 'last-modified', 'location',
  'max-forwards', 'pragma', 'proxy-authenticate', 'proxy-authorization', 'range', 'referer', 'retry-after',
  'server', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'user-agent', 'vary', 'via', 'warning',
  'www-authenticate', 'method', 'get', 'status', '200 OK', 'version', 'HTTP/1.1', 'url', 'public',
  'set-cookie', 'keep-alive', 'origin',
];
const DICT_TAIL =
  '100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505' +
  '203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request401 Unauthorized' +
  '403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented503 Service Unavailable' +
  'Jan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMT' +
  'chunked,text/html,image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,' +
  'text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.';

export const HEADER_DICTIONARY: Buffer = Buffer.concat([
  ...DICT_WORDS.map((w) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(w.length);
    return Buffer.concat([len, Buffer.from(w, 'latin1')]);
  }),
  Buffer.from(DICT_TAIL, 'latin1'),
]);

export function adler32(buf: Buffer): number {
  let a = 1;
  let b = 0;
  for (const x of buf) {
    a = (a + x) % 65521;
    b = (b + a) % 65521;
  }
  return ((b << 16) | a) >>> 0;
}

export type Frame =
  | { kind: 'data'; streamId: number; flags: number; data: Buffer }
  | { kind: 'control'; version: number; type: number; flags: number; payload: Buffer };

/** Splits a byte stream into frames; push chunks in order. */
export class FrameParser {
  private buf: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): Frame[] {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    const out: Frame[] = [];
    while (this.buf.length >= 8) {
      const len = this.buf.readUInt32BE(4) & 0xffffff;
      if (this.buf.length < 8 + len) break;
      const first = this.buf.readUInt32BE(0);
      const flags = this.buf[4]!;
      const payload = this.buf.subarray(8, 8 + len);
      if (first & 0x80000000) {
        out.push({ kind: 'control', version: (first >>> 16) & 0x7fff, type: first & 0xffff, flags, payload });
      } else {
        out.push({ kind: 'data', streamId: first & 0x7fffffff, flags, data: payload });
      }
      this.buf = this.buf.subarray(8 + len);
    }
    return out;
  }
}

export function encodeData(streamId: number, data: Buffer, fin: boolean): Buffer {
  if (data.length > MAX_FRAME_LENGTH) throw new NodeletError('SPDY_FRAME_TOO_LARGE', `data frame of ${data.length} bytes`);
  const head = Buffer.alloc(8);
  head.writeUInt32BE(streamId & 0x7fffffff, 0);
  head.writeUInt32BE(((fin ? FLAG_FIN : 0) << 24) | data.length, 4);
  return Buffer.concat([head, data]);
}

export function encodeControl(type: number, flags: number, payload: Buffer): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt16BE(0x8000 | SPDY_VERSION, 0);
  head.writeUInt16BE(type, 2);
  head.writeUInt32BE(((flags & 0xff) << 24) | payload.length, 4);
  return Buffer.concat([head, payload]);
}

export function encodeRstStream(streamId: number, status: number): Buffer {
  const p = Buffer.alloc(8);
  p.writeUInt32BE(streamId & 0x7fffffff, 0);
  p.writeUInt32BE(status, 4);
  return encodeControl(TYPE_RST_STREAM, 0, p);
}

export function encodePing(id: number): Buffer {
  const p = Buffer.alloc(4);
  p.writeUInt32BE(id >>> 0, 0);
  return encodeControl(TYPE_PING, 0, p);
}

export function encodeGoAway(lastGoodStreamId: number, status = 0): Buffer {
  const p = Buffer.alloc(8);
  p.writeUInt32BE(lastGoodStreamId & 0x7fffffff, 0);
  p.writeUInt32BE(status, 4);
  return encodeControl(TYPE_GOAWAY, 0, p);
}

/** SPDY header map: lowercase names; a value list travels NUL-joined. */
export type SpdyHeaders = Map<string, string[]>;

export function encodeHeaderBlock(headers: SpdyHeaders): Buffer {
  const parts: Buffer[] = [];
  const count = Buffer.alloc(4);
  count.writeUInt32BE(headers.size);
  parts.push(count);
  for (const [name, values] of headers) {
    for (const s of [name.toLowerCase(), values.join('\0')]) {
      const b = Buffer.from(s, 'utf8');
      const len = Buffer.alloc(4);
      len.writeUInt32BE(b.length);
      parts.push(len, b);
    }
  }
  return Buffer.concat(parts);
}

export function decodeHeaderBlock(block: Buffer): SpdyHeaders {
  const bad = () => new NodeletError('SPDY_BAD_HEADERS', 'malformed SPDY header block');
  if (block.length < 4) throw bad();
  const n = block.readUInt32BE(0);
  if (n > 1000) throw bad();
  let off = 4;
  const readString = (): string => {
    if (off + 4 > block.length) throw bad();
    const len = block.readUInt32BE(off);
    off += 4;
    if (off + len > block.length) throw bad();
    const s = block.subarray(off, off + len).toString('utf8');
    off += len;
    return s;
  };
  const out: SpdyHeaders = new Map();
  for (let i = 0; i < n; i++) {
    const name = readString().toLowerCase();
    const values = readString().split('\0');
    out.set(name, [...(out.get(name) ?? []), ...values]);
  }
  return out;
}

/** Writes header blocks as stored deflate blocks of one zlib stream (see the top of the file), each ended like a sync flush. */
export class HeaderWriter {
  private started = false;

  compress(block: Buffer): Buffer {
    const parts: Buffer[] = [];
    if (!this.started) {
      this.started = true;
      const h = Buffer.alloc(6);
      h[0] = 0x78; // deflate, 32 KiB window
      let flg = 0x20 | (3 << 6); // FDICT, best compression
      flg += 31 - ((0x78 * 256 + flg) % 31);
      h[1] = flg;
      h.writeUInt32BE(adler32(HEADER_DICTIONARY), 2);
      parts.push(h);
    }
    for (let off = 0; off < block.length; off += 0xffff) {
      const piece = block.subarray(off, off + 0xffff);
      const bh = Buffer.alloc(5);
      bh[0] = 0; // BFINAL=0, BTYPE=00 (stored)
      bh.writeUInt16LE(piece.length, 1);
      bh.writeUInt16LE(~piece.length & 0xffff, 3);
      parts.push(bh, piece);
    }
    // End with an empty stored block, as a zlib sync flush does: Go's inflater
    // hands out a block's bytes only when it reaches the next block header, and
    // without one it would read past the frame and fail for good.
    parts.push(Buffer.from([0x00, 0x00, 0x00, 0xff, 0xff]));
    return Buffer.concat(parts);
  }
}

/** Inflates the peer's header blocks with the connection's one zlib stream. */
export class HeaderReader {
  private readonly inflater = zlib.createInflate({ dictionary: HEADER_DICTIONARY });
  private failed: Error | undefined;

  constructor() {
    this.inflater.on('error', (err) => {
      this.failed = err;
    });
  }

  inflate(compressed: Buffer): Promise<Buffer> {
    if (this.failed) return Promise.reject(this.failed);
    return new Promise((resolve, reject) => {
      const out: Buffer[] = [];
      const onData = (c: Buffer) => out.push(c);
      const onError = (err: Error) => {
        this.inflater.off('data', onData);
        reject(new NodeletError('SPDY_BAD_HEADERS', 'cannot inflate a SPDY header block', { cause: err }));
      };
      this.inflater.on('data', onData);
      this.inflater.once('error', onError);
      this.inflater.write(compressed);
      this.inflater.flush(zlib.constants.Z_SYNC_FLUSH, () => {
        this.inflater.off('data', onData);
        this.inflater.off('error', onError);
        resolve(Buffer.concat(out));
      });
    });
  }

  close(): void {
    this.inflater.destroy();
  }
}

/** What a connection needs from its transport (a TLS socket in production). */
export interface Transport {
  write(buf: Buffer): boolean;
  on(event: 'data', fn: (chunk: Buffer) => void): unknown;
  on(event: 'drain' | 'close' | 'end', fn: () => void): unknown;
  on(event: 'error', fn: (err: Error) => void): unknown;
  once(event: 'drain', fn: () => void): unknown;
  end(): unknown;
  destroy(): unknown;
}

/**
 * One stream of a connection, opened by the peer. Readable: the peer's DATA
 * (ends at its FIN or RST). Writable: our DATA; end() sends FIN.
 */
export class SpdyStream extends Duplex {
  readonly id: number;
  readonly headers: SpdyHeaders;
  private readonly conn: SpdyConnection;
  /** We sent FIN or RST, or the connection is gone: nothing more goes out. */
  private localDone = false;
  private remoteDone = false;

  constructor(conn: SpdyConnection, id: number, headers: SpdyHeaders) {
    super({ allowHalfOpen: true });
    this.conn = conn;
    this.id = id;
    this.headers = headers;
  }

  /** First value of header `name` (lowercase), '' when absent. */
  header(name: string): string {
    return this.headers.get(name.toLowerCase())?.[0] ?? '';
  }

  override _read(): void {
    // Data is pushed as frames arrive (no flow control to apply).
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    if (this.localDone) return cb();
    this.conn.sendData(this.id, chunk, false, cb);
  }

  /**
   * Chunks that queued up while the connection was blocked go out as one
   * frame (up to MAX_DATA_CHUNK each): a relay that reads a few KiB at a time
   * would otherwise cost the API server and kubectl one frame per read.
   */
  override _writev(chunks: Array<{ chunk: Buffer }>, cb: (err?: Error | null) => void): void {
    if (this.localDone) return cb();
    this.conn.sendData(this.id, chunks.length === 1 ? chunks[0]!.chunk : Buffer.concat(chunks.map((c) => c.chunk)), false, cb);
  }

  override _final(cb: (err?: Error | null) => void): void {
    if (this.localDone) return cb();
    this.localDone = true;
    this.conn.sendData(this.id, Buffer.alloc(0), true, cb);
  }

  /** Sends RST_STREAM (CANCEL by default) and ends both directions. */
  reset(status = RST_CANCEL): void {
    if (!this.localDone) {
      this.localDone = true;
      this.conn.sendRaw(encodeRstStream(this.id, status));
    }
    this.remoteEnd();
    this.destroy();
  }

  /** @internal DATA from the peer. */
  remoteData(data: Buffer): void {
    if (!this.remoteDone && data.length) this.push(data);
  }

  /** @internal The peer's FIN, its RST, or the connection going away. */
  remoteEnd(): void {
    if (this.remoteDone) return;
    this.remoteDone = true;
    this.push(null);
  }

  /**
   * @internal The peer reset the stream or the connection is gone: nothing more
   * goes out; readers still see 'end' (then 'close') after what already arrived.
   */
  abandon(): void {
    this.localDone = true;
    this.remoteEnd();
    if (!this.writableEnded) this.end();
  }
}

export interface SpdyConnectionOptions {
  /**
   * A new stream from the peer. Return false (or throw) to refuse it with
   * RST_STREAM; otherwise it gets its SYN_REPLY right away.
   */
  onStream(stream: SpdyStream): boolean;
  /** Protocol or transport trouble, for logging; the connection closes itself. */
  onError?(err: Error): void;
  /** How long close() leaves the transport to the peer before ending it (default CLOSE_GRACE_MS). */
  closeGraceMs?: number;
}

/** See SpdyConnection.close(). */
export const CLOSE_GRACE_MS = 5_000;

/** The server side of one SPDY/3.1 connection. Emits 'close' once. */
export class SpdyConnection {
  private readonly transport: Transport;
  private readonly opts: SpdyConnectionOptions;
  private readonly parser = new FrameParser();
  private readonly headerReader = new HeaderReader();
  private readonly headerWriter = new HeaderWriter();
  private readonly streams = new Map<number, SpdyStream>();
  private chain: Promise<void> = Promise.resolve();
  private lastStreamId = 0;
  private closed = false;
  /** close() was called: the peer has GOAWAY and is expected to close the transport. */
  private closing = false;
  private goneAway = false;
  private readonly closeListeners: Array<() => void> = [];
  /** Writers waiting for the transport to drain. */
  private waiting: Array<() => void> = [];
  private blocked = false;

  constructor(transport: Transport, opts: SpdyConnectionOptions) {
    this.transport = transport;
    this.opts = opts;
    transport.on('data', (chunk) => this.onBytes(chunk));
    transport.on('drain', () => this.onDrain());
    transport.on('end', () => this.shutdown());
    transport.on('close', () => this.shutdown());
    transport.on('error', (err) => {
      this.opts.onError?.(err);
      this.shutdown();
    });
  }

  get isClosed(): boolean {
    return this.closed;
  }

  onClose(fn: () => void): void {
    if (this.closed) fn();
    else this.closeListeners.push(fn);
  }

  /** Bytes that arrived with the upgrade request, before the socket was ours. */
  feed(chunk: Buffer): void {
    if (chunk.length) this.onBytes(chunk);
  }

  /**
   * Resets every open stream and says GOAWAY (what spdystream's Close does),
   * then leaves closing the transport to the peer, for up to closeGraceMs.
   * A client on spdystream closes it by itself once its streams are gone,
   * which is after it has handled each stream's frames up to the reset; a
   * FIN from us first can lose those: its read loop drops the frames it has
   * queued but not handled when it sees EOF (a command's last output, or the
   * exit status on the error stream, which then reads as success).
   * A server shutting down passes 0.
   */
  close(graceMs = this.opts.closeGraceMs ?? CLOSE_GRACE_MS): void {
    if (this.closed || this.closing) return;
    this.closing = true;
    for (const s of this.streams.values()) s.reset(RST_CANCEL);
    if (!this.goneAway) {
      this.goneAway = true;
      this.sendRaw(encodeGoAway(this.lastStreamId));
    }
    const grace = setTimeout(() => {
      this.transport.end();
      // Give the peer a moment to read what was sent, then make sure it is gone.
      setTimeout(() => {
        this.transport.destroy();
        this.shutdown();
      }, 1000).unref();
    }, graceMs);
    grace.unref();
    this.onClose(() => {
      clearTimeout(grace);
      this.transport.destroy();
    });
  }

  /** @internal */
  sendRaw(buf: Buffer): boolean {
    if (this.closed) return true;
    const ok = this.transport.write(buf);
    if (!ok) this.blocked = true;
    return ok;
  }

  /** @internal Writes DATA frames; cb runs once the transport can take more. */
  sendData(streamId: number, data: Buffer, fin: boolean, cb: (err?: Error | null) => void): void {
    if (this.closed) return cb();
    if (data.length === 0) this.sendRaw(encodeData(streamId, data, fin));
    for (let off = 0; off < data.length; off += MAX_DATA_CHUNK) {
      const piece = data.subarray(off, off + MAX_DATA_CHUNK);
      this.sendRaw(encodeData(streamId, piece, fin && off + MAX_DATA_CHUNK >= data.length));
    }
    if (this.blocked && !this.closed) this.waiting.push(() => cb());
    else cb();
  }

  private onDrain(): void {
    this.blocked = false;
    const w = this.waiting;
    this.waiting = [];
    for (const fn of w) fn();
  }

  private onBytes(chunk: Buffer): void {
    if (this.closed) return;
    let frames: Frame[];
    try {
      frames = this.parser.push(chunk);
    } catch (err) {
      this.fail(err as Error);
      return;
    }
    for (const f of frames) {
      this.chain = this.chain.then(() => this.handle(f)).catch((err: Error) => this.fail(err));
    }
  }

  private fail(err: Error): void {
    if (this.closed) return;
    this.opts.onError?.(err);
    this.sendRaw(encodeGoAway(this.lastStreamId, 1));
    this.transport.destroy();
    this.shutdown();
  }

  private async handle(f: Frame): Promise<void> {
    if (this.closed) return;
    if (f.kind === 'data') {
      const s = this.streams.get(f.streamId);
      if (!s) return; // already gone: spdystream drops these too
      s.remoteData(f.data);
      if (f.flags & FLAG_FIN) this.remoteFinished(s);
      return;
    }
    const p = f.payload;
    switch (f.type) {
      case TYPE_SYN_STREAM: {
        if (p.length < 10) throw new NodeletError('SPDY_PROTOCOL', 'short SYN_STREAM');
        const id = p.readUInt32BE(0) & 0x7fffffff;
        const headers = decodeHeaderBlock(await this.headerReader.inflate(p.subarray(10)));
        if (id === 0 || id % 2 === 0 || id <= this.lastStreamId) {
          this.sendRaw(encodeRstStream(id, RST_PROTOCOL_ERROR));
          return;
        }
        this.lastStreamId = id;
        if (this.goneAway) {
          this.sendRaw(encodeRstStream(id, RST_REFUSED_STREAM));
          return;
        }
        const s = new SpdyStream(this, id, headers);
        this.streams.set(id, s);
        s.on('close', () => this.streams.delete(id));
        s.on('error', () => undefined);
        let accept = false;
        try {
          accept = this.opts.onStream(s);
        } catch (err) {
          this.opts.onError?.(err as Error);
        }
        if (!accept) {
          s.reset(RST_REFUSED_STREAM);
          return;
        }
        const idBuf = Buffer.alloc(4);
        idBuf.writeUInt32BE(id);
        this.sendRaw(encodeControl(TYPE_SYN_REPLY, 0, Buffer.concat([idBuf, this.headerWriter.compress(encodeHeaderBlock(new Map()))])));
        if (f.flags & FLAG_FIN) this.remoteFinished(s);
        return;
      }
      case TYPE_SYN_REPLY:
      case TYPE_HEADERS: {
        // Never expected (we open no streams), but the inflater must see every block.
        if (p.length >= 4) await this.headerReader.inflate(p.subarray(4));
        const s = this.streams.get(p.readUInt32BE(0) & 0x7fffffff);
        if (s && f.flags & FLAG_FIN) this.remoteFinished(s);
        return;
      }
      case TYPE_RST_STREAM: {
        const s = this.streams.get(p.readUInt32BE(0) & 0x7fffffff);
        s?.abandon();
        return;
      }
      case TYPE_PING: {
        const id = p.readUInt32BE(0);
        // Odd ids come from the client; echo them. Even ones would answer our pings (we send none).
        if (id % 2 === 1) this.sendRaw(encodePing(id));
        return;
      }
      case TYPE_GOAWAY: {
        // The peer opens no more streams; the ones running finish on their own.
        this.goneAway = true;
        return;
      }
      default:
        return; // SETTINGS, WINDOW_UPDATE, unknown: nothing to do (no flow control)
    }
  }

  private remoteFinished(s: SpdyStream): void {
    s.remoteEnd();
  }

  private shutdown(): void {
    if (this.closed) return;
    this.closed = true;
    for (const s of this.streams.values()) s.abandon();
    this.streams.clear();
    this.headerReader.close();
    this.onDrain();
    for (const fn of this.closeListeners.splice(0)) fn();
  }
}
