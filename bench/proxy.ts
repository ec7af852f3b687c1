// nodelet's service proxy against upstream kube-proxy (same release as the
// control plane), in one run on a cluster of profile dev6 that this bench
// brings up and always takes down again (NODELET_BENCH_KEEP=1 keeps it).
//
// Each proxy runs alone (never both at once: 2 cores), in a fresh network
// namespace of its own (dev6 sandbox nodes 7 and 8, linked to the API
// server), with the same node name, cluster CIDR and min-sync period, and on
// the same iptables backend: nodelet through --iptables-backend, kube-proxy
// through a PATH whose iptables/iptables-save/iptables-restore are links to
// the -nft or -legacy variants (as Debian's alternatives would make them), and
// the same for ip6tables: on this IPv6 host both run dual-stack (an IPv6
// proxier of an empty table beside the IPv4 one), and both are read on their
// ip_family="IPv4" series.
//
//   (1) N selectorless Services with one 5-endpoint EndpointSlice each (pod
//       CIDR addresses nothing answers), N = 1000, 5000, 10000.
//   (2) per N and backend: the first full sync (both proxies' own
//       kubeproxy_sync_full_proxy_rules_duration_seconds; each proxy starts
//       on a quiet machine, the two take turns going first (by size and by
//       backend), and on legacy each starts once more in the other order:
//       the mean); partial syncs after one slice changes (…_partial_…); for
//       nodelet also where the time goes: generation timed in-process,
//       iptables-save and iptables-restore of the same text timed in a fresh
//       namespace, before either proxy starts (it takes the 10-25 % that the
//       first restore of a size after the services were made costs more).
//   (3) change -> programmed: create one Service + slice, poll
//       `iptables -t nat -S KUBE-SVC-…` in the namespace until the chain exists.
//   (4) userspace mode: 2000 one-request connections and 3 rounds of 3 s
//       bulk transfer (medians), direct to the backend vs through `nodelet proxy
//       --proxy-mode userspace` (cluster IP -> iptables -> proxy port).
//
// Run: node bench/proxy.ts   Writes bench/results/proxy-<ISO>.json, proxy-latest.json
// and a plot, proxy-<ISO>.png and proxy-latest.png.
// NODELET_BENCH_PROXY_SIZES=1000,5000 narrows the sizes, NODELET_BENCH_PROXY_SAMPLES=3 (default 5)
// takes fewer samples per run, NODELET_BENCH_PROXY_BACKENDS=legacy one backend only;
// NODELET_BENCH_NODE_EXTRA='--trace-gc' (space-separated) adds Node flags to nodelet's proxy, for profiling;
// SIGINT stops it and reports what was measured.
import { DAEMON_NODE_FLAGS } from '../lib/nodeflags.ts';
import { daemonEnv } from '../lib/compilecache.ts';
import * as k8s from '@kubernetes/client-node';
import type { V1EndpointSlice, V1Service } from '@kubernetes/client-node';
import { mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { kubeconfigPath } from '../cluster/controlplane.ts';
import { type ClusterProfile, nodeName, profileByName } from '../cluster/profile.ts';
import { destroyNode, ensureNode } from '../cluster/sandbox.ts';
import { clusterDown, clusterUp } from '../cluster/up.ts';
import { upstreamBinDir } from '../cluster/upstream.ts';
import { describeError } from '../lib/errors.ts';
import { exec } from '../lib/exec.ts';
import { flattenEndpoints } from '../proxy/changetracker.ts';
import { chainsFromSave } from '../proxy/iptables/iptables.ts';
import { binariesFor, WAIT_FLAGS, type Backend } from '../proxy/iptables/restore.ts';
import { generateRules, type RulesInput } from '../proxy/iptables/rules.ts';
import { PROXY_LABEL_SELECTOR } from '../proxy/main.ts';
import { endpointsFromSlices, SERVICE_NAME_LABEL, servicePortsFromService, serviceKey } from '../proxy/types.ts';
import {
  BENCH_NAMESPACE,
  benchService,
  benchServiceChain,
  benchSlice,
  endpointIP,
  gauge,
  histogram,
  serviceEndpoints,
  serviceName,
} from './proxy/objects.ts';
import { createServiceWithSlice, ensureServices, isConflict } from './proxy/api.ts';
import { linePlot } from './proxy/plot.ts';
import { COLORS } from './lib/plot.ts';
import type { RGB } from './lib/png.ts';
import { inNetns, logTail, type Proc, running, scrape, snapshotSource, startInNetns, stopProc } from './proxy/procs.ts';
import { round, summarize, type Summary } from './lib/stats.ts';
import { waitQuiet } from './lib/proc.ts';

const PROFILE = 'dev6';
const NODELET_NODE = 7;
const KUBEPROXY_NODE = 8;
const USERSPACE_NODE = 9;
// An empty NODELET_BENCH_PROXY_SIZES runs the userspace part only.
const SIZES = (process.env.NODELET_BENCH_PROXY_SIZES ?? '1000,5000,10000').split(',').filter(Boolean).map(Number);
const BACKENDS = (process.env.NODELET_BENCH_PROXY_BACKENDS ?? 'nft,legacy').split(',').map((b): Backend => {
  if (b !== 'nft' && b !== 'legacy') throw new Error(`NODELET_BENCH_PROXY_BACKENDS: '${b}' is not nft or legacy`);
  return b;
});
/** Partial-sync and change->programmed samples per run (NODELET_BENCH_PROXY_SAMPLES). */
const SAMPLES = Number(process.env.NODELET_BENCH_PROXY_SAMPLES ?? 5);
const CHANGE_SAMPLES = SAMPLES;
const PARTIAL_SAMPLES = SAMPLES;
const CREATE_CONCURRENCY = 24;
const METRICS_PORT = 10249;
const FIRST_SYNC_TIMEOUT_MS = 600_000;
const POLL_MS = 50;
/** Quiet time after the samples before the RSS that is compared is read. */
const REST_MS = 5_000;
const USERSPACE_REQUESTS = 2000;
const USERSPACE_BULK_SECONDS = 3;
const USERSPACE_BULK_ROUNDS = 3;
const USERSPACE_TARGET = 0.6;
/** The backend pod of the userspace test: an address of the pod CIDR, put on the namespace's lo. */
const USERSPACE_POD_PORTS = { echo: 8080, sink: 8081 };

const repoRoot = path.dirname(path.dirname(new URL(import.meta.url).pathname));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const ms = (x: number) => round(x);
const fixed = (x: number, digits: number) => Number(x.toFixed(digits));

type ProxyKind = 'nodelet' | 'kube-proxy';

interface ProxyRun {
  proxy: ProxyKind;
  backend: Backend;
  services: number;
  /**
   * The first sync: full, into an empty namespace (the proxy's own metric); the mean over firstFullSyncStartsMs.
   * With firstSyncTimedOut, the timeout: a lower bound.
   */
  firstFullSyncMs: number;
  /** The first full sync had not finished after FIRST_SYNC_TIMEOUT_MS (kube-proxy on nf_tables at 10k): no samples then. */
  firstSyncTimedOut?: boolean;
  /**
   * The first full sync of each start: the measured run, then (legacy) a second
   * start in the other order (A B B A), so that what comes of the order falls on both.
   */
  firstFullSyncStartsMs?: number[];
  /** From process start to the first sync done (startup, list, sync; 200 ms polling). */
  startToSyncedMs: number;
  natRules?: number;
  /** Syncs of the proxy's IPv6 proxier (0: it ran IPv4 only). */
  ipv6Syncs?: number;
  /** nodelet only: where its first full sync went, as its own log says (save, generate, restore). */
  firstSyncParts?: Record<string, number>;
  /** process_resident_memory_bytes from the proxy's own /metrics, REST_MS after the samples, in MB. */
  rssMB?: number;
  /** The same right after the last sample's sync. */
  rssAfterSamplesMB?: number;
  /**
   * process_cpu_seconds_total at rest: the proxy process's own CPU (all its
   * threads; not the iptables/nft children) from its start through the first
   * sync and every sample, the same work for both proxies.
   */
  cpuSeconds?: number;
  partialSyncMs: number[];
  changeToProgrammedMs: number[];
  partial: Summary;
  change: Summary;
  /** Set when a step after the first full sync failed (then the samples are those taken before). */
  error?: string;
}

interface Breakdown {
  services: number;
  backend: Backend;
  generateFullMs: number;
  generatePartialMs: number;
  natLines: number;
  saveEmptyMs: number;
  /** One restore of both tables, nat then filter, as the proxier writes them. */
  restoreMs: number;
}

class Interrupted extends Error {}

interface Ctx {
  p: ClusterProfile;
  core: k8s.CoreV1Api;
  disc: k8s.DiscoveryV1Api;
  opts: k8s.ConfigurationOptions;
  proxyKubeconfig: string;
  kubeProxyBin: string;
  logDir: string;
  /** A copy of the source tree taken at start: every run measures the same code, whatever is edited meanwhile. */
  srcRoot: string;
  binDirs: Record<Backend, string>;
  node: string;
  procs: Set<Proc>;
  check: () => void;
  log: (m: string) => void;
}

const isNotFound = (err: unknown) => err instanceof k8s.ApiException && err.code === 404;

async function deleteServiceWithSlice(c: Ctx, name: string): Promise<void> {
  for (const del of [
    () => c.disc.deleteNamespacedEndpointSlice({ name: `${name}-bench`, namespace: BENCH_NAMESPACE }, c.opts),
    () => c.core.deleteNamespacedService({ name, namespace: BENCH_NAMESPACE }, c.opts),
  ]) {
    try {
      await del();
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }
}

/** What the proxies see: every service and slice their label selector admits. */
async function listProxied(c: Ctx): Promise<{ services: V1Service[]; slices: V1EndpointSlice[] }> {
  const services = (await c.core.listServiceForAllNamespaces({ labelSelector: PROXY_LABEL_SELECTOR }, c.opts)).items;
  const slices = (await c.disc.listEndpointSliceForAllNamespaces({ labelSelector: PROXY_LABEL_SELECTOR }, c.opts)).items;
  return { services, slices };
}

function makeBinDirs(dir: string): Record<Backend, string> {
  const out = {} as Record<Backend, string>;
  for (const b of BACKENDS) {
    const d = path.join(dir, `bin-${b}`);
    rmSync(d, { recursive: true, force: true });
    mkdirSync(d, { recursive: true });
    // xtables-*-multi picks the command from argv[0], as through /etc/alternatives.
    for (const family of ['IPv4', 'IPv6'] as const) {
      const real = binariesFor(b, family);
      const cmd = family === 'IPv6' ? 'ip6tables' : 'iptables';
      symlinkSync(`/usr/sbin/${real.iptables}`, path.join(d, cmd));
      symlinkSync(`/usr/sbin/${real.save}`, path.join(d, `${cmd}-save`));
      symlinkSync(`/usr/sbin/${real.restore}`, path.join(d, `${cmd}-restore`));
    }
    for (const tool of ['nft', 'conntrack', 'modprobe']) symlinkSync(`/usr/sbin/${tool}`, path.join(d, tool));
    out[b] = d;
  }
  return out;
}

function startProxy(c: Ctx, kind: ProxyKind, backend: Backend, netns: string, mode: 'iptables' | 'userspace' = 'iptables'): Proc {
  const logFile = path.join(c.logDir, `${kind}-${mode}-${backend}.log`);
  const common = ['--kubeconfig', c.proxyKubeconfig, '--hostname-override', c.node, '--cluster-cidr', c.p.clusterCIDR,
    '--metrics-bind-address', `127.0.0.1:${METRICS_PORT}`, '--healthz-bind-address', '127.0.0.1:10256',
    // Both leave the kernel's conntrack settings (kube-proxy fails to start where it cannot write them, as in a netns).
    '--conntrack-max-per-core', '0', '--conntrack-tcp-timeout-established', '0', '--conntrack-tcp-timeout-close-wait', '0'];
  let proc: Proc;
  if (kind === 'nodelet') {
    const args = [...DAEMON_NODE_FLAGS, ...(process.env.NODELET_BENCH_NODE_EXTRA ?? '').split(' ').filter(Boolean), path.join(c.srcRoot, 'cmd', 'nodelet.ts'), 'proxy', ...common, '--proxy-mode', mode, '--iptables-backend', backend, '--log-level', 'info'];
    proc = startInNetns(`nodelet proxy (${backend})`, netns, process.execPath, args, logFile, daemonEnv());
  } else {
    const args = [...common, '--proxy-mode', 'iptables', '--v', '1'];
    proc = startInNetns(`kube-proxy (${backend})`, netns, c.kubeProxyBin, args, logFile, { PATH: c.binDirs[backend], HOME: '/root' });
  }
  c.procs.add(proc);
  return proc;
}

async function stop(c: Ctx, proc: Proc): Promise<void> {
  await stopProc(proc);
  c.procs.delete(proc);
}

/** Polls the proxy's metrics until `done` says so; fails early when the process dies. */
async function waitMetrics(c: Ctx, proc: Proc, netns: string, what: string, timeoutMs: number, done: (text: string) => boolean, everyMs = 200): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    c.check();
    if (!running(proc)) throw new Error(`${proc.name} exited while waiting for ${what}: ${logTail(proc)}`);
    const text = await scrape(netns, METRICS_PORT);
    if (text && done(text)) return text;
    if (Date.now() > deadline) throw new Error(`${proc.name}: timed out waiting for ${what}: ${logTail(proc)}`);
    await sleep(everyMs);
  }
}

