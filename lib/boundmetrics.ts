// Counters and histograms whose label sets are bound once, for hot paths:
// prom-client hashes the labels object on every inc/observe (a string built
// and looked up per call), which for 110 pods probed every second was a sixth
// of the prober's own CPU. A bound series is a few numbers updated in place;
// labels are formatted only when the registry is scraped. The objects register
// with a prom-client Registry (which needs only name, help, type, get, reset)
// and print exactly as prom-client's own counters and histograms do.
import type { Metric, Registry } from 'prom-client';

/** prom-client's (and Prometheus client_golang's) default buckets. */
export const DEFAULT_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

type Labels<L extends string> = Record<L, string>;

interface MetricValue {
  value: number;
  labels: Record<string, string | number>;
  metricName?: string;
}

interface Options<L extends string> {
  name: string;
  help: string;
  labelNames: readonly L[];
  registers: Registry[];
}

abstract class BoundMetric<L extends string, S extends { labels: Labels<L>; touched: boolean }> {
  readonly name: string;
  readonly help: string;
  abstract readonly type: 'counter' | 'histogram';
  readonly aggregator = 'sum';
  private readonly labelNames: readonly L[];
  protected readonly all = new Map<string, S>();

  constructor(o: Options<L>) {
    this.name = o.name;
    this.help = o.help;
    this.labelNames = o.labelNames;
    for (const r of o.registers) r.registerMetric(this as unknown as Metric);
  }

  private key(labels: Labels<L>): string {
    return this.labelNames.map((n) => labels[n]).join('\u0000');
  }

  protected bind(labels: Labels<L>, make: (labels: Labels<L>) => S): S {
    const k = this.key(labels);
    let s = this.all.get(k);
    if (!s) {
      // Copied in label order so the output does not depend on the caller's object.
      const own = {} as Labels<L>;
      for (const n of this.labelNames) own[n] = labels[n];
      s = make(own);
      this.all.set(k, s);
    }
    return s;
  }

  /** Drops a series (a later bind of the same labels starts from zero). */
  remove(labels: Labels<L>): void {
    this.all.delete(this.key(labels));
  }

  reset(): void {
    this.all.clear();
  }

  protected abstract values(s: S): MetricValue[];

  async get(): Promise<{ name: string; help: string; type: string; aggregator: string; values: MetricValue[] }> {
    const values: MetricValue[] = [];
    // As prom-client: a series shows from its first update on.
    for (const s of this.all.values()) if (s.touched) values.push(...this.values(s));
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }
}

export interface CounterSeries<L extends string> {
  readonly labels: Labels<L>;
  touched: boolean;
  value: number;
  inc(n?: number): void;
}

export class BoundCounter<L extends string> extends BoundMetric<L, CounterSeries<L>> {
  readonly type = 'counter';

  /** The series for `labels`, made on first use; keep it and call inc() on it. */
  series(labels: Labels<L>): CounterSeries<L> {
    return this.bind(labels, (own) => ({
      labels: own,
      touched: false,
      value: 0,
      inc(n = 1) {
        if (!(n >= 0) || !Number.isFinite(n)) throw new TypeError(`counter increment must be a finite non-negative number: ${n}`);
        this.value += n;
        this.touched = true;
      },
    }));
  }

  protected values(s: CounterSeries<L>): MetricValue[] {
    return [{ value: s.value, labels: { ...s.labels } }];
  }
}

export interface HistogramSeries<L extends string> {
  readonly labels: Labels<L>;
  touched: boolean;
  /** Per bucket (not cumulative), then one for values above the last bound. */
  readonly counts: number[];
  sum: number;
  count: number;
  observe(v: number): void;
}

export class BoundHistogram<L extends string> extends BoundMetric<L, HistogramSeries<L>> {
  readonly type = 'histogram';
  private readonly buckets: readonly number[];

  constructor(o: Options<L> & { buckets?: readonly number[] }) {
    super(o);
    this.buckets = [...(o.buckets ?? DEFAULT_BUCKETS)].sort((a, b) => a - b);
  }

  series(labels: Labels<L>): HistogramSeries<L> {
    const bounds = this.buckets;
    return this.bind(labels, (own) => ({
      labels: own,
      touched: false,
      counts: new Array<number>(bounds.length + 1).fill(0),
      sum: 0,
      count: 0,
      observe(v: number) {
        if (!Number.isFinite(v)) throw new TypeError(`histogram value must be a finite number: ${v}`);
        let i = 0;
        while (i < bounds.length && v > bounds[i]!) i++;
        this.counts[i]!++;
        this.sum += v;
        this.count++;
        this.touched = true;
      },
    }));
  }

  protected values(s: HistogramSeries<L>): MetricValue[] {
    const out: MetricValue[] = [];
    let cum = 0;
    for (let i = 0; i < this.buckets.length; i++) {
      cum += s.counts[i]!;
      out.push({ value: cum, labels: { ...s.labels, le: this.buckets[i]! }, metricName: `${this.name}_bucket` });
    }
    out.push({ value: s.count, labels: { ...s.labels, le: '+Inf' }, metricName: `${this.name}_bucket` });
    out.push({ value: s.sum, labels: { ...s.labels }, metricName: `${this.name}_sum` });
    out.push({ value: s.count, labels: { ...s.labels }, metricName: `${this.name}_count` });
    return out;
  }
}
