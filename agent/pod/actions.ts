// The pure decision of one pod sync: given the pod spec and what the runtime
// holds for it, what to kill and what to start. Shaped on upstream's
// kuberuntime computePodActions / computeInitContainerActions
// (pkg/kubelet/kuberuntime), with the sidecar-aware init path (the only one
// upstream keeps once LegacySidecarContainers is off). The executor carries
// the result out; back-off, image pulls and events are its business.
import type { V1Container, V1Pod, V1PodSpec } from '@kubernetes/client-node';
import { CONTAINER_CREATED, CONTAINER_EXITED, CONTAINER_RUNNING, CONTAINER_UNKNOWN, SANDBOX_READY } from '../../cri/api.ts';
import { containerHash } from './hash.ts';
import type { ContainerToKill, PodActions, ProbeState, RuntimeContainer, RuntimePodStatus, RuntimeSandbox } from './types.ts';

// ---- small helpers over the runtime view -----------------------------------

/** Newest first by creation time (stable for equal times). */
function byNewest<T extends { createdAt: number }>(xs: readonly T[]): T[] {
  return xs.map((x, i) => ({ x, i })).sort((a, b) => b.x.createdAt - a.x.createdAt || a.i - b.i).map((e) => e.x);
}

/** The newest instance of a container by name (upstream's FindContainerStatusByName). */
export function latestContainer(status: RuntimePodStatus, name: string): RuntimeContainer | undefined {
  let best: RuntimeContainer | undefined;
  for (const c of status.containers) {
    if (c.name === name && (!best || c.createdAt > best.createdAt)) best = c;
  }
  return best;
}

/** The newest sandbox, undefined when there is none. */
export function latestSandbox(status: RuntimePodStatus): RuntimeSandbox | undefined {
  return byNewest(status.sandboxes)[0];
}

/** A sidecar: an init container with restartPolicy Always. */
export function isRestartableInitContainer(c: V1Container): boolean {
  return c.restartPolicy === 'Always';
}

function podRestartPolicy(pod: V1Pod): string {
  return pod.spec?.restartPolicy ?? 'Always';
}

/** Pod-level policy lets failed containers run again (Always or OnFailure). */
function shouldRestartOnFailure(pod: V1Pod): boolean {
  return podRestartPolicy(pod) !== 'Never';
}

/**
 * Whether a container that exited with `exitCode` should run again (upstream's
 * podutil.ContainerShouldRestart): container restartPolicyRules, then the
 * container's own restartPolicy, then the pod's.
 */
export function containerShouldRestart(c: V1Container, spec: V1PodSpec | undefined, exitCode: number): boolean {
  if (c.restartPolicy !== undefined) {
    for (const rule of c.restartPolicyRules ?? []) {
      const codes = rule.exitCodes;
      if (!codes) continue;
      const has = (codes.values ?? []).includes(exitCode);
      const matched = codes.operator === 'In' ? has : codes.operator === 'NotIn' ? !has : false;
      if (matched) {
        if (rule.action === 'Restart') return true;
        break; // the first matching rule decides; any other action falls back to the policy
      }
    }
    if (c.restartPolicy === 'Always') return true;
    if (c.restartPolicy === 'OnFailure') return exitCode !== 0;
    if (c.restartPolicy === 'Never') return false;
  }
  const p = spec?.restartPolicy ?? 'Always';
  if (p === 'OnFailure') return exitCode !== 0;
  if (p === 'Never') return false;
  return true;
}

/** Upstream's ShouldContainerBeRestarted for an app container. */
export function shouldContainerBeRestarted(c: V1Container, pod: V1Pod, status: RuntimePodStatus): boolean {
  if (pod.metadata?.deletionTimestamp) return false;
  const s = latestContainer(status, c.name);
  if (!s) return true;
  if (s.state === CONTAINER_RUNNING) return false;
  if (s.state === CONTAINER_UNKNOWN || s.state === CONTAINER_CREATED) return true;
  return containerShouldRestart(c, pod.spec, s.exitCode);
}

function containerSucceeded(c: V1Container, status: RuntimePodStatus): boolean {
  const s = latestContainer(status, c.name);
  return !!s && s.state === CONTAINER_EXITED && s.exitCode === 0;
}

/** A regular init container failed: non-zero exit, unknown state, or OOM-killed. */
function isInitContainerFailed(s: RuntimeContainer): boolean {
  if (s.reason === 'OOMKilled') return true;
  if (s.state === CONTAINER_EXITED && s.exitCode !== 0) return true;
  return s.state === CONTAINER_UNKNOWN;
}

