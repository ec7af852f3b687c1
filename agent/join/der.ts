// Just enough DER (ITU-T X.690) to write a PKCS#10 certificate request:
// definite lengths, SEQUENCE/SET, INTEGER, OBJECT IDENTIFIER, UTF8String,
// BIT STRING, NULL and context-specific tags. Node's crypto signs and exports
// keys, but has no encoder for requests.
import { NodeletError } from '../../lib/errors.ts';

function lengthBytes(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

/** tag + length + body. */
export function tlv(tag: number, body: Buffer): Buffer {
  return Buffer.concat([Buffer.from([tag]), lengthBytes(body.length), body]);
}

export const sequence = (...items: Buffer[]): Buffer => tlv(0x30, Buffer.concat(items));

/** SET OF: DER orders the elements by their encodings. */
export const set = (...items: Buffer[]): Buffer => tlv(0x31, Buffer.concat([...items].sort(Buffer.compare)));

/** A non-negative INTEGER (two's complement: a leading 0 when the top bit is set). */
export function integer(n: number): Buffer {
  if (!Number.isSafeInteger(n) || n < 0) throw new NodeletError('DER_INVALID', `integer: ${n} is not a non-negative safe integer`);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  if (bytes.length === 0 || (bytes[0]! & 0x80) !== 0) bytes.unshift(0);
  return tlv(0x02, Buffer.from(bytes));
}

export function oid(dotted: string): Buffer {
  const arcs = dotted.split('.').map((a) => (/^\d+$/.test(a) ? Number(a) : NaN));
  if (arcs.length < 2 || arcs.some((a) => !Number.isSafeInteger(a)) || arcs[0]! > 2 || (arcs[0]! < 2 && arcs[1]! > 39)) {
    throw new NodeletError('DER_INVALID', `oid: bad object identifier ${JSON.stringify(dotted)}`);
  }
  const out: number[] = [];
  const base128 = (v: number) => {
    const group: number[] = [v & 0x7f];
    for (let x = Math.floor(v / 128); x > 0; x = Math.floor(x / 128)) group.unshift((x & 0x7f) | 0x80);
    out.push(...group);
  };
  base128(arcs[0]! * 40 + arcs[1]!);
  for (const a of arcs.slice(2)) base128(a);
  return tlv(0x06, Buffer.from(out));
}

export const utf8String = (s: string): Buffer => tlv(0x0c, Buffer.from(s, 'utf8'));

/** BIT STRING of whole bytes (no unused bits). */
export const bitString = (bytes: Buffer): Buffer => tlv(0x03, Buffer.concat([Buffer.from([0]), bytes]));

export const nullValue = (): Buffer => Buffer.from([0x05, 0x00]);

/** [n] IMPLICIT constructed (e.g. the attributes of a CertificationRequestInfo). */
export const contextConstructed = (n: number, body: Buffer): Buffer => tlv(0xa0 | n, body);

/** PEM armour, 64 columns. */
export function pem(label: string, der: Buffer): string {
  const b64 = der.toString('base64').replace(/.{1,64}/g, '$&\n');
  return `-----BEGIN ${label}-----\n${b64}-----END ${label}-----\n`;
}
