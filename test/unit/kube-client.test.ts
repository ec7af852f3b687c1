// lib/kube: the kubeconfig reader, and the API client against a local HTTPS
// server that asks for client certificates: one connection for many calls, a
// rotated certificate file used without a restart, Status errors and timeouts
// mapped to ApiErrors, tokens, and a watch stream.
import { expect } from 'chai';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { TLSSocket } from 'node:tls';
import { ensureCA, ensureCert, type KeyCert } from '../../cluster/pki.ts';
import { KubeClient, queryString, readBody } from '../../lib/kube/client.ts';
import { PassThrough } from 'node:stream';
import { ApiError, apiStatus, getOrUndefined } from '../../lib/kube/errors.ts';
import { parseKubeconfig } from '../../lib/kube/kubeconfig.ts';
import { errorCode } from '../../lib/errors.ts';

const kubeconfig = (user: Record<string, unknown>, cluster: Record<string, unknown> = { server: 'https://10.0.0.1:6443/' }) => `
apiVersion: v1
kind: Config
clusters: [{name: c, cluster: ${JSON.stringify(cluster)}}]
users: [{name: u, user: ${JSON.stringify(user)}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
`;

describe('lib/kube/kubeconfig', () => {
  it('reads files relative to the kubeconfig, inline data decoded, the server without a trailing slash', () => {
    const k = parseKubeconfig(kubeconfig({ 'client-certificate': 'pki/c.pem', 'client-key': '/abs/k.pem' }, { server: 'https://10.0.0.1:6443/', 'certificate-authority-data': Buffer.from('CA PEM').toString('base64') }), '/etc/n');
    expect(k).to.deep.equal({ server: 'https://10.0.0.1:6443', ca: { data: 'CA PEM' }, clientCert: { file: '/etc/n/pki/c.pem' }, clientKey: { file: '/abs/k.pem' } });
  });

  it('takes a token or a tokenFile, and insecure-skip-tls-verify', () => {
    expect(parseKubeconfig(kubeconfig({ token: 'abc' }, { server: 'https://h:1', 'insecure-skip-tls-verify': true }), '/d')).to.deep.equal({
      server: 'https://h:1',
      insecureSkipTLSVerify: true,
      token: { data: 'abc' },
    });
    expect(parseKubeconfig(kubeconfig({ tokenFile: 't' }), '/d').token).to.deep.equal({ file: '/d/t' });
  });

  const bad: Array<[string, string, RegExp]> = [
    ['not YAML', ':\n  - : [', /not YAML/],
    ['no context', 'apiVersion: v1\nkind: Config\n', /no current-context/],
    ['exec plugins', kubeconfig({ exec: { command: 'x' } }), /'exec' is not supported/],
    ['a certificate without its key', kubeconfig({ 'client-certificate': 'c' }), /needs its key/],
    ['a server that is not a URL', kubeconfig({}, { server: 'nope' }), /not a URL/],
    ['no server', kubeconfig({}, {}), /no server/],
  ];
  for (const [what, text, msg] of bad) {
    it(`refuses ${what} with CONFIG_INVALID`, () => {
      let err: unknown;
      try {
        parseKubeconfig(text, '/d');
      } catch (e) {
        err = e;
      }
      expect(errorCode(err)).to.equal('CONFIG_INVALID');
      expect((err as Error).message).to.match(msg);
    });
  }
});