/**
 * A failed regular init container runs again unless the pod's policy is Never
 * (or its own restart policy and rules say no). The pod policy alone decides
 * when the container has none: an OOM kill can exit 0 and is still a failure.
 */
function initContainerShouldRestart(c: V1Container, pod: V1Pod, s: RuntimeContainer): boolean {
  if (c.restartPolicy === undefined) return shouldRestartOnFailure(pod);
  return containerShouldRestart(c, pod.spec, s.exitCode);
}

/** Any app container was ever created: the init containers have all run once. */
export function hasAnyRegularContainerCreated(pod: V1Pod, status: RuntimePodStatus): boolean {
  for (const c of pod.spec?.containers ?? []) {
    const s = latestContainer(status, c.name);
    if (s && (s.state === CONTAINER_CREATED || s.state === CONTAINER_RUNNING || s.state === CONTAINER_EXITED)) return true;
  }
  return false;
}

export interface SandboxChange {
  changed: boolean;
  /** Attempt for a new sandbox (max seen + 1), or the current max when unchanged. */
  attempt: number;
  /** The newest sandbox's id ('' when none, or when the network mode changed as upstream). */
  sandboxId: string;
  /** Why, for logs: '' when unchanged. */
  why: string;
}

/**
 * Upstream's PodSandboxChanged: a new sandbox is needed when there is none,
 * when more than one is ready, when the newest is not ready, when the pod's
 * network mode (host or pod) differs from the sandbox's, or when a pod-network
 * sandbox has no IP.
 */
export function podSandboxChanged(pod: V1Pod, status: RuntimePodStatus): SandboxChange {
  const sandboxes = byNewest(status.sandboxes);
  const newest = sandboxes[0];
  if (!newest) return { changed: true, attempt: 0, sandboxId: '', why: 'no sandbox' };
  let ready = 0;
  let maxAttempt = 0;
  for (const s of sandboxes) {
    if (s.state === SANDBOX_READY) ready++;
    if (s.attempt > maxAttempt) maxAttempt = s.attempt;
  }
  if (ready > 1) return { changed: true, attempt: maxAttempt + 1, sandboxId: newest.id, why: 'multiple ready sandboxes' };
  if (newest.state !== SANDBOX_READY) return { changed: true, attempt: maxAttempt + 1, sandboxId: newest.id, why: 'sandbox not ready' };
  const hostNetwork = pod.spec?.hostNetwork === true;
  // Only when the runtime told us the sandbox's network mode (upstream reads it from the sandbox status).
  if (newest.hostNetwork !== undefined) {
    if (newest.hostNetwork !== hostNetwork) return { changed: true, attempt: maxAttempt + 1, sandboxId: '', why: 'network namespace changed' };
    if (!hostNetwork && newest.ip === '') return { changed: true, attempt: maxAttempt + 1, sandboxId: newest.id, why: 'sandbox has no IP' };
  }
  return { changed: false, attempt: maxAttempt, sandboxId: newest.id, why: '' };
}

// ---- the decision ------------------------------------------------------------

function emptyActions(sb: SandboxChange): PodActions {
  return {
    killPod: sb.changed,
    createSandbox: sb.changed,
    sandboxId: sb.sandboxId,
    attempt: sb.attempt,
    initContainersToStart: [],
    containersToStart: [],
    containersToKill: [],
    initFailed: false,
  };
}

function addKill(a: PodActions, k: ContainerToKill): void {
  if (!a.containersToKill.some((x) => x.id === k.id)) a.containersToKill.push(k);
}

/** Probe verdict for a running container: undefined when healthy, else the kill message. */
function probeFailure(c: V1Container, probes: ProbeState, what: 'Container' | 'Init container'): string | undefined {
  if (!probes.unhealthy?.has(c.name)) return undefined;
  // A startup probe that never succeeded is what failed; otherwise liveness.
  const startupFailed = c.startupProbe !== undefined && !probes.started?.has(c.name);
  return `${what} ${c.name} failed ${startupFailed ? 'startup' : 'liveness'} probe`;
}

/**
 * Upstream's computeInitContainerActions: walks the init containers newest
 * first to find where initialization stands; starts the next one; keeps
 * sidecars running (restarts them when they exit, change or fail probes).
 * Returns whether the pod has been initialized.
 */
