// The prober's metrics under upstream's names and labels, on an injected
// Registry. Each worker binds its series once (lib/boundmetrics.ts): a probe
// then only bumps numbers.
import type { Registry } from 'prom-client';
import { BoundCounter, BoundHistogram, type CounterSeries, type HistogramSeries } from '../../lib/boundmetrics.ts';
import type { ProbeResult } from './outcome.ts';

export interface ProbeLabels {
  probeType: string;
  container: string;
  pod: string;
  namespace: string;
  podUid: string;
}

type TotalLabel = 'probe_type' | 'result' | 'container' | 'pod' | 'namespace' | 'pod_uid';
type DurationLabel = 'probe_type' | 'container' | 'pod' | 'namespace';
type MetricResult = 'successful' | 'failed' | 'unknown';
const RESULTS: readonly MetricResult[] = ['successful', 'failed', 'unknown'];

/** One worker's series. */
export interface ProbeRecorder {
  record(result: ProbeResult, seconds: number): void;
}

export class ProberMetrics {
  private readonly total: BoundCounter<TotalLabel>;
  private readonly duration: BoundHistogram<DurationLabel>;

  constructor(registry: Registry) {
    this.total = new BoundCounter({
      name: 'prober_probe_total',
      help: 'Cumulative number of a liveness, readiness or startup probe for a container by result.',
      labelNames: ['probe_type', 'result', 'container', 'pod', 'namespace', 'pod_uid'],
      registers: [registry],
    });
    this.duration = new BoundHistogram({
      name: 'prober_probe_duration_seconds',
      help: 'Duration in seconds for a probe response.',
      labelNames: ['probe_type', 'container', 'pod', 'namespace'],
      registers: [registry],
    });
  }

  private totalLabels(l: ProbeLabels, result: MetricResult): Record<TotalLabel, string> {
    return { probe_type: l.probeType, result, container: l.container, pod: l.pod, namespace: l.namespace, pod_uid: l.podUid };
  }

  private durationLabels(l: ProbeLabels): Record<DurationLabel, string> {
    return { probe_type: l.probeType, container: l.container, pod: l.pod, namespace: l.namespace };
  }

  /** The series of one worker, bound once. */
  bind(l: ProbeLabels): ProbeRecorder {
    const counters = new Map<MetricResult, CounterSeries<TotalLabel>>();
    let duration: HistogramSeries<DurationLabel> | undefined;
    return {
      record: (result, seconds) => {
        const r: MetricResult = result === 'success' || result === 'warning' ? 'successful' : result === 'failure' ? 'failed' : 'unknown';
        let c = counters.get(r);
        if (!c) counters.set(r, (c = this.total.series(this.totalLabels(l, r))));
        c.inc();
        duration ??= this.duration.series(this.durationLabels(l));
        duration.observe(seconds);
      },
    };
  }

  /** Drops a stopped worker's series (upstream deletes them too), so gone pods do not pile up. */
  forget(l: ProbeLabels): void {
    for (const r of RESULTS) this.total.remove(this.totalLabels(l, r));
    this.duration.remove(this.durationLabels(l));
  }
}
