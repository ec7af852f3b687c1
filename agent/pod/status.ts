// The API status of a pod, computed from its spec, the previous status and
// what the runtime holds: upstream's generateAPIPodStatus,
// convertToAPIContainerStatuses, getPhase (pkg/kubelet/kubelet_pods.go), the
// condition generators (pkg/kubelet/status/generate.go), the prober's
// ready/started marking and the status manager's lastTransitionTime and
// startTime rules. Pure: time comes in as input.now.
import type {
  V1Container,
  V1ContainerState,
  V1ContainerStatus,
  V1Pod,
  V1PodCondition,
  V1PodStatus,
} from '@kubernetes/client-node';
import { CONTAINER_CREATED, CONTAINER_EXITED, CONTAINER_RUNNING, CONTAINER_UNKNOWN, SANDBOX_READY } from '../../cri/api.ts';
import {
  containerShouldRestart,
  hasAnyRegularContainerCreated,
  isRestartableInitContainer,
  latestContainer,
  latestSandbox,
  podSandboxChanged,
  shouldContainerBeRestarted,
} from './actions.ts';
import { sandboxIPs } from './podips.ts';
import { getPodQOS } from './qos.ts';
import type { ProbeState, RuntimeContainer, RuntimePodStatus } from './types.ts';

/** The runtime's scheme in containerID fields ("docker://<id>"). */
export const CONTAINER_ID_PREFIX = 'docker://';

// Waiting reasons the kubelet itself sets.
export const REASON_CONTAINER_CREATING = 'ContainerCreating';
export const REASON_POD_INITIALIZING = 'PodInitializing';
export const REASON_STATUS_UNKNOWN = 'ContainerStatusUnknown';

// Condition types and reasons (upstream's names).
export const COND_READY_TO_START = 'PodReadyToStartContainers';
export const COND_INITIALIZED = 'Initialized';
export const COND_READY = 'Ready';
export const COND_CONTAINERS_READY = 'ContainersReady';
export const COND_SCHEDULED = 'PodScheduled';
const KUBELET_CONDITIONS = new Set([
  COND_SCHEDULED,
  COND_READY,
  COND_INITIALIZED,
  COND_CONTAINERS_READY,
  COND_READY_TO_START,
  'PodResizePending',
  'PodResizeInProgress',
]);

export interface WaitingReason {
  reason: string;
  message?: string;
}

export interface PodStatusInput {
  /** The prober's verdicts by container name. */
  probes?: ProbeState;
  /** Why a container that should run is not running, set by the executor (ErrImagePull, CrashLoopBackOff, ...). */
  waiting?: ReadonlyMap<string, WaitingReason>;
  /** The node's IPs, primary first. */
  hostIPs: readonly string[];
  now: Date;
  /** When the kubelet first took the pod on; used when the status has no startTime yet (else now). */
  startTime?: Date;
  /** The pod worker has decided the pod is done: containers will not run again whatever the policy. */
  podIsTerminal?: boolean;
}

/** The status the kubelet reports for `pod` now. Does not modify `pod`. */
export function generatePodStatus(pod: V1Pod, runtime: RuntimePodStatus, input: PodStatusInput): V1PodStatus {
  const old: V1PodStatus = pod.status ? structuredClone(pod.status) : {};
  const probes = input.probes ?? {};
  const waiting = input.waiting ?? new Map<string, WaitingReason>();
  const spec = pod.spec;
  const inits = spec?.initContainers ?? [];
  const hasInit = inits.length > 0;
  const s: V1PodStatus = {};

  // Pod IPs: from the newest sandbox when ready. With no ready sandbox left
  // the runtime no longer knows them; keep the last ones (upstream's PLEG does).
  const sandbox = latestSandbox(runtime);
  let podIPs: string[] = [];
  if (spec?.hostNetwork) podIPs = input.hostIPs.slice(0, 2);
  else if (sandbox && sandbox.state === SANDBOX_READY && sandbox.ip) podIPs = sandboxIPs(sandbox, input.hostIPs);
  else if (!runtime.sandboxes.some((x) => x.state === SANDBOX_READY)) podIPs = (old.podIPs ?? []).map((p) => p.ip);
  if (podIPs.length > 0) {
    s.podIP = podIPs[0];
    s.podIPs = podIPs.map((ip) => ({ ip }));
  }

  s.qosClass = getPodQOS(pod);

  const ctx: ConvertContext = { pod, runtime, waiting, hasInit };
  s.containerStatuses = convertStatuses(ctx, old.containerStatuses, spec?.containers ?? [], false);
  // Omitted when empty, as the API does (so a status read back compares equal).
  if (hasInit) s.initContainerStatuses = convertStatuses(ctx, old.initContainerStatuses, inits, true);
  markProbeResults(pod, s, probes);

  // Phase, never leaving a terminal one.
  const all = [...s.containerStatuses, ...(s.initContainerStatuses ?? [])];
  s.phase = getPhase(pod, all, !!input.podIsTerminal, hasActiveRegularContainer(pod, runtime));
  if (s.phase !== 'Failed' && s.phase !== 'Succeeded' && (old.phase === 'Failed' || old.phase === 'Succeeded')) {
    s.phase = old.phase;
  }
  if (s.phase === old.phase) {
    // The reason and message belong to the phase.
    if (old.reason) s.reason = old.reason;
    if (old.message) s.message = old.message;
  }

  s.conditions = generateConditions(pod, runtime, old, s, input.now);

  if (input.hostIPs.length > 0) {
    s.hostIP = input.hostIPs[0];
    s.hostIPs = input.hostIPs.slice(0, 2).map((ip) => ({ ip }));
  }
  s.startTime = old.startTime ?? secondsDate((input.startTime ?? input.now).getTime());
  if (pod.metadata?.generation !== undefined) s.observedGeneration = pod.metadata.generation;
  return s;
}

