// One probe worker per (pod, container, probe type), as upstream's
// prober/worker.go. It probes every periodSeconds (an early probe when the
// manager triggers it), counts consecutive results against the thresholds,
// and publishes a verdict for the running container instance: a new
// container ID starts over (readiness failing, liveness passing, startup
// undecided) unless the pod's status already reports that very instance ready
// or started (a nodelet restart must not take running pods out of Services).
// After a liveness or startup failure it holds until the container is
// replaced. Liveness and readiness wait for the startup probe; all wait for
// initialDelaySeconds. It stops when the container has exited for good.
import type { V1Container, V1Pod, V1Probe } from '@kubernetes/client-node';
import { CONTAINER_EXITED, CONTAINER_RUNNING } from '../../cri/api.ts';
import type { Clock } from '../../lib/clock.ts';
import { describeError } from '../../lib/errors.ts';
import type { Logger } from '../../lib/log.ts';
import type { PodEventSink } from '../pod/syncer.ts';
import type { RuntimeContainer } from '../pod/types.ts';
import type { ProberMetrics, ProbeLabels, ProbeRecorder } from './metrics.ts';
import type { ProbeOutcome } from './outcome.ts';
import type { SlotTimer } from './slots.ts';
import {
  DEFAULT_FAILURE_THRESHOLD,
  DEFAULT_PERIOD_SECONDS,
  DEFAULT_SUCCESS_THRESHOLD,
  PROBE_TYPE_NAMES,
  type ProbeRunner,
  type ProbeType,
} from './prober.ts';

/** 'unknown' only before a startup probe has decided (upstream's results.Unknown). */
export type Verdict = 'success' | 'failure' | 'unknown';

/** Upstream retries a probe that could not run at all (not one that failed) this often. */
const MAX_PROBE_RETRIES = 3;

/** What a worker needs of its manager. */
export interface WorkerHost {
  clock: Clock;
  /** Ticks wait on this shared grid (few wakeups for many workers). */
  slots: SlotTimer;
  log: Logger;
  runner: ProbeRunner;
  metrics: ProberMetrics;
  events: PodEventSink;
  /** Whether this container instance passed its startup probe (asked only when it has one). */
  isStarted(uid: string, container: string, containerId: string): boolean;
  /** A published verdict changed. */
  changed(uid: string): void;
  /** How long the first probe waits (spread over the period right after nodelet starts). */
  firstDelayMs(periodMs: number): number;
  /** Counts probes in flight (for tests and shutdown). */
  probing(delta: number): void;
  /** How late a scheduled probe starts against its ticker (benchmarks). */
  late?: (ms: number) => void;
}

export interface WorkerView {
  pod: V1Pod;
  container: V1Container;
  /** Whether the container is a sidecar (restartable init container). */
  init: boolean;
  probe: V1Probe;
  /** The newest instance of the container in the runtime; undefined before the first. */
  current: RuntimeContainer | undefined;
  podIP: string;
}

function positive(n: number | undefined, d: number): number {
  return n !== undefined && n > 0 ? n : d;
}

export class ProbeWorker {
  readonly uid: string;
  readonly type: ProbeType;
  readonly name: string;
  private readonly host: WorkerHost;
  private view: WorkerView;
  /** The container instance the verdict is about ('' before one exists). */
  containerId = '';
  verdict: Verdict;
  private lastResult: 'success' | 'failure' | undefined;
  private resultRun = 0;
  private onHold = false;
  private running = false;
  private stopped = false;
  private triggered = false;
  /** The wait in progress; `triggerable` unless it is the first (spread) one. */
  private waiting: { cancel: () => void; triggerable: boolean } | undefined;
  private readonly labels: ProbeLabels;
  private readonly recorder: ProbeRecorder;

  constructor(host: WorkerHost, uid: string, type: ProbeType, view: WorkerView) {
    this.host = host;
    this.uid = uid;
    this.type = type;
    this.name = view.container.name;
    this.view = view;
    this.verdict = this.initial();
    this.labels = {
      probeType: PROBE_TYPE_NAMES[type],
      container: this.name,
      pod: view.pod.metadata?.name ?? '',
      namespace: view.pod.metadata?.namespace ?? 'default',
      podUid: uid,
    };
    this.recorder = host.metrics.bind(this.labels);
    this.update(view);
  }

