// The kubelet API's serving certificate through the certificates API, as
// kubelet's serverTLSBootstrap: a CSR for the kubernetes.io/kubelet-serving
// signer (O=system:nodes, CN=system:node:<name>, DNS and IP SANs), which the
// controller-manager signs once something approves it (it never auto-approves
// this signer; `make up` does, see cluster/csrapprove.ts). Until then the
// server runs with the self-signed certificate and switches when the issued
// one arrives. The issued pair is kept in <rootDir>/pki/kubelet-server-current.pem
// and reused across restarts while it is valid.
import type { V1CertificateSigningRequest } from '@kubernetes/client-node';
import { createPrivateKey, randomBytes, X509Certificate, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import path from 'node:path';
import type { Clock } from '../../lib/clock.ts';
import { enc, type KubeClient } from '../../lib/kube/client.ts';
import { describeError, NodeletError } from '../../lib/errors.ts';
import type { Logger } from '../../lib/log.ts';
import { buildCsrPem, generateNodeKey, nodeClientSubject } from '../join/csr.ts';
import { clientPemText } from '../join/credentials.ts';
import { oid, sequence, set, tlv } from '../join/der.ts';

export const KUBELET_SERVING_SIGNER = 'kubernetes.io/kubelet-serving';
export const SERVING_USAGES = ['digital signature', 'key encipherment', 'server auth'];

const MAX_POLL_MS = 10_000;
const OID_EXTENSION_REQUEST = '1.2.840.113549.1.9.14';
const OID_SUBJECT_ALT_NAME = '2.5.29.17';

/** An IP address's bytes (4 for IPv4, 16 for IPv6). */
export function ipBytes(ip: string): Buffer {
  const v = isIP(ip);
  if (v === 4) return Buffer.from(ip.split('.').map(Number));
  if (v !== 6) throw new NodeletError('CSR_INVALID_SAN', `not an IP address: ${JSON.stringify(ip)}`);
  let text = ip.split('%')[0]!;
  // A trailing dotted quad (::ffff:1.2.3.4) becomes two groups.
  const quad = /(\d+\.\d+\.\d+\.\d+)$/.exec(text)?.[1];
  if (quad) {
    const b = quad.split('.').map(Number);
    text = text.slice(0, -quad.length) + `${((b[0]! << 8) | b[1]!).toString(16)}:${((b[2]! << 8) | b[3]!).toString(16)}`;
  }
  const [head = '', tail] = text.split('::');
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  const out = Buffer.alloc(16);
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), i * 2));
  return out;
}

/** The extensionRequest attribute carrying subjectAltName (dNSName [2], iPAddress [7]). */
export function subjectAltNameAttribute(dnsNames: readonly string[], ips: readonly string[]): Buffer {
  const names = sequence(...dnsNames.map((d) => tlv(0x82, Buffer.from(d, 'ascii'))), ...ips.map((ip) => tlv(0x87, ipBytes(ip))));
  const extension = sequence(oid(OID_SUBJECT_ALT_NAME), tlv(0x04, names));
  return sequence(oid(OID_EXTENSION_REQUEST), set(sequence(extension)));
}

export interface ServingIdentity {
  nodeName: string;
  dnsNames: string[];
  ips: string[];
}

/** The names a serving certificate carries: node and host name (when not IPs) and the node IP. */
export function servingIdentity(node: { nodeName: string; hostname: string; nodeIP: string }): ServingIdentity {
  return {
    nodeName: node.nodeName,
    dnsNames: [...new Set([node.nodeName, node.hostname].filter((n) => n && !isIP(n)))],
    ips: node.nodeIP && isIP(node.nodeIP) ? [node.nodeIP] : [],
  };
}

export function servingCsrObject(key: KeyObject, id: ServingIdentity): V1CertificateSigningRequest {
  const request = buildCsrPem(key, nodeClientSubject(id.nodeName), [subjectAltNameAttribute(id.dnsNames, id.ips)]);
  return {
    apiVersion: 'certificates.k8s.io/v1',
    kind: 'CertificateSigningRequest',
    metadata: { generateName: 'csr-' },
    spec: { request: Buffer.from(request).toString('base64'), signerName: KUBELET_SERVING_SIGNER, usages: [...SERVING_USAGES] },
  };
}

