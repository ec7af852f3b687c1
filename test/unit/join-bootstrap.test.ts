// The join's network flows against a fake API server (a JsonRequester that
// answers like kube-apiserver and signs CSRs with a test CA through openssl):
// discovery with retries and its failures, the TLS bootstrap, and client
// certificate rotation driven by a FakeClock. Addresses are TEST-NET-1
// (192.0.2.0/24, RFC 5737): nothing is ever dialled.
import { expect } from 'chai';
import { X509Certificate, type KeyObject } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { clusterInfoKubeconfig } from '../../cluster/bootstrap.ts';
import { caCertHash, ensureCA, type KeyCert } from '../../cluster/pki.ts';
import { CLUSTER_INFO_PATH, CSR_PATH, discover, requestClientCertificate } from '../../agent/join/bootstrap.ts';
import { generateNodeKey } from '../../agent/join/csr.ts';
import { credentialPaths, readCredentials, writeCredentials } from '../../agent/join/credentials.ts';
import { signDetachedJws } from '../../agent/join/discovery.ts';
import type { Endpoint, JsonRequester, JsonResponse } from '../../agent/join/http.ts';
import { NodeletError, errorCode } from '../../lib/errors.ts';
import { exec } from '../../lib/exec.ts';
import { nullLogger } from '../../lib/log.ts';
import { ClientCertRotator, rotationDeadline } from '../../agent/join/rotation.ts';
import { FakeClock, settle } from '../fakes/clock.ts';

const SERVER = 'https://192.0.2.1:6443';
const TOKEN = { id: 'abcdef', secret: '0123456789abcdef' };

interface Call { ep: Endpoint; method: string; path: string; body?: unknown }

/** A kube-apiserver for the join: cluster-info, and CSRs signed after `pendingPolls` reads. */
class FakeApi {
  calls: Call[] = [];
  clusterInfo: Record<string, string> | undefined;
  /** cluster-info reads that still lack the signature. */
  unsignedReads = 0;
  pendingPolls = 1;
  deny = false;
  unreachable = false;
  createStatus = 201;
  private csrs = new Map<string, { request: string; polls: number; certificate?: string }>();
  private readonly ca: KeyCert;
  private readonly dir: string;

  constructor(ca: KeyCert, dir: string, kubeconfig: string) {
    this.ca = ca;
    this.dir = dir;
    this.clusterInfo = { kubeconfig, [`jws-kubeconfig-${TOKEN.id}`]: signDetachedJws(kubeconfig, TOKEN) };
  }

  request: JsonRequester = async (ep, method, p, body) => {
    this.calls.push({ ep, method, path: p, body });
    if (this.unreachable) throw new NodeletError('JOIN_UNREACHABLE', `cannot reach the API server at ${ep.server}: ECONNREFUSED`);
    if (p === CLUSTER_INFO_PATH) {
      if (!this.clusterInfo) return { status: 404, body: { message: 'not found' } };
      if (this.unsignedReads > 0) {
        this.unsignedReads--;
        return { status: 200, body: { data: { kubeconfig: this.clusterInfo['kubeconfig'] } } };
      }
      return { status: 200, body: { data: this.clusterInfo } };
    }
    if (p === CSR_PATH && method === 'POST') {
      if (this.createStatus !== 201) return { status: this.createStatus, body: { message: 'nope' } };
      const name = `node-csr-${this.csrs.size}`;
      this.csrs.set(name, { request: (body as any).spec.request, polls: 0 });
      return { status: 201, body: { metadata: { name } } };
    }
    const name = p.startsWith(`${CSR_PATH}/`) ? p.slice(CSR_PATH.length + 1) : '';
    const csr = this.csrs.get(name);
    if (!csr) return { status: 404, body: { message: `${p} not found` } };
    if (this.deny) return { status: 200, body: { status: { conditions: [{ type: 'Denied', status: 'True', reason: 'Test', message: 'denied by test' }] } } };
    if (++csr.polls <= this.pendingPolls) return { status: 200, body: { status: {} } };
    csr.certificate ??= await this.sign(Buffer.from(csr.request, 'base64').toString());
    return { status: 200, body: { status: { certificate: Buffer.from(csr.certificate).toString('base64') } } } satisfies JsonResponse;
  };

