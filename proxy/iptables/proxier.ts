// The iptables-mode proxier, as upstream's pkg/proxy/iptables Proxier:
// informer events feed the change trackers and ask the bounded-frequency
// runner for a sync; syncProxyRules() drains the trackers, decides full or
// partial, generates restore text with the pure generator, makes sure the
// jumps from the builtin chains exist, and applies both tables with one
// `iptables-restore --noflush` (nat, then filter). A full sync happens first,
// once per fullSyncPeriod, after the tables were flushed and after any
// failure; otherwise only the changed services' chains are rewritten.
import { Counter, Gauge, type Registry } from 'prom-client';
import { sharedMetrics } from '../../lib/sharedmetrics.ts';
import { SyncMetrics } from '../syncmetrics.ts';
import type { Clock } from '../../lib/clock.ts';
import { describeError, NodeletError } from '../../lib/errors.ts';
import type { Logger } from '../../lib/log.ts';
import { flattenEndpoints, flattenServices } from '../changetracker.ts';
import { ProxierBase } from '../proxier.ts';
import { BoundedFrequencyRunner } from '../runner.ts';
import { Canary, CANARY_CHAIN } from './canary.ts';
import { chainsFromSave, type Iptables } from './iptables.ts';
import { beforeCommit, generateRulesChunked, isServiceChain, jumpInsertLine, jumpRules, missingJumps, type RulesRest } from './rules.ts';
import type { LocalDetector } from '../localdetect.ts';
import { DEFAULT_MASQUERADE_BIT, type IPFamily, localhostNodePorts } from '../types.ts';

/** Upstream's fullSyncPeriod. */
export const FULL_SYNC_PERIOD_MS = 3_600_000;

export type Sysctl = (key: string, value: string) => Promise<void>;

export const ROUTE_LOCALNET = 'net.ipv4.conf.all.route_localnet';

export interface IptablesProxierOptions {
  nodeName: string;
  /** The family it proxies (its Iptables runs iptables or ip6tables to match); default IPv4. */
  family?: IPFamily;
  /** Where NodePorts answer (addresses of the family); [] = every local address. */
  nodeIPs: readonly string[];
  /** The cluster's pod CIDR of the family. */
  clusterCIDR?: string;
  /** Upstream's --masquerade-all: every cluster-IP connection gets KUBE-MARK-MASQ, whatever its source. */
  masqueradeAll?: boolean;
  /** Upstream's --iptables-masquerade-bit (default 14). */
  masqueradeBit?: number;
  /** --detect-local-mode other than ClusterCIDR (which clusterCIDR alone gives). */
  localDetector?: LocalDetector;
  /** NodePorts answer on 127.0.0.1 too (IPv4 only: ::1 cannot be routed, as upstream). */
  localhostNodePorts: boolean;
  /** Upstream's --iptables-min-sync-period (default 1 s). */
  minSyncPeriodMs?: number;
  /** Upstream's --iptables-sync-period (default 30 s): the periodic resync. */
  syncPeriodMs?: number;
  /** How often a resync rebuilds everything (upstream's fullSyncPeriod, 1 h); other resyncs are partial. */
  fullSyncPeriodMs?: number;
  /** Reported in nodelet_proxy_iptables_backend_info, e.g. 'nft' or 'legacy'. */
  backend?: string;
}

export interface IptablesProxierDeps {
  iptables: Iptables;
  clock: Clock;
  log: Logger;
  /** Metrics go here (never the global registry). */
  registry: Registry;
  sysctl: Sysctl;
  /** Called after a full sync went through (main: a full garbage collection, lib/gc.ts). */
  afterFullSync?: () => void;
}

/** The iptables-only metrics, one set per registry (ip_family labels, as upstream's). */
class IptablesMetricSet {
  readonly restoreFailures: Counter<'ip_family'>;
  readonly partialRestoreFailures: Counter<'ip_family'>;
  readonly rulesTotal: Gauge<'table' | 'ip_family'>;
  readonly rulesLast: Gauge<'table' | 'ip_family'>;
  readonly backendInfo: Gauge<'backend' | 'ip_family'>;

  static of(registry: Registry): IptablesMetricSet {
    return sharedMetrics(registry, 'proxy-iptables', (r) => new IptablesMetricSet(r));
  }

