// Change trackers in front of the proxy's sync, as upstream's
// ServiceChangeTracker / EndpointsChangeTracker: per object key ("ns/name")
// they keep the value before the first change of this batch and the latest
// one. A change that comes back to where it started cancels out, so a no-op
// update never triggers a sync. drain() hands the batch to the sync.
import { isDeepStrictEqual } from 'node:util';
import type { V1EndpointSlice, V1Service } from '@kubernetes/client-node';
import {
  endpointsFromSlices,
  SERVICE_NAME_LABEL,
  serviceKey,
  servicePortsFromService,
  type Endpoint,
  type ServicePortInfo,
} from './types.ts';

interface Change<V> {
  previous: V | undefined;
  current: V | undefined;
}

class ChangeTracker<V> {
  private readonly items = new Map<string, Change<V>>();

  /** Records that `key` went from `previous` to `current`; returns pending(). */
  protected record(key: string, previous: V | undefined, current: V | undefined): boolean {
    const change = this.items.get(key) ?? { previous, current };
    change.current = current;
    if (isDeepStrictEqual(change.previous, change.current)) this.items.delete(key);
    else this.items.set(key, change);
    return this.pending();
  }

  pending(): boolean {
    return this.items.size > 0;
  }

  /** Applies the pending changes to `into` (undefined = delete) and returns the changed keys, sorted. */
  drain(into: Map<string, V>): Set<string> {
    const keys = [...this.items.keys()].sort();
    for (const key of keys) {
      const cur = this.items.get(key)?.current;
      if (cur === undefined) into.delete(key);
      else into.set(key, cur);
    }
    this.items.clear();
    return new Set(keys);
  }
}

/** Services by "ns/name"; the value is the service's proxied ports. */
export type ServiceMap = Map<string, ServicePortInfo[]>;
/** Endpoints by "ns/name" of their service, then by service port key. */
export type EndpointsMap = Map<string, Map<string, Endpoint[]>>;

export class ServiceChangeTracker extends ChangeTracker<ServicePortInfo[]> {
  /** An informer event: add (undefined, svc), update (old, svc), delete (svc, undefined). */
  update(prev: V1Service | undefined, cur: V1Service | undefined): boolean {
    const obj = cur ?? prev;
    if (!obj?.metadata?.name) return this.pending();
    const key = serviceKey(obj.metadata.namespace ?? 'default', obj.metadata.name);
    return this.record(key, ports(prev), ports(cur));
  }
}

function ports(svc: V1Service | undefined): ServicePortInfo[] | undefined {
  const list = svc ? servicePortsFromService(svc) : [];
  return list.length > 0 ? list : undefined;
}

/**
 * Takes EndpointSlice events and tracks the merged endpoints of each service.
 * It keeps the slices it has seen, because a service's endpoints are the
 * merge of all its slices.
 */
export class EndpointsChangeTracker extends ChangeTracker<Map<string, Endpoint[]>> {
  private readonly nodeName: string;
  private readonly slices = new Map<string, Map<string, V1EndpointSlice>>();

  constructor(nodeName: string) {
    super();
    this.nodeName = nodeName;
  }

  update(prev: V1EndpointSlice | undefined, cur: V1EndpointSlice | undefined): boolean {
    const before = prev && sliceService(prev);
    const after = cur && sliceService(cur);
    for (const svc of new Set([before, after])) {
      if (svc === undefined) continue;
      const old = this.endpointsOf(svc);
      let set = this.slices.get(svc);
      if (!set) this.slices.set(svc, (set = new Map()));
      if (prev && before === svc) set.delete(prev.metadata?.name ?? '');
      if (cur && after === svc) set.set(cur.metadata?.name ?? '', cur);
      if (set.size === 0) this.slices.delete(svc);
      this.record(svc, old, this.endpointsOf(svc));
    }
    return this.pending();
  }

  private endpointsOf(svc: string): Map<string, Endpoint[]> | undefined {
    const set = this.slices.get(svc);
    if (!set || set.size === 0) return undefined;
    const eps = endpointsFromSlices([...set.values()], this.nodeName);
    return eps.size > 0 ? eps : undefined;
  }
}

function sliceService(slice: V1EndpointSlice): string | undefined {
  const svc = slice.metadata?.labels?.[SERVICE_NAME_LABEL];
  return svc ? serviceKey(slice.metadata?.namespace ?? 'default', svc) : undefined;
}

/** All service ports, for the rule generator (which sorts them). */
export function flattenServices(services: ServiceMap): ServicePortInfo[] {
  return [...services.values()].flat();
}

/** Endpoints by service port key, for the rule generator. */
export function flattenEndpoints(endpoints: EndpointsMap): Map<string, Endpoint[]> {
  const out = new Map<string, Endpoint[]>();
  for (const byPort of endpoints.values()) for (const [k, v] of byPort) out.set(k, v);
  return out;
}