/** The CSR calls, behind an interface so tests use a fake. */
export interface CsrApi {
  /** Creates the CSR; returns its name. */
  create(csr: V1CertificateSigningRequest): Promise<string>;
  get(name: string): Promise<V1CertificateSigningRequest>;
}

const CSR_PATH = '/apis/certificates.k8s.io/v1/certificatesigningrequests';

export class KubeCsrApi implements CsrApi {
  private readonly c: KubeClient;
  constructor(client: KubeClient) {
    this.c = client;
  }
  async create(csr: V1CertificateSigningRequest): Promise<string> {
    const created = await this.c.request<V1CertificateSigningRequest>('create certificatesigningrequest', 'POST', CSR_PATH, { body: csr });
    return created.metadata?.name ?? '';
  }
  get(name: string): Promise<V1CertificateSigningRequest> {
    return this.c.request(`get certificatesigningrequest ${name}`, 'GET', `${CSR_PATH}/${enc(name)}`);
  }
}

export interface IssuedCert {
  certPem: string;
  keyPem: string;
  cert: X509Certificate;
}

/** Whether an issued pair is still worth serving: valid now and not within the last fifth of its life. */
export function usableServingCert(c: IssuedCert, nodeName: string, nowMs: number): boolean {
  if (!c.cert.subject.split('\n').includes(`CN=system:node:${nodeName}`)) return false;
  if (!c.cert.checkPrivateKey(createPrivateKey(c.keyPem))) return false;
  const from = c.cert.validFromDate.getTime();
  const to = c.cert.validToDate.getTime();
  return nowMs >= from && nowMs < to - (to - from) / 5;
}

export function parseIssued(pemText: string): IssuedCert | undefined {
  const certPem = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/.exec(pemText)?.[0];
  const keyPem = /-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]+?-----END [A-Z ]*PRIVATE KEY-----\n?/.exec(pemText)?.[0];
  if (!certPem || !keyPem) return undefined;
  try {
    return { certPem, keyPem, cert: new X509Certificate(certPem) };
  } catch {
    return undefined;
  }
}

export const servingPemPath = (rootDir: string): string => path.join(rootDir, 'pki', 'kubelet-server-current.pem');

export interface ServingCertDeps {
  api: CsrApi;
  clock: Clock;
  log: Logger;
  rootDir: string;
  identity: ServingIdentity;
  /** First poll period while waiting for approval (it doubles up to 10 s). */
  pollMs?: number;
}

/**
 * Gets an issued serving certificate: the stored one when usable, else a new
 * key and CSR, polled until issued. `firstWaitMs` bounds how long `start`
 * waits; after that it returns undefined and keeps polling in the background,
 * calling `onIssued` when the certificate arrives (or never, when aborted).
 */
export class ServingCertManager {
  private readonly d: ServingCertDeps;
  private pending: Promise<IssuedCert | undefined> | undefined;

  constructor(d: ServingCertDeps) {
    this.d = d;
  }

  async start(firstWaitMs: number, signal: AbortSignal, onIssued: (c: IssuedCert) => void): Promise<IssuedCert | undefined> {
    const stored = this.readStored();
    if (stored) {
      this.d.log.info('using the issued serving certificate', { file: servingPemPath(this.d.rootDir), expires: stored.cert.validTo });
      return stored;
    }
    const wait = this.requestLoop(signal);
    this.pending = wait;
    let timer: NodeJS.Timeout | undefined;
    const first = await Promise.race([wait, new Promise<'later'>((resolve) => (timer = setTimeout(() => resolve('later'), firstWaitMs)))]);
    clearTimeout(timer);
    if (first !== 'later') return first;
    this.d.log.info('serving certificate not issued yet; serving with the self-signed one until it is', { signer: KUBELET_SERVING_SIGNER });
    void wait.then((c) => {
      if (c && !signal.aborted) onIssued(c);
    });
    return undefined;
  }

  /** Resolves when the background request has ended (for shutdown and tests). */
  async settled(): Promise<void> {
    await this.pending;
  }

  private readStored(): IssuedCert | undefined {
    let text: string;
    try {
      text = readFileSync(servingPemPath(this.d.rootDir), 'utf8');
    } catch {
      return undefined;
    }
    const c = parseIssued(text);
    return c && usableServingCert(c, this.d.identity.nodeName, this.d.clock.now()) ? c : undefined;
  }

