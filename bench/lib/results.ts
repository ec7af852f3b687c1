// Where bench results go: bench/results/<name>-<ISO>.<ext> plus <name>-latest.<ext>,
// and the plain-text table every bench prints.
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';

export const resultsDir = path.join(path.dirname(path.dirname(new URL(import.meta.url).pathname)), 'results');

/** Writes data as <name>-<timestamp>.<ext> and <name>-latest.<ext>; returns both paths. */
export function writeResult(name: string, timestamp: string, ext: string, data: string | Buffer, dir = resultsDir): { file: string; latest: string } {
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${name}-${timestamp.replace(/:/g, '-')}.${ext}`);
  const latest = path.join(dir, `${name}-latest.${ext}`);
  writeFileSync(file, data);
  writeFileSync(latest, data);
  return { file, latest };
}

export const writeJsonResult = (name: string, timestamp: string, result: unknown, dir = resultsDir) =>
  writeResult(name, timestamp, 'json', JSON.stringify(result, null, 2) + '\n', dir);

/** Columns padded to their widest cell; the first column left-aligned, the rest right-aligned. */
export function formatTable(rows: string[][]): string {
  const cols = Math.max(...rows.map((r) => r.length));
  const widths = Array.from({ length: cols }, (_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows
    .map((r) => widths.map((w, i) => (i === 0 ? (r[i] ?? '').padEnd(w) : (r[i] ?? '').padStart(w))).join('  ').trimEnd())
    .join('\n');
}
