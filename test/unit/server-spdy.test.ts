// SPDY/3.1 framing and the server connection, driven by a small client that
// compresses its headers the way Go's framer does.
import { expect } from 'chai';
import {
  adler32,
  decodeHeaderBlock,
  encodeControl,
  encodeData,
  encodeHeaderBlock,
  encodePing,
  FLAG_FIN,
  FrameParser,
  HEADER_DICTIONARY,
  HeaderWriter,
  SpdyConnection,
  type Frame,
  type SpdyStream,
  TYPE_GOAWAY,
  TYPE_PING,
  TYPE_RST_STREAM,
  TYPE_SYN_REPLY,
} from '../../agent/server/spdy.ts';
import { settle } from '../fakes/clock.ts';
import { TestClient, until } from './server-spdy-client.ts';

describe('server/spdy', () => {
  it('builds the SPDY/3 header dictionary (1423 bytes, adler32 e3c6a7c2)', () => {
    expect(HEADER_DICTIONARY.length).to.equal(1423);
    expect(adler32(HEADER_DICTIONARY).toString(16)).to.equal('e3c6a7c2');
    expect(adler32(Buffer.from('Wikipedia'))).to.equal(0x11e60398);
  });

  it('parses frames split across chunks and several per chunk', () => {
    const bytes = Buffer.concat([encodeData(3, Buffer.from('hello'), false), encodePing(7), encodeData(5, Buffer.alloc(0), true)]);
    const p = new FrameParser();
    const got: Frame[] = [];
    for (let i = 0; i < bytes.length; i += 3) got.push(...p.push(bytes.subarray(i, i + 3)));
    expect(got).to.have.length(3);
    expect(got[0]).to.deep.include({ kind: 'data', streamId: 3, flags: 0 });
    expect((got[0] as { data: Buffer }).data.toString()).to.equal('hello');
    expect(got[1]).to.deep.include({ kind: 'control', version: 3, type: TYPE_PING, flags: 0 });
    expect((got[1] as { payload: Buffer }).payload.readUInt32BE(0)).to.equal(7);
    expect(got[2]).to.deep.include({ kind: 'data', streamId: 5, flags: FLAG_FIN });
  });

  it('round-trips header blocks: lowercase names, NUL-joined values', () => {
    const block = encodeHeaderBlock(new Map([['StreamType', ['error']], ['x', ['a', 'b']]]));
    expect([...decodeHeaderBlock(block)]).to.deep.equal([['streamtype', ['error']], ['x', ['a', 'b']]]);
    expect(() => decodeHeaderBlock(Buffer.from([0, 0, 0, 1, 0, 0, 0, 9]))).to.throw(/malformed/);
  });

  it('writes header blocks that one zlib stream with the dictionary reads in turn', async () => {
    const w = new HeaderWriter();
    const c = new TestClient();
    const a = w.compress(encodeHeaderBlock(new Map([['a', ['1']]])));
    const b = w.compress(encodeHeaderBlock(new Map()));
    const big = w.compress(encodeHeaderBlock(new Map([['v', ['x'.repeat(70_000)]]])));
    expect([...(await c.inflateHeaders(a))]).to.deep.equal([['a', ['1']]]);
    expect([...(await c.inflateHeaders(b))]).to.deep.equal([]);
    expect((await c.inflateHeaders(big)).get('v')?.[0]).to.have.length(70_000);
    // Each block ends like a sync flush (an empty stored block).
    expect(b.subarray(-5)).to.deep.equal(Buffer.from([0, 0, 0, 0xff, 0xff]));
  });

  describe('SpdyConnection', () => {
    let client: TestClient;
    let conn: SpdyConnection;
    let streams: SpdyStream[];
    let refuse: boolean;

    beforeEach(() => {
      client = new TestClient();
      streams = [];
      refuse = false;
      conn = new SpdyConnection(client.transport(), {
        onStream: (s) => {
          streams.push(s);
          return !refuse;
        },
      });
    });

    afterEach(() => conn.close());

    it('replies to a new stream, passes data both ways and half-closes with FIN', async () => {
      const id = await client.openStream({ streamType: 'stdout', port: '80' });
      await until(() => client.replied(id));
      expect(client.replied(id)).to.equal(true);
      const s = streams[0]!;
      expect(s.id).to.equal(id);
      expect(s.header('streamtype')).to.equal('stdout');
      expect(s.header('port')).to.equal('80');
      let got = '';
      let ended = false;
      s.on('data', (c: Buffer) => (got += c.toString()));
      s.on('end', () => (ended = true));
      client.send(id, 'ping');
      client.send(id, '', true);
      await until(() => ended);
      expect(got).to.equal('ping');
      expect(ended).to.equal(true);
      s.write('pong');
      s.end();
      await until(() => client.received(id).fin);
      expect(client.received(id)).to.deep.equal({ data: 'pong', fin: true });
    });

    it('splits large writes into frames of at most 32 KiB', async () => {
      const id = await client.openStream({ streamType: 'data' });
      await until(() => client.replied(id));
      streams[0]!.end(Buffer.alloc(100_000, 0x61));
      await until(() => client.received(id).fin);
      const sizes = client.frames.filter((f) => f.kind === 'data').map((f) => (f as { data: Buffer }).data.length);
      expect(sizes.every((n) => n <= 32 * 1024)).to.equal(true);
      expect(client.received(id).data).to.have.length(100_000);
      expect(client.received(id).fin).to.equal(true);
    });

    it('sends writes that queued up meanwhile as one frame', async () => {
      const id = await client.openStream({ streamType: 'data' });
      await until(() => client.replied(id));
      const s = streams[0]!;
      s.cork();
      for (const part of ['a', 'bb', 'ccc']) s.write(part);
      s.uncork();
      await until(() => client.received(id).data === 'abbccc');
      const data = client.frames.filter((f) => f.kind === 'data').map((f) => (f as { data: Buffer }).data.toString());
      expect(data).to.deep.equal(['abbccc']);
    });

    it('keeps the header inflater in step across many streams', async () => {
      for (let i = 0; i < 20; i++) await client.openStream({ streamType: i % 2 ? 'data' : 'error', port: String(8000 + i), requestID: String(i) });
      await until(() => client.control(TYPE_SYN_REPLY).length === 20);
      expect(streams.map((s) => s.header('port'))).to.deep.equal(Array.from({ length: 20 }, (_, i) => String(8000 + i)));
      expect(client.control(TYPE_SYN_REPLY)).to.have.length(20);
    });

    it('refuses a stream the handler rejects with RST_STREAM REFUSED_STREAM', async () => {
      refuse = true;
      const id = await client.openStream({ streamType: 'bogus' });
      await until(() => client.resetStatus(id) !== undefined);
      expect(client.replied(id)).to.equal(false);
      expect(client.resetStatus(id)).to.equal(3);
    });

    it('ends a stream the client resets', async () => {
      const id = await client.openStream({ streamType: 'stdin' });
      await until(() => client.replied(id));
      let ended = false;
      streams[0]!.on('end', () => (ended = true));
      streams[0]!.resume();
      const p = Buffer.alloc(8);
      p.writeUInt32BE(id, 0);
      p.writeUInt32BE(5, 4);
      client.toServer.write(encodeControl(TYPE_RST_STREAM, 0, p));
      await until(() => ended);
      expect(ended).to.equal(true);
    });

    it('echoes client pings', async () => {
      client.toServer.write(encodePing(9));
      await until(() => client.control(TYPE_PING).length > 0);
      expect(client.control(TYPE_PING).map((f) => f.payload.readUInt32BE(0))).to.deep.equal([9]);
    });

    it('close() resets open streams and says GOAWAY with the last stream id', async () => {
      const a = await client.openStream({ streamType: 'error' });
      const b = await client.openStream({ streamType: 'stdout' });
      await until(() => client.replied(b));
      let closed = false;
      conn.onClose(() => (closed = true));
      conn.close();
      await settle();
      expect(client.resetStatus(a)).to.equal(5);
      expect(client.resetStatus(b)).to.equal(5);
      const ga = client.control(TYPE_GOAWAY);
      expect(ga).to.have.length(1);
      expect(ga[0]!.payload.readUInt32BE(0)).to.equal(b);
      client.toServer.end();
      await settle();
      expect(closed).to.equal(true);
    });

    it('close() leaves ending the transport to the peer (a FIN first can make a spdystream client drop frames it has not handled)', async () => {
      const id = await client.openStream({ streamType: 'stdout' });
      await until(() => client.replied(id));
      streams[0]!.write('last output');
      conn.close();
      await settle();
      expect(client.fromServer.writableEnded, 'ended by the server').to.equal(false);
      expect(client.resetStatus(id)).to.equal(5);
      client.toServer.end(); // the peer, done reading, closes
      await settle();
      expect(conn.isClosed).to.equal(true);
      expect(client.fromServer.destroyed).to.equal(true);
    });

    it('close() ends the transport itself after the grace period when the peer does not', async () => {
      const peer = new TestClient();
      const c = new SpdyConnection(peer.transport(), { onStream: () => true, closeGraceMs: 20 });
      c.close();
      await settle();
      expect(peer.fromServer.writableEnded).to.equal(false);
      await until(() => peer.fromServer.writableEnded);
      expect(peer.control(TYPE_GOAWAY)).to.have.length(1);
      peer.toServer.end();
      await settle();
      expect(c.isClosed).to.equal(true);
    });

    it('ignores data for unknown streams and treats a closed transport as the end of every stream', async () => {
      client.send(99, 'stray');
      const id = await client.openStream({ streamType: 'stdout' });
      await until(() => client.replied(id));
      let ended = false;
      streams[0]!.on('end', () => (ended = true));
      streams[0]!.resume();
      client.toServer.end();
      await settle();
      expect(conn.isClosed).to.equal(true);
      expect(ended).to.equal(true);
      expect(id).to.equal(1);
    });
  });
});
