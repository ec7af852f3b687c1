// Builders of the proxy's own model for unit tests: a service port and an
// endpoint with the defaults most cases share (ns1/svc1:http, TCP 80 on
// 10.96.0.10; a ready endpoint on 8080 on another node), and a metric read
// back from an injected prom-client registry.
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
