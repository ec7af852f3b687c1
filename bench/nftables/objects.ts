// The nftables benchmark's API objects and metric reading, on top of the
// proxy bench's (bench/proxy/objects.ts): the same selectorless Services and
// 5-endpoint EndpointSlices, with endpoint addresses that wrap around so
// 20k services fit in a /16 pod CIDR (addresses nothing answers: only rules
// are measured), plus the one Service whose endpoint is a real TCP server.
import * as k8s from '@kubernetes/client-node';
import { performance } from 'node:perf_hooks';
import { BENCH_NAMESPACE, benchService, benchSlice, ENDPOINTS_PER_SERVICE, endpointIP, serviceName } from '../proxy/objects.ts';

/** Endpoint indexes 0..WRAP-1 are service endpoints; the ones above are for changes. */
const WRAP = 60_000;
/** Addresses a change puts in (endpointIP index WRAP + CHANGE_BASE + sample), never a service's own. */
const CHANGE_BASE = 1_000;

/**
 * The 5 endpoint addresses of bench service i. Past 12000 services the
 * addresses repeat (another service's endpoints): both proxies still build
 * one chain or element per service endpoint, so the rules are as large.
 */
export function endpointsOf(clusterCIDR: string, i: number): string[] {
  return Array.from({ length: ENDPOINTS_PER_SERVICE }, (_, j) => endpointIP(clusterCIDR, (i * ENDPOINTS_PER_SERVICE + j) % WRAP));
}

export const changeIP = (clusterCIDR: string, sample: number): string => endpointIP(clusterCIDR, WRAP + CHANGE_BASE + (sample % 1_000));

const isConflict = (err: unknown) => err instanceof k8s.ApiException && err.code === 409;

export interface Api {
  core: k8s.CoreV1Api;
  disc: k8s.DiscoveryV1Api;
}

export async function ensureNamespace(api: Api): Promise<void> {
  try {
    await api.core.createNamespace({ body: { metadata: { name: BENCH_NAMESPACE } } });
  } catch (err) {
    if (!isConflict(err)) throw err;
  }
}

/** Creates a Service and its slice; an existing one is left as it is. */
export async function createServiceWithSlice(api: Api, svc: k8s.V1Service, slice: k8s.V1EndpointSlice): Promise<k8s.V1Service | undefined> {
  let created: k8s.V1Service | undefined;
  try {
    created = await api.core.createNamespacedService({ namespace: BENCH_NAMESPACE, body: svc });
  } catch (err) {
    if (!isConflict(err)) throw err;
  }
  try {
    await api.disc.createNamespacedEndpointSlice({ namespace: BENCH_NAMESPACE, body: slice });
  } catch (err) {
    if (!isConflict(err)) throw err;
  }
  return created;
}

async function pool<T>(items: readonly T[], width: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await fn(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(width, items.length) }, worker));
}

/** Makes bench services svc-0..svc-(n-1) exist with their slices; returns how many were missing and how long they took. */
export async function ensureServices(
  api: Api,
  clusterCIDR: string,
  n: number,
  opts: { concurrency: number; check: () => void; log: (m: string) => void },
): Promise<{ created: number; seconds: number }> {
  const have = new Set<string>();
  const list = await api.disc.listNamespacedEndpointSlice({ namespace: BENCH_NAMESPACE });
  for (const s of list.items) if (s.metadata?.name) have.add(s.metadata.name);
  const missing = Array.from({ length: n }, (_, i) => i).filter((i) => !have.has(`${serviceName(i)}-bench`));
  const t = performance.now();
  let done = 0;
  await pool(missing, opts.concurrency, async (i) => {
    opts.check();
    const name = serviceName(i);
    await createServiceWithSlice(api, benchService(name), benchSlice(name, endpointsOf(clusterCIDR, i)));
    if (++done % 1000 === 0) opts.log(`  created ${done}/${missing.length} (${Math.round(done / ((performance.now() - t) / 1000))}/s)`);
  });
  return { created: missing.length, seconds: Math.round((performance.now() - t) / 100) / 10 };
}

/**
 * Sum and count of a Prometheus histogram over its IPv4 (or unlabelled)
 * series: kube-proxy also syncs an (empty) IPv6 family and labels each by
 * ip_family; nodelet is IPv4 only and has no such label.
 */
export function histogramV4(text: string, name: string): { sum: number; count: number } {
  let sum = 0;
  let count = 0;
  for (const line of text.split('\n')) {
    const m = /^(\S+?)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (!m || (m[2] ?? '').includes('ip_family="IPv6"')) continue;
    if (m[1] === `${name}_sum`) sum += Number(m[3]);
    else if (m[1] === `${name}_count`) count += Number(m[3]);
  }
  return { sum, count };
}