// ---- container statuses -------------------------------------------------------

interface ConvertContext {
  pod: V1Pod;
  runtime: RuntimePodStatus;
  waiting: ReadonlyMap<string, WaitingReason>;
  hasInit: boolean;
}

/** Whole seconds, as the API stores times (RFC 3339 without fractions). */
function secondsDate(ms: number): Date {
  return new Date(Math.floor(ms / 1000) * 1000);
}

/** A CRI nanosecond time as an API time; undefined when unset (0). */
function nsDate(ns: number): Date | undefined {
  return ns > 0 ? secondsDate(ns / 1e6) : undefined;
}

/** The object without its undefined members (so equality with a status read back from the API holds). */
function defined<T extends object>(o: T): T {
  for (const k of Object.keys(o) as (keyof T)[]) if (o[k] === undefined) delete o[k];
  return o;
}

function convertOne(rc: RuntimeContainer, old: V1ContainerStatus | undefined): V1ContainerStatus {
  const cid = CONTAINER_ID_PREFIX + rc.id;
  const st: V1ContainerStatus = {
    name: rc.name,
    restartCount: rc.restartCount,
    image: rc.image,
    imageID: rc.imageRef,
    containerID: cid,
    ready: false,
    state: {},
  };
  const state = st.state as V1ContainerState;
  if (rc.state === CONTAINER_RUNNING) {
    state.running = defined({ startedAt: nsDate(rc.startedAt) });
    // The prober decides; until it has run again keep what we said before.
    if (old?.started !== undefined) st.started = old.started;
  } else if (rc.state === CONTAINER_CREATED) {
    state.waiting = {}; // created but not running: waiting to run
  } else if (rc.state === CONTAINER_EXITED) {
    state.terminated = defined({
      exitCode: rc.exitCode,
      reason: rc.reason || undefined,
      message: rc.message || undefined,
      startedAt: nsDate(rc.startedAt),
      finishedAt: nsDate(rc.finishedAt),
      containerID: cid,
    });
  } else if (rc.state === CONTAINER_UNKNOWN && old?.state?.running) {
    // It was running and now cannot be found: it stopped, we do not know how.
    // Saying "waiting" would let a run-once container run twice.
    state.terminated = {
      reason: REASON_STATUS_UNKNOWN,
      message: 'The container could not be located when the pod was terminated',
      exitCode: 137,
    };
    st.restartCount = (old.restartCount ?? 0) + 1;
  } else {
    state.waiting = {};
  }
  return st;
}

