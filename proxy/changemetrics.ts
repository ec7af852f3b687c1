// kube-proxy's change metrics (pkg/proxy/metrics), the same in every mode:
// Service and EndpointSlice events seen and waiting, and the network
// programming latency: from the EndpointSlice controller's trigger time of an
// endpoint change to the sync that programmed it. Also the count of services
// whose Local policy finds no endpoint here (set by the rule-based modes).
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { sharedMetrics } from '../lib/sharedmetrics.ts';

/** Upstream's buckets: 0, 0.25 s, 0.5 s, 1-59 s by 1 s, 60-115 s by 5 s, 2-5 min by 30 s. */
export const NETWORK_PROGRAMMING_BUCKETS: readonly number[] = [
  0,
  0.25,
  0.5,
  ...Array.from({ length: 59 }, (_, i) => 1 + i),
  ...Array.from({ length: 12 }, (_, i) => 60 + 5 * i),
  ...Array.from({ length: 7 }, (_, i) => 120 + 30 * i),
];

/**
 * One set per registry, shared by a dual-stack node's two proxiers; the
 * per-family series carry ip_family, as upstream's (the change counts do not).
 */
export class ChangeMetrics {
  readonly networkProgramming: Histogram<'ip_family'>;
  readonly endpointChangesPending: Gauge;
  readonly endpointChangesTotal: Counter;
  readonly serviceChangesPending: Gauge;
  readonly serviceChangesTotal: Counter;
  readonly noLocalEndpoints: Gauge<'traffic_policy' | 'ip_family'>;

  static of(registry: Registry): ChangeMetrics {
    return sharedMetrics(registry, 'proxy-changes', (r) => new ChangeMetrics(r));
  }

  private constructor(registry: Registry) {
    const registers = [registry];
    this.networkProgramming = new Histogram({
      name: 'kubeproxy_network_programming_duration_seconds',
      help: 'In Cluster Network Programming Latency in seconds',
      buckets: [...NETWORK_PROGRAMMING_BUCKETS],
      labelNames: ['ip_family'],
      registers,
    });
    this.endpointChangesPending = new Gauge({ name: 'kubeproxy_sync_proxy_rules_endpoint_changes_pending', help: 'Pending proxy rules Endpoint changes', registers });
    this.endpointChangesTotal = new Counter({ name: 'kubeproxy_sync_proxy_rules_endpoint_changes_total', help: 'Cumulative proxy rules Endpoint changes', registers });
    this.serviceChangesPending = new Gauge({ name: 'kubeproxy_sync_proxy_rules_service_changes_pending', help: 'Pending proxy rules Service changes', registers });
    this.serviceChangesTotal = new Counter({ name: 'kubeproxy_sync_proxy_rules_service_changes_total', help: 'Cumulative proxy rules Service changes', registers });
    this.noLocalEndpoints = new Gauge({
      name: 'kubeproxy_sync_proxy_rules_no_local_endpoints_total',
      help: 'Number of services with a Local traffic policy and no endpoints',
      labelNames: ['traffic_policy', 'ip_family'],
      registers,
    });
  }
}
