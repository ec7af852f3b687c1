// The API objects of the proxy benchmark: selectorless Services with one
// EndpointSlice each (5 endpoints in the profile's pod CIDR, which nothing
// answers: only rules are measured), and the chain name a proxy writes for
// them. Pure, so the names and addresses are the same for every run.
import type { V1EndpointSlice, V1Service } from '@kubernetes/client-node';
import { serviceChainName } from '../../proxy/iptables/rules.ts';
import { SERVICE_NAME_LABEL, servicePortKey } from '../../proxy/types.ts';

export const BENCH_NAMESPACE = 'bench-proxy';
export const ENDPOINTS_PER_SERVICE = 5;
export const SERVICE_PORT = 80;
export const TARGET_PORT = 8080;
/** Marks the slices as ours, so the endpointslice controllers leave them alone. */
export const MANAGED_BY = 'bench.nodelet.local';

export const serviceName = (i: number): string => `svc-${i}`;

/**
 * Endpoint k (service i has k = 5i .. 5i+4) in clusterCIDR a.b.0.0/16:
 * a.b.(2 + k/250).(1 + k%250). Starts at a.b.2.0 so node 1's pod CIDR
 * (a.b.1.0/24) is never used; 62500 addresses, enough for 12500 services.
 */
export function endpointIP(clusterCIDR: string, k: number): string {
  const [a, b] = clusterCIDR.split('/')[0]!.split('.');
  const third = 2 + Math.floor(k / 250);
  if (third > 255) throw new Error(`endpoint ${k} does not fit in ${clusterCIDR}`);
  return `${a}.${b}.${third}.${1 + (k % 250)}`;
}

export function benchService(name: string): V1Service {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace: BENCH_NAMESPACE },
    spec: { type: 'ClusterIP', ports: [{ port: SERVICE_PORT, targetPort: TARGET_PORT, protocol: 'TCP' }] },
  };
}

export function benchSlice(name: string, addresses: readonly string[]): V1EndpointSlice {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: {
      name: `${name}-bench`,
      namespace: BENCH_NAMESPACE,
      labels: { [SERVICE_NAME_LABEL]: name, 'endpointslice.kubernetes.io/managed-by': MANAGED_BY },
    },
    addressType: 'IPv4',
    ports: [{ port: TARGET_PORT, protocol: 'TCP' }],
    endpoints: addresses.map((ip) => ({ addresses: [ip], conditions: { ready: true, serving: true, terminating: false } })),
  };
}

/** The 5 endpoint addresses of bench service i. */
export function serviceEndpoints(clusterCIDR: string, i: number): string[] {
  return Array.from({ length: ENDPOINTS_PER_SERVICE }, (_, j) => endpointIP(clusterCIDR, i * ENDPOINTS_PER_SERVICE + j));
}

/** The KUBE-SVC chain both proxies write for a bench service (same hash as upstream). */
export function benchServiceChain(name: string): string {
  return serviceChainName(servicePortKey(BENCH_NAMESPACE, name, ''), 'TCP');
}

/**
 * Sum and count of a Prometheus histogram in text exposition format, added
 * over the label sets that hold `label` (e.g. ip_family="IPv4": both proxies
 * run a proxier per family on a host with IPv6, and the IPv6 one's syncs of
 * an empty table must not count; series without labels count too).
 */
export function histogram(text: string, name: string, label?: string): { sum: number; count: number } {
  let sum = 0;
  let count = 0;
  for (const line of text.split('\n')) {
    const m = /^(\S+?)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    if (label && m[2] && !m[2].includes(label)) continue;
    if (m[1] === `${name}_sum`) sum += Number(m[3]);
    else if (m[1] === `${name}_count`) count += Number(m[3]);
  }
  return { sum, count };
}

/** The value of a gauge with the given labels (e.g. table="nat", in any order), or undefined. */
export function gauge(text: string, name: string, ...labels: string[]): number | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^(\S+?)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (!m || m[1] !== name) continue;
    if (labels.some((l) => !(m[2] ?? '').includes(l))) continue;
    return Number(m[3]);
  }
  return undefined;
}
