// The nftables-mode proxier (--proxy-mode=nftables): informer events feed
// the change trackers and ask the bounded-frequency runner for a sync. A full
// sync (the first, the periodic one with nothing queued, any after a failure)
// rebuilds the model from all services (rules.ts) and replaces the table in
// one `nft -f`; an incremental one updates the kept model only for the
// services that changed and sends just what its journal says was touched
// (transaction.ts), so its cost follows the change, not the cluster. After a
// failed transaction nothing is assumed about the kernel's table: the next
// sync replaces it whole, which also repairs drift.
//
// One proxier per IP family (a dual-stack node runs two, proxy/metaproxier.ts),
// each with its own table: `ip nodelet` or `ip6 nodelet`.
import { Counter, Gauge, type Registry } from 'prom-client';
import type { Clock } from '../../lib/clock.ts';
import { describeError } from '../../lib/errors.ts';
import { ipFamilyOf } from '../../lib/ip.ts';
import type { Logger } from '../../lib/log.ts';
import { sharedMetrics } from '../../lib/sharedmetrics.ts';
import { flattenEndpoints, flattenServices } from '../changetracker.ts';
import { FULL_SYNC_PERIOD_MS, ROUTE_LOCALNET, type Sysctl } from '../iptables/proxier.ts';
import { ProxierBase } from '../proxier.ts';
import { BoundedFrequencyRunner } from '../runner.ts';
import { SyncMetrics } from '../syncmetrics.ts';
import { localhostNodePorts, portKey, type IPFamily } from '../types.ts';
import type { LocalDetector } from '../localdetect.ts';
import type { Nft } from './nft.ts';
import { serviceFragment, type FragmentOptions, type NftOptions } from './rules.ts';
import { NftState } from './state.ts';
import { countElements, fullTransaction, journalTransaction } from './transaction.ts';

export interface NftablesProxierOptions {
  nodeName: string;
  /** The family it proxies (table `ip nodelet` or `ip6 nodelet`); default IPv4. */
  family?: IPFamily;
  /** Where NodePorts answer (addresses of the family); [] = every local address. */
  nodeIPs: readonly string[];
  /** The cluster's pod CIDR of the family. */
  clusterCIDR?: string;
  /** Upstream --masquerade-all. */
  masqueradeAll?: boolean;
  /** Upstream's masquerade bit (default 14). */
  masqueradeBit?: number;
  /** --detect-local-mode other than ClusterCIDR. */
  localDetector?: LocalDetector;
  /** The cluster's ServiceCIDRs (setServiceCIDRs keeps them current). */
  serviceCIDRs?: readonly string[];
  /** NodePorts answer on 127.0.0.0/8 too; IPv4 only (an IPv6 proxier ignores it, as upstream). */
  localhostNodePorts: boolean;
  minSyncPeriodMs?: number;
  /** The periodic resync (upstream's --nftables-sync-period; nodelet reuses --iptables-sync-period). */
  syncPeriodMs?: number;
  /**
   * How often the resync is a full reconcile (default 1 h, upstream's
   * FullSyncPeriod): a full transaction replaces the table, which also
   * forgets the ClientIP affinity sets, so it is not done every resync.
   */
  fullSyncPeriodMs?: number;
}

export interface NftablesProxierDeps {
  nft: Nft;
  clock: Clock;
  log: Logger;
  registry: Registry;
  sysctl: Sysctl;
  /** Called after a full sync went through (main: a full garbage collection, lib/gc.ts). */
  afterFullSync?: () => void;
}

/** The nftables-only metrics, one set per registry (ip_family labels, as upstream's). */
class NftMetricSet {
  readonly syncFailures: Counter<'ip_family'>;
  readonly elements: Gauge<'ip_family'>;
  readonly chains: Gauge<'ip_family'>;

  static of(registry: Registry): NftMetricSet {
    return sharedMetrics(registry, 'proxy-nftables', (r) => new NftMetricSet(r));
  }

