// What every proxy mode implements (upstream's proxy.Provider): informer
// events in, rules or listeners out. The API wiring (proxy/main.ts) feeds
// one of these; iptables mode is proxy/iptables/proxier.ts, nftables mode
// proxy/nftables/proxier.ts, userspace mode proxy/userspace/proxier.ts.
import type { V1EndpointSlice, V1Service } from '@kubernetes/client-node';
import { EndpointsChangeTracker, ServiceChangeTracker, type EndpointsMap, type ServiceMap } from './changetracker.ts';
import { RoutedSnapshot, type RoutedSource, type SyncedState } from './routed.ts';
import type { Registry } from 'prom-client';
import type { Clock } from '../lib/clock.ts';
import { ChangeMetrics } from './changemetrics.ts';
import { type Topology, zoneOf } from './categorize.ts';
import type { LocalDetector } from './localdetect.ts';
import type { IPFamily } from './types.ts';

export type { SyncedState } from './routed.ts';

export type ProxyMode = 'iptables' | 'userspace' | 'nftables';

export interface Proxier extends RoutedSource {
  /** Starts the sync loop and asks for the first (full) sync. */
  start(): void;
  /** Stops syncing; programmed rules stay (as upstream, rules outlive the process). */
  stop(): Promise<void>;
  onServiceAdd(svc: V1Service): void;
  onServiceUpdate(prev: V1Service, svc: V1Service): void;
  onServiceDelete(svc: V1Service): void;
  onSliceAdd(slice: V1EndpointSlice): void;
  onSliceUpdate(prev: V1EndpointSlice, slice: V1EndpointSlice): void;
  onSliceDelete(slice: V1EndpointSlice): void;
  /**
   * This node's labels, from its Node object ({} when it has none or is gone):
   * its zone picks the endpoints of services with topology hints (upstream's
   * OnTopologyChange). A change of zone rewrites every service.
   */
  onTopologyChange(labels: Readonly<Record<string, string>>): void;
  /**
   * How pod traffic is told apart from now on (--detect-local-mode NodeCIDR:
   * the Node's pod CIDR, set or changed after start); the next sync rewrites
   * everything. Userspace mode tells nothing apart and ignores it.
   */
  setLocalDetector(detector: LocalDetector): void;
  /**
   * The cluster's ServiceCIDRs (networking.k8s.io/v1), whenever they change:
   * nftables mode drops new connections to their addresses that no service
   * has, as upstream's; the other modes ignore them, as upstream's.
   */
  setServiceCIDRs(cidrs: readonly string[]): void;
}

/**
 * What the modes share: the informer handlers feed the change trackers, and
 * a handler that changed something calls changed() (where a mode queues its
 * sync); a sync drain()s the batch into services/endpoints and, once its
 * rules or listeners took effect, calls synced() so /nodelet/routed answers
 * from what was synced.
 */
export abstract class ProxierBase implements Proxier {
  protected readonly services: ServiceMap = new Map();
  protected readonly endpoints: EndpointsMap = new Map();
  private readonly serviceChanges: ServiceChangeTracker;
  private readonly endpointChanges: EndpointsChangeTracker;
  /** The IP family this proxier serves (a dual-stack node runs one proxier per family, metaproxier.ts). */
  readonly family: IPFamily;
  private readonly routed = new RoutedSnapshot();
  private readonly syncListeners: ((state: SyncedState) => void)[] = [];
  private readonly changeMetrics: ChangeMetrics;
  private readonly wallClock: Clock;
  /** Trigger times (ms) of drained endpoint changes whose sync has not gone through yet. */
  private unprogrammed: number[] = [];
  private readonly topo: Topology;

  protected constructor(nodeName: string, deps: { registry: Registry; clock: Clock }, family: IPFamily = 'IPv4') {
    this.topo = { nodeName, zone: '' };
    this.wallClock = deps.clock;
    this.family = family;
    this.serviceChanges = new ServiceChangeTracker(family);
    // Trigger times from before this start (the initial list) are not latencies of ours.
    this.endpointChanges = new EndpointsChangeTracker(nodeName, deps.clock.now(), family);
    this.changeMetrics = ChangeMetrics.of(deps.registry);
  }

  abstract start(): void;
  abstract stop(): Promise<void>;
  abstract setLocalDetector(detector: LocalDetector): void;
  /** An informer event changed something: queue a sync. */
  protected abstract changed(): void;
  /** What was synced no longer holds for any service (the zone changed): the next sync rewrites everything. */
  protected abstract invalidate(): void;

