// Pod lifecycle event generator, after upstream's GenericPLEG
// (pkg/kubelet/pleg/generic.go): relist the runtime every second (and at once
// when kicked, e.g. on a Docker event: events only hint, the relist decides),
// compare each container's and sandbox's state with the previous relist, and
// tell the pod workers which pods changed. Health is "a relist succeeded in
// the last 3 minutes", as upstream's.
import { Gauge, Histogram, type Registry } from 'prom-client';
import {
  CONTAINER_CREATED,
  CONTAINER_EXITED,
  CONTAINER_RUNNING,
  CONTAINER_UNKNOWN,
  SANDBOX_READY,
  type ContainerState,
  type PodSandboxState,
} from '../../cri/runtime.ts';
import type { Clock } from '../../lib/clock.ts';
import { describeError, NodeletError } from '../../lib/errors.ts';
import type { Logger } from '../../lib/log.ts';
import type { RuntimePodCache } from './runtimepods.ts';
import type { RuntimePodStatus } from './types.ts';
import { goDuration } from '../../lib/kube/time.ts';

export const RELIST_PERIOD_MS = 1000;
/** Upstream's relistThreshold: PLEG is unhealthy when no relist succeeded for this long. */
export const RELIST_THRESHOLD_MS = 3 * 60 * 1000;

export type PodLifecycleEventType = 'ContainerStarted' | 'ContainerDied' | 'ContainerRemoved' | 'ContainerChanged';

export interface PodLifecycleEvent {
  type: PodLifecycleEventType;
  /** The container's id, or the sandbox's when `sandbox`. */
  id: string;
  /** Upstream treats sandboxes as containers here; this says which it was. */
  sandbox: boolean;
}

/** Upstream's plegContainerState: what a state change means to the PLEG. */
export type PlegState = 'running' | 'exited' | 'unknown' | 'non-existent';

export function containerPlegState(s: ContainerState): PlegState {
  if (s === CONTAINER_RUNNING) return 'running';
  if (s === CONTAINER_EXITED) return 'exited';
  // Created counts as unknown, as upstream ("kubelet doesn't use the created state yet").
  return 'unknown';
}

export function sandboxPlegState(s: PodSandboxState): PlegState {
  return s === SANDBOX_READY ? 'running' : 'exited';
}

/** Upstream's generateEvents for one container (or sandbox) id. */
export function generateEvents(id: string, sandbox: boolean, oldState: PlegState, newState: PlegState): PodLifecycleEvent[] {
  if (oldState === newState) return [];
  const ev = (type: PodLifecycleEventType): PodLifecycleEvent => ({ type, id, sandbox });
  switch (newState) {
    case 'running':
      return [ev('ContainerStarted')];
    case 'exited':
      return [ev('ContainerDied')];
    case 'unknown':
      return [ev('ContainerChanged')];
    case 'non-existent':
      // An exited one was already reported as died.
      return oldState === 'exited' ? [ev('ContainerRemoved')] : [ev('ContainerDied'), ev('ContainerRemoved')];
  }
}

function podStates(p: RuntimePodStatus | undefined): Map<string, { sandbox: boolean; state: PlegState }> {
  const out = new Map<string, { sandbox: boolean; state: PlegState }>();
  for (const s of p?.sandboxes ?? []) out.set(s.id, { sandbox: true, state: sandboxPlegState(s.state) });
  for (const c of p?.containers ?? []) out.set(c.id, { sandbox: false, state: containerPlegState(c.state) });
  return out;
}

/**
 * Events per pod UID between two relists (pure). Ids present now come first
 * in the view's order, then the removed ones; pods without events are absent.
 */
export function diffRelists(
  prev: ReadonlyMap<string, RuntimePodStatus>,
  next: ReadonlyMap<string, RuntimePodStatus>,
): Map<string, PodLifecycleEvent[]> {
  const out = new Map<string, PodLifecycleEvent[]>();
  const uids = new Set([...next.keys(), ...prev.keys()]);
  for (const uid of uids) {
    const before = podStates(prev.get(uid));
    const after = podStates(next.get(uid));
    const events: PodLifecycleEvent[] = [];
    for (const [id, now] of after) events.push(...generateEvents(id, now.sandbox, before.get(id)?.state ?? 'non-existent', now.state));
    for (const [id, was] of before) if (!after.has(id)) events.push(...generateEvents(id, was.sandbox, was.state, 'non-existent'));
    if (events.length > 0) out.set(uid, events);
  }
  return out;
}

