// What every proxy mode implements (upstream's proxy.Provider): informer
// events in, rules or listeners out. The API wiring (proxy/source.ts) feeds
// one of these; iptables mode is proxy/iptables/proxier.ts, userspace mode
// proxy/userspace/proxier.ts.
import type { V1EndpointSlice, V1Service } from '@kubernetes/client-node';
import type { RoutedSource } from './routed.ts';

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