  routedEndpoints(): ReadonlySet<string> | undefined {
    return this.routed.routedEndpoints();
  }

  /** `listener` gets what each successful sync programmed (the conntrack reconciler). */
  onSynced(listener: (state: SyncedState) => void): void {
    this.syncListeners.push(listener);
  }

  onServiceAdd(svc: V1Service): void {
    this.serviceEvent(undefined, svc);
  }
  onServiceUpdate(prev: V1Service, svc: V1Service): void {
    this.serviceEvent(prev, svc);
  }
  onServiceDelete(svc: V1Service): void {
    this.serviceEvent(svc, undefined);
  }
  onSliceAdd(slice: V1EndpointSlice): void {
    this.sliceEvent(undefined, slice);
  }
  onSliceUpdate(prev: V1EndpointSlice, slice: V1EndpointSlice): void {
    this.sliceEvent(prev, slice);
  }
  onSliceDelete(slice: V1EndpointSlice): void {
    this.sliceEvent(slice, undefined);
  }

  setServiceCIDRs(_cidrs: readonly string[]): void {}

  onTopologyChange(labels: Readonly<Record<string, string>>): void {
    const zone = zoneOf(labels);
    if (zone === this.topo.zone) return;
    this.topo.zone = zone;
    this.resyncAll();
  }

  /** Something every service's rules depend on changed: the next sync rewrites them all. */
  protected resyncAll(): void {
    this.invalidate();
    this.changed();
  }

  /** This node and its zone, as of now (a copy: a sync keeps what it used). */
  protected topology(): Topology {
    return { ...this.topo };
  }

  private serviceEvent(prev: V1Service | undefined, cur: V1Service | undefined): void {
    // Counted by each family's proxier, as upstream's trackers do.
    this.changeMetrics.serviceChangesTotal.inc();
    const pending = this.serviceChanges.update(prev, cur);
    this.changeMetrics.serviceChangesPending.set(this.serviceChanges.size());
    this.note(pending);
  }

  private sliceEvent(prev: V1EndpointSlice | undefined, cur: V1EndpointSlice | undefined): void {
    // The other family's slices are the other proxier's (addressType never changes).
    if ((cur ?? prev)?.addressType !== this.family) return;
    this.changeMetrics.endpointChangesTotal.inc();
    const pending = this.endpointChanges.update(prev, cur);
    this.changeMetrics.endpointChangesPending.set(this.endpointChanges.size());
    this.note(pending);
  }

  /** Whether changes wait for a sync. */
  protected pending(): boolean {
    return this.serviceChanges.pending() || this.endpointChanges.pending();
  }

  /** Applies the waiting changes; the keys ("ns/name") of the services they touched. */
  protected drain(): Set<string> {
    for (const t of this.endpointChanges.takeTriggerTimes()) this.unprogrammed.push(t);
    const keys = new Set([...this.serviceChanges.drain(this.services), ...this.endpointChanges.drain(this.endpoints)]);
    this.changeMetrics.serviceChangesPending.set(0);
    this.changeMetrics.endpointChangesPending.set(0);
    return keys;
  }

  /** Service ports with endpoints whose Local policy has none on this node, as of the last sync. */
  protected reportNoLocalEndpoints(counts: { internal: number; external: number }): void {
    this.changeMetrics.noLocalEndpoints.set({ traffic_policy: 'internal', ip_family: this.family }, counts.internal);
    this.changeMetrics.noLocalEndpoints.set({ traffic_policy: 'external', ip_family: this.family }, counts.external);
  }

  /** The rules or listeners of the last drain() took effect: the drained changes' latencies are observed. */
  protected synced(): void {
    const state = this.routed.synced(this.services, this.endpoints, this.topology());
    for (const l of this.syncListeners) l(state);
    if (this.unprogrammed.length === 0) return;
    const now = this.wallClock.now();
    // Wall clocks of two machines: a trigger "in the future" is clock skew, counted as 0.
    const latency = this.changeMetrics.networkProgramming.labels({ ip_family: this.family });
    for (const t of this.unprogrammed) latency.observe(Math.max(0, now - t) / 1000);
    this.unprogrammed = [];
  }

  private note(pending: boolean): void {
    if (pending) this.changed();
  }
}
