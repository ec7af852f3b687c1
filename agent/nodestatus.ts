// The Node object and its status, decided in pure code (no I/O, no clock):
// what to register, which conditions to report, whether a patch is due.
// Mirrors upstream pkg/kubelet/nodestatus setters and kubelet_node_status.go.
import type { V1Node, V1NodeCondition, V1NodeStatus } from '@kubernetes/client-node';
import type { RuntimeStatus, VersionResponse } from '../cri/runtime.ts';
import { NETWORK_READY, RUNTIME_READY } from '../cri/runtime.ts';
import type { MachineInfo } from './machine.ts';

export const LABEL_HOSTNAME = 'kubernetes.io/hostname';
export const LABEL_OS = 'kubernetes.io/os';
export const LABEL_ARCH = 'kubernetes.io/arch';
export const LABEL_BETA_OS = 'beta.kubernetes.io/os';
export const LABEL_BETA_ARCH = 'beta.kubernetes.io/arch';

/** Labels the agent owns and reconciles on an existing Node (upstream updateDefaultLabels). */
export const DEFAULT_LABELS: readonly string[] = [
  LABEL_HOSTNAME,
  'topology.kubernetes.io/zone',
  'topology.kubernetes.io/region',
  'node.kubernetes.io/instance-type',
  LABEL_OS,
  LABEL_ARCH,
  LABEL_BETA_OS,
  LABEL_BETA_ARCH,
];

export const COND_READY = 'Ready';
export const COND_MEMORY_PRESSURE = 'MemoryPressure';
export const COND_DISK_PRESSURE = 'DiskPressure';
export const COND_PID_PRESSURE = 'PIDPressure';
const OWN_CONDITIONS = new Set([COND_MEMORY_PRESSURE, COND_DISK_PRESSURE, COND_PID_PRESSURE, COND_READY]);

export interface NodeInput {
  nodeName: string;
  hostname: string;
  nodeIP: string;
  podCIDR?: string | undefined;
  /** --node-labels; they override the default labels, as upstream. */
  nodeLabels?: Readonly<Record<string, string>> | undefined;
  maxPods: number;
  kubeletPort: number;
  machine: MachineInfo;
  /** Undefined while the runtime has never answered: the version is reported empty. */
  runtime: VersionResponse | undefined;
  /** The Kubernetes version nodelet speaks, e.g. 'v1.37.2'. */
  kubeletVersion: string;
  conditions?: V1NodeCondition[] | undefined;
}

/** What the runtime's state means for the Ready condition. */
export interface NodeHealth {
  runtimeReady: boolean;
  runtimeMessage?: string;
}

/** Bytes as a canonical binary quantity ('16331780Ki', '8Gi'), rounded down to whole Ki. */
export function binaryQuantity(bytes: number): string {
  if (bytes < 1024) return String(Math.max(0, Math.floor(bytes)));
  const suffixes = ['Ki', 'Mi', 'Gi', 'Ti', 'Pi', 'Ei'];
  let n = Math.floor(bytes / 1024);
  let i = 0;
  while (i < suffixes.length - 1 && n % 1024 === 0) {
    n /= 1024;
    i++;
  }
  return `${n}${suffixes[i]}`;
}

export function containerRuntimeVersion(v: VersionResponse | undefined): string {
  return v ? `${v.runtimeName}://${v.runtimeVersion}` : '';
}

/** The status fields the agent owns (conditions only when given). */
export function buildNodeStatus(input: NodeInput): V1NodeStatus {
  const m = input.machine;
  const capacity: Record<string, string> = {
    cpu: String(m.cpuCores),
    memory: binaryQuantity(m.memoryBytes),
    'ephemeral-storage': binaryQuantity(m.ephemeralStorageBytes),
    pods: String(input.maxPods),
  };
  const status: V1NodeStatus = {
    capacity,
    allocatable: { ...capacity },
    addresses: [
      { type: 'InternalIP', address: input.nodeIP },
      { type: 'Hostname', address: input.hostname },
    ],
    daemonEndpoints: { kubeletEndpoint: { Port: input.kubeletPort } },
    nodeInfo: {
      machineID: m.machineID,
      systemUUID: m.systemUUID,
      bootID: m.bootID,
      kernelVersion: m.kernelVersion,
      osImage: m.osImage,
      containerRuntimeVersion: containerRuntimeVersion(input.runtime),
      kubeletVersion: input.kubeletVersion,
      kubeProxyVersion: '', // deprecated; upstream leaves it empty
      operatingSystem: m.operatingSystem,
      architecture: m.architecture,
    },
  };
  if (input.conditions) status.conditions = input.conditions;
  return status;
}

