// Processes of the proxy benchmark, each started inside a network namespace
// with `nsenter --net` (never `ip netns exec`, which remounts /sys), logging
// to a file, and stopped by its own pid (nsenter execs, so the pid is the
// process itself).
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, cpSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import path from 'node:path';
import { warmCompileCache } from '../../lib/compilecache.ts';
import { exec, type ExecResult } from '../../lib/exec.ts';

const NSENTER = '/usr/bin/nsenter';

export interface Proc {
  name: string;
  pid: number;
  logFile: string;
  /** Resolves with the exit code (or signal name) once the process is gone. */
  exited: Promise<string>;
  child: ChildProcess;
}

export function startInNetns(name: string, netns: string, cmd: string, args: readonly string[], logFile: string, env?: NodeJS.ProcessEnv): Proc {
  mkdirSync(path.dirname(logFile), { recursive: true });
  const fd = openSync(logFile, 'w');
  // By absolute path: env may carry a PATH made for the command (kube-proxy's iptables links).
  const child = spawn(NSENTER, [`--net=/run/netns/${netns}`, '--', cmd, ...args], { stdio: ['ignore', fd, fd], env: env ?? process.env });
  closeSync(fd);
  const exited = new Promise<string>((resolve) => {
    child.once('exit', (code, signal) => resolve(signal ?? String(code)));
    child.once('error', (err) => resolve(`error: ${err.message}`));
  });
  if (!child.pid) throw new Error(`${name}: could not start ${cmd}`);
  return { name, pid: child.pid, logFile, exited, child };
}

export function running(p: Proc): boolean {
  return p.child.exitCode === null && p.child.signalCode === null;
}

/** SIGTERM, then SIGKILL after graceMs; resolves once it is gone. */
export async function stopProc(p: Proc, graceMs = 10_000): Promise<void> {
  if (!running(p)) return;
  p.child.kill('SIGTERM');
  const timer = setTimeout(() => {
    if (running(p)) p.child.kill('SIGKILL');
  }, graceMs);
  await p.exited;
  clearTimeout(timer);
}

/** The last lines of a process's log, for error messages. */
export function logTail(p: Proc, lines = 5): string {
  if (!existsSync(p.logFile)) return '';
  return readFileSync(p.logFile, 'utf8').trim().split('\n').slice(-lines).join(' | ').slice(-1500);
}

/** Runs a command inside a network namespace. */
export function inNetns(netns: string, cmd: string, args: readonly string[], opts: { input?: string; allowFail?: boolean; timeoutMs?: number } = {}): Promise<ExecResult> {
  return exec('nsenter', [`--net=/run/netns/${netns}`, '--', cmd, ...args], opts);
}

/** GET http://127.0.0.1:port/metrics inside the namespace; '' when it does not answer. */
export async function scrape(netns: string, port: number): Promise<string> {
  const r = await inNetns(netns, 'curl', ['-sf', '--max-time', '5', `http://127.0.0.1:${port}/metrics`], { allowFail: true, timeoutMs: 10_000 });
  return r.code === 0 ? r.stdout : '';
}

/**
 * Copies the TypeScript trees nodelet runs from (node_modules is linked, not
 * copied), so edits made while a bench runs do not reach it, and fills the
 * compile cache for the copy, as `nodelet up` does for its daemons: the
 * proxies measured never load the TypeScript stripper.
 */
export function snapshotSource(repoRoot: string, dir: string): string {
  const root = path.join(dir, 'src');
  rmSync(root, { recursive: true, force: true });
  mkdirSync(root, { recursive: true });
  for (const d of ['cmd', 'agent', 'cri', 'proxy', 'lib', 'cluster']) cpSync(path.join(repoRoot, d), path.join(root, d), { recursive: true });
  cpSync(path.join(repoRoot, 'package.json'), path.join(root, 'package.json'));
  symlinkSync(path.join(repoRoot, 'node_modules'), path.join(root, 'node_modules'));
  const cold = warmCompileCache(root);
  if (cold) throw new Error(`compile cache: ${cold}`);
  return root;
}
