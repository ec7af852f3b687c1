// The executor: one level-triggered sync of one pod, as upstream's SyncPod /
// SyncTerminatingPod / SyncTerminatedPod. It reads the pod (from the API) and
// what the runtime holds for it, asks the pure computePodActions what to do,
// carries that out through the CRI runtime (sandbox, init containers, app
// containers, kills with preStop and grace), remembers why containers wait
// (back-off, pull errors, config errors), and reports the status. Every
// failure becomes a waiting reason and an event; nothing here throws for bad
// input.
import type { V1Container, V1Pod, V1PodStatus, V1Secret } from '@kubernetes/client-node';
import { CONTAINER_EXITED, CONTAINER_RUNNING, SANDBOX_READY } from '../../cri/api.ts';
import type { KeyValue, Mount, PodSandboxConfig } from '../../cri/api.ts';
import type { ImageService, RuntimeService } from '../../cri/runtime.ts';
import type { Clock } from '../../lib/clock.ts';
import { describeError, errorCode } from '../../lib/errors.ts';
import type { Logger } from '../../lib/log.ts';
import { computePodActions, latestContainer, latestSandbox, podTerminalPhase } from './actions.ts';
import { CrashLoopBackOff } from './backoff.ts';
import { containerHash } from './hash.ts';
import type { HookRunner } from './hooks.ts';
import { ImageManager } from './images.ts';
import { containerConfig, DEFAULT_TERMINATION_GRACE_SECONDS, podDNS, sandboxConfig, type HostDNS } from './podconfig.ts';
import type { PodApi } from './podapi.ts';
import { networkIPs, sandboxIPs } from './podips.ts';
import { generatePodStatus, type WaitingReason } from './status.ts';
import type { StatusManager } from './statusmanager.ts';
import type { ProbeState, RuntimeContainer, RuntimePodStatus } from './types.ts';
import type { TrafficGate } from './trafficgate.ts';
import type { SyncResult } from './workers.ts';

/** Upstream's minimum grace for a kill (minimumGracePeriodInSeconds). */
const MIN_GRACE_SECONDS = 2;
/** The longest a deleted pod waits for the service proxy to stop routing to it (a proxy sync is about a second). */
const TRAFFIC_DRAIN_MAX_MS = 5_000;
/** How often volumes are set up again for running pods (ConfigMap and Secret updates). */
const VOLUME_REFRESH_MS = 60_000;
/** Retry for failures that have no back-off of their own (sandbox, config, mounts). */
const RETRY_MS = 5_000;

export type EventType = 'Normal' | 'Warning';

/** Where events go; `container` names the field path (spec.containers{name}). */
export interface PodEventSink {
  podEvent(pod: V1Pod, container: { name: string; init: boolean } | undefined, type: EventType, reason: string, message: string): void;
}

/** Builds a container's environment; throws NodeletError('CreateContainerConfigError', ...) for a missing reference. */
export type EnvBuilder = (pod: V1Pod, c: V1Container, ctx: { podIPs: string[]; hostIPs: string[] }) => Promise<KeyValue[]>;

/** Expands $(VAR) in command and args. */
export type CommandExpander = (c: V1Container, env: KeyValue[]) => { command: string[]; args: string[] };

/** A volume ready on the host. */
export interface HostVolume {
  hostPath: string;
  readOnly: boolean;
}

/** What the syncer needs of the volume manager (agent/volumes/manager.ts). */
export interface PodVolumeHost {
  /** Idempotent; throws NodeletError('FailedMount', ...) when a volume cannot be set up. */
  setUp(pod: V1Pod): Promise<Map<string, HostVolume>>;
  /** The container's mounts (volumes, subPaths, termination-message file); `env` resolves subPathExpr. */
  containerMounts(pod: V1Pod, c: V1Container, volumes: Map<string, HostVolume>, env?: Record<string, string>): Promise<{ mounts: Mount[] }>;
  tearDown(uid: string): Promise<void>;
}