  /** Creates the CSR and polls it; retries a failed CSR with a new one after a pause. Undefined when aborted. */
  private async requestLoop(signal: AbortSignal): Promise<IssuedCert | undefined> {
    const poll = this.d.pollMs ?? 2000;
    while (!signal.aborted) {
      try {
        const c = await this.requestOnce(poll, signal);
        if (c) return c;
      } catch (err) {
        this.d.log.warn('serving certificate request failed; retrying', { err: describeError(err) });
        await this.d.clock.sleep(30_000, signal).catch(() => undefined);
      }
    }
    return undefined;
  }

  private async requestOnce(pollMs: number, signal: AbortSignal): Promise<IssuedCert | undefined> {
    const key = generateNodeKey();
    const name = await this.d.api.create(servingCsrObject(key, this.d.identity));
    this.d.log.info('serving certificate requested', { csr: name, signer: KUBELET_SERVING_SIGNER });
    // Approval may take long (or come from a person): poll less often as time goes by.
    let wait = pollMs;
    while (!signal.aborted) {
      const csr = await this.d.api.get(name);
      const bad = csr.status?.conditions?.find((c) => (c.type === 'Denied' || c.type === 'Failed') && c.status !== 'False');
      if (bad) throw new NodeletError('SERVING_CSR_DENIED', `CertificateSigningRequest ${name} ${bad.type.toLowerCase()}: ${bad.reason ?? ''} ${bad.message ?? ''}`.trim());
      if (csr.status?.certificate) {
        const certPem = Buffer.from(csr.status.certificate, 'base64').toString('utf8');
        let cert: X509Certificate;
        try {
          cert = new X509Certificate(certPem);
        } catch (err) {
          throw new NodeletError('SERVING_CSR_FAILED', `CertificateSigningRequest ${name}: the issued certificate does not parse`, { cause: err });
        }
        if (!cert.checkPrivateKey(key)) throw new NodeletError('SERVING_CSR_FAILED', `CertificateSigningRequest ${name}: the issued certificate is not for our key`);
        const issued: IssuedCert = { certPem, keyPem: key.export({ type: 'pkcs8', format: 'pem' }) as string, cert };
        await this.store(certPem, key);
        this.d.log.info('serving certificate issued', { csr: name, expires: cert.validTo });
        return issued;
      }
      await this.d.clock.sleep(wait, signal).catch(() => undefined);
      wait = Math.min(wait * 2, Math.max(pollMs, MAX_POLL_MS));
    }
    return undefined;
  }

  /** Cert and key in one file, replaced with one rename. */
  private async store(certPem: string, key: KeyObject): Promise<void> {
    const file = servingPemPath(this.d.rootDir);
    await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
    const tmp = `${file}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
    try {
      await writeFile(tmp, clientPemText(certPem, key), { mode: 0o600 });
      await rename(tmp, file);
    } catch (err) {
      await rm(tmp, { force: true });
      throw new NodeletError('SERVING_CERT_WRITE_FAILED', `writing ${file}`, { cause: err });
    }
  }
}

export interface ServingTLS {
  cert: string | Buffer;
  key: string | Buffer;
  /** Whether `cert` is the issued certificate (not the self-signed fallback). */
  issued: boolean;
  /** Calls `fn` once the issued certificate arrives (at once if it already has). */
  whenIssued(fn: (c: IssuedCert) => void): void;
}

/**
 * The certificate to start serving with: the issued one if it comes within
 * `firstWaitMs`, else `selfSigned()`, with the issued one delivered later
 * through `whenIssued` (so the caller can swap it in without a restart).
 */
export async function servingTLS(m: ServingCertManager, firstWaitMs: number, signal: AbortSignal, selfSigned: () => Promise<{ cert: string | Buffer; key: string | Buffer }>): Promise<ServingTLS> {
  let arrived: IssuedCert | undefined;
  let listener: ((c: IssuedCert) => void) | undefined;
  const issued = await m.start(firstWaitMs, signal, (c) => {
    if (listener) listener(c);
    else arrived = c;
  });
  if (issued) return { cert: issued.certPem, key: issued.keyPem, issued: true, whenIssued: () => undefined };
  const fallback = await selfSigned();
  return {
    ...fallback,
    issued: false,
    whenIssued(fn) {
      if (arrived) fn(arrived);
      else listener = fn;
    },
  };
}
