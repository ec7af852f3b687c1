// Certificate material for a local cluster: a CA, leaf certificates signed by
// it, the service-account key pair and kubeconfigs. Keys and certificates are
// made by the openssl CLI (OpenSSL 3); node:crypto only reads them back.
//
// Every `ensure*` is idempotent: existing files are reused when they still
// fit the request, otherwise regenerated. Files are written atomically (temp
// file + rename), the key before the certificate, so a run killed half way
// leaves at worst a key that does not match its certificate, which the next
// run detects and replaces.
import { X509Certificate, createHash, createPrivateKey, createPublicKey, randomBytes } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, open, readFile, rename, rm } from 'node:fs/promises';
import { isIP } from 'node:net';
import path from 'node:path';
import { stringify } from 'yaml';
import { NodeletError } from '../lib/errors.ts';
import { exec } from '../lib/exec.ts';

export interface KeyCert {
  certPath: string;
  keyPath: string;
}

export interface CertSpec {
  /** File base name: <dir>/<name>.crt and <dir>/<name>.key. */
  name: string;
  cn: string;
  /** O= entries (e.g. system:masters, system:nodes). */
  orgs?: string[];
  dnsSANs?: string[];
  ipSANs?: string[];
  usage: 'server' | 'client' | 'both';
  /** Validity in days; default 365. */
  days?: number;
}

export interface KubeconfigSpec {
  server: string;
  caPath: string;
  certPath?: string;
  keyPath?: string;
  token?: string;
  user: string;
  /** Cluster entry name; default 'nodelet'. */
  cluster?: string;
}

const OPENSSL = 'openssl';
const RSA_BITS = 2048;
const CA_DAYS = 3650;
const DEFAULT_DAYS = 365;
const EKU_SERVER = '1.3.6.1.5.5.7.3.1';
const EKU_CLIENT = '1.3.6.1.5.5.7.3.2';

// Minimal config for `openssl req`, so the system openssl.cnf (and its default
// extension sections) never leak into what we make. The subject comes from -subj.
const REQ_CONFIG = `[req]
distinguished_name = dn
utf8 = yes
string_mask = utf8only
[dn]
[v3_ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
`;

/** <dir>/ca.crt and <dir>/ca.key; reused when both exist and belong together. */
export async function ensureCA(dir: string, cn = 'nodelet-ca'): Promise<KeyCert> {
  checkName('cn', cn);
  const kc = { certPath: path.join(dir, 'ca.crt'), keyPath: path.join(dir, 'ca.key') };
  if (existsSync(kc.certPath) && existsSync(kc.keyPath)) {
    const cert = readCert(kc.certPath);
    if (!cert.ca) {
      throw new NodeletError('PKI_CA_INVALID', `${kc.certPath} is not a CA certificate`);
    }
    // A mismatched pair is what a run killed between the two renames leaves.
    if (cert.checkPrivateKey(readKey(kc.keyPath))) return kc;
  }
  await mkdir(dir, { recursive: true });
  await withWorkDir(dir, async (work) => {
    const cfg = path.join(work, 'req.cnf');
    await writeAtomic(cfg, REQ_CONFIG, 0o600);
    const keyFile = path.join(work, 'ca.key');
    await writeAtomic(keyFile, await genRsaKey(), 0o600);
    const { stdout: certPem } = await exec(OPENSSL, [
      'req', '-x509', '-new', '-config', cfg, '-key', keyFile,
      '-subj', subject(cn, []), '-days', String(CA_DAYS), '-sha256',
      '-extensions', 'v3_ca', '-set_serial', serial(),
    ]);
    await installPair(kc, await readFile(keyFile, 'utf8'), certPem);
  });
  return kc;
}

/**
 * <dir>/<name>.crt and .key signed by `ca`. Existing files are reused only if
 * they verify against this CA, match each other, carry the same CN, O, SANs
 * and extended key usage, and are not near expiry.
 */
