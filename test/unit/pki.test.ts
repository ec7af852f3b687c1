import { expect } from 'chai';
import { X509Certificate, createPrivateKey, createPublicKey } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parse } from 'yaml';
import {
  caCertHash,
  ensureCA,
  ensureCert,
  ensureKeyPair,
  kubeconfigYaml,
  writeKubeconfig,
} from '../../cluster/pki.ts';
import type { KeyCert } from '../../cluster/pki.ts';
import { errorCode } from '../../lib/errors.ts';
import { exec } from '../../lib/exec.ts';

const SERVER_AUTH = '1.3.6.1.5.5.7.3.1';
const CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';

const load = (p: string) => new X509Certificate(fs.readFileSync(p));
const mode = (p: string) => fs.statSync(p).mode & 0o777;

function sans(cert: X509Certificate): { dns: string[]; ips: string[] } {
  const out = { dns: [] as string[], ips: [] as string[] };
  for (const e of (cert.subjectAltName ?? '').split(', ').filter(Boolean)) {
    if (e.startsWith('DNS:')) out.dns.push(e.slice(4));
    else if (e.startsWith('IP Address:')) out.ips.push(e.slice(11));
    else throw new Error(`unexpected SAN ${e}`);
  }
  return out;
}

describe('cluster/pki', function () {
  this.timeout(60_000); // RSA key generation
  let dir: string;
  let ca: KeyCert;

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nodelet-pki-'));
    ca = await ensureCA(path.join(dir, 'pki'), 'test-ca');
  });
  after(() => {
    fs.rmSync(dir, { recursive: true, force: true });
  });

  describe('ensureCA', () => {
    it('makes a self-signed 10-year CA with a 0600 key', () => {
      expect(ca.certPath).to.equal(path.join(dir, 'pki', 'ca.crt'));
      expect(ca.keyPath).to.equal(path.join(dir, 'pki', 'ca.key'));
      const cert = load(ca.certPath);
      expect(cert.ca).to.equal(true);
      expect(cert.subject).to.equal('CN=test-ca');
      expect(cert.checkIssued(cert)).to.equal(true);
      expect(cert.verify(cert.publicKey)).to.equal(true);
      expect(cert.checkPrivateKey(createPrivateKey(fs.readFileSync(ca.keyPath)))).to.equal(true);
      const years = (cert.validToDate.getTime() - cert.validFromDate.getTime()) / (365 * 86400_000);
      expect(years).to.be.within(9.9, 10.1);
      expect(mode(ca.keyPath)).to.equal(0o600);
      // no temp files or scratch directories left behind
      expect(fs.readdirSync(path.join(dir, 'pki')).sort()).to.deep.equal(['ca.crt', 'ca.key']);
    });

    it('has CA:TRUE and keyCertSign+cRLSign (openssl view)', async () => {
      const { stdout } = await exec('openssl', ['x509', '-in', ca.certPath, '-noout', '-ext', 'basicConstraints,keyUsage']);
      expect(stdout).to.match(/CA:TRUE/);
      expect(stdout).to.match(/Certificate Sign, CRL Sign/);
    });

    it('reuses an existing pair', async () => {
      const before = fs.readFileSync(ca.certPath, 'utf8');
      const mtime = fs.statSync(ca.certPath).mtimeMs;
      const again = await ensureCA(path.join(dir, 'pki'), 'test-ca');
      expect(again).to.deep.equal(ca);
      expect(fs.readFileSync(ca.certPath, 'utf8')).to.equal(before);
      expect(fs.statSync(ca.certPath).mtimeMs).to.equal(mtime);
    });

    it('replaces a pair whose key does not match (interrupted run)', async () => {
      const d = path.join(dir, 'ca-mismatch');
      const first = await ensureCA(d);
      const other = await ensureCA(path.join(dir, 'ca-other'));
      fs.copyFileSync(other.keyPath, first.keyPath);
      const oldCert = fs.readFileSync(first.certPath, 'utf8');
      await ensureCA(d);
      const cert = load(first.certPath);
      expect(fs.readFileSync(first.certPath, 'utf8')).to.not.equal(oldCert);
      expect(cert.subject).to.equal('CN=nodelet-ca');
      expect(cert.checkPrivateKey(createPrivateKey(fs.readFileSync(first.keyPath)))).to.equal(true);
    });
  });

  describe('ensureCert', () => {
    it('server cert: exactly the requested SANs, serverAuth only, chain verifies', async () => {
      const kc = await ensureCert(path.join(dir, 'pki'), ca, {
        name: 'apiserver',
        cn: 'kube-apiserver',
        dnsSANs: ['kubernetes', 'kubernetes.default.svc', 'localhost'],
        ipSANs: ['10.96.0.1', '127.0.0.1', 'fd00::1'],
        usage: 'server',
      });
      expect(kc).to.deep.equal({
        certPath: path.join(dir, 'pki', 'apiserver.crt'),
        keyPath: path.join(dir, 'pki', 'apiserver.key'),
      });
      const cert = load(kc.certPath);
      const s = sans(cert);
      expect(s.dns.sort()).to.deep.equal(['kubernetes', 'kubernetes.default.svc', 'localhost']);
      expect(s.ips.sort()).to.deep.equal(['10.96.0.1', '127.0.0.1', 'FD00:0:0:0:0:0:0:1']);
      expect(cert.keyUsage).to.deep.equal([SERVER_AUTH]);
      expect(cert.ca).to.equal(false);
      expect(cert.subject).to.equal('CN=kube-apiserver');
      const caCert = load(ca.certPath);
      expect(cert.checkIssued(caCert)).to.equal(true);
      expect(cert.verify(caCert.publicKey)).to.equal(true);
      expect(cert.checkPrivateKey(createPrivateKey(fs.readFileSync(kc.keyPath)))).to.equal(true);
      expect(mode(kc.keyPath)).to.equal(0o600);
      const days = (cert.validToDate.getTime() - cert.validFromDate.getTime()) / 86400_000;
      expect(days).to.equal(365);

      const v = await exec('openssl', ['verify', '-CAfile', ca.certPath, kc.certPath]);
      expect(v.stdout.trim()).to.equal(`${kc.certPath}: OK`);
      const purpose = await exec('openssl', ['verify', '-CAfile', ca.certPath, '-purpose', 'sslserver', kc.certPath]);
      expect(purpose.code).to.equal(0);
      const ku = await exec('openssl', ['x509', '-in', kc.certPath, '-noout', '-ext', 'keyUsage']);
      expect(ku.stdout).to.match(/Digital Signature, Key Encipherment/);
    });

    it('client cert: CN and O in the subject, clientAuth only, no SANs', async () => {
      const kc = await ensureCert(path.join(dir, 'pki'), ca, {
        name: 'admin',
        cn: 'kubernetes-admin',
        orgs: ['system:masters', 'extra-group'],
        usage: 'client',
        days: 30,
      });
      const cert = load(kc.certPath);
      expect(cert.subject.split('\n')).to.deep.equal(['CN=kubernetes-admin', 'O=system:masters', 'O=extra-group']);
      expect(cert.keyUsage).to.deep.equal([CLIENT_AUTH]);
      expect(cert.subjectAltName).to.equal(undefined);
      const caCert = load(ca.certPath);
      expect(cert.checkIssued(caCert)).to.equal(true);
      expect(cert.verify(caCert.publicKey)).to.equal(true);
      const days = (cert.validToDate.getTime() - cert.validFromDate.getTime()) / 86400_000;
      expect(days).to.equal(30);
      const bad = await exec('openssl', ['verify', '-CAfile', ca.certPath, '-purpose', 'sslserver', kc.certPath], {
        allowFail: true,
      });
      expect(bad.code).to.not.equal(0);
    });

    it('usage both carries serverAuth and clientAuth', async () => {
      const kc = await ensureCert(path.join(dir, 'pki'), ca, {
        name: 'etcd-peer',
        cn: 'etcd',
        dnsSANs: ['localhost'],
        ipSANs: ['127.0.0.1'],
        usage: 'both',
      });
      expect(load(kc.certPath).keyUsage?.slice().sort()).to.deep.equal([SERVER_AUTH, CLIENT_AUTH].sort());
    });

    it('keeps /, + and \\ in the CN literal', async () => {
      const kc = await ensureCert(path.join(dir, 'pki'), ca, {
        name: 'odd',
        cn: 'a/b+c\\d',
        orgs: ['x+y'],
        usage: 'client',
      });
      const subj = load(kc.certPath).toLegacyObject().subject;
      expect(subj.CN).to.equal('a/b+c\\d');
      expect(subj.O).to.equal('x+y');
    });

    it('a cert from another CA does not verify', async () => {
      const other = await ensureCA(path.join(dir, 'other'), 'other-ca');
      const kc = await ensureCert(path.join(dir, 'other'), other, { name: 'srv', cn: 'srv', usage: 'server' });
      const cert = load(kc.certPath);
      const caCert = load(ca.certPath);
      expect(cert.checkIssued(caCert)).to.equal(false);
      expect(cert.verify(caCert.publicKey)).to.equal(false);
      const r = await exec('openssl', ['verify', '-CAfile', ca.certPath, kc.certPath], { allowFail: true });
      expect(r.code).to.not.equal(0);
      // and ensureCert against our CA replaces it with one that does verify
      fs.copyFileSync(kc.certPath, path.join(dir, 'pki', 'moved.crt'));
      fs.copyFileSync(kc.keyPath, path.join(dir, 'pki', 'moved.key'));
      const fixed = await ensureCert(path.join(dir, 'pki'), ca, { name: 'moved', cn: 'srv', usage: 'server' });
      expect(load(fixed.certPath).verify(caCert.publicKey)).to.equal(true);
    });

    it('reuses unchanged files and regenerates when SANs, O or usage change', async () => {
      const d = path.join(dir, 'pki');
      const spec = {
        name: 'kubelet',
        cn: 'system:node:w1',
        orgs: ['system:nodes'],
        dnsSANs: ['w1'],
        ipSANs: ['10.1.0.10'],
        usage: 'server' as const,
      };
      const kc = await ensureCert(d, ca, spec);
      const crt = fs.readFileSync(kc.certPath, 'utf8');
      const key = fs.readFileSync(kc.keyPath, 'utf8');
      const mtimes = [fs.statSync(kc.certPath).mtimeMs, fs.statSync(kc.keyPath).mtimeMs];

      // same spec (SANs in another order, duplicates) => untouched
      await ensureCert(d, ca, { ...spec, ipSANs: ['10.1.0.10', '10.1.0.10'], dnsSANs: ['w1'] });
      expect(fs.readFileSync(kc.certPath, 'utf8')).to.equal(crt);
      expect(fs.readFileSync(kc.keyPath, 'utf8')).to.equal(key);
      expect([fs.statSync(kc.certPath).mtimeMs, fs.statSync(kc.keyPath).mtimeMs]).to.deep.equal(mtimes);

      // new SAN => new cert with exactly the new SANs
      await ensureCert(d, ca, { ...spec, ipSANs: ['10.1.0.10', '10.1.0.11'] });
      const crt2 = fs.readFileSync(kc.certPath, 'utf8');
      expect(crt2).to.not.equal(crt);
      expect(sans(load(kc.certPath)).ips.sort()).to.deep.equal(['10.1.0.10', '10.1.0.11']);
      expect(load(kc.certPath).checkPrivateKey(createPrivateKey(fs.readFileSync(kc.keyPath)))).to.equal(true);

      // different O => regenerated
      await ensureCert(d, ca, { ...spec, ipSANs: ['10.1.0.10', '10.1.0.11'], orgs: ['other'] });
      const crt3 = fs.readFileSync(kc.certPath, 'utf8');
      expect(crt3).to.not.equal(crt2);
      expect(load(kc.certPath).toLegacyObject().subject.O).to.equal('other');

      // different usage => regenerated
      await ensureCert(d, ca, { ...spec, ipSANs: ['10.1.0.10', '10.1.0.11'], orgs: ['other'], usage: 'both' });
      expect(fs.readFileSync(kc.certPath, 'utf8')).to.not.equal(crt3);
      expect(load(kc.certPath).keyUsage?.length).to.equal(2);
    });

    it('replaces a pair whose key does not match the cert', async () => {
      const d = path.join(dir, 'pki');
      const a = await ensureCert(d, ca, { name: 'pa', cn: 'pa', usage: 'client' });
      const b = await ensureCert(d, ca, { name: 'pb', cn: 'pb', usage: 'client' });
      fs.copyFileSync(b.keyPath, a.keyPath); // as if killed between the two renames
      const old = fs.readFileSync(a.certPath, 'utf8');
      await ensureCert(d, ca, { name: 'pa', cn: 'pa', usage: 'client' });
      expect(fs.readFileSync(a.certPath, 'utf8')).to.not.equal(old);
      expect(load(a.certPath).checkPrivateKey(createPrivateKey(fs.readFileSync(a.keyPath)))).to.equal(true);
    });

    it('rejects bad specs with PKI_INVALID_SPEC before touching files', async () => {
      const d = path.join(dir, 'bad');
      for (const spec of [
        { name: 'x', cn: 'x', ipSANs: ['not-an-ip'], usage: 'server' as const },
        { name: 'x', cn: 'x', dnsSANs: ['a,IP:1.2.3.4'], usage: 'server' as const },
        { name: '../x', cn: 'x', usage: 'server' as const },
        { name: 'x', cn: '', usage: 'server' as const },
      ]) {
        let err: unknown;
        try {
          await ensureCert(d, ca, spec);
        } catch (e) {
          err = e;
        }
        expect(errorCode(err), JSON.stringify(spec)).to.equal('PKI_INVALID_SPEC');
      }
      expect(fs.existsSync(d)).to.equal(false);
    });
  });

  describe('ensureKeyPair', () => {
    it('writes a 0600 RSA key and its matching PEM public key, and reuses them', async () => {
      const d = path.join(dir, 'pki');
      const kp = await ensureKeyPair(d, 'sa');
      expect(kp).to.deep.equal({ keyPath: path.join(d, 'sa.key'), pubPath: path.join(d, 'sa.pub') });
      const key = createPrivateKey(fs.readFileSync(kp.keyPath));
      expect(key.asymmetricKeyType).to.equal('rsa');
      expect(key.asymmetricKeyDetails?.modulusLength).to.equal(2048);
      const pubText = fs.readFileSync(kp.pubPath, 'utf8');
      expect(pubText).to.match(/^-----BEGIN PUBLIC KEY-----\n/);
      const spki = (k: Parameters<typeof createPublicKey>[0]) =>
        createPublicKey(k).export({ type: 'spki', format: 'der' }).toString('hex');
      expect(spki(pubText)).to.equal(spki(key));
      expect(mode(kp.keyPath)).to.equal(0o600);

      const mtime = fs.statSync(kp.keyPath).mtimeMs;
      const keyText = fs.readFileSync(kp.keyPath, 'utf8');
      await ensureKeyPair(d, 'sa');
      expect(fs.readFileSync(kp.keyPath, 'utf8')).to.equal(keyText);
      expect(fs.statSync(kp.keyPath).mtimeMs).to.equal(mtime);
    });
  });

  describe('kubeconfig', () => {
    it('round-trips with embedded CA, client cert and key', async () => {
      const d = path.join(dir, 'pki');
      const admin = await ensureCert(d, ca, { name: 'kc-admin', cn: 'admin', orgs: ['system:masters'], usage: 'client' });
      const text = kubeconfigYaml({
        server: 'https://10.1.0.1:6443',
        caPath: ca.certPath,
        certPath: admin.certPath,
        keyPath: admin.keyPath,
        user: 'admin',
      });
      const kc = parse(text);
      expect(kc.apiVersion).to.equal('v1');
      expect(kc.kind).to.equal('Config');
      expect(kc['current-context']).to.equal('admin');
      expect(kc.clusters).to.have.length(1);
      expect(kc.clusters[0].name).to.equal('nodelet');
      expect(kc.clusters[0].cluster.server).to.equal('https://10.1.0.1:6443');
      const b64 = (s: string) => Buffer.from(s, 'base64').toString('utf8');
      expect(b64(kc.clusters[0].cluster['certificate-authority-data'])).to.equal(fs.readFileSync(ca.certPath, 'utf8'));
      expect(kc.users).to.deep.equal([
        {
          name: 'admin',
          user: {
            'client-certificate-data': fs.readFileSync(admin.certPath).toString('base64'),
            'client-key-data': fs.readFileSync(admin.keyPath).toString('base64'),
          },
        },
      ]);
      expect(kc.contexts).to.deep.equal([{ name: 'admin', context: { cluster: 'nodelet', user: 'admin' } }]);
      // the embedded cert is the real one
      expect(new X509Certificate(Buffer.from(kc.users[0].user['client-certificate-data'], 'base64')).subject).to.equal(
        'CN=admin\nO=system:masters',
      );
    });

    it('uses a token and a custom cluster name; writeKubeconfig is 0600', async () => {
      const file = path.join(dir, 'kube', 'bootstrap.conf');
      await writeKubeconfig(file, {
        server: 'https://127.0.0.1:6443',
        caPath: ca.certPath,
        token: 'abcdef.0123456789abcdef',
        user: 'tls-bootstrap',
        cluster: 'local',
      });
      expect(mode(file)).to.equal(0o600);
      expect(fs.readdirSync(path.dirname(file))).to.deep.equal(['bootstrap.conf']);
      const kc = parse(fs.readFileSync(file, 'utf8'));
      expect(kc.users).to.deep.equal([{ name: 'tls-bootstrap', user: { token: 'abcdef.0123456789abcdef' } }]);
      expect(kc.clusters[0].name).to.equal('local');
      expect(kc.clusters[0].cluster.server).to.equal('https://127.0.0.1:6443');
      expect(kc.contexts).to.deep.equal([{ name: 'tls-bootstrap', context: { cluster: 'local', user: 'tls-bootstrap' } }]);
      expect(kc['current-context']).to.equal('tls-bootstrap');
    });

    it('rejects a spec with neither client cert nor token', () => {
      let err: unknown;
      try {
        kubeconfigYaml({ server: 'https://x:6443', caPath: ca.certPath, user: 'u' });
      } catch (e) {
        err = e;
      }
      expect(errorCode(err)).to.equal('PKI_INVALID_SPEC');
    });
  });

  describe('caCertHash', () => {
    it('matches openssl x509 -pubkey | openssl pkey -pubin -outform der | sha256sum', async () => {
      const pem = fs.readFileSync(ca.certPath, 'utf8');
      const { stdout: sum } = await exec('bash', [
        '-c',
        'set -o pipefail; openssl x509 -pubkey -noout -in "$1" | openssl pkey -pubin -outform der | sha256sum',
        'bash',
        ca.certPath,
      ]);
      const hex = sum.split(' ')[0];
      expect(hex).to.match(/^[0-9a-f]{64}$/);
      expect(caCertHash(pem)).to.equal(`sha256:${hex}`);
      const other = fs.readFileSync((await ensureCA(path.join(dir, 'hash-other'))).certPath, 'utf8');
      expect(caCertHash(other)).to.not.equal(caCertHash(pem));
    });

    it('rejects text that is not a certificate', () => {
      let err: unknown;
      try {
        caCertHash('not a cert');
      } catch (e) {
        err = e;
      }
      expect(errorCode(err)).to.equal('PKI_INVALID_CERT');
    });
  });
});
