// The pure rule generator of the iptables proxy: (services, endpoints,
// options) -> iptables-restore text for the filter and nat tables, in
// kube-proxy's layout and with its chain names (pkg/proxy/iptables/proxier.go,
// syncProxyRules), so that the rules read like upstream's and tools that know
// them keep working. The text is meant for `iptables-restore --noflush`:
// declared chains are flushed and refilled, others are left alone.
//
// Rules are written with words in iptables-save's order (-s, -d, -p, then
// matches as given, then the target) and comments quoted as it quotes them.
// Output is deterministic: services sorted by service port key, endpoints by
// address, except that the nat text declares its chains first in descending
// name order (see generateRulesChunked: both backends restore that much
// faster); it is handed to iptables-restore in pieces.
//
// One family per generator run (the iptables or the ip6tables tables; a
// dual-stack node runs a proxier per family): the input holds that family's
// addresses only. IPv6 has no localhost node ports (::1 cannot be routed to,
// as upstream says), so none of the 127.0.0.0/8 handling applies to it.
//
// Not done: nfacct counters (this kernel has no xt_nfacct).
import { sha256Words } from '../../lib/sha256.ts';
import { detectorOf, iptablesLocalMatches, type LocalDetector } from '../localdetect.ts';
import { type Categorized, categorizeEndpoints, externallyAccessible, externalPolicyLocal, internalPolicyLocal, type Topology, usesClusterEndpoints, usesLocalEndpoints } from '../categorize.ts';
import { ipInCIDR } from '../../lib/ip.ts';
import { endpointString, localhostNodePorts, masqueradeMark, portKey, serviceKey, type Endpoint, type IPFamily, type ServicePortInfo } from '../types.ts';
import { formatArgs, quoteArg, type Table } from './iptables.ts';

export const KUBE_SERVICES = 'KUBE-SERVICES';
export const KUBE_EXTERNAL_SERVICES = 'KUBE-EXTERNAL-SERVICES';
export const KUBE_NODEPORTS = 'KUBE-NODEPORTS';
export const KUBE_POSTROUTING = 'KUBE-POSTROUTING';
export const KUBE_MARK_MASQ = 'KUBE-MARK-MASQ';
export const KUBE_FORWARD = 'KUBE-FORWARD';
/** kubelet's anti-martian chain, needed when NodePorts answer on 127.0.0.0/8. */
export const KUBE_FIREWALL = 'KUBE-FIREWALL';
/** Drops what a KUBE-FW-* chain let through undNATed: load-balancer traffic from sources outside the ranges. */
export const KUBE_PROXY_FIREWALL = 'KUBE-PROXY-FIREWALL';


/** Prefixes of the per-service chains this generator owns (and may delete when stale). */
export const SERVICE_CHAIN_PREFIXES = ['KUBE-SVC-', 'KUBE-SVL-', 'KUBE-EXT-', 'KUBE-FW-', 'KUBE-SEP-'] as const;

export interface RulesInput {
  /** The family of the tables written (default IPv4); services and endpoints hold its addresses. */
  family?: IPFamily;
  services: readonly ServicePortInfo[];
  /** Endpoints by service port key ("ns/name:port"); locality comes from Endpoint.isLocal. */
  endpoints: ReadonlyMap<string, readonly Endpoint[]>;
  /**
   * Where NodePorts answer: empty = every local address (`-m addrtype --dst-type LOCAL`),
   * else these addresses only (upstream's --nodeport-addresses).
   */
  nodeIPs: readonly string[];
  /**
   * NodePorts answer on 127.0.0.0/8 too. Needs sysctl net.ipv4.conf.all.route_localnet=1
   * (the adapter sets it) and adds KUBE-FIREWALL's guard against martians. IPv4 only.
   */
  localhostNodePorts: boolean;
  /** Masquerade all traffic to cluster IPs. */
  masqueradeAll?: boolean;
  /** The fwmark bit that says "masquerade this" (default 14, mark 0x4000). */
  masqueradeBit?: number;
  /** The pod CIDR of the cluster: traffic to a cluster IP from outside it is masqueraded. */
  clusterCIDR?: string;
  /** --detect-local-mode other than ClusterCIDR (which clusterCIDR alone gives). */
  localDetector?: LocalDetector;
  /** Adds --random-fully to the MASQUERADE rule (when iptables supports it). */
  randomFully?: boolean;
  /** This node and its zone, for topology hints (none: every ready endpoint). */
  topology?: Topology;
}