  private async sign(csrPem: string): Promise<string> {
    const csrFile = path.join(this.dir, `req-${Math.random().toString(36).slice(2)}.csr`);
    fs.writeFileSync(csrFile, csrPem);
    const r = await exec('openssl', ['x509', '-req', '-in', csrFile, '-CA', this.ca.certPath, '-CAkey', this.ca.keyPath, '-days', '1', '-set_serial', String(Date.now())]);
    return r.stdout;
  }
}

describe('join: discovery and TLS bootstrap (fake API server)', function () {
  this.timeout(30_000);
  let dir: string;
  let ca: KeyCert;
  let caPem: string;
  let kubeconfig: string;
  let api: FakeApi;
  let clock: FakeClock;
  const log = nullLogger();

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'join-bootstrap-'));
    ca = await ensureCA(dir, 'test-ca');
    caPem = fs.readFileSync(ca.certPath, 'utf8');
    kubeconfig = clusterInfoKubeconfig(SERVER, caPem);
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));
  beforeEach(() => {
    api = new FakeApi(ca, dir, kubeconfig);
    clock = new FakeClock(Date.now());
  });

  const deps = () => ({ request: api.request, clock, log });

  async function codeOf(p: Promise<unknown>): Promise<string | undefined> {
    try {
      await p;
    } catch (err) {
      return errorCode(err);
    }
    return undefined;
  }

  describe('discover', () => {
    it('reads cluster-info without verification, then again over the pinned CA from the server it names', async () => {
      const info = await discover(deps(), 'https://192.0.2.9:6443', TOKEN, [caCertHash(caPem)], 10_000);
      expect(info).to.deep.equal({ server: SERVER, caPem });
      expect(api.calls.map((c) => [c.ep.server, c.ep.insecure === true, c.ep.caPem === caPem])).to.deep.equal([
        ['https://192.0.2.9:6443', true, false],
        [SERVER, false, true],
      ]);
      expect(api.calls.every((c) => c.ep.bearerToken === undefined)).to.equal(true);
    });

    it('waits for the bootstrapsigner’s signature, up to the timeout', async () => {
      api.unsignedReads = 3;
      const p = discover(deps(), SERVER, TOKEN, [caCertHash(caPem)], 10_000);
      await clock.advance(5_000);
      expect((await p).server).to.equal(SERVER);

      api.unsignedReads = 100;
      const late = codeOf(discover(deps(), SERVER, TOKEN, [caCertHash(caPem)], 3_000));
      await clock.advance(10_000);
      expect(await late).to.equal('JOIN_NO_SIGNATURE');
    });

    it('fails at once on a wrong secret, a CA mismatch, a missing cluster-info or an unreachable server', async () => {
      expect(await codeOf(discover(deps(), SERVER, { id: TOKEN.id, secret: 'ffffffffffffffff' }, [caCertHash(caPem)], 60_000))).to.equal('JOIN_TOKEN_INVALID');
      expect(await codeOf(discover(deps(), SERVER, TOKEN, [`sha256:${'0'.repeat(64)}`], 60_000))).to.equal('JOIN_CA_HASH_MISMATCH');
      api.clusterInfo = undefined;
      expect(await codeOf(discover(deps(), SERVER, TOKEN, [caCertHash(caPem)], 60_000))).to.equal('JOIN_DISCOVERY_INVALID');
      api.unreachable = true;
      expect(await codeOf(discover(deps(), SERVER, TOKEN, [caCertHash(caPem)], 60_000))).to.equal('JOIN_UNREACHABLE');
    });
  });

  describe('requestClientCertificate', () => {
    const ep = (): Endpoint => ({ server: SERVER, caPem, bearerToken: `${TOKEN.id}.${TOKEN.secret}` });

    it('posts a kube-apiserver-client-kubelet CSR with the token and returns the issued certificate for our key', async () => {
      const key = generateNodeKey();
      api.pendingPolls = 2;
      const p = requestClientCertificate(deps(), ep(), key, 'node-a', 60_000);
      await clock.advance(5_000);
      const cert = new X509Certificate(await p);
      expect(cert.checkPrivateKey(key)).to.equal(true);
      expect(cert.subject.split('\n').sort()).to.deep.equal(['CN=system:node:node-a', 'O=system:nodes']);
      const post = api.calls.find((c) => c.method === 'POST')!;
      expect(post.ep.bearerToken).to.equal(`${TOKEN.id}.${TOKEN.secret}`);
      expect((post.body as any).spec).to.include({ signerName: 'kubernetes.io/kube-apiserver-client-kubelet' });
      expect((post.body as any).spec.usages).to.deep.equal(['digital signature', 'client auth']);
      expect(api.calls.filter((c) => c.method === 'GET')).to.have.length(3);
    });

    it('maps 401, 403, Denied and no answer to their own errors', async () => {
      const key = generateNodeKey();
      api.createStatus = 401;
      expect(await codeOf(requestClientCertificate(deps(), ep(), key, 'n', 60_000))).to.equal('JOIN_TOKEN_REJECTED');
      api.createStatus = 403;
      expect(await codeOf(requestClientCertificate(deps(), ep(), key, 'n', 60_000))).to.equal('JOIN_FORBIDDEN');
      api.createStatus = 201;
      api.deny = true;
      expect(await codeOf(requestClientCertificate(deps(), ep(), key, 'n', 60_000))).to.equal('JOIN_CSR_DENIED');
      api.deny = false;
      api.pendingPolls = 1_000;
      const p = codeOf(requestClientCertificate(deps(), ep(), key, 'n', 5_000));
      await clock.advance(10_000);
      expect(await p).to.equal('JOIN_CSR_TIMEOUT');
    });

    it('refuses a certificate for another key', async () => {
      const key = generateNodeKey();
      const other: KeyObject = generateNodeKey();
      const real = api.request;
      // Swap the request in the CSR for one made with a different key.
      api.request = async (e, m, p, b) => {
        if (m === 'POST') {
          const { buildCsrPem } = await import('../../agent/join/csr.ts');
          (b as any).spec.request = Buffer.from(buildCsrPem(other, { cn: 'system:node:n', orgs: ['system:nodes'] })).toString('base64');
        }
        return real(e, m, p, b);
      };
      api.pendingPolls = 0;
      expect(await codeOf(requestClientCertificate(deps(), ep(), key, 'n', 60_000))).to.equal('JOIN_CSR_FAILED');
    });
  });

  describe('client certificate rotation', () => {
    it('rotation deadline: 70-90% of the lifetime', () => {
      expect(rotationDeadline(0, 1000, 0)).to.equal(700);
      expect(rotationDeadline(0, 1000, 0.5)).to.equal(800);
      expect(rotationDeadline(0, 1000, 0.999)).to.be.within(899, 900);
      expect(rotationDeadline(100, 1100, 7)).to.equal(1000); // jitter clamped
    });

    it('renews with the current certificate at the deadline and swaps the PEM in place', async () => {
      const paths = credentialPaths(path.join(dir, `creds-${Date.now()}`));
      const key = generateNodeKey();
      api.pendingPolls = 0;
      const first = await requestClientCertificate(deps(), { server: SERVER, caPem }, key, 'node-r', 60_000);
      await writeCredentials(paths, { server: SERVER, caPem, certPem: first, key });
      const before = readCredentials(paths)!;
      api.calls = [];

      const rotator = new ClientCertRotator({ request: api.request, clock, log, paths, nodeName: 'node-r', random: () => 0 });
      const abort = new AbortController();
      rotator.start(abort.signal);
      await settle();
      const life = before.cert.validToDate.getTime() - before.cert.validFromDate.getTime();
      // Not before 70% of the lifetime (1 day certificates here).
      await clock.advance(Math.floor(life * 0.7) - (clock.now() - before.cert.validFromDate.getTime()) - 60_000);
      expect(rotator.rotations).to.equal(0);
      expect(api.calls).to.have.length(0);
      await clock.advance(120_000);
      await waitUntil(() => rotator.rotations === 1);
      abort.abort();
      await rotator.stop();

      const after = readCredentials(paths)!;
      expect(after.cert.fingerprint256).to.not.equal(before.cert.fingerprint256);
      expect(after.keyPem).to.not.equal(before.keyPem);
      expect(after.cert.subject).to.equal(before.cert.subject);
      const post = api.calls.find((c) => c.method === 'POST')!;
      expect(post.ep.clientCertPem).to.equal(before.certPem);
      expect(post.ep.bearerToken).to.equal(undefined);
    });
  });
});

/** Real-time wait for work that runs openssl (outside the fake clock). */
async function waitUntil(cond: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}
