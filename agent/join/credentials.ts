// The node's credentials on disk, laid out as kubelet's: one PEM with the
// client certificate and its key (so a rotation replaces both with one
// rename), the cluster CA, and a kubeconfig that points at both files
// (client-node reads them per request, so a rotated certificate is used
// without a restart). Every file is written to a temp file and renamed into
// place, the kubeconfig last: a kubeconfig exists only with what it names.
import { createPrivateKey, randomBytes, X509Certificate, type KeyObject } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, open, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { stringify, parse } from 'yaml';
import { NodeletError } from '../../lib/errors.ts';

export interface CredentialPaths {
  dir: string;
  kubeconfig: string;
  /** Certificate, then key. */
  clientPem: string;
  caCert: string;
}

export function credentialPaths(dir: string): CredentialPaths {
  return {
    dir,
    kubeconfig: path.join(dir, 'kubeconfig'),
    clientPem: path.join(dir, 'pki', 'nodelet-client-current.pem'),
    caCert: path.join(dir, 'pki', 'ca.crt'),
  };
}

export function kubeconfigText(p: CredentialPaths, server: string): string {
  return stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'default-cluster', cluster: { server, 'certificate-authority': p.caCert } }],
    users: [{ name: 'default-auth', user: { 'client-certificate': p.clientPem, 'client-key': p.clientPem } }],
    contexts: [{ name: 'default-context', context: { cluster: 'default-cluster', user: 'default-auth', namespace: 'default' } }],
    'current-context': 'default-context',
  });
}

export const clientPemText = (certPem: string, key: KeyObject): string =>
  `${certPem.trimEnd()}\n${(key.export({ type: 'pkcs8', format: 'pem' }) as string).trimEnd()}\n`;

export interface Credentials {
  server: string;
  caPem: string;
  certPem: string;
  key: KeyObject;
}

/** Writes all three files; on any failure removes what it wrote (a first join leaves nothing). */
export async function writeCredentials(p: CredentialPaths, c: Credentials): Promise<void> {
  const files: Array<{ file: string; data: string; mode: number }> = [
    { file: p.clientPem, data: clientPemText(c.certPem, c.key), mode: 0o600 },
    { file: p.caCert, data: c.caPem, mode: 0o644 },
    { file: p.kubeconfig, data: kubeconfigText(p, c.server), mode: 0o600 },
  ];
  const fresh = !existsSync(p.kubeconfig);
  const createdDirs: string[] = [];
  for (const d of [p.dir, path.dirname(p.clientPem)]) {
    if (!existsSync(d)) {
      await mkdir(d, { recursive: true, mode: 0o700 });
      createdDirs.push(d);
    }
  }
  const staged: string[] = [];
  const placed: string[] = [];
  try {
    for (const f of files) staged.push(await writeTemp(f.file, f.data, f.mode));
    for (const [i, f] of files.entries()) {
      await rename(staged[i]!, f.file);
      placed.push(f.file);
    }
  } catch (err) {
    for (const t of staged) await rm(t, { force: true });
    if (fresh) {
      for (const f of placed) await rm(f, { force: true });
      for (const d of createdDirs.reverse()) await rm(d, { recursive: true, force: true });
    }
    throw new NodeletError('JOIN_WRITE_FAILED', `writing credentials under ${p.dir}`, { cause: err });
  }
}

/** Replaces the client certificate and key in one rename (rotation). */
export async function replaceClientPem(p: CredentialPaths, certPem: string, key: KeyObject): Promise<void> {
  const tmp = await writeTemp(p.clientPem, clientPemText(certPem, key), 0o600);
  try {
    await rename(tmp, p.clientPem);
  } catch (err) {
    await rm(tmp, { force: true });
    throw new NodeletError('JOIN_WRITE_FAILED', `replacing ${p.clientPem}`, { cause: err });
  }
}

export interface CurrentClient {
  cert: X509Certificate;
  certPem: string;
  keyPem: string;
  server: string;
  caPem: string;
}

/** The credentials under `p`, if they are complete and parse; otherwise undefined. */
export function readCredentials(p: CredentialPaths): CurrentClient | undefined {
  try {
    const pemText = readFileSync(p.clientPem, 'utf8');
    const certPem = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/.exec(pemText)?.[0];
    const keyPem = /-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]+?-----END [A-Z ]*PRIVATE KEY-----\n?/.exec(pemText)?.[0];
    if (!certPem || !keyPem) return undefined;
    const cert = new X509Certificate(certPem);
    if (!cert.checkPrivateKey(createPrivateKey(keyPem))) return undefined;
    const kc = parse(readFileSync(p.kubeconfig, 'utf8')) as { clusters?: Array<{ cluster?: { server?: string } }> };
    const server = kc.clusters?.[0]?.cluster?.server;
    if (!server) return undefined;
    return { cert, certPem, keyPem, server, caPem: readFileSync(p.caCert, 'utf8') };
  } catch {
    return undefined;
  }
}

/** Whether existing credentials can be kept: the node's own, from the same CA, and valid now. */
export function credentialsUsable(c: CurrentClient, nodeName: string, nowMs: number): boolean {
  const subject = c.cert.subject.split('\n');
  if (!subject.includes(`CN=system:node:${nodeName}`) || !subject.includes('O=system:nodes')) return false;
  try {
    if (!c.cert.verify(new X509Certificate(c.caPem).publicKey)) return false;
  } catch {
    return false;
  }
  return nowMs >= c.cert.validFromDate.getTime() && nowMs < c.cert.validToDate.getTime();
}

async function writeTemp(file: string, data: string, mode: number): Promise<string> {
  const tmp = `${file}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    const fh = await open(tmp, 'wx', mode);
    try {
      await fh.chmod(mode); // the umask may have cleared bits
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
  return tmp;
}