  private constructor(registry: Registry) {
    const registers = [registry];
    const labelNames = ['ip_family'] as const;
    this.syncFailures = new Counter({ name: 'kubeproxy_sync_proxy_rules_nftables_sync_failures_total', help: 'Cumulative proxy nftables sync failures', labelNames, registers });
    this.elements = new Gauge({ name: 'nodelet_proxy_nftables_elements', help: 'Map and set elements in the family\'s table nodelet (as of the last successful sync)', labelNames, registers });
    this.chains = new Gauge({ name: 'nodelet_proxy_nftables_chains', help: 'Chains in the family\'s table nodelet (as of the last successful sync)', labelNames, registers });
  }
}

export interface NftSyncResult {
  full: boolean;
  ok: boolean;
  /** False when an incremental sync found nothing to change (no nft run). */
  applied: boolean;
}

export class NftablesProxier extends ProxierBase {
  private readonly nft: Nft;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly sysctl: Sysctl;
  private readonly afterFullSync: (() => void) | undefined;
  private readonly opts: NftablesProxierOptions & { minSyncPeriodMs: number; syncPeriodMs: number; fullSyncPeriodMs: number };
  private lastFullSyncMs = -Infinity;
  private readonly metrics: NftMetricSet;
  private readonly syncMetrics: SyncMetrics;
  private readonly labels: { ip_family: IPFamily };
  private readonly runner: BoundedFrequencyRunner;

  /** The model of what the kernel holds after the last successful transaction; undefined = unknown (next sync is full). */
  private state: NftState | undefined;
  private routeLocalnetSet = false;

