// Line plots of a value against N, one panel per backend side by side with
// shared axes (drawn with bench/lib/png.ts's Canvas): sync time vs services.
import { COLORS, niceTicks } from '../lib/plot.ts';
import { Canvas, type RGB } from '../lib/png.ts';

export interface Series {
  label: string;
  color: RGB;
  points: ReadonlyArray<readonly [number, number]>;
}

export interface Panel {
  title: string;
  series: readonly Series[];
}

export function linePlot(panels: readonly Panel[], opts: { xLabel: string; yLabel: string; panelWidth?: number; height?: number }): Buffer {
  const pw = opts.panelWidth ?? 480;
  const h = opts.height ?? 380;
  const c = new Canvas(pw * Math.max(1, panels.length), h);
  const all = panels.flatMap((p) => p.series.flatMap((s) => s.points)).filter((p) => Number.isFinite(p[1]));
  const xMax = Math.max(1, ...all.map((p) => p[0]));
  const yTicks = niceTicks(Math.max(0, ...all.map((p) => p[1])), 5);
  const yMax = yTicks[yTicks.length - 1]!;
  const xTicks = [...new Set(all.map((p) => p[0]))].sort((a, b) => a - b);
  const [left, right, top, bottom] = [64, 36, 56, 48];
  panels.forEach((panel, pi) => {
    const ox = pi * pw;
    const X = (v: number) => ox + left + (v / xMax) * (pw - left - right);
    const Y = (v: number) => h - bottom - (v / yMax) * (h - top - bottom);
    // Twice the size when it fits in the panel.
    const big = Canvas.textWidth(panel.title, 2) <= pw - left - 8;
    c.text(ox + left, 10, panel.title, COLORS.text, big ? 2 : 1);
    c.text(ox + 8, top - 16, opts.yLabel, COLORS.text);
    for (const v of yTicks) {
      c.line(X(0), Y(v), X(xMax), Y(v), COLORS.grid);
      const label = String(v);
      c.text(ox + left - 8 - Canvas.textWidth(label), Y(v) - 3, label, COLORS.text);
    }
    for (const v of xTicks) {
      c.line(X(v), Y(0), X(v), Y(0) + 4, COLORS.axis);
      const label = String(v);
      c.text(X(v) - Canvas.textWidth(label) / 2, Y(0) + 10, label, COLORS.text);
    }
    c.line(X(0), Y(0), X(xMax), Y(0), COLORS.axis);
    c.line(X(0), Y(0), X(0), Y(yMax), COLORS.axis);
    c.text(ox + pw - right - Canvas.textWidth(opts.xLabel), h - 16, opts.xLabel, COLORS.text);
    panel.series.forEach((s, si) => {
      const pts = s.points.filter((p) => Number.isFinite(p[1])).sort((a, b) => a[0] - b[0]);
      for (let i = 1; i < pts.length; i++) c.line(X(pts[i - 1]![0]), Y(pts[i - 1]![1]), X(pts[i]![0]), Y(pts[i]![1]), s.color, 2);
      for (const p of pts) c.fillRect(X(p[0]) - 3, Y(p[1]) - 3, 7, 7, s.color);
      const ly = top + 4 + si * 14;
      c.fillRect(ox + left + 12, ly, 12, 8, s.color);
      c.text(ox + left + 30, ly, s.label, COLORS.text);
    });
  });
  return c.png();
}