export interface RulesOptions {
  /** Rewrite every chain. Otherwise only the chains of changedServices (plus the top-level ones). */
  full: boolean;
  /** Keys ("ns/name") of the services whose service or endpoints changed since the last sync. */
  changedServices?: ReadonlySet<string>;
  /** nat chains that exist now (from iptables-save); the stale service chains among them are deleted. */
  existingChains?: ReadonlySet<string>;
  /**
   * Partial syncs only: leave stale chains for a later sync and do not work
   * out chainsInUse (upstream's large-cluster mode looks for stale chains
   * once per sync period: they are unreferenced, so harmless). An unchanged
   * service is then rewritten only when its first chain is missing.
   */
  skipStaleCleanup?: boolean;
  /** Lines for the end of the nat text, before COMMIT (the missing jumps from built-in chains). */
  natExtra?: readonly string[];
  /**
   * Partial syncs only: the `top` of the last nat restore that went through.
   * When this sync's is the same (an endpoint change, the usual partial sync),
   * KUBE-SERVICES, KUBE-NODEPORTS and the fixed chains are left as they are,
   * not rewritten (upstream rewrites them every time: at 5k services that is
   * 5000 rules, 12x the restore time of the changed service on nf_tables), and
   * when nothing at all is to be written the generator yields no text (or,
   * when changedServices named any, an empty `*nat` ... `COMMIT`: the table
   * line goes out before the generator knows).
   */
  previousTop?: readonly string[];
  /** An empty chain declared in the nat text of full syncs and in the filter text (the flush canary, canary.ts). */
  canary?: string;
}

/** A rule in a builtin chain that sends traffic into ours; the adapter ensures these (prepended). */
export interface JumpRule {
  table: Table;
  chain: string;
  /** argv form, e.g. ['-m', 'comment', '--comment', 'kubernetes service portals', '-j', 'KUBE-SERVICES']. */
  rule: string[];
}

export interface RulesOutput {
  filter: string;
  nat: string;
  /** Every per-service nat chain that the rules use, written this time or not; undefined with skipStaleCleanup. */
  chainsInUse: Set<string> | undefined;
  /** Upstream's largeClusterMode (over 1000 endpoints): no per-endpoint comments, lazy stale cleanup. */
  largeCluster: boolean;
  /** The chains the nat text declares (those it deletes too). */
  natChains: string[];
  /** `-A` rules in each text (kubeproxy_sync_proxy_rules_iptables_total). */
  ruleCounts: Record<'nat' | 'filter', number>;
  /**
   * What KUBE-SERVICES, KUBE-NODEPORTS and the fixed nat chains hold after this
   * sync, a block per service in order (the cached strings, not copies): the
   * next partial sync's previousTop.
   */
  top: string[];
  /** Whether the nat text left the top-level chains out (previousTop was the same). */
  topKept: boolean;
  /** Service ports with endpoints but, under a Local policy, none on this node (kubeproxy_sync_proxy_rules_no_local_endpoints_total). */
  noLocalEndpoints: NoLocalEndpoints;
  jumps: JumpRule[];
}

export interface NoLocalEndpoints {
  internal: number;
  external: number;
}

// ---- chain names, exactly as upstream ----

/** The base32 alphabet's character codes. */
const BASE32 = new Uint8Array([...'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567'].map((ch) => ch.charCodeAt(0)));

/**
 * The first 16 base32 characters of sha256(text): upstream's chain-name hash.
 * 16 characters are 80 bits, the first 10 bytes of the digest. Not cached: a
 * hash is ~1 us (lib/sha256.ts), and unchanged services' rules are cached
 * whole (ruleCache below), so only changed services and the first sync hash.
 * One fromCharCode call makes one string: concatenating the 16 characters
 * made 15 short-lived ones per name (60k names at 10k services), and the
 * collector's time went down from ~30 to ~12 ms for 60k names, cold.
 */
function hash16(text: string): string {
  const w = sha256Words(text);
  // The first 80 bits, 5 at a time: bits 0-31 of word 0, 32-63 of word 1, 64-79 of word 2.
  const w0 = w[0]!, w1 = w[1]!, w2 = w[2]!;
  const c = (v: number) => BASE32[v & 31]!;
  return String.fromCharCode(
    c(w0 >>> 27), c(w0 >>> 22), c(w0 >>> 17), c(w0 >>> 12), c(w0 >>> 7), c(w0 >>> 2),
    c((w0 << 3) | (w1 >>> 29)), c(w1 >>> 24), c(w1 >>> 19), c(w1 >>> 14), c(w1 >>> 9), c(w1 >>> 4),
    c((w1 << 1) | (w2 >>> 31)), c(w2 >>> 26), c(w2 >>> 21), c(w2 >>> 16),
  );
}

/** Upstream's portProtoHash: base32(sha256(servicePortName + lowercase protocol))[:16]. */
export function portProtoHash(servicePortName: string, protocol: string): string {
  return hash16(servicePortName + protocol.toLowerCase());
}

export function serviceChainName(servicePortName: string, protocol: string): string {
  return `KUBE-SVC-${portProtoHash(servicePortName, protocol)}`;
}

export function localChainName(servicePortName: string, protocol: string): string {
  return `KUBE-SVL-${portProtoHash(servicePortName, protocol)}`;
}

export function externalChainName(servicePortName: string, protocol: string): string {
  return `KUBE-EXT-${portProtoHash(servicePortName, protocol)}`;
}

export function firewallChainName(servicePortName: string, protocol: string): string {
  return `KUBE-FW-${portProtoHash(servicePortName, protocol)}`;
}

/** Upstream's servicePortEndpointChainName: the hash also covers "ip:port". */
export function endpointChainName(servicePortName: string, protocol: string, endpoint: string): string {
  return `KUBE-SEP-${hash16(servicePortName + protocol.toLowerCase() + endpoint)}`;
}

