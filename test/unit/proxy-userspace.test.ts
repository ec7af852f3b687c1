// UserspaceProxier with real sockets on loopback only: the proxy listens on
// 127.0.0.1, backends are small servers on 127.0.0.2, 127.0.0.3, ... (all of
// 127.0.0.0/8 is loopback on Linux) that answer with their own name, so one
// port number serves every endpoint of a slice. 127.0.0.9 has nothing
// listening: a dead endpoint. Cluster IPs in 10.96.0.0/16 (RFC 1918) only
// appear in rules, never on the wire. Waits are bounded; no assertion is on
// time. Affinity and UDP idle expiry run on a FakeClock. The TCP cases run
// twice: with the native splice relay (built by `make deps`) and with the JS copy.
import { expect } from 'chai';
import dgram from 'node:dgram';
import net from 'node:net';
import type { V1EndpointSlice, V1Service } from '@kubernetes/client-node';
import { Registry } from 'prom-client';
import { nullLogger } from '../../lib/log.ts';
import { UserspaceProxier, usableEndpoints } from '../../proxy/userspace/proxier.ts';
import { loadSplicer, type Splicer } from '../../proxy/userspace/splicer.ts';
import { FakeClock } from '../fakes/clock.ts';
import { FakeIptables } from '../fakes/iptables.ts';
import { freePort } from '../fakes/net.ts';

const WAIT_MS = 2000;
const KEY = 'ns1/web:http';

function withTimeout<T>(p: Promise<T>, what: string): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    t = setTimeout(() => reject(new Error(`${what}: no answer in ${WAIT_MS} ms`)), WAIT_MS);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(t));
}

interface Backends {
  port: number;
  close(): Promise<void>;
}

/** TCP servers on each ip, same port: read until the client's FIN, then answer "name|what was read" and end. */
async function tcpBackends(ips: string[]): Promise<Backends> {
  const servers: net.Server[] = [];
  const conns = new Set<net.Socket>();
  let port = 0;
  for (const ip of ips) {
    const server = net.createServer({ allowHalfOpen: true }, (sock) => {
      conns.add(sock);
      sock.on('close', () => conns.delete(sock));
      let got = '';
      sock.on('data', (b) => (got += b.toString()));
      sock.on('end', () => sock.end(`${ip}|${got}`));
      sock.on('error', () => sock.destroy());
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: ip, port }, () => resolve());
    });
    port = (server.address() as net.AddressInfo).port;
    servers.push(server);
  }
  return {
    port,
    close: async () => {
      for (const c of conns) c.destroy();
      for (const s of servers) await new Promise<void>((r) => s.close(() => r()));
    },
  };
}

/** UDP servers on each ip, same port, answering each datagram with "name|datagram". */
async function udpBackends(ips: string[]): Promise<Backends> {
  const socks: dgram.Socket[] = [];
  let port = 0;
  for (const ip of ips) {
    const s = dgram.createSocket('udp4');
    s.on('message', (msg, r) => s.send(`${ip}|${msg.toString()}`, r.port, r.address));
    await new Promise<void>((resolve, reject) => {
      s.once('error', reject);
      s.bind({ address: ip, port }, () => resolve());
    });
    port = s.address().port;
    socks.push(s);
  }
  return {
    port,
    close: async () => {
      for (const s of socks) await new Promise<void>((r) => s.close(() => r()));
    },
  };
}

/** Connects, sends `payload`, half-closes, and returns all that comes back before the proxy closes. */
function request(port: number, payload = 'ping'): Promise<string> {
  return withTimeout(
    new Promise<string>((resolve, reject) => {
      const sock = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true });
      let got = '';
      sock.on('data', (b) => (got += b.toString()));
      sock.on('error', reject);
      sock.on('close', () => resolve(got));
      sock.on('connect', () => sock.end(payload));
    }),
    `request to ${port}`,
  );
}

/** Connects and waits for the other side to close; returns what arrived (resets count as closed). */
function closedBy(port: number): Promise<string> {
  return withTimeout(
    new Promise<string>((resolve, reject) => {
      const sock = net.connect({ host: '127.0.0.1', port });
      let got = '';
      let connected = false;
      sock.on('connect', () => (connected = true));
      sock.on('data', (b) => (got += b.toString()));
      sock.on('error', (err: NodeJS.ErrnoException) => (connected && err.code === 'ECONNRESET' ? undefined : reject(err)));
      sock.on('close', () => resolve(got));
    }),
    `connection to ${port}`,
  );
}

