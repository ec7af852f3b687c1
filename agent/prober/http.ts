// The httpGet probe, as upstream's pkg/probe/http: one GET without keep-alive,
// TLS without verification, the kube-probe user agent, 200-399 is success.
// Redirects to the same host are followed (at most 10 requests); one to
// another host is not followed and reads as success with a warning, because
// the kubelet must not be steered to probe arbitrary hosts. The whole exchange
// (redirects and body) fits in the timeout; at most 10 KiB of body is read.
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { joinHostPort } from '../../lib/ip.ts';
import { dialError, MAX_PROBE_OUTPUT, type ProbeOutcome } from './outcome.ts';

/** Upstream's user agent: kube-probe/<major>.<minor> of the kubelet. */
export const PROBE_USER_AGENT = 'kube-probe/1.37';
const MAX_REQUESTS = 10;
const REDIRECTS = new Set([301, 302, 303, 307, 308]);

export interface HttpHeader {
  name: string;
  value: string;
}

/** The request headers: the probe's own (repeats kept), then user agent and Accept unless given. */
export function probeHeaders(given: readonly HttpHeader[]): http.OutgoingHttpHeaders {
  const h: Record<string, string[]> = {};
  for (const { name, value } of given) (h[name.toLowerCase()] ??= []).push(value);
  const out: http.OutgoingHttpHeaders = {};
  for (const [k, v] of Object.entries(h)) out[k] = k === 'host' ? v[0] : v.length === 1 ? v[0] : v;
  out['user-agent'] ??= PROBE_USER_AGENT;
  out['accept'] ??= '*/*';
  return out;
}

/** The probe URL from its parts (path may carry a query). */
export function probeURL(scheme: string, host: string, port: number, path: string): URL {
  const p = path === '' ? '/' : path.startsWith('/') ? path : `/${path}`;
  return new URL(`${scheme.toLowerCase()}://${joinHostPort(host, port)}${p}`);
}

interface Response {
  status: number;
  location: string | undefined;
  body: string;
}

class Timeout extends Error {
  readonly phase: 'headers' | 'body';
  constructor(phase: 'headers' | 'body') {
    super('timeout');
    this.phase = phase;
  }
}

/** The request head, as node:http would send it for GET with these headers, and Connection: close. */
export function requestHead(url: URL, headers: http.OutgoingHttpHeaders): string {
  const lines = [`GET ${url.pathname}${url.search} HTTP/1.1`];
  if (headers['host'] === undefined) lines.push(`Host: ${url.host}`);
  for (const [k, v] of Object.entries(headers)) {
    if (v === undefined) continue;
    for (const one of Array.isArray(v) ? v : [v]) lines.push(`${k}: ${String(one).replace(/[\r\n]/g, ' ')}`);
  }
  lines.push('Connection: close', '', '');
  return lines.join('\r\n');
}

interface Head {
  status: number;
  headers: Map<string, string>;
  /** Where the body starts in the bytes parsed. */
  bodyAt: number;
}

/** The response head at the start of `buf`, or undefined when more bytes are needed; 1xx heads are skipped. */
export function parseHead(buf: Buffer): Head | undefined {
  let start = 0;
  for (;;) {
    const end = buf.indexOf('\r\n\r\n', start);
    if (end < 0) return undefined;
    const lines = buf.subarray(start, end).toString('latin1').split('\r\n');
    const m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? '');
    if (!m) throw new Error(`malformed HTTP response: "${(lines[0] ?? '').slice(0, 80)}"`);
    const status = Number(m[1]);
    if (status >= 100 && status < 200) {
      start = end + 4;
      continue;
    }
    const headers = new Map<string, string>();
    for (const line of lines.slice(1)) {
      const i = line.indexOf(':');
      if (i > 0) headers.set(line.slice(0, i).trim().toLowerCase(), line.slice(i + 1).trim());
    }
    return { status, headers, bodyAt: end + 4 };
  }
}

/** Decodes a chunked body from `buf`; `done` once the last chunk is in (trailers ignored). */
export function dechunk(buf: Buffer): { body: Buffer; done: boolean } {
  const parts: Buffer[] = [];
  let at = 0;
  for (;;) {
    const eol = buf.indexOf('\r\n', at);
    if (eol < 0) return { body: Buffer.concat(parts), done: false };
    const size = parseInt(buf.subarray(at, eol).toString('latin1').split(';')[0]!.trim(), 16);
    if (!Number.isFinite(size)) throw new Error('malformed chunked encoding');
    if (size === 0) return { body: Buffer.concat(parts), done: true };
    const from = eol + 2;
    if (buf.length < from + size) {
      parts.push(buf.subarray(from));
      return { body: Buffer.concat(parts), done: false };
    }
    parts.push(buf.subarray(from, from + size));
    at = from + size + 2;
  }
}

const MAX_HEAD = 64 * 1024;

/**
 * One plain-HTTP GET on its own connection, parsed here: node:http's client
 * (agent, parser, header objects, request and response streams) costs several
 * times the CPU of the exchange itself, and 110 pods probed every second made
 * it most of the prober's CPU. HTTPS goes through node:https.
 */
