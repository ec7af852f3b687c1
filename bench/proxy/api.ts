// Creating the proxy benchmarks' objects in the API server (bench/proxy.ts and
// bench/nftables.ts): a Service with its EndpointSlice, and services
// svc-0..svc-(n-1) made to exist, many at a time.
import * as k8s from '@kubernetes/client-node';
import { performance } from 'node:perf_hooks';
import { pool } from '../lib/pool.ts';
import { BENCH_NAMESPACE, benchService, benchSlice, serviceName } from './objects.ts';

export interface Api {
  core: k8s.CoreV1Api;
  disc: k8s.DiscoveryV1Api;
  /** Per-call options (e.g. a middleware), when the client needs them. */
  opts?: k8s.ConfigurationOptions;
}

export const isConflict = (err: unknown) => err instanceof k8s.ApiException && err.code === 409;

/** Creates a Service and its slice; an existing one is left as it is. Returns the Service when this call created it. */
export async function createServiceWithSlice(api: Api, svc: k8s.V1Service, slice: k8s.V1EndpointSlice): Promise<k8s.V1Service | undefined> {
  let created: k8s.V1Service | undefined;
  try {
    created = await api.core.createNamespacedService({ namespace: BENCH_NAMESPACE, body: svc }, api.opts);
  } catch (err) {
    if (!isConflict(err)) throw err;
  }
  try {
    await api.disc.createNamespacedEndpointSlice({ namespace: BENCH_NAMESPACE, body: slice }, api.opts);
  } catch (err) {
    if (!isConflict(err)) throw err;
  }
  return created;
}

/** Makes bench services svc-0..svc-(n-1) exist with their slices; returns how many were missing and how long they took. */
export async function ensureServices(
  api: Api,
  n: number,
  endpointsOf: (i: number) => string[],
  opts: { concurrency: number; check: () => void; log: (m: string) => void },
): Promise<{ created: number; seconds: number }> {
  const have = new Set<string>();
  const list = await api.disc.listNamespacedEndpointSlice({ namespace: BENCH_NAMESPACE }, api.opts);
  for (const s of list.items) if (s.metadata?.name) have.add(s.metadata.name);
  // A size is measured with exactly n services: more (a cluster kept by an earlier run) would be measured as n.
  const beyond = [...have].filter((name) => Number(/^svc-(\d+)-bench$/.exec(name)?.[1] ?? -1) >= n).length;
  if (beyond > 0) {
    throw new Error(`namespace ${BENCH_NAMESPACE} already holds ${beyond} bench services beyond the ${n} asked for (a cluster kept with NODELET_BENCH_KEEP=1?): take it down first`);
  }
  const missing = Array.from({ length: n }, (_, i) => i).filter((i) => !have.has(`${serviceName(i)}-bench`));
  const t = performance.now();
  let done = 0;
  await pool(missing, opts.concurrency, async (i) => {
    opts.check();
    const name = serviceName(i);
    await createServiceWithSlice(api, benchService(name), benchSlice(name, endpointsOf(i)));
    if (++done % 1000 === 0) opts.log(`  created ${done}/${missing.length} (${Math.round(done / ((performance.now() - t) / 1000))}/s)`);
  });
  return { created: missing.length, seconds: Math.round((performance.now() - t) / 100) / 10 };
}
