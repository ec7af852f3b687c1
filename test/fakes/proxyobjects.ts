// Builders of the proxy's own model for unit tests: a service port and an
// endpoint with the defaults most cases share (ns1/svc1:http, TCP 80 on
// 10.96.0.10; a ready endpoint on 8080 on another node), and a metric read
// back from an injected prom-client registry.
import type { V1EndpointSlice, V1Service } from '@kubernetes/client-node';
import type { Registry } from 'prom-client';
import type { Endpoint, ServicePortInfo } from '../../proxy/types.ts';

export const servicePort = (over: Partial<ServicePortInfo> = {}): ServicePortInfo => ({
  namespace: 'ns1',
  name: 'svc1',
  portName: 'http',
  protocol: 'TCP',
  clusterIPs: ['10.96.0.10'],
  port: 80,
  nodePort: 0,
  externalIPs: [],
  loadBalancerIPs: [],
  sessionAffinity: 'None',
  stickySeconds: 0,
  externalTrafficPolicy: 'Cluster',
  internalTrafficPolicy: 'Cluster',
  healthCheckNodePort: 0,
  ...over,
});

export const endpoint = (ip: string, over: Partial<Endpoint> = {}): Endpoint => ({
  ip,
  port: 8080,
  ready: true,
  serving: true,
  terminating: false,
  isLocal: false,
  ...over,
});

/** A gauge's or counter's value, or a histogram's count; NaN when absent. */
export async function metricValue(registry: Registry, name: string): Promise<number> {
  const m = (await registry.getMetricsAsJSON()).find((x) => x.name === name);
  const values = (m?.values ?? []) as { value: number; metricName?: string }[];
  const v = values.find((x) => x.metricName === undefined || x.metricName === `${name}_count`);
  return v?.value ?? NaN;
}

/** The value of one labelled series of a metric (NaN when there is none). */
export async function labeledMetricValue(registry: Registry, name: string, labels: Record<string, string>): Promise<number> {
  const m = (await registry.getMetricsAsJSON()).find((x) => x.name === name);
  const values = (m?.values ?? []) as { value: number; labels: Record<string, string | number> }[];
  const v = values.find((x) => Object.entries(labels).every(([k, want]) => String(x.labels[k]) === want));
  return v?.value ?? NaN;
}

/** kubeproxy_sync_proxy_rules_no_local_endpoints_total for one traffic policy. */
export function noLocalEndpoints(registry: Registry, policy: 'internal' | 'external'): Promise<number> {
  return labeledMetricValue(registry, 'kubeproxy_sync_proxy_rules_no_local_endpoints_total', { traffic_policy: policy });
}

/** Service ports that have endpoints but none here for a Local policy: one internal, one external; one without endpoints. */
export const NO_LOCAL_SERVICES: V1Service[] = [
  { metadata: { namespace: 'ns1', name: 'itp' }, spec: { clusterIP: '10.96.0.31', internalTrafficPolicy: 'Local', ports: [{ name: 'http', port: 80, protocol: 'TCP' }] } },
  {
    metadata: { namespace: 'ns1', name: 'etp' },
    spec: { type: 'NodePort', clusterIP: '10.96.0.32', externalTrafficPolicy: 'Local', ports: [{ name: 'http', port: 80, nodePort: 30032, protocol: 'TCP' }] },
  },
  { metadata: { namespace: 'ns1', name: 'none' }, spec: { clusterIP: '10.96.0.33', internalTrafficPolicy: 'Local', ports: [{ name: 'http', port: 80, protocol: 'TCP' }] } },
];

/** Slices of NO_LOCAL_SERVICES with endpoints on another node. */
export const NO_LOCAL_SLICES: V1EndpointSlice[] = ['itp', 'etp'].map((svc, i) => ({
  addressType: 'IPv4',
  metadata: { namespace: 'ns1', name: `${svc}-1`, labels: { 'kubernetes.io/service-name': svc } },
  ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
  endpoints: [{ addresses: [`10.244.9.${i + 1}`], conditions: { ready: true }, nodeName: 'other-node' }],
}));