export interface SyncerDeps {
  runtime: RuntimeService & ImageService;
  clock: Clock;
  log: Logger;
  events: PodEventSink;
  statuses: StatusManager;
  podApi: PodApi;
  env: EnvBuilder;
  expand: CommandExpander;
  volumes: PodVolumeHost;
  hooks: HookRunner;
  /** The pod's imagePullSecrets that exist. */
  pullSecrets: (pod: V1Pod) => Promise<V1Secret[]>;
  /** Probe verdicts by pod UID (empty until a prober is wired). */
  probes: (uid: string) => ProbeState;
  /** Told the runtime's view after each sync of a pod still wanted (the prober follows container instances with it). */
  onSynced?: (pod: V1Pod, runtime: RuntimePodStatus) => void;
  /** Told once a pod will run nothing again (terminal, or cleaned up): its probes stop. */
  onDone?: (uid: string) => void;
  /**
   * The API object whose status reports `pod` (a static pod's mirror);
   * undefined skips the report. Default: the pod itself.
   */
  statusTarget?: (pod: V1Pod) => V1Pod | undefined;
  /** This node's service proxy: a deleted pod is signalled once no new connection goes to it (see trafficgate.ts). */
  trafficGate?: TrafficGate;
}

export interface SyncerConfig {
  nodeName: string;
  hostIPs: string[];
  podLogsDir: string;
  clusterDNS: readonly string[];
  clusterDomain: string;
  hostDNS: () => HostDNS;
  memoryCapacityBytes: number;
}

interface PodState {
  waiting: Map<string, WaitingReason>;
  firstSeen: Date;
  volumesAt: number;
  volumes: Map<string, HostVolume> | undefined;
  /** Earliest time (ms) a back-off or pull retry wants another sync. */
  retryAt: number | undefined;
}

export class PodSyncer {
  private readonly d: SyncerDeps;
  private readonly cfg: SyncerConfig;
  private readonly crashBackoff: CrashLoopBackOff;
  private readonly images: ImageManager;
  private readonly state = new Map<string, PodState>();

  constructor(deps: SyncerDeps, cfg: SyncerConfig) {
    this.d = deps;
    this.cfg = cfg;
    this.crashBackoff = new CrashLoopBackOff(deps.clock);
    this.images = new ImageManager({ images: deps.runtime, clock: deps.clock });
  }

  private stateOf(uid: string): PodState {
    let s = this.state.get(uid);
    if (!s) {
      s = { waiting: new Map(), firstSeen: new Date(this.d.clock.now()), volumesAt: 0, volumes: undefined, retryAt: undefined };
      this.state.set(uid, s);
    }
    return s;
  }

  /**
   * One sync. `pod` undefined means the API no longer has it: everything the
   * runtime holds for `uid` is stopped and removed. `inspect` reads the
   * runtime's current view of the pod (after this sync's changes).
   */
  async sync(uid: string, pod: V1Pod | undefined, inspect: () => Promise<RuntimePodStatus>, kill: boolean): Promise<SyncResult> {
    const runtime = await inspect();
    if (!pod) return this.cleanup(uid, runtime);
    if (pod.metadata?.deletionTimestamp || kill) return this.terminate(pod, runtime, inspect);
    const phase = pod.status?.phase;
    if (phase === 'Succeeded' || phase === 'Failed' || podTerminalPhase(pod, runtime)) {
      return this.finish(pod, runtime, inspect);
    }
    return this.run(pod, runtime, inspect);
  }

  // ---- running ---------------------------------------------------------------