  /** Readiness starts failing, liveness passing, startup undecided (upstream's initialValue). */
  private initial(): Verdict {
    return this.type === 'readiness' ? 'failure' : this.type === 'liveness' ? 'success' : 'unknown';
  }

  /**
   * What the pod's status already says about this very instance: after a
   * nodelet restart a container reported ready (or started) stays so until
   * its probes say otherwise, instead of dropping out of its Services for a
   * period. A new instance is never in the status yet, so it starts over.
   */
  private reported(pod: V1Pod, id: string): Verdict | undefined {
    if (this.type === 'liveness') return undefined;
    const statuses = [...(pod.status?.containerStatuses ?? []), ...(pod.status?.initContainerStatuses ?? [])];
    const st = statuses.find((c) => c.name === this.name && (c.containerID ?? '').endsWith(`://${id}`));
    if (!st?.state?.running) return undefined;
    if (this.type === 'readiness') return st.ready === true ? 'success' : undefined;
    return st.started === true ? 'success' : undefined;
  }

  /** The newest pod and runtime view (after every sync); a new container instance starts over. */
  update(view: WorkerView): void {
    this.view = view;
    const cur = view.current;
    if (cur && cur.id !== this.containerId) {
      this.containerId = cur.id;
      this.verdict = this.reported(view.pod, cur.id) ?? this.initial();
      this.lastResult = undefined;
      this.resultRun = 0;
      this.onHold = false;
    }
    if (!this.running && !this.stopped && (!cur || cur.state === CONTAINER_RUNNING || !this.exitedForGood(cur))) {
      this.running = true;
      void this.loop();
    }
  }

  /** Probe now instead of at the next period (upstream's manualTriggerCh). */
  trigger(): void {
    this.triggered = true;
    if (this.waiting?.triggerable) this.waiting.cancel();
  }

  stop(): void {
    this.stopped = true;
    this.waiting?.cancel();
    this.host.metrics.forget(this.labels);
  }

  /** The verdict about the container instance `id` (undefined when it is about another one). */
  verdictFor(id: string): Verdict | undefined {
    return id !== '' && id === this.containerId ? this.verdict : undefined;
  }

  private get probe(): V1Probe {
    return this.view.probe;
  }

  private exitedForGood(c: RuntimeContainer): boolean {
    if (c.state !== CONTAINER_EXITED) return false;
    if (this.view.init) return false; // sidecars always restart
    const policy = this.view.pod.spec?.restartPolicy ?? 'Always';
    return policy === 'Never' || (policy === 'OnFailure' && c.exitCode === 0);
  }

  private async loop(): Promise<void> {
    const period = positive(this.probe.periodSeconds, DEFAULT_PERIOD_SECONDS) * 1000;
    const { clock, slots } = this.host;
    try {
      const first = this.host.firstDelayMs(period);
      // A fresh worker probes at once; one spread over the period (nodelet just started) waits for its slot.
      let next = first > 0 ? slots.align(clock.now() + first) : clock.now();
      // Triggers during the spread wait are served by the first probe (upstream queues them).
      if (first > 0) await this.waitFor(next, false);
      let scheduled: number | undefined = next;
      while (!this.stopped) {
        if (scheduled !== undefined) this.host.late?.(clock.now() - scheduled);
        if (!(await this.doProbe())) break;
        const now = clock.now();
        // A ticker: the schedule does not drift with probe time; missed ticks are dropped.
        // A tick is used up by its probe even when the timer woke a little before it
        // (Node's timers count from the loop's cached time): else it probed twice.
        if (scheduled !== undefined) next = scheduled + period;
        while (next <= now) next += period;
        next = slots.align(next);
        // Woken early by a trigger: that probe is extra, not a tick.
        scheduled = (await this.waitFor(next, true)) ? next : undefined;
      }
    } catch (err) {
      this.host.log.warn('probe worker failed', { pod: this.labels.pod, container: this.name, probe: this.type, err: describeError(err) });
    } finally {
      this.running = false;
    }
  }

  /** Waits for the slot at `at`; stop() (and trigger() when triggerable) ends it early. False when it ended early. */
  private async waitFor(at: number, triggerable: boolean): Promise<boolean> {
    if (this.stopped || (triggerable && this.triggered)) return false;
    const w = this.host.slots.wait(at);
    const mine = { cancel: w.cancel, triggerable };
    this.waiting = mine;
    try {
      return await w.done;
    } finally {
      if (this.waiting === mine) this.waiting = undefined;
    }
  }