export function isServiceChain(chain: string): boolean {
  return SERVICE_CHAIN_PREFIXES.some((p) => chain.startsWith(p));
}

/** Upstream's computeProbability: 1/n with 10 decimals. */
export function probability(n: number): string {
  return (1 / n).toFixed(10);
}

// ---- text ----

/** An address as iptables-save prints a -s/-d host match: "a.b.c.d/32", "fd00::1/128". */
function host(ip: string): string {
  return ip.includes('/') ? ip : ip.includes(':') ? `${ip}/128` : `${ip}/32`;
}

function line(...words: (string | false | undefined)[]): string {
  return words.filter((w): w is string => typeof w === 'string' && w !== '').join(' ');
}

function comment(text: string): string {
  return `-m comment --comment ${quoteArg(text)}`;
}

function chainLine(chain: string): string {
  return `:${chain} - [0:0]`;
}

/** The usual "this service's address and port" match, in iptables-save's word order. */
function portMatch(o: { src?: string; dst?: string; proto: string; note: string; extra?: string; dport: number }): string {
  return line(o.src, o.dst && `-d ${host(o.dst)}`, `-p ${o.proto}`, comment(o.note), o.extra, `-m ${o.proto} --dport ${o.dport}`);
}

interface ServiceOutput {
  /** Has endpoints, but none on this node for its Local internal / external policy. */
  noLocalInternal: boolean;
  noLocalExternal: boolean;
  /** Rules in KUBE-SERVICES / KUBE-NODEPORTS (always written). */
  top: string[];
  /** Rules of the service's own chains (plan.chains). */
  rules: string[];
  filter: string[];
}

interface Verdict {
  note: string;
  target: 'REJECT' | 'DROP';
}

interface Context {
  input: RulesInput;
  localDetect: { ifLocal: string; ifNotLocal: string } | undefined;
  /** Upstream's largeClusterMode: per-endpoint rules go without comments. */
  large: boolean;
  /** What besides a service and its endpoints its text depends on (one string per sync; its cluster IP is compared apart). */
  settings: string;
}

/**
 * Upstream's largeClusterEndpointsThreshold: above this many endpoints in all,
 * the per-endpoint rules (service to endpoint, endpoint chains) are written
 * without comments, which shrinks the nat table by about 40%.
 */
export const LARGE_CLUSTER_ENDPOINTS = 1000;

/**
 * What a service's rules are made of, without the rules: its chain names (a
 * sha256 each) and which of them it uses. A full sync declares every chain
 * before any rule, so this is done for all services first and the rules
 * after, while iptables-restore reads the declarations.
 */
interface ServicePlan {
  name: string;
  proto: string;
  svcChain: string;
  svlChain: string;
  extChain: string;
  /** loadBalancerSourceRanges: the load-balancer IPs go through this chain, which lets the ranges on to extChain. */
  fwChain: string;
  usesFwChain: boolean;
  cat: Categorized;
  usesClusterChain: boolean;
  usesLocalChain: boolean;
  usesExtChain: boolean;
  /** Each reachable endpoint's chain. */
  seps: Map<Endpoint, string>;
  /** The chains the service uses, in declaration order. */
  chains: string[];
}

function planService(sp: ServicePortInfo, eps: readonly Endpoint[], topo: Topology | undefined): ServicePlan {
  const name = portKey(sp);
  const proto = sp.protocol.toLowerCase();
  const h = portProtoHash(name, proto);
  const svcChain = `KUBE-SVC-${h}`;
  const svlChain = `KUBE-SVL-${h}`;
  const extChain = `KUBE-EXT-${h}`;
  const fwChain = `KUBE-FW-${h}`;
  const cat = categorizeEndpoints(eps, sp, topo);
  const usesClusterChain = cat.cluster.length > 0 && usesClusterEndpoints(sp);
  const usesLocalChain = cat.local.length > 0 && usesLocalEndpoints(sp);
  // The EXT chain is needed even without external endpoints, for the short-circuit of local traffic.
  const usesExtChain = cat.hasAny && externallyAccessible(sp);
  const usesFwChain = usesExtChain && sp.loadBalancerIPs.length > 0 && (sp.loadBalancerSourceRanges?.length ?? 0) > 0;
  const seps = new Map<Endpoint, string>();
  for (const ep of cat.reachable) seps.set(ep, endpointChainName(name, proto, endpointString(ep)));
  const chains: string[] = [];
  if (usesExtChain) chains.push(extChain);
  if (usesFwChain) chains.push(fwChain);
  if (usesClusterChain) chains.push(svcChain);
  if (usesLocalChain) chains.push(svlChain);
  for (const c of seps.values()) chains.push(c);
  return { name, proto, svcChain, svlChain, extChain, fwChain, usesFwChain, cat, usesClusterChain, usesLocalChain, usesExtChain, seps, chains };
}

