// Probe ticks fall on a grid of short slots, and all probes due in one slot
// share one timer. Each wakeup of the process costs far more than the probe
// that caused it (epoll, timers, microtask checkpoints and the scheduler; on
// this 2-core VM about 0.2-0.3 ms), so 220 probes a second each on its own
// timer cost twice the CPU of the same probes in 20 shared wakeups (a throwaway
// harness: 110 pods x (HTTP + TCP) at 1 s, 0.08-0.11 of a core unslotted,
// 0.04-0.05 with 50 ms slots). Periods stay exact; only a worker's phase moves,
// by less than one slot.
import type { Clock } from '../../lib/clock.ts';

/** The grid: at most 20 probe wakeups a second, ticks at most 50 ms off a free-running ticker. */
export const PROBE_SLOT_MS = 50;

export interface SlotWait {
  /** True when the slot came, false when cancelled first. */
  done: Promise<boolean>;
  cancel(): void;
}

interface Slot {
  waiters: Set<(came: boolean) => void>;
  ac: AbortController;
}

export class SlotTimer {
  private readonly clock: Clock;
  readonly slotMs: number;
  private readonly slots = new Map<number, Slot>();

  constructor(clock: Clock, slotMs = PROBE_SLOT_MS) {
    this.clock = clock;
    this.slotMs = slotMs;
  }

  /** The first slot boundary at or after `t`. */
  align(t: number): number {
    return Math.ceil(t / this.slotMs) * this.slotMs;
  }

  /** Waits for the slot at or after `at`. */
  wait(at: number): SlotWait {
    const t = this.align(at);
    const s = this.slots.get(t) ?? this.arm(t);
    let settle!: (came: boolean) => void;
    const done = new Promise<boolean>((resolve) => {
      settle = (came) => {
        if (!s.waiters.delete(settle)) return;
        resolve(came);
      };
    });
    s.waiters.add(settle);
    return {
      done,
      cancel: () => {
        settle(false);
        // Nobody left: the slot's timer goes too (it would keep the process alive for nothing).
        if (s.waiters.size === 0 && this.slots.get(t) === s) {
          this.slots.delete(t);
          s.ac.abort();
        }
      },
    };
  }

  /** The slot at `t`, with its timer. An aborted timer (no waiters left) wakes nobody. */
  private arm(t: number): Slot {
    const s: Slot = { waiters: new Set(), ac: new AbortController() };
    this.slots.set(t, s);
    void this.clock.sleep(Math.max(0, t - this.clock.now()), s.ac.signal).then(() => {
      if (this.slots.get(t) === s) this.slots.delete(t);
      for (const w of [...s.waiters]) w(true);
    });
    return s;
  }

  /** Slots with a timer armed (tests). */
  get armed(): number {
    return this.slots.size;
  }
}