/** The Node to register (upstream initialNode + setNodeStatus). */
export function buildNode(input: NodeInput): V1Node {
  const labels: Record<string, string> = {
    [LABEL_HOSTNAME]: input.hostname,
    [LABEL_OS]: input.machine.operatingSystem,
    [LABEL_ARCH]: input.machine.architecture,
    [LABEL_BETA_OS]: input.machine.operatingSystem,
    [LABEL_BETA_ARCH]: input.machine.architecture,
    ...input.nodeLabels,
  };
  const node: V1Node = {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name: input.nodeName, labels },
    spec: input.podCIDR ? { podCIDR: input.podCIDR, podCIDRs: [input.podCIDR] } : {},
    status: buildNodeStatus(input),
  };
  return node;
}

/** Maps the runtime's CRI status (or the error from asking) to node health. */
export function runtimeHealth(status: RuntimeStatus | { error: string }): NodeHealth {
  if ('error' in status) return { runtimeReady: false, runtimeMessage: `container runtime is down: ${status.error}` };
  const rt = status.conditions.find((c) => c.type === RUNTIME_READY);
  if (!rt || !rt.status) {
    const why = rt ? [rt.reason, rt.message].filter(Boolean).join(': ') : 'no RuntimeReady condition reported';
    return { runtimeReady: false, runtimeMessage: why ? `container runtime is down: ${why}` : 'container runtime is down' };
  }
  const netCond = status.conditions.find((c) => c.type === NETWORK_READY);
  if (netCond && !netCond.status) {
    return {
      runtimeReady: false,
      runtimeMessage: `container runtime network not ready: NetworkReady=false reason:${netCond.reason} message:${netCond.message}`,
    };
  }
  return { runtimeReady: true };
}

type Time = Date | string | undefined;

/** Milliseconds of an API time (the client gives Date, MicroTime fields come as strings). */
export function timeMs(t: Time): number | undefined {
  if (t === undefined) return undefined;
  const ms = (t instanceof Date ? t : new Date(t)).getTime();
  return Number.isNaN(ms) ? undefined : ms;
}

/**
 * The conditions to report now: MemoryPressure, DiskPressure, PIDPressure and
 * Ready (upstream order), then any other conditions from `prev` untouched
 * (other writers own them). lastTransitionTime is kept while a condition's
 * status is unchanged.
 */
export function computeConditions(prev: readonly V1NodeCondition[] | undefined, health: NodeHealth, now: Date): V1NodeCondition[] {
  const desired: Array<Pick<V1NodeCondition, 'type' | 'status' | 'reason' | 'message'>> = [
    { type: COND_MEMORY_PRESSURE, status: 'False', reason: 'KubeletHasSufficientMemory', message: 'kubelet has sufficient memory available' },
    { type: COND_DISK_PRESSURE, status: 'False', reason: 'KubeletHasNoDiskPressure', message: 'kubelet has no disk pressure' },
    { type: COND_PID_PRESSURE, status: 'False', reason: 'KubeletHasSufficientPID', message: 'kubelet has sufficient PID available' },
    health.runtimeReady
      ? { type: COND_READY, status: 'True', reason: 'KubeletReady', message: 'kubelet is posting ready status' }
      : { type: COND_READY, status: 'False', reason: 'KubeletNotReady', message: health.runtimeMessage ?? 'container runtime is down' },
  ];
  const own = desired.map((c): V1NodeCondition => {
    const before = prev?.find((p) => p.type === c.type);
    const kept = before && before.status === c.status ? timeMs(before.lastTransitionTime as Time) : undefined;
    return {
      ...c,
      lastHeartbeatTime: new Date(now.getTime()),
      lastTransitionTime: new Date(kept ?? now.getTime()),
    };
  });
  const others = (prev ?? []).filter((c) => !OWN_CONDITIONS.has(c.type));
  return [...own, ...others];
}