function serviceRules(sp: ServicePortInfo, clusterIP: string, plan: ServicePlan, ctx: Context): ServiceOutput {
  const { name, proto, svcChain, svlChain, extChain, fwChain, usesFwChain, usesClusterChain, usesLocalChain, usesExtChain } = plan;
  const { cluster, local, reachable, hasAny } = plan.cat;
  const out: ServiceOutput = { noLocalInternal: false, noLocalExternal: false, top: [], rules: [], filter: [] };

  const internalChain = internalPolicyLocal(sp) ? svlChain : svcChain;
  const hasInternal = hasAny && (!internalPolicyLocal(sp) || local.length > 0);
  const externalPolicyChain = externalPolicyLocal(sp) ? svlChain : svcChain;
  const hasExternal = hasAny && (!externalPolicyLocal(sp) || local.length > 0);
  out.noLocalInternal = hasAny && !hasInternal;
  out.noLocalExternal = hasAny && !hasExternal;

  // What the filter table does with traffic that the nat table does not catch.
  const noEndpoints: Verdict = { note: `${name} has no endpoints`, target: 'REJECT' };
  const noLocal: Verdict = { note: `${name} has no local endpoints`, target: 'DROP' };
  const verdict = hasAny ? noLocal : noEndpoints;
  const filterRule = (chain: string, dst: string | undefined, extra: string | undefined, dport: number) =>
    `-A ${chain} ${portMatch({ dst, proto, note: verdict.note, extra, dport })} -j ${verdict.target}`;

  // Cluster IP.
  const clusterNote = `${name} cluster IP`;
  if (hasInternal) {
    out.top.push(`-A ${KUBE_SERVICES} ${portMatch({ dst: clusterIP, proto, note: clusterNote, dport: sp.port })} -j ${internalChain}`);
  } else {
    out.filter.push(filterRule(KUBE_SERVICES, clusterIP, undefined, sp.port));
  }

  // External IPs.
  for (const ip of sp.externalIPs) {
    if (hasAny) {
      out.top.push(`-A ${KUBE_SERVICES} ${portMatch({ dst: ip, proto, note: `${name} external IP`, dport: sp.port })} -j ${extChain}`);
    }
    if (!hasExternal) out.filter.push(filterRule(KUBE_EXTERNAL_SERVICES, ip, undefined, sp.port));
  }

  // Load-balancer ingress IPs: through the firewall chain when the service has source ranges.
  for (const ip of sp.loadBalancerIPs) {
    if (hasAny) {
      out.top.push(`-A ${KUBE_SERVICES} ${portMatch({ dst: ip, proto, note: `${name} loadbalancer IP`, dport: sp.port })} -j ${usesFwChain ? fwChain : extChain}`);
    }
  }
  if (usesFwChain) {
    // As upstream: only VIP-style load balancers (which keep the client's address) can be filtered here.
    const ranges = sp.loadBalancerSourceRanges ?? [];
    const lbNote = comment(`${name} loadbalancer IP`);
    for (const cidr of ranges) out.rules.push(`-A ${fwChain} -s ${cidr} ${lbNote} -j ${extChain}`);
    // A load-balancer IP that is local here makes this node's own requests come from it: let those in
    // when the ranges take this node.
    if (ctx.input.nodeIPs.some((n) => ranges.some((r) => ipInCIDR(n, r)))) {
      for (const ip of sp.loadBalancerIPs) out.rules.push(`-A ${fwChain} -s ${host(ip)} ${lbNote} -j ${extChain}`);
    }
    // What falls through was not DNATed: KUBE-PROXY-FIREWALL (filter) drops it.
    out.rules.push(`-A ${fwChain} ${comment(`other traffic to ${name} will be dropped by KUBE-PROXY-FIREWALL`)}`);
    for (const ip of sp.loadBalancerIPs) {
      out.filter.push(`-A ${KUBE_PROXY_FIREWALL} ${portMatch({ dst: ip, proto, note: `${name} traffic not accepted by ${fwChain}`, dport: sp.port })} -j DROP`);
    }
  }
  if (!hasExternal) {
    for (const ip of sp.loadBalancerIPs) out.filter.push(filterRule(KUBE_EXTERNAL_SERVICES, ip, undefined, sp.port));
  }

  // Node port.
  if (sp.nodePort !== 0) {
    if (hasAny) out.top.push(`-A ${KUBE_NODEPORTS} ${portMatch({ proto, note: name, dport: sp.nodePort })} -j ${extChain}`);
    if (!hasExternal) {
      out.filter.push(filterRule(KUBE_EXTERNAL_SERVICES, undefined, '-m addrtype --dst-type LOCAL', sp.nodePort));
    }
  }

  // Health-check node port: accepted whether or not this node has endpoints.
  if (sp.healthCheckNodePort !== 0) {
    out.filter.push(`-A ${KUBE_NODEPORTS} -p tcp ${comment(`${name} health check node port`)} -m tcp --dport ${sp.healthCheckNodePort} -j ACCEPT`);
  }

  // Masquerade traffic to the cluster IP that comes from outside the cluster.
  if (hasInternal) {
    const masq = ctx.input.masqueradeAll ? undefined : ctx.localDetect?.ifNotLocal;
    if (ctx.input.masqueradeAll || masq) {
      out.rules.push(`-A ${internalChain} ${portMatch({ src: masq, dst: clusterIP, proto, note: clusterNote, dport: sp.port })} -j ${KUBE_MARK_MASQ}`);
    }
  }

  // External traffic (node port, external and load-balancer IPs) goes through the EXT chain.
  if (usesExtChain) {
    if (!externalPolicyLocal(sp)) {
      // Endpoints may be on other nodes: masquerade so replies come back through us.
      out.rules.push(`-A ${extChain} ${comment(`masquerade traffic for ${name} external destinations`)} -j ${KUBE_MARK_MASQ}`);
    } else {
      // Local policy keeps the client's source IP, except for traffic from pods and from this host,
      // which goes to any endpoint as if it had gone out to a load balancer and come back.
      if (ctx.localDetect) {
        out.rules.push(`-A ${extChain} ${ctx.localDetect.ifLocal} ${comment(`pod traffic for ${name} external destinations`)} -j ${svcChain}`);
      }
      out.rules.push(`-A ${extChain} ${comment(`masquerade LOCAL traffic for ${name} external destinations`)} -m addrtype --src-type LOCAL -j ${KUBE_MARK_MASQ}`);
      out.rules.push(`-A ${extChain} ${comment(`route LOCAL traffic for ${name} external destinations`)} -m addrtype --src-type LOCAL -j ${svcChain}`);
    }
    if (hasExternal) out.rules.push(`-A ${extChain} -j ${externalPolicyChain}`);
  }

  // Each endpoint's chain name was made once, in the plan, however many rules name it.
  const sep = (ep: Endpoint) => plan.seps.get(ep) ?? endpointChainName(name, proto, endpointString(ep));
  const epComment = (text: string) => (ctx.large ? '' : ` ${comment(text)}`);
  const dispatch = (chain: string, targets: readonly Endpoint[]) => {
    if (sp.sessionAffinity === 'ClientIP') {
      for (const ep of targets) {
        out.rules.push(
          `-A ${chain}${epComment(`${name} -> ${endpointString(ep)}`)} -m recent --name ${sep(ep)} --rcheck --seconds ${sp.stickySeconds} --reap -j ${sep(ep)}`,
        );
      }
    }
    targets.forEach((ep, i) => {
      const pick = i < targets.length - 1 ? ` -m statistic --mode random --probability ${probability(targets.length - i)}` : '';
      out.rules.push(`-A ${chain}${epComment(`${name} -> ${endpointString(ep)}`)}${pick} -j ${sep(ep)}`);
    });
  };
  if (usesClusterChain) dispatch(svcChain, cluster);
  if (usesLocalChain) dispatch(svlChain, local);

  for (const ep of reachable) {
    const chain = sep(ep);
    // Hairpin: an endpoint reaching itself through the service must be masqueraded.
    out.rules.push(`-A ${chain} -s ${host(ep.ip)}${epComment(name)} -j ${KUBE_MARK_MASQ}`);
    const affinity = sp.sessionAffinity === 'ClientIP' ? ` -m recent --name ${chain} --set` : '';
    out.rules.push(`-A ${chain} -p ${proto}${epComment(name)}${affinity} -m ${proto} -j DNAT --to-destination ${endpointString(ep)}`);
  }
  return out;
}

