// The pod loop of the agent: pods bound to this node come from an informer
// (spec.nodeName field selector), runtime changes from the PLEG, and a
// periodic resync; each becomes a request to the pod workers, which run the
// syncer one pod at a time. Pods the runtime holds that the API does not know
// (after the informer has synced) are cleaned up. New pods pass admission
// first: one that does not fit ends Failed instead of running. Static pods
// come from the manifest directory (re-read every 20 s, as upstream's file
// source); each gets a mirror pod in the API server, which carries its status.
import type { V1Pod } from '@kubernetes/client-node';
import type { Clock } from '../../lib/clock.ts';
import { describeError } from '../../lib/errors.ts';
import type { Informer } from '../../lib/informer.ts';
import type { Logger } from '../../lib/log.ts';
import { admitPod } from './admission.ts';
import type { Pleg } from './pleg.ts';
import type { RuntimePodCache } from './runtimepods.ts';
import type { PodApi } from './podapi.ts';
import { ANNOTATION_CONFIG_MIRROR, isMirrorPod, isStaticPod, mirrorPodFor, readStaticPods } from './static.ts';
import type { StatusManager } from './statusmanager.ts';
import type { PodSyncer } from './syncer.ts';
import type { RuntimePodStatus } from './types.ts';
import { PodWorkers } from './workers.ts';

export interface PodManagerDeps {
  informer: Informer<V1Pod>;
  cache: RuntimePodCache;
  pleg: Pleg;
  syncer: PodSyncer;
  statuses: StatusManager;
  clock: Clock;
  log: Logger;
  /** The node's allocatable (cpu, memory, pods, ...) for admission. */
  allocatable: () => Record<string, string>;
  syncFrequencyMs: number;
  podApi: PodApi;
  nodeName: string;
  /** The Node object's UID (mirror pods are owned by it); '' when unknown. */
  nodeUid: () => Promise<string>;
  /** Upstream's staticPodPath; '' disables static pods. */
  staticPodPath: string;
}

/** Upstream's fileCheckFrequency. */
export const STATIC_POD_CHECK_MS = 20_000;

const key = (pod: V1Pod) => `${pod.metadata?.namespace ?? 'default'}/${pod.metadata?.name ?? ''}`;

function isTerminal(pod: V1Pod): boolean {
  const p = pod.status?.phase;
  return p === 'Succeeded' || p === 'Failed';
}

export class PodManager {
  private readonly d: PodManagerDeps;
  readonly workers: PodWorkers;
  private readonly pods = new Map<string, V1Pod>();
  /** UIDs admitted to run here (or already running when we started). */
  private readonly admitted = new Set<string>();
  private readonly rejected = new Set<string>();
  /** Mirror pods in the API, by namespace/name. */
  private readonly mirrors = new Map<string, V1Pod>();
  /** Static pods by UID. */
  private readonly statics = new Map<string, V1Pod>();
  private readonly staticErrors = new Set<string>();

  constructor(deps: PodManagerDeps) {
    this.d = deps;
    this.workers = new PodWorkers({ sync: (req) => this.syncOne(req.uid, req.kill), clock: deps.clock, log: deps.log });
    deps.informer.addHandler({
      onAdd: (pod) => this.upsert(pod),
      onUpdate: (_old, pod) => this.upsert(pod),
      onDelete: (pod) => {
        if (isMirrorPod(pod)) {
          this.mirrors.delete(key(pod));
          this.touchStatic(key(pod));
          return;
        }
        const uid = pod.metadata?.uid ?? '';
        this.pods.delete(uid);
        this.workers.update(uid, true);
      },
    });
  }

  /** Called by the PLEG for every pod whose runtime state changed. */
  onRuntimeChange(uid: string): void {
    this.workers.update(uid);
  }

  /** Starts the resync loop; the informer and PLEG are started by the caller. */
  start(signal: AbortSignal): void {
    void this.resyncLoop(signal);
    if (this.d.staticPodPath) void this.staticLoop(signal);
  }

  /** Reads the manifests; new or changed ones start, removed ones stop (an edit is a new UID). */
  refreshStatic(): void {
    const { pods, errors } = readStaticPods(this.d.staticPodPath, this.d.nodeName);
    for (const e of errors) {
      if (!this.staticErrors.has(e)) this.d.log.warn('static pod manifest skipped', { error: e });
    }
    this.staticErrors.clear();
    for (const e of errors) this.staticErrors.add(e);
    const next = new Map(pods.map((p) => [p.metadata?.uid ?? '', p]));
    for (const [uid, p] of this.statics) {
      if (next.has(uid)) continue;
      this.statics.delete(uid);
      this.pods.delete(uid);
      this.workers.update(uid, true);
      const m = this.mirrors.get(key(p));
      if (m && m.metadata?.annotations?.[ANNOTATION_CONFIG_MIRROR] === uid) {
        void this.d.podApi.deletePod(m.metadata?.namespace ?? 'default', m.metadata?.name ?? '', m.metadata?.uid ?? '').catch((err) =>
          this.d.log.warn('deleting a mirror pod failed', { pod: key(p), err: describeError(err) }));
      }
    }
    for (const [uid, p] of next) {
      if (this.statics.has(uid)) continue;
      this.statics.set(uid, p);
      this.pods.set(uid, p);
      this.workers.update(uid);
    }
  }

