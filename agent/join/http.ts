// A small JSON-over-HTTPS client for the join steps, which run before there is
// a kubeconfig to build a client-node KubeConfig from: anonymous without TLS
// verification (discovery), then pinned to the discovered CA with the bootstrap
// token or the node's own client certificate.
import https from 'node:https';
import { NodeletError } from '../../lib/errors.ts';

export interface Endpoint {
  /** https://host:port */
  server: string;
  /** PEM CA to verify the server against; without it, `insecure` must be set. */
  caPem?: string;
  /** Skip server verification (discovery only: the answer is verified by JWS afterwards). */
  insecure?: boolean;
  bearerToken?: string;
  /** PEM client certificate and key. */
  clientCertPem?: string;
  clientKeyPem?: string;
}

export interface JsonResponse {
  status: number;
  body: unknown;
}

export type JsonRequester = (ep: Endpoint, method: 'GET' | 'POST', path: string, body?: unknown, timeoutMs?: number) => Promise<JsonResponse>;

/** `HOST:PORT`, `https://HOST:PORT` or `https://[v6]:PORT` to an https URL (no path). */
export function normalizeServer(s: string): string {
  const text = s.trim().replace(/\/+$/, '');
  if (text === '') throw new NodeletError('JOIN_INVALID_FLAG', '--server: is required (HOST:PORT of the API server)');
  const withScheme = /^[a-z]+:\/\//i.test(text) ? text : `https://${text}`;
  let u: URL;
  try {
    u = new URL(withScheme);
  } catch {
    throw new NodeletError('JOIN_INVALID_FLAG', `--server: '${s}' is not HOST:PORT`);
  }
  if (u.protocol !== 'https:' || u.pathname !== '/' || u.search || !u.hostname) {
    throw new NodeletError('JOIN_INVALID_FLAG', `--server: '${s}' is not HOST:PORT or https://HOST:PORT`);
  }
  return `https://${u.host}`;
}

export const requestJson: JsonRequester = (ep, method, path, body, timeoutMs = 10_000) =>
  new Promise((resolve, reject) => {
    const url = new URL(path, ep.server);
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const headers: Record<string, string> = { accept: 'application/json' };
    if (payload) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = String(payload.length);
    }
    if (ep.bearerToken) headers['authorization'] = `Bearer ${ep.bearerToken}`;
    const req = https.request(url, {
      method,
      headers,
      ...(ep.caPem ? { ca: ep.caPem } : {}),
      rejectUnauthorized: !ep.insecure,
      ...(ep.clientCertPem ? { cert: ep.clientCertPem, key: ep.clientKeyPem } : {}),
      agent: false,
      timeout: timeoutMs,
    }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (b: Buffer) => chunks.push(b));
      res.on('error', (err) => reject(unreachable(ep, err)));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let parsed: unknown = text;
        try {
          parsed = text ? JSON.parse(text) : undefined;
        } catch { /* not JSON: keep the text for the error message */ }
        resolve({ status: res.statusCode ?? 0, body: parsed });
      });
    });
    req.on('timeout', () => req.destroy(Object.assign(new Error(`no answer within ${timeoutMs} ms`), { code: 'ETIMEDOUT' })));
    req.on('error', (err) => reject(unreachable(ep, err)));
    req.end(payload);
  });

function unreachable(ep: Endpoint, err: Error & { code?: string }): NodeletError {
  const tls = /CERT|SSL|TLS|SELF_SIGNED|UNABLE_TO_VERIFY/i.test(err.code ?? '') || /certificate/i.test(err.message);
  return tls
    ? new NodeletError('JOIN_TLS_FAILED', `TLS with ${ep.server} failed: ${err.message}`, { cause: err })
    : new NodeletError('JOIN_UNREACHABLE', `cannot reach the API server at ${ep.server}: ${err.code ?? err.message}`, { cause: err });
}

/** The message of a Kubernetes Status body, or the status code. */
export function statusMessage(r: JsonResponse): string {
  const b = r.body as { message?: unknown } | string | undefined;
  const msg = typeof b === 'string' ? b.trim().slice(0, 200) : typeof b?.message === 'string' ? b.message : '';
  return msg ? `HTTP ${r.status}: ${msg}` : `HTTP ${r.status}`;
}
