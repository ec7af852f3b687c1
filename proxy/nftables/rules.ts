// The ruleset generator of the nftables proxy: (services, endpoints,
// options) -> a Ruleset model of table `ip nodelet` or `ip6 nodelet` (maps
// with their elements, chains with their rules). Each service port gives a pure
// Fragment (serviceFragment); state.ts assembles fragments into the model and
// keeps it up to date one service at a time. transaction.ts turns a model
// into a full `nft -f` text, and a journal (or two models) into a small one.
//
// Why this shape (issue 10): loading chains costs nft more than linearly in
// their number, so chains must not grow with services. Here a packet's
// `daddr . l4proto . dport` picks, in one verdict map, a load-balancing chain
// shared by every service with the same protocol and number of endpoints k;
// that chain's one rule DNATs through `... . numgen random mod k map
// @dnat_tcp_k`, a map from `service address . protocol . port . index` to
// `endpoint . port`. Chains number the distinct endpoint counts (times a few
// kinds and protocols), not the services; a service change is a few element
// adds and deletes.
//
// Kinds of load-balancing chain, each per protocol and k (svc_tcp_3,
// np_udp_1, ...), with "_sticky" variants for ClientIP affinity (below):
//   svc      DNAT via dnat_<p>_k; masquerades sources outside the cluster CIDR
//   ext      external Cluster policy: mark for masquerade, goto svc
//   local    external Local policy: DNAT via dnat_local_<p>_k, no masquerade
//   np       node port: DNAT via dnat_np_<p>_k (key without the address)
//   npext    node port, Cluster policy: mark, goto np
//   np_local node port, Local policy: DNAT via dnat_np_local_<p>_k
// Local-policy external traffic goes first to one shared chain that sends pod
// traffic, and (masqueraded) this host's traffic, to all endpoints, as
// kube-proxy does; other traffic to the local endpoints. Hairpin traffic (an
// endpoint reaching itself) is found after DNAT by a set of (ip . ip) pairs of
// this node's endpoints (only those can reach themselves through this node).
//
// ClientIP affinity with its timeout T, still without per-service chains: a
// sticky chain per (kind, protocol, k, T) first looks the connection's
// `saddr . daddr . l4proto . dport` up in k dynamic sets, one per endpoint
// index i (affinity_<p>_<k>_<i>_t<T>, elements expire after T), and goes to
// the pick chain of the index found; on no hit, `numgen random mod k` picks
// one. The pick chain for index i refreshes the client's element in set i and
// DNATs through the same dnat map with index i. As upstream, every new
// connection refreshes the timeout; unlike upstream, affinity is to an index,
// so replacing an endpoint moves its clients to the replacement, and a change
// of the endpoint count (another k) starts affinity afresh.
//
// After DNAT, as upstream's cluster-ips-check: a new connection still headed
// for a cluster IP (a port the service does not have) is rejected, one to an
// address of the cluster's ServiceCIDRs that no service has is dropped.
//
// One family per ruleset, as upstream (a dual-stack node runs a proxier per
// family): IPv4 in table family `ip`, IPv6 in `ip6`, the same model with
// ipv6_addr keys and `ip6 daddr` matches; the input holds that family's
// addresses only. IPv6 has no localhost node ports (upstream: they do not
// work for IPv6), so none of the 127.0.0.0/8 handling, and ::1 never answers.
//
// loadBalancerSourceRanges are two sets (firewalled keys; allowed key .
// source ranges) and one rule before DNAT.
import { ipFamilyOf, ipInCIDR } from '../../lib/ip.ts';
import { categorizeEndpoints, type Topology } from '../categorize.ts';
import { localhostNodePorts, masqueradeMark, type Endpoint, type IPFamily, type ServicePortInfo } from '../types.ts';
import { detectorOf, type LocalDetector, nftLocalMatches } from '../localdetect.ts';

export const TABLE = 'nodelet';

/** nft's word for a family's network header: the table family, and `ip daddr` / `ip6 daddr` in matches. */
export function ipKeyword(family: IPFamily = 'IPv4'): 'ip' | 'ip6' {
  return family === 'IPv6' ? 'ip6' : 'ip';
}

/** The table of a family: "ip nodelet" or "ip6 nodelet". */
export function tableOf(family: IPFamily = 'IPv4'): string {
  return `${ipKeyword(family)} ${TABLE}`;
}

