// Test helper: the client side of a SpdyConnection, compressing its headers
// the way Go's framer does (zlib, SPDY dictionary, one sync flush per block).
import { PassThrough } from 'node:stream';
import zlib from 'node:zlib';
import {
  decodeHeaderBlock,
  encodeControl,
  encodeData,
  encodeHeaderBlock,
  FLAG_FIN,
  FrameParser,
  HEADER_DICTIONARY,
  type Frame,
  type Transport,
  TYPE_RST_STREAM,
  TYPE_SYN_REPLY,
  TYPE_SYN_STREAM,
} from '../../agent/server/spdy.ts';

/** The peer of a SpdyConnection: writes frames in, parses what comes out. */
export class TestClient {
  readonly toServer = new PassThrough();
  readonly fromServer = new PassThrough();
  readonly frames: Frame[] = [];
  private readonly parser = new FrameParser();
  private readonly deflate = zlib.createDeflate({ dictionary: HEADER_DICTIONARY, level: 9 });
  private readonly inflate = zlib.createInflate({ dictionary: HEADER_DICTIONARY });
  private nextId = 1;

  constructor() {
    this.fromServer.on('data', (c: Buffer) => this.frames.push(...this.parser.push(c)));
  }

  /** A Transport for the server side: what it writes reaches us, what we write reaches it. */
  transport(): Transport {
    const self = this;
    const t = {
      write: (buf: Buffer) => self.fromServer.write(buf),
      on: (event: string, fn: (...a: any[]) => void) => {
        if (event === 'data' || event === 'end' || event === 'close' || event === 'error') self.toServer.on(event, fn);
        else self.fromServer.on(event, fn);
        return t;
      },
      once: (event: string, fn: () => void) => self.fromServer.once(event, fn),
      end: () => self.fromServer.end(),
      destroy: () => {
        self.toServer.destroy();
        self.fromServer.destroy();
      },
    };
    return t as unknown as Transport;
  }

  compress(block: Buffer): Promise<Buffer> {
    return new Promise((resolve) => {
      const out: Buffer[] = [];
      const on = (c: Buffer) => out.push(c);
      this.deflate.on('data', on);
      this.deflate.write(block);
      this.deflate.flush(zlib.constants.Z_SYNC_FLUSH, () => {
        this.deflate.off('data', on);
        resolve(Buffer.concat(out));
      });
    });
  }

  inflateHeaders(compressed: Buffer): Promise<Map<string, string[]>> {
    return new Promise((resolve, reject) => {
      const out: Buffer[] = [];
      const on = (c: Buffer) => out.push(c);
      this.inflate.on('data', on);
      this.inflate.once('error', reject);
      this.inflate.write(compressed);
      this.inflate.flush(zlib.constants.Z_SYNC_FLUSH, () => {
        this.inflate.off('data', on);
        resolve(decodeHeaderBlock(Buffer.concat(out)));
      });
    });
  }

  async openStream(headers: Record<string, string>, fin = false): Promise<number> {
    const id = this.nextId;
    this.nextId += 2;
    const head = Buffer.alloc(10);
    head.writeUInt32BE(id, 0);
    const block = await this.compress(encodeHeaderBlock(new Map(Object.entries(headers).map(([k, v]) => [k, [v]]))));
    this.toServer.write(encodeControl(TYPE_SYN_STREAM, fin ? FLAG_FIN : 0, Buffer.concat([head, block])));
    return id;
  }

  send(id: number, data: string | Buffer, fin = false): void {
    this.toServer.write(encodeData(id, Buffer.from(data), fin));
  }

  control(type: number): Array<Extract<Frame, { kind: 'control' }>> {
    return this.frames.filter((f): f is Extract<Frame, { kind: 'control' }> => f.kind === 'control' && f.type === type);
  }

  /** Bytes the server sent on stream id, and whether it sent FIN. */
  received(id: number): { data: string; fin: boolean } {
    let data = '';
    let fin = false;
    for (const f of this.frames) {
      if (f.kind === 'data' && f.streamId === id) {
        data += f.data.toString();
        if (f.flags & FLAG_FIN) fin = true;
      }
    }
    return { data, fin };
  }

  replied(id: number): boolean {
    return this.control(TYPE_SYN_REPLY).some((f) => f.payload.readUInt32BE(0) === id);
  }

  resetStatus(id: number): number | undefined {
    const f = this.control(TYPE_RST_STREAM).find((x) => x.payload.readUInt32BE(0) === id);
    return f?.payload.readUInt32BE(4);
  }
}


/** Waits (event-loop turns, bounded) until cond holds; zlib work finishes off the main thread. */
export async function until(cond: () => boolean, what = 'condition'): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise<void>((r) => setTimeout(r, 2));
  }
}
