// GET /metrics/resource: the small, stable set of usage metrics that
// metrics-server scrapes (upstream pkg/kubelet/metrics/collectors/
// resource_metrics.go): node, pod and container CPU time and working set,
// container start time, and scrape_error. Samples carry the time they were
// measured at, as upstream's do.
import { readFileSync } from 'node:fs';
import type { ContainerStats } from '../../cri/api.ts';
import { LABEL_CONTAINER_NAME, LABEL_POD_NAME, LABEL_POD_NAMESPACE, LABEL_POD_UID } from '../../cri/labels.ts';

export interface NodeUsage {
  timestampMs: number;
  cpuCoreSeconds: number;
  memoryWorkingSetBytes: number;
}

export interface ContainerUsage {
  container: string;
  pod: string;
  namespace: string;
  podUid: string;
  timestampMs: number;
  cpuCoreSeconds?: number;
  memoryWorkingSetBytes?: number;
  /** Seconds since the epoch; undefined when unknown. */
  startTimeSeconds?: number;
}

/** Usage of the containers the runtime reports; stats without pod labels (not ours) are skipped. */
export function containerUsage(stats: readonly ContainerStats[], startedAtNs: (id: string) => number | undefined): ContainerUsage[] {
  const out: ContainerUsage[] = [];
  for (const s of stats) {
    const l = s.attributes.labels;
    const container = l[LABEL_CONTAINER_NAME];
    const pod = l[LABEL_POD_NAME];
    const namespace = l[LABEL_POD_NAMESPACE];
    if (!container || !pod || !namespace) continue;
    const ts = Math.max(s.cpu?.timestamp ?? 0, s.memory?.timestamp ?? 0);
    const u: ContainerUsage = { container, pod, namespace, podUid: l[LABEL_POD_UID] ?? '', timestampMs: Math.floor(ts / 1e6) };
    if (s.cpu) u.cpuCoreSeconds = s.cpu.usageCoreNanoSeconds / 1e9;
    if (s.memory) u.memoryWorkingSetBytes = s.memory.workingSetBytes;
    const started = startedAtNs(s.attributes.id);
    if (started) u.startTimeSeconds = started / 1e9;
    out.push(u);
  }
  return out;
}

