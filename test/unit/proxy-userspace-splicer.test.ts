// The native splice relay (proxy/userspace/splice/splice.c, built by `make
// deps`) on real loopback sockets: client <-> [a | relay | b] <-> server,
// where a and b are the proxy's two paused sockets, as socket.ts hands them
// over. Waits are bounded; no assertion is on time.
import { expect } from 'chai';
import { createHash, randomBytes } from 'node:crypto';
import net from 'node:net';
import { ECANCELED, loadSplicer, type Splicer, socketFd } from '../../proxy/userspace/splicer.ts';

const WAIT_MS = 5000;

function within<T>(p: Promise<T>, what: string): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    t = setTimeout(() => reject(new Error(`${what}: nothing in ${WAIT_MS} ms`)), WAIT_MS);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(t));
}

interface Relayed {
  client: net.Socket;
  server: net.Socket;
  a: net.Socket;
  b: net.Socket;
  id: number;
  done: Promise<{ errno: number; aToB: number; bToA: number }>;
  close(): void;
}

/** Two loopback connections (client-a, b-server) with a and b paused, relayed by the splicer. */
async function relayed(splicer: Splicer): Promise<Relayed> {
  const front = net.createServer({ pauseOnConnect: true, allowHalfOpen: true });
  const back = net.createServer({ allowHalfOpen: true });
  for (const s of [front, back]) await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s: net.Server) => (s.address() as net.AddressInfo).port;
  const accepted = (s: net.Server) => new Promise<net.Socket>((r) => s.once('connection', r));
  const aP = accepted(front);
  const serverP = accepted(back);
  const client = net.connect({ host: '127.0.0.1', port: port(front), allowHalfOpen: true });
  const b = net.connect({ host: '127.0.0.1', port: port(back), allowHalfOpen: true });
  b.pause();
  await within(new Promise((r) => b.once('connect', r)), 'connect b');
  const [a, server] = await within(Promise.all([aP, serverP]), 'accept');
  for (const s of [client, server, a, b]) s.on('error', () => {});
  let id = 0;
  const done = new Promise<{ errno: number; aToB: number; bToA: number }>((resolve) => {
    id = splicer.start(socketFd(a)!, socketFd(b)!, (errno, aToB, bToA) => {
      a.destroy();
      b.destroy();
      resolve({ errno, aToB, bToA });
    });
  });
  return {
    client,
    server,
    a,
    b,
    id,
    done: within(done, 'relay done'),
    close: () => {
      for (const s of [client, server, a, b]) s.destroy();
      front.close();
      back.close();
    },
  };
}

/** Everything a socket receives until its peer's FIN, as a hash and a length. */
function drain(s: net.Socket): Promise<{ sha: string; bytes: number }> {
  const h = createHash('sha256');
  let bytes = 0;
  return within(
    new Promise((resolve, reject) => {
      s.on('data', (d: Buffer) => {
        h.update(d);
        bytes += d.length;
      });
      s.once('end', () => resolve({ sha: h.digest('hex'), bytes }));
      s.once('error', reject);
    }),
    'drain',
  );
}

