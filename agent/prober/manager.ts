// The prober manager (upstream's prober.Manager): keeps one worker per
// (pod, container, probe type) in step with what the syncer last saw, and
// answers the pod machinery's questions by container name (ProbeState) for
// the container instances running now. A changed verdict asks for a sync of
// the pod (onChange); the sync decides (restart on liveness/startup failure,
// ready from readiness) and then hands the prober its fresh view (syncPod).
import type { V1Container, V1Pod, V1Probe } from '@kubernetes/client-node';
import type { Registry } from 'prom-client';
import { CONTAINER_RUNNING } from '../../cri/api.ts';
import type { RuntimeService } from '../../cri/runtime.ts';
import type { Clock } from '../../lib/clock.ts';
import type { Logger } from '../../lib/log.ts';
import { latestContainer, latestSandbox } from '../pod/actions.ts';
import { sandboxIPs } from '../pod/podips.ts';
import type { PodEventSink } from '../pod/syncer.ts';
import type { ProbeState, RuntimePodStatus } from '../pod/types.ts';
import { ProberMetrics } from './metrics.ts';
import { RuntimeProber, type ProbeRunner, type ProbeType } from './prober.ts';
import { SlotTimer } from './slots.ts';
import { ProbeWorker, type WorkerHost } from './worker.ts';

export interface ProbeManagerDeps {
  runtime: Pick<RuntimeService, 'execSync'>;
  clock: Clock;
  log: Logger;
  registry: Registry;
  events: PodEventSink;
  /** A verdict changed: sync the pod (main wires the pod manager's onRuntimeChange). */
  onChange: (uid: string) => void;
  /** Runs probes; default RuntimeProber (exec through the runtime, network probes from here). */
  runner?: ProbeRunner;
  /** In [0, 1): where in the period a worker's first probe falls at nodelet start. */
  random?: () => number;
  /** Told how late (ms) each scheduled probe starts against its worker's ticker (benchmarks). */
  onProbeLateness?: (ms: number) => void;
  /** The node's IPs, primary first: a dual-stack pod is probed on its IP of the node's primary family (status.podIP). */
  hostIPs?: readonly string[];
}

interface Wanted {
  container: V1Container;
  init: boolean;
  type: ProbeType;
  probe: V1Probe;
}

/** The probes a pod's containers declare: app containers and sidecars (restartable init containers). */
export function wantedProbes(pod: V1Pod): Wanted[] {
  const out: Wanted[] = [];
  const add = (c: V1Container, init: boolean) => {
    if (c.startupProbe) out.push({ container: c, init, type: 'startup', probe: c.startupProbe });
    if (c.livenessProbe) out.push({ container: c, init, type: 'liveness', probe: c.livenessProbe });
    if (c.readinessProbe) out.push({ container: c, init, type: 'readiness', probe: c.readinessProbe });
  };
  for (const c of pod.spec?.initContainers ?? []) if (c.restartPolicy === 'Always') add(c, true);
  for (const c of pod.spec?.containers ?? []) add(c, false);
  return out;
}

const workerKey = (name: string, type: ProbeType) => `${name}\u0000${type}`;

export class ProbeManager {
  private readonly d: ProbeManagerDeps;
  private readonly host: WorkerHost;
  private readonly pods = new Map<string, Map<string, ProbeWorker>>();
  private readonly startedAt: number;
  private inFlight = 0;

  constructor(deps: ProbeManagerDeps) {
    this.d = deps;
    this.startedAt = deps.clock.now();
    const random = deps.random ?? Math.random;
    this.host = {
      clock: deps.clock,
      slots: new SlotTimer(deps.clock),
      log: deps.log,
      runner: deps.runner ?? new RuntimeProber({ runtime: deps.runtime }),
      metrics: new ProberMetrics(deps.registry),
      events: deps.events,
      isStarted: (uid, name, id) => this.isStarted(uid, name, id),
      changed: (uid) => deps.onChange(uid),
      // Right after a (re)start every worker begins at once: spread them over their period.
      firstDelayMs: (periodMs) => (deps.clock.now() - this.startedAt < periodMs ? Math.floor(random() * periodMs) : 0),
      probing: (delta) => {
        this.inFlight += delta;
      },
      late: deps.onProbeLateness,
    };
  }

  /**
   * The pod as the last sync saw it (called at the end of every sync, before
   * its status is generated): workers start, follow new container instances,
   * and stop with the pod. Not-yet-passing readiness and startup probes of
   * running containers are triggered (upstream's UpdatePodStatus does too).
   */
  syncPod(pod: V1Pod, runtime: RuntimePodStatus): void {
    const uid = pod.metadata?.uid ?? '';
    if (!uid) return;
    const phase = pod.status?.phase;
    if (phase === 'Succeeded' || phase === 'Failed') return this.removePod(uid);
    const wanted = wantedProbes(pod);
    let workers = this.pods.get(uid);
    if (!workers) {
      if (wanted.length === 0) return;
      workers = new Map();
      this.pods.set(uid, workers);
    }
    // A host-network pod's IP is its node's (the sandbox has none of its own).
    const podIP = sandboxIPs(latestSandbox(runtime), this.d.hostIPs ?? [])[0] || pod.status?.podIP || (pod.spec?.hostNetwork ? pod.status?.hostIP : '') || '';
    const keep = new Set<string>();
    const fresh = new Set<ProbeWorker>();
    for (const w of wanted) {
      const k = workerKey(w.container.name, w.type);
      keep.add(k);
      const view = { pod, container: w.container, init: w.init, probe: w.probe, current: latestContainer(runtime, w.container.name), podIP };
      const existing = workers.get(k);
      if (existing) existing.update(view);
      else {
        const nw = new ProbeWorker(this.host, uid, w.type, view);
        workers.set(k, nw);
        fresh.add(nw); // probes right away (or after its spread delay) anyway
      }
    }
    for (const [k, w] of workers) {
      if (keep.has(k)) continue;
      w.stop();
      workers.delete(k);
    }
    for (const w of workers.values()) {
      if (w.type === 'liveness' || w.verdict === 'success' || fresh.has(w)) continue;
      const c = latestContainer(runtime, w.name);
      if (c && c.state === CONTAINER_RUNNING) w.trigger();
    }
  }

  /** The pod is gone (or done): its workers stop. */
  removePod(uid: string): void {
    const workers = this.pods.get(uid);
    if (!workers) return;
    for (const w of workers.values()) w.stop();
    this.pods.delete(uid);
  }

  /** Verdicts for the container instances the workers follow, by container name. */
  state(uid: string): ProbeState {
    const workers = this.pods.get(uid);
    if (!workers) return {};
    const unhealthy = new Set<string>();
    const ready = new Set<string>();
    const started = new Set<string>();
    for (const w of workers.values()) {
      const v = w.verdictFor(w.containerId);
      if (v === undefined) continue;
      if (w.type === 'readiness' && v === 'success') ready.add(w.name);
      if (w.type === 'startup' && v === 'success') started.add(w.name);
      if (w.type !== 'readiness' && v === 'failure') unhealthy.add(w.name);
    }
    return { unhealthy, ready, started };
  }

  private isStarted(uid: string, name: string, containerId: string): boolean {
    const w = this.pods.get(uid)?.get(workerKey(name, 'startup'));
    return w !== undefined && w.verdictFor(containerId) === 'success';
  }

  /** Pods with workers (for tests and metrics). */
  podCount(): number {
    return this.pods.size;
  }

  /** Probes running right now. */
  get probing(): number {
    return this.inFlight;
  }

  stop(): void {
    for (const uid of [...this.pods.keys()]) this.removePod(uid);
  }
}
