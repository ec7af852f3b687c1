// Token discovery: bootstrap token and CA pin parsing, the detached JWS that
// the bootstrapsigner puts in cluster-info (upstream's own test vectors), the
// CA public key hash (checked against openssl), and validateClusterInfo.
import { expect } from 'chai';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { caCertHash, ensureCA } from '../../cluster/pki.ts';
import { clusterInfoKubeconfig } from '../../cluster/bootstrap.ts';
import {
  detachedJwsError,
  parseBootstrapToken,
  parseCAHashes,
  parseClusterInfoKubeconfig,
  signDetachedJws,
  validateClusterInfo,
} from '../../agent/join/discovery.ts';
import { errorCode } from '../../lib/errors.ts';
import { exec } from '../../lib/exec.ts';

const code = (fn: () => unknown): string | undefined => {
  try {
    fn();
  } catch (err) {
    return errorCode(err);
  }
  return undefined;
};

describe('join: token discovery', function () {
  this.timeout(30_000);

  describe('flags', () => {
    it('parses ID.SECRET bootstrap tokens and rejects anything else', () => {
      expect(parseBootstrapToken('abcdef.0123456789abcdef')).to.deep.equal({ id: 'abcdef', secret: '0123456789abcdef' });
      for (const bad of ['abcdef0123456789abcdef', 'ABCDEF.0123456789abcdef', 'abcde.0123456789abcdef', 'abcdef.0123456789abcde', '']) {
        expect(code(() => parseBootstrapToken(bad)), bad).to.equal('JOIN_INVALID_FLAG');
      }
    });

    it('parses one or more sha256 pins, lower-cased', () => {
      const h = 'A'.repeat(64);
      expect(parseCAHashes(`sha256:${h}`)).to.deep.equal([`sha256:${'a'.repeat(64)}`]);
      expect(parseCAHashes(`sha256:${'1'.repeat(64)}, sha256:${'2'.repeat(64)}`)).to.have.length(2);
      for (const bad of ['', 'sha256:abc', `md5:${'a'.repeat(64)}`, 'a'.repeat(64)]) {
        expect(code(() => parseCAHashes(bad)), bad).to.equal('JOIN_INVALID_FLAG');
      }
    });
  });

  describe('detached JWS (HS256, key = token secret, kid = token id)', () => {
    // Upstream's vectors (k8s.io/cluster-bootstrap/token/jws), so our signatures match the bootstrapsigner's.
    const content = 'Hello from the other side. I must have called a thousand times.';
    const token = { id: 'joshua', secret: 'my voice is my passcode' };
    const upstream = 'eyJhbGciOiJIUzI1NiIsImtpZCI6Impvc2h1YSJ9..VShe2taLd-YTrmWuRkcL_8QTNDHYxQIEBsAYYiIj1_8';

    it('computes the same signature as upstream', () => {
      expect(signDetachedJws(content, token)).to.equal(upstream);
      expect(signDetachedJws('', token)).to.equal('eyJhbGciOiJIUzI1NiIsImtpZCI6Impvc2h1YSJ9..7Ui1ALizW4jXphVUB7xUqC9vLYLL9RZeOFfVLoB7Tgk');
    });

    it('accepts upstream’s signature and says why others fail', () => {
      expect(detachedJwsError(upstream, content, token)).to.equal(undefined);
      expect(detachedJwsError(upstream, `${content}!`, token)).to.match(/does not match/);
      expect(detachedJwsError(upstream, content, { ...token, secret: 'wrong' })).to.match(/does not match/);
      expect(detachedJwsError(upstream, content, { ...token, id: 'abcdef' })).to.match(/key id/);
      expect(detachedJwsError(`${upstream}foo`, content, token)).to.match(/does not match/);
      expect(detachedJwsError('a.b.c', content, token)).to.match(/detached/);
      const none = `${Buffer.from('{"alg":"none"}').toString('base64url')}..`;
      expect(detachedJwsError(none, content, token)).to.match(/not HS256/);
    });
  });

  describe('cluster-info', () => {
    let dir: string;
    let caPem: string;
    const token = { id: 'abcdef', secret: '0123456789abcdef' };
    let kubeconfig: string;

    before(async () => {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'join-discovery-'));
      const ca = await ensureCA(dir, 'test-ca');
      caPem = fs.readFileSync(ca.certPath, 'utf8');
      kubeconfig = clusterInfoKubeconfig('https://192.0.2.1:6443', caPem); // TEST-NET-1: never dialled
    });
    after(() => fs.rmSync(dir, { recursive: true, force: true }));

    it('the CA hash is sha256 of the DER SubjectPublicKeyInfo, as openssl computes it', async () => {
      const der = (await exec('sh', ['-c', `openssl x509 -in ${path.join(dir, 'ca.crt')} -pubkey -noout | openssl pkey -pubin -outform der | od -An -v -tx1 | tr -d ' \\n'`])).stdout.trim();
      expect(caCertHash(caPem)).to.equal(`sha256:${createHash('sha256').update(Buffer.from(der, 'hex')).digest('hex')}`);
    });

    it('reads the server and CA from the cluster-info kubeconfig', () => {
      expect(parseClusterInfoKubeconfig(kubeconfig)).to.deep.equal({ server: 'https://192.0.2.1:6443', caPem });
      expect(code(() => parseClusterInfoKubeconfig('clusters: []'))).to.equal('JOIN_DISCOVERY_INVALID');
      expect(code(() => parseClusterInfoKubeconfig(': : :'))).to.equal('JOIN_DISCOVERY_INVALID');
    });

    it('trusts a signed cluster-info whose CA matches a pin', () => {
      const data = { kubeconfig, 'jws-kubeconfig-abcdef': signDetachedJws(kubeconfig, token) };
      const other = `sha256:${'0'.repeat(64)}`;
      expect(validateClusterInfo(data, token, [other, caCertHash(caPem)])).to.deep.equal({ server: 'https://192.0.2.1:6443', caPem });
    });

    it('no signature for the token id: JOIN_NO_SIGNATURE', () => {
      const data = { kubeconfig, 'jws-kubeconfig-zzzzzz': signDetachedJws(kubeconfig, { id: 'zzzzzz', secret: token.secret }) };
      expect(code(() => validateClusterInfo(data, token, [caCertHash(caPem)]))).to.equal('JOIN_NO_SIGNATURE');
    });

    it('a wrong token secret: JOIN_TOKEN_INVALID, before the CA is even looked at', () => {
      const data = { kubeconfig, 'jws-kubeconfig-abcdef': signDetachedJws(kubeconfig, token) };
      const wrong = { id: 'abcdef', secret: 'ffffffffffffffff' };
      expect(code(() => validateClusterInfo(data, wrong, [`sha256:${'0'.repeat(64)}`]))).to.equal('JOIN_TOKEN_INVALID');
    });

    it('a kubeconfig changed after signing: JOIN_TOKEN_INVALID', () => {
      const data = { kubeconfig: kubeconfig.replace('192.0.2.1', '192.0.2.2'), 'jws-kubeconfig-abcdef': signDetachedJws(kubeconfig, token) };
      expect(code(() => validateClusterInfo(data, token, [caCertHash(caPem)]))).to.equal('JOIN_TOKEN_INVALID');
    });

    it('a CA that matches no pin: JOIN_CA_HASH_MISMATCH', () => {
      const data = { kubeconfig, 'jws-kubeconfig-abcdef': signDetachedJws(kubeconfig, token) };
      expect(code(() => validateClusterInfo(data, token, [`sha256:${'0'.repeat(64)}`]))).to.equal('JOIN_CA_HASH_MISMATCH');
    });
  });
});