function convertStatuses(ctx: ConvertContext, previous: V1ContainerStatus[] | undefined, specs: V1Container[], isInit: boolean): V1ContainerStatus[] {
  const { pod, runtime, waiting, hasInit } = ctx;
  const oldByName = new Map((previous ?? []).map((o) => [o.name, o]));
  const defaultReason = hasInit ? REASON_POD_INITIALIZING : REASON_CONTAINER_CREATING;
  const statuses = new Map<string, V1ContainerStatus>();

  // Everything starts out waiting, carrying over the restart count and the
  // last termination (a terminated status is kept whole: it is final until
  // the runtime says otherwise).
  for (const c of specs) {
    const old = oldByName.get(c.name);
    let st: V1ContainerStatus = {
      name: c.name,
      image: c.image ?? '',
      imageID: '',
      ready: false,
      restartCount: 0,
      state: { waiting: { reason: defaultReason } },
    };
    if (old) {
      if (old.state?.terminated) st = structuredClone(old);
      else {
        st.restartCount = old.restartCount ?? 0;
        if (old.lastState) st.lastState = structuredClone(old.lastState);
      }
    }
    statuses.set(c.name, st);
  }

  // A container that was running and has vanished from the runtime ended
  // somehow: record that rather than letting the pod look Pending again.
  for (const c of specs) {
    if (runtime.containers.some((rc) => rc.name === c.name)) continue;
    const old = oldByName.get(c.name);
    if (!old || old.state?.terminated || !old.state?.running) continue;
    const st = statuses.get(c.name) as V1ContainerStatus;
    if (st.state?.waiting?.reason !== defaultReason) continue;
    if (st.lastState?.terminated) continue;
    st.lastState = {
      terminated: {
        reason: REASON_STATUS_UNKNOWN,
        message: 'The container could not be located when the pod was deleted.  The container used to be Running',
        exitCode: 137,
      },
    };
    if (!pod.metadata?.deletionTimestamp) st.restartCount = (st.restartCount ?? 0) + 1;
  }

  // The newest instance gives the state, the one before it the last state.
  for (const c of specs) {
    const instances = runtime.containers
      .filter((rc) => rc.name === c.name)
      .sort((a, b) => b.createdAt - a.createdAt);
    const [latest, previousInstance] = instances;
    if (!latest) continue;
    const st = convertOne(latest, oldByName.get(c.name));
    if (previousInstance) st.lastState = convertOne(previousInstance, oldByName.get(c.name)).state;
    statuses.set(c.name, st);
  }

  // Containers that should run but do not: the executor's reason, if any.
  for (const c of specs) {
    const st = statuses.get(c.name) as V1ContainerStatus;
    if (isInit) {
      const rc = latestContainer(runtime, c.name);
      if (rc && rc.state === CONTAINER_EXITED && rc.exitCode === 0) continue; // done, never again
      // Its instance is gone but the app containers exist: it completed.
      if (!rc && !isRestartableInitContainer(c) && hasAnyRegularContainerCreated(pod, runtime) && st.state?.waiting) {
        st.state = {
          terminated: {
            reason: 'Completed',
            message: 'Unable to get init container status from container runtime and pod has been initialized, treat it as exited normally',
            exitCode: 0,
          },
        };
        continue;
      }
    }
    if (!shouldContainerBeRestarted(c, pod, runtime)) continue;
    const w = waiting.get(c.name);
    if (!w) continue;
    if (st.state?.terminated) st.lastState = st.state;
    st.state = { waiting: { reason: w.reason, ...(w.message ? { message: w.message } : {}) } };
  }

  const out = specs.map((c) => statuses.get(c.name) as V1ContainerStatus);
  // Upstream sorts app container statuses by name; init ones stay in spec order.
  if (!isInit) out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return out;
}

/** The prober's marking (upstream's prober manager UpdatePodStatus): started and ready. */
function markProbeResults(pod: V1Pod, s: V1PodStatus, probes: ProbeState): void {
  const specOf = (list: V1Container[] | undefined, name: string) => (list ?? []).find((c) => c.name === name);
  const isStarted = (c: V1Container | undefined, st: V1ContainerStatus): boolean => {
    if (!st.state?.running) return false;
    if (!c?.startupProbe) return true;
    return probes.started?.has(st.name) ?? false;
  };
  const isReady = (c: V1Container | undefined, st: V1ContainerStatus): boolean => {
    if (!st.state?.running) return false;
    if (!c?.readinessProbe) return true;
    return probes.ready?.has(st.name) ?? false;
  };
  for (const st of s.containerStatuses ?? []) {
    const c = specOf(pod.spec?.containers, st.name);
    st.started = isStarted(c, st);
    if (st.started) st.ready = isReady(c, st);
  }
  for (const st of s.initContainerStatuses ?? []) {
    const c = specOf(pod.spec?.initContainers, st.name);
    st.started = isStarted(c, st);
    if (!c || !isRestartableInitContainer(c)) {
      // A regular init container is ready once it completed.
      if (st.state?.terminated && st.state.terminated.exitCode === 0) st.ready = true;
      continue;
    }
    if (st.started) st.ready = isReady(c, st);
  }
}

// ---- phase -----------------------------------------------------------------------

