// The kubelet API server end to end on loopback: real TLS (certificates from
// cluster/pki.ts), a fake runtime and a fake TokenReview/SAR API. Covers
// 401/403, the plain endpoints, container logs, and exec, attach and
// port-forward over SPDY with the test client.
import { expect } from 'chai';
import { readFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import tls from 'node:tls';
import type { V1Pod } from '@kubernetes/client-node';
import { Registry } from 'prom-client';
import { RequestAuthenticator, RequestAuthorizer, type AuthApi, type RequestAttributes, type UserInfo } from '../../agent/server/auth.ts';
import { KubeletServer } from '../../agent/server/server.ts';
import type { NodePods } from '../../agent/server/routes.ts';
import type { RuntimePodStatus } from '../../agent/pod/types.ts';
import { ensureCA, ensureCert, type KeyCert } from '../../cluster/pki.ts';
import { realClock } from '../../lib/clock.ts';
import { nullLogger } from '../../lib/log.ts';
import { FakeRuntime } from '../fakes/runtime.ts';
import { TestClient, until } from './server-spdy-client.ts';
import { TYPE_SYN_REPLY } from '../../agent/server/spdy.ts';

const NODE = 'node-a';

class FakeAuthApi implements AuthApi {
  readonly tokens = new Map<string, UserInfo>();
  readonly allowed = new Set<string>(); // "user verb subresource"
  readonly reviews: string[] = [];
  async tokenReview(token: string) {
    this.reviews.push(`token ${token}`);
    const user = this.tokens.get(token);
    return user ? { authenticated: true, user } : { authenticated: false };
  }
  async subjectAccessReview(user: UserInfo, a: RequestAttributes) {
    this.reviews.push(`sar ${user.name} ${a.verb} ${a.subresource} ${a.name}`);
    return { allowed: user.groups.includes('system:masters') || this.allowed.has(`${user.name} ${a.verb} ${a.subresource}`) };
  }
}

interface Setup {
  dir: string;
  ca: KeyCert;
  otherCA: KeyCert;
  serving: KeyCert;
  admin: KeyCert;
  stranger: KeyCert;
}

let pki: Setup;

async function makePki(): Promise<Setup> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'server-api-'));
  const ca = await ensureCA(path.join(dir, 'ca'), 'cluster-ca');
  const otherCA = await ensureCA(path.join(dir, 'other'), 'other-ca');
  const serving = await ensureCert(path.join(dir, 'ca'), ca, { name: 'kubelet', cn: NODE, usage: 'server', ipSANs: ['127.0.0.1'] });
  const admin = await ensureCert(path.join(dir, 'ca'), ca, { name: 'apiserver-client', cn: 'kube-apiserver-kubelet-client', orgs: ['system:masters'], usage: 'client' });
  const stranger = await ensureCert(path.join(dir, 'other'), otherCA, { name: 'stranger', cn: 'mallory', orgs: ['system:masters'], usage: 'client' });
  return { dir, ca, otherCA, serving, admin, stranger };
}

interface Req {
  method?: string;
  path: string;
  cert?: KeyCert;
  headers?: Record<string, string>;
}

function request(port: number, r: Req): Promise<{ status: number; body: string; headers: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: '127.0.0.1',
        port,
        path: r.path,
        method: r.method ?? 'GET',
        headers: r.headers,
        rejectUnauthorized: false,
        cert: r.cert ? readFileSync(r.cert.certPath) : undefined,
        key: r.cert ? readFileSync(r.cert.keyPath) : undefined,
        agent: false,
      },
      (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

/** Opens an upgraded SPDY connection like the API server does, wiring it to a TestClient. */
async function spdy(port: number, pathname: string, protocols: string[], cert: KeyCert): Promise<{ client: TestClient; head: string; socket: tls.TLSSocket }> {
  const socket = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false, cert: readFileSync(cert.certPath), key: readFileSync(cert.keyPath) });
  await new Promise<void>((resolve, reject) => {
    socket.once('secureConnect', () => resolve());
    socket.once('error', reject);
  });
  socket.write(
    `POST ${pathname} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n` +
      protocols.map((p) => `X-Stream-Protocol-Version: ${p}\r\n`).join('') +
      'Content-Length: 0\r\n\r\n',
  );
  const client = new TestClient();
  let buf = Buffer.alloc(0);
  const head = await new Promise<string>((resolve, reject) => {
    const onData = (c: Buffer) => {
      buf = Buffer.concat([buf, c]);
      const i = buf.indexOf('\r\n\r\n');
      if (i < 0) return;
      socket.off('data', onData);
      const text = buf.subarray(0, i).toString();
      const rest = buf.subarray(i + 4);
      if (text.startsWith('HTTP/1.1 101')) {
        if (rest.length) client.fromServer.write(rest);
        socket.pipe(client.fromServer);
        client.toServer.pipe(socket);
      } else {
        socket.on('data', (more: Buffer) => (buf = Buffer.concat([buf, more])));
      }
      resolve(text + '\r\n\r\n' + rest.toString());
    };
    socket.on('data', onData);
    socket.once('error', reject);
  });
  return { client, head, socket };
}