export async function ensureCert(dir: string, ca: KeyCert, spec: CertSpec): Promise<KeyCert> {
  const want = normalizeSpec(spec);
  const kc = { certPath: path.join(dir, `${spec.name}.crt`), keyPath: path.join(dir, `${spec.name}.key`) };
  const caCert = readCert(ca.certPath);
  if (certFits(kc, caCert, want)) return kc;

  await mkdir(dir, { recursive: true });
  await withWorkDir(dir, async (work) => {
    const cfg = path.join(work, 'req.cnf');
    await writeAtomic(cfg, REQ_CONFIG, 0o600);
    const ext = path.join(work, 'ext.cnf');
    await writeAtomic(ext, extConfig(want), 0o600);
    const keyFile = path.join(work, 'leaf.key');
    const keyPem = await genRsaKey();
    await writeAtomic(keyFile, keyPem, 0o600);
    const csrFile = path.join(work, 'leaf.csr');
    await exec(OPENSSL, [
      'req', '-new', '-config', cfg, '-key', keyFile, '-subj', subject(want.cn, want.orgs), '-out', csrFile,
    ]);
    const { stdout: certPem } = await exec(OPENSSL, [
      'x509', '-req', '-in', csrFile, '-CA', ca.certPath, '-CAkey', ca.keyPath,
      '-set_serial', serial(), '-days', String(want.days), '-sha256',
      '-extfile', ext, '-extensions', 'leaf',
    ]);
    await installPair(kc, keyPem, certPem);
  });
  return kc;
}

/** RSA private key <dir>/<name>.key and its PEM public key <dir>/<name>.pub. */
export async function ensureKeyPair(dir: string, name: string): Promise<{ keyPath: string; pubPath: string }> {
  checkFileName(name);
  const keyPath = path.join(dir, `${name}.key`);
  const pubPath = path.join(dir, `${name}.pub`);
  if (existsSync(keyPath) && existsSync(pubPath) && keyPairMatches(keyPath, pubPath)) return { keyPath, pubPath };
  await mkdir(dir, { recursive: true });
  const keyPem = await genRsaKey();
  const { stdout: pubPem } = await exec(OPENSSL, ['pkey', '-pubout'], { input: keyPem });
  await writeAtomic(keyPath, keyPem, 0o600);
  await writeAtomic(pubPath, pubPem, 0o644);
  return { keyPath, pubPath };
}

/** kubeconfig v1 with the CA (and client cert/key) embedded, or a bearer token. */
export function kubeconfigYaml(spec: KubeconfigSpec): string {
  if (!spec.user) throw new NodeletError('PKI_INVALID_SPEC', 'kubeconfig: user is required');
  if (!spec.server) throw new NodeletError('PKI_INVALID_SPEC', 'kubeconfig: server is required');
  if ((spec.certPath === undefined) !== (spec.keyPath === undefined)) {
    throw new NodeletError('PKI_INVALID_SPEC', 'kubeconfig: certPath and keyPath go together');
  }
  if (spec.certPath === undefined && !spec.token) {
    throw new NodeletError('PKI_INVALID_SPEC', 'kubeconfig: needs a client certificate or a token');
  }
  const cluster = spec.cluster ?? 'nodelet';
  const user: Record<string, string> = {};
  if (spec.certPath !== undefined && spec.keyPath !== undefined) {
    user['client-certificate-data'] = fileBase64(spec.certPath);
    user['client-key-data'] = fileBase64(spec.keyPath);
  }
  if (spec.token) user['token'] = spec.token;
  return stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [
      { name: cluster, cluster: { server: spec.server, 'certificate-authority-data': fileBase64(spec.caPath) } },
    ],
    users: [{ name: spec.user, user }],
    contexts: [{ name: spec.user, context: { cluster, user: spec.user } }],
    'current-context': spec.user,
    preferences: {},
  });
}

/** Writes kubeconfigYaml(spec) to `file`, mode 0600, atomically. */
export async function writeKubeconfig(file: string, spec: KubeconfigSpec): Promise<void> {
  const text = kubeconfigYaml(spec);
  await mkdir(path.dirname(file), { recursive: true });
  await writeAtomic(file, text, 0o600);
}

/** 'sha256:<hex>' of the CA's DER SubjectPublicKeyInfo (kubeadm --discovery-token-ca-cert-hash). */
export function caCertHash(caPemText: string): string {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(caPemText);
  } catch (err) {
    throw new NodeletError('PKI_INVALID_CERT', 'caCertHash: not a PEM certificate', { cause: err });
  }
  const spki = cert.publicKey.export({ type: 'spki', format: 'der' });
  return `sha256:${createHash('sha256').update(spki).digest('hex')}`;
}

// ---- helpers ----

interface Wanted {
  cn: string;
  orgs: string[];
  dns: string[];
  ips: string[];
  ekus: string[];
  days: number;
}

