// Which endpoints of a service port this node sends traffic to, as upstream's
// CategorizeEndpoints (pkg/proxy/topology.go): ready ones (else the serving
// terminating ones), split by traffic policy, and, for Cluster policy, only
// those hinted for this node or its zone when every ready endpoint carries such
// hints (the EndpointSlice controller writes them for trafficDistribution
// PreferSameNode / PreferSameZone / PreferClose and topology-mode Auto).
// Shared by every mode's rules and by /nodelet/routed.
import { compareEndpoints, endpointString, type Endpoint, type ServicePortInfo } from './types.ts';

/** The Node label that names its zone (v1.LabelTopologyZone). */
export const ZONE_LABEL = 'topology.kubernetes.io/zone';

/** A Node's zone from its labels ('' when it has none). */
export function zoneOf(labels: Readonly<Record<string, string>>): string {
  return labels[ZONE_LABEL] ?? '';
}

/** Where this proxy runs, for topology hints: its node and that node's zone ('' when it has no zone label). */
export interface Topology {
  nodeName: string;
  zone: string;
}

export type TopologyMode = '' | 'PreferSameNode' | 'PreferSameZone';

export interface Categorized {
  cluster: Endpoint[];
  local: Endpoint[];
  /** Union of the two: the endpoints that get a KUBE-SEP chain. */
  reachable: Endpoint[];
  /** Some usable endpoint exists anywhere in the cluster. */
  hasAny: boolean;
}

export function externallyAccessible(sp: ServicePortInfo): boolean {
  return sp.nodePort !== 0 || sp.externalIPs.length > 0 || sp.loadBalancerIPs.length > 0;
}

export function externalPolicyLocal(sp: ServicePortInfo): boolean {
  return externallyAccessible(sp) && sp.externalTrafficPolicy === 'Local';
}

export function internalPolicyLocal(sp: ServicePortInfo): boolean {
  return sp.internalTrafficPolicy === 'Local';
}

/** Cluster endpoints are needed unless only Local policy applies (external Local still short-circuits to them). */
export function usesClusterEndpoints(sp: ServicePortInfo): boolean {
  return !internalPolicyLocal(sp) || externallyAccessible(sp);
}

export function usesLocalEndpoints(sp: ServicePortInfo): boolean {
  return internalPolicyLocal(sp) || externalPolicyLocal(sp);
}

/** Ready endpoints; when there are none, the serving and terminating ones (so draining pods still answer). */
export function usable(eps: readonly Endpoint[]): Endpoint[] {
  const ready = eps.filter((e) => e.ready);
  return ready.length > 0 ? ready : eps.filter((e) => e.serving && e.terminating);
}

/**
 * Upstream's topologyModeFromHints: PreferSameNode when every ready endpoint
 * has node hints and one names this node; else PreferSameZone when every ready
 * endpoint has zone hints and one names this node's zone; else '' (all of them).
 */
export function topologyMode(eps: readonly Endpoint[], topo: Topology | undefined): TopologyMode {
  if (!topo) return '';
  let anyReady = false;
  let allNode = true;
  let forNode = false;
  let allZone = true;
  let forZone = false;
  for (const e of eps) {
    if (!e.ready) continue;
    anyReady = true;
    if (!e.nodeHints?.length) allNode = false;
    else if (e.nodeHints.includes(topo.nodeName)) forNode = true;
    if (!e.zoneHints?.length) allZone = false;
    else if (topo.zone !== '' && e.zoneHints.includes(topo.zone)) forZone = true;
  }
  if (!anyReady) return '';
  if (allNode && forNode) return 'PreferSameNode';
  if (allZone && forZone) return 'PreferSameZone';
  return '';
}

function availableForTopology(e: Endpoint, mode: TopologyMode, topo: Topology | undefined): boolean {
  if (mode === 'PreferSameNode') return e.nodeHints?.includes(topo!.nodeName) ?? false;
  if (mode === 'PreferSameZone') return e.zoneHints?.includes(topo!.zone) ?? false;
  return true;
}

/**
 * The Cluster-policy endpoints: ready ones within the topology mode; when
 * none is ready anywhere, the serving terminating ones (topology aside, as
 * upstream: a mode is only chosen when some ready endpoint fits it).
 */
export function clusterEndpoints(eps: readonly Endpoint[], topo: Topology | undefined): Endpoint[] {
  const mode = topologyMode(eps, topo);
  const ready = eps.filter((e) => e.ready && availableForTopology(e, mode, topo));
  return ready.length > 0 ? ready : eps.filter((e) => e.serving && e.terminating);
}

export function categorizeEndpoints(unsorted: readonly Endpoint[], sp: ServicePortInfo, topo?: Topology): Categorized {
  const eps = [...unsorted].sort(compareEndpoints);
  const cluster = usesClusterEndpoints(sp) ? clusterEndpoints(eps, topo) : [];
  const local = usesLocalEndpoints(sp) ? usable(eps.filter((e) => e.isLocal)) : [];
  const hasAny = eps.some((e) => e.ready || (e.serving && e.terminating));
  const seen = new Set(cluster.map(endpointString));
  const reachable = [...cluster, ...local.filter((e) => !seen.has(endpointString(e)))].sort(compareEndpoints);
  return { cluster, local, reachable, hasAny };
}
