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
  type IPFamily,
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

  /** Objects with a change waiting (kubeproxy_sync_proxy_rules_*_changes_pending). */
  size(): number {
    return this.items.size;
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
  /** The family of the proxier it feeds: a service's ports of that family are tracked. */
  private readonly family: IPFamily;

  constructor(family: IPFamily = 'IPv4') {
    super();
    this.family = family;
  }

  /** An informer event: add (undefined, svc), update (old, svc), delete (svc, undefined). */
  update(prev: V1Service | undefined, cur: V1Service | undefined): boolean {
    const obj = cur ?? prev;
    if (!obj?.metadata?.name) return this.pending();
    const key = serviceKey(obj.metadata.namespace ?? 'default', obj.metadata.name);
    return this.record(key, this.ports(prev), this.ports(cur));
  }

  private ports(svc: V1Service | undefined): ServicePortInfo[] | undefined {
    const list = svc ? servicePortsFromService(svc, this.family) : [];
    return list.length > 0 ? list : undefined;
  }
}

/**
 * Takes EndpointSlice events and tracks the merged endpoints of each service.
 * It keeps the slices it has seen, because a service's endpoints are the
 * merge of all its slices.
 */
export class EndpointsChangeTracker extends ChangeTracker<Map<string, Endpoint[]>> {
  private readonly nodeName: string;
  private readonly family: IPFamily;
  private readonly slices = new Map<string, Map<string, V1EndpointSlice>>();
  /** Only trigger times after this (ms) count: older ones are from before we started. undefined: not kept. */
  private readonly triggersAfterMs: number | undefined;
  private readonly triggers = new Map<string, number[]>();

  constructor(nodeName: string, triggersAfterMs?: number, family: IPFamily = 'IPv4') {
    super();
    this.nodeName = nodeName;
    this.family = family;
    this.triggersAfterMs = triggersAfterMs;
  }

  /**
   * The EndpointSlice controller's trigger times (ms) of the endpoint changes
   * since the last call, for kubeproxy_network_programming_duration_seconds.
   */
  takeTriggerTimes(): number[] {
    const out = [...this.triggers.values()].flat();
    this.triggers.clear();
    return out;
  }

  update(prev: V1EndpointSlice | undefined, cur: V1EndpointSlice | undefined): boolean {
    // addressType cannot change: the other family's slices are not kept at all.
    if ((cur ?? prev)?.addressType !== this.family) return this.pending();
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
      const next = this.endpointsOf(svc);
      if (this.triggersAfterMs !== undefined) this.noteTrigger(svc, after === svc ? cur : undefined, old, next);
      this.record(svc, old, next);
    }
    return this.pending();
  }

  /** As upstream: a removed slice's time is not a change time (and drops the service's); an update's is, if it changed the endpoints. */
  private noteTrigger(svc: string, cur: V1EndpointSlice | undefined, old: Map<string, Endpoint[]> | undefined, next: Map<string, Endpoint[]> | undefined): void {
    if (!cur) {
      this.triggers.delete(svc);
      return;
    }
    const t = lastChangeTriggerTime(cur);
    if (t === undefined || t <= this.triggersAfterMs! || isDeepStrictEqual(old, next)) return;
    const list = this.triggers.get(svc);
    if (list) list.push(t);
    else this.triggers.set(svc, [t]);
  }

  private endpointsOf(svc: string): Map<string, Endpoint[]> | undefined {
    const set = this.slices.get(svc);
    if (!set || set.size === 0) return undefined;
    const eps = endpointsFromSlices([...set.values()], this.nodeName, this.family);
    return eps.size > 0 ? eps : undefined;
  }
}

/** Set by the EndpointSlice controller: when the change its update carries happened (RFC 3339). */
export const LAST_CHANGE_TRIGGER_TIME = 'endpoints.kubernetes.io/last-change-trigger-time';

function lastChangeTriggerTime(slice: V1EndpointSlice): number | undefined {
  const v = slice.metadata?.annotations?.[LAST_CHANGE_TRIGGER_TIME];
  const t = v ? Date.parse(v) : NaN;
  return Number.isFinite(t) ? t : undefined;
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
