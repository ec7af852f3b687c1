// GET /stats/summary: the Summary API (upstream pkg/kubelet/apis/stats/v1alpha1)
// that `kubectl get --raw .../proxy/stats/summary` and older metrics-server
// read: CPU, memory, network and filesystem for the node, each pod and each
// container. buildSummary is pure; the /proc and statfs readers below it are
// the I/O. Rates (usageNanoCores) need two samples, so a CpuRates instance
// lives as long as the server, as upstream's CRI stats provider cache does.
import { readdirSync, readFileSync, statfsSync } from 'node:fs';
import type { ContainerStats } from '../../cri/api.ts';
import { parseNodeUsage } from './resourcemetrics.ts';

export interface CpuStats {
  time: string;
  usageNanoCores?: number;
  usageCoreNanoSeconds: number;
}

export interface MemoryStats {
  time: string;
  availableBytes?: number;
  usageBytes: number;
  workingSetBytes: number;
  rssBytes: number;
  pageFaults: number;
  majorPageFaults: number;
}

export interface InterfaceStats {
  name: string;
  rxBytes: number;
  rxErrors: number;
  txBytes: number;
  txErrors: number;
}

export interface NetworkStats extends InterfaceStats {
  time: string;
  interfaces: InterfaceStats[];
}

export interface FsStats {
  time: string;
  availableBytes?: number;
  capacityBytes?: number;
  usedBytes?: number;
  inodesFree?: number;
  inodes?: number;
  inodesUsed?: number;
}

export interface ContainerSummary {
  name: string;
  startTime: string;
  cpu?: CpuStats;
  memory?: MemoryStats;
  rootfs?: FsStats;
  logs?: FsStats;
}

export interface PodSummary {
  podRef: { name: string; namespace: string; uid: string };
  startTime: string;
  containers: ContainerSummary[];
  cpu?: CpuStats;
  memory?: MemoryStats;
  network?: NetworkStats;
  'ephemeral-storage'?: FsStats;
}

export interface NodeSummary {
  nodeName: string;
  startTime: string;
  cpu?: CpuStats;
  memory?: MemoryStats;
  network?: NetworkStats;
  fs?: FsStats;
  runtime?: { imageFs?: FsStats; containerFs?: FsStats };
  rlimit?: { time: string; maxpid?: number; curproc?: number };
}

export interface Summary {
  node: NodeSummary;
  pods: PodSummary[];
}

/** A filesystem as statfs sees it, without a time. */
export interface FsCapacity {
  capacityBytes: number;
  availableBytes: number;
  usedBytes: number;
  inodes: number;
  inodesFree: number;
}

export interface NodeMemory {
  totalBytes: number;
  freeBytes: number;
  availableBytes: number;
  rssBytes: number;
  pageFaults: number;
  majorPageFaults: number;
}

export interface NodeInput {
  bootTimeMs: number;
  cpuCoreNanoSeconds?: number;
  memory?: NodeMemory;
  interfaces?: InterfaceStats[];
  fs?: FsCapacity;
  /** Capacity of the image filesystem and what images and writable layers use of it. */
  imageFs?: { capacity?: FsCapacity; imagesBytes: number; containersBytes: number };
  rlimit?: { maxpid?: number; curproc?: number };
}

export interface ContainerInput {
  name: string;
  startedAtMs?: number;
  stats?: ContainerStats;
  logsBytes?: number;
}

export interface PodInput {
  name: string;
  namespace: string;
  uid: string;
  startTimeMs?: number;
  containers: ContainerInput[];
  interfaces?: InterfaceStats[];
}

export interface SummaryInput {
  nodeName: string;
  nowMs: number;
  node: NodeInput;
  pods: PodInput[];
  /** ?only_cpu_and_memory=true: leave out network and filesystems. */
  onlyCpuAndMemory?: boolean;
}

/** metav1.Time's JSON: RFC 3339 in whole seconds. */
export const rfc3339 = (ms: number): string => new Date(Math.floor(ms / 1000) * 1000).toISOString().replace('.000Z', 'Z');

/**
 * usageNanoCores from two cumulative samples. The first sample of a key, a
 * counter that went backwards (a restarted container) or no time passing give
 * undefined; keys not seen in a round are forgotten by `retain`.
 */