describe('server/api (HTTPS on loopback, fake runtime)', function () {
  this.timeout(60_000);
  let rt: FakeRuntime;
  let auth: FakeAuthApi;
  let server: KubeletServer;
  let port: number;
  let registry: Registry;
  let pods: V1Pod[];
  let runtimePods: Map<string, RuntimePodStatus>;
  let logDir: string;
  let cid: string;
  let sid: string;

  before(async () => {
    pki = await makePki();
  });

  after(() => rmSync(pki.dir, { recursive: true, force: true }));

  beforeEach(async () => {
    rt = new FakeRuntime();
    rt.addImage('busybox');
    logDir = path.join(pki.dir, `logs-${Date.now()}-${Math.random()}`);
    const sbCfg = { metadata: { name: 'web', namespace: 'default', uid: 'u1', attempt: 0 }, logDirectory: logDir, labels: {} };
    sid = await rt.runPodSandbox(sbCfg);
    cid = await rt.createContainer(
      sid,
      {
        metadata: { name: 'app', attempt: 0 },
        image: { image: 'busybox' },
        logPath: 'app/0.log',
        stdin: true,
        labels: { 'io.kubernetes.pod.name': 'web', 'io.kubernetes.pod.namespace': 'default', 'io.kubernetes.pod.uid': 'u1', 'io.kubernetes.container.name': 'app' },
      },
      sbCfg,
    );
    await rt.startContainer(cid);
    mkdirSync(path.join(logDir, 'app'), { recursive: true });
    writeFileSync(
      path.join(logDir, 'app', '0.log'),
      '2025-01-01T00:00:01Z stdout F one\n2025-01-01T00:00:02Z stderr F two\n2025-01-01T00:00:03Z stdout P thr\n2025-01-01T00:00:03Z stdout F ee\n',
    );
    pods = [{ metadata: { name: 'web', namespace: 'default', uid: 'u1' }, spec: { containers: [{ name: 'app', image: 'busybox' }] } }];
    runtimePods = new Map([
      [
        'u1',
        {
          uid: 'u1',
          name: 'web',
          namespace: 'default',
          sandboxes: [{ id: sid, state: 'SANDBOX_READY', attempt: 0, createdAt: 1, ip: '10.0.0.2' }],
          containers: [
            { id: cid, sandboxId: sid, name: 'app', hash: '', restartCount: 0, state: 'CONTAINER_RUNNING', createdAt: 2, startedAt: 1_700_000_000_000_000_000, finishedAt: 0, exitCode: 0, reason: '', message: '', image: 'busybox', imageRef: '' },
          ],
        },
      ],
    ]);
    const nodePods: NodePods = { pods: () => pods, runtimePod: (uid) => runtimePods.get(uid) };
    auth = new FakeAuthApi();
    registry = new Registry();
    server = new KubeletServer(
      {
        nodeName: NODE,
        pods: nodePods,
        runtime: rt,
        authn: new RequestAuthenticator(auth, realClock),
        authz: new RequestAuthorizer(auth, realClock),
        registry,
        clock: realClock,
        log: nullLogger(),
        summaryNode: () => ({ bootTimeMs: 1_600_000_000_000, cpuCoreNanoSeconds: 5e9, memory: { totalBytes: 8192, freeBytes: 1024, availableBytes: 4096, rssBytes: 0, pageFaults: 0, majorPageFaults: 0 } }),
        podNetwork: (ids) => new Map(ids.map((id) => [id, [{ name: 'eth0', rxBytes: 11, rxErrors: 0, txBytes: 22, txErrors: 0 }]])),
      },
      { cert: readFileSync(pki.serving.certPath), key: readFileSync(pki.serving.keyPath), clientCA: readFileSync(pki.ca.certPath) },
    );
    port = await server.listen(0, '127.0.0.1');
  });

  afterEach(async () => {
    await server.close();
  });

  it('answers 401 without credentials, with a bad token, and for a certificate from another CA', async () => {
    expect((await request(port, { path: '/healthz' })).status).to.equal(401);
    expect((await request(port, { path: '/healthz', headers: { authorization: 'Bearer nope' } })).status).to.equal(401);
    const r = await request(port, { path: '/healthz', cert: pki.stranger });
    expect(r.status).to.equal(401);
    expect(r.body).to.equal('Unauthorized');
  });

  it('authorizes with SubjectAccessReview on nodes/<subresource> and answers 403 as upstream', async () => {
    auth.tokens.set('t1', { name: 'alice', groups: ['devs'] });
    const denied = await request(port, { path: '/pods', headers: { authorization: 'Bearer t1' } });
    expect(denied.status).to.equal(403);
    expect(denied.body).to.equal('Forbidden (user=alice, verb=get, resource=nodes, subresource(s)=[pods proxy])\n');
    expect(auth.reviews).to.deep.equal(['token t1', `sar alice get pods ${NODE}`, `sar alice get proxy ${NODE}`]);
    auth.allowed.add('alice get proxy');
    // Denials are cached (30 s); a new token user is not.
    auth.tokens.set('t2', { name: 'bob', groups: [] });
    auth.allowed.add('bob get pods');
    const ok = await request(port, { path: '/pods', headers: { authorization: 'Bearer t2' } });
    expect(ok.status).to.equal(200);
    expect(JSON.parse(ok.body)).to.deep.include({ kind: 'PodList', apiVersion: 'v1' });
    expect(JSON.parse(ok.body).items.map((p: V1Pod) => p.metadata?.name)).to.deep.equal(['web']);
  });

  it('serves /healthz and /metrics to the API server client certificate', async () => {
    const h = await request(port, { path: '/healthz', cert: pki.admin });
    expect(h).to.deep.include({ status: 200, body: 'ok' });
    const m = await request(port, { path: '/metrics', cert: pki.admin });
    expect(m.status).to.equal(200);
    expect(m.body).to.include('kubelet_http_requests_total{method="GET",path="healthz",server_type="readwrite",long_running="false"} 1');
    expect((await request(port, { path: '/nope', cert: pki.admin })).status).to.equal(404);
  });

  it('serves /metrics/resource from the runtime stats (nodes/metrics)', async () => {
    const r = await request(port, { path: '/metrics/resource', cert: pki.admin });
    expect(r.status).to.equal(200);
    expect(r.body).to.match(/^container_cpu_usage_seconds_total\{container="app",namespace="default",pod="web"\} 0 \d+$/m);
    expect(r.body).to.match(/^container_start_time_seconds\{container="app",namespace="default",pod="web"\} 1700000000 \d+$/m);
    expect(r.body).to.include('scrape_error 0\n');
    auth.tokens.set('m', { name: 'metrics-reader', groups: [] });
    auth.allowed.add('metrics-reader get metrics');
    expect((await request(port, { path: '/metrics/resource', headers: { authorization: 'Bearer m' } })).status).to.equal(200);
  });

  it('serves /stats/summary for the node, its pods and their containers (nodes/stats)', async () => {
    const r = await request(port, { path: '/stats/summary', cert: pki.admin });
    expect(r.status).to.equal(200);
    expect(r.headers['content-type']).to.equal('application/json');
    const s = JSON.parse(r.body);
    expect(s.node).to.deep.include({ nodeName: NODE, startTime: '2020-09-13T12:26:40Z' });
    expect(s.node.memory).to.deep.include({ availableBytes: 4096, workingSetBytes: 4096, usageBytes: 7168 });
    expect(s.node.runtime.imageFs.usedBytes).to.equal(1);
    expect(s.pods).to.have.length(1);
    expect(s.pods[0].podRef).to.deep.equal({ name: 'web', namespace: 'default', uid: 'u1' });
    expect(s.pods[0].network).to.deep.include({ name: 'eth0', rxBytes: 11, txBytes: 22 });
    expect(s.pods[0].containers.map((c: { name: string }) => c.name)).to.deep.equal(['app']);
    expect(s.pods[0].containers[0]).to.deep.include({ startTime: '2023-11-14T22:13:20Z' });
    expect(s.pods[0].containers[0].cpu.usageCoreNanoSeconds).to.equal(0);
    // The log file's size (the fake's log is 4 lines of CRI log text).
    expect(s.pods[0].containers[0].logs.usedBytes).to.be.greaterThan(100);
    const only = JSON.parse((await request(port, { path: '/stats/summary?only_cpu_and_memory=true', cert: pki.admin })).body);
    expect(only.node).to.not.have.property('runtime');
    expect(only.pods[0]).to.not.have.property('network');
    auth.tokens.set('s', { name: 'stats-reader', groups: [] });
    expect((await request(port, { path: '/stats/summary', headers: { authorization: 'Bearer s' } })).status).to.equal(403);
    // (the denial is cached per user; another user with the right is let in)
    auth.allowed.add('metrics-server get stats');
    auth.tokens.set('s2', { name: 'metrics-server', groups: [] });
    expect((await request(port, { path: '/stats/summary', headers: { authorization: 'Bearer s2' } })).status).to.equal(200);
  });

  it('switches to another serving certificate for new connections (the issued one replacing the self-signed one)', async () => {
    const peerCN = () =>
      new Promise<string>((resolve, reject) => {
        const s = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => {
          resolve(String(s.getPeerCertificate().subject.CN));
          s.end();
        });
        s.on('error', reject);
      });
    expect(await peerCN()).to.equal(NODE);
    const issued = await ensureCert(path.join(pki.dir, 'ca'), pki.ca, { name: 'issued', cn: `system:node:${NODE}`, orgs: ['system:nodes'], usage: 'server', ipSANs: ['127.0.0.1'] });
    server.setCertificate(readFileSync(issued.certPath), readFileSync(issued.keyPath));
    expect(await peerCN()).to.equal(`system:node:${NODE}`);
    // Client certificates are still verified against the cluster CA.
    expect((await request(port, { path: '/healthz', cert: pki.admin })).status).to.equal(200);
    expect((await request(port, { path: '/healthz', cert: pki.stranger })).status).to.equal(401);
  });

  it('serves container logs with the query options', async () => {
    const get = (q: string) => request(port, { path: `/containerLogs/default/web/app${q}`, cert: pki.admin });
    expect((await get('')).body).to.equal('one\ntwo\nthree\n');
    expect((await get('?tailLines=1')).body).to.equal('ee\n');
    expect((await get('?timestamps=true&limitBytes=25')).body).to.equal('2025-01-01T00:00:01Z one\n');
    expect((await get('?sinceTime=2025-01-01T00:00:02Z&stream=Stdout')).body).to.equal('three\n');
    expect((await get('?follow=maybe')).status).to.equal(400);
    expect((await get('?sinceSeconds=5&sinceTime=2025-01-01T00:00:02Z')).status).to.equal(422);
    const prev = await get('?previous=true');
    expect(prev).to.deep.include({ status: 400, body: 'previous terminated container "app" in pod "web" not found' });
    expect((await request(port, { path: '/containerLogs/default/nope/app', cert: pki.admin })).status).to.equal(404);
    expect((await request(port, { path: '/containerLogs/default/web/other', cert: pki.admin })).body).to.equal('container "other" not found in pod "web"');
  });

  it('follows a log until the container stops running', async () => {
    const res = request(port, { path: '/containerLogs/default/web/app?follow=true&tailLines=0', cert: pki.admin });
    await new Promise((r) => setTimeout(r, 300));
    writeFileSync(path.join(logDir, 'app', '0.log'), '2025-01-01T00:00:04Z stdout F four\n', { flag: 'a' });
    rt.exitContainer(cid, 0);
    const r = await res;
    expect(r).to.deep.include({ status: 200, body: 'four\n' });
  });

  it('runs a command with /run (space-separated cmd) and returns its output', async () => {
    rt.execResults.set('echo hi', { stdout: Buffer.from('hi\n'), stderr: Buffer.from('warn\n'), exitCode: 0 });
    const r = await request(port, { method: 'POST', path: '/run/default/web/app?cmd=echo%20hi', cert: pki.admin });
    expect(r).to.deep.include({ status: 200, body: 'hi\nwarn\n' });
    expect((await request(port, { method: 'POST', path: '/run/default/nope/app?cmd=true', cert: pki.admin })).status).to.equal(404);
  });

  it('refuses WebSocket upgrades (this kubelet does not declare ExtendWebSocketsToKubelet)', async () => {
    const socket = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false, cert: readFileSync(pki.admin.certPath), key: readFileSync(pki.admin.keyPath) });
    await new Promise<void>((resolve) => socket.once('secureConnect', () => resolve()));
    socket.write('GET /exec/default/web/app?command=true&output=1 HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n');
    const head = await new Promise<string>((resolve) => socket.once('data', (c: Buffer) => resolve(c.toString())));
    socket.destroy();
    expect(head).to.match(/^HTTP\/1\.1 400 /);
  });

  it('refuses a non-upgrade exec and an unknown stream protocol', async () => {
    const plain = await request(port, { method: 'POST', path: '/exec/default/web/app?command=true&output=1', cert: pki.admin });
    expect(plain.status).to.equal(400);
    const { head } = await spdy(port, '/exec/default/web/app?command=true&output=1', ['v9.channel.k8s.io'], pki.admin);
    expect(head).to.match(/^HTTP\/1\.1 403 /);
    expect(head).to.include('X-Accepted-Stream-Protocol-Versions: v4.channel.k8s.io');
    const none = await spdy(port, '/exec/default/web/app?command=true', ['v4.channel.k8s.io'], pki.admin);
    expect(none.head).to.match(/^HTTP\/1\.1 400 /);
    expect(none.head).to.include('you must specify at least 1 of stdin, stdout, stderr');
  });

  it('runs exec over SPDY: output on stdout/stderr, exit code on the error stream', async () => {
    rt.execResults.set('sh -c exit 3', { stdout: Buffer.from('out\n'), stderr: Buffer.from('err\n'), exitCode: 3 });
    const { client, head } = await spdy(port, '/exec/default/web/app?command=sh&command=-c&command=exit%203&output=1&error=1', ['v4.channel.k8s.io', 'v3.channel.k8s.io'], pki.admin);
    expect(head).to.include('HTTP/1.1 101 Switching Protocols');
    expect(head).to.include('X-Stream-Protocol-Version: v4.channel.k8s.io');
    const err = await client.openStream({ streamType: 'error' });
    const out = await client.openStream({ streamType: 'stdout' });
    const errOut = await client.openStream({ streamType: 'stderr' });
    await until(() => client.resetStatus(err) !== undefined, 'the streams to be reset at the end');
    expect(client.received(out).data).to.equal('out\n');
    expect(client.received(errOut).data).to.equal('err\n');
    expect(JSON.parse(client.received(err).data)).to.deep.equal({
      status: 'Failure',
      reason: 'NonZeroExitCode',
      details: { causes: [{ reason: 'ExitCode', message: '3' }] },
      message: 'command terminated with non-zero exit code: error executing command [sh -c exit 3], exit code 3',
    });
    expect(client.control(TYPE_SYN_REPLY)).to.have.length(3);
    expect(rt.calls).to.include(`exec ${cid} sh -c exit 3`);
  });

  it('reports an internal error when the runtime cannot tell the exit code', async () => {
    rt.exec = async () => {
      const stdout = new PassThrough();
      stdout.end('partial');
      const exitCode = Promise.reject(new Error('exec inspect failed'));
      exitCode.catch(() => undefined);
      return { stdin: undefined, stdout, stderr: undefined, resize: async () => {}, exitCode, close: () => {} };
    };
    const { client } = await spdy(port, '/exec/default/web/app?command=true&output=1', ['v4.channel.k8s.io'], pki.admin);
    const err = await client.openStream({ streamType: 'error' });
    const out = await client.openStream({ streamType: 'stdout' });
    await until(() => client.resetStatus(err) !== undefined, 'the end of the session');
    expect(client.received(out).data).to.equal('partial');
    expect(JSON.parse(client.received(err).data)).to.deep.equal({
      status: 'Failure',
      reason: 'InternalError',
      message: 'Internal error occurred: error executing command in container: exec inspect failed',
      code: 500,
    });
  });

  it('passes exec stdin through and reports success once it ends', async () => {
    const { client } = await spdy(port, '/exec/default/web/app?command=cat&input=1&output=1', ['v4.channel.k8s.io'], pki.admin);
    const err = await client.openStream({ streamType: 'error' });
    const stdin = await client.openStream({ streamType: 'stdin' });
    const out = await client.openStream({ streamType: 'stdout' });
    await until(() => client.replied(out));
    client.send(stdin, 'hello ');
    client.send(stdin, 'world', true);
    await until(() => client.resetStatus(err) !== undefined, 'the end of the session');
    expect(client.received(out).data).to.equal('hello world');
    expect(JSON.parse(client.received(err).data)).to.deep.equal({ status: 'Success' });
  });

  it('attaches to the container and ends when it exits', async () => {
    const { client } = await spdy(port, '/attach/default/web/app?input=1&output=1&error=1', ['v4.channel.k8s.io'], pki.admin);
    const err = await client.openStream({ streamType: 'error' });
    const stdin = await client.openStream({ streamType: 'stdin' });
    const out = await client.openStream({ streamType: 'stdout' });
    await client.openStream({ streamType: 'stderr' });
    await until(() => client.replied(out) && rt.calls.includes(`attach ${cid}`));
    client.send(stdin, 'ping');
    await until(() => client.received(out).data === 'ping');
    rt.exitContainer(cid, 0);
    await until(() => client.resetStatus(err) !== undefined, 'the end of the attach');
    expect(JSON.parse(client.received(err).data)).to.deep.equal({ status: 'Success' });
  });

  it('forwards a port: data stream joined to the runtime stream, pairs by requestID', async () => {
    const { client, head } = await spdy(port, '/portForward/default/web', ['portforward.k8s.io'], pki.admin);
    expect(head).to.include('X-Stream-Protocol-Version: portforward.k8s.io');
    const e1 = await client.openStream({ streamType: 'error', port: '8080', requestID: '0' });
    const d1 = await client.openStream({ streamType: 'data', port: '8080', requestID: '0' });
    await until(() => client.replied(d1));
    client.send(d1, 'echo me');
    // The fake runtime's port is an echo.
    await until(() => client.received(d1).data === 'echo me', 'the echo');
    client.send(d1, '', true);
    await until(() => client.received(d1).fin && client.received(e1).fin, 'both streams to close');
    expect(client.received(e1).data).to.equal('');
    expect(rt.calls).to.include(`portForward ${sid} 8080`);
    // A stream without a port is refused.
    const bad = await client.openStream({ streamType: 'data' });
    await until(() => client.resetStatus(bad) !== undefined);
    expect(client.resetStatus(bad)).to.equal(3);
  });

  it('reports a failed port connection on the error stream and resets the pair', async () => {
    rt.injectErrors.set('portForward', new Error('connection refused'));
    const { client } = await spdy(port, '/portForward/default/web', ['portforward.k8s.io'], pki.admin);
    const e1 = await client.openStream({ streamType: 'error', port: '9', requestID: '7' });
    const d1 = await client.openStream({ streamType: 'data', port: '9', requestID: '7' });
    await until(() => client.resetStatus(d1) !== undefined, 'the reset');
    expect(client.received(e1).data).to.match(/^error forwarding port 9 to pod/);
  });
});