const FULL = 'kubeproxy_sync_full_proxy_rules_duration_seconds';
const PARTIAL = 'kubeproxy_sync_partial_proxy_rules_duration_seconds';
const SYNC = 'kubeproxy_sync_proxy_rules_duration_seconds';
/** The IPv4 proxier's series: the benchmark's services are IPv4 (an IPv6 proxier beside it syncs an empty table). */
const V4 = 'ip_family="IPv4"';

async function chainExists(netns: string, backend: Backend, chain: string): Promise<boolean> {
  const r = await inNetns(netns, binariesFor(backend).iptables, ['-t', 'nat', '-S', chain], { allowFail: true, timeoutMs: 30_000 });
  return r.code === 0;
}

async function pollChain(c: Ctx, netns: string, backend: Backend, chain: string, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await chainExists(netns, backend, chain))) {
    c.check();
    if (Date.now() > deadline) throw new Error(`chain ${chain} never appeared in ${netns}`);
    await sleep(POLL_MS);
  }
}

let changeSeq = 0;

/** A first full sync that had not finished within FIRST_SYNC_TIMEOUT_MS. */
class FirstSyncTimeout extends Error {}

/** Starts a proxy in a fresh namespace of its own and waits for its first full sync. */
async function startAndSync(c: Ctx, kind: ProxyKind, backend: Backend) {
  const index = kind === 'nodelet' ? NODELET_NODE : KUBEPROXY_NODE;
  await destroyNode(c.p, index);
  const netns = (await ensureNode(c.p, index)).netns;
  const t0 = performance.now();
  const proc = startProxy(c, kind, backend, netns);
  try {
    const text = await waitMetrics(c, proc, netns, 'the first full sync', FIRST_SYNC_TIMEOUT_MS, (t) => histogram(t, FULL, V4).count >= 1).catch((err: unknown) => {
      throw running(proc) && !(err instanceof Interrupted) ? new FirstSyncTimeout(describeError(err)) : err;
    });
    const startToSyncedMs = performance.now() - t0;
    const first = histogram(text, FULL, V4);
    // Count > 1 only if a second full sync finished within one poll: then take the mean.
    return { index, netns, proc, text, startToSyncedMs, firstFullSyncMs: (first.sum / first.count) * 1000 };
  } catch (err) {
    await teardown(c, proc, index);
    throw err;
  }
}

