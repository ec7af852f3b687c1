// A process's footprint from /proc: resident memory (VmRSS) and CPU time
// (utime + stime), for the benches' idle windows.
import { readFileSync } from 'node:fs';
import { exec } from '../../lib/exec.ts';

/** VmRSS of a /proc/<pid>/status text, in kB. */
export function parseVmRssKb(status: string): number {
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
  if (!m) throw new Error('no VmRSS line in /proc/<pid>/status');
  return Number(m[1]);
}

/** utime + stime (clock ticks) of a /proc/<pid>/stat text; the command name may hold spaces and parens. */
export function parseCpuTicks(stat: string): number {
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // rest[0] is field 3 (state); utime and stime are fields 14 and 15.
  const utime = Number(rest[11]);
  const stime = Number(rest[12]);
  if (!Number.isFinite(utime) || !Number.isFinite(stime)) throw new Error('unparseable /proc/<pid>/stat');
  return utime + stime;
}

export interface ProcSample {
  rssKb: number;
  cpuTicks: number;
}

export function sampleProc(pid: number): ProcSample {
  return {
    rssKb: parseVmRssKb(readFileSync(`/proc/${pid}/status`, 'utf8')),
    cpuTicks: parseCpuTicks(readFileSync(`/proc/${pid}/stat`, 'utf8')),
  };
}

export async function clockTicksPerSecond(): Promise<number> {
  const r = await exec('getconf', ['CLK_TCK'], { allowFail: true });
  const n = Number(r.stdout.trim());
  return r.code === 0 && n > 0 ? n : 100;
}

export interface Footprint {
  /** RSS at the end of the window, MB (1 MB = 1024 kB). */
  rssMb: number;
  rssMaxMb: number;
  /** CPU over the window as % of one core. */
  cpuPercent: number;
  windowS: number;
}

export function footprint(first: ProcSample, last: ProcSample, rssMaxKb: number, windowMs: number, ticksPerS: number): Footprint {
  const mb = (kb: number) => Math.round((kb / 1024) * 10) / 10;
  const cpuS = (last.cpuTicks - first.cpuTicks) / ticksPerS;
  return {
    rssMb: mb(last.rssKb),
    rssMaxMb: mb(Math.max(rssMaxKb, last.rssKb)),
    cpuPercent: Math.round(((cpuS * 1000) / windowMs) * 100 * 100) / 100,
    windowS: Math.round(windowMs / 100) / 10,
  };
}

/** Samples pid every second for windowMs (the caller keeps the node idle meanwhile). */
export async function measureWindow(pid: number, windowMs: number, ticksPerS: number, signal?: AbortSignal): Promise<Footprint> {
  const first = sampleProc(pid);
  const t0 = performance.now();
  let maxKb = first.rssKb;
  while (performance.now() - t0 < windowMs) {
    if (signal?.aborted) throw new Error('interrupted');
    await new Promise((r) => setTimeout(r, Math.min(1000, windowMs - (performance.now() - t0))));
    maxKb = Math.max(maxKb, sampleProc(pid).rssKb);
  }
  const last = sampleProc(pid);
  return footprint(first, last, maxKb, performance.now() - t0, ticksPerS);
}

/** Busy and total jiffies of all CPUs from /proc/stat's first ("cpu") line; idle and iowait count as idle. */
export function parseCpuTotals(stat: string): { busy: number; total: number } {
  const line = stat.split('\n').find((l) => l.startsWith('cpu '));
  if (!line) throw new Error('no "cpu" line in /proc/stat');
  const f = line.trim().split(/\s+/).slice(1, 9).map(Number);
  if (f.length < 5 || f.some((x) => !Number.isFinite(x))) throw new Error(`unparseable /proc/stat line: ${line}`);
  const total = f.reduce((a, b) => a + b, 0);
  return { busy: total - f[3]! - f[4]!, total };
}

/** The share of all CPUs that was busy between two /proc/stat readings (0..1). */
export function busyShare(a: { busy: number; total: number }, b: { busy: number; total: number }): number {
  const dt = b.total - a.total;
  return dt > 0 ? (b.busy - a.busy) / dt : 0;
}

/**
 * Waits until the machine is quiet (under maxBusy of all CPUs busy over one
 * second), at most timeoutMs, so that what runs before a measurement (an API
 * server storing thousands of objects) does not fall on whichever proxy is
 * measured first. Returns the time waited and the last busy share.
 */
export async function waitQuiet(maxBusy = 0.15, timeoutMs = 60_000): Promise<{ waitedMs: number; busy: number }> {
  const t0 = performance.now();
  let prev = parseCpuTotals(readFileSync('/proc/stat', 'utf8'));
  for (;;) {
    await new Promise((r) => setTimeout(r, 1000));
    const now = parseCpuTotals(readFileSync('/proc/stat', 'utf8'));
    const busy = busyShare(prev, now);
    prev = now;
    const waitedMs = performance.now() - t0;
    if (busy < maxBusy || waitedMs >= timeoutMs) return { waitedMs: Math.round(waitedMs), busy: Math.round(busy * 1000) / 1000 };
  }
}