export class CpuRates {
  private readonly prev = new Map<string, { tsNs: number; usageNs: number }>();
  /** The last rate per key, answered again for a repeated sample (two scrapes within one stats period). */
  private readonly last = new Map<string, number>();

  rate(key: string, tsNs: number, usageNs: number): number | undefined {
    const p = this.prev.get(key);
    if (p && tsNs === p.tsNs) return this.last.get(key);
    this.prev.set(key, { tsNs, usageNs });
    if (!p || tsNs < p.tsNs || usageNs < p.usageNs) {
      this.last.delete(key);
      return undefined;
    }
    const r = Math.round(((usageNs - p.usageNs) / (tsNs - p.tsNs)) * 1e9);
    this.last.set(key, r);
    return r;
  }

  retain(keys: ReadonlySet<string>): void {
    for (const k of this.prev.keys()) if (!keys.has(k)) this.prev.delete(k);
    for (const k of this.last.keys()) if (!keys.has(k)) this.last.delete(k);
  }
}

function fsStats(time: string, c: FsCapacity): FsStats {
  return { time, availableBytes: c.availableBytes, capacityBytes: c.capacityBytes, usedBytes: c.usedBytes, inodesFree: c.inodesFree, inodes: c.inodes, inodesUsed: c.inodes - c.inodesFree };
}

/** Upstream reports eth0 as the pod's and node's interface when there is one; otherwise the first non-loopback one. */
function networkStats(time: string, ifaces: readonly InterfaceStats[]): NetworkStats | undefined {
  const list = ifaces.filter((i) => i.name !== 'lo');
  const main = list.find((i) => i.name === 'eth0') ?? list[0];
  if (!main) return undefined;
  return { time, ...main, interfaces: list };
}

function sumCpu(parts: readonly CpuStats[], time: string): CpuStats | undefined {
  if (parts.length === 0) return undefined;
  const rated = parts.every((p) => p.usageNanoCores !== undefined);
  return {
    time,
    ...(rated ? { usageNanoCores: parts.reduce((a, p) => a + (p.usageNanoCores ?? 0), 0) } : {}),
    usageCoreNanoSeconds: parts.reduce((a, p) => a + p.usageCoreNanoSeconds, 0),
  };
}

function sumMemory(parts: readonly MemoryStats[], time: string): MemoryStats | undefined {
  if (parts.length === 0) return undefined;
  const sum = (f: (m: MemoryStats) => number) => parts.reduce((a, m) => a + f(m), 0);
  return {
    time,
    usageBytes: sum((m) => m.usageBytes),
    workingSetBytes: sum((m) => m.workingSetBytes),
    rssBytes: sum((m) => m.rssBytes),
    pageFaults: sum((m) => m.pageFaults),
    majorPageFaults: sum((m) => m.majorPageFaults),
  };
}

const nsToMs = (ns: number): number => Math.floor(ns / 1e6);

function containerSummary(c: ContainerInput, nowMs: number, rates: CpuRates, only: boolean, seen: Set<string>): ContainerSummary {
  const out: ContainerSummary = { name: c.name, startTime: rfc3339(c.startedAtMs ?? nowMs) };
  const s = c.stats;
  if (s?.cpu) {
    const key = `container/${s.attributes.id}`;
    seen.add(key);
    const r = rates.rate(key, s.cpu.timestamp, s.cpu.usageCoreNanoSeconds);
    out.cpu = { time: rfc3339(nsToMs(s.cpu.timestamp)), ...(r !== undefined ? { usageNanoCores: r } : {}), usageCoreNanoSeconds: s.cpu.usageCoreNanoSeconds };
  }
  if (s?.memory) {
    const m = s.memory;
    out.memory = { time: rfc3339(nsToMs(m.timestamp)), usageBytes: m.usageBytes, workingSetBytes: m.workingSetBytes, rssBytes: m.rssBytes, pageFaults: m.pageFaults, majorPageFaults: m.majorPageFaults };
  }
  if (only) return out;
  if (s?.writableLayer) {
    out.rootfs = { time: rfc3339(nsToMs(s.writableLayer.timestamp)), usedBytes: s.writableLayer.usedBytes, ...(s.writableLayer.inodesUsed !== undefined ? { inodesUsed: s.writableLayer.inodesUsed } : {}) };
  }
  if (c.logsBytes !== undefined) out.logs = { time: rfc3339(nowMs), usedBytes: c.logsBytes };
  return out;
}

