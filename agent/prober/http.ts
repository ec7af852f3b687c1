// The httpGet probe, as upstream's pkg/probe/http: one GET without keep-alive,
// TLS without verification, the kube-probe user agent, 200-399 is success.
// Redirects to the same host are followed (at most 10 requests); one to
// another host is not followed and reads as success with a warning, because
// the kubelet must not be steered to probe arbitrary hosts. The whole exchange
// (redirects and body) fits in the timeout; at most 10 KiB of body is read.
import http from 'node:http';
import https from 'node:https';
import { dialError, joinHostPort, MAX_PROBE_OUTPUT, type ProbeOutcome } from './outcome.ts';

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

function getOnce(url: URL, headers: http.OutgoingHttpHeaders, signal: AbortSignal): Promise<Response> {
  return new Promise<Response>((resolve, reject) => {
    const mod = url.protocol === 'https:' ? https : http;
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