/** Whether the conditions differ in anything but heartbeat times. */
export function statusChanged(prev: readonly V1NodeCondition[] | undefined, next: readonly V1NodeCondition[]): boolean {
  const before = prev ?? [];
  if (before.length !== next.length) return true;
  const byType = new Map(before.map((c) => [c.type, c]));
  for (const n of next) {
    const p = byType.get(n.type);
    if (
      !p ||
      p.status !== n.status ||
      (p.reason ?? '') !== (n.reason ?? '') ||
      (p.message ?? '') !== (n.message ?? '') ||
      timeMs(p.lastTransitionTime as Time) !== timeMs(n.lastTransitionTime as Time)
    ) {
      return true;
    }
  }
  return false;
}

/** Patch when something changed, or when the report frequency has elapsed (a heartbeat). */
export function shouldPatchStatus(
  prevConds: readonly V1NodeCondition[] | undefined,
  nextConds: readonly V1NodeCondition[],
  lastReportMs: number,
  nowMs: number,
  reportFrequencyMs: number,
): boolean {
  return statusChanged(prevConds, nextConds) || nowMs - lastReportMs >= reportFrequencyMs;
}

const OWN_STATUS_FIELDS = ['capacity', 'allocatable', 'addresses', 'daemonEndpoints', 'nodeInfo'] as const;

/**
 * The agent-owned status fields (not conditions) whose observed value does not
 * match the desired one. Maps and objects are compared on the desired keys
 * only, so fields other writers add do not cause a patch every time.
 */
export function statusFieldsPatch(observed: V1NodeStatus | undefined, desired: V1NodeStatus): Partial<V1NodeStatus> {
  const out: Partial<V1NodeStatus> = {};
  for (const k of OWN_STATUS_FIELDS) {
    const want = desired[k];
    if (want !== undefined && !covers(observed?.[k], want)) Object.assign(out, { [k]: want });
  }
  return out;
}

/** Whether `observed` holds everything in `desired` (arrays must match in full). */
function covers(observed: unknown, desired: unknown): boolean {
  if (Array.isArray(desired)) {
    return Array.isArray(observed) && observed.length === desired.length && desired.every((d, i) => covers(observed[i], d));
  }
  if (desired instanceof Date || observed instanceof Date) return timeMs(desired as Time) === timeMs(observed as Time);
  if (desired !== null && typeof desired === 'object') {
    if (observed === null || typeof observed !== 'object') return false;
    const o = observed as Record<string, unknown>;
    return Object.entries(desired).every(([k, v]) => v === undefined || covers(o[k], v));
  }
  return observed === desired;
}

/**
 * Default labels to set on a node that already exists (upstream
 * updateDefaultLabels): only the ones the agent owns; --node-labels are
 * applied at creation only, as upstream. Undefined when nothing differs.
 */
export function reconcileDefaultLabels(desired: V1Node, existing: V1Node): Record<string, string> | undefined {
  const want = desired.metadata?.labels ?? {};
  const have = existing.metadata?.labels ?? {};
  const out: Record<string, string> = {};
  for (const key of DEFAULT_LABELS) {
    const v = want[key];
    if (v !== undefined && v !== '' && have[key] !== v) out[key] = v;
  }
  return Object.keys(out).length > 0 ? out : undefined;
}

/** The Ready condition's status in a list ('True', 'False', 'Unknown'), if present. */
export function readyStatus(conds: readonly V1NodeCondition[] | undefined): string | undefined {
  return conds?.find((c) => c.type === COND_READY)?.status;
}
