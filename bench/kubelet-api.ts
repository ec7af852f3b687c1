// The kubelet API through the real API server with real kubectl, nodelet
// against the upstream kubelet, both on one control plane of cluster profile
// dev4 (NODELET_BENCH_PROFILE), in one run:
//   node 1: nodelet with its own dockerd (clusterUp)
//   node 2: the pinned upstream kubelet with Debian's containerd (bench/lib/upstreamnode.ts)
// On each node in turn:
//   (a) exec round trip: `kubectl exec POD -- true`, EXEC_RUNS times in a row, p50/p99
//   (b) log streaming: a container writes LOG_MB of log lines (its log file stays
//       under upstream's 10 MiB rotation size), then `kubectl logs` of it, LOG_RUNS times: MB/s
//   (c) port-forward: `kubectl port-forward` to busybox httpd serving a PF_MB
//       file, fetched PF_RUNS times through it: MB/s
// Every step has a time limit; everything is torn down at the end (clusterDown),
// also on failure or Ctrl-C. When the upstream node cannot be brought up, the
// results say why and hold nodelet's numbers only.
// Run: node bench/kubelet-api.ts   Writes bench/results/kubelet-api-<ISO>.json and kubelet-api-latest.json.
import Dockerode from 'dockerode';
import { spawn } from 'node:child_process';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { ensurePki, kubectl } from '../cluster/controlplane.ts';
import { waitFor } from '../cluster/daemon.ts';
import { nodeName, profileByName } from '../cluster/profile.ts';
import { destroyNode, ensureNode } from '../cluster/sandbox.ts';
import { type Cluster, clusterDown, clusterUp, nodeReady } from '../cluster/up.ts';
import { upstreamBinDir } from '../cluster/upstream.ts';
import { BUSYBOX_IMAGE, PAUSE_IMAGE } from '../cri/images/build.ts';
import { describeError } from '../lib/errors.ts';
import { formatTable, resultsDir, writeJsonResult } from './lib/results.ts';
import { ratio, round, summarize, type Summary } from './lib/stats.ts';
import { kubeletPid, removeUpstreamNode, startUpstreamNode, stopUpstreamNode, tail, type UpstreamNode, upstreamNode } from './lib/upstreamnode.ts';

const NAMESPACE = 'bench-kubelet-api';
const EXEC_RUNS = Number(process.env.NODELET_BENCH_EXEC_RUNS ?? 50);
// 6 MiB of lines is about 8.5 MiB of CRI log file: under upstream's 10 MiB rotation.
const LOG_MB = 6;
const LOG_RUNS = 5;
const PF_MB = 32;
const PF_RUNS = 5;
const POD_TIMEOUT_MS = 120_000;
const STEP_TIMEOUT_MS = 60_000;
const UPSTREAM_READY_TIMEOUT_MS = 90_000;
const MB = 1024 * 1024;

interface Throughput {
  runs: number;
  bytesPerRun: number;
  /** MB/s (MiB) per run, and their median. */
  mbPerS: number[];
  medianMbPerS: number;
  errors: string[];
}

interface NodeResult {
  node: string;
  agent: string;
  exec: Summary & { failures: number };
  logs: Throughput;
  portForward: Throughput;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? round(s[Math.floor((s.length - 1) / 2)]!) : NaN;
};

function throughput(bytesPerRun: number, secs: number[], errors: string[]): Throughput {
  const mbPerS = secs.map((s) => round(bytesPerRun / MB / s));
  return { runs: secs.length, bytesPerRun, mbPerS, medianMbPerS: median(mbPerS), errors };
}

function podSpec(name: string, node: string, script: string): object {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: NAMESPACE },
    spec: { nodeName: node, terminationGracePeriodSeconds: 1, containers: [{ name: 'main', image: BUSYBOX_IMAGE, imagePullPolicy: 'Never', command: ['sh', '-c', script] }] },
  };
}

/** Runs kubectl, counting stdout bytes without keeping them; resolves with the count and the wall time. */
function kubectlCount(c: Cluster, args: string[], timeoutMs: number): Promise<{ bytes: number; ms: number; code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const child = spawn(path.join(c.paths.bin, 'kubectl'), ['--kubeconfig', c.paths.adminKubeconfig, '-n', NAMESPACE, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let bytes = 0;
    let stderr = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.stdout.on('data', (b: Buffer) => (bytes += b.length));
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ bytes, ms: performance.now() - t0, code, stderr: stderr.trim().slice(0, 300) });
    });
  });
}