  private async run(pod: V1Pod, runtime: RuntimePodStatus, inspect: () => Promise<RuntimePodStatus>): Promise<SyncResult> {
    const uid = pod.metadata?.uid ?? '';
    const st = this.stateOf(uid);
    st.retryAt = undefined;
    const probes = this.d.probes(uid);
    const actions = computePodActions(pod, runtime, probes);
    const now = this.d.clock.now();
    const starting = actions.createSandbox || actions.initContainersToStart.length > 0 || actions.containersToStart.length > 0;

    if (starting || !st.volumes || now - st.volumesAt >= VOLUME_REFRESH_MS) {
      try {
        st.volumes = await this.d.volumes.setUp(pod);
        st.volumesAt = now;
      } catch (err) {
        this.d.events.podEvent(pod, undefined, 'Warning', 'FailedMount', describeError(err));
        this.requeue(st, now + RETRY_MS);
        if (starting) return this.report(pod, inspect, st);
      }
    }

    if (actions.killPod) await this.killPod(pod, runtime, this.gracePeriod(pod, false), !actions.createSandbox);

    let sandboxId = actions.sandboxId;
    // The pod's IPs, the node's primary family first (podIPs[0] is status.podIP).
    let podIPs = sandboxIPs(latestSandbox(runtime), this.cfg.hostIPs);
    const attempt = actions.attempt;
    let sbConfig: PodSandboxConfig | undefined;
    if (actions.createSandbox) {
      if (attempt > 0) this.d.events.podEvent(pod, undefined, 'Normal', 'SandboxChanged', 'Pod sandbox changed, it will be killed and re-created.');
      const dns = podDNS(pod, { clusterDNS: this.cfg.clusterDNS, clusterDomain: this.cfg.clusterDomain, host: this.cfg.hostDNS() });
      if (dns.warning) this.d.events.podEvent(pod, undefined, 'Warning', 'MissingClusterDNS', `pod: "${podName(pod)}". ${dns.warning}`);
      sbConfig = sandboxConfig(pod, attempt, { dns: dns.config, podLogsDir: this.cfg.podLogsDir });
      try {
        sandboxId = await this.d.runtime.runPodSandbox(sbConfig);
        const sst = await this.d.runtime.podSandboxStatus(sandboxId);
        podIPs = sandboxIPs(networkIPs(sst.status.network), this.cfg.hostIPs);
      } catch (err) {
        this.d.events.podEvent(pod, undefined, 'Warning', 'FailedCreatePodSandBox', `Failed to create pod sandbox: ${describeError(err)}`);
        this.requeue(st, now + RETRY_MS);
        return this.report(pod, inspect, st);
      }
    }
    if (!sandboxId) return this.report(pod, inspect, st);
    sbConfig ??= this.sandboxConfigFor(pod, latestSandbox(runtime)?.attempt ?? attempt);

    await Promise.all(actions.containersToKill.map((k) => {
      const rc = runtime.containers.find((c) => c.id === k.id);
      const spec = findContainer(pod, k.name);
      this.d.events.podEvent(pod, spec, 'Normal', 'Killing', k.message);
      const grace = k.reason === 'Unhealthy' && spec ? probeGracePeriod(spec.c, probes) : undefined;
      return this.killContainer(pod, rc, k.id, spec?.c, grace ?? this.gracePeriod(pod, false));
    }));

    const inits = pod.spec?.initContainers ?? [];
    for (const i of actions.initContainersToStart) {
      const c = inits[i];
      if (!c) continue;
      const ok = await this.startContainer(pod, c, true, sandboxId, sbConfig, podIPs, runtime, st);
      if (!ok) break;
    }
    const containers = pod.spec?.containers ?? [];
    for (const i of actions.containersToStart) {
      const c = containers[i];
      if (c) await this.startContainer(pod, c, false, sandboxId, sbConfig, podIPs, runtime, st);
    }
    return this.report(pod, inspect, st);
  }

  private sandboxConfigFor(pod: V1Pod, attempt: number): PodSandboxConfig {
    const dns = podDNS(pod, { clusterDNS: this.cfg.clusterDNS, clusterDomain: this.cfg.clusterDomain, host: this.cfg.hostDNS() });
    return sandboxConfig(pod, attempt, { dns: dns.config, podLogsDir: this.cfg.podLogsDir });
  }

  private requeue(st: PodState, at: number): void {
    st.retryAt = st.retryAt === undefined ? at : Math.min(st.retryAt, at);
  }