const addrType = (family?: IPFamily) => (family === 'IPv6' ? 'ipv6_addr' : 'ipv4_addr');
/** A single address as a CIDR of the family (a firewall_allow range). */
const hostPrefix = (family?: IPFamily) => (family === 'IPv6' ? '/128' : '/32');

export const VMAP_PORT = 'type inet_proto . inet_service : verdict';
/**
 * A DNAT map per protocol: with `th dport` in its typeof, nft 1.0.6 cannot use
 * the map once it reads it back from the kernel ("conflicting protocols
 * specified: ip vs. th"), so an incremental rule or element would fail; and
 * the protocol named in the data part becomes an implicit `meta l4proto`
 * match of the DNAT rule. So maps and chains are per protocol, which the
 * verdict key (it holds the protocol) already tells apart.
 */
export function dnatDecl(withAddress: boolean, proto: string, family?: IPFamily): string {
  const ip = ipKeyword(family);
  return `typeof ${withAddress ? `${ip} daddr . ` : ''}meta l4proto . ${proto} dport . numgen random mod 1 : ${ip} daddr . ${proto} dport`;
}

/** Maps and sets every ruleset of a family has, with their declarations. */
export function staticMaps(family?: IPFamily): Readonly<Record<string, string>> {
  const addr = addrType(family);
  const vmapAddr = `type ${addr} . inet_proto . inet_service : verdict`;
  return {
    service_ips: vmapAddr,
    service_nodeports: VMAP_PORT,
    external_cluster: vmapAddr,
    external_local: vmapAddr,
    nodeport_cluster: VMAP_PORT,
    nodeport_local: VMAP_PORT,
    no_endpoint_services: vmapAddr,
    no_endpoint_nodeports: VMAP_PORT,
    hairpin: `type ${addr} . ${addr}`,
    cluster_ips: `type ${addr}`,
    firewall_ips: `type ${addr} . inet_proto . inet_service`,
    firewall_allow: `type ${addr} . inet_proto . inet_service . ${addr}; flags interval`,
  };
}

/** The staticMaps that are sets (elements without values). */
export const STATIC_SETS: ReadonlySet<string> = new Set(['hairpin', 'cluster_ips', 'firewall_ips', 'firewall_allow']);

export const REJECT_CHAIN = 'reject_packet';

export interface NftRulesInput {
  /** The family of the table (default IPv4); services and endpoints hold its addresses only. */
  family?: IPFamily;
  services: readonly ServicePortInfo[];
  /** Endpoints by service port key ("ns/name:port"). */
  endpoints: ReadonlyMap<string, readonly Endpoint[]>;
  /** Where NodePorts answer: [] = every local address (fib daddr type local). */
  nodeIPs: readonly string[];
  /** NodePorts answer on 127.0.0.0/8 too (needs route_localnet; adds the martian guard). IPv4 only. */
  localhostNodePorts: boolean;
  /** The cluster's pod CIDR: cluster-IP traffic from outside it is masqueraded; pod traffic to Local-policy services short-circuits. */
  clusterCIDR?: string;
  /** Upstream --masquerade-all: every cluster-IP connection is masqueraded, whatever its source. */
  masqueradeAll?: boolean;
  /** The fwmark bit that says "masquerade this" (default 14, mark 0x4000). */
  masqueradeBit?: number;
  /** --detect-local-mode other than ClusterCIDR (which clusterCIDR alone gives). */
  localDetector?: LocalDetector;
  /** This node and its zone, for topology hints (none: every ready endpoint). */
  topology?: Topology;
  /** The cluster's ServiceCIDRs (networking.k8s.io/v1; the other family's are ignored): new connections to an address no service has are dropped. */
  serviceCIDRs?: readonly string[];
}

export interface NftChain {
  /** Base chain declaration ("type nat hook prerouting priority dstnat; policy accept;"), or undefined for a regular chain. */
  hook?: string;
  rules: string[];
}

export interface NftMap {
  /** "type ..." or "typeof ...". */
  decl: string;
  /** A set has elements without values. */
  isSet: boolean;
  /** Key -> value ('' for set elements). */
  elements: Map<string, string>;
}

export interface Ruleset {
  /** Its table's family: transaction.ts writes to `ip nodelet` or `ip6 nodelet` by it. */
  family: IPFamily;
  maps: Map<string, NftMap>;
  chains: Map<string, NftChain>;
}