async function teardown(c: Ctx, proc: Proc, index: number): Promise<void> {
  await stop(c, proc);
  await destroyNode(c.p, index);
}

/** Another start, for its first full sync alone; folded into the run measured before. */
async function repeatFirstSync(c: Ctx, run: ProxyRun): Promise<void> {
  const s = await startAndSync(c, run.proxy, run.backend);
  await teardown(c, s.proc, s.index);
  const starts = [...(run.firstFullSyncStartsMs ?? [run.firstFullSyncMs]), ms(s.firstFullSyncMs)];
  run.firstFullSyncStartsMs = starts;
  run.firstFullSyncMs = ms(starts.reduce((a, b) => a + b, 0) / starts.length);
  c.log(`  ${run.proxy.padEnd(10)} ${run.backend.padEnd(6)} N=${run.services}: first full sync of another start ${ms(s.firstFullSyncMs)} ms; mean ${run.firstFullSyncMs} ms`);
}

async function measureProxy(c: Ctx, kind: ProxyKind, backend: Backend, services: number): Promise<ProxyRun> {
  let started: Awaited<ReturnType<typeof startAndSync>>;
  try {
    started = await startAndSync(c, kind, backend);
  } catch (err) {
    if (!(err instanceof FirstSyncTimeout)) throw err;
    // Still syncing after the timeout: recorded as at least that long, and the bench goes on.
    c.log(`  ${kind.padEnd(10)} ${backend.padEnd(6)} N=${services}: first full sync not done after ${FIRST_SYNC_TIMEOUT_MS / 1000} s; recorded as > ${FIRST_SYNC_TIMEOUT_MS} ms`);
    return {
      proxy: kind,
      backend,
      services,
      firstFullSyncMs: FIRST_SYNC_TIMEOUT_MS,
      firstSyncTimedOut: true,
      startToSyncedMs: FIRST_SYNC_TIMEOUT_MS,
      partialSyncMs: [],
      changeToProgrammedMs: [],
      partial: summarize([]),
      change: summarize([]),
      error: err.message,
    };
  }
  const { index, netns, proc, startToSyncedMs, firstFullSyncMs, text: firstText } = started;
  let text = firstText;
  try {
    const natRules = gauge(text, 'kubeproxy_sync_proxy_rules_iptables_total', 'table="nat"', 'ip_family="IPv4"');
    // A change can wait behind a periodic or full sync before its own sync runs.
    const waitMs = Math.max(120_000, 3 * firstFullSyncMs + 60_000);
    const partialSyncMs: number[] = [];
    const changeToProgrammedMs: number[] = [];
    let error: string | undefined;
    try {
      // Partial syncs: one endpoint of svc-0 moves, and back.
      const sliceName = `${serviceName(0)}-bench`;
      for (let s = 0; s < PARTIAL_SAMPLES; s++) {
        await sleep(1200); // past min-sync-period, so the change is synced at once
        const before = histogram(await scrape(netns, METRICS_PORT), PARTIAL, V4);
        const slice = await c.disc.readNamespacedEndpointSlice({ name: sliceName, namespace: BENCH_NAMESPACE }, c.opts);
        // Toggle the first endpoint against what is there now, so every sample is a real change.
        const addrs = serviceEndpoints(c.p.clusterCIDR, 0);
        if (slice.endpoints?.[0]?.addresses[0] === addrs[0]) addrs[0] = endpointIP(c.p.clusterCIDR, 62_000);
        slice.endpoints = benchSlice(serviceName(0), addrs).endpoints;
        await c.disc.replaceNamespacedEndpointSlice({ name: sliceName, namespace: BENCH_NAMESPACE, body: slice }, c.opts);
        text = await waitMetrics(c, proc, netns, 'a partial sync', waitMs, (t) => histogram(t, PARTIAL, V4).count > before.count, 50);
        const after = histogram(text, PARTIAL, V4);
        partialSyncMs.push(((after.sum - before.sum) / (after.count - before.count)) * 1000);
      }
      // Put svc-0 back as it was, for the next run.
      const slice = await c.disc.readNamespacedEndpointSlice({ name: sliceName, namespace: BENCH_NAMESPACE }, c.opts);
      if (slice.endpoints?.[0]?.addresses[0] !== serviceEndpoints(c.p.clusterCIDR, 0)[0]) {
        slice.endpoints = benchSlice(serviceName(0), serviceEndpoints(c.p.clusterCIDR, 0)).endpoints;
        const syncs = histogram(await scrape(netns, METRICS_PORT), SYNC, V4).count;
        await c.disc.replaceNamespacedEndpointSlice({ name: sliceName, namespace: BENCH_NAMESPACE, body: slice }, c.opts);
        await waitMetrics(c, proc, netns, 'the sync of the restored slice', waitMs, (t) => histogram(t, SYNC, V4).count > syncs, 50);
      }

      // Change -> programmed: a new Service + slice until its KUBE-SVC chain is in the nat table.
      for (let s = 0; s < CHANGE_SAMPLES; s++) {
        await sleep(1100); // past min-sync-period since the last sync
        const name = `chg-${++changeSeq}`;
        const chain = benchServiceChain(name);
        const start = performance.now();
        await createServiceWithSlice(c, benchService(name), benchSlice(name, serviceEndpoints(c.p.clusterCIDR, 12_000 + s)));
        await pollChain(c, netns, backend, chain, waitMs);
        changeToProgrammedMs.push(performance.now() - start);
        // Stale chains may stay (kube-proxy deletes them only every sync period in
        // large clusters); wait for the sync of the delete instead, so the next
        // sample does not start inside the min-sync-period.
        const before = histogram(await scrape(netns, METRICS_PORT), SYNC, V4).count;
        await deleteServiceWithSlice(c, name);
        await waitMetrics(c, proc, netns, 'the sync after a delete', waitMs, (t) => histogram(t, SYNC, V4).count > before, 50);
      }
    } catch (err) {
      // The first full sync is in hand: keep it and the samples so far, and go on with the next run.
      if (err instanceof Interrupted) throw err;
      error = describeError(err);
      c.log(`  ${kind} ${backend} N=${services}: ${error}`);
    }
    // Read now, not at the first sync: the log line may still be on its way to the file then.
    const firstSyncParts = kind === 'nodelet' ? syncParts(proc.logFile) : undefined;
    const rssOf = (text: string) => {
      const bytes = gauge(text, 'process_resident_memory_bytes');
      return bytes !== undefined ? fixed(bytes / 1e6, 1) : undefined;
    };
    const rssAfterSamplesMB = rssOf(await scrape(netns, METRICS_PORT));
    // Both should run an IPv6 proxier beside the IPv4 one (see the header): its syncs say it does.
    const ipv6Syncs = histogram(await scrape(netns, METRICS_PORT), SYNC, 'ip_family="IPv6"').count;
    // And at rest: what a node keeps paying between bursts of changes (Go's
    // scavenger returns freed memory in the background, V8 when it finds the proxy idle).
    await sleep(REST_MS);
    const restText = await scrape(netns, METRICS_PORT);
    const rssMB = rssOf(restText);
    const cpu = gauge(restText, 'process_cpu_seconds_total');
    const cpuSeconds = cpu !== undefined ? fixed(cpu, 2) : undefined;
    const run: ProxyRun = {
      proxy: kind,
      backend,
      services,
      firstFullSyncMs: ms(firstFullSyncMs),
      startToSyncedMs: ms(startToSyncedMs),
      ...(natRules !== undefined ? { natRules } : {}),
      ipv6Syncs,
      ...(firstSyncParts ? { firstSyncParts } : {}),
      ...(rssMB !== undefined ? { rssMB } : {}),
      ...(rssAfterSamplesMB !== undefined ? { rssAfterSamplesMB } : {}),
      ...(cpuSeconds !== undefined ? { cpuSeconds } : {}),
      partialSyncMs: partialSyncMs.map(ms),
      changeToProgrammedMs: changeToProgrammedMs.map(ms),
      partial: summarize(partialSyncMs),
      change: summarize(changeToProgrammedMs),
      ...(error !== undefined ? { error } : {}),
    };
    c.log(
      `  ${kind.padEnd(10)} ${backend.padEnd(6)} N=${services}: first full sync ${run.firstFullSyncMs} ms, ` +
        `partial p50 ${run.partial.p50} ms, change->programmed p50 ${run.change.p50} ms` +
        (natRules !== undefined ? `, ${natRules} nat rules` : '') +
        (ipv6Syncs > 0 ? ', dual-stack' : ', IPv4 only') +
        (rssMB !== undefined ? `, RSS ${rssMB} MB at rest (${rssAfterSamplesMB ?? '-'} right after the samples)` : '') +
        (cpuSeconds !== undefined ? `, CPU ${cpuSeconds} s` : '') +
        (firstSyncParts ? ` (first sync: ${Object.entries(firstSyncParts).map(([k, v]) => `${k} ${v}`).join(', ')})` : ''),
    );
    return run;
  } finally {
    await teardown(c, proc, index);
  }
}