function rawGet(url: URL, headers: http.OutgoingHttpHeaders, signal: AbortSignal): Promise<Response> {
  return new Promise<Response>((resolve, reject) => {
    const host = url.hostname.replace(/^\[|\]$/g, '');
    const sock = net.connect({ host, port: Number(url.port || 80) });
    let buf: Buffer = Buffer.alloc(0);
    let head: Head | undefined;
    let settled = false;
    const finish = (err: Error | undefined, res?: Response) => {
      if (settled) return;
      settled = true;
      signal.removeEventListener('abort', onAbort);
      sock.destroy();
      if (err) reject(err);
      else resolve(res!);
    };
    const onAbort = () => finish(new Timeout(head ? 'body' : 'headers'));
    /** The response once the body is complete (or enough of it); undefined while more is needed. */
    const complete = (ended: boolean): Response | undefined => {
      if (!head) return undefined;
      const te = head.headers.get('transfer-encoding') ?? '';
      const len = head.headers.get('content-length');
      let body = buf.subarray(head.bodyAt);
      let done = ended;
      if (/chunked/i.test(te)) {
        const d = dechunk(body);
        body = d.body;
        done ||= d.done;
      } else if (len !== undefined && /^\d+$/.test(len)) {
        done ||= body.length >= Number(len);
        body = body.subarray(0, Number(len));
      }
      // Enough read: the rest of the body does not matter (upstream's ReadAtMost).
      if (!done && body.length < MAX_PROBE_OUTPUT) return undefined;
      return { status: head.status, location: head.headers.get('location'), body: body.subarray(0, MAX_PROBE_OUTPUT).toString('utf8') };
    };
    const onBytes = (ended: boolean) => {
      try {
        if (!head) {
          head = parseHead(buf);
          if (!head) {
            if (ended) return finish(new Error('EOF'));
            if (buf.length > MAX_HEAD) return finish(new Error('net/http: server response headers exceeded 65536 bytes; aborted'));
            return;
          }
        }
        // At the end of the stream whatever came is the body (complete() says done).
        const res = complete(ended);
        if (res) finish(undefined, res);
      } catch (err) {
        finish(err as Error);
      }
    };
    sock.on('data', (b: Buffer) => {
      buf = buf.length === 0 ? b : Buffer.concat([buf, b]);
      onBytes(false);
    });
    sock.on('end', () => onBytes(true));
    sock.on('error', (err) => finish(err));
    sock.once('connect', () => sock.write(requestHead(url, headers)));
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

function getOnce(url: URL, headers: http.OutgoingHttpHeaders, signal: AbortSignal): Promise<Response> {
  if (url.protocol === 'http:') return rawGet(url, headers, signal);
  return new Promise<Response>((resolve, reject) => {
    const mod = https;
    let gotHeaders = false;
    const onAbort = () => {
      req.destroy();
      reject(new Timeout(gotHeaders ? 'body' : 'headers'));
    };
    const req = mod.request(url, { method: 'GET', headers, agent: false, rejectUnauthorized: false }, (res) => {
      gotHeaders = true;
      const chunks: Buffer[] = [];
      let size = 0;
      const done = () => {
        signal.removeEventListener('abort', onAbort);
        const loc = res.headers.location;
        resolve({ status: res.statusCode ?? 0, location: loc, body: Buffer.concat(chunks).subarray(0, MAX_PROBE_OUTPUT).toString('utf8') });
      };
      res.on('data', (b: Buffer) => {
        chunks.push(b);
        size += b.length;
        // Enough read: the rest of the body does not matter (upstream's ReadAtMost).
        if (size >= MAX_PROBE_OUTPUT) {
          res.destroy();
          done();
        }
      });
      res.on('end', done);
      res.on('error', (err) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      });
    });
    req.on('error', (err) => {
      signal.removeEventListener('abort', onAbort);
      reject(err);
    });
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    req.end();
  });
}

/** One httpGet probe of `url` within `timeoutMs`. Never throws. */
export async function httpProbe(target: URL, headers: http.OutgoingHttpHeaders, timeoutMs: number): Promise<ProbeOutcome> {
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(), timeoutMs);
  let url = target;
  try {
    for (let requests = 1; ; requests++) {
      let r: Response;
      try {
        r = await getOnce(url, headers, ac.signal);
      } catch (err) {
        if (err instanceof Timeout) {
          const why = err.phase === 'headers' ? 'Client.Timeout exceeded while awaiting headers' : 'Client.Timeout or context cancellation while reading body';
          return { result: 'failure', output: `Get "${url.href}": context deadline exceeded (${why})` };
        }
        const addr = joinHostPort(url.hostname.replace(/^\[|\]$/g, ''), Number(url.port || (url.protocol === 'https:' ? 443 : 80)));
        return { result: 'failure', output: `Get "${url.href}": ${dialError(addr, err)}` };
      }
      if (REDIRECTS.has(r.status) && r.location !== undefined) {
        let next: URL;
        try {
          next = new URL(r.location, url);
        } catch {
          return { result: 'failure', output: `Get "${url.href}": failed to parse Location header "${r.location}"` };
        }
        if (next.hostname === target.hostname) {
          if (requests >= MAX_REQUESTS) return { result: 'failure', output: `Get "${next.href}": stopped after ${MAX_REQUESTS} redirects` };
          url = next;
          continue;
        }
        // Another host: not followed, the redirect itself is the answer.
      }
      if (r.status >= 200 && r.status < 400) {
        if (r.status >= 300) return { result: 'warning', output: `Probe terminated redirects, Response body: ${r.body}` };
        return { result: 'success', output: r.body };
      }
      return { result: 'failure', output: `HTTP probe failed with statuscode: ${r.status}` };
    }
  } finally {
    clearTimeout(timer);
  }
}