export type Kind = 'svc' | 'ext' | 'local' | 'np' | 'npext' | 'np_local';

/** The DNAT map a kind of chain reads, or undefined for the mark-and-goto kinds. */
const DNAT_MAP_OF: Record<Kind, string | undefined> = {
  svc: 'dnat',
  ext: undefined,
  local: 'dnat_local',
  np: 'dnat_np',
  npext: undefined,
  np_local: 'dnat_np_local',
};

/** A load-balancing chain; sticky ones carry the affinity timeout in seconds. */
export function lbChainName(kind: Kind, sticky: boolean, proto: string, k: number, timeoutS = 0): string {
  return `${kind}${sticky ? '_sticky' : ''}_${proto}_${k}${sticky ? `_t${timeoutS}` : ''}`;
}

/** The chain that sends a sticky connection to endpoint index i (and records the client there). */
export function pickChainName(kind: Kind, proto: string, k: number, i: number, timeoutS: number): string {
  return `${kind}_pick_${proto}_${k}_${i}_t${timeoutS}`;
}

/** The clients on endpoint index i of sticky services with k endpoints and timeout T. */
export function affinitySetName(proto: string, k: number, i: number, timeoutS: number): string {
  return `affinity_${proto}_${k}_${i}_t${timeoutS}`;
}

export function affinitySetDecl(timeoutS: number, family?: IPFamily): string {
  const addr = addrType(family);
  return `type ${addr} . ${addr} . inet_proto . inet_service; flags dynamic,timeout; timeout ${timeoutS}s`;
}

export function dnatMapName(kind: Kind, proto: string, k: number): string | undefined {
  const base = DNAT_MAP_OF[kind];
  return base && `${base}_${proto}_${k}`;
}

/** The statement that marks a packet for masquerading. */
function markSet(opts: Pick<NftOptions, 'masqueradeBit'>): string {
  return `meta mark set meta mark | ${masqueradeMark(opts.masqueradeBit)}`;
}
const addrKey = (family?: IPFamily) => `${ipKeyword(family)} daddr . meta l4proto . th dport`;
const PORT_KEY = 'meta l4proto . th dport';
/** What a sticky client is remembered by: per service address and port, as upstream per service port. */
const affinityKey = (family?: IPFamily) => `${ipKeyword(family)} saddr . ${addrKey(family)}`;

/** The constant index i as the dnat maps' numgen-typed key part (nft 1.0.6 will not take a bare number there). */
function index(i: number): string {
  return i === 0 ? 'numgen random mod 1' : `numgen random mod 1 offset ${i}`;
}

/** Where node ports answer: this node's addresses (or the given ones), without loopback unless localhost node ports. */
function nodePortMatch(input: NftOptions): string | undefined {
  const ip = ipKeyword(input.family);
  const withLoopback = localhostNodePorts(input);
  const loopback = input.family === 'IPv6' ? '::1' : '127.0.0.0/8';
  if (input.nodeIPs.length === 0) return withLoopback ? 'fib daddr type local' : `fib daddr type local ${ip} daddr != ${loopback}`;
  const ips = input.nodeIPs.filter((a) => withLoopback || !ipInCIDR(a, loopback));
  if (ips.length === 0) return undefined;
  return ips.length === 1 ? `${ip} daddr ${ips[0]}` : `${ip} daddr { ${ips.join(', ')} }`;
}