const NODEPORTS_NOTE = 'kubernetes service nodeports; NOTE: this must be the last rule in this chain';

/** The jumps from builtin chains into ours (upstream's iptablesJumpChains). */
export function jumpRules(localhostNodePorts: boolean): JumpRule[] {
  const newOnly = ['-m', 'conntrack', '--ctstate', 'NEW'];
  const jump = (table: Table, chain: string, target: string, note: string, extra: string[] = []): JumpRule => ({
    table,
    chain,
    rule: [...extra, ...(note ? ['-m', 'comment', '--comment', note] : []), '-j', target],
  });
  const jumps = [
    jump('filter', 'INPUT', KUBE_EXTERNAL_SERVICES, 'kubernetes externally-visible service portals', newOnly),
    jump('filter', 'FORWARD', KUBE_EXTERNAL_SERVICES, 'kubernetes externally-visible service portals', newOnly),
    jump('filter', 'INPUT', KUBE_NODEPORTS, 'kubernetes health check service ports'),
    jump('filter', 'FORWARD', KUBE_SERVICES, 'kubernetes service portals', newOnly),
    jump('filter', 'OUTPUT', KUBE_SERVICES, 'kubernetes service portals', newOnly),
    jump('filter', 'FORWARD', KUBE_FORWARD, 'kubernetes forwarding rules'),
    jump('filter', 'INPUT', KUBE_PROXY_FIREWALL, 'kubernetes load balancer firewall', newOnly),
    jump('filter', 'OUTPUT', KUBE_PROXY_FIREWALL, 'kubernetes load balancer firewall', newOnly),
    jump('filter', 'FORWARD', KUBE_PROXY_FIREWALL, 'kubernetes load balancer firewall', newOnly),
    jump('nat', 'OUTPUT', KUBE_SERVICES, 'kubernetes service portals'),
    jump('nat', 'PREROUTING', KUBE_SERVICES, 'kubernetes service portals'),
    jump('nat', 'POSTROUTING', KUBE_POSTROUTING, 'kubernetes postrouting rules'),
  ];
  if (localhostNodePorts) {
    jumps.push(jump('filter', 'INPUT', KUBE_FIREWALL, ''), jump('filter', 'OUTPUT', KUBE_FIREWALL, ''));
  }
  return jumps;
}

