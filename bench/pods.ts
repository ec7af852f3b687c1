// Pod start latency and footprint of nodelet against the upstream kubelet, both
// on one control plane of cluster profile dev5 (NODELET_BENCH_PROFILE), in one run:
//   node 1: nodelet with its own dockerd (clusterUp)
//   node 2: the pinned upstream kubelet with Debian's containerd (bench/lib/upstreamnode.ts)
// On each node in turn (the other idle):
//   (a) footprint of the agent process at 0 pods (RSS, CPU over an idle window)
//   (b) 30 pods created at once through the API: create -> Running and ready, p50/p99
//   (c) pods up to max-pods (110) at once: the same latencies, then the footprint
//       over an idle window with them all running
//   (d) on node 1's dockerd with no pods: the plain-Docker floor of (b), the
//       same 30 pause + app pairs made directly through the Engine API
// Every pod: busybox `sleep 3600`, pinned with spec.nodeName. Everything is torn
// down at the end (clusterDown), also on failure or Ctrl-C.
// Run: node bench/pods.ts   Writes bench/results/pods-<ISO>.{json,png} and pods-latest.{json,png}.
import Dockerode from 'dockerode';
import { cpSync, existsSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { ensurePki, kubectl } from '../cluster/controlplane.ts';
import { waitFor } from '../cluster/daemon.ts';
import { type ClusterProfile, nodeName, profileByName } from '../cluster/profile.ts';
import { destroyNode, ensureNode } from '../cluster/sandbox.ts';
import { type Cluster, clusterDown, clusterUp, nodeReady, nodeletPidFile } from '../cluster/up.ts';
import { upstreamBinDir } from '../cluster/upstream.ts';
import { readPid } from '../cluster/daemon.ts';
import { BUSYBOX_IMAGE, PAUSE_IMAGE } from '../cri/images/build.ts';
import { describeError } from '../lib/errors.ts';
import { dockerFloor } from './lib/dockerfloor.ts';
import { type BatchResult, runBatch } from './lib/podbatch.ts';
import { cdfPlot, COLORS, type CdfSeries } from './lib/plot.ts';
import { clockTicksPerSecond, type Footprint, measureWindow } from './lib/proc.ts';
import { formatTable, resultsDir, writeJsonResult, writeResult } from './lib/results.ts';
import { percentileOfAll, ratio, round, summarize, type Summary } from './lib/stats.ts';
import { kubeletPid, removeUpstreamNode, startUpstreamNode, stopUpstreamNode, tail, type UpstreamNode, upstreamNode } from './lib/upstreamnode.ts';

const NAMESPACE = 'bench-pods';
const CONCURRENT = Number(process.env.NODELET_BENCH_PODS ?? 30);
const MAX_PODS = 110;
const IDLE_WINDOW_MS = Number(process.env.NODELET_BENCH_IDLE_MS ?? 30_000);
const START_TIMEOUT_MS = 3 * 60_000;
const MAX_START_TIMEOUT_MS = 5 * 60_000;
const DELETE_TIMEOUT_MS = 3 * 60_000;
const UPSTREAM_READY_TIMEOUT_MS = 90_000;
const TARGET_P99_MS = 2000;
const TARGET_RSS_MB = 150;
const COMMAND = ['sleep', '3600'];

interface BatchSummary {
  /** 1-minute load average of the (shared) host when the batch started. */
  loadAvg1: number;
  pods: number;
  running: number;
  notRunning: string[];
  createErrors: string[];
  wallMs: number;
  /** Over all pods of the batch: null when that rank fell on a pod that never started. */
  p50AllPods: number | null;
  p99AllPods: number | null;
  /** Over the pods that started only. */
  start: Summary;
  delete: Summary;
  notDeleted: number;
}

interface NodeResult {
  node: string;
  agent: string;
  idle0: Footprint;
  concurrent: BatchSummary;
  maxPods: BatchSummary & { existingPodsOnNode: number; footprint?: Footprint };
}

const batchSummary = (b: BatchResult, loadAvg1: number): BatchSummary => ({
  loadAvg1: round(loadAvg1),
  pods: b.pods,
  running: b.startMs.length,
  notRunning: b.notRunning,
  createErrors: b.createErrors,
  wallMs: round(b.wallMs),
  p50AllPods: percentileOfAll(b.startMs, b.pods, 0.5),
  p99AllPods: percentileOfAll(b.startMs, b.pods, 0.99),
  start: summarize(b.startMs),
  delete: summarize(b.deleteMs),
  notDeleted: b.notDeleted,
});

async function podsOnNode(c: Cluster, node: string): Promise<number> {
  const r = await kubectl(c.paths, ['get', 'pods', '-A', '--field-selector', `spec.nodeName=${node}`, '-o', 'name']);
  return r.stdout.split('\n').filter(Boolean).length;
}

/** The same measurements for whichever agent runs `node` (its pid found by agentPid). */
async function measureNode(
  c: Cluster,
  node: string,
  agent: string,
  agentPid: () => number,
  ticks: number,
  log: (m: string) => void,
  signal: AbortSignal,
): Promise<NodeResult> {
  await new Promise((r) => setTimeout(r, 3000)); // let start-up work settle before the idle window
  log(`${agent}: idle footprint at 0 pods (${IDLE_WINDOW_MS / 1000} s)`);
  const idle0 = await measureWindow(agentPid(), IDLE_WINDOW_MS, ticks, signal);
  const common = { namespace: NAMESPACE, node, image: BUSYBOX_IMAGE, command: COMMAND, deleteTimeoutMs: DELETE_TIMEOUT_MS, signal };
  log(`${agent}: ${CONCURRENT} pods at once`);
  const load0 = os.loadavg()[0]!;
  const concurrent = batchSummary(await runBatch(c.paths.adminKubeconfig, { ...common, count: CONCURRENT, prefix: 'c', startTimeoutMs: START_TIMEOUT_MS }), load0);
  log(`${agent}: ${concurrent.running}/${CONCURRENT} running, p50 ${concurrent.p50AllPods ?? 'timeout'} ms, p99 ${concurrent.p99AllPods ?? 'timeout'} ms (host load ${concurrent.loadAvg1}); deleted`);
  const existing = await podsOnNode(c, node);
  const count = MAX_PODS - existing;
  log(`${agent}: ${count} pods at once (${existing} already on the node; max-pods ${MAX_PODS})`);
  let fp: Footprint | undefined;
  const load1 = os.loadavg()[0]!;
  const max = await runBatch(c.paths.adminKubeconfig, {
    ...common,
    count,
    prefix: 'm',
    startTimeoutMs: MAX_START_TIMEOUT_MS,
    whileRunning: async () => {
      log(`${agent}: idle footprint with the pods running (${IDLE_WINDOW_MS / 1000} s)`);
      await new Promise((r) => setTimeout(r, 3000));
      fp = await measureWindow(agentPid(), IDLE_WINDOW_MS, ticks, signal);
    },
  });
  const maxPods = { ...batchSummary(max, load1), existingPodsOnNode: existing, ...(fp ? { footprint: fp } : {}) };
  log(`${agent}: ${maxPods.running}/${count} running, p50 ${maxPods.p50AllPods ?? 'timeout'} ms, p99 ${maxPods.p99AllPods ?? 'timeout'} ms, RSS ${fp?.rssMb} MB (host load ${maxPods.loadAvg1}); deleted`);
  return { node, agent, idle0, concurrent, maxPods };
}

function pidOf(pidFile: string, what: string): () => number {
  return () => {
    const pid = readPid(pidFile);
    if (pid === undefined || !existsSync(`/proc/${pid}`)) throw new Error(`${what}: no running process (pid file ${pidFile})`);
    return pid;
  };
}

const fmt = (x: number | null | undefined, digits = 0): string => (x === null || x === undefined || !Number.isFinite(x) ? 'n/a' : x.toFixed(digits));

function tableRows(n: NodeResult, u: NodeResult | undefined, floor: Summary): string[][] {
  const row = (metric: string, a: number | null | undefined, b: number | null | undefined, target: string, digits = 0) => [
    metric,
    fmt(a, digits),
    fmt(b, digits),
    fmt(ratio(a, b), 2),
    target,
  ];
  // A percentile that falls on a pod that never started is a timeout, not a number.
  const pct = (r: NodeResult | undefined, which: 'concurrent' | 'maxPods', q: 'p50AllPods' | 'p99AllPods') =>
    r === undefined ? undefined : r[which][q];
  const startRow = (metric: string, which: 'concurrent' | 'maxPods', q: 'p50AllPods' | 'p99AllPods', target: string) => {
    const cell = (r: NodeResult | undefined) => {
      const v = pct(r, which, q);
      return v === null ? `timeout` : fmt(v);
    };
    return [metric, cell(n), cell(u), fmt(ratio(pct(n, which, q), pct(u, which, q)), 2), target];
  };
  const ok = (r: NodeResult | undefined, which: 'concurrent' | 'maxPods') => (r ? `${r[which].running}/${r[which].pods}` : 'n/a');
  return [
    ['metric', 'nodelet', 'upstream', 'ratio', 'target'],
    [`${CONCURRENT} pods: running`, ok(n, 'concurrent'), ok(u, 'concurrent'), '', `${CONCURRENT}/${CONCURRENT}`],
    [`host load avg (1 min), ${CONCURRENT}-pod start`, fmt(n.concurrent.loadAvg1, 1), fmt(u?.concurrent.loadAvg1, 1), '', `< ${os.cpus().length} (CPUs)`],
    startRow(`${CONCURRENT} pods: create->Running p50 ms`, 'concurrent', 'p50AllPods', ''),
    startRow(`${CONCURRENT} pods: create->Running p99 ms`, 'concurrent', 'p99AllPods', `<= ${TARGET_P99_MS}`),
    [`${CONCURRENT} pods: plain-Docker floor p50 / p99 ms`, `${fmt(floor.p50)} / ${fmt(floor.p99)}`, '', '', ''],
    row(`${CONCURRENT} pods: delete->gone p99 ms`, n.concurrent.delete.p99, u?.concurrent.delete.p99, ''),
    [`${MAX_PODS} pods: running`, ok(n, 'maxPods'), ok(u, 'maxPods'), '', ''],
    startRow(`${MAX_PODS} pods: create->Running p50 ms`, 'maxPods', 'p50AllPods', ''),
    startRow(`${MAX_PODS} pods: create->Running p99 ms`, 'maxPods', 'p99AllPods', ''),
    row(`${MAX_PODS} pods: all Running (wall) ms`, n.maxPods.running === n.maxPods.pods ? n.maxPods.wallMs : null, u && u.maxPods.running === u.maxPods.pods ? u.maxPods.wallMs : null, ''),
    row(`${MAX_PODS} pods: delete->gone p99 ms`, n.maxPods.delete.p99, u?.maxPods.delete.p99, ''),
    row('RSS at 0 pods MB', n.idle0.rssMb, u?.idle0.rssMb, '', 1),
    row(`RSS at ${MAX_PODS} pods MB`, n.maxPods.footprint?.rssMb, u?.maxPods.footprint?.rssMb, `<= ${TARGET_RSS_MB}`, 1),
    row('CPU at 0 pods % of a core', n.idle0.cpuPercent, u?.idle0.cpuPercent, '', 2),
    row(`CPU at ${MAX_PODS} pods % of a core`, n.maxPods.footprint?.cpuPercent, u?.maxPods.footprint?.cpuPercent, '', 2),
  ];
}

/** The last run's agent and control-plane logs outlive the cluster here (one copy, replaced each run). */
const LOGS_COPY = path.join(os.tmpdir(), 'nodelet-bench-pods-logs');

function keepLogs(p: ClusterProfile, un: UpstreamNode | undefined): void {
  try {
    rmSync(LOGS_COPY, { recursive: true, force: true });
    const logs = path.join(p.stateDir, 'logs');
    if (existsSync(logs)) cpSync(logs, LOGS_COPY, { recursive: true });
    for (const f of un ? [un.kubeletLog, un.containerdLog] : []) {
      if (existsSync(f)) cpSync(f, path.join(LOGS_COPY, `upstream-${path.basename(f)}`));
    }
    console.log(`logs of this run: ${LOGS_COPY}`);
  } catch (err) {
    console.error(`copying the logs: ${describeError(err)}`);
  }
}

async function main(): Promise<number> {
  const t0 = performance.now();
  const p = profileByName(process.env.NODELET_BENCH_PROFILE ?? 'dev5');
  const log = (m: string) => console.log(`  ${m}`);
  const ac = new AbortController();
  const onSignal = () => ac.abort();
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  let un: UpstreamNode | undefined;
  try {
    const loadAvgAtStart = os.loadavg().map((x) => round(x));
    console.log(`pods bench: profile ${p.name}, ${CONCURRENT} concurrent pods, ${MAX_PODS} max pods, idle windows ${IDLE_WINDOW_MS / 1000} s`);
    const c = await clusterUp(p, { nodes: 1, log });
    const node1 = c.nodes[0]!;
    await kubectl(c.paths, ['create', 'namespace', NAMESPACE], { allowFail: true });
    // Pods are refused until the namespace's default ServiceAccount exists.
    await waitFor(`serviceaccount ${NAMESPACE}/default`, async () => (await kubectl(c.paths, ['-n', NAMESPACE, 'get', 'sa', 'default'], { allowFail: true })).code === 0, 60_000, 300);
    const ticks = await clockTicksPerSecond();
    const nodeletPid = pidOf(nodeletPidFile(p, node1.sandbox), 'nodelet');

    const nodelet = await measureNode(c, node1.name, 'nodelet', nodeletPid, ticks, log, ac.signal);
    log(`plain-Docker floor: ${CONCURRENT} pause + app pairs at once on ${node1.name}'s dockerd`);
    const floorRun = await dockerFloor(new Dockerode({ socketPath: node1.sandbox.dockerSocket, timeout: 120_000 }), {
      count: CONCURRENT,
      pauseImage: PAUSE_IMAGE,
      image: BUSYBOX_IMAGE,
      command: COMMAND,
    });
    const floor = summarize(floorRun.startMs);
    log(`plain-Docker floor: p50 ${fmt(floor.p50)} ms, p99 ${fmt(floor.p99)} ms${floorRun.errors.length ? `, errors: ${floorRun.errors.join('; ')}` : ''}`);

    let upstream: NodeResult | undefined;
    let upstreamError: string | undefined;
    let upstreamInfo: Record<string, string> = {};
    try {
      const name = nodeName(p, 2);
      const bin = await upstreamBinDir();
      await ensurePki(p, [node1.name, name], bin); // adds node 2's kubeconfig
      const sandbox = await ensureNode(p, 2, [1, 2]);
      un = upstreamNode(p, name, sandbox);
      const u = un;
      await startUpstreamNode(p, u, {
        kubeletBin: path.join(bin, 'kubelet'),
        paths: c.paths,
        pauseImage: PAUSE_IMAGE,
        images: [PAUSE_IMAGE, BUSYBOX_IMAGE],
        imageSource: new Dockerode({ socketPath: node1.sandbox.dockerSocket, timeout: 120_000 }),
        maxPods: MAX_PODS,
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
      const nodeInfo = JSON.parse((await kubectl(c.paths, ['get', 'node', name, '-o', 'jsonpath={.status.nodeInfo}'])).stdout) as Record<string, string>;
      upstreamInfo = { kubelet: nodeInfo.kubeletVersion ?? '', runtime: nodeInfo.containerRuntimeVersion ?? '' };
      log(`upstream node ${name}: Ready (kubelet ${upstreamInfo.kubelet}, ${upstreamInfo.runtime})`);
      upstream = await measureNode(c, name, 'upstream kubelet', pidOf(u.kubeletPidFile, 'kubelet'), ticks, log, ac.signal);
    } catch (err) {
      if (ac.signal.aborted) throw err;
      upstreamError = describeError(err);
      if (un && existsSync(un.kubeletLog)) upstreamError += ` (kubelet log: ${tail(un.kubeletLog, 3)})`;
      console.error(`upstream kubelet: ${upstreamError}`);
    }

    const n1info = JSON.parse((await kubectl(c.paths, ['get', 'node', node1.name, '-o', 'jsonpath={.status.nodeInfo}'])).stdout) as Record<string, string>;
    const timestamp = new Date().toISOString();
    const rows = tableRows(nodelet, upstream, floor);
    console.log('');
    console.log(formatTable(rows));
    const p99 = nodelet.concurrent.p99AllPods;
    const p99Pass = p99 !== null && p99 <= TARGET_P99_MS;
    const rss = nodelet.maxPods.footprint?.rssMb;
    const rssPass = rss !== undefined && nodelet.maxPods.running === nodelet.maxPods.pods && rss <= TARGET_RSS_MB;
    console.log(`\nhost: ${os.cpus().length} CPUs, load average ${loadAvgAtStart[0]} at start, ${round(os.loadavg()[0]!)} at end`);
    console.log(`target p99 create->Running (${CONCURRENT} pods) <= ${TARGET_P99_MS} ms: ${p99Pass ? 'PASS' : 'FAIL'}`);
    console.log(`target RSS at ${MAX_PODS} pods <= ${TARGET_RSS_MB} MB: ${rssPass ? 'PASS' : 'FAIL'}`);
    if (upstreamError) console.log(`upstream missing: ${upstreamError}`);
    for (const r of [nodelet, upstream]) {
      for (const [which, b] of [['concurrent', r?.concurrent], ['max', r?.maxPods]] as const) {
        if (b?.createErrors.length) console.log(`  ${r!.agent} ${which}: create errors: ${b.createErrors.join('; ')}`);
        if (b?.notRunning.length) console.log(`  ${r!.agent} ${which}: not Running in time: ${b.notRunning.length} (${b.notRunning.slice(0, 5).join(' ')})`);
      }
    }

    const curve = (r: NodeResult, which: 'concurrent' | 'maxPods', color: CdfSeries['color'], dashed: boolean): CdfSeries => {
      const b = r[which];
      const missing = b.running < b.pods ? ` (${b.pods - b.running} never Running)` : '';
      return { label: `${r.agent}, ${b.pods} pods${missing}`, color, samplesMs: b.start.samplesMs, total: b.pods, dashed };
    };
    const series: CdfSeries[] = [
      curve(nodelet, 'concurrent', COLORS.nodelet, false),
      ...(upstream ? [curve(upstream, 'concurrent', COLORS.upstream, false)] : []),
      curve(nodelet, 'maxPods', COLORS.nodelet, true),
      ...(upstream ? [curve(upstream, 'maxPods', COLORS.upstream, true)] : []),
    ];
    const png = cdfPlot('pod start latency: create -> Running and ready (CDF)', 'ms after the create call returned', series);
    const plot = writeResult('pods', timestamp, 'png', png);

    const result = {
      benchmark: 'pod-start-and-footprint',
      timestamp,
      profile: p.name,
      // The host is shared: its load says how far the absolute numbers can be trusted.
      host: { cpus: os.cpus().length, memoryMb: Math.round(os.totalmem() / 2 ** 20), kernel: os.release(), node: process.version, loadAvgAtStart, loadAvgAtEnd: os.loadavg().map((x) => round(x)) },
      config: {
        concurrentPods: CONCURRENT,
        maxPods: MAX_PODS,
        image: BUSYBOX_IMAGE,
        command: COMMAND,
        idleWindowS: IDLE_WINDOW_MS / 1000,
        startTimeoutS: { concurrent: START_TIMEOUT_MS / 1000, maxPods: MAX_START_TIMEOUT_MS / 1000 },
        percentiles: 'nearest-rank',
        latency: 'per pod, from the create call returning to the first watch event showing it Running with all containers ready (this process\'s clock)',
        footprint: 'agent process only: VmRSS from /proc/<pid>/status at the end of the window; CPU = (utime+stime) delta over the window, % of one core',
      },
      nodes: {
        nodelet: { name: node1.name, kubeletVersion: n1info.kubeletVersion, runtime: n1info.containerRuntimeVersion },
        upstream: upstream ? { name: upstream.node, kubeletVersion: upstreamInfo.kubelet, runtime: upstreamInfo.runtime } : null,
      },
      nodelet,
      dockerFloor: { what: `${CONCURRENT} pause + app container pairs at once, straight through the Engine API on node 1's dockerd; ms from the batch start to the app started`, start: floor, errors: floorRun.errors, wallMs: round(floorRun.wallMs) },
      upstream: upstream ?? null,
      upstreamError: upstreamError ?? null,
      ratio: {
        concurrentP50: ratio(nodelet.concurrent.p50AllPods, upstream?.concurrent.p50AllPods),
        concurrentP99: ratio(nodelet.concurrent.p99AllPods, upstream?.concurrent.p99AllPods),
        concurrentP99OverDockerFloor: ratio(nodelet.concurrent.p99AllPods, floor.p99),
        maxPodsP50: ratio(nodelet.maxPods.p50AllPods, upstream?.maxPods.p50AllPods),
        maxPodsP99: ratio(nodelet.maxPods.p99AllPods, upstream?.maxPods.p99AllPods),
        rssIdle: ratio(nodelet.idle0.rssMb, upstream?.idle0.rssMb),
        rssMaxPods: ratio(nodelet.maxPods.footprint?.rssMb, upstream?.maxPods.footprint?.rssMb),
        cpuMaxPods: ratio(nodelet.maxPods.footprint?.cpuPercent, upstream?.maxPods.footprint?.cpuPercent),
      },
      targets: {
        concurrentP99Ms: { target: TARGET_P99_MS, value: p99, pass: p99Pass },
        rssAtMaxPodsMb: { target: TARGET_RSS_MB, value: rss ?? null, pass: rssPass },
      },
      table: rows,
      plot: path.relative(process.cwd(), plot.file),
      totalS: 0,
    };
    result.totalS = round((performance.now() - t0) / 1000);
    const json = writeJsonResult('pods', timestamp, result);
    console.log(`wrote ${path.relative(process.cwd(), json.file)}, ${path.relative(process.cwd(), plot.file)} and pods-latest.{json,png} in ${path.relative(process.cwd(), resultsDir)}`);
    return 0;
  } catch (err) {
    console.error(`pods bench failed: ${describeError(err)}`);
    return 1;
  } finally {
    keepLogs(p, un);
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
