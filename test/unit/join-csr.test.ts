// DER encoding and PKCS#10 requests for the join's TLS bootstrap; requests are
// checked by openssl (self-signature, subject, public key), not by our own parser.
import { expect } from 'chai';
import { createPublicKey, generateKeyPairSync } from 'node:crypto';
import { exec } from '../../lib/exec.ts';
import { bitString, contextConstructed, integer, oid, pem, sequence, set, tlv, utf8String } from '../../agent/join/der.ts';
import { buildCsrPem, generateNodeKey, nodeClientSubject } from '../../agent/join/csr.ts';
import { errorCode } from '../../lib/errors.ts';

const hex = (b: Buffer) => b.toString('hex');

describe('join: DER encoder', () => {
  it('encodes object identifiers (first two arcs packed, base 128)', () => {
    expect(hex(oid('2.5.4.3'))).to.equal('0603550403');
    expect(hex(oid('1.2.840.10045.4.3.2'))).to.equal('06082a8648ce3d040302');
    expect(hex(oid('1.2.840.113549.1.1.11'))).to.equal('06092a864886f70d01010b');
  });

  it('rejects malformed object identifiers', () => {
    for (const bad of ['1', '3.1', '1.40', '1.2.x', '']) {
      expect(() => oid(bad), bad).to.throw().that.satisfies((e: unknown) => errorCode(e) === 'DER_INVALID');
    }
  });

  it('encodes non-negative integers in two’s complement', () => {
    expect(hex(integer(0))).to.equal('020100');
    expect(hex(integer(127))).to.equal('02017f');
    expect(hex(integer(128))).to.equal('02020080');
    expect(hex(integer(65537))).to.equal('0203010001');
    expect(() => integer(-1)).to.throw();
  });

  it('uses short and long length forms', () => {
    expect(hex(tlv(0x04, Buffer.alloc(127)).subarray(0, 2))).to.equal('047f');
    expect(hex(tlv(0x04, Buffer.alloc(128)).subarray(0, 3))).to.equal('048180');
    expect(hex(tlv(0x04, Buffer.alloc(300)).subarray(0, 4))).to.equal('0482012c');
  });

  it('writes strings, bit strings, context tags and sorted SETs', () => {
    expect(hex(utf8String('é'))).to.equal('0c02c3a9');
    expect(hex(bitString(Buffer.from([0xff])))).to.equal('030200ff');
    expect(hex(contextConstructed(0, Buffer.alloc(0)))).to.equal('a000');
    expect(hex(set(integer(2), integer(1)))).to.equal('3106020101020102');
    expect(hex(sequence(integer(2), integer(1)))).to.equal('3006020102020101');
  });

  it('armours PEM in 64-column lines', () => {
    const text = pem('TEST', Buffer.alloc(100, 1));
    const lines = text.trim().split('\n');
    expect(lines[0]).to.equal('-----BEGIN TEST-----');
    expect(lines.at(-1)).to.equal('-----END TEST-----');
    expect(lines.slice(1, -1).every((l) => l.length <= 64)).to.equal(true);
    expect(Buffer.from(lines.slice(1, -1).join(''), 'base64').equals(Buffer.alloc(100, 1))).to.equal(true);
  });
});

describe('join: certificate signing request', function () {
  this.timeout(30_000);

  async function openssl(csrPem: string, ...args: string[]) {
    return exec('openssl', ['req', '-noout', ...args], { input: csrPem });
  }

  it('an ECDSA P-256 request for system:node:<name> in system:nodes that openssl verifies', async () => {
    const key = generateNodeKey();
    const csr = buildCsrPem(key, nodeClientSubject('nl7-node2'));
    expect(csr).to.match(/^-----BEGIN CERTIFICATE REQUEST-----\n/);
    const v = await openssl(csr, '-verify');
    expect(v.stderr + v.stdout).to.match(/verify OK/);
    const subj = await openssl(csr, '-subject', '-nameopt', 'RFC2253');
    expect(subj.stdout.trim()).to.equal('subject=CN=system:node:nl7-node2,O=system:nodes');
    const pub = await openssl(csr, '-pubkey');
    expect(createPublicKey(pub.stdout).export({ type: 'spki', format: 'der' }).equals(createPublicKey(key).export({ type: 'spki', format: 'der' }))).to.equal(true);
    const text = await openssl(csr, '-text');
    expect(text.stdout).to.match(/Signature Algorithm: ecdsa-with-SHA256/);
    expect(text.stdout).to.match(/NIST CURVE: P-256|prime256v1/);
  });

  it('an RSA request signed with SHA-256 also verifies', async () => {
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const csr = buildCsrPem(privateKey, { cn: 'plain' });
    const v = await openssl(csr, '-verify');
    expect(v.stderr + v.stdout).to.match(/verify OK/);
    expect((await openssl(csr, '-text')).stdout).to.match(/sha256WithRSAEncryption/);
  });

  it('refuses key types it cannot sign for', () => {
    const { privateKey } = generateKeyPairSync('ed25519');
    expect(() => buildCsrPem(privateKey, { cn: 'x' })).to.throw().that.satisfies((e: unknown) => errorCode(e) === 'CSR_INVALID_KEY');
  });

  it('a tampered request fails openssl verification', async () => {
    const csr = buildCsrPem(generateNodeKey(), nodeClientSubject('a'));
    const der = Buffer.from(csr.split('\n').filter((l) => !l.startsWith('-----')).join(''), 'base64');
    const i = der.indexOf(Buffer.from('system:node:a'));
    der[i + 12] = 'b'.charCodeAt(0); // CN system:node:a -> system:node:b, same length
    const r = await exec('openssl', ['req', '-noout', '-verify'], { input: pem('CERTIFICATE REQUEST', der), allowFail: true });
    expect(r.stdout + r.stderr).to.not.match(/verify OK/);
  });
});