function refused(port: number): Promise<string> {
  return withTimeout(
    new Promise<string>((resolve) => {
      const sock = net.connect({ host: '127.0.0.1', port });
      sock.on('connect', () => {
        sock.destroy();
        resolve('connected');
      });
      sock.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'));
    }),
    `connect to ${port}`,
  );
}

function service(opts: { protocol?: 'TCP' | 'UDP'; nodePort?: number; affinitySeconds?: number } = {}): V1Service {
  return {
    metadata: { namespace: 'ns1', name: 'web', resourceVersion: '1' },
    spec: {
      type: opts.nodePort ? 'NodePort' : 'ClusterIP',
      clusterIP: '10.96.0.10',
      ports: [{ name: 'http', port: 80, protocol: opts.protocol ?? 'TCP', ...(opts.nodePort ? { nodePort: opts.nodePort } : {}) }],
      ...(opts.affinitySeconds !== undefined
        ? { sessionAffinity: 'ClientIP', sessionAffinityConfig: { clientIP: { timeoutSeconds: opts.affinitySeconds } } }
        : {}),
    },
  };
}

function slice(ips: string[], port: number, protocol: 'TCP' | 'UDP' = 'TCP'): V1EndpointSlice {
  return {
    addressType: 'IPv4',
    metadata: { namespace: 'ns1', name: 'web-abc', labels: { 'kubernetes.io/service-name': 'web' } },
    ports: [{ name: 'http', port, protocol }],
    endpoints: ips.map((ip) => ({ addresses: [ip], conditions: { ready: true } })),
  };
}

function tally(replies: string[]): Map<string, number> {
  const m = new Map<string, number>();
  for (const r of replies) {
    const who = r.split('|')[0] ?? '';
    m.set(who, (m.get(who) ?? 0) + 1);
  }
  return m;
}

/** Connections handed to the splice relay (so the splice runs show they did not fall back to copying). */
let spliced = 0;
const relays: [string, () => Splicer | undefined][] = [
  [
    'splice relay',
    () => {
      const { splicer, error } = loadSplicer();
      if (!splicer) throw new Error(`the splice relay is not built (make deps builds it): ${error}`);
      return {
        start: (a, b, done) => {
          spliced++;
          return splicer.start(a, b, done);
        },
        abort: (id) => splicer.abort(id),
      };
    },
  ],
  ['JS copy', () => undefined],
];