  /** Starts one container; false when it did not start (the reason is in `waiting`). */
  private async startContainer(
    pod: V1Pod,
    c: V1Container,
    init: boolean,
    sandboxId: string,
    sbConfig: PodSandboxConfig,
    podIPs: string[],
    runtime: RuntimePodStatus,
    st: PodState,
  ): Promise<boolean> {
    const ref = { name: c.name, init };
    const last = latestContainer(runtime, c.name);
    const fail = (reason: string, message: string, retryMs = RETRY_MS): false => {
      st.waiting.set(c.name, { reason, message });
      this.requeue(st, this.d.clock.now() + retryMs);
      return false;
    };

    if (last && last.state === CONTAINER_EXITED) {
      const b = this.crashBackoff.check(podRef(pod), c.name, containerHash(c), last.finishedAt > 0 ? Math.floor(last.finishedAt / 1e6) : undefined);
      if (b.inBackOff) {
        this.d.events.podEvent(pod, ref, 'Warning', 'BackOff', b.eventMessage);
        return fail('CrashLoopBackOff', b.message, Math.max(0, b.until - this.d.clock.now()) + 100);
      }
    }

    let secrets: V1Secret[] = [];
    try {
      secrets = await this.d.pullSecrets(pod);
    } catch (err) {
      this.d.log.warn('reading image pull secrets failed', { pod: podName(pod), err: describeError(err) });
    }
    const img = await this.images.ensureImage(pod, c, secrets);
    for (const e of img.events) this.d.events.podEvent(pod, ref, e.type, e.reason, e.message);
    if (!img.ok) {
      const retry = this.images.retryAfterMs(pod, c.image ?? '');
      return fail(img.reason, img.message, retry > 0 ? retry + 100 : RETRY_MS);
    }

    let envs: KeyValue[];
    let mounts: Mount[];
    try {
      envs = await this.d.env(pod, c, { podIPs, hostIPs: this.cfg.hostIPs });
      const env = Object.fromEntries(envs.map((e) => [e.key, e.value]));
      mounts = (await this.d.volumes.containerMounts(pod, c, st.volumes ?? new Map(), env)).mounts;
    } catch (err) {
      const message = describeError(err);
      this.d.events.podEvent(pod, ref, 'Warning', 'Failed', `Error: ${message}`);
      return fail('CreateContainerConfigError', message);
    }
    const { command, args } = this.d.expand(c, envs);
    const restartCount = last ? last.restartCount + 1 : 0;
    const config = containerConfig(pod, c, {
      restartCount,
      imageRef: img.imageRef,
      envs,
      mounts,
      command,
      args,
      memoryCapacityBytes: this.cfg.memoryCapacityBytes,
    });
    let id: string;
    try {
      id = await this.d.runtime.createContainer(sandboxId, config, sbConfig);
    } catch (err) {
      const message = describeError(err);
      this.d.events.podEvent(pod, ref, 'Warning', 'Failed', `Error: ${message}`);
      return fail('CreateContainerError', message);
    }
    this.d.events.podEvent(pod, ref, 'Normal', 'Created', `Created container: ${c.name}`);
    try {
      await this.d.runtime.startContainer(id);
    } catch (err) {
      const message = describeError(err);
      this.d.events.podEvent(pod, ref, 'Warning', 'Failed', `Error: ${message}`);
      return fail('RunContainerError', message);
    }
    this.d.events.podEvent(pod, ref, 'Normal', 'Started', `Started container ${c.name}`);
    st.waiting.delete(c.name);

    if (c.lifecycle?.postStart) {
      const err = await this.d.hooks.run(id, pod, c, c.lifecycle.postStart, podIPs[0] ?? '', this.gracePeriod(pod, false));
      if (err) {
        // The message stays out of the event so secrets cannot leak (as upstream).
        this.d.events.podEvent(pod, ref, 'Warning', 'FailedPostStartHook', 'PostStartHook failed');
        this.d.log.info('postStart hook failed; killing the container', { pod: podName(pod), container: c.name, err });
        await this.killContainer(pod, undefined, id, undefined, this.gracePeriod(pod, false));
        return false;
      }
    }
    return true;
  }

  // ---- killing ---------------------------------------------------------------

  private gracePeriod(pod: V1Pod, deleting: boolean): number {
    const g = deleting && pod.metadata?.deletionGracePeriodSeconds !== undefined
      ? pod.metadata.deletionGracePeriodSeconds
      : (pod.spec?.terminationGracePeriodSeconds ?? DEFAULT_TERMINATION_GRACE_SECONDS);
    return g;
  }