/** The restore line that prepends a jump (iptables-restore's -I: position 1). */
export function jumpInsertLine(j: JumpRule): string {
  return `-I ${j.chain} ${formatArgs(j.rule)}`;
}

/**
 * The jumps not yet in their table, judged from iptables-save text (rules
 * compared as iptables-save writes them). This replaces an `iptables -C` and
 * `-I` exec per jump (about 30 execs, most of a small full sync) with the
 * saves the full sync reads anyway.
 */
export function missingJumps(jumps: readonly JumpRule[], saved: Readonly<Partial<Record<Table, string>>>): JumpRule[] {
  const present = new Map<Table, Set<string>>();
  const lines = (t: Table): Set<string> => {
    let set = present.get(t);
    if (!set) {
      // Only rules of built-in chains (no '-' in their names) can be jumps; the nat save has thousands of others.
      set = new Set();
      for (const l of (saved[t] ?? '').split('\n')) if (/^-A [A-Z]+ /.test(l)) set.add(l.trim().replace(/\s+/g, ' '));
      present.set(t, set);
    }
    return set;
  };
  return jumps.filter((j) => !lines(j.table).has(`-A ${j.chain} ${formatArgs(j.rule)}`));
}

/** Restore text with lines added at the end of its (one) table, before COMMIT. */
export function beforeCommit(text: string, extra: readonly string[]): string {
  if (extra.length === 0) return text;
  const at = text.lastIndexOf('COMMIT');
  if (at < 0) throw new Error('restore text without COMMIT');
  return `${text.slice(0, at)}${extra.join('\n')}\n${text.slice(at)}`;
}

/** Whether a service's chains need writing again: any of them missing, or (`all` false) the first. */
function missingChain(chains: readonly string[], existing: ReadonlySet<string>, all: boolean): boolean {
  if (!all) return chains.length > 0 && !existing.has(chains[0] as string);
  for (const c of chains) if (!existing.has(c)) return true;
  return false;
}

function render(table: Table, chains: readonly string[], rules: readonly string[]): string {
  return [`*${table}`, ...chains.map(chainLine), ...rules, 'COMMIT', ''].join('\n');
}

/**
 * A service's rules depend only on its port info, its endpoints and a few
 * settings. The proxier keeps unchanged services' objects across syncs, so
 * their rules are remembered by identity and a partial sync renders only what
 * changed (upstream regenerates every service each time, in Go).
 */
const ruleCache = new WeakMap<ServicePortInfo, { eps: readonly Endpoint[]; settings: string; clusterIP: string; out: ServiceText }>();

/**
 * A service's rules as the generator writes them: each part one block of
 * lines (no final newline; '' when none), joined once when made. Keeping
 * tens of thousands of rule strings (each a tree of concatenated pieces)
 * alive until the end of a sync made the garbage collector most of a large
 * first sync; a block per part is one flat string.
 */
interface ServiceText {
  chains: string[];
  noLocalInternal: boolean;
  noLocalExternal: boolean;
  top: string;
  topCount: number;
  rules: string;
  rulesCount: number;
  filter: string[];
}

/** A service as the generator's first pass leaves it: its text from the cache, or the plan to make it from. */
interface ServiceEntry {
  chains: readonly string[];
  text: ServiceText | (() => ServiceText);
}

function serviceEntry(sp: ServicePortInfo, clusterIP: string, eps: readonly Endpoint[], ctx: Context): ServiceEntry {
  const topo = ctx.input.topology;
  const { settings } = ctx;
  const hit = ruleCache.get(sp);
  if (hit && hit.eps === eps && hit.settings === settings && hit.clusterIP === clusterIP) return { chains: hit.out.chains, text: hit.out };
  const plan = planService(sp, eps, topo);
  const make = () => {
    const o = serviceRules(sp, clusterIP, plan, ctx);
    const out: ServiceText = {
      chains: plan.chains,
      noLocalInternal: o.noLocalInternal,
      noLocalExternal: o.noLocalExternal,
      top: o.top.join('\n'),
      topCount: o.top.length,
      rules: o.rules.join('\n'),
      rulesCount: o.rules.length,
      filter: o.filter,
    };
    ruleCache.set(sp, { eps, settings, clusterIP, out });
    return out;
  };
  return { chains: plan.chains, text: make };
}

/** Endpoints of all service ports (keyed by portKey), as upstream counts them for largeClusterMode. */
function countEndpoints(keyed: readonly { key: string }[], endpoints: ReadonlyMap<string, readonly Endpoint[]>): number {
  let n = 0;
  for (const { key } of keyed) n += endpoints.get(key)?.length ?? 0;
  return n;
}

/** Services per nat chunk: about 64 KiB of restore text, what one pipe write takes. */
const CHUNK_SERVICES = 40;

/** What generateRules gives besides the nat text. */
export type RulesRest = Omit<RulesOutput, 'nat'>;

