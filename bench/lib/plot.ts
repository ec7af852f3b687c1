// Empirical CDF plots of latency samples, as PNG (bench/lib/png.ts draws them).
import { Canvas, type RGB } from './png.ts';

export interface CdfSeries {
  label: string;
  color: RGB;
  samplesMs: number[];
  /** Pods measured, including those that never got there (the curve then stops below 1). */
  total?: number;
  dashed?: boolean;
}

/** Step points of the empirical CDF: (value, fraction of all `total` pods <= value). */
export function cdfPoints(samples: number[], total = samples.length): Array<[number, number]> {
  const s = [...samples].sort((a, b) => a - b);
  return s.map((v, i) => [v, (i + 1) / Math.max(total, s.length)]);
}

/** Round, evenly spaced axis ticks (1, 2 or 5 times a power of ten) covering 0..max. */
export function niceTicks(max: number, target = 6): number[] {
  if (!(max > 0)) return [0, 1];
  const raw = max / target;
  const pow = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * pow).find((s) => s >= raw) ?? 10 * pow;
  const out: number[] = [];
  for (let v = 0; v < max + step - 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

export const COLORS = {
  nodelet: [31, 119, 180] as RGB,
  upstream: [214, 39, 40] as RGB,
  grid: [225, 225, 225] as RGB,
  axis: [60, 60, 60] as RGB,
  text: [20, 20, 20] as RGB,
};

export function cdfPlot(title: string, xLabel: string, series: CdfSeries[], width = 860, height = 520): Buffer {
  const c = new Canvas(width, height);
  const left = 70, right = 20, top = 58, bottom = 56;
  const pw = width - left - right, ph = height - top - bottom;
  const all = series.flatMap((s) => s.samplesMs).filter(Number.isFinite);
  const ticks = niceTicks(all.length ? Math.max(...all) : 1);
  const xMax = ticks[ticks.length - 1]!;
  const X = (v: number) => left + (v / xMax) * pw;
  const Y = (f: number) => top + ph - f * ph;

  c.text(left, 10, title, COLORS.text, 2);
  for (const t of ticks) {
    c.line(X(t), top, X(t), top + ph, COLORS.grid);
    const label = String(t);
    c.text(X(t) - Canvas.textWidth(label) / 2, top + ph + 8, label, COLORS.text);
  }
  for (const f of [0, 0.25, 0.5, 0.75, 0.99, 1]) {
    c.line(left, Y(f), left + pw, Y(f), COLORS.grid, 1, f === 0.99 ? 4 : 0);
    if (f === 0.99) c.text(left + pw - 4 - Canvas.textWidth('p99'), Y(f) + 4, 'p99', COLORS.axis);
    else c.text(left - 8 - Canvas.textWidth(f.toFixed(2)), Y(f) - 3, f.toFixed(2), COLORS.text);
  }
  c.line(left, top, left, top + ph, COLORS.axis);
  c.line(left, top + ph, left + pw, top + ph, COLORS.axis);
  c.text(left + pw / 2 - Canvas.textWidth(xLabel) / 2, height - 22, xLabel, COLORS.text);
  c.text(8, top - 20, 'fraction of pods', COLORS.text);

  for (const s of series) {
    const pts = cdfPoints(s.samplesMs.filter(Number.isFinite), s.total);
    let px = X(0), py = Y(0);
    for (const [v, f] of pts) {
      // Horizontal to the sample, then up: the step shape of an empirical CDF.
      c.line(px, py, X(v), py, s.color, 2, s.dashed ? 5 : 0);
      c.line(X(v), py, X(v), Y(f), s.color, 2, s.dashed ? 5 : 0);
      px = X(v);
      py = Y(f);
    }
  }
  // Legend, bottom right of the plot area (CDFs rise to the top left).
  let ly = top + ph - 16 * series.length - 6;
  const lx = left + pw - 12 - Math.max(...series.map((s) => Canvas.textWidth(s.label))) - 34;
  for (const s of series) {
    c.line(lx, ly + 3, lx + 24, ly + 3, s.color, 2, s.dashed ? 5 : 0);
    c.text(lx + 30, ly, `${s.label}`, COLORS.text);
    ly += 16;
  }
  return c.png();
}
