// The prober's metrics under upstream's names and labels, on an injected Registry.
import { Counter, Histogram, type Registry } from 'prom-client';
import type { ProbeResult } from './outcome.ts';

export interface ProbeLabels {
  probeType: string;
  container: string;
  pod: string;
  namespace: string;
  podUid: string;
}

export class ProberMetrics {
  private readonly total: Counter<string>;
  private readonly duration: Histogram<string>;

  constructor(registry: Registry) {
    this.total = new Counter({
      name: 'prober_probe_total',
      help: 'Cumulative number of a liveness, readiness or startup probe for a container by result.',
      labelNames: ['probe_type', 'result', 'container', 'pod', 'namespace', 'pod_uid'],
      registers: [registry],
    });
    this.duration = new Histogram({
      name: 'prober_probe_duration_seconds',
      help: 'Duration in seconds for a probe response.',
      labelNames: ['probe_type', 'container', 'pod', 'namespace'],
      registers: [registry],
    });
  }

  observe(l: ProbeLabels, result: ProbeResult, seconds: number): void {
    const r = result === 'success' || result === 'warning' ? 'successful' : result === 'failure' ? 'failed' : 'unknown';
    this.total.inc({ probe_type: l.probeType, result: r, container: l.container, pod: l.pod, namespace: l.namespace, pod_uid: l.podUid });
    this.duration.observe({ probe_type: l.probeType, container: l.container, pod: l.pod, namespace: l.namespace }, seconds);
  }

  /** Drops a stopped worker's series (upstream deletes them too), so gone pods do not pile up. */
  forget(l: ProbeLabels): void {
    for (const r of ['successful', 'failed', 'unknown']) {
      this.total.remove({ probe_type: l.probeType, result: r, container: l.container, pod: l.pod, namespace: l.namespace, pod_uid: l.podUid });
    }
    this.duration.remove({ probe_type: l.probeType, container: l.container, pod: l.pod, namespace: l.namespace });
  }
}
