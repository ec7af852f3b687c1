// Plain kubectl for the e2e flows, in one namespace, with what a failed flow
// prints: `kubectl describe` of what it was waiting for and the namespace's
// events. Also HTTP from the host and from inside the node (sandbox addresses only).
import { spawn } from 'node:child_process';
import http from 'node:http';
import path from 'node:path';
import { waitFor } from '../../cluster/daemon.ts';
import { inNode, type NodeSandbox } from '../../cluster/sandbox.ts';
import { exec, type ExecResult } from '../../lib/exec.ts';
import type { Cluster } from '../../cluster/up.ts';

export interface Kube {
  ns: string;
  /** kubectl -n ns ARGS; throws on a non-zero exit unless allowFail. */
  run(args: string[], opts?: { allowFail?: boolean; input?: string; timeoutMs?: number }): Promise<ExecResult>;
  json<T = any>(args: string[]): Promise<T>;
  /** kubectl in the background until `until` holds for its stdout (or the timeout); then it is stopped. */
  background(args: string[], until: (out: string) => boolean, timeoutMs: number): { done: Promise<string>; stop: () => void };
  /** describe + events, for a failed flow's output. */
  diagnose(targets: string[]): Promise<string>;
}

export function kube(c: Cluster, ns: string): Kube {
  const bin = path.join(c.paths.bin, 'kubectl');
  const base = ['--kubeconfig', c.paths.adminKubeconfig, '-n', ns];
  const run: Kube['run'] = (args, opts = {}) => exec(bin, [...base, ...args], { timeoutMs: 60_000, ...opts });
  return {
    ns,
    run,
    async json(args) {
      return JSON.parse((await run([...args, '-o', 'json'])).stdout);
    },
    background(args, until, timeoutMs) {
      const child = spawn(bin, [...base, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let resolveDone!: (s: string) => void;
      const done = new Promise<string>((r) => (resolveDone = r));
      const stop = () => {
        clearTimeout(timer);
        if (child.exitCode === null) child.kill('SIGTERM');
        resolveDone(out);
      };
      const timer = setTimeout(stop, timeoutMs);
      child.stdout.on('data', (b: Buffer) => {
        out += b.toString();
        if (until(out)) resolveDone(out);
      });
      child.stderr.on('data', (b: Buffer) => (out += b.toString()));
      child.on('exit', () => resolveDone(out));
      return { done, stop };
    },
    async diagnose(targets) {
      const parts: string[] = [];
      const show = async (title: string, args: string[]) => {
        const r = await run(args, { allowFail: true, timeoutMs: 20_000 }).catch((e: Error) => ({ stdout: '', stderr: e.message }));
        parts.push(`--- ${title}\n${(r.stdout + r.stderr).trim()}`);
      };
      await show('kubectl get all -o wide', ['get', 'all,endpointslices', '-o', 'wide']);
      for (const t of targets) await show(`kubectl describe ${t}`, ['describe', ...t.split(' ')]);
      await show('events', ['get', 'events', '--sort-by=.metadata.creationTimestamp']);
      return parts.join('\n');
    },
  };
}

/**
 * Waits until check() holds; on timeout prints `kubectl describe` of `targets`
 * and the events, and throws (the last value it saw in the message).
 */
export async function waitOrDescribe<T>(k: Kube, what: string, probe: () => Promise<T>, ok: (v: T) => boolean, ms: number, targets: string[] = []): Promise<T> {
  let last: T | undefined;
  try {
    await waitFor(what, async () => ok((last = await probe())), ms, 500);
  } catch (err) {
    console.log(await k.diagnose(targets));
    throw new Error(`${(err as Error).message}; last seen: ${JSON.stringify(last)?.slice(0, 500)}`);
  }
  return last as T;
}

/** One GET with a fresh connection (no keep-alive): the body, or `ERR <reason>`. */
export function httpGet(host: string, port: number, urlPath = '/', timeoutMs = 2000): Promise<string> {
  return new Promise((resolve) => {
    const req = http.get({ host, port, path: urlPath, agent: false, timeout: timeoutMs }, (res) => {
      let body = '';
      res.on('data', (b: Buffer) => (body += b.toString()));
      res.on('end', () => resolve(res.statusCode === 200 ? body.trim() : `ERR status ${res.statusCode}`));
      res.on('error', (e) => resolve(`ERR ${e.message}`));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (e: NodeJS.ErrnoException) => resolve(`ERR ${e.code ?? e.message}`));
  });
}

/** `count` GETs from inside the node (curl in its netns), one body or `ERR <curl exit>` per entry. */
export async function curlInNode(n: NodeSandbox, url: string, count = 1): Promise<string[]> {
  const script = `for i in $(seq ${count}); do curl -s --max-time 3 ${url} || echo "ERR $?"; echo; done`;
  const r = await inNode(n, 'sh', ['-c', script], { timeoutMs: 10_000 + count * 4000 });
  return r.stdout.split('\n').map((l) => l.trim()).filter(Boolean);
}

/** The pod name in the app's answer ("webapp 1.0 on <hostname>"). */
export const answerPod = (body: string): string | undefined => /^webapp \S+ on (\S+)$/.exec(body)?.[1];
export const answerVersion = (body: string): string | undefined => /^webapp (\S+) on /.exec(body)?.[1];

export interface LoopResult {
  total: number;
  failed: number;
  /** Responses by version, and the first few failures. */
  versions: Record<string, number>;
  failures: string[];
}

/**
 * A client sending requests in a loop (each on a new connection) until stopped,
 * as a user watching a rollout would: counts answers per version and failures.
 */
export function requestLoop(host: string, port: number, gapMs = 20): { stop: () => Promise<LoopResult> } {
  const res: LoopResult = { total: 0, failed: 0, versions: {}, failures: [] };
  let running = true;
  const loop = (async () => {
    while (running) {
      const started = Date.now();
      const body = await httpGet(host, port, '/', 2000);
      res.total++;
      const v = answerVersion(body);
      if (v) res.versions[v] = (res.versions[v] ?? 0) + 1;
      else {
        res.failed++;
        if (res.failures.length < 10) res.failures.push(`${new Date(started).toISOString()} ${body}`);
      }
      await new Promise((r) => setTimeout(r, gapMs));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return res;
    },
  };
}