function computeInitContainerActions(pod: V1Pod, status: RuntimePodStatus, probes: ProbeState, a: PodActions): boolean {
  const inits = pod.spec?.initContainers ?? [];
  if (inits.length === 0) return true;

  // A created or running app container means init finished before (its
  // instances may have been removed since). Exited ones do not count: after a
  // node reboot everything is exited and the new sandbox must initialize again.
  let podHasInitialized = false;
  for (const c of pod.spec?.containers ?? []) {
    const s = latestContainer(status, c.name);
    if (s && (s.state === CONTAINER_CREATED || s.state === CONTAINER_RUNNING)) {
      podHasInitialized = true;
      break;
    }
  }

  let previouslyInitialized = podHasInitialized;
  const toStart: number[] = []; // collected backwards, reversed at the end

  // A running sidecar: once started it lets the next init container go; it is
  // restarted when its spec changed or a probe failed.
  const sidecarRunning = (c: V1Container, i: number, s: RuntimeContainer): void => {
    // A startup probe gates the next init container: wait for it, restart on failure.
    if (c.startupProbe !== undefined && !probes.started?.has(c.name)) {
      if (probes.unhealthy?.has(c.name)) {
        addKill(a, { id: s.id, name: c.name, reason: 'Unhealthy', message: `Init container ${c.name} failed startup probe` });
        toStart.push(i);
      }
      return;
    }
    if (i === inits.length - 1) podHasInitialized = true;
    else if (!previouslyInitialized) toStart.push(i + 1); // started for the first time: start the next one

    if (s.hash !== containerHash(c)) {
      addKill(a, { id: s.id, name: c.name, reason: 'SpecChanged', message: `Init container ${c.name} definition changed` });
      toStart.push(i);
      return;
    }
    const failed = probeFailure(c, probes, 'Init container');
    if (failed) {
      addKill(a, { id: s.id, name: c.name, reason: 'Unhealthy', message: failed });
      toStart.push(i);
    }
  };

  for (let i = inits.length - 1; i >= 0; i--) {
    const c = inits[i] as V1Container;
    const sidecar = isRestartableInitContainer(c);
    const s = latestContainer(status, c.name);
    if (!s) {
      // A sidecar whose instances were removed after init must come back.
      if (previouslyInitialized && sidecar) toStart.push(i);
      continue;
    }
    // After initialization only sidecars need attention.
    if (previouslyInitialized && !sidecar) continue;

    if (s.state === CONTAINER_CREATED) {
      // Created but never started: the runtime failed to start it; try again.
      toStart.push(i);
    } else if (s.state === CONTAINER_RUNNING) {
      if (sidecar) sidecarRunning(c, i, s);
      // A running regular init container: wait for it to finish.
    } else if (s.state === CONTAINER_EXITED) {
      if (sidecar) {
        toStart.push(i);
      } else if (isInitContainerFailed(s)) {
        if (!initContainerShouldRestart(c, pod, s)) {
          a.killPod = true;
          a.initFailed = true;
          a.initContainersToStart = [];
          return false;
        }
        toStart.push(i);
      } else if (i === inits.length - 1) {
        podHasInitialized = true;
      } else {
        toStart.push(i + 1); // this one is done: start the next
      }
    } else {
      // Unknown state: kill it before starting it again (or give up under Never).
      const message = `Init container is in "${s.state}" state, try killing it before restart`;
      if (!sidecar && !shouldRestartOnFailure(pod)) {
        a.killPod = true;
        a.initFailed = true;
        a.initContainersToStart = [];
        return false;
      }
      addKill(a, { id: s.id, name: c.name, reason: 'PodRestart', message });
      toStart.push(i);
    }

    previouslyInitialized = true;
  }

  // Nothing has run yet: start the first.
  if (!previouslyInitialized) toStart.push(0);
  a.initContainersToStart = dedupe(toStart.reverse());
  return podHasInitialized;
}

function dedupe(xs: number[]): number[] {
  return xs.filter((x, i) => xs.indexOf(x) === i);
}

/**
 * What to do for one pod now. `probes` carries the prober's verdicts by
 * container name. The result is a plain object; see PodActions for the order
 * in which the executor applies it.
 */
export function computePodActions(pod: V1Pod, status: RuntimePodStatus, probes: ProbeState = {}): PodActions {
  const a = computeCore(pod, status, probes);
  if (a.createSandbox) a.sandboxId = '';
  if (!a.killPod) killNotInSpec(pod, status, a);
  return a;
}