describe('lib/kube/client', function () {
  this.timeout(60_000);
  let dir: string;
  let ca: KeyCert;
  let server: https.Server;
  let url: string;
  let connections: number;
  let seen: Array<{ method: string; url: string; cn: string; auth: string; type: string; body: string }>;
  let reply: (req: http.IncomingMessage, res: http.ServerResponse) => void;
  const clientA = () => ({ certPath: path.join(dir, 'a.crt'), keyPath: path.join(dir, 'a.key') });
  const clientB = () => ({ certPath: path.join(dir, 'b.crt'), keyPath: path.join(dir, 'b.key') });

  before(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'nodelet-kube-client-'));
    ca = await ensureCA(dir, 'test-ca');
    const srv = await ensureCert(dir, ca, { name: 'srv', cn: 'apiserver', ipSANs: ['127.0.0.1'], usage: 'server' });
    await ensureCert(dir, ca, { name: 'a', cn: 'node-a', usage: 'client' });
    await ensureCert(dir, ca, { name: 'b', cn: 'node-b', usage: 'client' });
    server = https.createServer({ cert: readFileSync(srv.certPath), key: readFileSync(srv.keyPath), ca: readFileSync(ca.certPath), requestCert: true, rejectUnauthorized: false }, (req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        const cn = (req.socket as TLSSocket).getPeerCertificate()?.subject?.CN ?? '';
        seen.push({ method: req.method ?? '', url: req.url ?? '', cn: String(cn), auth: req.headers.authorization ?? '', type: req.headers['content-type'] ?? '', body });
        reply(req, res);
      });
    });
    server.on('secureConnection', () => connections++);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  after(async () => {
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
    rmSync(dir, { recursive: true, force: true });
  });

  beforeEach(() => {
    connections = 0;
    seen = [];
    reply = (_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end('{"kind":"Node","metadata":{"name":"n1"}}');
  });

  /** A client whose certificate and key live in one file (as the node's credentials), which tests may replace. */
  function certClient(pemFile: string, extra: { timeoutMs?: number } = {}): KubeClient {
    return new KubeClient({ server: url, ca: { file: ca.certPath }, clientCert: { file: pemFile }, clientKey: { file: pemFile } }, { reloadCheckMs: 0, ...extra });
  }
  function writePem(file: string, kc: KeyCert): void {
    writeFileSync(`${file}.tmp`, readFileSync(kc.certPath, 'utf8') + readFileSync(kc.keyPath, 'utf8'));
    copyFileSync(`${file}.tmp`, file);
  }

  it('sends JSON, parses JSON, and reuses one TLS connection for sequential calls', async () => {
    const pem = path.join(dir, 'seq.pem');
    writePem(pem, clientA());
    const c = certClient(pem);
    try {
      for (let i = 0; i < 5; i++) {
        const n = await c.request<{ metadata: { name: string } }>('get node n1', 'GET', '/api/v1/nodes/n1', { query: { a: 1, skip: undefined } });
        expect(n.metadata.name).to.equal('n1');
      }
      await c.request('patch node n1 status', 'PATCH', '/api/v1/nodes/n1/status', { body: { status: {} }, contentType: 'application/merge-patch+json' });
    } finally {
      c.close();
    }
    expect(connections).to.equal(1);
    expect(seen.map((s) => `${s.method} ${s.url} ${s.cn}`)).to.deep.equal([
      ...Array.from({ length: 5 }, () => 'GET /api/v1/nodes/n1?a=1 node-a'),
      'PATCH /api/v1/nodes/n1/status node-a',
    ]);
    expect(seen[5]).to.include({ type: 'application/merge-patch+json', body: '{"status":{}}' });
  });

  it('uses a certificate file replaced on disk for the next call, without a restart', async () => {
    const pem = path.join(dir, 'rot.pem');
    writePem(pem, clientA());
    const c = certClient(pem);
    try {
      await c.request('get', 'GET', '/x');
      writePem(pem, clientB());
      await c.request('get', 'GET', '/x');
      await c.request('get', 'GET', '/x');
    } finally {
      c.close();
    }
    expect(seen.map((s) => s.cn)).to.deep.equal(['node-a', 'node-b', 'node-b']);
    expect(connections).to.equal(2);
  });

  it('maps a Status answer to an ApiError with the HTTP status, reason and message', async () => {
    reply = (_req, res) => res.writeHead(404, { 'content-type': 'application/json' }).end('{"kind":"Status","reason":"NotFound","message":"nodes \\"n9\\" not found","code":404}');
    const pem = path.join(dir, 'err.pem');
    writePem(pem, clientA());
    const c = certClient(pem);
    let err: unknown;
    try {
      await c.request('get node n9', 'GET', '/api/v1/nodes/n9');
    } catch (e) {
      err = e;
    }
    expect(err).to.be.instanceOf(ApiError);
    expect(apiStatus(err)).to.equal(404);
    expect((err as Error).message).to.equal('get node n9: HTTP 404: NotFound: nodes "n9" not found');
    expect(await getOrUndefined(c.request('get node n9', 'GET', '/api/v1/nodes/n9'))).to.equal(undefined);
    reply = (_req, res) => res.writeHead(409).end('{"kind":"Status","reason":"Conflict","message":"changed"}');
    const conflict = await c.request('update lease', 'PUT', '/l', { body: {} }).catch((e: unknown) => e);
    expect(errorCode(conflict)).to.equal('API_CONFLICT');
    c.close();
  });

  it('gives up on a server that does not answer within the timeout (no HTTP status)', async () => {
    reply = () => undefined; // never answers
    const pem = path.join(dir, 'slow.pem');
    writePem(pem, clientA());
    const c = certClient(pem, { timeoutMs: 200 });
    const err = await c.request('get node n1', 'GET', '/api/v1/nodes/n1').catch((e: unknown) => e);
    c.close();
    server.closeAllConnections();
    expect(errorCode(err)).to.equal('API_ERROR');
    expect(apiStatus(err)).to.equal(undefined);
    expect((err as Error).message).to.match(/^get node n1: no answer within 200 ms/);
  });

  it('sends a bearer token, and refuses a server whose certificate the CA did not sign', async () => {
    const c = new KubeClient({ server: url, ca: { file: ca.certPath }, token: { data: 'tok123' } });
    await c.request('get', 'GET', '/y');
    c.close();
    expect(seen[0]).to.include({ auth: 'Bearer tok123', cn: '' });
    const other = await ensureCA(path.join(dir, 'other'), 'other-ca');
    const wrong = new KubeClient({ server: url, ca: { file: other.certPath } });
    const err = await wrong.request('get', 'GET', '/y').catch((e: unknown) => e);
    wrong.close();
    expect(apiStatus(err)).to.equal(undefined);
    expect((err as Error).message).to.match(/certificate/i);
  });

  it('streams a watch line by line until the caller aborts', async () => {
    reply = (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{"type":"ADDED","object":{"metadata":{"name":"a"}}}\n{"type":"MOD');
      setTimeout(() => res.write('IFIED","object":{"metadata":{"name":"a"}}}\n'), 50);
    };
    const c = new KubeClient({ server: url, ca: { file: ca.certPath } });
    const ac = new AbortController();
    const res = await c.stream('watch nodes', '/api/v1/nodes', { query: { watch: true }, signal: ac.signal });
    let text = '';
    try {
      for await (const chunk of res) {
        text += String(chunk);
        if (text.split('\n').length > 2) ac.abort();
      }
    } catch (err) {
      // Aborting destroys the request: the stream ends with an error the owner expects.
      expect(ac.signal.aborted, String(err)).to.equal(true);
    }
    c.close();
    expect(text.trim().split('\n').map((l) => (JSON.parse(l) as { type: string }).type)).to.deep.equal(['ADDED', 'MODIFIED']);
    expect(seen[0]?.url).to.equal('/api/v1/nodes?watch=true');
  });

  it('builds query strings without undefined values', () => {
    expect(queryString({ a: 'x y', b: undefined, c: false })).to.equal('?a=x+y&c=false');
    expect(queryString({})).to.equal('');
  });

  it('reads a body and then lets go of it: no listener of its own stays on the response', async () => {
    // Node's agent keeps a socket's first response reachable; what our listeners hold must not stay with it.
    const res = new PassThrough();
    const body = readBody(res);
    res.write('{"kind":');
    res.write('"List"}');
    res.end();
    expect(await body).to.equal('{"kind":"List"}');
    expect(['data', 'end', 'aborted'].map((e) => res.listenerCount(e))).to.deep.equal([0, 0, 0]);
    expect(res.listenerCount('error')).to.equal(1); // the no-op one, so a late error is not unhandled
    res.emit('error', new Error('late')); // does not throw

    const broken = new PassThrough();
    const failed = readBody(broken);
    broken.write('{"ki');
    broken.emit('aborted');
    let err: unknown;
    await failed.catch((e: unknown) => (err = e));
    expect(String(err)).to.match(/closed before the answer was complete/);
    expect(['data', 'end', 'aborted'].map((e) => broken.listenerCount(e))).to.deep.equal([0, 0, 0]);
  });
});
