// What the service proxy consumes: one ServicePortInfo per service port and
// the endpoints behind it, converted from API objects once, here. The rest of
// proxy/ never looks at V1Service or V1EndpointSlice. A proxier serves one
// IP family (a dual-stack node runs one per family, as upstream's MetaProxier):
// each conversion takes the family and keeps that family's addresses.
import type { V1EndpointSlice, V1Service } from '@kubernetes/client-node';
import { ipFamilyOf, ipToBigInt, joinHostPort, normalizeCIDR, type IPFamily } from '../lib/ip.ts';

export type { IPFamily } from '../lib/ip.ts';

export type Protocol = 'TCP' | 'UDP' | 'SCTP';
export type TrafficPolicy = 'Cluster' | 'Local';

/** Upstream's default for sessionAffinityConfig.clientIP.timeoutSeconds (3 hours). */
export const DEFAULT_STICKY_SECONDS = 10800;

/** Upstream's --iptables-masquerade-bit default: mark 0x4000 says "masquerade this". */
export const DEFAULT_MASQUERADE_BIT = 14;

/** The fwmark of a masquerade bit, as iptables-save prints it ("0x4000" for 14). */
export function masqueradeMark(bit: number = DEFAULT_MASQUERADE_BIT): string {
  return `0x${(2 ** bit).toString(16)}`;
}

/** The label that ties an EndpointSlice to its Service. */
export const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';

export interface ServicePortInfo {
  namespace: string;
  name: string;
  /** The port's name; '' for the single unnamed port. */
  portName: string;
  protocol: Protocol;
  /** The cluster IPs of the proxier's family (one; a dual-stack service's other one is the other proxier's). */
  clusterIPs: string[];
  port: number;
  /** 0 when the service has no node port. */
  nodePort: number;
  externalIPs: string[];
  /** VIP-mode load-balancer ingress IPs (status.loadBalancer.ingress[].ip). */
  loadBalancerIPs: string[];
  /**
   * spec.loadBalancerSourceRanges (else the older annotation), the CIDRs of
   * the proxier's family with their host bits cleared: only these sources may
   * reach the load-balancer IPs. Left out when there are none.
   */
  loadBalancerSourceRanges?: string[];
  sessionAffinity: 'None' | 'ClientIP';
  /** Only meaningful with ClientIP affinity. */
  stickySeconds: number;
  /** 'Local' only when the service is reachable from outside (NodePort, LoadBalancer, external IPs). */
  externalTrafficPolicy: TrafficPolicy;
  internalTrafficPolicy: TrafficPolicy;
  /** 0 unless a LoadBalancer service with externalTrafficPolicy Local. */
  healthCheckNodePort: number;
}

export interface Endpoint {
  ip: string;
  port: number;
  ready: boolean;
  serving: boolean;
  terminating: boolean;
  nodeName?: string;
  /** On this node (nodeName matches). */
  isLocal: boolean;
  /** hints.forZones names: the zones whose nodes should use this endpoint (left out when none). */
  zoneHints?: string[];
  /** hints.forNodes names (trafficDistribution PreferSameNode; left out when none). */
  nodeHints?: string[];
}

/** Whether node ports answer on localhost: asked for, and IPv4 (::1 cannot be routed to; upstream never does it for IPv6). */
export function localhostNodePorts(input: { localhostNodePorts: boolean; family?: IPFamily | undefined }): boolean {
  return input.localhostNodePorts && input.family !== 'IPv6';
}

/** "ns/name": the key of a Service (and of its slices' service). */
export function serviceKey(namespace: string, name: string): string {
  return `${namespace}/${name}`;
}

/** "ns/name:port" (or "ns/name" for an unnamed port), as upstream's ServicePortName.String(). */
export function servicePortKey(namespace: string, name: string, portName: string): string {
  return portName ? `${namespace}/${name}:${portName}` : `${namespace}/${name}`;
}

export function portKey(sp: ServicePortInfo): string {
  return servicePortKey(sp.namespace, sp.name, sp.portName);
}

/** "ip:port", "[ip6]:port" (upstream's endpoint String(), which its chain-name hashes cover). */
export function endpointString(ep: Endpoint): string {
  return joinHostPort(ep.ip, ep.port);
}

function toProtocol(p: string | undefined): Protocol | undefined {
  const v = p ?? 'TCP';
  return v === 'TCP' || v === 'UDP' || v === 'SCTP' ? v : undefined;
}

/**
 * One entry per port of a proxied service, for the proxier of `family`.
 * Headless (clusterIP None) and ExternalName services get no entries: nothing
 * to proxy; nor does a service without a cluster IP of the family.
 */