export function staticChains(input: NftOptions): Map<string, NftChain> {
  const chains = new Map<string, NftChain>();
  const b = { chain: (name: string, rules: string[], hook?: string) => void chains.set(name, hook ? { hook, rules } : { rules }) };
  const detector = detectorOf(input);
  const local = detector ? nftLocalMatches(detector).local : undefined;
  const np = nodePortMatch(input);
  const MARK = markSet(input);
  const mark = masqueradeMark(input.masqueradeBit);
  const ip = ipKeyword(input.family);
  const ADDR_KEY = addrKey(input.family);
  b.chain('nat_prerouting', ['jump services'], 'type nat hook prerouting priority dstnat; policy accept;');
  // "priority dstnat" is not accepted for the output hook by nft 1.0.6; -100 is its value.
  b.chain('nat_output', ['jump services'], 'type nat hook output priority -100; policy accept;');
  b.chain('nat_postrouting', [
    // Hairpin: an endpoint that reached itself through a service must be masqueraded, or it answers itself.
    `ct status dnat ${ip} saddr . ${ip} daddr @hairpin ${MARK}`,
    `meta mark & ${mark} == 0 return`,
    `meta mark set meta mark ^ ${mark}`,
    'masquerade fully-random',
  ], 'type nat hook postrouting priority srcnat; policy accept;');
  b.chain('services', [
    `${ADDR_KEY} vmap @service_ips`,
    ...(np ? [`${np} ${PORT_KEY} vmap @service_nodeports`] : []),
  ]);
  b.chain('external_policy_local', [
    ...(local ? [`${local} ${ADDR_KEY} vmap @external_cluster`] : []),
    `fib saddr type local ${MARK} ${ADDR_KEY} vmap @external_cluster`,
    `${ADDR_KEY} vmap @external_local`,
  ]);
  b.chain('nodeport_policy_local', [
    ...(local ? [`${local} ${PORT_KEY} vmap @nodeport_cluster`] : []),
    `fib saddr type local ${MARK} ${PORT_KEY} vmap @nodeport_cluster`,
    `${PORT_KEY} vmap @nodeport_local`,
  ]);
  b.chain(REJECT_CHAIN, ['reject']);
  // loadBalancerSourceRanges, before DNAT (as upstream's firewall-check): a firewalled load-balancer
  // address, protocol and port drops every source outside its ranges.
  const firewall = [`${ADDR_KEY} @firewall_ips ${ADDR_KEY} . ${ip} saddr != @firewall_allow drop`];
  // -110: dstnat - 10 (nft 1.0.6 takes no "dstnat - 10" for the output hook).
  b.chain('firewall_prerouting', firewall, 'type filter hook prerouting priority -110; policy accept;');
  b.chain('firewall_output', firewall, 'type filter hook output priority -110; policy accept;');
  // Filter chains at priority filter, after the nat hooks (dstnat -100): what they see was not DNATed.
  const noEndpoints = `ct state new ${ADDR_KEY} vmap @no_endpoint_services`;
  b.chain('filter_input', [
    ...(localhostNodePorts(input)
      ? [
          // route_localnet lets outside packets to 127.0.0.0/8 in; drop those no node port DNATed (kubelet's KUBE-FIREWALL rule).
          'ip saddr != 127.0.0.0/8 ip daddr 127.0.0.0/8 ct state new ct status & dnat == 0 drop',
        ]
      : []),
    noEndpoints,
    ...(np ? [`ct state new ${np} ${PORT_KEY} vmap @no_endpoint_nodeports`] : []),
  ], 'type filter hook input priority filter; policy accept;');
  // Still a cluster IP here: no service port matched (upstream's cluster-ips-check).
  const cidrs = (input.serviceCIDRs ?? []).filter((c) => ipFamilyOf(c) === (input.family ?? 'IPv4'));
  b.chain('cluster_ips_check', [
    `${ip} daddr @cluster_ips reject`,
    ...(cidrs.length > 0 ? [`${ip} daddr { ${cidrs.join(', ')} } drop`] : []),
  ]);
  const checkClusterIPs = 'ct state new jump cluster_ips_check';
  b.chain('filter_forward', [noEndpoints, checkClusterIPs], 'type filter hook forward priority filter; policy accept;');
  b.chain('filter_output', [noEndpoints, checkClusterIPs], 'type filter hook output priority filter; policy accept;');
  return chains;
}

/** One element a service contributes: [map, key, value] ('' for a set element). */
export type Elem = [map: string, key: string, value: string];

/**
 * The elements that exist because a service owns one address (or node port):
 * the verdict, its DNAT entries, a no-endpoints entry. When two services
 * claim one key, the first by service port key wins, as in sorted order.
 */
export interface Claim {
  key: string;
  elements: Elem[];
}

/** What one service port contributes to the ruleset (a pure function of it and its endpoints). */
export interface Fragment {
  /** Has endpoints, but none on this node for its Local internal / external policy (a metric). */
  noLocalInternal: boolean;
  noLocalExternal: boolean;
  claims: Claim[];
  /** Hairpin pairs ("ip . ip"), shared between services. */
  hairpin: string[];
  /** The cluster IP (for cluster_ips), shared by the service's ports. */
  clusterIP: string;
}

const REJECT = `goto ${REJECT_CHAIN}`;

