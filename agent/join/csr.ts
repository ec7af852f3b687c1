// PKCS#10 (RFC 2986) certificate requests for the node's client certificate:
// subject O=system:nodes, CN=system:node:<name>, as the
// kubernetes.io/kube-apiserver-client-kubelet signer and the node client
// auto-approver require. ECDSA P-256 keys, as kubelet makes them.
import { createPublicKey, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { NodeletError } from '../../lib/errors.ts';
import { bitString, contextConstructed, integer, nullValue, oid, pem, sequence, set, utf8String } from './der.ts';

const OID_CN = '2.5.4.3';
const OID_O = '2.5.4.10';
const OID_ECDSA_SHA256 = '1.2.840.10045.4.3.2';
const OID_RSA_SHA256 = '1.2.840.113549.1.1.11';

export interface Subject {
  cn: string;
  orgs?: readonly string[];
}

/** The subject a node's client certificate carries. */
export const nodeClientSubject = (nodeName: string): Subject => ({ cn: `system:node:${nodeName}`, orgs: ['system:nodes'] });

export function generateNodeKey(): KeyObject {
  return generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
}

/** Name: one RDN per attribute, O before CN (the order Go's crypto/x509 writes). */
export function encodeName(s: Subject): Buffer {
  const rdn = (type: string, value: string) => set(sequence(oid(type), utf8String(value)));
  return sequence(...(s.orgs ?? []).map((o) => rdn(OID_O, o)), rdn(OID_CN, s.cn));
}

/**
 * DER CertificationRequest signed by `key` (EC P-256 with SHA-256, or RSA with
 * SHA-256). `attributes` are encoded Attribute SEQUENCEs (e.g. an
 * extensionRequest carrying subjectAltName for a serving certificate).
 */
export function buildCsrDer(key: KeyObject, subject: Subject, attributes: readonly Buffer[] = []): Buffer {
  if (key.type !== 'private') throw new NodeletError('CSR_INVALID_KEY', 'csr: needs a private key');
  const spki = createPublicKey(key).export({ type: 'spki', format: 'der' });
  const info = sequence(integer(0), encodeName(subject), spki, contextConstructed(0, Buffer.concat([...attributes].sort(Buffer.compare))));
  let algorithm: Buffer;
  let signature: Buffer;
  switch (key.asymmetricKeyType) {
    case 'ec':
      algorithm = sequence(oid(OID_ECDSA_SHA256));
      signature = sign('sha256', info, { key, dsaEncoding: 'der' });
      break;
    case 'rsa':
      algorithm = sequence(oid(OID_RSA_SHA256), nullValue());
      signature = sign('sha256', info, key);
      break;
    default:
      throw new NodeletError('CSR_INVALID_KEY', `csr: unsupported key type ${String(key.asymmetricKeyType)}`);
  }
  return sequence(info, algorithm, bitString(signature));
}

export const buildCsrPem = (key: KeyObject, subject: Subject, attributes: readonly Buffer[] = []): string => pem('CERTIFICATE REQUEST', buildCsrDer(key, subject, attributes));
