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