/** All of the rules at once (tests, benchmarks; the proxier streams them). */
export function generateRules(input: RulesInput, options: RulesOptions): RulesOutput {
  const parts: string[] = [];
  const gen = generateRulesChunked(input, options);
  for (let r = gen.next(); ; r = gen.next()) {
    if (r.done) return { ...r.value, nat: parts.join('') };
    parts.push(r.value);
  }
}

/**
 * The nat restore text in pieces, a few dozen services each; the rest (filter
 * text, chains, counts) is the generator's return value. The first piece is
 * the table line alone, so that iptables-restore gets going (a legacy restore
 * reads the whole table from the kernel then) while every service's chains
 * are worked out; then all the chains are declared, and the rules follow in
 * pieces, made (or taken from the cache) while iptables-restore parses the
 * declarations, so a large text is never one string.
 */
export function* generateRulesChunked(input: RulesInput, options: RulesOptions): Generator<string, RulesRest, void> {
  const changed = options.changedServices ?? new Set<string>();
  // The table line on its own first, before any work: iptables-restore starts
  // and reads the table (all of it, for a legacy --noflush restore) while the
  // services are made. So does a partial sync with changed services (it nearly
  // always writes; at 10k services the work before its first rule is 13-30 ms).
  // One without first works out whether there is anything to write.
  const opened = options.full || changed.size > 0;
  if (opened) yield '*nat\n';
  // Keys computed once, not in every comparison.
  const keyed = input.services.map((sp) => ({ sp, key: portKey(sp) }));
  keyed.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  const localDetect = ((d) => (d ? iptablesLocalMatches(d) : undefined))(detectorOf(input));
  const large = countEndpoints(keyed, input.endpoints) > LARGE_CLUSTER_ENDPOINTS;
  const topo = input.topology;
  const ctx: Context = {
    input,
    localDetect,
    large,
    settings: `${input.masqueradeAll ? 1 : 0}|${localDetect?.ifLocal ?? ''}|${large ? 1 : 0}|${topo?.nodeName ?? ''}|${topo?.zone ?? ''}`,
  };
  const existing = options.existingChains;
  const cleanup = options.full || !options.skipStaleCleanup;

  const filterChains = [KUBE_SERVICES, KUBE_EXTERNAL_SERVICES, KUBE_FORWARD, KUBE_NODEPORTS, KUBE_PROXY_FIREWALL];
  const filterRules: string[] = [];
  let natChains = [KUBE_SERVICES, KUBE_NODEPORTS, KUBE_POSTROUTING, KUBE_MARK_MASQ];
  if (options.canary) {
    filterChains.push(options.canary);
    if (options.full) natChains.push(options.canary);
  }
  const mark = masqueradeMark(input.masqueradeBit);
  const headRules = [
    `-A ${KUBE_POSTROUTING} -m mark ! --mark ${mark}/${mark} -j RETURN`,
    `-A ${KUBE_POSTROUTING} -j MARK --xor-mark ${mark}`,
    `-A ${KUBE_POSTROUTING} ${comment('kubernetes service traffic requiring SNAT')} -j MASQUERADE${input.randomFully ? ' --random-fully' : ''}`,
    `-A ${KUBE_MARK_MASQ} -j MARK --or-mark ${mark}`,
  ];
  let natAppends = headRules.length;
  if (localhostNodePorts(input)) {
    // route_localnet lets outside packets to 127.0.0.0/8 in; drop those that are not ours (kubelet has the same rule).
    filterChains.push(KUBE_FIREWALL);
    filterRules.push(
      `-A ${KUBE_FIREWALL} ! -s 127.0.0.0/8 -d 127.0.0.0/8 ${comment('block incoming localnet connections')} -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP`,
    );
  }

  const chainsInUse = new Set<string>();
  // Every service's chains first (its text too when cached), so all declarations can lead the text.
  const services: { entry: ServiceEntry; write: boolean }[] = [];
  for (const { sp, key } of keyed) {
    const clusterIP = sp.clusterIPs[0];
    if (!clusterIP) continue;
    const entry = serviceEntry(sp, clusterIP, input.endpoints.get(key) ?? [], ctx);
    if (cleanup) for (const c of entry.chains) chainsInUse.add(c);
    // A partial sync leaves an unchanged service's chains as they are, unless one of them is missing.
    const write =
      options.full || changed.has(serviceKey(sp.namespace, sp.name)) || (existing !== undefined && missingChain(entry.chains, existing, cleanup));
    if (write) for (const c of entry.chains) natChains.push(c);
    services.push({ entry, write });
  }

  // Delete our chains that nothing uses any more: declaring flushes them, then -X.
  // Only the stale ones are sorted (thousands of existing chains, a handful stale).
  const stale: string[] = [];
  if (cleanup) for (const chain of existing ?? []) if (!chainsInUse.has(chain) && isServiceChain(chain)) stale.push(chain);
  stale.sort();

  const tailRules = nodePortJumps(input);
  const natExtra = options.natExtra ?? [];
  // The top-level chains' content, compared with the last restore's on a partial
  // sync (the changed services' text is made now, not overlapped with the restore:
  // they are few). A full sync collects it as it goes.
  const top: string[] = [headRules.join('\n')];
  let topKept = false;
  if (!options.full) {
    for (const s of services) top.push(textOf(s.entry).top);
    top.push(tailRules.join('\n'));
    topKept = options.previousTop !== undefined && sameStrings(top, options.previousTop);
    if (topKept) {
      natChains = natChains.filter((c) => !TOP_CHAINS.has(c));
      natAppends -= headRules.length;
      if (natChains.length === 0 && stale.length === 0 && natExtra.length === 0) {
        // Nothing to write: no restore at all (it would still replace the whole table on legacy),
        // or, when the table line went out already, an empty one (iptables commits nothing then).
        if (opened) yield 'COMMIT\n';
        return rest();
      }
    }
    if (!opened) yield '*nat\n';
  }
  for (const chain of stale) natChains.push(chain);

  // Declarations first, in descending name order: both iptables backends keep
  // user chains in a name-sorted list, and a chain that sorts before all the
  // others goes in at the head, while one in random order is a walk along the
  // list. At 10k services that is a legacy restore of 1.9 s instead of 2.9 s,
  // and an nf_tables one four times faster (scratch restores of the same rules
  // in both orders). Stale chains are flushed here too, before any is deleted
  // (a stale chain may still jump to another).
  const declared = [...natChains].sort().reverse();
  // The nat text so far (since the last piece; an element may hold several lines).
  let lines: string[] = [...declared.map(chainLine), ...(topKept ? [] : headRules)];
  let inChunk = 0;
  for (const { entry, write } of services) {
    const out = textOf(entry);
    if (options.full) top.push(out.top);
    if (!topKept) {
      if (out.top) lines.push(out.top);
      natAppends += out.topCount;
    }
    if (write) {
      if (out.rules) lines.push(out.rules);
      natAppends += out.rulesCount;
    }
    if (++inChunk >= CHUNK_SERVICES) {
      yield `${lines.join('\n')}\n`;
      lines = [];
      inChunk = 0;
    }
  }
  for (const chain of stale) lines.push(`-X ${chain}`);

  // Last in KUBE-SERVICES: traffic to this node's addresses may be for a node port.
  if (options.full) top.push(tailRules.join('\n'));
  if (!topKept) {
    natAppends += tailRules.length;
    for (const r of tailRules) lines.push(r);
  }
  yield [...lines, ...natExtra, 'COMMIT', ''].join('\n');
  return rest();

  // The generator's return value (natAppends is 0 when no text was written): the filter rules and counts of every service.
  function rest(): RulesRest {
    const noLocalEndpoints: NoLocalEndpoints = { internal: 0, external: 0 };
    for (const { entry } of services) {
      const out = textOf(entry);
      if (out.noLocalInternal) noLocalEndpoints.internal++;
      if (out.noLocalExternal) noLocalEndpoints.external++;
      for (const r of out.filter) filterRules.push(r);
    }
    filterRules.push(
      `-A ${KUBE_FORWARD} -m conntrack --ctstate INVALID -j DROP`,
      `-A ${KUBE_FORWARD} ${comment('kubernetes forwarding rules')} -m mark --mark ${mark}/${mark} -j ACCEPT`,
      `-A ${KUBE_FORWARD} ${comment('kubernetes forwarding conntrack rule')} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT`,
    );
    return {
      filter: render('filter', filterChains, filterRules),
      chainsInUse: cleanup ? chainsInUse : undefined,
      largeCluster: ctx.large,
      natChains,
      ruleCounts: { nat: natAppends, filter: filterRules.length },
      noLocalEndpoints,
      jumps: jumpRules(localhostNodePorts(input)),
      top,
      topKept,
    };
  }
}