export class PlegMetrics {
  readonly relistDuration: Histogram;
  readonly relistInterval: Histogram;
  readonly lastSeen: Gauge;
  readonly runningPods: Gauge;
  readonly runningContainers: Gauge<'container_state'>;

  constructor(registry: Registry) {
    const registers = [registry];
    // Upstream uses the default buckets (prom-client's are the same).
    this.relistDuration = new Histogram({
      name: 'kubelet_pleg_relist_duration_seconds',
      help: 'Duration in seconds for relisting pods in PLEG.',
      registers,
    });
    this.relistInterval = new Histogram({
      name: 'kubelet_pleg_relist_interval_seconds',
      help: 'Interval in seconds between relisting in PLEG.',
      registers,
    });
    this.lastSeen = new Gauge({
      name: 'kubelet_pleg_last_seen_seconds',
      help: 'Timestamp in seconds when PLEG was last seen active.',
      registers,
    });
    this.runningPods = new Gauge({
      name: 'kubelet_running_pods',
      help: 'Number of pods that have a running pod sandbox',
      registers,
    });
    this.runningContainers = new Gauge({
      name: 'kubelet_running_containers',
      help: 'Number of containers currently running',
      labelNames: ['container_state'],
      registers,
    });
  }
}

const STATE_LABEL: Record<ContainerState, string> = {
  [CONTAINER_CREATED]: 'created',
  [CONTAINER_RUNNING]: 'running',
  [CONTAINER_EXITED]: 'exited',
  [CONTAINER_UNKNOWN]: 'unknown',
};

export interface PlegOptions {
  cache: RuntimePodCache;
  clock: Clock;
  log: Logger;
  registry: Registry;
  /**
   * Called once per relist for each pod with events, after the cache holds
   * the new view. Should only schedule work; a throw or rejection is logged.
   */
  onPodChanged: (uid: string, events: PodLifecycleEvent[]) => void | Promise<void>;
  periodMs?: number;
  thresholdMs?: number;
}

export interface PlegHealth {
  ok: boolean;
  /** Why not, worded as upstream ('' when ok). */
  message: string;
}

interface Waiters {
  promise: Promise<void>;
  resolve: () => void;
  reject: (err: unknown) => void;
}