  /**
   * Stops one container: preStop hook (within the grace period), then
   * SIGTERM, SIGKILL after what is left of the grace (at least 2 s).
   */
  private async killContainer(pod: V1Pod | undefined, rc: RuntimeContainer | undefined, id: string, spec: V1Container | undefined, graceSeconds: number): Promise<void> {
    let grace = graceSeconds;
    const preStop = spec?.lifecycle?.preStop;
    if (preStop && pod && (!rc || rc.state === CONTAINER_RUNNING)) {
      const started = this.d.clock.now();
      const err = await this.d.hooks.run(id, pod, spec, preStop, '', grace);
      if (err) {
        this.d.events.podEvent(pod, { name: spec.name, init: false }, 'Warning', 'FailedPreStopHook', `PreStopHook failed`);
        this.d.log.info('preStop hook failed', { pod: podName(pod), container: spec.name, err });
      }
      grace -= Math.floor((this.d.clock.now() - started) / 1000);
    }
    if (grace < MIN_GRACE_SECONDS) grace = MIN_GRACE_SECONDS;
    try {
      await this.d.runtime.stopContainer(id, grace);
    } catch (err) {
      this.d.log.warn('stopping a container failed', { id, err: describeError(err) });
    }
  }

  /** Stops every running container (in parallel), then the sandboxes. */
  private async killPod(pod: V1Pod | undefined, runtime: RuntimePodStatus, graceSeconds: number, events: boolean): Promise<void> {
    const running = runtime.containers.filter((c) => c.state === CONTAINER_RUNNING || c.state === 'CONTAINER_UNKNOWN');
    await Promise.all(running.map((rc) => {
      const spec = pod ? findContainer(pod, rc.name) : undefined;
      if (pod && events) this.d.events.podEvent(pod, spec, 'Normal', 'Killing', `Stopping container ${rc.name}`);
      return this.killContainer(pod, rc, rc.id, spec?.c, graceSeconds);
    }));
    for (const sb of runtime.sandboxes) {
      if (sb.state !== SANDBOX_READY) continue;
      try {
        await this.d.runtime.stopPodSandbox(sb.id);
      } catch (err) {
        this.d.log.warn('stopping a sandbox failed', { id: sb.id, err: describeError(err) });
      }
    }
  }

  /**
   * A pod deleted with a grace period still has running containers: wait
   * until the proxy sends no new connections to its IPs, at most
   * TRAFFIC_DRAIN_MAX_MS and half the grace. Returns the whole seconds spent
   * (they come off the grace the containers get).
   */
  private async drainTraffic(pod: V1Pod, runtime: RuntimePodStatus, graceSeconds: number): Promise<number> {
    const gate = this.d.trafficGate;
    if (!gate || graceSeconds <= 0 || pod.spec?.hostNetwork) return 0;
    if (!runtime.containers.some((c) => c.state === CONTAINER_RUNNING)) return 0;
    const ips = (pod.status?.podIPs ?? []).map((p) => p.ip).filter((ip): ip is string => !!ip);
    if (ips.length === 0 && pod.status?.podIP) ips.push(pod.status.podIP);
    if (ips.length === 0) return 0;
    const started = this.d.clock.now();
    const result = await gate.waitUnrouted(ips, Math.min(TRAFFIC_DRAIN_MAX_MS, (graceSeconds * 1000) / 2));
    const ms = this.d.clock.now() - started;
    this.d.log.info('pod traffic drained before stopping', { pod: podName(pod), result, ms });
    return Math.floor(ms / 1000);
  }

  /** Deletion asked for: kill with the deletion's grace, report the final status, then delete with grace 0. */
  private async terminate(pod: V1Pod, runtime: RuntimePodStatus, inspect: () => Promise<RuntimePodStatus>): Promise<SyncResult> {
    const uid = pod.metadata?.uid ?? '';
    const grace = this.gracePeriod(pod, true);
    const waited = await this.drainTraffic(pod, runtime, grace);
    await this.killPod(pod, runtime, grace - waited, true);
    const after = await inspect();
    this.d.onSynced?.(pod, after);
    if (after.containers.some((c) => c.state === CONTAINER_RUNNING)) return { requeueAfterMs: 1000 };
    const st = this.stateOf(uid);
    await this.setStatus(pod, this.status(pod, after, st, true));
    if (pod.metadata?.deletionTimestamp) {
      await this.d.podApi.deletePod(pod.metadata.namespace ?? 'default', pod.metadata.name ?? '', uid);
    }
    return {};
  }