/** What serviceFragment needs of the options (all optional: no node IPs, no topology, IPv4). */
export type FragmentOptions = Partial<Pick<NftOptions, 'nodeIPs' | 'topology' | 'family'>>;

/** The fragment of one service port, or undefined when it has no cluster IP of the family. */
export function serviceFragment(sp: ServicePortInfo, eps: readonly Endpoint[], opts: FragmentOptions = {}): Fragment | undefined {
  const { nodeIPs = [], topology: topo, family = 'IPv4' } = opts;
  const clusterIP = sp.clusterIPs.find((ip) => ipFamilyOf(ip) === family);
  if (!clusterIP) return undefined;
  const proto = sp.protocol.toLowerCase();
  const sticky = sp.sessionAffinity === 'ClientIP';
  const { cluster, local, hasAny } = categorizeEndpoints(eps, sp, topo);
  const accessible = sp.nodePort !== 0 || sp.externalIPs.length > 0 || sp.loadBalancerIPs.length > 0;
  const extLocal = accessible && sp.externalTrafficPolicy === 'Local';
  const internal = sp.internalTrafficPolicy === 'Local' ? local : cluster;
  const frag: Fragment = {
    noLocalInternal: hasAny && internal.length === 0,
    noLocalExternal: hasAny && extLocal && local.length === 0,
    claims: [],
    hairpin: [],
    clusterIP,
  };

  let claim: Claim = { key: '', elements: [] };
  const open = (key: string) => frag.claims.push((claim = { key, elements: [] }));
  const el = (map: string, key: string, value: string) => claim.elements.push([map, key, value]);
  /** The DNAT entries of `key` to `targets` through a chain of `kind`, and the verdict that goes there. */
  const route = (kind: Kind, key: string, targets: readonly Endpoint[]): string => {
    const chain = lbChainName(kind, sticky, proto, targets.length, sp.stickySeconds);
    const dnat = dnatMapName(kind === 'ext' ? 'svc' : kind === 'npext' ? 'np' : kind, proto, targets.length)!;
    targets.forEach((ep, i) => el(dnat, `${key} . ${i}`, `${ep.ip} . ${ep.port}`));
    // Only an endpoint on this node can be DNATed to from itself: remote ones need no hairpin pair
    // (at 10k services with 5 endpoints each that is 50k set elements less to load).
    for (const ep of targets) if (ep.isLocal) frag.hairpin.push(`${ep.ip} . ${ep.ip}`);
    return `goto ${chain}`;
  };

  // Cluster IP.
  const ck = `${clusterIP} . ${proto} . ${sp.port}`;
  open(`a ${ck}`);
  if (internal.length > 0) el('service_ips', ck, route('svc', ck, internal));
  else el('no_endpoint_services', ck, hasAny ? 'drop' : REJECT);

  // External and load-balancer IPs; a load-balancer IP with source ranges is firewalled (when it has endpoints, as upstream).
  const ranges = sp.loadBalancerSourceRanges ?? [];
  const allowFromNode = nodeIPs.some((n) => ranges.some((r) => ipInCIDR(n, r)));
  for (const ip of [...sp.externalIPs, ...sp.loadBalancerIPs]) {
    const key = `${ip} . ${proto} . ${sp.port}`;
    open(`a ${key}`);
    if (hasAny && ranges.length > 0 && sp.loadBalancerIPs.includes(ip)) {
      el('firewall_ips', key, '');
      for (const r of ranges) el('firewall_allow', `${key} . ${r}`, '');
      // This node's own requests come from the load-balancer IP when that is local here.
      if (allowFromNode) el('firewall_allow', `${key} . ${ip}${hostPrefix(family)}`, '');
    }
    if (!hasAny) {
      el('no_endpoint_services', key, REJECT);
    } else if (!extLocal) {
      el('service_ips', key, route('ext', key, cluster));
    } else {
      el('external_cluster', key, route('svc', key, cluster));
      if (local.length > 0) el('external_local', key, route('local', key, local));
      else el('no_endpoint_services', key, 'drop');
      el('service_ips', key, 'goto external_policy_local');
    }
  }

  // Node port.
  if (sp.nodePort !== 0) {
    const key = `${proto} . ${sp.nodePort}`;
    open(`p ${key}`);
    if (!hasAny) {
      el('no_endpoint_nodeports', key, REJECT);
    } else if (!extLocal) {
      el('service_nodeports', key, route('npext', key, cluster));
    } else {
      el('nodeport_cluster', key, route('np', key, cluster));
      if (local.length > 0) el('nodeport_local', key, route('np_local', key, local));
      else el('no_endpoint_nodeports', key, 'drop');
      el('service_nodeports', key, 'goto nodeport_policy_local');
    }
  }
  return frag;
}