function computeCore(pod: V1Pod, status: RuntimePodStatus, probes: ProbeState): PodActions {
  const sb = podSandboxChanged(pod, status);
  const a = emptyActions(sb);
  const containers = pod.spec?.containers ?? [];
  const inits = pod.spec?.initContainers ?? [];

  if (sb.changed) {
    // Never restart a pod whose containers already ran: just make sure it is stopped.
    // (No containers at all means none was ever created: retry the sandbox.)
    if (!shouldRestartOnFailure(pod) && sb.attempt !== 0 && status.containers.length !== 0) {
      a.createSandbox = false;
      return a;
    }
    const toStart: number[] = [];
    containers.forEach((c, i) => {
      if (podRestartPolicy(pod) === 'OnFailure' && containerSucceeded(c, status)) return;
      toStart.push(i);
    });
    // Initialized already and nothing left to run: do not bring the sandbox back.
    if (toStart.length === 0 && hasAnyRegularContainerCreated(pod, status)) {
      a.createSandbox = false;
      return a;
    }
    // A new sandbox starts from the first init container.
    if (inits.length > 0) {
      a.initContainersToStart = [0];
      return a;
    }
    a.containersToStart = toStart;
    return a;
  }

  const initialized = computeInitContainerActions(pod, status, probes, a);
  if (a.killPod || !initialized) return a; // init failed or still in progress

  let keep = 0;
  containers.forEach((c, i) => {
    const s = latestContainer(status, c.name);
    if (!s || s.state !== CONTAINER_RUNNING) {
      if (shouldContainerBeRestarted(c, pod, status)) {
        a.containersToStart.push(i);
        // Unknown may still be running: kill it first so two never run at once.
        if (s && s.state === CONTAINER_UNKNOWN) {
          addKill(a, {
            id: s.id,
            name: c.name,
            reason: 'PodRestart',
            message: `Container is in "${s.state}" state, try killing it before restart`,
          });
        }
      }
      return;
    }
    let message: string;
    let reason: ContainerToKill['reason'];
    let restart = shouldRestartOnFailure(pod);
    if (s.hash !== containerHash(c)) {
      message = `Container ${c.name} definition changed`;
      reason = 'SpecChanged';
      restart = true; // a new spec runs regardless of the restart policy
    } else {
      const failed = probeFailure(c, probes, 'Container');
      if (!failed) {
        keep++;
        return;
      }
      message = failed;
      reason = 'Unhealthy';
    }
    if (restart) {
      message = `${message}, will be restarted`;
      a.containersToStart.push(i);
    }
    addKill(a, { id: s.id, name: c.name, reason, message });
  });

  // Nothing runs and nothing will: stop the pod (and do not keep sidecars alive for it).
  if (keep === 0 && a.containersToStart.length === 0) {
    a.killPod = true;
    a.initContainersToStart = [];
  }
  return a;
}

/** Running containers whose name is in neither container list. */
function killNotInSpec(pod: V1Pod, status: RuntimePodStatus, a: PodActions): void {
  const names = new Set([...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])].map((c) => c.name));
  for (const c of byNewest(status.containers)) {
    if (names.has(c.name)) continue;
    if (c.state !== CONTAINER_RUNNING && c.state !== CONTAINER_UNKNOWN) continue;
    addKill(a, { id: c.id, name: c.name, reason: 'NotInSpec', message: `Container ${c.name} is not in the pod spec, will be killed` });
  }
}

// ---- terminal pods -------------------------------------------------------------

/**
 * The phase a pod has reached for good, judged from the runtime alone, or
 * undefined while it may still run: Failed when a regular init container
 * failed and will not be retried; otherwise, once every app container has
 * exited and none will be restarted (restartPolicy Never, or OnFailure with
 * exit 0, or the container's own policy), Succeeded when all exited 0 and
 * Failed when one did not. A pod with restartPolicy Always never ends here.
 * Running sidecars do not keep a pod alive (they are stopped with it).
 */
export function podTerminalPhase(pod: V1Pod, status: RuntimePodStatus): 'Succeeded' | 'Failed' | undefined {
  const spec = pod.spec;
  for (const c of spec?.initContainers ?? []) {
    if (isRestartableInitContainer(c)) continue;
    const s = latestContainer(status, c.name);
    if (s && s.state === CONTAINER_EXITED && isInitContainerFailed(s) && !initContainerShouldRestart(c, pod, s)) {
      return 'Failed';
    }
  }
  const containers = spec?.containers ?? [];
  if (containers.length === 0) return undefined;
  let allZero = true;
  for (const c of containers) {
    const s = latestContainer(status, c.name);
    if (!s || s.state !== CONTAINER_EXITED) return undefined;
    if (containerShouldRestart(c, spec, s.exitCode)) return undefined;
    if (s.exitCode !== 0) allZero = false;
  }
  return allZero ? 'Succeeded' : 'Failed';
}
