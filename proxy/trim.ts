// What the proxy keeps of each Service and EndpointSlice: the informers'
// transform (client-go's SetTransform), applied before an object is stored.
// The proxy reads a Service's spec and load-balancer status and a slice's
// addresses, ports, conditions and node; everything else in the cache (the
// pod a slice endpoint points at, annotations such as kubectl's
// last-applied-configuration, owner references, managed fields) is memory
// held for nothing, 10k times over in a large cluster.
import type { V1EndpointSlice, V1Node, V1ObjectMeta, V1Service, V1ServiceCIDR } from '@kubernetes/client-node';
import { LAST_CHANGE_TRIGGER_TIME } from './changetracker.ts';
import { SOURCE_RANGES_ANNOTATION } from './types.ts';

/** A copy of `obj` with only `keys`, and only those it has (no undefined fields). */
function pick<T extends object, K extends keyof T>(obj: T, keys: readonly K[]): Pick<T, K> {
  const out = {} as Pick<T, K>;
  for (const k of keys) if (obj[k] !== undefined) out[k] = obj[k];
  return out;
}

/** The metadata an informer and the proxy use: identity, version and labels. */
const META_KEYS = ['name', 'namespace', 'uid', 'resourceVersion', 'labels', 'deletionTimestamp'] as const satisfies readonly (keyof V1ObjectMeta)[];

export function trimService(svc: V1Service): V1Service {
  const out: V1Service = pick(svc, ['apiVersion', 'kind']);
  if (svc.metadata) out.metadata = pick(svc.metadata, META_KEYS);
  if (svc.spec) {
    // The selector picks pods for the EndpointSlice controller, not for the proxy.
    const { selector: _selector, ...spec } = svc.spec;
    out.spec = spec;
  }
  // The one annotation the proxy reads (source ranges the older way).
  const ranges = svc.metadata?.annotations?.[SOURCE_RANGES_ANNOTATION];
  if (ranges !== undefined && out.metadata) out.metadata.annotations = { [SOURCE_RANGES_ANNOTATION]: ranges };
  const lb = svc.status?.loadBalancer;
  if (lb) out.status = { loadBalancer: lb };
  return out;
}

export function trimEndpointSlice(slice: V1EndpointSlice): V1EndpointSlice {
  const out: V1EndpointSlice = {
    ...pick(slice, ['apiVersion', 'kind', 'ports']),
    addressType: slice.addressType,
    // Each endpoint without its targetRef (the pod) and deprecatedTopology.
    endpoints: (slice.endpoints ?? []).map((e) => pick(e, ['addresses', 'conditions', 'nodeName', 'zone', 'hints'])),
  };
  if (slice.metadata) {
    out.metadata = pick(slice.metadata, META_KEYS);
    // The one annotation the proxy reads (kubeproxy_network_programming_duration_seconds).
    const trigger = slice.metadata.annotations?.[LAST_CHANGE_TRIGGER_TIME];
    if (trigger !== undefined) out.metadata.annotations = { [LAST_CHANGE_TRIGGER_TIME]: trigger };
  }
  return out;
}

/** This proxy's Node: its labels (the zone, for topology hints), its pod CIDRs (NodeCIDR mode) and identity. */
export function trimNode(node: V1Node): V1Node {
  const out: V1Node = pick(node, ['apiVersion', 'kind']);
  if (node.metadata) out.metadata = pick(node.metadata, META_KEYS);
  if (node.spec) out.spec = pick(node.spec, ['podCIDR', 'podCIDRs', 'taints']);
  return out;
}

/** A ServiceCIDR (nftables mode): its identity and CIDRs. */
export function trimServiceCIDR(sc: V1ServiceCIDR): V1ServiceCIDR {
  const out: V1ServiceCIDR = pick(sc, ['apiVersion', 'kind']);
  if (sc.metadata) out.metadata = pick(sc.metadata, META_KEYS);
  if (sc.spec) out.spec = pick(sc.spec, ['cidrs']);
  return out;
}