const LB_CHAIN = /^(np_local|npext|np|svc|ext|local)(_sticky)?_(tcp|udp|sctp)_(\d+)(?:_t(\d+))?$/;
const PICK_CHAIN = /^(np_local|np|svc|local)_pick_(tcp|udp|sctp)_(\d+)_(\d+)_t(\d+)$/;

interface LbChainDef {
  rules: string[];
  /** The maps and sets it reads or updates, with their declarations. */
  maps: Array<{ name: string; decl: string; isSet: boolean }>;
  /** The chains it goes to. */
  next: string[];
}

/** The DNAT rule of a kind: through its map, with index `pick` (numgen, or a fixed one). */
function dnatRule(kind: Kind, proto: string, k: number, pick: string, family?: IPFamily): { rule: string; map: { name: string; decl: string; isSet: boolean } } {
  const dnat = dnatMapName(kind, proto, k)!;
  const withAddress = kind === 'svc' || kind === 'local';
  return {
    rule: `dnat ${ipKeyword(family)} to ${withAddress ? addrKey(family) : PORT_KEY} . ${pick} map @${dnat}`,
    map: { name: dnat, decl: dnatDecl(withAddress, proto, family), isSet: false },
  };
}

/** A load-balancing chain, from its name alone (so any two uses of a name agree). */
export function lbChain(name: string, opts: Pick<NftOptions, 'clusterCIDR' | 'localDetector' | 'masqueradeAll' | 'masqueradeBit' | 'family'>): LbChainDef | undefined {
  const { family } = opts;
  const p = PICK_CHAIN.exec(name);
  if (p) {
    const [kind, proto, k, i, t] = [p[1] as Kind, p[2] as string, Number(p[3]), Number(p[4]), Number(p[5])];
    const set = affinitySetName(proto, k, i, t);
    const d = dnatRule(kind, proto, k, index(i), family);
    return { rules: [`update @${set} { ${affinityKey(family)} }`, d.rule], maps: [{ name: set, decl: affinitySetDecl(t, family), isSet: true }, d.map], next: [] };
  }
  const m = LB_CHAIN.exec(name);
  if (!m) return undefined;
  const kind = m[1] as Kind;
  const sticky = m[2] !== undefined;
  const proto = m[3] as string;
  const k = Number(m[4]);
  const t = Number(m[5] ?? 0);
  if (sticky !== (m[5] !== undefined)) return undefined;
  const detector = detectorOf(opts);
  const MARK = markSet(opts);
  const masq = kind !== 'svc' ? [] : opts.masqueradeAll ? [MARK] : detector ? [`${nftLocalMatches(detector).notLocal} ${MARK}`] : [];
  if (kind === 'ext' || kind === 'npext') {
    const next = lbChainName(kind === 'ext' ? 'svc' : 'np', sticky, proto, k, t);
    return { rules: [`${MARK} goto ${next}`], maps: [], next: [next] };
  }
  if (!sticky) {
    const d = dnatRule(kind, proto, k, `numgen random mod ${k}`, family);
    return { rules: [...masq, d.rule], maps: [d.map], next: [] };
  }
  // Sticky: a client remembered on index i goes there again; others are picked at random.
  const picks = Array.from({ length: k }, (_, i) => pickChainName(kind, proto, k, i, t));
  return {
    rules: [
      ...masq,
      ...picks.map((c, i) => `${affinityKey(family)} @${affinitySetName(proto, k, i, t)} goto ${c}`),
      `numgen random mod ${k} vmap { ${picks.map((c, i) => `${i} : goto ${c}`).join(', ')} }`,
    ],
    maps: picks.map((_, i) => ({ name: affinitySetName(proto, k, i, t), decl: affinitySetDecl(t, family), isSet: true })),
    next: picks,
  };
}

/** Options of the ruleset that do not change while a proxier runs. */
export type NftOptions = Omit<NftRulesInput, 'services' | 'endpoints'>;

/** Fixed chains (the hooks, dispatch and reject chains): every name without a trailing "_<k>". */
export function isStaticChain(name: string): boolean {
  return !/_\d+$/.test(name);
}