/** GET http://127.0.0.1:port/path, counting the body; rejects on a non-200 or after timeoutMs. */
function httpCount(port: number, pathname: string, timeoutMs: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: pathname, timeout: timeoutMs, agent: false }, (res) => {
      if (res.statusCode !== 200) {
        res.resume();
        return reject(new Error(`HTTP ${res.statusCode}`));
      }
      let n = 0;
      res.on('data', (b: Buffer) => (n += b.length));
      res.on('end', () => resolve(n));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
  });
}

async function podRunning(c: Cluster, name: string): Promise<boolean> {
  const r = await kubectl(c.paths, ['-n', NAMESPACE, 'get', 'pod', name, '-o', 'jsonpath={.status.containerStatuses[0].state.running.startedAt}'], { allowFail: true, timeoutMs: 10_000 });
  return r.code === 0 && r.stdout.trim() !== '';
}

async function measureNode(c: Cluster, node: string, agent: string, log: (m: string) => void, signal: AbortSignal): Promise<NodeResult> {
  const sfx = node.replace(/[^a-z0-9-]/g, '');
  const target = `exec-${sfx}`;
  const logger = `logger-${sfx}`;
  const web = `web-${sfx}`;
  // Lines of 100 bytes, LOG_MB in all, then a marker so we know the writing is done.
  const line = 'x'.repeat(99);
  const logScript = `i=0; while [ $i -lt ${Math.round((LOG_MB * MB) / 100 / 1024)} ]; do yes ${line} | head -n 1024; i=$((i+1)); done; echo DONE; exec sleep 3600`;
  const pods = [
    podSpec(target, node, 'exec sleep 3600'),
    podSpec(logger, node, logScript),
    podSpec(web, node, `mkdir -p /www && head -c ${PF_MB * MB} /dev/urandom > /www/big && echo ok > /www/ready && exec httpd -f -p 8080 -h /www`),
  ];
  await kubectl(c.paths, ['apply', '-f', '-'], { input: JSON.stringify({ apiVersion: 'v1', kind: 'List', items: pods }) });
  for (const p of [target, logger, web]) await waitFor(`pod ${p} Running on ${node}`, () => podRunning(c, p), POD_TIMEOUT_MS, 500);
  log(`${agent}: pods running`);

  // (a) exec round trip
  const execMs: number[] = [];
  let failures = 0;
  const execDeadline = performance.now() + 5 * 60_000;
  for (let i = 0; i < EXEC_RUNS && performance.now() < execDeadline && !signal.aborted; i++) {
    const t0 = performance.now();
    const r = await kubectl(c.paths, ['-n', NAMESPACE, 'exec', target, '--', 'true'], { allowFail: true, timeoutMs: 30_000 });
    if (r.code === 0) execMs.push(performance.now() - t0);
    else failures++;
  }
  const execSummary = { ...summarize(execMs), failures };
  log(`${agent}: exec p50 ${execSummary.p50} ms, p99 ${execSummary.p99} ms (${execMs.length} runs, ${failures} failed)`);

  // (b) log streaming
  await waitFor(`${logger} to finish writing`, async () => (await kubectl(c.paths, ['-n', NAMESPACE, 'logs', '--tail=1', logger], { allowFail: true, timeoutMs: 10_000 })).stdout.trim() === 'DONE', STEP_TIMEOUT_MS, 500);
  const logSecs: number[] = [];
  const logErrors: string[] = [];
  let logBytes = 0;
  for (let i = 0; i < LOG_RUNS && !signal.aborted; i++) {
    const r = await kubectlCount(c, ['logs', logger], STEP_TIMEOUT_MS);
    if (r.code !== 0) logErrors.push(r.stderr || `exit ${r.code}`);
    else {
      logBytes = r.bytes;
      logSecs.push(r.ms / 1000);
    }
  }
  const logs = throughput(logBytes, logSecs, logErrors);
  log(`${agent}: kubectl logs ${round(logBytes / MB)} MB at ${logs.medianMbPerS} MB/s (median of ${logs.runs})`);

  // (c) port-forward
  await waitFor(`${web} to have its file`, async () => (await kubectl(c.paths, ['-n', NAMESPACE, 'exec', web, '--', 'cat', '/www/ready'], { allowFail: true, timeoutMs: 10_000 })).stdout.trim() === 'ok', STEP_TIMEOUT_MS, 500);
  const pf = spawn(path.join(c.paths.bin, 'kubectl'), ['--kubeconfig', c.paths.adminKubeconfig, '-n', NAMESPACE, 'port-forward', `pod/${web}`, ':8080'], { stdio: ['ignore', 'pipe', 'pipe'] });
  const pfSecs: number[] = [];
  const pfErrors: string[] = [];
  let pfBytes = 0;
  try {
    const port = await new Promise<number>((resolve, reject) => {
      let out = '';
      const timer = setTimeout(() => reject(new Error(`kubectl port-forward did not start: ${out}`)), 30_000);
      pf.stdout.on('data', (b: Buffer) => {
        out += b.toString();
        const m = /127\.0\.0\.1:(\d+)/.exec(out);
        if (m) {
          clearTimeout(timer);
          resolve(Number(m[1]));
        }
      });
      pf.on('exit', (code) => reject(new Error(`kubectl port-forward exited ${code}: ${out}`)));
    });
    for (let i = 0; i < PF_RUNS && !signal.aborted; i++) {
      const t0 = performance.now();
      try {
        pfBytes = await httpCount(port, '/big', STEP_TIMEOUT_MS);
        pfSecs.push((performance.now() - t0) / 1000);
      } catch (err) {
        pfErrors.push(describeError(err));
      }
    }
  } catch (err) {
    pfErrors.push(describeError(err));
  } finally {
    pf.kill('SIGTERM');
  }
  const portForward = throughput(pfBytes, pfSecs, pfErrors);
  log(`${agent}: port-forward ${round(pfBytes / MB)} MB at ${portForward.medianMbPerS} MB/s (median of ${portForward.runs})`);

  await kubectl(c.paths, ['-n', NAMESPACE, 'delete', 'pod', target, logger, web, '--wait=false'], { allowFail: true });
  return { node, agent, exec: execSummary, logs, portForward };
}