/** Any app container has an instance in the newest sandbox (upstream's HasAnyActiveRegularContainerStarted). */
function hasActiveRegularContainer(pod: V1Pod, runtime: RuntimePodStatus): boolean {
  const sb = latestSandbox(runtime);
  if (!sb) return false;
  const names = new Set((pod.spec?.containers ?? []).map((c) => c.name));
  return runtime.containers.some((rc) => rc.sandboxId === sb.id && names.has(rc.name));
}

function isStaticPod(pod: V1Pod): boolean {
  const src = pod.metadata?.annotations?.['kubernetes.io/config.source'];
  return src !== undefined && src !== 'api';
}

/**
 * Upstream's getPhase (with container-level restart rules folded in; without
 * them it gives the same answers from the pod's restartPolicy).
 */
export function getPhase(pod: V1Pod, statuses: readonly V1ContainerStatus[], podIsTerminal: boolean, podHasInitialized: boolean): string {
  const spec = pod.spec;
  const find = (name: string) => statuses.find((x) => x.name === name);
  let pendingRestartableInit = 0;
  let pendingRegularInit = 0;
  let failedInitNotRestartable = 0;

  for (const c of spec?.initContainers ?? []) {
    if (isRestartableInitContainer(c)) continue;
    const st = find(c.name);
    if (!st) {
      pendingRegularInit++;
      continue;
    }
    const state = st.state ?? {};
    if (state.running) pendingRegularInit++;
    else if (state.terminated) {
      const code = state.terminated.exitCode;
      if (code !== 0 && !containerShouldRestart(c, spec, code)) failedInitNotRestartable++;
    } else if (state.waiting) {
      const last = st.lastState?.terminated;
      if (last) {
        if (last.exitCode !== 0 && !containerShouldRestart(c, spec, last.exitCode)) failedInitNotRestartable++;
      } else pendingRegularInit++;
    } else pendingRegularInit++;
  }

  let unknown = 0;
  let running = 0;
  let waiting = 0;
  let stopped = 0;
  let stoppedNotRestartable = 0;
  let succeeded = 0;

  for (const c of spec?.initContainers ?? []) {
    if (!isRestartableInitContainer(c)) continue;
    const st = find(c.name);
    if (!st) {
      unknown++;
      continue;
    }
    const state = st.state ?? {};
    if (state.running) {
      if (!st.started) pendingRestartableInit++;
      running++;
    } else if (state.terminated) {
      // a stopped sidecar does not count for the phase
    } else if (state.waiting) {
      if (!st.lastState?.terminated) {
        pendingRestartableInit++;
        waiting++;
      }
    } else {
      pendingRestartableInit++;
      unknown++;
    }
  }

  for (const c of spec?.containers ?? []) {
    const st = find(c.name);
    if (!st) {
      unknown++;
      continue;
    }
    const state = st.state ?? {};
    if (state.running) running++;
    else if (state.terminated) {
      stopped++;
      const code = state.terminated.exitCode;
      if (!containerShouldRestart(c, spec, code)) stoppedNotRestartable++;
      if (code === 0) succeeded++;
    } else if (state.waiting) {
      const last = st.lastState?.terminated;
      if (last) {
        stopped++;
        if (!containerShouldRestart(c, spec, last.exitCode)) stoppedNotRestartable++;
      } else waiting++;
    } else unknown++;
  }

  if (failedInitNotRestartable > 0) return 'Failed';
  if (pendingRegularInit > 0 || (pendingRestartableInit > 0 && !podHasInitialized) || waiting > 0) return 'Pending';
  if (running > 0 && unknown === 0) return 'Running';
  if (running === 0 && stopped > 0 && unknown === 0) {
    if (podIsTerminal && !isStaticPod(pod)) return stopped === succeeded ? 'Succeeded' : 'Failed';
    if (stopped !== stoppedNotRestartable) return 'Running'; // some are on their way back
    return stopped === succeeded ? 'Succeeded' : 'Failed';
  }
  return 'Pending';
}

// ---- conditions --------------------------------------------------------------------

/** Go's %s of a []string: "[a b]". */
function goList(xs: readonly string[]): string {
  return `[${xs.join(' ')}]`;
}

interface Cond {
  type: string;
  status: 'True' | 'False';
  reason?: string;
  message?: string;
}