  private constructor(registry: Registry) {
    const registers = [registry];
    this.restoreFailures = new Counter({
      name: 'kubeproxy_sync_proxy_rules_iptables_restore_failures_total',
      help: 'Cumulative proxy iptables restore failures',
      labelNames: ['ip_family'],
      registers,
    });
    this.partialRestoreFailures = new Counter({
      name: 'kubeproxy_sync_proxy_rules_iptables_partial_restore_failures_total',
      help: 'Cumulative proxy iptables partial restore failures',
      labelNames: ['ip_family'],
      registers,
    });
    this.rulesTotal = new Gauge({
      name: 'kubeproxy_sync_proxy_rules_iptables_total',
      help: 'Total number of iptables rules owned by kube-proxy (as of the last full sync)',
      labelNames: ['table', 'ip_family'],
      registers,
    });
    this.rulesLast = new Gauge({
      name: 'kubeproxy_sync_proxy_rules_iptables_last',
      help: 'Number of iptables rules written by kube-proxy in last sync',
      labelNames: ['table', 'ip_family'],
      registers,
    });
    this.backendInfo = new Gauge({
      name: 'nodelet_proxy_iptables_backend_info',
      help: 'The iptables backend the proxy uses (value is always 1)',
      labelNames: ['backend', 'ip_family'],
      registers,
    });
  }
}

export interface SyncResult {
  full: boolean;
  ok: boolean;
}

export class IptablesProxier extends ProxierBase {
  private readonly iptables: Iptables;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly sysctl: Sysctl;
  private readonly afterFullSync: (() => void) | undefined;
  private readonly opts: Required<Omit<IptablesProxierOptions, 'clusterCIDR' | 'backend' | 'masqueradeAll' | 'localDetector' | 'family'>> & { masqueradeAll: boolean } & Pick<IptablesProxierOptions, 'localDetector' | 'clusterCIDR'>;
  private readonly metrics: IptablesMetricSet;
  private readonly syncMetrics: SyncMetrics;
  private readonly labels: { ip_family: IPFamily };
  private readonly runner: BoundedFrequencyRunner;
  private readonly canary: Canary;
  /** When the flush canary was last looked for (it is, once per sync period). */
  private canaryCheckedMs = 0;

  private needFullSync = true;
  private lastFullSyncMs = 0;
  /** Upstream's largeClusterMode as of the last sync, and when stale chains were last looked for. */
  private largeCluster = false;
  /** The filter text (before jump inserts) of the last filter restore that went through. */
  private appliedFilter: string | undefined;
  /** The top-level nat chains' content after the last nat restore that went through (RulesOutput.top). */
  private appliedTop: string[] | undefined;
  private lastCleanupMs = 0;
  private routeLocalnetSet = false;
  /** nat chains known to exist after the last successful nat restore. */
  private natChains: Set<string> | undefined;

  constructor(deps: IptablesProxierDeps, options: IptablesProxierOptions) {
    super(options.nodeName, deps, options.family ?? 'IPv4');
    this.iptables = deps.iptables;
    this.clock = deps.clock;
    this.afterFullSync = deps.afterFullSync;
    this.log = deps.log;
    this.sysctl = deps.sysctl;
    this.opts = {
      nodeName: options.nodeName,
      nodeIPs: options.nodeIPs,
      localhostNodePorts: localhostNodePorts({ localhostNodePorts: options.localhostNodePorts, family: this.family }),
      masqueradeAll: options.masqueradeAll ?? false,
      masqueradeBit: options.masqueradeBit ?? DEFAULT_MASQUERADE_BIT,
      ...(options.localDetector ? { localDetector: options.localDetector } : {}),
      minSyncPeriodMs: options.minSyncPeriodMs ?? 1000,
      syncPeriodMs: options.syncPeriodMs ?? 30000,
      fullSyncPeriodMs: options.fullSyncPeriodMs ?? FULL_SYNC_PERIOD_MS,
      ...(options.clusterCIDR !== undefined ? { clusterCIDR: options.clusterCIDR } : {}),
    };
    this.labels = { ip_family: this.family };
    this.metrics = IptablesMetricSet.of(deps.registry);
    this.syncMetrics = new SyncMetrics(deps.registry, this.family);
    if (options.backend) this.metrics.backendInfo.set({ backend: options.backend, ...this.labels }, 1);
    this.runner = new BoundedFrequencyRunner(
      () => this.syncProxyRules().then(() => undefined),
      this.opts.minSyncPeriodMs,
      this.opts.syncPeriodMs,
      this.clock,
      (err) => this.log.error('proxy sync failed', { error: describeError(err) }),
    );
    this.canary = new Canary({ iptables: this.iptables, clock: this.clock, log: this.log });
  }

