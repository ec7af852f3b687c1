// The serving certificate through a kubelet-serving CSR: the CSR's content,
// waiting for issue with the self-signed fallback, storing and reusing the
// issued pair. The "signer" is openssl with a test CA (as the controller-manager
// signs with the cluster CA).
import { expect } from 'chai';
import type { V1CertificateSigningRequest } from '@kubernetes/client-node';
import { X509Certificate } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { generateNodeKey } from '../../agent/join/csr.ts';
import {
  ipBytes,
  KUBELET_SERVING_SIGNER,
  ServingCertManager,
  servingCsrObject,
  servingIdentity,
  servingPemPath,
  servingTLS,
  type CsrApi,
  type IssuedCert,
} from '../../agent/server/servingcert.ts';
import { ensureCA, type KeyCert } from '../../cluster/pki.ts';
import { realClock } from '../../lib/clock.ts';
import { exec } from '../../lib/exec.ts';
import { nullLogger } from '../../lib/log.ts';

const ID = servingIdentity({ nodeName: 'node-a', hostname: 'host-a', nodeIP: '192.0.2.10' });

class FakeCsrApi implements CsrApi {
  readonly csrs = new Map<string, V1CertificateSigningRequest>();
  async create(csr: V1CertificateSigningRequest): Promise<string> {
    const name = `csr-${this.csrs.size + 1}`;
    this.csrs.set(name, { ...csr, metadata: { name } });
    return name;
  }
  async get(name: string): Promise<V1CertificateSigningRequest> {
    return structuredClone(this.csrs.get(name)!);
  }
}

async function sign(dir: string, ca: KeyCert, csr: V1CertificateSigningRequest): Promise<string> {
  const csrFile = path.join(dir, 'req.csr');
  writeFileSync(csrFile, Buffer.from(csr.spec.request, 'base64'));
  const r = await exec('openssl', ['x509', '-req', '-in', csrFile, '-CA', ca.certPath, '-CAkey', ca.keyPath, '-days', '30', '-copy_extensions', 'copyall', '-set_serial', '7']);
  return r.stdout;
}

