// The API-server client of the agent and the proxy: JSON over HTTP/1.1 with
// keep-alive connections that are reused across calls. (client-node 2.x builds
// a new dispatcher, so a new TLS connection and context, for every request,
// and its import alone costs a node agent about 90 MB.) Credentials named by
// file are checked for changes at most once a second: a rotated client
// certificate gets a new connection pool; requests in flight finish on the old
// one. Failures are ApiErrors (./errors.ts): the op, the HTTP status, the
// Status reason and message.
import { statSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { Readable } from 'node:stream';
import { apiError, networkText, statusText } from './errors.ts';
import { type KubeCredentials, loadKubeconfig, readMaterial } from './kubeconfig.ts';

export type Query = Record<string, string | number | boolean | undefined>;

export interface RequestOptions {
  query?: Query;
  body?: unknown;
  /** Default application/json for a body. */
  contentType?: string;
  /** Default: the client's. */
  timeoutMs?: number;
  signal?: AbortSignal;
}

export interface KubeClientOptions {
  /** Per request (not for streams); default 10 s, so a hung API server cannot stall a loop. */
  timeoutMs?: number;
  userAgent?: string;
  /** How often files named by the kubeconfig are checked for changes; default 1 s. */
  reloadCheckMs?: number;
  now?: () => number;
}

export const MERGE_PATCH = 'application/merge-patch+json';

/** Sockets kept open between requests; watches have their own pool. */
const MAX_FREE_SOCKETS = 8;
/** An old pool (before a credential change) is closed this long after it was replaced. */
const RETIRE_MS = 15 * 60_000;

interface Pools {
  /** What the pools were built from (files' contents), to see a change. */
  key: string;
  requests: http.Agent;
  streams: http.Agent;
  token: string | undefined;
}

function materialFiles(c: KubeCredentials): string[] {
  return [c.ca, c.clientCert, c.clientKey, c.token].flatMap((m) => (m && 'file' in m ? [m.file] : []));
}

/** A path segment (names are DNS labels, but nothing here trusts that). */
export function enc(s: string): string {
  return encodeURIComponent(s);
}

export function queryString(q: Query | undefined): string {
  if (!q) return '';
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(q)) if (v !== undefined) p.set(k, String(v));
  const s = p.toString();
  return s ? `?${s}` : '';
}

export class KubeClient {
  readonly server: string;
  /** What the kubeconfig named (the CA also verifies the kubelet API's clients). */
  readonly credentials: KubeCredentials;
  private readonly url: URL;
  private readonly tls: boolean;
  private readonly timeoutMs: number;
  private readonly userAgent: string;
  private readonly reloadCheckMs: number;
  private readonly now: () => number;
  private pools: Pools | undefined;
  private checkedAt = -Infinity;
  private stamp = '';
  private readonly retired = new Set<http.Agent>();

  constructor(creds: KubeCredentials, opts: KubeClientOptions = {}) {
    this.credentials = creds;
    this.server = creds.server;
    this.url = new URL(creds.server);
    this.tls = this.url.protocol === 'https:';
    this.timeoutMs = opts.timeoutMs ?? 10_000;
    this.userAgent = opts.userAgent ?? 'nodelet';
    this.reloadCheckMs = opts.reloadCheckMs ?? 1000;
    this.now = opts.now ?? Date.now;
  }

  /** A client for the kubeconfig at `file` (CONFIG_INVALID when it is unusable). */
  static fromFile(file: string, opts?: KubeClientOptions): KubeClient {
    return new KubeClient(loadKubeconfig(file), opts);
  }

  /**
   * One call; resolves with the parsed JSON body (undefined when empty).
   * Throws ApiError: the HTTP status for an answer outside 2xx, none when the
   * server was not reached (or the timeout passed).
   */
  async request<T>(op: string, method: string, path: string, o: RequestOptions = {}): Promise<T> {
    const res = await this.send(op, method, path, o, false);
    const text = await readBody(res).catch((err: unknown) => {
      throw apiError(op, undefined, networkText(err), err);
    });
    const status = res.statusCode ?? 0;
    if (status < 200 || status > 299) throw apiError(op, status, statusText(text, status));
    if (text === '') return undefined as T;
    try {
      return JSON.parse(text) as T;
    } catch (err) {
      throw apiError(op, status, `the answer is not JSON: ${text.slice(0, 200)}`, err);
    }
  }

  /**
   * A GET whose body is read as it comes (a watch). Resolves with the
   * response once its status is 200; any other status is an ApiError. The
   * stream ends with `signal` (no timeout of its own).
   */
  async stream(op: string, path: string, o: Omit<RequestOptions, 'body' | 'contentType' | 'timeoutMs'> = {}): Promise<http.IncomingMessage> {
    const res = await this.send(op, 'GET', path, o, true);
    const status = res.statusCode ?? 0;
    if (status !== 200) {
      const text = await readBody(res).catch(() => '');
      throw apiError(op, status, statusText(text, status));
    }
    return res;
  }

  /** Closes every pooled connection (open streams end). */
  close(): void {
    for (const a of this.retired) a.destroy();
    this.retired.clear();
    this.pools?.requests.destroy();
    this.pools?.streams.destroy();
    this.pools = undefined;
  }