  /** Starts the sync loop and asks for the first (full) sync. */
  start(): void {
    this.runner.start();
    this.runner.run();
  }

  async stop(): Promise<void> {
    await this.runner.stop();
  }

  protected changed(): void {
    this.syncMetrics.queued(this.clock.now());
    this.runner.run();
  }

  protected invalidate(): void {
    this.needFullSync = true;
  }

  setLocalDetector(detector: LocalDetector): void {
    this.opts.localDetector = detector;
    this.resyncAll();
  }

  /**
   * One sync. Never throws: a failure is logged and counted, the next sync is
   * made full, and a retry is asked for after minSyncPeriod.
   */
  async syncProxyRules(): Promise<SyncResult> {
    const started = this.clock.now();
    const pending = this.pending();
    // A full sync first, after a failure, and once per fullSyncPeriod (upstream's
    // 1 h); the 30 s resync in between rewrites only what changed. Rebuilding
    // every 30 s kept a big cluster forever mid-sync (a full restore at 5k
    // services takes longer than the period on nf_tables).
    let full = this.needFullSync || (!pending && started - this.lastFullSyncMs >= this.opts.fullSyncPeriodMs);
    // Once per sync period: were the tables flushed since (the canary gone)? Then this sync rebuilds them.
    if (!full && started - this.canaryCheckedMs >= this.opts.syncPeriodMs) {
      this.canaryCheckedMs = started;
      full = await this.canary.flushed();
    }
    const changed = this.drain();
    let parts: Record<string, number> = {};
    try {
      if (this.opts.localhostNodePorts && !this.routeLocalnetSet) {
        await this.sysctl(ROUTE_LOCALNET, '1');
        this.routeLocalnetSet = true;
      }
      // The nat table is read on full syncs (stale chains are found there); in
      // between, the chains the last restore left are known.
      // A full sync reads both tables (at once: saves take no lock).
      const [natSave, filterSave] = await Promise.all([
        full || !this.natChains ? this.iptables.save('nat') : undefined,
        full ? this.iptables.save('filter') : undefined,
      ]);
      const existing = natSave !== undefined ? chainsFromSave(natSave) : (this.natChains ?? new Set<string>());
      // As upstream: with over 1000 endpoints, stale chains are looked for once per sync period only.
      const cleanup = full || !this.largeCluster || started - this.lastCleanupMs >= this.opts.syncPeriodMs;
      // The jumps from the built-in chains: checked on full syncs only, as
      // upstream does since 1.26; the missing ones go into the same restore.
      const missing = full ? missingJumps(jumpRules(this.opts.localhostNodePorts), { nat: natSave, filter: filterSave }) : [];
      const saved = this.clock.now();
      const gen = generateRulesChunked(
        {
          services: flattenServices(this.services),
          endpoints: flattenEndpoints(this.endpoints),
          family: this.family,
          nodeIPs: this.opts.nodeIPs,
          localhostNodePorts: this.opts.localhostNodePorts,
          masqueradeAll: this.opts.masqueradeAll,
          masqueradeBit: this.opts.masqueradeBit,
          ...(this.opts.localDetector ? { localDetector: this.opts.localDetector } : {}),
          ...(this.opts.clusterCIDR !== undefined ? { clusterCIDR: this.opts.clusterCIDR } : {}),
          topology: this.topology(),
        },
        {
          full,
          changedServices: changed,
          existingChains: existing,
          skipStaleCleanup: !cleanup,
          natExtra: missing.filter((j) => j.table === 'nat').map(jumpInsertLine),
          ...(full || !this.appliedTop ? {} : { previousTop: this.appliedTop }),
          canary: CANARY_CHAIN,
        },
      );
      // One iptables-restore per sync, as upstream: the nat text goes to it piece
      // by piece as it is made (its parsing overlaps the generation), and the
      // filter text follows it in the same input. A partial sync leaves the
      // filter table out when its text is what the last restore applied (most
      // changes touch nat only; at 10k services filter costs ~35 ms), and writes
      // nothing at all when neither table has anything to write. Full syncs
      // always write filter, which repairs outside edits.
      let rest: RulesRest | undefined;
      let generated = saved;
      const clock = this.clock;
      const lastFilter = this.appliedFilter;
      const writesFilter = (out: RulesRest) => full || out.filter !== lastFilter;
      const filterText = (out: RulesRest): string | undefined =>
        writesFilter(out) ? beforeCommit(out.filter, missing.filter((j) => j.table === 'filter').map(jumpInsertLine)) : undefined;
      const first = gen.next();
      this.appliedTop = undefined;
      this.appliedFilter = undefined;
      if (first.done) {
        rest = first.value;
        generated = clock.now();
        const filter = filterText(rest);
        if (filter !== undefined) await this.restore(filter, full);
      } else {
        const pieces = {
          *[Symbol.iterator]() {
            yield first.value;
            rest = yield* gen;
            generated = clock.now();
            const filter = filterText(rest);
            if (filter !== undefined) yield filter;
          },
        };
        await this.restore(pieces, full);
      }
      if (!rest) throw new NodeletError('PROXY_RESTORE_FAILED', 'iptables-restore ended before it read the rules');
      const out = rest;
      this.appliedTop = out.top;
      this.appliedFilter = out.filter;
      const inUse = out.chainsInUse;
      if (inUse) {
        this.natChains = new Set([...out.natChains, ...existing].filter((c) => !isServiceChain(c) || inUse.has(c)));
        this.lastCleanupMs = started;
      } else {
        // Nothing deleted: what existed plus what was declared (existing is natChains itself on a partial sync).
        const next = this.natChains ?? new Set(existing);
        for (const c of out.natChains) next.add(c);
        this.natChains = next;
      }
      this.largeCluster = out.largeCluster;
      // Where a sync's time goes (the full ones are rare and the ones worth reading).
      // Generation overlaps the restore: generateMs ends when the last nat piece is made, restoreMs is the rest.
      parts = { saveMs: saved - started, generateMs: generated - saved, restoreMs: this.clock.now() - generated };
      this.reportNoLocalEndpoints(out.noLocalEndpoints);
      // What this sync wrote (a partial one: the changed services' chains; the filter table only when it changed).
      this.metrics.rulesLast.set({ table: 'nat', ...this.labels }, out.ruleCounts.nat);
      this.metrics.rulesLast.set({ table: 'filter', ...this.labels }, writesFilter(out) ? out.ruleCounts.filter : 0);
      if (full) {
        this.metrics.rulesTotal.set({ table: 'nat', ...this.labels }, out.ruleCounts.nat);
        this.metrics.rulesTotal.set({ table: 'filter', ...this.labels }, out.ruleCounts.filter);
      }
    } catch (err) {
      this.needFullSync = true;
      this.log.error('proxy rules sync failed; next sync is full', { full, error: describeError(err) });
      this.runner.retryAfter(this.opts.minSyncPeriodMs);
      this.observe(started, full);
      return { full, ok: false };
    }
    this.needFullSync = false;
    this.synced();
    if (full) this.lastFullSyncMs = this.canaryCheckedMs = started;
    this.syncMetrics.synced(this.clock.now());
    this.observe(started, full);
    const fields = { full, changed: changed.size, services: this.services.size, ...parts };
    if (full) this.log.info('proxy rules synced', fields);
    else this.log.debug('proxy rules synced', fields);
    // The full sync's restores declared the nat and filter canaries; mangle's is made here, after them (not timed).
    if (full) await this.canary.ensure();
    // Timed and logged: the full sync's garbage goes back now, not whenever V8 finds the proxy idle.
    if (full) this.afterFullSync?.();
    return { full, ok: true };
  }

  private async restore(text: string | Iterable<string>, full: boolean): Promise<void> {
    try {
      await this.iptables.restore(text, { noflush: true });
    } catch (err) {
      this.metrics.restoreFailures.inc(this.labels);
      if (!full) this.metrics.partialRestoreFailures.inc(this.labels);
      throw err;
    }
  }

  private observe(started: number, full: boolean): void {
    this.syncMetrics.observe((this.clock.now() - started) / 1000, full);
  }
}