/** The nat chains every sync writes unless the top is kept. */
const TOP_CHAINS = new Set([KUBE_SERVICES, KUBE_NODEPORTS, KUBE_POSTROUTING, KUBE_MARK_MASQ]);

/** A service's text, made now if the first pass only planned it (and kept, so it is made once). */
function textOf(entry: ServiceEntry): ServiceText {
  if (typeof entry.text === 'function') entry.text = entry.text();
  return entry.text;
}

function sameStrings(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** The last rules of KUBE-SERVICES: traffic to this node's addresses may be for a node port. */
function nodePortJumps(input: RulesInput): string[] {
  const out: string[] = [];
  const v6 = input.family === 'IPv6';
  if (input.nodeIPs.length === 0) {
    const notLocalhost = v6 ? '! -d ::1/128' : input.localhostNodePorts ? undefined : '! -d 127.0.0.0/8';
    out.push(line(`-A ${KUBE_SERVICES}`, notLocalhost, comment(NODEPORTS_NOTE), '-m addrtype --dst-type LOCAL', `-j ${KUBE_NODEPORTS}`));
  } else {
    for (const ip of input.nodeIPs) {
      if (v6 ? ip === '::1' : ip.startsWith('127.') && !input.localhostNodePorts) continue;
      out.push(`-A ${KUBE_SERVICES} -d ${host(ip)} ${comment(NODEPORTS_NOTE)} -j ${KUBE_NODEPORTS}`);
    }
  }
  return out;
}
