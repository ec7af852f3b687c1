// A kubeconfig read as client-go reads it, for what a node agent needs: the
// current context's server, the CA (file or inline), client certificate and
// key (files or inline), a bearer token (inline or tokenFile), and
// insecure-skip-tls-verify. Relative file paths are relative to the
// kubeconfig's directory. Anything else that authenticates (exec plugins,
// auth providers, basic auth) is a clear CONFIG_INVALID, not a silent
// anonymous client. Files are named, not read, so rotated credentials are
// picked up (see client.ts).
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { describeError, NodeletError } from '../errors.ts';

/** PEM or token material: inline, or a file read when needed. */
export type Material = { data: string } | { file: string };

export interface KubeCredentials {
  /** https://host:port (no trailing slash). */
  server: string;
  ca?: Material;
  insecureSkipTLSVerify?: boolean;
  tlsServerName?: string;
  clientCert?: Material;
  clientKey?: Material;
  token?: Material;
}

type Named<T> = { name?: unknown } & Record<string, T | unknown>;

function invalid(where: string, why: string): NodeletError {
  return new NodeletError('CONFIG_INVALID', `${where}: ${why}`);
}

function findNamed(list: unknown, key: string, name: string): Record<string, unknown> | undefined {
  if (!Array.isArray(list)) return undefined;
  const hit = (list as Named<unknown>[]).find((e) => e && e.name === name);
  const v = hit?.[key];
  return v && typeof v === 'object' ? (v as Record<string, unknown>) : undefined;
}

function str(o: Record<string, unknown>, key: string): string | undefined {
  const v = o[key];
  return typeof v === 'string' && v !== '' ? v : undefined;
}

/** Inline (base64 `-data`) wins over the file, as in client-go. */
function material(o: Record<string, unknown>, fileKey: string, dataKey: string, dir: string): Material | undefined {
  const data = str(o, dataKey);
  if (data) return { data: Buffer.from(data, 'base64').toString('utf8') };
  const file = str(o, fileKey);
  return file ? { file: path.resolve(dir, file) } : undefined;
}

/** Parses kubeconfig text; `dir` resolves relative paths. */
export function parseKubeconfig(text: string, dir: string, where = 'kubeconfig'): KubeCredentials {
  let doc: unknown;
  try {
    doc = parse(text);
  } catch (err) {
    throw invalid(where, `not YAML: ${describeError(err)}`);
  }
  if (!doc || typeof doc !== 'object') throw invalid(where, 'not a kubeconfig (empty or not a mapping)');
  const cfg = doc as Record<string, unknown>;
  const contextName = typeof cfg['current-context'] === 'string' ? cfg['current-context'] : '';
  const contexts = Array.isArray(cfg.contexts) ? cfg.contexts : [];
  // No current-context: a file with exactly one context means that one (as kubeadm's files).
  const ctxName = contextName || (contexts.length === 1 ? String((contexts[0] as Named<unknown>)?.name ?? '') : '');
  const ctx = findNamed(cfg.contexts, 'context', ctxName);
  if (!ctx) throw invalid(where, ctxName ? `context '${ctxName}' not found` : 'no current-context');
  const clusterName = str(ctx, 'cluster') ?? '';
  const cluster = findNamed(cfg.clusters, 'cluster', clusterName);
  if (!cluster) throw invalid(where, `cluster '${clusterName}' of context '${ctxName}' not found`);
  const server = str(cluster, 'server');
  if (!server) throw invalid(where, 'no server in the current context');
  let url: URL;
  try {
    url = new URL(server);
  } catch {
    throw invalid(where, `server '${server}' is not a URL`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw invalid(where, `server '${server}' is not http(s)`);

  const out: KubeCredentials = { server: server.replace(/\/+$/, '') };
  const ca = material(cluster, 'certificate-authority', 'certificate-authority-data', dir);
  if (ca) out.ca = ca;
  if (cluster['insecure-skip-tls-verify'] === true) out.insecureSkipTLSVerify = true;
  const sni = str(cluster, 'tls-server-name');
  if (sni) out.tlsServerName = sni;

  const userName = str(ctx, 'user');
  const user = userName ? findNamed(cfg.users, 'user', userName) : undefined;
  if (userName && !user) throw invalid(where, `user '${userName}' of context '${ctxName}' not found`);
  if (user) {
    for (const k of ['exec', 'auth-provider', 'username', 'password']) {
      if (user[k] !== undefined) throw invalid(where, `user '${userName}': '${k}' is not supported (use a client certificate or a token)`);
    }
    const cert = material(user, 'client-certificate', 'client-certificate-data', dir);
    const key = material(user, 'client-key', 'client-key-data', dir);
    if (!!cert !== !!key) throw invalid(where, `user '${userName}': a client certificate needs its key and the other way round`);
    if (cert && key) {
      out.clientCert = cert;
      out.clientKey = key;
    }
    const token = str(user, 'token');
    const tokenFile = str(user, 'tokenFile');
    if (token) out.token = { data: token };
    else if (tokenFile) out.token = { file: path.resolve(dir, tokenFile) };
  }
  return out;
}

/**
 * Loads a kubeconfig from an explicit path (never a default that would fall
 * back to localhost), with one clear CONFIG_INVALID error for a missing file,
 * a malformed one, or one without a server.
 */
export function loadKubeconfig(file: string): KubeCredentials {
  const where = `--kubeconfig ${file}`;
  if (!existsSync(file)) throw invalid(where, 'file does not exist');
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw invalid(where, describeError(err));
  }
  return parseKubeconfig(text, path.dirname(path.resolve(file)), where);
}

/** The material's text (a file is read now). */
export function readMaterial(m: Material | undefined): string | undefined {
  if (!m) return undefined;
  return 'data' in m ? m.data : readFileSync(m.file, 'utf8');
}