function normalizeSpec(spec: CertSpec): Wanted {
  checkFileName(spec.name);
  checkName('cn', spec.cn);
  const orgs = [...new Set(spec.orgs ?? [])];
  for (const o of orgs) checkName('O', o);
  const dns = [...new Set(spec.dnsSANs ?? [])];
  for (const d of dns) {
    if (!/^(\*\.)?[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$/.test(d)) {
      throw new NodeletError('PKI_INVALID_SPEC', `${spec.name}: bad DNS SAN ${JSON.stringify(d)}`);
    }
  }
  const ips = [...new Set((spec.ipSANs ?? []).map((ip) => {
    if (isIP(ip) === 0) throw new NodeletError('PKI_INVALID_SPEC', `${spec.name}: bad IP SAN ${JSON.stringify(ip)}`);
    return canonicalIp(ip);
  }))];
  const days = spec.days ?? DEFAULT_DAYS;
  if (!Number.isInteger(days) || days < 1) {
    throw new NodeletError('PKI_INVALID_SPEC', `${spec.name}: days must be a positive integer`);
  }
  const ekus =
    spec.usage === 'server' ? [EKU_SERVER]
    : spec.usage === 'client' ? [EKU_CLIENT]
    : spec.usage === 'both' ? [EKU_SERVER, EKU_CLIENT]
    : undefined;
  if (!ekus) throw new NodeletError('PKI_INVALID_SPEC', `${spec.name}: bad usage ${String(spec.usage)}`);
  return { cn: spec.cn, orgs, dns, ips, ekus, days };
}

function extConfig(w: Wanted): string {
  const eku = w.ekus.map((o) => (o === EKU_SERVER ? 'serverAuth' : 'clientAuth')).join(',');
  const lines = [
    '[leaf]',
    'basicConstraints = critical,CA:FALSE',
    'keyUsage = critical,digitalSignature,keyEncipherment',
    `extendedKeyUsage = ${eku}`,
    'subjectKeyIdentifier = hash',
    'authorityKeyIdentifier = keyid,issuer',
  ];
  if (w.dns.length + w.ips.length > 0) {
    lines.push('subjectAltName = @alt', '[alt]');
    w.dns.forEach((d, i) => lines.push(`DNS.${i + 1} = ${d}`));
    w.ips.forEach((ip, i) => lines.push(`IP.${i + 1} = ${ip}`));
  }
  return lines.join('\n') + '\n';
}

/** True when the existing pair at `kc` can be kept for `want`. */
function certFits(kc: KeyCert, caCert: X509Certificate, want: Wanted): boolean {
  if (!existsSync(kc.certPath) || !existsSync(kc.keyPath)) return false;
  let cert: X509Certificate;
  let key: KeyObject;
  try {
    cert = new X509Certificate(readFileSync(kc.certPath));
    key = createPrivateKey(readFileSync(kc.keyPath));
  } catch {
    return false;
  }
  if (!cert.checkIssued(caCert) || !cert.verify(caCert.publicKey)) return false;
  if (!cert.checkPrivateKey(key)) return false;
  // Renew once less than a tenth of the lifetime is left.
  const from = cert.validFromDate.getTime();
  const to = cert.validToDate.getTime();
  const now = Date.now();
  if (now < from || now > to - (to - from) / 10) return false;

  const subj = cert.toLegacyObject().subject;
  if (asList(subj.CN).join('\n') !== want.cn) return false;
  if (!sameSet(asList(subj.O), want.orgs)) return false;
  const sans = parseSANs(cert.subjectAltName);
  if (!sans || !sameSet(sans.dns, want.dns) || !sameSet(sans.ips, want.ips)) return false;
  return sameSet(cert.keyUsage ?? [], want.ekus);
}

function parseSANs(text: string | undefined): { dns: string[]; ips: string[] } | undefined {
  const out = { dns: [] as string[], ips: [] as string[] };
  if (!text) return out;
  for (const entry of text.split(', ')) {
    if (entry.startsWith('DNS:')) out.dns.push(entry.slice(4));
    else if (entry.startsWith('IP Address:') && isIP(entry.slice(11)) !== 0) out.ips.push(canonicalIp(entry.slice(11)));
    else return undefined; // something we would not have written
  }
  return out;
}

/** One spelling per address (IPv6 compressed, lower case), so SANs compare. */
function canonicalIp(ip: string): string {
  return isIP(ip) === 6 ? new URL(`http://[${ip}]/`).hostname.slice(1, -1) : new URL(`http://${ip}/`).hostname;
}

function asList(v: string | string[] | undefined): string[] {
  return v === undefined ? [] : Array.isArray(v) ? v : [v];
}

function sameSet(a: readonly string[], b: readonly string[]): boolean {
  const sa = new Set(a);
  const sb = new Set(b);
  return sa.size === sb.size && a.length === sa.size && [...sa].every((x) => sb.has(x));
}

function keyPairMatches(keyPath: string, pubPath: string): boolean {
  try {
    const fromKey = createPublicKey(readKey(keyPath)).export({ type: 'spki', format: 'der' });
    const pub = createPublicKey(readFileSync(pubPath)).export({ type: 'spki', format: 'der' });
    return fromKey.equals(pub);
  } catch {
    return false;
  }
}

/** `-subj` argument; \, / and + are escaped (OpenSSL 3 reads + as a multi-valued RDN). */
function subject(cn: string, orgs: readonly string[]): string {
  const esc = (v: string) => v.replace(/[\\/+]/g, (c) => `\\${c}`);
  return `/CN=${esc(cn)}` + orgs.map((o) => `/O=${esc(o)}`).join('');
}

function checkName(what: string, v: string): void {
  // eslint-disable-next-line no-control-regex
  if (!v || /[\x00-\x1f\x7f]/.test(v) || v.length > 64) {
    throw new NodeletError('PKI_INVALID_SPEC', `bad ${what} ${JSON.stringify(v)}`);
  }
}

function checkFileName(name: string): void {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name)) {
    throw new NodeletError('PKI_INVALID_SPEC', `bad file name ${JSON.stringify(name)}`);
  }
}

