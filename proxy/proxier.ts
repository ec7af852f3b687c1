// What every proxy mode implements (upstream's proxy.Provider): informer
// events in, rules or listeners out. The API wiring (proxy/main.ts) feeds
// one of these; iptables mode is proxy/iptables/proxier.ts, nftables mode
// proxy/nftables/proxier.ts, userspace mode proxy/userspace/proxier.ts.
import type { V1EndpointSlice, V1Service } from '@kubernetes/client-node';
import { EndpointsChangeTracker, ServiceChangeTracker, type EndpointsMap, type ServiceMap } from './changetracker.ts';
import { RoutedSnapshot, type RoutedSource } from './routed.ts';

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
  private readonly serviceChanges = new ServiceChangeTracker();
  private readonly endpointChanges: EndpointsChangeTracker;
  private readonly routed = new RoutedSnapshot();

  protected constructor(nodeName: string) {
    this.endpointChanges = new EndpointsChangeTracker(nodeName);
  }

  abstract start(): void;
  abstract stop(): Promise<void>;
  /** An informer event changed something: queue a sync. */
  protected abstract changed(): void;

  routedEndpoints(): ReadonlySet<string> | undefined {
    return this.routed.routedEndpoints();
  }

  onServiceAdd(svc: V1Service): void {
    this.note(this.serviceChanges.update(undefined, svc));
  }
  onServiceUpdate(prev: V1Service, svc: V1Service): void {
    this.note(this.serviceChanges.update(prev, svc));
  }
  onServiceDelete(svc: V1Service): void {
    this.note(this.serviceChanges.update(svc, undefined));
  }
  onSliceAdd(slice: V1EndpointSlice): void {
    this.note(this.endpointChanges.update(undefined, slice));
  }
  onSliceUpdate(prev: V1EndpointSlice, slice: V1EndpointSlice): void {
    this.note(this.endpointChanges.update(prev, slice));
  }
  onSliceDelete(slice: V1EndpointSlice): void {
    this.note(this.endpointChanges.update(slice, undefined));
  }

  /** Whether changes wait for a sync. */
  protected pending(): boolean {
    return this.serviceChanges.pending() || this.endpointChanges.pending();
  }

  /** Applies the waiting changes; the keys ("ns/name") of the services they touched. */
  protected drain(): Set<string> {
    return new Set([...this.serviceChanges.drain(this.services), ...this.endpointChanges.drain(this.endpoints)]);
  }

  /** The rules or listeners of the last drain() took effect. */
  protected synced(): void {
    this.routed.synced(this.services, this.endpoints);
  }

  private note(pending: boolean): void {
    if (pending) this.changed();
  }
}
