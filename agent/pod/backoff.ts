// CrashLoopBackOff: how long a failed container waits before the kubelet
// starts it again. Same semantics as upstream's flowcontrol.Backoff as the
// kubelet configures it (10 s initial, doubling, 300 s cap, no jitter) and its
// doBackOff (kuberuntime_manager.go):
//
// - The event time is the FinishedAt of the newest exited instance.
// - In back-off while now - finishedAt < the current delay.
// - When a start goes ahead, the delay advances (Next): it doubles, or resets
//   to the initial delay when the container had run more than 10 minutes since
//   its last start (finishedAt - lastUpdate > 600 s, the kubelet's
//   HasExpiredFunc), or when there is no entry yet.
// - gc() drops entries not touched for 10 minutes (the kubelet calls it from
//   its housekeeping).
import type { Clock } from '../../lib/clock.ts';

export const INITIAL_BACKOFF_MS = 10_000;
export const MAX_BACKOFF_MS = 300_000;
export const BACKOFF_RESET_MS = 600_000;

export interface BackOffOptions {
  initialMs?: number;
  maxMs?: number;
  /** An entry older than this (by finishedAt or by now) starts over. */
  resetMs?: number;
}

interface Entry {
  delayMs: number;
  /** When the delay last advanced (clock ms). */
  lastUpdate: number;
}

export interface PodRef {
  name: string;
  namespace: string;
  uid: string;
}

export type BackOffDecision =
  | { inBackOff: false }
  | {
      inBackOff: true;
      /** Clock ms when the container may be started again. */
      until: number;
      delayMs: number;
      /** The start failure text, as upstream: "back-off 10s restarting failed container=x pod=p_ns(uid)". */
      message: string;
      /** The BackOff event text. */
      eventMessage: string;
    };

/** The kubelet's key for one container of one pod (upstream's GetStableKey): a spec change starts afresh. */
export function backOffKey(pod: PodRef, containerName: string, hash: string): string {
  return `${pod.name}_${pod.namespace}_${pod.uid}_${containerName}_${hash}`;
}

/** "name_namespace(uid)", upstream's format.Pod. */
export function formatPod(pod: PodRef): string {
  return `${pod.name}_${pod.namespace}(${pod.uid})`;
}

/** A duration as Go's time.Duration.String() prints it: "10s", "1m20s", "5m0s", "1.5s", "0s". */
export function formatGoDuration(ms: number): string {
  if (ms === 0) return '0s';
  const neg = ms < 0;
  let rest = Math.abs(ms);
  let out: string;
  if (rest < 1000) {
    out = `${trimFraction(rest.toFixed(3))}ms`;
  } else {
    const h = Math.floor(rest / 3_600_000);
    rest -= h * 3_600_000;
    const m = Math.floor(rest / 60_000);
    rest -= m * 60_000;
    const s = `${trimFraction((rest / 1000).toFixed(3))}s`;
    out = h > 0 ? `${h}h${m}m${s}` : m > 0 ? `${m}m${s}` : s;
  }
  return neg ? `-${out}` : out;
}

function trimFraction(s: string): string {
  return s.includes('.') ? s.replace(/0+$/, '').replace(/\.$/, '') : s;
}

export class CrashLoopBackOff {
  private readonly clock: Clock;
  private readonly initialMs: number;
  private readonly maxMs: number;
  private readonly resetMs: number;
  private readonly entries = new Map<string, Entry>();

  constructor(clock: Clock, opts: BackOffOptions = {}) {
    this.clock = clock;
    this.initialMs = opts.initialMs ?? INITIAL_BACKOFF_MS;
    this.maxMs = opts.maxMs ?? MAX_BACKOFF_MS;
    this.resetMs = opts.resetMs ?? BACKOFF_RESET_MS;
  }

  /** The current delay for a key (0 when none). */
  get(key: string): number {
    return this.entries.get(key)?.delayMs ?? 0;
  }

  /** Whether the time since `eventTime` (ms) is still inside the current delay window. */
  isInBackOffSince(key: string, eventTime: number): boolean {
    const e = this.entries.get(key);
    if (!e || this.expired(eventTime, e.lastUpdate)) return false;
    return this.clock.now() - eventTime < e.delayMs;
  }

  /** Advances the delay for a key: doubles up to the cap, or starts at the initial delay. */
  next(key: string, eventTime: number): void {
    const e = this.entries.get(key);
    if (!e || this.expired(eventTime, e.lastUpdate)) {
      this.entries.set(key, { delayMs: this.initialMs, lastUpdate: this.clock.now() });
    } else {
      e.delayMs = Math.min(e.delayMs * 2, this.maxMs);
      e.lastUpdate = this.clock.now();
    }
  }

  /**
   * Upstream's doBackOff for one container about to be (re)started. `lastFinishedAt`
   * is the FinishedAt (ms) of its newest exited instance, undefined when it never
   * exited (then there is no back-off). When not in back-off the delay advances,
   * so call this only right before actually starting the container.
   */
  check(pod: PodRef, containerName: string, hash: string, lastFinishedAt: number | undefined): BackOffDecision {
    if (lastFinishedAt === undefined) return { inBackOff: false };
    const key = backOffKey(pod, containerName, hash);
    if (this.isInBackOffSince(key, lastFinishedAt)) {
      const delayMs = this.get(key);
      return {
        inBackOff: true,
        until: lastFinishedAt + delayMs,
        delayMs,
        message: `back-off ${formatGoDuration(delayMs)} restarting failed container=${containerName} pod=${formatPod(pod)}`,
        eventMessage: `Back-off restarting failed container ${containerName} in pod ${formatPod(pod)}`,
      };
    }
    this.next(key, lastFinishedAt);
    return { inBackOff: false };
  }

  /** Drops entries that would start over anyway. */
  gc(): void {
    const now = this.clock.now();
    for (const [k, e] of this.entries) if (this.expired(now, e.lastUpdate)) this.entries.delete(k);
  }

  /** Number of keys held (for tests and metrics). */
  get size(): number {
    return this.entries.size;
  }

  private expired(eventTime: number, lastUpdate: number): boolean {
    return eventTime - lastUpdate > this.resetMs;
  }
}
