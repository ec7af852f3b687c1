// lib/sha256 against node:crypto: every length across the block boundaries
// (55/56/63/64 bytes and their multiples), ASCII and not.
import { expect } from 'chai';
import { hash } from 'node:crypto';
import { sha256Words } from '../../lib/sha256.ts';

/** The digest as node:crypto writes it in hex: the eight words, big-endian. */
const hexDigest = (text: string) => [...sha256Words(text)].map((w) => (w >>> 0).toString(16).padStart(8, '0')).join('');

describe('lib/sha256', () => {
  it('matches node:crypto for ASCII text of every length from 0 to 300 bytes', () => {
    for (let n = 0; n <= 300; n++) {
      const text = Array.from({ length: n }, (_, i) => String.fromCharCode(32 + ((i * 7 + n) % 95))).join('');
      expect(hexDigest(text), `length ${n}`).to.equal(hash('sha256', text));
    }
  });

  it('matches node:crypto for known vectors and for non-ASCII text (which it hands to node:crypto)', () => {
    expect(hexDigest('')).to.equal('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
    expect(hexDigest('abc')).to.equal('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    for (const text of ['é', 'naïve/x:http', 'ns/名前:tcp', '\u0080']) expect(hexDigest(text), text).to.equal(hash('sha256', text));
  });

  it('gives the words in a buffer the next call overwrites', () => {
    const first = sha256Words('abc');
    expect(first[0]).to.equal(0xba7816bf | 0);
    const again = sha256Words('');
    expect(again).to.equal(first);
    expect(first[0]).to.equal(0xe3b0c442 | 0);
  });
});
