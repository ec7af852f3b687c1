// Noticing that someone flushed the iptables tables (a firewall reload,
// `iptables -F`, a restart of a firewall manager), as kube-proxy's
// iptables Monitor: an empty KUBE-PROXY-CANARY chain in mangle, nat and
// filter. Every interval (kube-proxy's syncPeriod) the mangle one is looked
// for (mangle is small, so the check is cheap); when it is gone the others
// are given up to 5 s to go too (a flush of several tables is not atomic),
// then the proxier is told to rebuild everything, and the canaries are put
// back. Partial syncs trust the tables to hold what the last sync wrote, so
// without this a flush would stay until the hourly full sync.
import type { Clock } from '../../lib/clock.ts';
import { describeError } from '../../lib/errors.ts';
import type { Logger } from '../../lib/log.ts';
import type { Iptables, Table } from './iptables.ts';

export const CANARY_CHAIN = 'KUBE-PROXY-CANARY';
/** The first is the one checked each interval. */
export const CANARY_TABLES: readonly Table[] = ['mangle', 'nat', 'filter'];
/** Upstream's iptablesFlushPollTime and iptablesFlushTimeout. */
const FLUSH_POLL_MS = 100;
const FLUSH_TIMEOUT_MS = 5000;

export interface CanaryDeps {
  iptables: Iptables;
  clock: Clock;
  log: Logger;
  /** The tables were flushed: the next sync must rebuild everything. */
  onFlush: () => void;
}

export class CanaryMonitor {
  private readonly deps: CanaryDeps;
  private readonly intervalMs: number;
  private readonly stopping = new AbortController();
  private loopDone: Promise<void> | undefined;

  constructor(deps: CanaryDeps, intervalMs: number) {
    this.deps = deps;
    this.intervalMs = intervalMs;
  }

  start(): void {
    this.loopDone ??= this.loop();
  }

  /** Ends the loop; the canaries stay (as upstream's, which never stops). */
  async stop(): Promise<void> {
    this.stopping.abort();
    await this.loopDone;
  }

  private get stopped(): boolean {
    return this.stopping.signal.aborted;
  }

  private async loop(): Promise<void> {
    const { clock, log } = this.deps;
    while (!this.stopped) {
      // Set up, retried every interval until all three are there.
      while (!this.stopped && !(await this.ensureAll())) await clock.sleep(this.intervalMs, this.stopping.signal);
      // Then watched until the first one goes.
      while (!this.stopped) {
        await clock.sleep(this.intervalMs, this.stopping.signal);
        if (this.stopped) return;
        if ((await this.exists(CANARY_TABLES[0]!)) !== false) continue;
        log.info('iptables canary deleted', { table: CANARY_TABLES[0], chain: CANARY_CHAIN });
        if (!(await this.othersGone())) log.info('inconsistent iptables state detected: not every canary went');
        if (this.stopped) return;
        log.info('reloading after iptables flush');
        this.deps.onFlush();
        break;
      }
    }
  }

  private async ensureAll(): Promise<boolean> {
    for (const table of CANARY_TABLES) {
      try {
        await this.deps.iptables.ensureChain(table, CANARY_CHAIN);
      } catch (err) {
        this.deps.log.error('could not set up iptables canary', { table, chain: CANARY_CHAIN, error: describeError(err) });
        return false;
      }
    }
    return true;
  }

  /** true / false, or undefined when iptables could not tell (busy: not taken as a flush). */
  private async exists(table: Table): Promise<boolean | undefined> {
    try {
      return await this.deps.iptables.chainExists(table, CANARY_CHAIN);
    } catch (err) {
      this.deps.log.error('could not check for iptables canary', { table, chain: CANARY_CHAIN, error: describeError(err) });
      return undefined;
    }
  }

  /** Waits (polling) until the other tables' canaries are gone too; false after the timeout. */
  private async othersGone(): Promise<boolean> {
    const { clock } = this.deps;
    const deadline = clock.now() + FLUSH_TIMEOUT_MS;
    for (;;) {
      let gone = true;
      for (const table of CANARY_TABLES.slice(1)) if ((await this.exists(table)) !== false) gone = false;
      if (gone) return true;
      if (clock.now() >= deadline || this.stopped) return false;
      await clock.sleep(FLUSH_POLL_MS, this.stopping.signal);
    }
  }
}