  constructor(deps: NftablesProxierDeps, options: NftablesProxierOptions) {
    super(options.nodeName, deps, options.family ?? 'IPv4');
    this.nft = deps.nft;
    this.clock = deps.clock;
    this.afterFullSync = deps.afterFullSync;
    this.log = deps.log;
    this.sysctl = deps.sysctl;
    this.opts = {
      ...options,
      ...(options.serviceCIDRs ? { serviceCIDRs: this.ofFamily(options.serviceCIDRs) } : {}),
      minSyncPeriodMs: options.minSyncPeriodMs ?? 1000,
      syncPeriodMs: options.syncPeriodMs ?? 30000,
      fullSyncPeriodMs: options.fullSyncPeriodMs ?? FULL_SYNC_PERIOD_MS,
    };
    this.labels = { ip_family: this.family };
    this.metrics = NftMetricSet.of(deps.registry);
    this.syncMetrics = new SyncMetrics(deps.registry, this.family);
    this.runner = new BoundedFrequencyRunner(
      () => this.syncProxyRules().then(() => undefined),
      this.opts.minSyncPeriodMs,
      this.opts.syncPeriodMs,
      this.clock,
      (err) => this.log.error('proxy sync failed', { error: describeError(err) }),
    );
  }

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
    this.state = undefined;
  }

  setLocalDetector(detector: LocalDetector): void {
    this.opts.localDetector = detector;
    this.resyncAll();
  }

  /** The CIDRs of this proxier's family (a dual-stack node gives both proxiers all of them, as upstream). */
  private ofFamily(cidrs: readonly string[]): string[] {
    return cidrs.filter((c) => ipFamilyOf(c) === this.family).sort();
  }

  override setServiceCIDRs(cidrs: readonly string[]): void {
    const sorted = this.ofFamily(cidrs);
    if (sorted.join(',') === (this.opts.serviceCIDRs ?? []).join(',')) return;
    this.log.info('service CIDRs', { cidrs: sorted });
    this.opts.serviceCIDRs = sorted;
    // In a static chain: rare enough that the next sync may rewrite everything.
    this.resyncAll();
  }

  /** One sync. Never throws: a failure is logged and counted, the next sync is full, a retry comes after minSyncPeriod. */
  async syncProxyRules(): Promise<NftSyncResult> {
    const started = this.clock.now();
    const pending = this.pending();
    const changed = this.drain();
    // Full: the first sync, after a failure, and a resync once per fullSyncPeriod; else only what changed.
    let full = this.state === undefined || (!pending && started - this.lastFullSyncMs >= this.opts.fullSyncPeriodMs);
    let applied = false;
    try {
      if (localhostNodePorts(this.opts) && !this.routeLocalnetSet) {
        await this.sysctl(ROUTE_LOCALNET, '1');
        this.routeLocalnetSet = true;
      }
      let state = this.state;
      let text = '';
      if (!full && state) {
        this.update(state, changed);
        const diff = journalTransaction(state.takeJournal(), state.rs);
        if (diff.needsFull) full = true;
        else text = diff.text;
      }
      if (full || !state) {
        state = this.rebuild();
        text = fullTransaction(state.rs);
      }
      // Unknown until this transaction is known to have landed.
      this.state = undefined;
      if (text !== '') {
        await this.nft.apply(text);
        applied = true;
      }
      this.state = state;
      if (full) this.lastFullSyncMs = started;
      this.metrics.elements.set(this.labels, countElements(state.rs));
      this.metrics.chains.set(this.labels, state.rs.chains.size);
      this.reportNoLocalEndpoints(state.noLocalEndpoints());
    } catch (err) {
      this.state = undefined;
      this.metrics.syncFailures.inc(this.labels);
      this.log.error('nftables sync failed; next sync is full', { full, error: describeError(err) });
      this.runner.retryAfter(this.opts.minSyncPeriodMs);
      this.observe(started, full);
      return { full, ok: false, applied: false };
    }
    this.syncMetrics.synced(this.clock.now());
    this.observe(started, full);
    this.log.debug('proxy rules synced', { full, changed: changed.size, services: this.services.size, applied });
    this.synced();
    // Timed and logged: the full sync's garbage goes back now, not whenever V8 finds the proxy idle.
    if (full) this.afterFullSync?.();
    return { full, ok: true, applied };
  }

  private options(): NftOptions {
    return {
      family: this.family,
      nodeIPs: this.opts.nodeIPs,
      localhostNodePorts: this.opts.localhostNodePorts,
      ...(this.opts.clusterCIDR !== undefined ? { clusterCIDR: this.opts.clusterCIDR } : {}),
      ...(this.opts.masqueradeAll ? { masqueradeAll: true } : {}),
      ...(this.opts.masqueradeBit !== undefined ? { masqueradeBit: this.opts.masqueradeBit } : {}),
      ...(this.opts.localDetector ? { localDetector: this.opts.localDetector } : {}),
      ...(this.opts.serviceCIDRs?.length ? { serviceCIDRs: this.opts.serviceCIDRs } : {}),
    };
  }

  /** A model of everything, from scratch. */
  private rebuild(): NftState {
    const state = new NftState(this.options(), false);
    const endpoints = flattenEndpoints(this.endpoints);
    const ports = flattenServices(this.services).map((sp) => [portKey(sp), sp] as const);
    ports.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    const opts = this.fragmentOptions();
    for (const [key, sp] of ports) state.set(key, serviceFragment(sp, endpoints.get(key) ?? [], opts));
    state.takeJournal(); // journaling from here on
    return state;
  }

  /** Brings the model up to date for the services ("ns/name") whose service or endpoints changed. */
  private update(state: NftState, changed: ReadonlySet<string>): void {
    const opts = this.fragmentOptions();
    for (const svc of changed) {
      const eps = this.endpoints.get(svc);
      const now = new Map((this.services.get(svc) ?? []).map((sp) => [portKey(sp), sp] as const));
      for (const owner of state.ownersOf(svc)) if (!now.has(owner)) state.set(owner, undefined);
      for (const [key, sp] of now) state.set(key, serviceFragment(sp, eps?.get(key) ?? [], opts));
    }
  }

  private fragmentOptions(): FragmentOptions {
    return { family: this.family, nodeIPs: this.opts.nodeIPs, topology: this.topology() };
  }

  private observe(started: number, full: boolean): void {
    this.syncMetrics.observe((this.clock.now() - started) / 1000, full);
  }
}
