// Token discovery, as kubeadm join does it: the cluster-info ConfigMap in
// kube-public holds a kubeconfig (server + CA) and, per bootstrap token, a
// detached JWS (jws-kubeconfig-<token id>) that the controller-manager's
// bootstrapsigner computes with the token secret. A valid signature proves the
// sender knows the token; the CA public key hash pins the CA itself.
// Everything here is pure; the fetching lives in main.ts.
import { createHmac, timingSafeEqual } from 'node:crypto';
import { parse } from 'yaml';
import { caCertHash } from '../../cluster/pki.ts';
import { NodeletError } from '../../lib/errors.ts';

export interface BootstrapToken {
  id: string;
  secret: string;
}

export const JWS_KEY_PREFIX = 'jws-kubeconfig-';

const TOKEN_RE = /^([a-z0-9]{6})\.([a-z0-9]{16})$/;

/** `[a-z0-9]{6}.[a-z0-9]{16}`, the bootstrap token format. */
export function parseBootstrapToken(text: string): BootstrapToken {
  const m = TOKEN_RE.exec(text.trim());
  if (!m) throw new NodeletError('JOIN_INVALID_FLAG', '--token: not a bootstrap token (want [a-z0-9]{6}.[a-z0-9]{16})');
  return { id: m[1]!, secret: m[2]! };
}

/** One or more `sha256:<hex>` pins (comma-separated), normalized to lower case. */
export function parseCAHashes(text: string): string[] {
  const pins = text.split(',').map((s) => s.trim()).filter(Boolean);
  if (pins.length === 0) throw new NodeletError('JOIN_INVALID_FLAG', '--discovery-token-ca-cert-hash: is required (sha256:<hex of the CA public key>)');
  return pins.map((p) => {
    const m = /^sha256:([0-9a-fA-F]{64})$/.exec(p);
    if (!m) throw new NodeletError('JOIN_INVALID_FLAG', `--discovery-token-ca-cert-hash: '${p}' is not sha256:<64 hex digits>`);
    return `sha256:${m[1]!.toLowerCase()}`;
  });
}

const b64url = (b: Buffer | string): string => Buffer.from(b).toString('base64url');

/** header..signature, the compact JWS with the payload left out (RFC 7515 appendix F). */
export function signDetachedJws(payload: string, token: BootstrapToken): string {
  const header = b64url(JSON.stringify({ alg: 'HS256', kid: token.id }));
  const sig = createHmac('sha256', token.secret).update(`${header}.${b64url(payload)}`).digest();
  return `${header}..${b64url(sig)}`;
}

/** Why the detached JWS does not sign `payload` with `token`, or undefined when it does. */
export function detachedJwsError(jws: string, payload: string, token: BootstrapToken): string | undefined {
  const parts = jws.trim().split('.');
  if (parts.length !== 3 || parts[1] !== '') return 'not a detached compact JWS';
  const [header, , sig] = parts as [string, string, string];
  let h: { alg?: unknown; kid?: unknown };
  try {
    h = JSON.parse(Buffer.from(header, 'base64url').toString('utf8')) as typeof h;
  } catch {
    return 'the JWS header is not JSON';
  }
  if (h.alg !== 'HS256') return `the JWS algorithm is ${JSON.stringify(h.alg)}, not HS256`;
  if (h.kid !== undefined && h.kid !== token.id) return `the JWS key id is ${JSON.stringify(h.kid)}, not the token id`;
  const want = createHmac('sha256', token.secret).update(`${header}.${b64url(payload)}`).digest();
  const got = Buffer.from(sig, 'base64url');
  if (got.length !== want.length || !timingSafeEqual(got, want)) return 'the signature does not match the token';
  return undefined;
}

export interface ClusterInfo {
  /** The API server URL the cluster-info kubeconfig names. */
  server: string;
  caPem: string;
}

/** The cluster entry of the cluster-info kubeconfig. */
export function parseClusterInfoKubeconfig(text: string): ClusterInfo {
  let doc: { clusters?: Array<{ cluster?: { server?: unknown; 'certificate-authority-data'?: unknown } }> };
  try {
    doc = parse(text) as typeof doc;
  } catch (err) {
    throw new NodeletError('JOIN_DISCOVERY_INVALID', 'cluster-info: the kubeconfig is not YAML', { cause: err });
  }
  const c = doc?.clusters?.[0]?.cluster;
  const server = typeof c?.server === 'string' ? c.server : '';
  const caData = typeof c?.['certificate-authority-data'] === 'string' ? c['certificate-authority-data'] : '';
  if (!server || !caData) throw new NodeletError('JOIN_DISCOVERY_INVALID', 'cluster-info: the kubeconfig has no cluster with a server and certificate-authority-data');
  const caPem = Buffer.from(caData, 'base64').toString('utf8');
  if (!caPem.includes('-----BEGIN CERTIFICATE-----')) throw new NodeletError('JOIN_DISCOVERY_INVALID', 'cluster-info: certificate-authority-data is not a PEM certificate');
  return { server, caPem };
}

/**
 * Validates the cluster-info ConfigMap data against the token and the CA pins
 * and returns the cluster to trust. Errors: JOIN_NO_SIGNATURE (no JWS for this
 * token id yet, or a token the cluster does not know), JOIN_TOKEN_INVALID (the
 * signature does not verify), JOIN_CA_HASH_MISMATCH.
 */
export function validateClusterInfo(data: Readonly<Record<string, string>>, token: BootstrapToken, pins: readonly string[]): ClusterInfo {
  const kubeconfig = data['kubeconfig'];
  if (!kubeconfig) throw new NodeletError('JOIN_DISCOVERY_INVALID', 'the cluster-info ConfigMap has no kubeconfig');
  const jws = data[`${JWS_KEY_PREFIX}${token.id}`];
  if (!jws) {
    throw new NodeletError('JOIN_NO_SIGNATURE', `the cluster-info ConfigMap has no signature for token id "${token.id}": the token is not valid for this cluster (or it was created moments ago)`);
  }
  const why = detachedJwsError(jws, kubeconfig, token);
  if (why) throw new NodeletError('JOIN_TOKEN_INVALID', `cluster-info signature check failed (${why}): wrong token, cannot trust this API server`);
  const info = parseClusterInfoKubeconfig(kubeconfig);
  const hash = caCertHash(info.caPem);
  if (!pins.includes(hash)) {
    throw new NodeletError('JOIN_CA_HASH_MISMATCH', `the cluster CA's public key hash is ${hash}, which matches no --discovery-token-ca-cert-hash`);
  }
  return info;
}