function tableRows(n: NodeResult, u: NodeResult | undefined): string[][] {
  const f = (x: number | undefined) => (x === undefined || !Number.isFinite(x) ? '-' : String(x));
  const row = (name: string, a: number, b: number | undefined) => [name, f(a), f(b), f(ratio(a, b) ?? undefined)];
  return [
    ['metric', 'nodelet', 'upstream', 'ratio'],
    row(`exec p50 ms (${n.exec.n} runs)`, n.exec.p50, u?.exec.p50),
    row('exec p99 ms', n.exec.p99, u?.exec.p99),
    row(`kubectl logs MB/s (${LOG_MB} MB)`, n.logs.medianMbPerS, u?.logs.medianMbPerS),
    row(`port-forward MB/s (${PF_MB} MB)`, n.portForward.medianMbPerS, u?.portForward.medianMbPerS),
  ];
}

async function main(): Promise<number> {
  const t0 = performance.now();
  const p = profileByName(process.env.NODELET_BENCH_PROFILE ?? 'dev4');
  const log = (m: string) => console.log(`  ${m}`);
  const ac = new AbortController();
  const onSignal = () => ac.abort();
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  let un: UpstreamNode | undefined;
  try {
    const loadAvgAtStart = os.loadavg().map((x) => round(x));
    console.log(`kubelet-api bench: profile ${p.name}, ${EXEC_RUNS} execs, ${LOG_MB} MB logs x${LOG_RUNS}, ${PF_MB} MB port-forward x${PF_RUNS}`);
    const c = await clusterUp(p, { nodes: 1, log });
    const node1 = c.nodes[0]!;
    await kubectl(c.paths, ['create', 'namespace', NAMESPACE], { allowFail: true });
    await waitFor(`serviceaccount ${NAMESPACE}/default`, async () => (await kubectl(c.paths, ['-n', NAMESPACE, 'get', 'sa', 'default'], { allowFail: true })).code === 0, 60_000, 300);

    const nodelet = await measureNode(c, node1.name, 'nodelet', log, ac.signal);

    let upstream: NodeResult | undefined;
    let upstreamError: string | undefined;
    let upstreamInfo: Record<string, string> = {};
    try {
      const name = nodeName(p, 2);
      const bin = await upstreamBinDir();
      await ensurePki(p, [node1.name, name], bin);
      const sandbox = await ensureNode(p, 2, [1, 2]);
      un = upstreamNode(p, name, sandbox);
      const u = un;
      await startUpstreamNode(p, u, {
        kubeletBin: path.join(bin, 'kubelet'),
        paths: c.paths,
        pauseImage: PAUSE_IMAGE,
        images: [PAUSE_IMAGE, BUSYBOX_IMAGE],
        imageSource: new Dockerode({ socketPath: node1.sandbox.dockerSocket, timeout: 120_000 }),
        maxPods: 110,
        log,
      });
      await waitFor(
        `upstream kubelet node ${name} to be Ready (log: ${u.kubeletLog})`,
        async () => {
          if (kubeletPid(u) === undefined) throw new Error(`kubelet exited: ${tail(u.kubeletLog)}`);
          return nodeReady(c.paths, name);
        },
        UPSTREAM_READY_TIMEOUT_MS,
        500,
      );
      const info = JSON.parse((await kubectl(c.paths, ['get', 'node', name, '-o', 'jsonpath={.status.nodeInfo}'])).stdout) as Record<string, string>;
      upstreamInfo = { kubelet: info.kubeletVersion ?? '', runtime: info.containerRuntimeVersion ?? '' };
      log(`upstream node ${name}: Ready (kubelet ${upstreamInfo.kubelet}, ${upstreamInfo.runtime})`);
      upstream = await measureNode(c, name, 'upstream kubelet', log, ac.signal);
    } catch (err) {
      if (ac.signal.aborted) throw err;
      upstreamError = describeError(err);
      if (un) upstreamError += ` (kubelet log: ${tail(un.kubeletLog, 3)})`;
      console.error(`upstream kubelet: ${upstreamError}`);
    }

    const n1info = JSON.parse((await kubectl(c.paths, ['get', 'node', node1.name, '-o', 'jsonpath={.status.nodeInfo}'])).stdout) as Record<string, string>;
    const timestamp = new Date().toISOString();
    const rows = tableRows(nodelet, upstream);
    console.log('');
    console.log(formatTable(rows));
    console.log(`\nhost: ${os.cpus().length} CPUs, load average ${loadAvgAtStart[0]} at start, ${round(os.loadavg()[0]!)} at end`);
    if (upstreamError) console.log(`upstream missing: ${upstreamError}`);
    for (const r of [nodelet, upstream]) {
      if (!r) continue;
      if (r.exec.failures) console.log(`  ${r.agent}: ${r.exec.failures} exec runs failed`);
      for (const [what, t] of [['logs', r.logs], ['port-forward', r.portForward]] as const) if (t.errors.length) console.log(`  ${r.agent} ${what}: ${t.errors.join('; ')}`);
    }
    const result = {
      bench: 'kubelet-api',
      timestamp,
      profile: p.name,
      host: { cpus: os.cpus().length, loadAvgAtStart, loadAvgAtEnd: os.loadavg().map((x) => round(x)) },
      settings: {
        execRuns: EXEC_RUNS,
        logMb: LOG_MB,
        logRuns: LOG_RUNS,
        portForwardMb: PF_MB,
        portForwardRuns: PF_RUNS,
        image: BUSYBOX_IMAGE,
        percentiles: 'nearest-rank',
        exec: 'wall time of one `kubectl exec POD -- true` process (kubectl start-up, API server, SPDY to the kubelet, the runtime exec)',
        logs: 'wall time of one `kubectl logs POD` process reading the whole log (100-byte lines); MB = MiB',
        portForward: 'one HTTP GET of the file through a running `kubectl port-forward` (busybox httpd in the pod); MB = MiB',
      },
      nodes: {
        nodelet: { name: node1.name, kubeletVersion: n1info.kubeletVersion, runtime: n1info.containerRuntimeVersion },
        upstream: upstream ? { name: upstream.node, kubeletVersion: upstreamInfo.kubelet, runtime: upstreamInfo.runtime } : null,
      },
      nodelet,
      upstream: upstream ?? null,
      upstreamError: upstreamError ?? null,
      ratio: {
        execP50: ratio(nodelet.exec.p50, upstream?.exec.p50),
        execP99: ratio(nodelet.exec.p99, upstream?.exec.p99),
        logsMbPerS: ratio(nodelet.logs.medianMbPerS, upstream?.logs.medianMbPerS),
        portForwardMbPerS: ratio(nodelet.portForward.medianMbPerS, upstream?.portForward.medianMbPerS),
      },
      table: rows,
      totalS: round((performance.now() - t0) / 1000),
    };
    const json = writeJsonResult('kubelet-api', timestamp, result);
    console.log(`wrote ${path.relative(process.cwd(), json.file)} and kubelet-api-latest.json in ${path.relative(process.cwd(), resultsDir)}`);
    return 0;
  } catch (err) {
    console.error(`kubelet-api bench failed: ${describeError(err)}`);
    return 1;
  } finally {
    if (un) await stopUpstreamNode(un).catch((err) => console.error(`stopping the upstream node: ${describeError(err)}`));
    await destroyNode(p, 2).catch((err) => console.error(`destroyNode 2: ${describeError(err)}`));
    try {
      if (un) removeUpstreamNode(un);
    } catch (err) {
      console.error(`removing the upstream node: ${describeError(err)}`);
    }
    await clusterDown(p, { log }).catch((err) => console.error(`clusterDown: ${describeError(err)}`));
    console.log(`total ${((performance.now() - t0) / 1000).toFixed(1)} s (cluster ${p.name} down)`);
  }
}

process.exitCode = await main();
