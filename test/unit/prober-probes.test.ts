// The probe handlers against real local servers on 127.0.0.1 (loopback only):
// httpGet (status codes, headers, redirects, body limit, timeouts, HTTPS
// without verification), tcpSocket, grpc health over h2c, and the runner's
// port resolution and exec through the fake runtime. Outputs are compared with
// upstream's wording.
import type { V1Container, V1Pod } from '@kubernetes/client-node';
import { expect } from 'chai';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { ensureCA } from '../../cluster/pki.ts';
import {
  decodeHealthCheckRequest,
  decodeHealthCheckResponse,
  encodeHealthCheckRequest,
  encodeHealthCheckResponse,
  firstGrpcMessage,
  grpcFrame,
  grpcProbe,
  HEALTH_CHECK_PATH,
} from '../../agent/prober/grpc.ts';
import { dechunk, httpProbe, parseHead, PROBE_USER_AGENT, probeHeaders, probeURL, requestHead } from '../../agent/prober/http.ts';
import { goSeconds } from '../../agent/prober/outcome.ts';
import { RuntimeProber } from '../../agent/prober/prober.ts';
import { tcpProbe } from '../../agent/prober/tcp.ts';
import { FakeRuntime } from '../fakes/runtime.ts';

type Handler = (req: http.IncomingMessage, res: http.ServerResponse) => void;

async function listen(server: net.Server): Promise<number> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return (server.address() as net.AddressInfo).port;
}