export function servicePortsFromService(svc: V1Service, family: IPFamily = 'IPv4'): ServicePortInfo[] {
  const spec = svc.spec;
  const namespace = svc.metadata?.namespace ?? 'default';
  const name = svc.metadata?.name;
  if (!spec || !name || spec.type === 'ExternalName') return [];
  if (!spec.clusterIP || spec.clusterIP === 'None') return [];
  const ours = (ip: string) => ipFamilyOf(ip) === family;
  const clusterIPs = (spec.clusterIPs ?? [spec.clusterIP]).filter(ours);
  if (clusterIPs.length === 0) return [];

  const type = spec.type ?? 'ClusterIP';
  const externalIPs = (spec.externalIPs ?? []).filter(ours);
  const externallyAccessible = type === 'NodePort' || type === 'LoadBalancer' || externalIPs.length > 0;
  const externalLocal = externallyAccessible && spec.externalTrafficPolicy === 'Local';
  const loadBalancerIPs = (svc.status?.loadBalancer?.ingress ?? [])
    .filter((ing) => ing.ip && ours(ing.ip) && ing.ipMode !== 'Proxy')
    .map((ing) => ing.ip as string);
  const clientIP = spec.sessionAffinity === 'ClientIP';
  const sourceRanges = loadBalancerSourceRanges(svc, family);

  const out: ServicePortInfo[] = [];
  for (const p of spec.ports ?? []) {
    const protocol = toProtocol(p.protocol);
    if (!protocol) continue;
    out.push({
      namespace,
      name,
      portName: p.name ?? '',
      protocol,
      clusterIPs,
      port: p.port,
      nodePort: p.nodePort ?? 0,
      externalIPs,
      loadBalancerIPs,
      ...(sourceRanges.length > 0 ? { loadBalancerSourceRanges: sourceRanges } : {}),
      sessionAffinity: clientIP ? 'ClientIP' : 'None',
      stickySeconds: clientIP ? (spec.sessionAffinityConfig?.clientIP?.timeoutSeconds ?? DEFAULT_STICKY_SECONDS) : 0,
      externalTrafficPolicy: externalLocal ? 'Local' : 'Cluster',
      internalTrafficPolicy: spec.internalTrafficPolicy === 'Local' ? 'Local' : 'Cluster',
      healthCheckNodePort: type === 'LoadBalancer' && externalLocal ? (spec.healthCheckNodePort ?? 0) : 0,
    });
  }
  return out;
}

/** Upstream's older way to give loadBalancerSourceRanges (comma-separated), read when the field is empty. */
export const SOURCE_RANGES_ANNOTATION = 'service.beta.kubernetes.io/load-balancer-source-ranges';

/** A service's source ranges of `family`, normalized and without duplicates (the other family's and malformed entries are not ours). */
function loadBalancerSourceRanges(svc: V1Service, family: IPFamily): string[] {
  let raw = svc.spec?.loadBalancerSourceRanges ?? [];
  if (raw.length === 0) raw = (svc.metadata?.annotations?.[SOURCE_RANGES_ANNOTATION] ?? '').split(',');
  const out: string[] = [];
  for (const r of raw) {
    const c = normalizeCIDR(r.trim());
    if (c && ipFamilyOf(c) === family && !out.includes(c)) out.push(c);
  }
  return out;
}

/** Dotted IPv4 to a number, without allocating (it runs inside sort comparators). */
function ipToNumber(ip: string): number {
  let n = 0;
  let part = 0;
  for (let i = 0; i < ip.length; i++) {
    const c = ip.charCodeAt(i);
    if (c === 46) {
      n = n * 256 + part;
      part = 0;
    } else part = part * 10 + (c - 48);
  }
  return n * 256 + part;
}

/** By address, then port (a proxier's endpoints are all of one family). */
export function compareEndpoints(a: Endpoint, b: Endpoint): number {
  if (a.ip.includes(':') || b.ip.includes(':')) {
    const x = ipToBigInt(a.ip);
    const y = ipToBigInt(b.ip);
    return x < y ? -1 : x > y ? 1 : a.port - b.port;
  }
  return ipToNumber(a.ip) - ipToNumber(b.ip) || a.port - b.port;
}

/** The names of a hint list, sorted; undefined when there are none. */
function hintNames(list: readonly { name: string }[] | undefined): string[] | undefined {
  const names = (list ?? []).map((h) => h.name).filter((n) => typeof n === 'string' && n !== '');
  return names.length > 0 ? names.sort() : undefined;
}

/**
 * Endpoints per service port key ("ns/name:port"), merged over all the given
 * slices as upstream's EndpointSliceCache does: the slice port is matched to
 * the service port by name, only an endpoint's first address counts, and an
 * ip:port seen in several slices is kept once (the local copy wins). Sorted by
 * IP, then port. Only slices of `family` (their addressType) are used.
 */
export function endpointsFromSlices(slices: readonly V1EndpointSlice[], nodeName: string, family: IPFamily = 'IPv4'): Map<string, Endpoint[]> {
  const sets = new Map<string, Map<string, Endpoint>>();
  const ordered = [...slices].sort((a, b) => (a.metadata?.name ?? '').localeCompare(b.metadata?.name ?? ''));
  for (const slice of ordered) {
    const svcName = slice.metadata?.labels?.[SERVICE_NAME_LABEL];
    if (!svcName || slice.addressType !== family) continue;
    const namespace = slice.metadata?.namespace ?? 'default';
    for (const sp of slice.ports ?? []) {
      if (sp.port === undefined) continue;
      const key = servicePortKey(namespace, svcName, sp.name ?? '');
      let set = sets.get(key);
      if (!set) sets.set(key, (set = new Map()));
      for (const e of slice.endpoints ?? []) {
        const ip = e.addresses[0];
        if (!ip || ipFamilyOf(ip) !== family) continue;
        const ready = e.conditions?.ready ?? true;
        const ep: Endpoint = {
          ip,
          port: sp.port,
          ready,
          serving: e.conditions?.serving ?? ready,
          terminating: e.conditions?.terminating ?? false,
          isLocal: e.nodeName !== undefined && e.nodeName === nodeName,
        };
        if (e.nodeName !== undefined) ep.nodeName = e.nodeName;
        const zones = hintNames(e.hints?.forZones);
        if (zones) ep.zoneHints = zones;
        const nodes = hintNames(e.hints?.forNodes);
        if (nodes) ep.nodeHints = nodes;
        const id = endpointString(ep);
        if (!set.has(id) || ep.isLocal) set.set(id, ep);
      }
    }
  }
  const out = new Map<string, Endpoint[]>();
  for (const key of [...sets.keys()].sort()) {
    out.set(key, [...(sets.get(key)?.values() ?? [])].sort(compareEndpoints));
  }
  return out;
}