describe('server/servingcert', function () {
  this.timeout(30_000);
  let dir: string;
  let ca: KeyCert;

  beforeEach(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'servingcert-'));
    ca = await ensureCA(path.join(dir, 'ca'), 'test-ca');
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('encodes IPv4 and IPv6 addresses for the iPAddress SAN', () => {
    expect([...ipBytes('192.0.2.10')]).to.deep.equal([192, 0, 2, 10]);
    expect(ipBytes('2001:db8::1').toString('hex')).to.equal('20010db8000000000000000000000001');
    expect(ipBytes('::ffff:192.0.2.1').toString('hex')).to.equal('00000000000000000000ffffc0000201');
    expect(() => ipBytes('nope')).to.throw(/not an IP/);
  });

  it('asks the kubelet-serving signer for O=system:nodes, CN=system:node:<name> with DNS and IP SANs', async () => {
    expect(ID).to.deep.equal({ nodeName: 'node-a', dnsNames: ['node-a', 'host-a'], ips: ['192.0.2.10'] });
    const csr = servingCsrObject(generateNodeKey(), ID);
    expect(csr.spec.signerName).to.equal(KUBELET_SERVING_SIGNER);
    expect(csr.spec.usages).to.deep.equal(['digital signature', 'key encipherment', 'server auth']);
    // openssl verifies the request's signature and reads the SANs back.
    const file = path.join(dir, 'x.csr');
    writeFileSync(file, Buffer.from(csr.spec.request, 'base64'));
    const text = (await exec('openssl', ['req', '-in', file, '-noout', '-text', '-verify'])).stdout;
    expect(text).to.match(/Subject: O\s*=\s*system:nodes, CN\s*=\s*system:node:node-a/);
    expect(text).to.include('DNS:node-a, DNS:host-a, IP Address:192.0.2.10');
  });

  it('starts self-signed when nothing is issued in time, then delivers the issued certificate and stores it', async () => {
    const api = new FakeCsrApi();
    const abort = new AbortController();
    const m = new ServingCertManager({ api, clock: realClock, log: nullLogger(), rootDir: dir, identity: ID, pollMs: 20 });
    const t = await servingTLS(m, 50, abort.signal, async () => ({ cert: 'SELF', key: 'SELFKEY' }));
    expect(t).to.deep.include({ cert: 'SELF', key: 'SELFKEY', issued: false });
    expect([...api.csrs.keys()]).to.deep.equal(['csr-1']);
    const got = new Promise<IssuedCert>((resolve) => t.whenIssued(resolve));
    const csr = api.csrs.get('csr-1')!;
    csr.status = { conditions: [{ type: 'Approved', status: 'True', reason: 'test', message: '' } as never], certificate: Buffer.from(await sign(dir, ca, csr)).toString('base64') };
    const issued = await got;
    expect(issued.cert.verify(new X509Certificate(readFileSync(ca.certPath)).publicKey)).to.equal(true);
    expect(issued.cert.subjectAltName).to.include('IP Address:192.0.2.10');
    await m.settled();
    expect(existsSync(servingPemPath(dir))).to.equal(true);
    // A restart reuses the stored pair without a new CSR.
    const again = new FakeCsrApi();
    const m2 = new ServingCertManager({ api: again, clock: realClock, log: nullLogger(), rootDir: dir, identity: ID, pollMs: 20 });
    const t2 = await servingTLS(m2, 50, abort.signal, async () => ({ cert: 'SELF', key: 'SELFKEY' }));
    expect(t2.issued).to.equal(true);
    expect(t2.cert).to.equal(issued.certPem);
    expect(again.csrs.size).to.equal(0);
    // Another node's stored certificate is not used.
    const other = new ServingCertManager({ api: again, clock: realClock, log: nullLogger(), rootDir: dir, identity: { ...ID, nodeName: 'node-b' }, pollMs: 20 });
    const t3 = await servingTLS(other, 30, abort.signal, async () => ({ cert: 'SELF', key: 'SELFKEY' }));
    expect(t3.issued).to.equal(false);
    abort.abort();
    await other.settled();
  });

  it('uses the issued certificate at once when it comes within the first wait', async () => {
    const api = new FakeCsrApi();
    const signed = (async () => {
      while (!api.csrs.has('csr-1')) await realClock.sleep(5);
      const csr = api.csrs.get('csr-1')!;
      csr.status = { certificate: Buffer.from(await sign(dir, ca, csr)).toString('base64') };
    })();
    const m = new ServingCertManager({ api, clock: realClock, log: nullLogger(), rootDir: dir, identity: ID, pollMs: 20 });
    const t = await servingTLS(m, 20_000, new AbortController().signal, async () => ({ cert: 'SELF', key: 'SELFKEY' }));
    await signed;
    expect(t.issued).to.equal(true);
    expect(String(t.cert)).to.include('BEGIN CERTIFICATE');
  });

  it('makes a new CSR after a denied one', async () => {
    const api = new FakeCsrApi();
    const abort = new AbortController();
    const sleeps: number[] = [];
    // Records the pauses without taking them (but yields, so the test's own timers run).
    const clock = { now: () => Date.now(), sleep: (ms: number) => new Promise<void>((resolve) => (sleeps.push(ms), setImmediate(resolve))) };
    const m = new ServingCertManager({ api, clock, log: nullLogger(), rootDir: dir, identity: ID, pollMs: 1 });
    const denyFirst = (async () => {
      while (!api.csrs.has('csr-1')) await realClock.sleep(1);
      api.csrs.get('csr-1')!.status = { conditions: [{ type: 'Denied', status: 'True', reason: 'NotOurs', message: '' } as never] };
      while (!api.csrs.has('csr-2')) await realClock.sleep(1);
      abort.abort();
    })();
    await servingTLS(m, 10, abort.signal, async () => ({ cert: 'SELF', key: 'SELFKEY' }));
    await denyFirst;
    await m.settled();
    expect(api.csrs.size).to.equal(2);
    expect(sleeps).to.include(30_000);
  });
});