/** A port nothing listens on (bound, then released). */
async function closedPort(): Promise<number> {
  const s = net.createServer();
  const port = await listen(s);
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

describe('prober: httpGet', () => {
  let server: http.Server;
  let port: number;
  let handler: Handler;
  const seen: http.IncomingMessage[] = [];

  before(async () => {
    server = http.createServer((req, res) => {
      seen.push(req);
      handler(req, res);
    });
    port = await listen(server);
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  });
  beforeEach(() => {
    seen.length = 0;
  });

  const url = (p: string) => probeURL('HTTP', '127.0.0.1', port, p);

  it('200 is success with the body as output; 500 fails as upstream words it', async () => {
    handler = (req, res) => {
      res.writeHead(req.url === '/healthz' ? 200 : 500);
      res.end('ok');
    };
    expect(await httpProbe(url('/healthz'), probeHeaders([]), 5000)).to.deep.equal({ result: 'success', output: 'ok' });
    expect(await httpProbe(url('/broken'), probeHeaders([]), 5000)).to.deep.equal({ result: 'failure', output: 'HTTP probe failed with statuscode: 500' });
  });

  it('399 is still success territory (a 3xx that is not followed is a warning); 400 fails', async () => {
    handler = (req, res) => {
      res.writeHead(req.url === '/304' ? 304 : 400);
      res.end();
    };
    expect((await httpProbe(url('/304'), probeHeaders([]), 5000)).result).to.equal('warning');
    expect((await httpProbe(url('/400'), probeHeaders([]), 5000)).output).to.equal('HTTP probe failed with statuscode: 400');
  });

  it('sends the kube-probe user agent, Accept */*, the probe headers and a Host override; keeps the query', async () => {
    handler = (_req, res) => res.end();
    const h = probeHeaders([{ name: 'X-Custom', value: 'a' }, { name: 'x-custom', value: 'b' }, { name: 'Host', value: 'example.test' }]);
    const r = await httpProbe(url('/p?x=1'), h, 5000);
    expect(r.result).to.equal('success');
    const req = seen[0]!;
    expect(req.headers['user-agent']).to.equal(PROBE_USER_AGENT);
    expect(PROBE_USER_AGENT).to.equal('kube-probe/1.37');
    expect(req.headers['accept']).to.equal('*/*');
    expect(req.headers['x-custom']).to.equal('a, b');
    expect(req.headers['host']).to.equal('example.test');
    expect(req.url).to.equal('/p?x=1');
    // A user agent given by the probe wins.
    expect(probeHeaders([{ name: 'User-Agent', value: 'mine' }])['user-agent']).to.equal('mine');
  });

  it('follows redirects on the same host (relative and absolute)', async () => {
    handler = (req, res) => {
      if (req.url === '/start') return res.writeHead(302, { location: '/next' }).end();
      if (req.url === '/next') return res.writeHead(301, { location: `http://127.0.0.1:${port}/done` }).end();
      res.end('arrived');
    };
    expect(await httpProbe(url('/start'), probeHeaders([]), 5000)).to.deep.equal({ result: 'success', output: 'arrived' });
    expect(seen.map((r) => r.url)).to.deep.equal(['/start', '/next', '/done']);
  });

  it('does not follow a redirect to another host: success with a warning', async () => {
    handler = (_req, res) => res.writeHead(302, { location: 'http://192.0.2.1/elsewhere' }).end('moved');
    const r = await httpProbe(url('/'), probeHeaders([]), 5000);
    expect(r).to.deep.equal({ result: 'warning', output: 'Probe terminated redirects, Response body: moved' });
    expect(seen).to.have.length(1);
  });

  it('a redirect loop fails after 10 requests', async () => {
    handler = (_req, res) => res.writeHead(302, { location: '/again' }).end();
    const r = await httpProbe(url('/'), probeHeaders([]), 10_000);
    expect(r.result).to.equal('failure');
    expect(r.output).to.equal(`Get "http://127.0.0.1:${port}/again": stopped after 10 redirects`);
    expect(seen).to.have.length(10);
  });

  it('reads at most 10 KiB of the body', async () => {
    handler = (_req, res) => res.end('x'.repeat(50_000));
    const r = await httpProbe(url('/'), probeHeaders([]), 5000);
    expect(r.result).to.equal('success');
    expect(r.output).to.have.length(10 * 1024);
  });

  it('an endpoint that hangs past the timeout fails (headers, and body)', async () => {
    handler = (req, res) => {
      if (req.url === '/slowbody') {
        res.writeHead(200);
        res.write('partial');
      } // else: never answers
    };
    const r = await httpProbe(url('/hang'), probeHeaders([]), 200);
    expect(r).to.deep.equal({ result: 'failure', output: `Get "http://127.0.0.1:${port}/hang": context deadline exceeded (Client.Timeout exceeded while awaiting headers)` });
    const b = await httpProbe(url('/slowbody'), probeHeaders([]), 200);
    expect(b.result).to.equal('failure');
    expect(b.output).to.contain('Client.Timeout or context cancellation while reading body');
  });

  it('plain HTTP is parsed by hand: chunked bodies, 1xx heads skipped, a close before the head is EOF, garbage is malformed', async () => {
    const answers: Record<string, string> = {
      '/chunked': 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n4;x=y\r\ndefg\r\n0\r\n\r\n',
      '/early': 'HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n',
      '/length': 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokTRAILING-JUNK',
      '/eof': '',
      '/garbage': 'SSH-2.0-OpenSSH\r\n\r\n',
    };
    const raw = net.createServer((c) => {
      let got = '';
      c.on('data', (b) => {
        got += b.toString();
        if (!got.includes('\r\n\r\n')) return;
        const path = got.split(' ')[1] ?? '';
        c.end(answers[path] ?? '');
      });
    });
    const rp = await listen(raw);
    try {
      const get = (p: string) => httpProbe(probeURL('http', '127.0.0.1', rp, p), probeHeaders([]), 2000);
      expect(await get('/chunked')).to.deep.equal({ result: 'success', output: 'abcdefg' });
      expect(await get('/early')).to.deep.equal({ result: 'success', output: '' });
      expect(await get('/length')).to.deep.equal({ result: 'success', output: 'ok' });
      expect(await get('/eof')).to.deep.equal({ result: 'failure', output: `Get "http://127.0.0.1:${rp}/eof": EOF` });
      expect((await get('/garbage')).output).to.match(/malformed HTTP response/);
    } finally {
      await new Promise<void>((r) => raw.close(() => r()));
    }
  });

  it('the hand-written head: Host from the URL unless given, repeated headers, no CR/LF injection', () => {
    const head = requestHead(new URL('http://10.0.0.1:8080/a?b=1'), { 'user-agent': 'kube-probe/1.37', 'x-a': ['1', '2'], 'x-evil': 'v\r\nInjected: yes' });
    expect(head.split('\r\n')).to.deep.equal([
      'GET /a?b=1 HTTP/1.1', 'Host: 10.0.0.1:8080', 'user-agent: kube-probe/1.37', 'x-a: 1', 'x-a: 2', 'x-evil: v  Injected: yes', 'Connection: close', '', '',
    ]);
    expect(requestHead(new URL('http://10.0.0.1/'), { host: 'example.test' })).to.match(/^GET \/ HTTP\/1\.1\r\nhost: example.test\r\n/);
    expect(parseHead(Buffer.from('HTTP/1.1 200 OK\r\nX: 1'))).to.equal(undefined);
    expect(dechunk(Buffer.from('5\r\nab'))).to.deep.equal({ body: Buffer.from('ab'), done: false });
  });

  it('a refused connection fails with the dial error', async () => {
    const p = await closedPort();
    const r = await httpProbe(probeURL('http', '127.0.0.1', p, 'healthz'), probeHeaders([]), 5000);
    expect(r).to.deep.equal({ result: 'failure', output: `Get "http://127.0.0.1:${p}/healthz": dial tcp 127.0.0.1:${p}: connect: connection refused` });
  });

  it('HTTPS is probed without verifying the certificate', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'prober-tls-'));
    try {
      const kc = await ensureCA(dir, 'prober-test');
      const s = https.createServer({ key: readFileSync(kc.keyPath), cert: readFileSync(kc.certPath) }, (_req, res) => res.end('secure'));
      const p = await listen(s);
      try {
        expect(await httpProbe(probeURL('HTTPS', '127.0.0.1', p, '/'), probeHeaders([]), 10_000)).to.deep.equal({ result: 'success', output: 'secure' });
      } finally {
        s.closeAllConnections();
        await new Promise<void>((r) => s.close(() => r()));
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('prober: tcpSocket', () => {
  it('an open port succeeds, a closed one fails with the dial error', async () => {
    const s = net.createServer((c) => c.end());
    const p = await listen(s);
    try {
      expect(await tcpProbe('127.0.0.1', p, 5000)).to.deep.equal({ result: 'success', output: '' });
    } finally {
      await new Promise<void>((r) => s.close(() => r()));
    }
    const closed = await closedPort();
    expect(await tcpProbe('127.0.0.1', closed, 5000)).to.deep.equal({ result: 'failure', output: `dial tcp 127.0.0.1:${closed}: connect: connection refused` });
  });
});

describe('prober: grpc health', () => {
  let server: http2.Http2Server;
  let port: number;
  /** Status per service name; a missing entry answers NOT_FOUND; 'hang' never answers. */
  const statuses = new Map<string, number | 'hang' | 'unimplemented'>();
  const seenServices: string[] = [];
  const seenAgents: string[] = [];

  before(async () => {
    server = http2.createServer();
    server.on('stream', (stream, headers) => {
      const chunks: Buffer[] = [];
      stream.on('data', (b: Buffer) => chunks.push(b));
      stream.on('end', () => {
        seenAgents.push(String(headers['user-agent']));
        if (headers[':path'] !== HEALTH_CHECK_PATH || statuses.get('') === 'unimplemented') {
          stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '12', 'grpc-message': 'unknown service grpc.health.v1.Health' }, { endStream: true });
          return;
        }
        const service = decodeHealthCheckRequest(firstGrpcMessage(Buffer.concat(chunks)) ?? Buffer.alloc(0));
        seenServices.push(service);
        const st = statuses.get(service);
        if (st === 'hang') return;
        stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
        stream.on('wantTrailers', () => {
          if (st === undefined) stream.sendTrailers({ 'grpc-status': '5', 'grpc-message': 'unknown%20service' });
          else stream.sendTrailers({ 'grpc-status': '0' });
        });
        if (st === undefined) stream.end();
        else stream.end(grpcFrame(encodeHealthCheckResponse(st as number)));
      });
    });
    port = await listen(server as unknown as net.Server);
  });
  after(async () => {
    await new Promise<void>((r) => server.close(() => r()));
  });
  beforeEach(() => {
    statuses.clear();
    seenServices.length = 0;
  });

  it('encodes and decodes the two messages by hand', () => {
    expect(encodeHealthCheckRequest('')).to.have.length(0);
    expect([...encodeHealthCheckRequest('db')]).to.deep.equal([0x0a, 2, 0x64, 0x62]);
    expect(decodeHealthCheckRequest(encodeHealthCheckRequest('a'.repeat(300)))).to.equal('a'.repeat(300));
    expect(decodeHealthCheckResponse(Buffer.from([0x08, 0x01]))).to.equal(1);
    expect(decodeHealthCheckResponse(Buffer.alloc(0))).to.equal(0);
    // Unknown fields are skipped.
    expect(decodeHealthCheckResponse(Buffer.from([0x12, 0x01, 0x41, 0x08, 0x02]))).to.equal(2);
    expect(() => decodeHealthCheckResponse(Buffer.from([0x08]))).to.throw();
    expect(firstGrpcMessage(grpcFrame(Buffer.from([0x08, 0x01])))).to.deep.equal(Buffer.from([0x08, 0x01]));
  });

  it('SERVING is success; other statuses fail with their name', async () => {
    statuses.set('', 1);
    statuses.set('db', 2);
    expect(await grpcProbe('127.0.0.1', port, '', 5)).to.deep.equal({ result: 'success', output: 'service healthy' });
    expect(await grpcProbe('127.0.0.1', port, 'db', 5)).to.deep.equal({ result: 'failure', output: 'service unhealthy (responded with "NOT_SERVING")' });
    expect(seenServices).to.deep.equal(['', 'db']);
    expect(seenAgents).to.include(PROBE_USER_AGENT);
  });

  it('gRPC errors are worded as upstream', async () => {
    expect(await grpcProbe('127.0.0.1', port, 'nope', 5)).to.deep.equal({ result: 'failure', output: 'error: health rpc probe failed: rpc error: code = NotFound desc = unknown service' });
    statuses.set('', 'unimplemented');
    expect(await grpcProbe('127.0.0.1', port, '', 5)).to.deep.equal({
      result: 'failure',
      output: 'this server does not implement the grpc health protocol (grpc.health.v1.Health): unknown service grpc.health.v1.Health',
    });
  });

  it('a health server that hangs past the timeout fails; a closed port fails to connect', async () => {
    statuses.set('slow', 'hang');
    expect(await grpcProbe('127.0.0.1', port, 'slow', 1)).to.deep.equal({ result: 'failure', output: 'timeout: health rpc did not complete within 1s' });
    const closed = await closedPort();
    const r = await grpcProbe('127.0.0.1', closed, '', 5);
    expect(r.result).to.equal('failure');
    expect(r.output).to.equal(`error: failed to connect service at "127.0.0.1:${closed}": dial tcp 127.0.0.1:${closed}: connect: connection refused`);
  });

  it('prints timeouts as Go durations', () => {
    expect(goSeconds(1)).to.equal('1s');
    expect(goSeconds(90)).to.equal('1m30s');
  });
});

describe('prober: RuntimeProber', () => {
  const pod: V1Pod = { metadata: { name: 'p', namespace: 'ns', uid: 'u' }, spec: { containers: [] } };
  const c: V1Container = { name: 'app', ports: [{ name: 'http', containerPort: 0 }, { name: 'admin', containerPort: 0 }] };

  it('resolves named ports and defaults the host to the pod IP', async () => {
    const s = http.createServer((_req, res) => res.end('named'));
    const p = await listen(s);
    try {
      const cc: V1Container = { ...c, ports: [{ name: 'http', containerPort: p }] };
      const r = await new RuntimeProber({ runtime: new FakeRuntime() }).run({ httpGet: { port: 'http', path: '/' } as never, timeoutSeconds: 5 }, { pod, container: cc, containerId: 'x', podIP: '127.0.0.1' });
      expect(r).to.deep.equal({ result: 'success', output: 'named' });
      const t = await new RuntimeProber({ runtime: new FakeRuntime() }).run({ tcpSocket: { port: p } as never, timeoutSeconds: 5 }, { pod, container: cc, containerId: 'x', podIP: '127.0.0.1' });
      expect(t.result).to.equal('success');
    } finally {
      s.closeAllConnections();
      await new Promise<void>((r) => s.close(() => r()));
    }
  });

  it('an unknown port name or a missing pod IP cannot be probed (unknown, not failure)', async () => {
    const prober = new RuntimeProber({ runtime: new FakeRuntime() });
    expect(await prober.run({ httpGet: { port: 'nope' } as never }, { pod, container: c, containerId: 'x', podIP: '127.0.0.1' })).to.deep.equal({
      result: 'unknown',
      output: 'strconv.Atoi: parsing "nope": invalid syntax',
    });
    expect((await prober.run({ tcpSocket: { port: 80 } as never }, { pod, container: c, containerId: 'x', podIP: '' })).result).to.equal('unknown');
    expect((await prober.run({}, { pod, container: c, containerId: 'x', podIP: '' })).output).to.equal('missing probe handler for ns/p:app');
  });

  it('exec: exit 0 succeeds, non-zero fails with the output, a timeout fails, a gone container is unknown', async () => {
    const rt = new FakeRuntime();
    rt.addImage('nodelet.local/busybox:1.35');
    const sb = await rt.runPodSandbox({ metadata: { name: 'p', namespace: 'ns', uid: 'u', attempt: 0 } });
    const id = await rt.createContainer(sb, { metadata: { name: 'app', attempt: 0 }, image: { image: 'nodelet.local/busybox:1.35' } }, { metadata: { name: 'p', namespace: 'ns', uid: 'u', attempt: 0 } });
    await rt.startContainer(id);
    rt.execResults.set('check ok', { stdout: Buffer.from('fine'), stderr: Buffer.alloc(0), exitCode: 0 });
    rt.execResults.set('check bad', { stdout: Buffer.from('out '), stderr: Buffer.from('err'), exitCode: 1 });
    rt.execResults.set('check slow', 'timeout');
    const prober = new RuntimeProber({ runtime: rt });
    const t = { pod, container: c, containerId: id, podIP: '' };
    expect(await prober.run({ exec: { command: ['check', 'ok'] } }, t)).to.deep.equal({ result: 'success', output: 'fine' });
    expect(await prober.run({ exec: { command: ['check', 'bad'] } }, t)).to.deep.equal({ result: 'failure', output: 'out err' });
    expect(await prober.run({ exec: { command: ['check', 'slow'] }, timeoutSeconds: 2 }, t)).to.deep.equal({ result: 'failure', output: 'command timed out: "check slow" timed out after 2s' });
    expect(rt.calls).to.include(`execSync ${id} check slow`);
    expect((await prober.run({ exec: { command: ['check', 'ok'] } }, { ...t, containerId: 'gone' })).result).to.equal('unknown');
  });
});