function esc(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

const num = (v: number): string => String(v);

/** Prometheus text exposition of the resource metrics (families in upstream's order). */
export function renderResourceMetrics(node: NodeUsage | undefined, containers: readonly ContainerUsage[], scrapeError: boolean): string {
  const lines: string[] = [];
  const family = (name: string, help: string, type: 'counter' | 'gauge', samples: string[]) => {
    lines.push(`# HELP ${name} [STABLE] ${help}`, `# TYPE ${name} ${type}`, ...samples);
  };
  const cl = (c: ContainerUsage) => `{container="${esc(c.container)}",namespace="${esc(c.namespace)}",pod="${esc(c.pod)}"}`;
  const withCpu = containers.filter((c) => c.cpuCoreSeconds !== undefined);
  const withMem = containers.filter((c) => c.memoryWorkingSetBytes !== undefined);
  if (withCpu.length) family('container_cpu_usage_seconds_total', 'Cumulative cpu time consumed by the container in core-seconds', 'counter', withCpu.map((c) => `container_cpu_usage_seconds_total${cl(c)} ${num(c.cpuCoreSeconds!)} ${c.timestampMs}`));
  if (withMem.length) family('container_memory_working_set_bytes', 'Current working set of the container in bytes', 'gauge', withMem.map((c) => `container_memory_working_set_bytes${cl(c)} ${num(c.memoryWorkingSetBytes!)} ${c.timestampMs}`));
  const started = containers.filter((c) => c.startTimeSeconds !== undefined);
  if (started.length) family('container_start_time_seconds', 'Start time of the container since unix epoch in seconds', 'gauge', started.map((c) => `container_start_time_seconds${cl(c)} ${num(c.startTimeSeconds!)} ${c.timestampMs}`));
  if (node) {
    family('node_cpu_usage_seconds_total', 'Cumulative cpu time consumed by the node in core-seconds', 'counter', [`node_cpu_usage_seconds_total ${num(node.cpuCoreSeconds)} ${node.timestampMs}`]);
    family('node_memory_working_set_bytes', 'Current working set of the node in bytes', 'gauge', [`node_memory_working_set_bytes ${num(node.memoryWorkingSetBytes)} ${node.timestampMs}`]);
  }
  // Pods: the sums of their containers, at the newest container sample.
  const pods = new Map<string, { pod: string; namespace: string; cpu?: number; mem?: number; ts: number }>();
  for (const c of containers) {
    const k = `${c.namespace}/${c.pod}/${c.podUid}`;
    const p = pods.get(k) ?? { pod: c.pod, namespace: c.namespace, ts: 0 };
    if (c.cpuCoreSeconds !== undefined) p.cpu = (p.cpu ?? 0) + c.cpuCoreSeconds;
    if (c.memoryWorkingSetBytes !== undefined) p.mem = (p.mem ?? 0) + c.memoryWorkingSetBytes;
    p.ts = Math.max(p.ts, c.timestampMs);
    pods.set(k, p);
  }
  const pl = (p: { pod: string; namespace: string }) => `{namespace="${esc(p.namespace)}",pod="${esc(p.pod)}"}`;
  const podList = [...pods.values()];
  const podCpu = podList.filter((p) => p.cpu !== undefined);
  const podMem = podList.filter((p) => p.mem !== undefined);
  if (podCpu.length) family('pod_cpu_usage_seconds_total', 'Cumulative cpu time consumed by the pod in core-seconds', 'counter', podCpu.map((p) => `pod_cpu_usage_seconds_total${pl(p)} ${num(p.cpu!)} ${p.ts}`));
  if (podMem.length) family('pod_memory_working_set_bytes', 'Current working set of the pod in bytes', 'gauge', podMem.map((p) => `pod_memory_working_set_bytes${pl(p)} ${num(p.mem!)} ${p.ts}`));
  family('resource_scrape_error', '1 if there was an error while getting container metrics, 0 otherwise', 'gauge', [`resource_scrape_error ${scrapeError ? 1 : 0}`]);
  family('scrape_error', '1 if there was an error while getting container metrics, 0 otherwise', 'gauge', [`scrape_error ${scrapeError ? 1 : 0}`]);
  return lines.join('\n') + '\n';
}

/**
 * Node usage from /proc: CPU time of every non-idle state of /proc/stat's
 * "cpu" line (USER_HZ = 100), and MemTotal - MemAvailable as the working set.
 */
export function parseNodeUsage(stat: string, meminfo: string, nowMs: number): NodeUsage | undefined {
  const cpu = /^cpu\s+(.*)$/m.exec(stat)?.[1]?.trim().split(/\s+/).map(Number);
  if (!cpu || cpu.length < 4 || cpu.some((n) => Number.isNaN(n))) return undefined;
  // user nice system idle iowait irq softirq steal (guest time is already in user/nice)
  const busy = (cpu[0] ?? 0) + (cpu[1] ?? 0) + (cpu[2] ?? 0) + (cpu[5] ?? 0) + (cpu[6] ?? 0) + (cpu[7] ?? 0);
  const kb = (key: string) => {
    const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(meminfo);
    return m ? Number(m[1]) * 1024 : undefined;
  };
  const total = kb('MemTotal');
  const avail = kb('MemAvailable');
  if (total === undefined || avail === undefined) return undefined;
  return { timestampMs: nowMs, cpuCoreSeconds: busy / 100, memoryWorkingSetBytes: total - avail };
}

export function readNodeUsage(nowMs: number): NodeUsage | undefined {
  try {
    return parseNodeUsage(readFileSync('/proc/stat', 'utf8'), readFileSync('/proc/meminfo', 'utf8'), nowMs);
  } catch {
    return undefined;
  }
}
