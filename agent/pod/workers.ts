// Pod workers, as upstream's podWorkers reduced to its guarantees: at most one
// sync in flight per pod; updates that arrive meanwhile collapse into one
// pending sync (the sync reads the newest pod itself, so "a newer update
// replaces the pending one" holds by construction); a kill, once asked for,
// sticks: later updates cannot turn it back into a plain sync. A sync may ask
// to be run again after a delay (back-off expiry, a pull retry).
import type { Clock } from '../../lib/clock.ts';
import { describeError } from '../../lib/errors.ts';
import type { Logger } from '../../lib/log.ts';

export interface SyncRequest {
  uid: string;
  /** Kill was asked for (deletion, or the pod left this node): never downgraded. */
  kill: boolean;
}

export interface SyncResult {
  /** Run this pod again after this long even if nothing changes. */
  requeueAfterMs?: number;
  /** The pod is finished with (killed and cleaned up): drop its worker. */
  done?: boolean;
}

export type SyncFn = (req: SyncRequest, signal: AbortSignal) => Promise<SyncResult>;

interface Worker {
  busy: boolean;
  pending: boolean;
  kill: boolean;
  timer: { cancel: () => void } | undefined;
  /** Resolves when the worker is idle (for tests and shutdown). */
  idle: Promise<void>;
  markIdle: () => void;
}

/** Retry delay after a sync threw (upstream requeues errors after a short back-off). */
const ERROR_REQUEUE_MS = 2_000;

export class PodWorkers {
  private readonly workers = new Map<string, Worker>();
  private readonly sync: SyncFn;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly abort = new AbortController();

  constructor(deps: { sync: SyncFn; clock: Clock; log: Logger }) {
    this.sync = deps.sync;
    this.clock = deps.clock;
    this.log = deps.log;
  }

  /** Asks for a sync of `uid` (with kill when `kill`); returns at once. */
  update(uid: string, kill = false): void {
    if (this.abort.signal.aborted) return;
    let w = this.workers.get(uid);
    if (!w) {
      w = { busy: false, pending: false, kill: false, timer: undefined, idle: Promise.resolve(), markIdle: () => {} };
      this.workers.set(uid, w);
    }
    if (kill) w.kill = true;
    w.pending = true;
    if (!w.busy) void this.run(uid, w);
  }

  has(uid: string): boolean {
    return this.workers.has(uid);
  }

  uids(): string[] {
    return [...this.workers.keys()];
  }

  isKilling(uid: string): boolean {
    return this.workers.get(uid)?.kill ?? false;
  }

  /** Resolves once no sync is running or pending (tests; shutdown). */
  async drain(): Promise<void> {
    for (;;) {
      const busy = [...this.workers.values()].filter((w) => w.busy || w.pending);
      if (busy.length === 0) return;
      await Promise.all(busy.map((w) => w.idle));
    }
  }

  stop(): void {
    this.abort.abort();
    for (const w of this.workers.values()) w.timer?.cancel();
  }

  private async run(uid: string, w: Worker): Promise<void> {
    w.busy = true;
    w.idle = new Promise<void>((r) => (w.markIdle = r));
    w.timer?.cancel();
    w.timer = undefined;
    let result: SyncResult = {};
    while (w.pending && !this.abort.signal.aborted) {
      w.pending = false;
      try {
        result = await this.sync({ uid, kill: w.kill }, this.abort.signal);
      } catch (err) {
        this.log.warn('pod sync failed; will retry', { uid, err: describeError(err) });
        result = { requeueAfterMs: ERROR_REQUEUE_MS };
      }
      if (result.done) break;
    }
    w.busy = false;
    if (result.done && !w.pending) {
      this.workers.delete(uid);
    } else if (result.requeueAfterMs !== undefined && !this.abort.signal.aborted) {
      this.schedule(uid, w, result.requeueAfterMs);
    }
    w.markIdle();
    if (w.pending && !w.busy && this.workers.get(uid) === w) void this.run(uid, w);
  }

  private schedule(uid: string, w: Worker, ms: number): void {
    const ac = new AbortController();
    w.timer = { cancel: () => ac.abort() };
    void this.clock.sleep(ms, ac.signal).then(() => {
      if (ac.signal.aborted || this.abort.signal.aborted) return;
      w.timer = undefined;
      this.update(uid);
    });
  }
}
