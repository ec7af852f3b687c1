// The nftables benchmark's API objects and metric reading, on top of the
// proxy bench's (bench/proxy/objects.ts): the same selectorless Services and
// 5-endpoint EndpointSlices, with endpoint addresses that wrap around so
// 20k services fit in a /16 pod CIDR (addresses nothing answers: only rules
// are measured), plus the one Service whose endpoint is a real TCP server.
import { type Api, isConflict } from '../proxy/api.ts';
import { BENCH_NAMESPACE, ENDPOINTS_PER_SERVICE, endpointIP, histogram } from '../proxy/objects.ts';

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

export async function ensureNamespace(api: Api): Promise<void> {
  try {
    await api.core.createNamespace({ body: { metadata: { name: BENCH_NAMESPACE } } });
  } catch (err) {
    if (!isConflict(err)) throw err;
  }
}

/** Sum and count of a Prometheus histogram over its IPv4 (or unlabelled) series: both proxies also sync an (empty) IPv6 family. */
export function histogramV4(text: string, name: string): { sum: number; count: number } {
  return histogram(text, name, 'ip_family="IPv4"');
}