export function buildSummary(input: SummaryInput, rates: CpuRates): Summary {
  const { nowMs, node: n } = input;
  const only = input.onlyCpuAndMemory ?? false;
  const time = rfc3339(nowMs);
  const seen = new Set<string>();
  const node: NodeSummary = { nodeName: input.nodeName, startTime: rfc3339(n.bootTimeMs) };
  if (n.cpuCoreNanoSeconds !== undefined) {
    seen.add('node');
    const r = rates.rate('node', nowMs * 1e6, n.cpuCoreNanoSeconds);
    node.cpu = { time, ...(r !== undefined ? { usageNanoCores: r } : {}), usageCoreNanoSeconds: n.cpuCoreNanoSeconds };
  }
  if (n.memory) {
    const m = n.memory;
    node.memory = {
      time,
      availableBytes: m.availableBytes,
      usageBytes: m.totalBytes - m.freeBytes,
      workingSetBytes: m.totalBytes - m.availableBytes,
      rssBytes: m.rssBytes,
      pageFaults: m.pageFaults,
      majorPageFaults: m.majorPageFaults,
    };
  }
  if (!only) {
    const net = n.interfaces ? networkStats(time, n.interfaces) : undefined;
    if (net) node.network = net;
    if (n.fs) node.fs = fsStats(time, n.fs);
    if (n.imageFs) {
      const cap = n.imageFs.capacity;
      const base = cap ? fsStats(time, cap) : { time };
      node.runtime = {
        imageFs: { ...base, usedBytes: n.imageFs.imagesBytes },
        containerFs: { ...base, usedBytes: n.imageFs.containersBytes },
      };
    }
    if (n.rlimit) node.rlimit = { time, ...n.rlimit };
  }

  const pods: PodSummary[] = input.pods.map((p) => {
    const containers = p.containers.map((c) => containerSummary(c, nowMs, rates, only, seen));
    const out: PodSummary = { podRef: { name: p.name, namespace: p.namespace, uid: p.uid }, startTime: rfc3339(p.startTimeMs ?? nowMs), containers };
    const cpu = sumCpu(containers.flatMap((c) => (c.cpu ? [c.cpu] : [])), time);
    if (cpu) out.cpu = cpu;
    const mem = sumMemory(containers.flatMap((c) => (c.memory ? [c.memory] : [])), time);
    if (mem) out.memory = mem;
    if (!only) {
      const net = p.interfaces ? networkStats(time, p.interfaces) : undefined;
      if (net) out.network = net;
      // Ephemeral storage: writable layers plus logs (upstream adds emptyDir volumes, which we do not measure).
      const used = containers.reduce((a, c) => a + (c.rootfs?.usedBytes ?? 0) + (c.logs?.usedBytes ?? 0), 0);
      if (containers.some((c) => c.rootfs || c.logs)) out['ephemeral-storage'] = { time, usedBytes: used };
    }
    return out;
  });
  rates.retain(seen);
  return { node, pods };
}

// ---- /proc and statfs ------------------------------------------------------

/** /proc/net/dev (a network namespace's counters). */
export function parseNetDev(text: string): InterfaceStats[] {
  const out: InterfaceStats[] = [];
  for (const line of text.split('\n').slice(2)) {
    const m = /^\s*([^:\s]+):\s*(.*)$/.exec(line);
    if (!m) continue;
    const f = m[2]!.trim().split(/\s+/).map(Number);
    if (f.length < 16 || f.some((x) => Number.isNaN(x))) continue;
    out.push({ name: m[1]!, rxBytes: f[0]!, rxErrors: f[2]!, txBytes: f[8]!, txErrors: f[10]! });
  }
  return out;
}