  /** The pod reached a terminal phase: make sure nothing runs, report it. */
  private async finish(pod: V1Pod, runtime: RuntimePodStatus, inspect: () => Promise<RuntimePodStatus>): Promise<SyncResult> {
    const uid = pod.metadata?.uid ?? '';
    const running = runtime.containers.some((c) => c.state === CONTAINER_RUNNING) || runtime.sandboxes.some((s) => s.state === SANDBOX_READY);
    let after = runtime;
    if (running) {
      await this.killPod(pod, runtime, this.gracePeriod(pod, false), false);
      after = await inspect();
    }
    this.d.onDone?.(uid);
    await this.setStatus(pod, this.status(pod, after, this.stateOf(uid), true));
    return {};
  }

  /** The API has no such pod any more: remove what is left of it. */
  private async cleanup(uid: string, runtime: RuntimePodStatus): Promise<SyncResult> {
    await this.killPod(undefined, runtime, MIN_GRACE_SECONDS, false);
    for (const sb of runtime.sandboxes) {
      try {
        await this.d.runtime.removePodSandbox(sb.id);
      } catch (err) {
        this.d.log.warn('removing a sandbox failed', { id: sb.id, err: describeError(err) });
        return { requeueAfterMs: RETRY_MS };
      }
    }
    try {
      await this.d.volumes.tearDown(uid);
    } catch (err) {
      this.d.log.warn('tearing down volumes failed', { uid, err: describeError(err) });
      return { requeueAfterMs: RETRY_MS };
    }
    this.state.delete(uid);
    this.d.statuses.forget(uid);
    this.d.onDone?.(uid);
    this.images.forgetPod(uid);
    return { done: true };
  }

  // ---- status ------------------------------------------------------------------

  private status(pod: V1Pod, runtime: RuntimePodStatus, st: PodState, terminal: boolean) {
    // Reasons only for containers that are not running now.
    for (const name of [...st.waiting.keys()]) {
      const c = latestContainer(runtime, name);
      if (c && c.state === CONTAINER_RUNNING) st.waiting.delete(name);
    }
    return generatePodStatus(pod, runtime, {
      probes: this.d.probes(pod.metadata?.uid ?? ''),
      waiting: st.waiting,
      hostIPs: this.cfg.hostIPs,
      now: new Date(this.d.clock.now()),
      startTime: st.firstSeen,
      podIsTerminal: terminal,
    });
  }

  private async setStatus(pod: V1Pod, status: V1PodStatus): Promise<void> {
    const target = this.d.statusTarget ? this.d.statusTarget(pod) : pod;
    if (target) await this.d.statuses.setStatus(target, status);
  }

  private async report(pod: V1Pod, inspect: () => Promise<RuntimePodStatus>, st: PodState): Promise<SyncResult> {
    const after = await inspect();
    // Before the status: new container instances must not inherit the old ones' verdicts.
    this.d.onSynced?.(pod, after);
    try {
      await this.setStatus(pod, this.status(pod, after, st, false));
    } catch (err) {
      this.d.log.warn('pod status update failed', { pod: podName(pod), code: errorCode(err), err: describeError(err) });
      this.requeue(st, this.d.clock.now() + RETRY_MS);
    }
    return st.retryAt === undefined ? {} : { requeueAfterMs: Math.max(0, st.retryAt - this.d.clock.now()) };
  }
}

/**
 * The failed probe's own terminationGracePeriodSeconds, as upstream's
 * killContainer: the startup probe's while the container has not started,
 * else the liveness probe's; undefined when the probe sets none.
 */
export function probeGracePeriod(c: V1Container, probes: ProbeState): number | undefined {
  const probe = c.startupProbe && !probes.started?.has(c.name) ? c.startupProbe : c.livenessProbe;
  return probe?.terminationGracePeriodSeconds;
}

function podName(pod: V1Pod): string {
  return `${pod.metadata?.namespace ?? 'default'}/${pod.metadata?.name ?? ''}`;
}

function podRef(pod: V1Pod): { name: string; namespace: string; uid: string } {
  return { name: pod.metadata?.name ?? '', namespace: pod.metadata?.namespace ?? 'default', uid: pod.metadata?.uid ?? '' };
}

function findContainer(pod: V1Pod, name: string): { name: string; init: boolean; c: V1Container } | undefined {
  const app = pod.spec?.containers?.find((c) => c.name === name);
  if (app) return { name, init: false, c: app };
  const init = pod.spec?.initContainers?.find((c) => c.name === name);
  return init ? { name, init: true, c: init } : undefined;
}
