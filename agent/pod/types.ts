// Shared shapes of the pod machinery: what the runtime holds for one pod
// (rebuilt from CRI lists and labels alone: truth lives in the runtime), and
// the plain decision object that computePodActions returns and the executor
// carries out.
import type { ContainerState, PodSandboxState } from '../../cri/api.ts';

/** One container of a pod as the runtime reports it (any attempt, running or dead). */
export interface RuntimeContainer {
  id: string;
  sandboxId: string;
  /** The pod spec's container name (io.kubernetes.container.name). */
  name: string;
  /** The spec hash it was created from (io.kubernetes.container.hash). */
  hash: string;
  /** Restart count it was created with (io.kubernetes.container.restartCount). */
  restartCount: number;
  state: ContainerState;
  /** Nanoseconds since the epoch; 0 = not set (CRI convention). */
  createdAt: number;
  startedAt: number;
  finishedAt: number;
  exitCode: number;
  /** Completed, Error, OOMKilled, ... */
  reason: string;
  /** Termination message when there is one. */
  message: string;
  /** The image as given in the spec, and the resolved image ID (sha256:...). */
  image: string;
  imageRef: string;
}

export interface RuntimeSandbox {
  id: string;
  state: PodSandboxState;
  attempt: number;
  createdAt: number;
  /** Pod IP ('' with host networking or when not ready). */
  ip: string;
  /** The pod's other IPs (its IPv6 one on a dual-stack network), when ip is set. */
  additionalIps?: readonly string[];
  /**
   * The sandbox runs in the node's network namespace (io.nodelet.host-network);
   * undefined when unknown. When known, computePodActions replaces a sandbox
   * whose network mode no longer matches spec.hostNetwork, or a pod-network
   * sandbox that is ready without an IP (upstream's PodSandboxChanged).
   */
  hostNetwork?: boolean;
}

/** Everything the runtime holds for one pod UID. Lists are newest first (by createdAt). */
export interface RuntimePodStatus {
  uid: string;
  name: string;
  namespace: string;
  sandboxes: RuntimeSandbox[];
  containers: RuntimeContainer[];
}

export type KillReason =
  /** The spec hash changed (e.g. a new image). */
  | 'SpecChanged'
  /** Liveness or startup probe failed. */
  | 'Unhealthy'
  /** Not in the spec any more, or the pod is going away. */
  | 'NotInSpec'
  /** An init container is running while the sandbox is being replaced, etc. */
  | 'PodRestart';

export interface ContainerToKill {
  id: string;
  name: string;
  reason: KillReason;
  /** Human text for the Killing event, worded as upstream (e.g. "Container x definition changed, will be restarted"). */
  message: string;
}

/** The decision for one sync of one pod; the executor carries it out in this order. */
export interface PodActions {
  /** Stop every container and the sandbox first (sandbox changed or dead). */
  killPod: boolean;
  /** Create a new sandbox (after killPod when one existed). */
  createSandbox: boolean;
  /** The sandbox to start containers in ('' when createSandbox). */
  sandboxId: string;
  /** Attempt number of the sandbox to create (previous attempt + 1, 0 for the first). */
  attempt: number;
  /** Indices into spec.initContainers to start now, in order (regular ones one at a time; sidecars as upstream). */
  initContainersToStart: number[];
  /** Indices into spec.containers to start now (only once init is done). */
  containersToStart: number[];
  containersToKill: ContainerToKill[];
  /** Init failed under restartPolicy Never: the pod ends Failed without starting app containers. */
  initFailed: boolean;
}

/** What the kubelet knows besides the spec and the runtime: probe results by container name. */
export interface ProbeState {
  /** Containers whose liveness (or startup) probe has failed past its threshold: restart them. */
  unhealthy?: ReadonlySet<string>;
  /** Containers whose readiness probe currently succeeds (absent: no readiness probe, ready when running). */
  ready?: ReadonlySet<string>;
  /** Containers whose startup probe has succeeded (or that have none). */
  started?: ReadonlySet<string>;
}