async function genRsaKey(): Promise<string> {
  const { stdout } = await exec(OPENSSL, ['genpkey', '-quiet', '-algorithm', 'RSA', '-pkeyopt', `rsa_keygen_bits:${RSA_BITS}`]);
  return stdout;
}

function serial(): string {
  const b = randomBytes(16);
  b[0] = ((b[0] ?? 0) & 0x7f) | 0x40; // positive, full 16 bytes
  return `0x${b.toString('hex')}`;
}

function readCert(file: string): X509Certificate {
  try {
    return new X509Certificate(readFileSync(file));
  } catch (err) {
    throw new NodeletError('PKI_INVALID_CERT', `${file}: cannot read certificate`, { cause: err });
  }
}

function readKey(file: string): KeyObject {
  try {
    return createPrivateKey(readFileSync(file));
  } catch (err) {
    throw new NodeletError('PKI_INVALID_KEY', `${file}: cannot read private key`, { cause: err });
  }
}

function fileBase64(file: string): string {
  try {
    return readFileSync(file).toString('base64');
  } catch (err) {
    throw new NodeletError('PKI_INVALID_SPEC', `kubeconfig: cannot read ${file}`, { cause: err });
  }
}

/** Key first, then certificate: an interrupted install leaves a detectable mismatch. */
async function installPair(kc: KeyCert, keyPem: string, certPem: string): Promise<void> {
  if (!keyPem.includes('PRIVATE KEY-----') || !certPem.includes('-----BEGIN CERTIFICATE-----')) {
    throw new NodeletError('PKI_OPENSSL_OUTPUT', `openssl gave no key/certificate for ${kc.certPath}`);
  }
  await writeAtomic(kc.keyPath, keyPem, 0o600);
  await writeAtomic(kc.certPath, certPem, 0o644);
}

/** Write to a temp file beside `file`, fsync, then rename over it. */
async function writeAtomic(file: string, data: string, mode: number): Promise<void> {
  const tmp = `${file}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  let renamed = false;
  try {
    const fh = await open(tmp, 'wx', mode);
    try {
      await fh.chmod(mode); // umask may have cleared bits
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, file);
    renamed = true;
  } finally {
    if (!renamed) await rm(tmp, { force: true });
  }
}

/** A private scratch directory inside `dir` (same file system), removed afterwards. */
async function withWorkDir<T>(dir: string, fn: (work: string) => Promise<T>): Promise<T> {
  const work = await mkdtemp(path.join(dir, '.pki-'));
  try {
    return await fn(work);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
