// Summaries of latency samples shared by the benches (nearest-rank percentiles,
// values rounded to 0.1 ms for the tables and JSON).

export interface Summary {
  n: number;
  p50: number;
  p99: number;
  mean: number;
  min: number;
  max: number;
  samplesMs: number[];
}

/** Nearest-rank percentile of sorted values. */
export function percentile(sorted: number[], q: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i]!;
}

export const round = (x: number): number => Math.round(x * 10) / 10;

export function summarize(samples: number[]): Summary {
  const s = [...samples].sort((a, b) => a - b);
  const mean = s.reduce((a, b) => a + b, 0) / (s.length || 1);
  return {
    n: s.length,
    p50: round(percentile(s, 0.5)),
    p99: round(percentile(s, 0.99)),
    mean: round(mean),
    min: round(s[0] ?? NaN),
    max: round(s[s.length - 1] ?? NaN),
    samplesMs: samples.map(round),
  };
}

/** a / b to 3 places, or null when either side is missing (NaN, 0 divisor). */
export function ratio(a: number | null | undefined, b: number | null | undefined): number | null {
  if (a === null || a === undefined || b === null || b === undefined || !Number.isFinite(a) || !Number.isFinite(b) || b === 0) return null;
  return Math.round((a / b) * 1000) / 1000;
}

/**
 * Nearest-rank percentile over `total` items of which only `samples` finished:
 * the rest rank above every sample, so the answer is null when the rank falls
 * among them (e.g. the p99 of 30 pods when one never started).
 */
export function percentileOfAll(samples: number[], total: number, q: number): number | null {
  const s = [...samples].sort((a, b) => a - b);
  const n = Math.max(total, s.length);
  if (n === 0) return null;
  const i = Math.min(n - 1, Math.max(0, Math.ceil(q * n) - 1));
  return i < s.length ? round(s[i]!) : null;
}