  private publish(v: Verdict): void {
    if (this.verdict === v) return;
    this.verdict = v;
    this.host.log.info('probe verdict changed', { pod: `${this.labels.namespace}/${this.labels.pod}`, container: this.name, probe: this.type, verdict: v });
    this.host.changed(this.uid);
  }

  /** One tick (upstream's doProbe); false stops the worker. */
  async doProbe(): Promise<boolean> {
    this.triggered = false;
    const { pod } = this.view;
    const cur = this.view.current;
    if (!cur || !this.containerId) return true; // not created yet
    if (this.onHold) return true; // failed: wait for the next instance
    if (cur.state !== CONTAINER_RUNNING) {
      this.publish('failure');
      return !this.exitedForGood(cur);
    }
    // A pod shutting down is not restarted for failing liveness (upstream).
    if (pod.metadata?.deletionTimestamp && this.type !== 'readiness') {
      this.publish('success');
      return true;
    }
    const delay = this.probe.initialDelaySeconds ?? 0;
    // Whole seconds since the start, as upstream counts (a runtime clock ahead of ours never blocks a probe without delay).
    if (delay > 0 && Math.floor((this.host.clock.now() - cur.startedAt / 1e6) / 1000) < delay) return true;
    const started = !this.view.container.startupProbe
      || (this.type === 'startup' ? this.verdict === 'success' : this.host.isStarted(this.uid, this.name, this.containerId));
    if (started ? this.type === 'startup' : this.type !== 'startup') return true;

    const id = this.containerId;
    const outcome = await this.runProbe();
    if (this.stopped || id !== this.containerId) return true; // the container changed meanwhile: the result is stale
    if (outcome.result === 'unknown') return true;
    const result: 'success' | 'failure' = outcome.result === 'failure' ? 'failure' : 'success';
    if (this.lastResult === result) this.resultRun++;
    else {
      this.lastResult = result;
      this.resultRun = 1;
    }
    const successThreshold = this.type === 'readiness' ? positive(this.probe.successThreshold, DEFAULT_SUCCESS_THRESHOLD) : 1;
    const failureThreshold = positive(this.probe.failureThreshold, DEFAULT_FAILURE_THRESHOLD);
    if ((result === 'failure' && this.resultRun < failureThreshold) || (result === 'success' && this.resultRun < successThreshold)) return true;
    this.publish(result);
    if (result === 'failure' && this.type !== 'readiness') {
      // The container gets killed; probing it again would only repeat the verdict.
      this.onHold = true;
      this.resultRun = 0;
    }
    return true;
  }

  private async runProbe(): Promise<ProbeOutcome> {
    const { pod, container, init, probe, podIP } = this.view;
    const typeName = PROBE_TYPE_NAMES[this.type];
    let outcome: ProbeOutcome = { result: 'unknown', output: '' };
    this.host.probing(1);
    const start = performance.now();
    try {
      for (let i = 0; i < MAX_PROBE_RETRIES; i++) {
        outcome = await this.host.runner.run(probe, { pod, container, containerId: this.containerId, podIP });
        if (outcome.result !== 'unknown' || this.stopped) break;
      }
    } catch (err) {
      outcome = { result: 'unknown', output: describeError(err) };
    } finally {
      this.host.probing(-1);
    }
    if (this.stopped) return outcome; // the pod went away meanwhile: nothing to report
    this.recorder.record(outcome.result, (performance.now() - start) / 1000);
    const ref = { name: this.name, init };
    if (outcome.result === 'failure') {
      this.host.events.podEvent(pod, ref, 'Warning', 'Unhealthy', `${typeName} probe failed: ${outcome.output}`);
    } else if (outcome.result === 'unknown') {
      this.host.events.podEvent(pod, ref, 'Warning', 'Unhealthy', `${typeName} probe errored and resulted in unknown state: ${outcome.output}`);
    } else if (outcome.result === 'warning') {
      this.host.events.podEvent(pod, ref, 'Warning', 'ProbeWarning', `${typeName} probe warning: ${outcome.output}`);
    }
    return outcome;
  }
}