  private async staticLoop(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      try {
        this.refreshStatic();
      } catch (err) {
        this.d.log.warn('reading static pods failed', { err: describeError(err) });
      }
      await this.d.clock.sleep(STATIC_POD_CHECK_MS, signal);
    }
  }

  /** Makes the API's mirror of a static pod match it (created, or replaced when stale). */
  private async ensureMirror(pod: V1Pod): Promise<void> {
    const m = this.mirrors.get(key(pod));
    const uid = pod.metadata?.uid ?? '';
    if (m && m.metadata?.annotations?.[ANNOTATION_CONFIG_MIRROR] === uid && !m.metadata?.deletionTimestamp) return;
    try {
      if (m && !m.metadata?.deletionTimestamp) await this.d.podApi.deletePod(m.metadata?.namespace ?? 'default', m.metadata?.name ?? '', m.metadata?.uid ?? '');
      if (m) return; // the informer tells us when it is gone; create then
      const created = await this.d.podApi.createPod(mirrorPodFor(pod, { name: this.d.nodeName, uid: await this.d.nodeUid() }));
      this.mirrors.set(key(pod), created);
    } catch (err) {
      this.d.log.warn('mirror pod not in sync', { pod: key(pod), err: describeError(err) });
    }
  }

  stop(): void {
    this.workers.stop();
  }

  /** UIDs of the pods this node should run (API and static). */
  uids(): string[] {
    return [...this.pods.keys()];
  }

  get(uid: string): V1Pod | undefined {
    return this.pods.get(uid);
  }

  /** The API object that reports `pod`'s status: itself, or a static pod's mirror (undefined until it exists). */
  statusTarget(pod: V1Pod): V1Pod | undefined {
    if (!isStaticPod(pod)) return pod;
    const m = this.mirrors.get(key(pod));
    return m && m.metadata?.annotations?.[ANNOTATION_CONFIG_MIRROR] === pod.metadata?.uid ? m : undefined;
  }

  private touchStatic(k: string): void {
    for (const [uid, p] of this.statics) if (key(p) === k) this.workers.update(uid);
  }

  private upsert(pod: V1Pod): void {
    if (isMirrorPod(pod)) {
      this.mirrors.set(key(pod), pod);
      this.touchStatic(key(pod));
      return;
    }
    const uid = pod.metadata?.uid ?? '';
    if (!uid) return;
    this.pods.set(uid, pod);
    this.workers.update(uid);
  }

  private async resyncLoop(signal: AbortSignal): Promise<void> {
    try {
      await this.d.informer.waitForSync(signal);
    } catch {
      return;
    }
    // Pods running before a restart are ours already: never re-admit them.
    try {
      await this.d.pleg.relistNow();
    } catch (err) {
      this.d.log.warn('first runtime relist failed', { err: describeError(err) });
    }
    for (const p of this.d.cache.pods()) this.admitted.add(p.uid);
    while (!signal.aborted) {
      for (const uid of this.pods.keys()) this.workers.update(uid);
      // Orphans: in the runtime, unknown to the API.
      for (const p of this.d.cache.pods()) if (!this.pods.has(p.uid)) this.workers.update(p.uid, true);
      await this.d.clock.sleep(this.d.syncFrequencyMs, signal);
    }
  }

  /** The pod's runtime state now (a failed read throws: acting on a stale view could duplicate a sandbox). */
  private inspect(uid: string): Promise<RuntimePodStatus> {
    return this.d.cache.inspectPod(uid);
  }

  private async syncOne(uid: string, kill: boolean) {
    let pod = this.pods.get(uid);
    if (!this.d.informer.hasSynced()) return { requeueAfterMs: 1000 };
    if (pod && this.statics.has(uid)) {
      await this.ensureMirror(pod);
      // The mirror holds what we last reported (restart counts, last states, start time).
      const m = this.statusTarget(pod);
      if (m?.status) pod = { ...pod, status: m.status };
    }
    if (pod && !kill && !this.admitted.has(uid) && !isTerminal(pod) && !pod.metadata?.deletionTimestamp) {
      if (!(await this.admit(pod))) return {};
    }
    const result = await this.d.syncer.sync(uid, pod, () => this.inspect(uid), kill);
    if (result.done) {
      this.admitted.delete(uid);
      this.rejected.delete(uid);
    }
    return result;
  }

  /** Admission for a pod seen for the first time; false when it was rejected (and marked Failed). */
  private async admit(pod: V1Pod): Promise<boolean> {
    const uid = pod.metadata?.uid ?? '';
    if (this.rejected.has(uid)) return false;
    const others = [...this.admitted].map((u) => this.pods.get(u)).filter((p): p is V1Pod => !!p && !isTerminal(p));
    const r = admitPod(pod, others, this.d.allocatable());
    if (r.admit) {
      this.admitted.add(uid);
      return true;
    }
    this.rejected.add(uid);
    this.d.log.info('pod rejected at admission', { pod: `${pod.metadata?.namespace}/${pod.metadata?.name}`, reason: r.reason });
    await this.d.statuses.setStatus(pod, {
      ...(pod.status ?? {}),
      phase: 'Failed',
      reason: r.reason ?? 'UnexpectedAdmissionError',
      message: `Pod was rejected: ${r.message ?? ''}`,
    });
    return false;
  }
}
