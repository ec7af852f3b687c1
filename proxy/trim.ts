// What the proxy keeps of each Service and EndpointSlice: the informers'
// transform (client-go's SetTransform), applied before an object is stored.
// The proxy reads a Service's spec and load-balancer status and a slice's
// addresses, ports, conditions and node; everything else in the cache (the
// pod a slice endpoint points at, annotations such as kubectl's
// last-applied-configuration, owner references, managed fields) is memory
// held for nothing, 10k times over in a large cluster.
import type { V1Endpoint, V1EndpointSlice, V1ObjectMeta, V1Service } from '@kubernetes/client-node';

/** The metadata an informer and the proxy use: identity, version and labels. */
function trimMeta(m: V1ObjectMeta | undefined): V1ObjectMeta | undefined {
  if (!m) return m;
  const out: V1ObjectMeta = {};
  if (m.name !== undefined) out.name = m.name;
  if (m.namespace !== undefined) out.namespace = m.namespace;
  if (m.uid !== undefined) out.uid = m.uid;
  if (m.resourceVersion !== undefined) out.resourceVersion = m.resourceVersion;
  if (m.labels !== undefined) out.labels = m.labels;
  if (m.deletionTimestamp !== undefined) out.deletionTimestamp = m.deletionTimestamp;
  return out;
}

export function trimService(svc: V1Service): V1Service {
  const out: V1Service = {};
  if (svc.apiVersion !== undefined) out.apiVersion = svc.apiVersion;
  if (svc.kind !== undefined) out.kind = svc.kind;
  const meta = trimMeta(svc.metadata);
  if (meta) out.metadata = meta;
  if (svc.spec) {
    // The selector picks pods for the EndpointSlice controller, not for the proxy.
    const { selector: _selector, ...spec } = svc.spec;
    out.spec = spec;
  }
  const lb = svc.status?.loadBalancer;
  if (lb) out.status = { loadBalancer: lb };
  return out;
}

export function trimEndpointSlice(slice: V1EndpointSlice): V1EndpointSlice {
  const out: V1EndpointSlice = { addressType: slice.addressType, endpoints: [] };
  if (slice.apiVersion !== undefined) out.apiVersion = slice.apiVersion;
  if (slice.kind !== undefined) out.kind = slice.kind;
  const meta = trimMeta(slice.metadata);
  if (meta) out.metadata = meta;
  if (slice.ports !== undefined) out.ports = slice.ports;
  // Each endpoint without its targetRef (the pod), deprecatedTopology and hints.
  out.endpoints = (slice.endpoints ?? []).map((e) => {
    const ep: V1Endpoint = { addresses: e.addresses };
    if (e.conditions !== undefined) ep.conditions = e.conditions;
    if (e.nodeName !== undefined) ep.nodeName = e.nodeName;
    if (e.zone !== undefined) ep.zone = e.zone;
    return ep;
  });
  return out;
}