export function parseMeminfo(meminfo: string, vmstat: string): NodeMemory | undefined {
  const kb = (key: string) => {
    const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(meminfo);
    return m ? Number(m[1]) * 1024 : undefined;
  };
  const vm = (key: string) => Number(new RegExp(`^${key} (\\d+)$`, 'm').exec(vmstat)?.[1] ?? 0);
  const total = kb('MemTotal');
  const free = kb('MemFree');
  const available = kb('MemAvailable');
  if (total === undefined || free === undefined || available === undefined) return undefined;
  return { totalBytes: total, freeBytes: free, availableBytes: available, rssBytes: kb('AnonPages') ?? 0, pageFaults: vm('pgfault'), majorPageFaults: vm('pgmajfault') };
}

/** btime of /proc/stat, in ms. */
export function parseBootTime(stat: string): number | undefined {
  const s = /^btime (\d+)$/m.exec(stat)?.[1];
  return s ? Number(s) * 1000 : undefined;
}

const readText = (file: string): string | undefined => {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
};

export function statFs(dir: string): FsCapacity | undefined {
  try {
    const s = statfsSync(dir);
    return {
      capacityBytes: s.blocks * s.bsize,
      availableBytes: s.bavail * s.bsize,
      usedBytes: (s.blocks - s.bfree) * s.bsize,
      inodes: s.files,
      inodesFree: s.ffree,
    };
  } catch {
    return undefined;
  }
}

/** The node's CPU, memory, network (this process's network namespace: the node's), root filesystem and process limits. */
export function readNodeInput(rootDir: string, nowMs: number): Omit<NodeInput, 'imageFs'> {
  const stat = readText('/proc/stat') ?? '';
  const meminfo = readText('/proc/meminfo') ?? '';
  const usage = parseNodeUsage(stat, meminfo, nowMs);
  const out: Omit<NodeInput, 'imageFs'> = { bootTimeMs: parseBootTime(stat) ?? nowMs };
  if (usage) out.cpuCoreNanoSeconds = Math.round(usage.cpuCoreSeconds * 1e9);
  const mem = parseMeminfo(meminfo, readText('/proc/vmstat') ?? '');
  if (mem) out.memory = mem;
  const net = readText('/proc/self/net/dev');
  if (net) out.interfaces = parseNetDev(net);
  const fs = statFs(rootDir);
  if (fs) out.fs = fs;
  const maxpid = Number(readText('/proc/sys/kernel/pid_max')?.trim());
  let curproc: number | undefined;
  try {
    curproc = readdirSync('/proc').filter((d) => /^\d+$/.test(d)).length;
  } catch {
    curproc = undefined;
  }
  out.rlimit = { ...(Number.isFinite(maxpid) && maxpid > 0 ? { maxpid } : {}), ...(curproc !== undefined ? { curproc } : {}) };
  return out;
}

/**
 * A pod's network counters, read from /proc/PID/net/dev of a process in its
 * sandbox. The CRI gives no PID, so the sandbox's process is found by its
 * container ID in /proc/PID/cgroup (Docker names the cgroup after it), and
 * remembered while it lives.
 */
export class ProcPodNetwork {
  private pids = new Map<string, number>();
  private readonly proc: string;

  constructor(proc = '/proc') {
    this.proc = proc;
  }

  read(sandboxIds: readonly string[]): Map<string, InterfaceStats[]> {
    const out = new Map<string, InterfaceStats[]>();
    const want = new Set(sandboxIds);
    for (const id of this.pids.keys()) if (!want.has(id)) this.pids.delete(id);
    const missing = sandboxIds.filter((id) => {
      const pid = this.pids.get(id);
      return pid === undefined || !(readText(`${this.proc}/${pid}/cgroup`) ?? '').includes(id);
    });
    if (missing.length) this.scan(missing);
    for (const id of sandboxIds) {
      const pid = this.pids.get(id);
      const text = pid !== undefined ? readText(`${this.proc}/${pid}/net/dev`) : undefined;
      if (text) out.set(id, parseNetDev(text));
    }
    return out;
  }

  private scan(ids: readonly string[]): void {
    let entries: string[];
    try {
      entries = readdirSync(this.proc).filter((d) => /^\d+$/.test(d));
    } catch {
      return;
    }
    const left = new Set(ids);
    for (const d of entries) {
      if (left.size === 0) break;
      const cg = readText(`${this.proc}/${d}/cgroup`);
      if (!cg) continue;
      for (const id of left) {
        if (cg.includes(id)) {
          this.pids.set(id, Number(d));
          left.delete(id);
          break;
        }
      }
    }
  }
}
