// Long-running processes that outlive the command that started them (make up
// returns while the cluster keeps running): detached, logging to a file, with
// a pidfile. Stale ones are found by a marker in their command line.
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';

export interface DaemonSpec {
  name: string;
  cmd: string;
  args: string[];
  logFile: string;
  pidFile: string;
  /** Run inside this network namespace (through nsenter, not ip netns exec). */
  netns?: string;
  env?: NodeJS.ProcessEnv;
}

export function startDaemon(spec: DaemonSpec): number {
  mkdirSync(path.dirname(spec.logFile), { recursive: true });
  mkdirSync(path.dirname(spec.pidFile), { recursive: true });
  const fd = openSync(spec.logFile, 'a');
  const [cmd, args] = spec.netns
    ? ['nsenter', [`--net=/run/netns/${spec.netns}`, '--', spec.cmd, ...spec.args]]
    : [spec.cmd, spec.args];
  const child = spawn(cmd, args, { detached: true, stdio: ['ignore', fd, fd], env: spec.env ?? process.env });
  closeSync(fd);
  child.unref();
  if (!child.pid) throw new Error(`${spec.name}: could not start ${spec.cmd}`);
  writeFileSync(spec.pidFile, `${child.pid}\n`);
  return child.pid;
}

export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    // A zombie still answers kill(0); it is not running.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/^\d+ \(.*\) Z/.test(stat);
  } catch {
    return false;
  }
}

export function readPid(pidFile: string): number | undefined {
  if (!existsSync(pidFile)) return undefined;
  const pid = Number(readFileSync(pidFile, 'utf8').trim());
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}

export function daemonRunning(pidFile: string): boolean {
  const pid = readPid(pidFile);
  return pid !== undefined && pidAlive(pid);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** SIGTERM, wait up to graceMs, then SIGKILL. Resolves once the process is gone. */
export async function stopPid(pid: number, graceMs = 10_000): Promise<void> {
  if (!pidAlive(pid)) return;
  try { process.kill(pid, 'SIGTERM'); } catch { return; }
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline) {
    if (!pidAlive(pid)) return;
    await sleep(100);
  }
  try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
  for (let i = 0; i < 50 && pidAlive(pid); i++) await sleep(100);
}

export async function stopDaemon(pidFile: string, graceMs = 10_000): Promise<void> {
  const pid = readPid(pidFile);
  if (pid !== undefined) await stopPid(pid, graceMs);
  rmSync(pidFile, { force: true });
}

/** Pids whose command line contains marker (our state or run directory). */
/**
 * Whether `marker` (a path or a word) occurs in `cmdline` as a whole component:
 * /var/lib/nodelet/dev must not match /var/lib/nodelet/dev2/... (another profile).
 */
export function cmdlineHas(cmdline: string, marker: string): boolean {
  for (let i = cmdline.indexOf(marker); i >= 0; i = cmdline.indexOf(marker, i + 1)) {
    const next = cmdline[i + marker.length];
    if (next === undefined || !/[A-Za-z0-9._-]/.test(next)) return true;
  }
  return false;
}

export function pidsMatching(marker: string): number[] {
  const out: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    if (pid === process.pid) continue;
    try {
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      if (cmdlineHas(cmdline, marker)) out.push(pid);
    } catch { /* exited */ }
  }
  return out;
}

/** Thrown by a waitFor check when waiting longer cannot help (the daemon is gone). */
export class DaemonExited extends Error {
  override name = 'DaemonExited';
}

/** Waits until check() is true, polling; throws with what it was waiting for. */
export async function waitFor(what: string, check: () => Promise<boolean> | boolean, timeoutMs: number, everyMs = 250): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastErr: unknown;
  while (Date.now() < deadline) {
    try {
      if (await check()) return;
    } catch (err) {
      if (err instanceof DaemonExited) throw err; // no point waiting
      lastErr = err;
    }
    await sleep(everyMs);
  }
  const why = lastErr instanceof Error ? `: ${lastErr.message}` : '';
  throw new Error(`timed out after ${Math.round(timeoutMs / 1000)} s waiting for ${what}${why}`);
}