  private send(op: string, method: string, path: string, o: RequestOptions, stream: boolean): Promise<http.IncomingMessage> {
    let pools: Pools;
    try {
      pools = this.currentPools();
    } catch (err) {
      return Promise.reject(apiError(op, undefined, `reading the kubeconfig's credentials: ${networkText(err)}`, err));
    }
    const payload = o.body === undefined ? undefined : Buffer.from(typeof o.body === 'string' ? o.body : JSON.stringify(o.body));
    const headers: http.OutgoingHttpHeaders = { accept: 'application/json', 'user-agent': this.userAgent };
    if (payload) {
      headers['content-type'] = o.contentType ?? 'application/json';
      headers['content-length'] = payload.length;
    }
    if (pools.token) headers.authorization = `Bearer ${pools.token.trim()}`;
    const timeoutMs = stream ? 0 : (o.timeoutMs ?? this.timeoutMs);
    const basePath = this.url.pathname.replace(/\/+$/, '');
    return new Promise((resolve, reject) => {
      const req = (this.tls ? https : http).request({
        protocol: this.url.protocol,
        hostname: this.url.hostname.replace(/^\[|\]$/g, ''),
        port: this.url.port || (this.tls ? 443 : 80),
        method,
        path: basePath + path + queryString(o.query),
        headers,
        agent: stream ? pools.streams : pools.requests,
      });
      let timer: NodeJS.Timeout | undefined;
      const onAbort = () => req.destroy(new Error('aborted'));
      const cleanup = () => {
        if (timer) clearTimeout(timer);
        o.signal?.removeEventListener('abort', onAbort);
      };
      if (timeoutMs > 0) timer = setTimeout(() => req.destroy(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
      if (o.signal) {
        if (o.signal.aborted) onAbort();
        else o.signal.addEventListener('abort', onAbort, { once: true });
      }
      req.on('response', (res) => {
        // A stream's owner ends it (signal): its timer only covered the headers.
        if (stream && timer) clearTimeout(timer);
        res.once('close', cleanup);
        resolve(res);
      });
      req.on('error', (err) => {
        cleanup();
        reject(apiError(op, undefined, networkText(err), err));
      });
      req.end(payload);
    });
  }

  /** The pools for the current credentials; rebuilt when a file they came from changed. */
  private currentPools(): Pools {
    const now = this.now();
    if (this.pools && now - this.checkedAt < this.reloadCheckMs) return this.pools;
    this.checkedAt = now;
    const stamp = materialFiles(this.credentials)
      .map((f) => {
        try {
          const s = statSync(f);
          return `${f}:${s.mtimeMs}:${s.size}:${s.ino}`;
        } catch {
          return `${f}:missing`;
        }
      })
      .join('|');
    if (this.pools && stamp === this.stamp) return this.pools;
    const ca = readMaterial(this.credentials.ca);
    const cert = readMaterial(this.credentials.clientCert);
    const key = readMaterial(this.credentials.clientKey);
    const token = readMaterial(this.credentials.token);
    this.stamp = stamp;
    const contentKey = [ca, cert, key].join('\0');
    if (this.pools && this.pools.key === contentKey) {
      this.pools.token = token;
      return this.pools;
    }
    const old = this.pools;
    const base = { keepAlive: true, keepAliveMsecs: 30_000, maxFreeSockets: MAX_FREE_SOCKETS };
    const tlsOpts: https.AgentOptions = {
      ...(ca ? { ca } : {}),
      ...(cert && key ? { cert, key } : {}),
      rejectUnauthorized: !this.credentials.insecureSkipTLSVerify,
      ...(this.credentials.tlsServerName ? { servername: this.credentials.tlsServerName } : {}),
    };
    const make = (o: http.AgentOptions) => (this.tls ? new https.Agent({ ...o, ...tlsOpts }) : new http.Agent(o));
    this.pools = { key: contentKey, requests: make(base), streams: make({ ...base, maxFreeSockets: 2 }), token };
    if (old) this.retire(old);
    return this.pools;
  }

  private retire(p: Pools): void {
    for (const a of [p.requests, p.streams]) {
      this.retired.add(a);
      setTimeout(() => {
        a.destroy();
        this.retired.delete(a);
      }, RETIRE_MS).unref();
    }
  }
}

/**
 * The whole body as text. Its listeners come off the response once it is
 * read: Node's https agent keeps the request that opened a keep-alive socket
 * reachable for the socket's life (a closure of createConnection), and with
 * it the response and whatever its listeners hold. Left on, they kept the
 * body chunks (and through resolve, the body text) of the proxy's first
 * LISTs: 20 MB at 5k services, found in a heap snapshot.
 */
export function readBody(res: Readable): Promise<string> {
  return new Promise((resolve, reject) => {
    let chunks: Buffer[] = [];
    const onData = (c: Buffer) => chunks.push(c);
    const onEnd = () => finish(undefined);
    const onAborted = () => finish(new Error('the connection closed before the answer was complete'));
    const finish = (err: Error | undefined) => {
      res.removeListener('data', onData);
      res.removeListener('end', onEnd);
      res.removeListener('error', finish);
      res.removeListener('aborted', onAborted);
      // A late error must not be unhandled; this listener holds nothing.
      res.on('error', ignore);
      const body = chunks;
      chunks = [];
      if (err) reject(err);
      else resolve(body.length === 1 ? (body[0] as Buffer).toString('utf8') : Buffer.concat(body).toString('utf8'));
    };
    res.on('data', onData);
    res.on('end', onEnd);
    res.on('error', finish);
    res.on('aborted', onAborted);
  });
}

function ignore(): void {}