for (const [relayName, relay] of relays)
describe(`proxy UserspaceProxier (real sockets on loopback, ${relayName})`, () => {
  let clock: FakeClock;
  let proxier: UserspaceProxier;
  let backends: Backends | undefined;
  let ipt: FakeIptables | undefined;

  function make(withIptables = false): UserspaceProxier {
    ipt = withIptables ? new FakeIptables() : undefined;
    return new UserspaceProxier(
      { nodeName: 'node-a', listenAddress: '127.0.0.1', hostIP: '127.0.0.1', minSyncPeriodMs: 10 },
      { iptables: ipt, clock, log: nullLogger(), registry: new Registry(), splicer: relay() },
    );
  }

  async function sync(): Promise<void> {
    expect(await proxier.syncProxyRules()).to.equal(true);
  }

  function proxyPort(): number {
    const p = proxier.proxyPort(KEY);
    if (p === undefined) throw new Error(`${KEY} has no proxy port`);
    return p;
  }

  beforeEach(() => {
    spliced = 0;
    clock = new FakeClock();
    proxier = make();
  });

  afterEach(async () => {
    await proxier.stop();
    await backends?.close();
    backends = undefined;
  });

  it('round robin reaches every endpoint over 30 connections, and bytes go both ways with half-close', async () => {
    backends = await tcpBackends(['127.0.0.2', '127.0.0.3', '127.0.0.4']);
    proxier.onServiceAdd(service());
    proxier.onSliceAdd(slice(['127.0.0.2', '127.0.0.3', '127.0.0.4'], backends.port));
    await sync();
    const replies: string[] = [];
    for (let i = 0; i < 30; i++) replies.push(await request(proxyPort(), `ping${i}`));
    replies.forEach((r, i) => expect(r).to.match(new RegExp(`^127\\.0\\.0\\.[234]\\|ping${i}$`)));
    // Strict round robin over a fixed list: each endpoint exactly 10 times.
    expect([...tally(replies).entries()].sort()).to.deep.equal([
      ['127.0.0.2', 10],
      ['127.0.0.3', 10],
      ['127.0.0.4', 10],
    ]);
    expect(spliced).to.equal(relayName === 'splice relay' ? 30 : 0);
  });

  it('ClientIP affinity sticks to one endpoint until the timeout passes', async () => {
    backends = await tcpBackends(['127.0.0.2', '127.0.0.3']);
    proxier.onServiceAdd(service({ affinitySeconds: 60 }));
    proxier.onSliceAdd(slice(['127.0.0.2', '127.0.0.3'], backends.port));
    await sync();
    const first: string[] = [];
    for (let i = 0; i < 8; i++) first.push(await request(proxyPort()));
    expect(tally(first).size).to.equal(1);
    await clock.advance(61_000);
    const after = await request(proxyPort());
    expect(after.split('|')[0]).to.not.equal(first[0]?.split('|')[0]);
  });

  it('a dead endpoint is skipped: the next one is dialled', async () => {
    backends = await tcpBackends(['127.0.0.2', '127.0.0.3']);
    proxier.onServiceAdd(service());
    proxier.onSliceAdd(slice(['127.0.0.2', '127.0.0.9', '127.0.0.3'], backends.port));
    await sync();
    const replies: string[] = [];
    for (let i = 0; i < 12; i++) replies.push(await request(proxyPort()));
    const t = tally(replies);
    expect([...t.keys()].sort()).to.deep.equal(['127.0.0.2', '127.0.0.3']);
  });

  it('no endpoints: the connection is closed at once, without data', async () => {
    proxier.onServiceAdd(service());
    await sync();
    expect(await closedBy(proxyPort())).to.equal('');
    expect(proxier.active(KEY)).to.equal(0);
  });

  it('endpoint changes take effect for new connections', async () => {
    backends = await tcpBackends(['127.0.0.2', '127.0.0.3']);
    proxier.onServiceAdd(service());
    const s1 = slice(['127.0.0.2'], backends.port);
    proxier.onSliceAdd(s1);
    await sync();
    expect(await request(proxyPort())).to.equal('127.0.0.2|ping');
    proxier.onSliceUpdate(s1, slice(['127.0.0.3'], backends.port));
    await sync();
    for (let i = 0; i < 3; i++) expect(await request(proxyPort())).to.equal('127.0.0.3|ping');
  });

  it('removing the service closes its port', async () => {
    backends = await tcpBackends(['127.0.0.2']);
    const svc = service();
    proxier.onServiceAdd(svc);
    proxier.onSliceAdd(slice(['127.0.0.2'], backends.port));
    await sync();
    const port = proxyPort();
    expect(await request(port)).to.equal('127.0.0.2|ping');
    proxier.onServiceDelete(svc);
    await sync();
    expect(proxier.proxyPort(KEY)).to.equal(undefined);
    expect(await refused(port)).to.equal('ECONNREFUSED');
  });

  it('an open connection outlives the removal of its service (as upstream)', async () => {
    backends = await tcpBackends(['127.0.0.2']);
    const svc = service();
    proxier.onServiceAdd(svc);
    proxier.onSliceAdd(slice(['127.0.0.2'], backends.port));
    await sync();
    const port = proxyPort();
    const sock = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true });
    let got = '';
    sock.on('data', (b) => (got += b.toString()));
    const closed = withTimeout(new Promise<void>((r) => sock.on('close', () => r())), 'open connection');
    sock.on('error', () => {});
    await withTimeout(new Promise<void>((r) => sock.on('connect', () => r())), 'connect');
    for (let i = 0; i < 200 && proxier.active(KEY) === 0; i++) await new Promise((r) => setTimeout(r, 5));
    expect(proxier.active(KEY)).to.equal(1);

    proxier.onServiceDelete(svc);
    await sync();
    expect(await refused(port)).to.equal('ECONNREFUSED');
    sock.end('late');
    await closed;
    expect(got).to.equal('127.0.0.2|late');
  });

  it('stop() ends open connections', async () => {
    backends = await tcpBackends(['127.0.0.2']);
    proxier.onServiceAdd(service());
    proxier.onSliceAdd(slice(['127.0.0.2'], backends.port));
    await sync();
    const sock = net.connect({ host: '127.0.0.1', port: proxyPort() });
    sock.on('error', () => {});
    const closed = withTimeout(new Promise<void>((r) => sock.on('close', () => r())), 'open connection');
    await withTimeout(new Promise<void>((r) => sock.on('connect', () => r())), 'connect');
    for (let i = 0; i < 200 && proxier.active(KEY) === 0; i++) await new Promise((r) => setTimeout(r, 5));
    await proxier.stop();
    await closed;
    expect(proxier.active(KEY)).to.equal(0);
  });

  it('NodePort is served directly on the node port when there is no iptables', async () => {
    backends = await tcpBackends(['127.0.0.2']);
    const nodePort = await freePort();
    proxier.onServiceAdd(service({ nodePort }));
    proxier.onSliceAdd(slice(['127.0.0.2'], backends.port));
    await sync();
    expect(proxier.servesNodePort(KEY)).to.equal(true);
    expect(await request(nodePort, 'via-nodeport')).to.equal('127.0.0.2|via-nodeport');
  });

  it('a node port that is taken fails the sync (retried later); the proxy port still works', async () => {
    backends = await tcpBackends(['127.0.0.2']);
    const holder = net.createServer();
    await new Promise<void>((r) => holder.listen({ host: '127.0.0.1', port: 0 }, () => r()));
    const nodePort = (holder.address() as net.AddressInfo).port;
    try {
      proxier.onServiceAdd(service({ nodePort }));
      proxier.onSliceAdd(slice(['127.0.0.2'], backends.port));
      expect(await proxier.syncProxyRules()).to.equal(false);
      expect(proxier.servesNodePort(KEY)).to.equal(false);
      expect(await request(proxyPort())).to.equal('127.0.0.2|ping');
    } finally {
      await new Promise<void>((r) => holder.close(() => r()));
    }
    await sync();
    expect(proxier.servesNodePort(KEY)).to.equal(true);
  });

  it('UDP: round trip through the proxy, the session sticks while active and expires when idle', async () => {
    backends = await udpBackends(['127.0.0.2', '127.0.0.3']);
    proxier = new UserspaceProxier(
      { nodeName: 'node-a', listenAddress: '127.0.0.1', udpIdleTimeoutMs: 250 },
      { iptables: undefined, clock, log: nullLogger() },
    );
    proxier.onServiceAdd(service({ protocol: 'UDP' }));
    proxier.onSliceAdd(slice(['127.0.0.2', '127.0.0.3'], backends.port, 'UDP'));
    await sync();
    const client = dgram.createSocket('udp4');
    await new Promise<void>((r) => client.bind({ address: '127.0.0.1', port: 0 }, () => r()));
    const ask = (what: string) =>
      withTimeout(
        new Promise<string>((resolve) => {
          client.once('message', (m) => resolve(m.toString()));
          client.send(what, proxyPort(), '127.0.0.1');
        }),
        'udp request',
      );
    try {
      const a = await ask('one');
      expect(a).to.match(/^127\.0\.0\.[23]\|one$/);
      const who = a.split('|')[0];
      expect(proxier.active(KEY)).to.equal(1);
      await clock.advance(200);
      // Traffic keeps the session (and its endpoint) alive.
      expect(await ask('two')).to.equal(`${who}|two`);
      await clock.advance(200);
      expect(proxier.active(KEY)).to.equal(1);
      await clock.advance(250);
      expect(proxier.active(KEY)).to.equal(0);
      // A new session is a new pick: round robin moves on to the other endpoint.
      const c = await ask('three');
      expect(c.split('|')[0]).to.not.equal(who);
      expect(c.endsWith('|three')).to.equal(true);
    } finally {
      client.close();
    }
  });

  it('with iptables: one restore per sync sends the cluster IP and node port to the proxy port; removal empties the chains', async () => {
    proxier = make(true);
    const nodePort = await freePort();
    const svc = service({ nodePort });
    proxier.onServiceAdd(svc);
    await sync();
    const fake = ipt as FakeIptables;
    expect(fake.restores).to.have.length(1);
    const p = proxyPort();
    expect(fake.rules('nat', 'KUBE-PORTALS-CONTAINER')).to.deep.equal([
      `-d 10.96.0.10/32 -p tcp -m comment --comment "${KEY}" -m tcp --dport 80 -j DNAT --to-destination 127.0.0.1:${p}`,
    ]);
    expect(fake.rules('nat', 'KUBE-NODEPORT-HOST')).to.deep.equal([
      `-p tcp -m comment --comment "${KEY}" -m tcp --dport ${nodePort} -j DNAT --to-destination 127.0.0.1:${p}`,
    ]);
    expect(fake.rules('nat', 'PREROUTING')[0]).to.match(/-j KUBE-PORTALS-CONTAINER$/);
    expect(fake.rules('nat', 'OUTPUT').at(-1)).to.match(/--dst-type LOCAL .*-j KUBE-NODEPORT-HOST$/);
    expect(fake.rules('filter', 'INPUT')[0]).to.match(/-j KUBE-NODEPORT-NON-LOCAL$/);

    proxier.onServiceDelete(svc);
    await sync();
    expect(fake.restores).to.have.length(2);
    expect(fake.rules('nat', 'KUBE-PORTALS-CONTAINER')).to.deep.equal([]);
    expect(fake.rules('nat', 'KUBE-NODEPORT-HOST')).to.deep.equal([]);
    // The jumps are ensured, not added again.
    expect(fake.rules('nat', 'PREROUTING').filter((r) => r.endsWith('-j KUBE-PORTALS-CONTAINER'))).to.have.length(1);
  });

  it('a failed restore fails the sync; the next sync writes the rules', async () => {
    proxier = make(true);
    const fake = ipt as FakeIptables;
    fake.failRestores = 1;
    proxier.onServiceAdd(service());
    expect(await proxier.syncProxyRules()).to.equal(false);
    expect(fake.rules('nat', 'KUBE-PORTALS-CONTAINER')).to.deep.equal([]);
    await sync();
    expect(fake.rules('nat', 'KUBE-PORTALS-CONTAINER')).to.have.length(1);
  });

  it('start() syncs through the runner; stop() closes the listeners', async () => {
    backends = await tcpBackends(['127.0.0.2']);
    proxier.onServiceAdd(service());
    proxier.onSliceAdd(slice(['127.0.0.2'], backends.port));
    proxier.start();
    for (let i = 0; i < 200 && proxier.proxyPort(KEY) === undefined; i++) await new Promise((r) => setTimeout(r, 10));
    const port = proxyPort();
    expect(await request(port)).to.equal('127.0.0.2|ping');
    await proxier.stop();
    expect(await refused(port)).to.equal('ECONNREFUSED');
  });

  it('usableEndpoints: ready ones; when none is ready, the serving terminating ones', () => {
    const ep = (ip: string, ready: boolean, serving: boolean, terminating: boolean) => ({ ip, port: 80, ready, serving, terminating, isLocal: false });
    expect(usableEndpoints([ep('10.244.0.1', true, true, false), ep('10.244.0.2', false, true, true)])).to.deep.equal(['10.244.0.1:80']);
    expect(usableEndpoints([ep('10.244.0.1', false, false, false), ep('10.244.0.2', false, true, true)])).to.deep.equal(['10.244.0.2:80']);
    expect(usableEndpoints([ep('10.244.0.1', false, false, true)])).to.deep.equal([]);
  });

  it('usableEndpoints: within the topology hints for this node\'s zone, when every ready endpoint has them', () => {
    const ep = (ip: string, zone: string) => ({ ip, port: 80, ready: true, serving: true, terminating: false, isLocal: false, zoneHints: [zone] });
    const eps = [ep('10.244.0.1', 'zone-a'), ep('10.244.0.2', 'zone-b')];
    expect(usableEndpoints(eps, { nodeName: 'n1', zone: 'zone-b' })).to.deep.equal(['10.244.0.2:80']);
    expect(usableEndpoints(eps, { nodeName: 'n1', zone: 'zone-c' })).to.deep.equal(['10.244.0.1:80', '10.244.0.2:80']);
    expect(usableEndpoints(eps)).to.deep.equal(['10.244.0.1:80', '10.244.0.2:80']);
  });
});