function containersReady(pod: V1Pod, all: readonly V1ContainerStatus[], phase: string): Cond {
  const unknown: string[] = [];
  const unready: string[] = [];
  const check = (name: string) => {
    const st = all.find((x) => x.name === name);
    if (!st) unknown.push(name);
    else if (!st.ready) unready.push(name);
  };
  for (const c of pod.spec?.initContainers ?? []) if (isRestartableInitContainer(c)) check(c.name);
  for (const c of pod.spec?.containers ?? []) check(c.name);
  if ((phase === 'Succeeded' && unknown.length === 0) || phase === 'Failed') {
    return { type: COND_CONTAINERS_READY, status: 'False', reason: phase === 'Failed' ? 'PodFailed' : 'PodCompleted' };
  }
  const msgs: string[] = [];
  if (unknown.length) msgs.push(`containers with unknown status: ${goList(unknown)}`);
  if (unready.length) msgs.push(`containers with unready status: ${goList(unready)}`);
  if (msgs.length) return { type: COND_CONTAINERS_READY, status: 'False', reason: 'ContainersNotReady', message: msgs.join(', ') };
  return { type: COND_CONTAINERS_READY, status: 'True' };
}

function podReady(pod: V1Pod, others: readonly V1PodCondition[], cr: Cond): Cond {
  if (cr.status !== 'True') return { type: COND_READY, status: cr.status, reason: cr.reason, message: cr.message };
  const msgs: string[] = [];
  for (const g of pod.spec?.readinessGates ?? []) {
    const c = others.find((x) => x.type === g.conditionType);
    if (!c) msgs.push(`corresponding condition of pod readiness gate "${g.conditionType}" does not exist.`);
    else if (c.status !== 'True') msgs.push(`the status of pod readiness gate "${g.conditionType}" is not "True", but ${c.status}`);
  }
  if (msgs.length) return { type: COND_READY, status: 'False', reason: 'ReadinessGatesNotReady', message: msgs.join(', ') };
  return { type: COND_READY, status: 'True' };
}

function initialized(pod: V1Pod, all: readonly V1ContainerStatus[], phase: string): Cond {
  const unknown: string[] = [];
  const incomplete: string[] = [];
  for (const c of pod.spec?.initContainers ?? []) {
    const st = all.find((x) => x.name === c.name);
    if (!st) {
      unknown.push(c.name);
      continue;
    }
    const done = isRestartableInitContainer(c) ? st.started === true : st.ready;
    if (!done) incomplete.push(c.name);
  }
  if (phase === 'Succeeded' && unknown.length === 0) return { type: COND_INITIALIZED, status: 'True', reason: 'PodCompleted' };
  // An app container has run: initialized before, even if a sidecar is restarting now.
  const appNames = new Set((pod.spec?.containers ?? []).map((c) => c.name));
  if (all.some((st) => appNames.has(st.name) && (st.state?.running || st.state?.terminated))) {
    return { type: COND_INITIALIZED, status: 'True' };
  }
  const msgs: string[] = [];
  if (unknown.length) msgs.push(`containers with unknown status: ${goList(unknown)}`);
  if (incomplete.length) msgs.push(`containers with incomplete status: ${goList(incomplete)}`);
  if (msgs.length) return { type: COND_INITIALIZED, status: 'False', reason: 'ContainersNotInitialized', message: msgs.join(', ') };
  return { type: COND_INITIALIZED, status: 'True' };
}

function generateConditions(pod: V1Pod, runtime: RuntimePodStatus, old: V1PodStatus, s: V1PodStatus, now: Date): V1PodCondition[] {
  const phase = s.phase ?? 'Pending';
  const all = [...(s.initContainerStatuses ?? []), ...(s.containerStatuses ?? [])];
  // Conditions others own (readiness gates, DisruptionTarget, ...) stay as they are.
  const kept = (old.conditions ?? []).filter((c) => !KUBELET_CONDITIONS.has(c.type));
  const cr = containersReady(pod, all, phase);
  const generated: Cond[] = [
    { type: COND_READY_TO_START, status: podSandboxChanged(pod, runtime).changed ? 'False' : 'True' },
    initialized(pod, all, phase),
    podReady(pod, kept, cr),
    cr,
    { type: COND_SCHEDULED, status: 'True' },
  ];
  const generation = pod.metadata?.generation;
  const stamp = secondsDate(now.getTime());
  return [
    ...kept,
    ...generated.map((g): V1PodCondition => {
      const before = (old.conditions ?? []).find((c) => c.type === g.type);
      const c: V1PodCondition = {
        type: g.type,
        status: g.status,
        // A condition's time moves only when its status does.
        lastTransitionTime: before && before.status === g.status && before.lastTransitionTime ? before.lastTransitionTime : stamp,
      };
      if (g.reason) c.reason = g.reason;
      if (g.message) c.message = g.message;
      if (generation !== undefined) c.observedGeneration = generation;
      return c;
    }),
  ];
}