/**
 * The timings of the IPv4 proxier's first full sync in a nodelet proxy's JSON
 * log (its info line 'proxy rules synced'; the IPv6 proxier's, of an empty
 * table, usually comes first).
 */
function syncParts(logFile: string): Record<string, number> | undefined {
  for (const line of readFileSync(logFile, 'utf8').split('\n')) {
    if (!line.includes('proxy rules synced')) continue;
    try {
      const rec = JSON.parse(line) as Record<string, unknown>;
      if (rec['full'] !== true || (rec['ipFamily'] !== undefined && rec['ipFamily'] !== 'IPv4')) continue;
      const parts: Record<string, number> = {};
      for (const k of ['saveMs', 'generateMs', 'restoreMs']) if (typeof rec[k] === 'number') parts[k] = rec[k];
      return parts;
    } catch {
      // not a JSON line
    }
  }
  return undefined;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

function timeIt(fn: () => void, times: number): number {
  const out: number[] = [];
  for (let i = 0; i < times; i++) {
    const t = performance.now();
    fn();
    out.push(performance.now() - t);
  }
  return median(out);
}

/**
 * Where nodelet's full sync goes: the pure generator timed here, in-process,
 * on the objects the proxies see; iptables-save of the empty table and
 * iptables-restore of the generated text into a fresh namespace, timed
 * around the commands (as the proxier runs them).
 */
async function breakdown(c: Ctx, services: number): Promise<Breakdown[]> {
  const objs = await listProxied(c);
  const bySvc = new Map<string, V1EndpointSlice[]>();
  for (const sl of objs.slices) {
    const key = serviceKey(sl.metadata?.namespace ?? '', sl.metadata?.labels?.[SERVICE_NAME_LABEL] ?? '');
    bySvc.set(key, [...(bySvc.get(key) ?? []), sl]);
  }
  const epMap = new Map([...bySvc].map(([key, sls]) => [key, endpointsFromSlices(sls, c.node)]));
  const input: RulesInput = {
    services: objs.services.flatMap((s) => servicePortsFromService(s)),
    endpoints: flattenEndpoints(epMap),
    nodeIPs: [],
    localhostNodePorts: true,
    clusterCIDR: c.p.clusterCIDR,
  };
  let full = generateRules(input, { full: true });
  const generateFullMs = timeIt(() => (full = generateRules(input, { full: true })), 3);
  const existing = chainsFromSave(full.nat);
  const changed = new Set([serviceKey(BENCH_NAMESPACE, serviceName(0))]);
  const generatePartialMs = timeIt(() => generateRules(input, { full: false, changedServices: changed, existingChains: existing, previousTop: full.top }), 5);
  const out: Breakdown[] = [];
  for (const backend of BACKENDS) {
    await destroyNode(c.p, NODELET_NODE);
    const netns = (await ensureNode(c.p, NODELET_NODE)).netns;
    try {
      const bin = binariesFor(backend);
      const timed = async (cmd: string, args: string[], input?: string) => {
        const t = performance.now();
        await inNetns(netns, cmd, args, { ...(input !== undefined ? { input } : {}), timeoutMs: 600_000 });
        return performance.now() - t;
      };
      const saveEmptyMs = await timed(bin.save, ['-t', 'nat']);
      const restoreMs = await timed(bin.restore, [...WAIT_FLAGS, '--noflush'], full.nat + full.filter);
      out.push({
        services,
        backend,
        generateFullMs: ms(generateFullMs),
        generatePartialMs: fixed(generatePartialMs, 2),
        natLines: full.nat.split('\n').length,
        saveEmptyMs: ms(saveEmptyMs),
        restoreMs: ms(restoreMs),
      });
    } finally {
      await destroyNode(c.p, NODELET_NODE);
    }
  }
  c.log(`  nodelet breakdown N=${services}: generate full ${ms(generateFullMs)} ms, partial ${fixed(generatePartialMs, 2)} ms; ` +
    out.map((b) => `${b.backend}: restore ${b.restoreMs} ms`).join('; '));
  return out;
}

interface UserspaceResult {
  /** How the proxy moved TCP bytes, from its log: the kernel splice relay or the JS copy. */
  relay: string;
  requests: number;
  bulkSeconds: number;
  bulkRounds: number;
  /** throughputMBps is the median of the rounds. */
  direct: { latencyUs: Omit<Summary, 'samplesMs'>; throughputMBps: number; throughputRoundsMBps: number[] };
  proxied: { latencyUs: Omit<Summary, 'samplesMs'>; throughputMBps: number; throughputRoundsMBps: number[] };
  addedP99Us: number;
  throughputRatio: number;
  target: { ratio: number; pass: boolean };
}

async function userspaceBench(c: Ctx): Promise<UserspaceResult> {
  await destroyNode(c.p, USERSPACE_NODE);
  const netns = (await ensureNode(c.p, USERSPACE_NODE)).netns;
  const podIP = endpointIP(c.p.clusterCIDR, 62_400); // a.b.251.151: no bench service uses it
  await exec('ip', ['-n', netns, 'addr', 'add', `${podIP}/32`, 'dev', 'lo']);
  const server = startInNetns('echo server', netns, process.execPath,
    [path.join(repoRoot, 'bench', 'proxy', 'echo-server.ts'), podIP, String(USERSPACE_POD_PORTS.echo), String(USERSPACE_POD_PORTS.sink), c.p.stateDir],
    path.join(c.logDir, 'userspace-server.log'));
  c.procs.add(server);
  const name = 'userspace-echo';
  let proxy: Proc | undefined;
  try {
    const svc = benchService(name);
    svc.spec!.ports = [
      { name: 'echo', port: 80, targetPort: USERSPACE_POD_PORTS.echo, protocol: 'TCP' },
      { name: 'sink', port: 81, targetPort: USERSPACE_POD_PORTS.sink, protocol: 'TCP' },
    ];
    const created = await c.core.createNamespacedService({ namespace: BENCH_NAMESPACE, body: svc }, c.opts);
    const clusterIP = created.spec?.clusterIP ?? '';
    const slice = benchSlice(name, [podIP]);
    slice.ports = [
      { name: 'echo', port: USERSPACE_POD_PORTS.echo, protocol: 'TCP' },
      { name: 'sink', port: USERSPACE_POD_PORTS.sink, protocol: 'TCP' },
    ];
    await c.disc.createNamespacedEndpointSlice({ namespace: BENCH_NAMESPACE, body: slice }, c.opts);
    proxy = startProxy(c, 'nodelet', 'nft', netns, 'userspace');
    const client = (host: string, echo: number, sink: number, reqs: number, secs: number) =>
      inNetns(netns, process.execPath, [path.join(repoRoot, 'bench', 'proxy', 'load-client.ts'), host, String(echo), String(sink), String(reqs), String(secs), c.p.stateDir], {
        timeoutMs: 300_000,
        allowFail: true,
      });
    // Ready when a request through the cluster IP gets its echo.
    const deadline = Date.now() + 60_000;
    for (;;) {
      c.check();
      if (!running(proxy)) throw new Error(`userspace proxy exited: ${logTail(proxy)}`);
      const r = await client(clusterIP, 80, 81, 1, 0);
      if (r.code === 0) break;
      if (Date.now() > deadline) throw new Error(`userspace proxy never served ${clusterIP}:80: ${r.stderr.trim().slice(-300)} ${logTail(proxy)}`);
      await sleep(300);
    }
    const load = async (host: string, echo: number, sink: number, reqs: number, secs: number) => {
      const r = await client(host, echo, sink, reqs, secs);
      if (r.code !== 0) throw new Error(`load client against ${host}: ${r.stderr.trim().slice(-500)}`);
      return JSON.parse(r.stdout) as { latencyMs: number[]; bulk: { bytes: number; seconds: number } };
    };
    const latency = async (host: string, echo: number, sink: number) => {
      const res = await load(host, echo, sink, USERSPACE_REQUESTS, 0);
      // In microseconds: loopback requests take well under a millisecond. Samples are left out (2000 of them).
      const { samplesMs: _, ...latencyUs } = summarize(res.latencyMs.map((x) => x * 1000));
      return latencyUs;
    };
    const bulk = async (host: string, echo: number, sink: number) => {
      const { bulk: b } = await load(host, echo, sink, 0, USERSPACE_BULK_SECONDS);
      return round(b.bytes / b.seconds / 1e6);
    };
    // Bulk rounds alternate direct and proxied, and each side's median counts: one window
    // of either can be off by a third on this 2-core machine.
    const rounds = { direct: [] as number[], proxied: [] as number[] };
    for (let i = 0; i < USERSPACE_BULK_ROUNDS; i++) {
      c.check();
      rounds.direct.push(await bulk(podIP, USERSPACE_POD_PORTS.echo, USERSPACE_POD_PORTS.sink));
      rounds.proxied.push(await bulk(clusterIP, 80, 81));
    }
    const side = async (host: string, echo: number, sink: number, mbps: number[]) => ({
      latencyUs: await latency(host, echo, sink),
      throughputMBps: median(mbps),
      throughputRoundsMBps: mbps,
    });
    const direct = await side(podIP, USERSPACE_POD_PORTS.echo, USERSPACE_POD_PORTS.sink, rounds.direct);
    const proxied = await side(clusterIP, 80, 81, rounds.proxied);
    const throughputRatio = fixed(proxied.throughputMBps / direct.throughputMBps, 3);
    const relay = /"relay":"(\w+)"/.exec(readFileSync(proxy.logFile, 'utf8'))?.[1] ?? 'unknown';
    const result = {
      relay,
      requests: USERSPACE_REQUESTS,
      bulkSeconds: USERSPACE_BULK_SECONDS,
      bulkRounds: USERSPACE_BULK_ROUNDS,
      direct,
      proxied,
      addedP99Us: round(proxied.latencyUs.p99 - direct.latencyUs.p99),
      throughputRatio,
      target: { ratio: USERSPACE_TARGET, pass: throughputRatio >= USERSPACE_TARGET },
    };
    c.log(`  userspace (${relay} relay): bulk MB/s direct ${rounds.direct.join(', ')}; proxied ${rounds.proxied.join(', ')}`);
    c.log(`  userspace (${relay} relay): direct ${direct.throughputMBps} MB/s p99 ${direct.latencyUs.p99} us; proxied ${proxied.throughputMBps} MB/s p99 ${proxied.latencyUs.p99} us`);
    return result;
  } finally {
    if (proxy) await stop(c, proxy);
    await stop(c, server);
    await deleteServiceWithSlice(c, name).catch(() => undefined);
    await destroyNode(c.p, USERSPACE_NODE);
  }
}

function printTable(rows: string[][]): void {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  for (const r of rows) console.log(r.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join('  '));
}

interface Measured {
  kpVersion?: string;
  iptVersion?: string;
  userspace?: UserspaceResult;
  runs: ProxyRun[];
  breakdowns: Breakdown[];
  creation: Array<{ services: number; created: number; seconds: number }>;
}

/**
 * Table on stdout, JSON and plot under bench/results/. Called with whatever
 * was measured, also after a failure or an interrupt (then `error` says why
 * and only the sizes every run finished for are compared).
 */
function report(p: ClusterProfile, m: Measured, t0: number, error?: string): void {
  const { runs, breakdowns, creation, userspace, kpVersion, iptVersion } = m;
  const find = (kind: ProxyKind, b: Backend, n: number) => runs.find((r) => r.proxy === kind && r.backend === b && r.services === n)!;
  const sizes = SIZES.filter((n) => BACKENDS.every((b) => find('nodelet', b, n) && find('kube-proxy', b, n)));
  const rows: string[][] = [['metric', 'nodelet', 'kube-proxy', 'ratio', 'target']];
  const verdicts: Array<{ metric: string; nodelet: number; kubeProxy: number; ratio: number; pass: boolean; lowerBound?: boolean }> = [];
  // A run whose first sync timed out has a lower bound (shown as "> x", its ratio as "< y") and no samples.
  const add = (metric: string, a: ProxyRun, b: ProxyRun, value: (r: ProxyRun) => number) => {
    if (!a.firstSyncTimedOut && !b.firstSyncTimedOut && (Number.isNaN(value(a)) || Number.isNaN(value(b)))) return;
    const [x, y] = [value(a), value(b)];
    const ratio = x / y;
    const pass = !a.firstSyncTimedOut && x <= y;
    const lower = (r: ProxyRun, v: number) => (r.firstSyncTimedOut ? `> ${v}` : String(v));
    verdicts.push({ metric, nodelet: x, kubeProxy: y, ratio: fixed(ratio, 3), pass, ...(a.firstSyncTimedOut || b.firstSyncTimedOut ? { lowerBound: true } : {}) });
    const r = ratio.toFixed(2);
    rows.push([metric, lower(a, x), lower(b, y), b.firstSyncTimedOut && !a.firstSyncTimedOut ? `< ${r}` : r, pass ? 'PASS' : 'FAIL']);
  };
  const sampled = (r: ProxyRun) => !r.firstSyncTimedOut;
  for (const b of BACKENDS) {
    for (const n of sizes) add(`${b} full sync ms, N=${n}`, find('nodelet', b, n), find('kube-proxy', b, n), (r) => r.firstFullSyncMs);
    for (const n of sizes.filter((n) => sampled(find('nodelet', b, n)) && sampled(find('kube-proxy', b, n)))) {
      add(`${b} partial sync p50 ms, N=${n}`, find('nodelet', b, n), find('kube-proxy', b, n), (r) => r.partial.p50);
    }
    for (const n of sizes.filter((n) => sampled(find('nodelet', b, n)) && sampled(find('kube-proxy', b, n)))) {
      add(`${b} change->programmed p50 ms, N=${n}`, find('nodelet', b, n), find('kube-proxy', b, n), (r) => r.change.p50);
    }
  }
  console.log('');
  printTable(rows);
  console.log('');
  const info: string[][] = [['nodelet full sync parts (ms)', 'N', 'generate', 'gen partial', 'save', 'restore']];
  for (const bd of breakdowns) {
    info.push([bd.backend, String(bd.services), String(bd.generateFullMs), String(bd.generatePartialMs), String(bd.saveEmptyMs), String(bd.restoreMs)]);
  }
  printTable(info);
  console.log('');
  const startRows: string[][] = [['start -> first sync done (ms)', 'N', 'nodelet', 'kube-proxy', 'nat rules nodelet', 'nat rules kube-proxy', 'RSS MB nodelet', 'RSS MB kube-proxy', 'CPU s nodelet', 'CPU s kube-proxy']];
  for (const b of BACKENDS) {
    for (const n of sizes) {
      const a = find('nodelet', b, n);
      const k = find('kube-proxy', b, n);
      startRows.push([b, String(n), String(a.startToSyncedMs), String(k.startToSyncedMs), String(a.natRules ?? '-'), String(k.natRules ?? '-'), String(a.rssMB ?? '-'), String(k.rssMB ?? '-'), String(a.cpuSeconds ?? '-'), String(k.cpuSeconds ?? '-')]);
    }
  }
  printTable(startRows);
  console.log('');
  if (userspace) {
    const { direct, proxied } = userspace;
    printTable([
      [`userspace mode (${userspace.relay} relay)`, 'direct', 'via proxy', 'ratio'],
      ['throughput MB/s', String(direct.throughputMBps), String(proxied.throughputMBps), userspace.throughputRatio.toFixed(2)],
      ['request p50 us', String(direct.latencyUs.p50), String(proxied.latencyUs.p50), (proxied.latencyUs.p50 / direct.latencyUs.p50).toFixed(2)],
      ['request p99 us', String(direct.latencyUs.p99), String(proxied.latencyUs.p99), (proxied.latencyUs.p99 / direct.latencyUs.p99).toFixed(2)],
    ]);
    console.log(
      `userspace: added p99 ${userspace.addedP99Us} us; throughput ${(userspace.throughputRatio * 100).toFixed(0)}% of direct, ` +
        `target >= ${USERSPACE_TARGET * 100}%: ${userspace.target.pass ? 'PASS' : 'FAIL'}`,
    );
  }
  const failed = verdicts.filter((v) => !v.pass);
  console.log(`nodelet <= kube-proxy: ${verdicts.length - failed.length}/${verdicts.length} PASS` + (failed.length ? ` (FAIL: ${failed.map((f) => f.metric).join('; ')})` : ''));

  const timestamp = new Date().toISOString();
  const result = {
    benchmark: 'proxy',
    timestamp,
    profile: p.name,
    host: { cpus: os.cpus().length, kernel: os.release(), node: process.version, kubeProxy: kpVersion, iptables: iptVersion },
    sizes,
    sizesAsked: SIZES,
    complete: error === undefined,
    ...(error !== undefined ? { error } : {}),
    endpointsPerService: 5,
    backends: BACKENDS,
    percentiles: 'nearest-rank',
    method: {
      fullSync: 'first sync into an empty netns; each proxy\'s own kubeproxy_sync_full_proxy_rules_duration_seconds',
      partialSync: `${PARTIAL_SAMPLES} x one endpoint of one slice changed; kubeproxy_sync_partial_proxy_rules_duration_seconds delta`,
      changeToProgrammed: `${CHANGE_SAMPLES} x create Service + EndpointSlice, poll iptables -t nat -S KUBE-SVC-… every ${POLL_MS} ms`,
      minSyncPeriod: 'default 1 s for both',
      rss: `process_resident_memory_bytes from each proxy's /metrics ${REST_MS / 1000} s after the last sample's sync (rssAfterSamplesMB: right after it)`,
      cpu: 'process_cpu_seconds_total from the same scrape: the proxy process\'s CPU from its start through the samples (not its iptables/nft children)',
      ipFamilies: 'both dual-stack (ip6tables on kube-proxy\'s PATH too); IPv4 series read',
    },
    creation,
    runs,
    nodeletBreakdown: breakdowns,
    verdicts,
    ...(userspace ? { userspace } : {}),
    totalMs: ms(performance.now() - t0),
  };
  const dir = path.join(repoRoot, 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  const json = JSON.stringify(result, null, 2) + '\n';
  const stamp = timestamp.replace(/:/g, '-');
  writeFileSync(path.join(dir, `proxy-${stamp}.json`), json);
  writeFileSync(path.join(dir, 'proxy-latest.json'), json);
  const colors: Record<ProxyKind, RGB> = { nodelet: COLORS.nodelet, 'kube-proxy': COLORS.upstream };
  const png = linePlot(
    BACKENDS.map((b) => ({
      title: `iptables-${b}: full sync (s) vs services`,
      series: (['nodelet', 'kube-proxy'] as const).map((kind) => ({
        label: kind,
        color: colors[kind],
        points: sizes.map((n) => [n, find(kind, b, n).firstFullSyncMs / 1000] as const),
      })),
    })),
    { xLabel: 'services', yLabel: 'seconds' },
  );
  writeFileSync(path.join(dir, `proxy-${stamp}.png`), png);
  writeFileSync(path.join(dir, 'proxy-latest.png'), png);
  console.log(`wrote bench/results/proxy-${stamp}.json, proxy-latest.json, proxy-${stamp}.png, proxy-latest.png`);
}

async function main(): Promise<number> {
  const t0 = performance.now();
  const p = profileByName(PROFILE);
  const log = (m: string) => console.log(m);
  let interrupted = false;
  const onSignal = () => {
    interrupted = true;
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const procs = new Set<Proc>();
  const logDir = path.join(p.stateDir, 'bench-proxy');
  const m: Measured = { runs: [], breakdowns: [], creation: [] };
  try {
    // No nodelet proxy on node 1: it would sync every bench service beside the measured proxy.
    const cluster = await clusterUp(p, { nodes: 1, proxy: false, log: (m) => log(`[up] ${m}`) });
    const kc = new k8s.KubeConfig();
    kc.loadFromFile(cluster.paths.adminKubeconfig);
    mkdirSync(logDir, { recursive: true });
    const c: Ctx = {
      p,
      core: kc.makeApiClient(k8s.CoreV1Api),
      disc: kc.makeApiClient(k8s.DiscoveryV1Api),
      opts: {},
      proxyKubeconfig: kubeconfigPath(p, 'kube-proxy'),
      kubeProxyBin: path.join(await upstreamBinDir(), 'kube-proxy'),
      logDir,
      srcRoot: snapshotSource(repoRoot, logDir),
      binDirs: makeBinDirs(logDir),
      node: nodeName(p, 1),
      procs,
      check: () => {
        if (interrupted) throw new Interrupted('interrupted');
      },
      log,
    };
    const kpVersion = (m.kpVersion = (await exec(c.kubeProxyBin, ['--version'])).stdout.trim());
    const iptVersion = (m.iptVersion = (await exec('iptables-nft', ['--version'])).stdout.trim());
    log(`proxy bench: profile ${p.name}, ${kpVersion}, ${iptVersion}, sizes ${SIZES.join(', ')}, backends ${BACKENDS.join(', ')}`);
    try {
      await c.core.createNamespace({ body: { metadata: { name: BENCH_NAMESPACE } } }, c.opts);
    } catch (err) {
      if (!isConflict(err)) throw err;
    }

    const quiet = async () => {
      const q = await waitQuiet();
      log(`  machine quiet after ${(q.waitedMs / 1000).toFixed(1)} s (${(q.busy * 100).toFixed(0)} % busy)`);
    };
    log('userspace mode:');
    // Right after start-up the control plane's controllers are still busy, and on 2 cores the
    // proxied side (client, relay, sink) loses more to them than the direct side (client, sink).
    await quiet();
    m.userspace = await userspaceBench(c);

    const { runs, breakdowns, creation } = m;
    for (const [sizeIndex, n] of SIZES.entries()) {
      c.check();
      log(`N=${n}: creating services`);
      const made = await ensureServices(c, n, (i) => serviceEndpoints(c.p.clusterCIDR, i), { concurrency: CREATE_CONCURRENCY, check: c.check, log: c.log });
      creation.push({ services: n, ...made });
      log(`  ${made.created} services + slices created in ${made.seconds} s`);
      // Before either proxy starts: the first restore of a table this size after the
      // services were made came out 10-25 % slower, for whichever proxy it was
      // (results 20-21-10 to 22-34-56: the first start of a size was the slowest of
      // its four in 6 of 10 sizes, and slower than the same proxy's other start in 9
      // of 10). The breakdown's scratch restores take that.
      breakdowns.push(...(await breakdown(c, n)));
      for (const [backendIndex, backend] of BACKENDS.entries()) {
        // Each proxy goes first in turn, by size and by backend, and each starts on a quiet machine.
        const kinds = (sizeIndex + backendIndex) % 2 === 0 ? (['nodelet', 'kube-proxy'] as const) : (['kube-proxy', 'nodelet'] as const);
        const pair: ProxyRun[] = [];
        for (const kind of kinds) {
          await quiet();
          const run = await measureProxy(c, kind, backend, n);
          runs.push(run); // kept for the report even if what follows fails
          pair.push(run);
        }
        // On legacy a start is seconds: each proxy starts once more, in the other order.
        // (nf_tables first syncs differ between the two by 2-9x, and take kube-proxy minutes.)
        if (backend === 'legacy') {
          for (const run of [...pair].reverse()) {
            await quiet();
            await repeatFirstSync(c, run);
          }
        }
      }
    }

    report(p, m, t0);
    return 0;
  } catch (err) {
    // An API refusal says why in its body (a 422 names the invalid field).
    const why = err instanceof k8s.ApiException ? `${describeError(err)}: ${String(JSON.stringify(err.body)).slice(0, 600)}` : describeError(err);
    console.error(`proxy bench failed: ${why}`);
    if (m.userspace || m.runs.length > 0) {
      try {
        report(p, m, t0, why);
      } catch (e) {
        console.error(`report of the partial results failed: ${describeError(e)}`);
      }
    }
    return 1;
  } finally {
    for (const proc of procs) await stopProc(proc).catch(() => undefined);
    for (const i of [NODELET_NODE, KUBEPROXY_NODE, USERSPACE_NODE]) {
      await destroyNode(p, i).catch((err) => console.error(`destroyNode ${i}: ${describeError(err)}`));
    }
    if (process.env.NODELET_BENCH_KEEP === '1') console.log(`cluster ${p.name} kept (NODELET_BENCH_KEEP=1)`);
    else await clusterDown(p, { log }).catch((err) => console.error(`clusterDown: ${describeError(err)}`)); // logDir goes with stateDir
    console.log(`total ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  }
}

process.exitCode = await main();
