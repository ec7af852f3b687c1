// kube-proxy's sync metrics (pkg/proxy/metrics), the same names in every
// mode: how long syncs take, when the last one went through and when one was
// last asked for. One set per registry, labelled by ip_family as upstream's
// (1.33+), so a dual-stack node's two proxiers report side by side.
import { Gauge, Histogram, type Registry } from 'prom-client';
import { sharedMetrics } from '../lib/sharedmetrics.ts';
import type { IPFamily } from './types.ts';

/** Upstream's buckets for the sync durations: 1 ms .. ~16 s. */
export const SYNC_BUCKETS: readonly number[] = Array.from({ length: 15 }, (_, i) => 0.001 * 2 ** i);

export const LAST_SYNC_METRIC = 'kubeproxy_sync_proxy_rules_last_timestamp_seconds';

class SyncMetricSet {
  readonly syncDuration: Histogram<'ip_family'>;
  readonly fullSyncDuration: Histogram<'ip_family'>;
  readonly partialSyncDuration: Histogram<'ip_family'>;
  readonly lastSync: Gauge<'ip_family'>;
  readonly lastQueued: Gauge<'ip_family'>;

  constructor(registry: Registry) {
    const registers = [registry];
    const labelNames = ['ip_family'] as const;
    const histogram = (name: string, help: string) => new Histogram({ name, help, buckets: [...SYNC_BUCKETS], labelNames, registers });
    this.syncDuration = histogram('kubeproxy_sync_proxy_rules_duration_seconds', 'SyncProxyRules latency in seconds');
    this.fullSyncDuration = histogram('kubeproxy_sync_full_proxy_rules_duration_seconds', 'SyncProxyRules latency in seconds for full resyncs');
    this.partialSyncDuration = histogram('kubeproxy_sync_partial_proxy_rules_duration_seconds', 'SyncProxyRules latency in seconds for partial resyncs');
    this.lastSync = new Gauge({ name: LAST_SYNC_METRIC, help: 'The last time proxy rules were successfully synced', labelNames, registers });
    this.lastQueued = new Gauge({ name: 'kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds', help: 'The last time a sync of proxy rules was queued', labelNames, registers });
  }
}

/** One proxier's view of the shared set: its family's series. */
export class SyncMetrics {
  private readonly set: SyncMetricSet;
  private readonly labels: { ip_family: IPFamily };

  constructor(registry: Registry, family: IPFamily) {
    this.set = sharedMetrics(registry, 'proxy-sync', (r) => new SyncMetricSet(r));
    this.labels = { ip_family: family };
  }

  /** A sync took `secs`; full or partial (undefined: a mode without the distinction). */
  observe(secs: number, full?: boolean): void {
    this.set.syncDuration.observe(this.labels, secs);
    if (full !== undefined) (full ? this.set.fullSyncDuration : this.set.partialSyncDuration).observe(this.labels, secs);
  }

  synced(nowMs: number): void {
    this.set.lastSync.set(this.labels, nowMs / 1000);
  }

  queued(nowMs: number): void {
    this.set.lastQueued.set(this.labels, nowMs / 1000);
  }
}