function waiters(): Waiters {
  let resolve: () => void = () => {};
  let reject: (err: unknown) => void = () => {};
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

export class Pleg {
  private readonly cache: RuntimePodCache;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly metrics: PlegMetrics;
  private readonly onPodChanged: PlegOptions['onPodChanged'];
  private readonly periodMs: number;
  private readonly thresholdMs: number;
  private previous: ReadonlyMap<string, RuntimePodStatus> = new Map();
  /** Start time (ms) of the last successful relist; 0 = none yet. */
  private lastSuccessMs = 0;
  private lastStartMs = 0;
  private inflight: Promise<void> | undefined;
  /** Callers waiting for a relist that has not started yet (they all share the next one). */
  private pending: Waiters | undefined;
  private abort: AbortController | undefined;
  private done: Promise<void> | undefined;

  constructor(opts: PlegOptions) {
    this.cache = opts.cache;
    this.clock = opts.clock;
    this.log = opts.log;
    this.metrics = new PlegMetrics(opts.registry);
    this.onPodChanged = opts.onPodChanged;
    this.periodMs = opts.periodMs ?? RELIST_PERIOD_MS;
    this.thresholdMs = opts.thresholdMs ?? RELIST_THRESHOLD_MS;
  }

  /** Relists every period until `signal` aborts or stop() is called. */
  start(signal: AbortSignal): void {
    if (this.done) throw new NodeletError('PLEG_STARTED', 'pleg already started');
    const ac = new AbortController();
    this.abort = ac;
    const onAbort = () => ac.abort();
    if (signal.aborted) ac.abort();
    else signal.addEventListener('abort', onAbort, { once: true });
    this.done = this.loop(ac.signal).finally(() => signal.removeEventListener('abort', onAbort));
  }

  /** Stops the loop and waits for it (and a relist in flight) to finish. */
  async stop(): Promise<void> {
    this.abort?.abort();
    await this.done;
    await this.inflight;
  }

  /** Asks for a relist soon (a runtime event hinted at a change); bursts coalesce into one relist. */
  kick(): void {
    this.relistNow().catch(() => undefined); // failures are logged by the relist
  }

  /**
   * Resolves once a relist that started after this call has finished (so the
   * view then reflects anything the caller did before); rejects with that
   * relist's error. Concurrent callers share one relist.
   */
  relistNow(): Promise<void> {
    if (!this.pending) this.pending = waiters();
    const p = this.pending.promise;
    this.pump();
    return p;
  }

  /** Upstream's Healthy(): a relist succeeded within the threshold. */
  healthy(): PlegHealth {
    if (this.lastSuccessMs === 0) return { ok: false, message: 'pleg has yet to be successful' };
    this.metrics.lastSeen.set(Math.floor(this.lastSuccessMs / 1000));
    const elapsed = this.clock.now() - this.lastSuccessMs;
    if (elapsed > this.thresholdMs) {
      return {
        ok: false,
        message: `pleg was last seen active ${goDuration(elapsed)} ago; threshold is ${goDuration(this.thresholdMs)}`,
      };
    }
    return { ok: true, message: '' };
  }

  private async loop(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      await this.relistNow().catch(() => undefined);
      await this.clock.sleep(this.periodMs, signal);
    }
    this.log.debug('pleg stopped');
  }

  private pump(): void {
    if (this.inflight || !this.pending) return;
    const w = this.pending;
    this.pending = undefined;
    this.inflight = this.relist().then(w.resolve, w.reject);
    void this.inflight.finally(() => {
      this.inflight = undefined;
      this.pump();
    });
  }

  /** One relist: list, diff against the previous one, notify. Logs and rethrows a failure. */
  private async relist(): Promise<void> {
    const start = this.clock.now();
    if (this.lastStartMs !== 0) this.metrics.relistInterval.observe((start - this.lastStartMs) / 1000);
    this.lastStartMs = start;
    let next: ReadonlyMap<string, RuntimePodStatus>;
    try {
      next = await this.cache.relist();
    } catch (err) {
      this.log.warn('pleg relist failed; retrying', { error: describeError(err) });
      throw err;
    } finally {
      this.metrics.relistDuration.observe((this.clock.now() - start) / 1000);
    }
    this.lastSuccessMs = start;
    this.metrics.lastSeen.set(Math.floor(start / 1000));
    this.updateGauges(next);

    const changes = diffRelists(this.previous, next);
    this.previous = next;
    for (const [uid, events] of changes) {
      this.log.debug('pod lifecycle events', { pod: uid, events: events.map((e) => `${e.type} ${e.id.slice(0, 12)}`) });
      const failed = (err: unknown) => this.log.error('pod change handler failed', { pod: uid, error: describeError(err) });
      try {
        const r = this.onPodChanged(uid, events);
        if (r instanceof Promise) r.catch(failed);
      } catch (err) {
        failed(err);
      }
    }
  }

  private updateGauges(view: ReadonlyMap<string, RuntimePodStatus>): void {
    let running = 0;
    const counts = new Map<string, number>(Object.values(STATE_LABEL).map((s) => [s, 0]));
    for (const p of view.values()) {
      if (p.sandboxes.some((s) => s.state === SANDBOX_READY)) running++;
      for (const c of p.containers) {
        const label = STATE_LABEL[c.state];
        counts.set(label, (counts.get(label) ?? 0) + 1);
      }
    }
    this.metrics.runningPods.set(running);
    for (const [state, n] of counts) this.metrics.runningContainers.set({ container_state: state }, n);
  }
}