/** Writes data in 64 KiB pieces, honouring backpressure, then ends the socket's writes. */
async function send(s: net.Socket, data: Buffer): Promise<void> {
  for (let off = 0; off < data.length; off += 65536) {
    if (!s.write(data.subarray(off, off + 65536))) await new Promise((r) => s.once('drain', r));
  }
  s.end();
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('proxy userspace splice relay (native, real loopback sockets)', () => {
  let splicer: Splicer;
  const open: Relayed[] = [];

  before(() => {
    const r = loadSplicer();
    if (!r.splicer) throw new Error(`the splice relay is not built (make deps builds it): ${r.error}`);
    splicer = r.splicer;
  });

  afterEach(() => {
    for (const r of open.splice(0)) r.close();
  });

  async function pair(): Promise<Relayed> {
    const r = await relayed(splicer);
    open.push(r);
    return r;
  }

  it('moves 8 MiB each way at once, intact, and passes each half-close on', async () => {
    const r = await pair();
    const up = randomBytes(8 << 20);
    const down = randomBytes(8 << 20);
    const atServer = drain(r.server);
    const atClient = drain(r.client);
    await Promise.all([send(r.client, up), send(r.server, down)]);
    expect(await atServer).to.deep.equal({ sha: sha(up), bytes: up.length });
    expect(await atClient).to.deep.equal({ sha: sha(down), bytes: down.length });
    expect(await r.done).to.deep.equal({ errno: 0, aToB: up.length, bToA: down.length });
  });

  it('one side half-closed: the other direction keeps flowing until it ends too', async () => {
    const r = await pair();
    const atServer = drain(r.server);
    r.client.end('ask');
    expect((await atServer).bytes).to.equal(3);
    // The client's FIN reached the server, and the server can still answer.
    const atClient = drain(r.client);
    r.server.end('answer');
    expect((await atClient).bytes).to.equal(6);
    expect(await r.done).to.deep.equal({ errno: 0, aToB: 3, bToA: 6 });
  });

  it('a reset on one side ends both: the other peer sees its input end', async () => {
    const r = await pair();
    // Half-open sockets: the peer sees the end of its input ('end'), then decides itself.
    const clientEnded = within(new Promise<void>((res) => r.client.once('end', () => res())), 'client end');
    r.client.resume();
    r.server.resetAndDestroy();
    await clientEnded;
    const { errno } = await r.done;
    expect(errno).to.not.equal(0);
  });

  it('a reset on a side that no direction waits on (its input already ended) still ends the relay', async () => {
    const r = await pair();
    const atServer = drain(r.server);
    r.client.end('bye');
    expect((await atServer).bytes).to.equal(3);
    // The relay now waits only for the server; the client's reset must not leave it waiting (or spinning).
    r.client.resetAndDestroy();
    expect((await r.done).errno).to.not.equal(0);
  });

  it('abort ends a live relay: done says ECANCELED and both peers see their input end', async () => {
    const r = await pair();
    const ended = (s: net.Socket) => within(new Promise<void>((res) => s.once('end', () => res())), 'peer end');
    const both = Promise.all([ended(r.client), ended(r.server)]);
    r.client.resume();
    r.server.resume();
    splicer.abort(r.id);
    expect((await r.done).errno).to.equal(ECANCELED);
    await both;
    splicer.abort(r.id); // an ended id is ignored
  });

  it('50 relays at once each carry their own bytes', async () => {
    const rs = await Promise.all(Array.from({ length: 50 }, () => pair()));
    const payloads = rs.map(() => randomBytes(100_000));
    const got = rs.map((r) => drain(r.server));
    await Promise.all(rs.map((r, i) => send(r.client, payloads[i]!)));
    const hashes = await Promise.all(got);
    hashes.forEach((h, i) => expect(h.sha).to.equal(sha(payloads[i]!)));
    for (const r of rs) r.server.end();
    const dones = await Promise.all(rs.map((r) => r.done));
    dones.forEach((d, i) => expect(d).to.deep.equal({ errno: 0, aToB: payloads[i]!.length, bToA: 0 }));
  });

  it('start with a closed fd throws a coded error and leaves nothing running', () => {
    expect(() => splicer.start(1_000_000, 1_000_001, () => {})).to.throw(/splice start/);
  });

  it('loadSplicer says why when the relay is not there, without throwing', () => {
    const r = loadSplicer('/nonexistent/splice.node');
    expect(r.splicer).to.equal(undefined);
    expect(r.error).to.match(/\/nonexistent\/splice\.node/);
  });

  it('socketFd: a connected socket has one, an unconnected socket has none', async () => {
    const r = await pair();
    expect(socketFd(r.a)).to.be.a('number');
    expect(socketFd(new net.Socket())).to.equal(undefined);
  });
});
