// Noticing that someone flushed the iptables tables (a firewall reload,
// `iptables -F`, a restart of a firewall manager), as kube-proxy's iptables
// Monitor: an empty KUBE-PROXY-CANARY chain in mangle, nat and filter. The
// proxier looks for the mangle one once per sync period, in its sync (mangle
// is small, so the check is cheap), and when it is gone gives the others up
// to 5 s to go too (a flush of several tables is not atomic) before the sync
// goes full. Upstream checks from a goroutine of its own; done in the sync,
// no check or `-N` holds the xtables lock while a restore waits for it (a
// legacy restore that finds the lock taken sleeps 100 ms; `-N` in a nat table
// of 10k services holds it 0.7 s). The nat and filter canaries are declared in
// the full syncs' restores; mangle's is made with -N after them.
// Partial syncs trust the tables to hold what the last sync wrote, so without
// this a flush would stay until the hourly full sync.
import type { Clock } from '../../lib/clock.ts';
import { describeError } from '../../lib/errors.ts';
import type { Logger } from '../../lib/log.ts';
import type { Iptables, Table } from './iptables.ts';

export const CANARY_CHAIN = 'KUBE-PROXY-CANARY';
/** Upstream's iptablesFlushPollTime and iptablesFlushTimeout. */
const FLUSH_POLL_MS = 100;
const FLUSH_TIMEOUT_MS = 5000;

export class Canary {
  private readonly iptables: Iptables;
  private readonly clock: Clock;
  private readonly log: Logger;

  constructor(deps: { iptables: Iptables; clock: Clock; log: Logger }) {
    this.iptables = deps.iptables;
    this.clock = deps.clock;
    this.log = deps.log;
  }

  /** Makes the mangle canary (after a full sync, whose restores made the others). */
  async ensure(): Promise<void> {
    try {
      await this.iptables.ensureChain('mangle', CANARY_CHAIN);
    } catch (err) {
      this.log.error('could not set up iptables canary', { table: 'mangle', chain: CANARY_CHAIN, error: describeError(err) });
    }
  }

  /**
   * Whether the tables were flushed: the mangle canary is gone (then, after
   * the others went too or 5 s passed). A check iptables cannot answer is no.
   */
  async flushed(): Promise<boolean> {
    if ((await this.exists('mangle')) !== false) return false;
    this.log.info('iptables canary deleted', { table: 'mangle', chain: CANARY_CHAIN });
    const deadline = this.clock.now() + FLUSH_TIMEOUT_MS;
    for (;;) {
      const [nat, filter] = [await this.exists('nat'), await this.exists('filter')];
      if (nat === false && filter === false) break;
      if (this.clock.now() >= deadline) {
        this.log.info('inconsistent iptables state detected: not every canary went');
        break;
      }
      await this.clock.sleep(FLUSH_POLL_MS);
    }
    this.log.info('reloading after iptables flush');
    return true;
  }

  /** true / false, or undefined when iptables could not tell (busy). */
  private async exists(table: Table): Promise<boolean | undefined> {
    try {
      return await this.iptables.chainExists(table, CANARY_CHAIN);
    } catch (err) {
      this.log.error('could not check for iptables canary', { table, chain: CANARY_CHAIN, error: describeError(err) });
      return undefined;
    }
  }
}
