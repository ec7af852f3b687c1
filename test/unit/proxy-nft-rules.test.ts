// The nftables generator (proxy/nftables/rules.ts + transaction.ts) against
// literal nft text, table-driven: each case lists the lines a service adds to
// the full transaction of an empty ruleset with the same options.
// Fixture addresses: service IPs in 10.96.0.0/16, pod IPs in 10.244.0.0/16
// (RFC 1918), node and external addresses in 192.0.2.0/24 (TEST-NET-1) and
// 198.51.100.0/24 (TEST-NET-2), RFC 5737. IPv6: service and pod addresses in
// fd00::/8 (unique local, RFC 4193), node and external ones in 2001:db8::/32
// (documentation, RFC 3849).
import { expect } from 'chai';
import type { NftRulesInput } from '../../proxy/nftables/rules.ts';
import { buildRuleset } from '../../proxy/nftables/state.ts';
import { fullTransaction } from '../../proxy/nftables/transaction.ts';
import type { Endpoint, ServicePortInfo } from '../../proxy/types.ts';
import { FakeNft } from '../fakes/nft.ts';
import { endpoint as ep, servicePort as svc } from '../fakes/proxyobjects.ts';

const input = (services: ServicePortInfo[], endpoints: Record<string, Endpoint[]>, over: Partial<NftRulesInput> = {}): NftRulesInput => ({
  services,
  endpoints: new Map(Object.entries(endpoints)),
  nodeIPs: [],
  localhostNodePorts: false,
  clusterCIDR: '10.244.0.0/16',
  ...over,
});

const lines = (text: string) => text.trim().split('\n');

/** The lines `inp` adds to the full transaction of the same options without services. */
function delta(inp: NftRulesInput): string[] {
  const base = new Set(lines(fullTransaction(buildRuleset({ ...inp, services: [], endpoints: new Map() }))));
  return lines(fullTransaction(buildRuleset(inp))).filter((l) => !base.has(l));
}

const DNAT_ADDR = '{ typeof ip daddr . meta l4proto . tcp dport . numgen random mod 1 : ip daddr . tcp dport; }';
const DNAT_PORT = '{ typeof meta l4proto . tcp dport . numgen random mod 1 : ip daddr . tcp dport; }';
const MARK = 'meta mark set meta mark | 0x4000';
const T = 'ip nodelet';
const KEY = 'ip daddr . meta l4proto . th dport';
/** The words of each family's table that the literal lines below differ by. */
const V4 = { T, ip: 'ip', KEY, pods: '10.244.0.0/16' };
const V6 = { T: 'ip6 nodelet', ip: 'ip6', KEY: 'ip6 daddr . meta l4proto . th dport', pods: 'fd00:244::/56' };
const svcChain = (name: string, k: number, f = V4) => [
  `add rule ${f.T} ${name} ${f.ip} saddr != ${f.pods} ${MARK}`,
  `add rule ${f.T} ${name} dnat ${f.ip} to ${f.KEY} . numgen random mod ${k} map @dnat_tcp_${k}`,
];

const A = ep('10.244.1.1', { isLocal: true });
const B = ep('10.244.2.1');

const cases: Array<{ name: string; in: NftRulesInput; want: string[] }> = [
  {
    name: 'ClusterIP with two endpoints: one svc_tcp_2 chain, a verdict and two dnat_tcp_2 elements',
    in: input([svc()], { 'ns1/svc1:http': [B, A] }),
    want: [
      `add map ${T} dnat_tcp_2 ${DNAT_ADDR}`,
      `add chain ${T} svc_tcp_2`,
      ...svcChain('svc_tcp_2', 2),
      `add element ${T} cluster_ips { 10.96.0.10 }`,
      `add element ${T} dnat_tcp_2 { 10.96.0.10 . tcp . 80 . 0 : 10.244.1.1 . 8080, 10.96.0.10 . tcp . 80 . 1 : 10.244.2.1 . 8080 }`,
      `add element ${T} hairpin { 10.244.1.1 . 10.244.1.1 }`,
      `add element ${T} service_ips { 10.96.0.10 . tcp . 80 : goto svc_tcp_2 }`,
    ],
  },
  {
    name: 'no endpoints: rejected in the filter chains',
    in: input([svc()], {}),
    want: [`add element ${T} cluster_ips { 10.96.0.10 }`, `add element ${T} no_endpoint_services { 10.96.0.10 . tcp . 80 : goto reject_packet }`],
  },
  {
    name: 'UDP, no cluster CIDR: no masquerade rule in the service chain',
    in: input([svc({ protocol: 'UDP', port: 53 })], { 'ns1/svc1:http': [ep('10.244.1.1', { port: 5353 })] }, { clusterCIDR: undefined }),
    want: [
      // Per-protocol chain and map: the map's typeof names `udp dport` (see dnatDecl).
      `add map ${T} dnat_udp_1 { typeof ip daddr . meta l4proto . udp dport . numgen random mod 1 : ip daddr . udp dport; }`,
      `add chain ${T} svc_udp_1`,
      `add rule ${T} svc_udp_1 dnat ip to ${KEY} . numgen random mod 1 map @dnat_udp_1`,
      `add element ${T} cluster_ips { 10.96.0.10 }`,
      `add element ${T} dnat_udp_1 { 10.96.0.10 . udp . 53 . 0 : 10.244.1.1 . 5353 }`,
      `add element ${T} service_ips { 10.96.0.10 . udp . 53 : goto svc_udp_1 }`,
    ],
  },
  {
    name: 'masqueradeAll: the service chain marks every connection, whatever its source (with or without a cluster CIDR)',
    in: input([svc()], { 'ns1/svc1:http': [B] }, { masqueradeAll: true }),
    want: [
      `add map ${T} dnat_tcp_1 ${DNAT_ADDR}`,
      `add chain ${T} svc_tcp_1`,
      `add rule ${T} svc_tcp_1 ${MARK}`,
      `add rule ${T} svc_tcp_1 dnat ip to ${KEY} . numgen random mod 1 map @dnat_tcp_1`,
      `add element ${T} cluster_ips { 10.96.0.10 }`,
      `add element ${T} dnat_tcp_1 { 10.96.0.10 . tcp . 80 . 0 : 10.244.2.1 . 8080 }`,
      `add element ${T} service_ips { 10.96.0.10 . tcp . 80 : goto svc_tcp_1 }`,
    ],
  },
  {
    name: 'loadBalancerSourceRanges: the load-balancer key is firewalled, its ranges (and, when they take this node, the IP itself) allowed',
    in: input([svc({ loadBalancerIPs: ['203.0.113.10'], loadBalancerSourceRanges: ['198.51.100.0/24', '192.0.2.7/32'] })], { 'ns1/svc1:http': [B] }, { nodeIPs: ['192.0.2.7'] }),
    want: [
      `add map ${T} dnat_tcp_1 ${DNAT_ADDR}`,
      `add chain ${T} ext_tcp_1`,
      `add chain ${T} svc_tcp_1`,
      `add rule ${T} ext_tcp_1 ${MARK} goto svc_tcp_1`,
      ...svcChain('svc_tcp_1', 1),
      `add element ${T} cluster_ips { 10.96.0.10 }`,
      `add element ${T} dnat_tcp_1 { 10.96.0.10 . tcp . 80 . 0 : 10.244.2.1 . 8080, 203.0.113.10 . tcp . 80 . 0 : 10.244.2.1 . 8080 }`,
      `add element ${T} firewall_allow { 203.0.113.10 . tcp . 80 . 198.51.100.0/24, 203.0.113.10 . tcp . 80 . 192.0.2.7/32, 203.0.113.10 . tcp . 80 . 203.0.113.10/32 }`,
      `add element ${T} firewall_ips { 203.0.113.10 . tcp . 80 }`,
      `add element ${T} service_ips { 10.96.0.10 . tcp . 80 : goto svc_tcp_1, 203.0.113.10 . tcp . 80 : goto ext_tcp_1 }`,
    ],
  },
  {
    name: 'ClientIP affinity with its timeout: a sticky chain looks the client up in one set per endpoint index, pick chains record and DNAT',
    in: input([svc({ sessionAffinity: 'ClientIP', stickySeconds: 60 })], { 'ns1/svc1:http': [B, A] }),
    want: [
      `add set ${T} affinity_tcp_2_0_t60 { type ipv4_addr . ipv4_addr . inet_proto . inet_service; flags dynamic,timeout; timeout 60s; }`,
      `add set ${T} affinity_tcp_2_1_t60 { type ipv4_addr . ipv4_addr . inet_proto . inet_service; flags dynamic,timeout; timeout 60s; }`,
      `add map ${T} dnat_tcp_2 ${DNAT_ADDR}`,
      `add chain ${T} svc_pick_tcp_2_0_t60`,
      `add chain ${T} svc_pick_tcp_2_1_t60`,
      `add chain ${T} svc_sticky_tcp_2_t60`,
      `add rule ${T} svc_pick_tcp_2_0_t60 update @affinity_tcp_2_0_t60 { ip saddr . ${KEY} }`,
      `add rule ${T} svc_pick_tcp_2_0_t60 dnat ip to ${KEY} . numgen random mod 1 map @dnat_tcp_2`,
      `add rule ${T} svc_pick_tcp_2_1_t60 update @affinity_tcp_2_1_t60 { ip saddr . ${KEY} }`,
      `add rule ${T} svc_pick_tcp_2_1_t60 dnat ip to ${KEY} . numgen random mod 1 offset 1 map @dnat_tcp_2`,
      `add rule ${T} svc_sticky_tcp_2_t60 ip saddr != 10.244.0.0/16 ${MARK}`,
      `add rule ${T} svc_sticky_tcp_2_t60 ip saddr . ${KEY} @affinity_tcp_2_0_t60 goto svc_pick_tcp_2_0_t60`,
      `add rule ${T} svc_sticky_tcp_2_t60 ip saddr . ${KEY} @affinity_tcp_2_1_t60 goto svc_pick_tcp_2_1_t60`,
      `add rule ${T} svc_sticky_tcp_2_t60 numgen random mod 2 vmap { 0 : goto svc_pick_tcp_2_0_t60, 1 : goto svc_pick_tcp_2_1_t60 }`,
      `add element ${T} cluster_ips { 10.96.0.10 }`,
      `add element ${T} dnat_tcp_2 { 10.96.0.10 . tcp . 80 . 0 : 10.244.1.1 . 8080, 10.96.0.10 . tcp . 80 . 1 : 10.244.2.1 . 8080 }`,
      `add element ${T} hairpin { 10.244.1.1 . 10.244.1.1 }`,
      `add element ${T} service_ips { 10.96.0.10 . tcp . 80 : goto svc_sticky_tcp_2_t60 }`,
    ],
  },
  {
    name: 'NodePort, Cluster policy: masquerade, then the node-port map without the address',
    in: input([svc({ nodePort: 30080 })], { 'ns1/svc1:http': [A] }),
    want: [
      `add map ${T} dnat_np_tcp_1 ${DNAT_PORT}`,
      `add map ${T} dnat_tcp_1 ${DNAT_ADDR}`,
      `add chain ${T} np_tcp_1`,
      `add chain ${T} npext_tcp_1`,
      `add chain ${T} svc_tcp_1`,
      `add rule ${T} np_tcp_1 dnat ip to meta l4proto . th dport . numgen random mod 1 map @dnat_np_tcp_1`,
      `add rule ${T} npext_tcp_1 ${MARK} goto np_tcp_1`,
      ...svcChain('svc_tcp_1', 1),
      `add element ${T} cluster_ips { 10.96.0.10 }`,
      `add element ${T} dnat_np_tcp_1 { tcp . 30080 . 0 : 10.244.1.1 . 8080 }`,
      `add element ${T} dnat_tcp_1 { 10.96.0.10 . tcp . 80 . 0 : 10.244.1.1 . 8080 }`,
      `add element ${T} hairpin { 10.244.1.1 . 10.244.1.1 }`,
      `add element ${T} service_ips { 10.96.0.10 . tcp . 80 : goto svc_tcp_1 }`,
      `add element ${T} service_nodeports { tcp . 30080 : goto npext_tcp_1 }`,
    ],
  },
  {
    name: 'external and load-balancer IPs, Cluster policy: ext_k marks and goes to svc_k',
    in: input([svc({ externalIPs: ['192.0.2.50'], loadBalancerIPs: ['198.51.100.7'] })], { 'ns1/svc1:http': [A] }),
    want: [
      `add map ${T} dnat_tcp_1 ${DNAT_ADDR}`,
      `add chain ${T} ext_tcp_1`,
      `add chain ${T} svc_tcp_1`,
      `add rule ${T} ext_tcp_1 ${MARK} goto svc_tcp_1`,
      ...svcChain('svc_tcp_1', 1),
      `add element ${T} cluster_ips { 10.96.0.10 }`,
      `add element ${T} dnat_tcp_1 { 10.96.0.10 . tcp . 80 . 0 : 10.244.1.1 . 8080, 192.0.2.50 . tcp . 80 . 0 : 10.244.1.1 . 8080, 198.51.100.7 . tcp . 80 . 0 : 10.244.1.1 . 8080 }`,
      `add element ${T} hairpin { 10.244.1.1 . 10.244.1.1 }`,
      `add element ${T} service_ips { 10.96.0.10 . tcp . 80 : goto svc_tcp_1, 192.0.2.50 . tcp . 80 : goto ext_tcp_1, 198.51.100.7 . tcp . 80 : goto ext_tcp_1 }`,
    ],
  },
  {
    name: 'externalTrafficPolicy Local: outside traffic to the local endpoint, pods and this host to all',
    in: input([svc({ externalIPs: ['192.0.2.50'], nodePort: 30080, externalTrafficPolicy: 'Local' })], { 'ns1/svc1:http': [A, B] }),
    want: [
      `add map ${T} dnat_local_tcp_1 ${DNAT_ADDR}`,
      `add map ${T} dnat_np_local_tcp_1 ${DNAT_PORT}`,
      `add map ${T} dnat_np_tcp_2 ${DNAT_PORT}`,
      `add map ${T} dnat_tcp_2 ${DNAT_ADDR}`,
      `add chain ${T} local_tcp_1`,
      `add chain ${T} np_local_tcp_1`,
      `add chain ${T} np_tcp_2`,
      `add chain ${T} svc_tcp_2`,
      `add rule ${T} local_tcp_1 dnat ip to ${KEY} . numgen random mod 1 map @dnat_local_tcp_1`,
      `add rule ${T} np_local_tcp_1 dnat ip to meta l4proto . th dport . numgen random mod 1 map @dnat_np_local_tcp_1`,
      `add rule ${T} np_tcp_2 dnat ip to meta l4proto . th dport . numgen random mod 2 map @dnat_np_tcp_2`,
      ...svcChain('svc_tcp_2', 2),
      `add element ${T} cluster_ips { 10.96.0.10 }`,
      `add element ${T} dnat_local_tcp_1 { 192.0.2.50 . tcp . 80 . 0 : 10.244.1.1 . 8080 }`,
      `add element ${T} dnat_np_local_tcp_1 { tcp . 30080 . 0 : 10.244.1.1 . 8080 }`,
      `add element ${T} dnat_np_tcp_2 { tcp . 30080 . 0 : 10.244.1.1 . 8080, tcp . 30080 . 1 : 10.244.2.1 . 8080 }`,
      `add element ${T} dnat_tcp_2 { 10.96.0.10 . tcp . 80 . 0 : 10.244.1.1 . 8080, 10.96.0.10 . tcp . 80 . 1 : 10.244.2.1 . 8080, 192.0.2.50 . tcp . 80 . 0 : 10.244.1.1 . 8080, 192.0.2.50 . tcp . 80 . 1 : 10.244.2.1 . 8080 }`,
      `add element ${T} external_cluster { 192.0.2.50 . tcp . 80 : goto svc_tcp_2 }`,
      `add element ${T} external_local { 192.0.2.50 . tcp . 80 : goto local_tcp_1 }`,
      `add element ${T} hairpin { 10.244.1.1 . 10.244.1.1 }`,
      `add element ${T} nodeport_cluster { tcp . 30080 : goto np_tcp_2 }`,
      `add element ${T} nodeport_local { tcp . 30080 : goto np_local_tcp_1 }`,
      `add element ${T} service_ips { 10.96.0.10 . tcp . 80 : goto svc_tcp_2, 192.0.2.50 . tcp . 80 : goto external_policy_local }`,
      `add element ${T} service_nodeports { tcp . 30080 : goto nodeport_policy_local }`,
    ],
  },
  {
    name: 'externalTrafficPolicy Local without local endpoints: outside traffic dropped, not rejected',
    in: input([svc({ nodePort: 30080, externalTrafficPolicy: 'Local' })], { 'ns1/svc1:http': [B] }),
    want: [
      `add map ${T} dnat_np_tcp_1 ${DNAT_PORT}`,
      `add map ${T} dnat_tcp_1 ${DNAT_ADDR}`,
      `add chain ${T} np_tcp_1`,
      `add chain ${T} svc_tcp_1`,
      `add rule ${T} np_tcp_1 dnat ip to meta l4proto . th dport . numgen random mod 1 map @dnat_np_tcp_1`,
      ...svcChain('svc_tcp_1', 1),
      `add element ${T} cluster_ips { 10.96.0.10 }`,
      `add element ${T} dnat_np_tcp_1 { tcp . 30080 . 0 : 10.244.2.1 . 8080 }`,
      `add element ${T} dnat_tcp_1 { 10.96.0.10 . tcp . 80 . 0 : 10.244.2.1 . 8080 }`,
      `add element ${T} no_endpoint_nodeports { tcp . 30080 : drop }`,
      `add element ${T} nodeport_cluster { tcp . 30080 : goto np_tcp_1 }`,
      `add element ${T} service_ips { 10.96.0.10 . tcp . 80 : goto svc_tcp_1 }`,
      `add element ${T} service_nodeports { tcp . 30080 : goto nodeport_policy_local }`,
    ],
  },
  {
    name: 'internalTrafficPolicy Local: the cluster IP reaches only local endpoints, else is dropped',
    in: input([svc({ internalTrafficPolicy: 'Local' }), svc({ name: 'svc2', clusterIPs: ['10.96.0.11'], internalTrafficPolicy: 'Local' })], {
      'ns1/svc1:http': [A, B],
      'ns1/svc2:http': [B],
    }),
    want: [
      `add map ${T} dnat_tcp_1 ${DNAT_ADDR}`,
      `add chain ${T} svc_tcp_1`,
      ...svcChain('svc_tcp_1', 1),
      `add element ${T} cluster_ips { 10.96.0.10, 10.96.0.11 }`,
      `add element ${T} dnat_tcp_1 { 10.96.0.10 . tcp . 80 . 0 : 10.244.1.1 . 8080 }`,
      `add element ${T} hairpin { 10.244.1.1 . 10.244.1.1 }`,
      `add element ${T} no_endpoint_services { 10.96.0.11 . tcp . 80 : drop }`,
      `add element ${T} service_ips { 10.96.0.10 . tcp . 80 : goto svc_tcp_1 }`,
    ],
  },
  {
    name: 'not-ready endpoints are skipped; terminating serving ones answer when nothing is ready',
    in: input([svc(), svc({ name: 'svc2', clusterIPs: ['10.96.0.11'] })], {
      'ns1/svc1:http': [A, ep('10.244.2.1', { ready: false, serving: false })],
      'ns1/svc2:http': [ep('10.244.3.1', { ready: false, serving: true, terminating: true })],
    }),
    want: [
      `add map ${T} dnat_tcp_1 ${DNAT_ADDR}`,
      `add chain ${T} svc_tcp_1`,
      ...svcChain('svc_tcp_1', 1),
      `add element ${T} cluster_ips { 10.96.0.10, 10.96.0.11 }`,
      `add element ${T} dnat_tcp_1 { 10.96.0.10 . tcp . 80 . 0 : 10.244.1.1 . 8080, 10.96.0.11 . tcp . 80 . 0 : 10.244.3.1 . 8080 }`,
      `add element ${T} hairpin { 10.244.1.1 . 10.244.1.1 }`,
      `add element ${T} service_ips { 10.96.0.10 . tcp . 80 : goto svc_tcp_1, 10.96.0.11 . tcp . 80 : goto svc_tcp_1 }`,
    ],
  },
  {
    name: 'two services claiming one external IP and port: the first (by name) keeps it',
    in: input([svc({ name: 'svc2', clusterIPs: ['10.96.0.11'], externalIPs: ['192.0.2.50'] }), svc({ externalIPs: ['192.0.2.50'] })], {
      'ns1/svc1:http': [A],
      'ns1/svc2:http': [],
    }),
    want: [
      `add map ${T} dnat_tcp_1 ${DNAT_ADDR}`,
      `add chain ${T} ext_tcp_1`,
      `add chain ${T} svc_tcp_1`,
      `add rule ${T} ext_tcp_1 ${MARK} goto svc_tcp_1`,
      ...svcChain('svc_tcp_1', 1),
      `add element ${T} cluster_ips { 10.96.0.10, 10.96.0.11 }`,
      `add element ${T} dnat_tcp_1 { 10.96.0.10 . tcp . 80 . 0 : 10.244.1.1 . 8080, 192.0.2.50 . tcp . 80 . 0 : 10.244.1.1 . 8080 }`,
      `add element ${T} hairpin { 10.244.1.1 . 10.244.1.1 }`,
      `add element ${T} no_endpoint_services { 10.96.0.11 . tcp . 80 : goto reject_packet }`,
      `add element ${T} service_ips { 10.96.0.10 . tcp . 80 : goto svc_tcp_1, 192.0.2.50 . tcp . 80 : goto ext_tcp_1 }`,
    ],
  },
];

// IPv6: the IPv6 proxier's own table, the same model with ipv6_addr keys and ip6 matches.
const input6 = (services: ServicePortInfo[], endpoints: Record<string, Endpoint[]>, over: Partial<NftRulesInput> = {}): NftRulesInput =>
  // Localhost node ports asked for: IPv6 never has them (as upstream), so nothing of them shows.
  input(services, endpoints, { family: 'IPv6', clusterCIDR: V6.pods, localhostNodePorts: true, ...over });
const svc6 = (over: Partial<ServicePortInfo> = {}) => svc({ clusterIPs: ['fd00:10:96::a'], ...over });
const DNAT6_ADDR = '{ typeof ip6 daddr . meta l4proto . tcp dport . numgen random mod 1 : ip6 daddr . tcp dport; }';
const DNAT6_PORT = '{ typeof meta l4proto . tcp dport . numgen random mod 1 : ip6 daddr . tcp dport; }';
const T6 = V6.T;
const A6 = ep('fd00:244:1::5', { isLocal: true });
const B6 = ep('fd00:244:2::6');

const cases6: typeof cases = [
  {
    name: 'IPv6: ClusterIP with two endpoints, in table ip6 nodelet',
    in: input6([svc6()], { 'ns1/svc1:http': [B6, A6] }),
    want: [
      `add map ${T6} dnat_tcp_2 ${DNAT6_ADDR}`,
      `add chain ${T6} svc_tcp_2`,
      ...svcChain('svc_tcp_2', 2, V6),
      `add element ${T6} cluster_ips { fd00:10:96::a }`,
      `add element ${T6} dnat_tcp_2 { fd00:10:96::a . tcp . 80 . 0 : fd00:244:1::5 . 8080, fd00:10:96::a . tcp . 80 . 1 : fd00:244:2::6 . 8080 }`,
      `add element ${T6} hairpin { fd00:244:1::5 . fd00:244:1::5 }`,
      `add element ${T6} service_ips { fd00:10:96::a . tcp . 80 : goto svc_tcp_2 }`,
    ],
  },
  {
    name: 'IPv6: NodePort, Cluster policy',
    in: input6([svc6({ nodePort: 30080 })], { 'ns1/svc1:http': [A6] }),
    want: [
      `add map ${T6} dnat_np_tcp_1 ${DNAT6_PORT}`,
      `add map ${T6} dnat_tcp_1 ${DNAT6_ADDR}`,
      `add chain ${T6} np_tcp_1`,
      `add chain ${T6} npext_tcp_1`,
      `add chain ${T6} svc_tcp_1`,
      `add rule ${T6} np_tcp_1 dnat ip6 to meta l4proto . th dport . numgen random mod 1 map @dnat_np_tcp_1`,
      `add rule ${T6} npext_tcp_1 ${MARK} goto np_tcp_1`,
      ...svcChain('svc_tcp_1', 1, V6),
      `add element ${T6} cluster_ips { fd00:10:96::a }`,
      `add element ${T6} dnat_np_tcp_1 { tcp . 30080 . 0 : fd00:244:1::5 . 8080 }`,
      `add element ${T6} dnat_tcp_1 { fd00:10:96::a . tcp . 80 . 0 : fd00:244:1::5 . 8080 }`,
      `add element ${T6} hairpin { fd00:244:1::5 . fd00:244:1::5 }`,
      `add element ${T6} service_ips { fd00:10:96::a . tcp . 80 : goto svc_tcp_1 }`,
      `add element ${T6} service_nodeports { tcp . 30080 : goto npext_tcp_1 }`,
    ],
  },
  {
    name: 'IPv6: loadBalancerSourceRanges; the load-balancer IP itself is allowed as a /128',
    in: input6([svc6({ loadBalancerIPs: ['2001:db8:1::10'], loadBalancerSourceRanges: ['2001:db8:2::/64', '2001:db8::7/128'] })], { 'ns1/svc1:http': [B6] }, { nodeIPs: ['2001:db8::7'] }),
    want: [
      `add map ${T6} dnat_tcp_1 ${DNAT6_ADDR}`,
      `add chain ${T6} ext_tcp_1`,
      `add chain ${T6} svc_tcp_1`,
      `add rule ${T6} ext_tcp_1 ${MARK} goto svc_tcp_1`,
      ...svcChain('svc_tcp_1', 1, V6),
      `add element ${T6} cluster_ips { fd00:10:96::a }`,
      `add element ${T6} dnat_tcp_1 { fd00:10:96::a . tcp . 80 . 0 : fd00:244:2::6 . 8080, 2001:db8:1::10 . tcp . 80 . 0 : fd00:244:2::6 . 8080 }`,
      `add element ${T6} firewall_allow { 2001:db8:1::10 . tcp . 80 . 2001:db8:2::/64, 2001:db8:1::10 . tcp . 80 . 2001:db8::7/128, 2001:db8:1::10 . tcp . 80 . 2001:db8:1::10/128 }`,
      `add element ${T6} firewall_ips { 2001:db8:1::10 . tcp . 80 }`,
      `add element ${T6} service_ips { fd00:10:96::a . tcp . 80 : goto svc_tcp_1, 2001:db8:1::10 . tcp . 80 : goto ext_tcp_1 }`,
    ],
  },
  {
    name: 'IPv6: no endpoints: rejected in the filter chains',
    in: input6([svc6()], {}),
    want: [`add element ${T6} cluster_ips { fd00:10:96::a }`, `add element ${T6} no_endpoint_services { fd00:10:96::a . tcp . 80 : goto reject_packet }`],
  },
  {
    name: 'IPv6: ClientIP affinity remembers clients in ipv6_addr sets',
    in: input6([svc6({ sessionAffinity: 'ClientIP', stickySeconds: 60 })], { 'ns1/svc1:http': [B6] }),
    want: [
      `add set ${T6} affinity_tcp_1_0_t60 { type ipv6_addr . ipv6_addr . inet_proto . inet_service; flags dynamic,timeout; timeout 60s; }`,
      `add map ${T6} dnat_tcp_1 ${DNAT6_ADDR}`,
      `add chain ${T6} svc_pick_tcp_1_0_t60`,
      `add chain ${T6} svc_sticky_tcp_1_t60`,
      `add rule ${T6} svc_pick_tcp_1_0_t60 update @affinity_tcp_1_0_t60 { ip6 saddr . ${V6.KEY} }`,
      `add rule ${T6} svc_pick_tcp_1_0_t60 dnat ip6 to ${V6.KEY} . numgen random mod 1 map @dnat_tcp_1`,
      `add rule ${T6} svc_sticky_tcp_1_t60 ip6 saddr != ${V6.pods} ${MARK}`,
      `add rule ${T6} svc_sticky_tcp_1_t60 ip6 saddr . ${V6.KEY} @affinity_tcp_1_0_t60 goto svc_pick_tcp_1_0_t60`,
      `add rule ${T6} svc_sticky_tcp_1_t60 numgen random mod 1 vmap { 0 : goto svc_pick_tcp_1_0_t60 }`,
      `add element ${T6} cluster_ips { fd00:10:96::a }`,
      `add element ${T6} dnat_tcp_1 { fd00:10:96::a . tcp . 80 . 0 : fd00:244:2::6 . 8080 }`,
      `add element ${T6} service_ips { fd00:10:96::a . tcp . 80 : goto svc_sticky_tcp_1_t60 }`,
    ],
  },
];

describe('proxy nftables generator', () => {
  for (const c of [...cases, ...cases6]) {
    it(c.name, () => {
      expect(delta(c.in)).to.deep.equal(c.want);
      // And nft (the fake, with the kernel's checks) takes it, with every verdict leading to a complete map.
      const nft = new FakeNft(c.in.family);
      nft.applyNow(fullTransaction(buildRuleset(c.in)));
      expect(nft.checkInvariants()).to.deep.equal([]);
    });
  }

  it('marks with another masquerade bit when given one (12: 0x1000), everywhere', () => {
    const text = fullTransaction(buildRuleset(input([svc({ nodePort: 30080, externalTrafficPolicy: 'Local' })], { 'ns1/svc1:http': [B] }, { masqueradeAll: true, masqueradeBit: 12 })));
    expect(text).to.not.include('0x4000');
    for (const want of [
      `add rule ${T} nat_postrouting meta mark & 0x1000 == 0 return`,
      `add rule ${T} nat_postrouting meta mark set meta mark ^ 0x1000`,
      `add rule ${T} nat_postrouting ct status dnat ip saddr . ip daddr @hairpin meta mark set meta mark | 0x1000`,
      `add rule ${T} svc_tcp_1 meta mark set meta mark | 0x1000`,
    ]) expect(lines(text)).to.include(want);
  });

  it('writes the fixed part of the table: hooks, dispatch chains, masquerading, rejects', () => {
    const text = fullTransaction(buildRuleset(input([], {}, { localhostNodePorts: true })));
    expect(lines(text).slice(0, 3)).to.deep.equal([`add table ${T}`, `delete table ${T}`, `add table ${T}`]);
    for (const want of [
      `add chain ${T} nat_prerouting { type nat hook prerouting priority dstnat; policy accept; }`,
      `add chain ${T} nat_output { type nat hook output priority -100; policy accept; }`,
      `add chain ${T} nat_postrouting { type nat hook postrouting priority srcnat; policy accept; }`,
      `add chain ${T} filter_input { type filter hook input priority filter; policy accept; }`,
      `add rule ${T} nat_prerouting jump services`,
      `add rule ${T} nat_output jump services`,
      `add rule ${T} services ${KEY} vmap @service_ips`,
      `add rule ${T} services fib daddr type local meta l4proto . th dport vmap @service_nodeports`,
      `add rule ${T} nat_postrouting ct status dnat ip saddr . ip daddr @hairpin ${MARK}`,
      `add rule ${T} nat_postrouting meta mark & 0x4000 == 0 return`,
      `add rule ${T} nat_postrouting meta mark set meta mark ^ 0x4000`,
      `add rule ${T} nat_postrouting masquerade fully-random`,
      `add rule ${T} external_policy_local ip saddr 10.244.0.0/16 ${KEY} vmap @external_cluster`,
      `add rule ${T} external_policy_local fib saddr type local ${MARK} ${KEY} vmap @external_cluster`,
      `add rule ${T} external_policy_local ${KEY} vmap @external_local`,
      `add rule ${T} filter_input ip saddr != 127.0.0.0/8 ip daddr 127.0.0.0/8 ct state new ct status & dnat == 0 drop`,
      `add rule ${T} filter_input ct state new ${KEY} vmap @no_endpoint_services`,
      `add rule ${T} filter_output ct state new ${KEY} vmap @no_endpoint_services`,
      `add rule ${T} filter_forward ct state new ${KEY} vmap @no_endpoint_services`,
      `add rule ${T} reject_packet reject`,
    ]) {
      expect(lines(text)).to.include(want);
    }
  });

  it('after DNAT, rejects a new connection still headed for a cluster IP (no such port) and drops one to an unallocated ServiceCIDR address', () => {
    const checks = (over: Partial<NftRulesInput>) =>
      lines(fullTransaction(buildRuleset(input([svc()], {}, over)))).filter((l) => l.includes('cluster_ips'));
    const common = [
      `add set ${T} cluster_ips { type ipv4_addr; }`,
      `add chain ${T} cluster_ips_check`,
      `add rule ${T} cluster_ips_check ip daddr @cluster_ips reject`,
    ];
    const jumps = [
      `add rule ${T} filter_forward ct state new jump cluster_ips_check`,
      `add rule ${T} filter_output ct state new jump cluster_ips_check`,
      `add element ${T} cluster_ips { 10.96.0.10 }`,
    ];
    expect(checks({})).to.have.members([...common, ...jumps]);
    // IPv6 CIDRs of a dual-stack cluster are not this table's.
    expect(checks({ serviceCIDRs: ['10.96.0.0/12', 'fd00:10:96::/112'] })).to.have.members([...common, ...jumps, `add rule ${T} cluster_ips_check ip daddr { 10.96.0.0/12 } drop`]);
    // The filter hooks run after the nat ones (priority filter > dstnat): a DNATed connection no longer has the cluster IP.
    const text = lines(fullTransaction(buildRuleset(input([], {}))));
    expect(text).to.include(`add chain ${T} filter_output { type filter hook output priority filter; policy accept; }`);
    expect(text.indexOf(`add rule ${T} filter_output ct state new ${KEY} vmap @no_endpoint_services`)).to.be.lessThan(text.indexOf(`add rule ${T} filter_output ct state new jump cluster_ips_check`));
  });

  it('node ports: all local addresses but 127/8 unless localhost node ports; or only the given node IPs', () => {
    const rule = (over: Partial<NftRulesInput>) =>
      lines(fullTransaction(buildRuleset(input([], {}, over)))).filter((l) => l.includes('vmap @service_nodeports') || l.includes('vmap @no_endpoint_nodeports'));
    expect(rule({ localhostNodePorts: false })).to.deep.equal([
      `add rule ${T} filter_input ct state new fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @no_endpoint_nodeports`,
      `add rule ${T} services fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @service_nodeports`,
    ]);
    expect(rule({ nodeIPs: ['127.0.0.1', '192.0.2.10'], localhostNodePorts: true })[1]).to.equal(
      `add rule ${T} services ip daddr { 127.0.0.1, 192.0.2.10 } meta l4proto . th dport vmap @service_nodeports`,
    );
    expect(rule({ nodeIPs: ['127.0.0.1', '192.0.2.10'], localhostNodePorts: false })[1]).to.equal(
      `add rule ${T} services ip daddr 192.0.2.10 meta l4proto . th dport vmap @service_nodeports`,
    );
    expect(rule({ nodeIPs: ['127.0.0.1'], localhostNodePorts: false })).to.deep.equal([]);
  });

  it('IPv6: the fixed part in table ip6 nodelet, with ip6 matches, the IPv6 ServiceCIDRs, and no localhost node ports even when asked for', () => {
    const text = lines(fullTransaction(buildRuleset(input6([], {}, { serviceCIDRs: ['10.96.0.0/12', 'fd00:10:96::/112'] }))));
    expect(text.slice(0, 3)).to.deep.equal([`add table ${T6}`, `delete table ${T6}`, `add table ${T6}`]);
    for (const want of [
      `add set ${T6} cluster_ips { type ipv6_addr; }`,
      `add set ${T6} hairpin { type ipv6_addr . ipv6_addr; }`,
      `add set ${T6} firewall_allow { type ipv6_addr . inet_proto . inet_service . ipv6_addr; flags interval; }`,
      `add map ${T6} service_ips { type ipv6_addr . inet_proto . inet_service : verdict; }`,
      `add map ${T6} service_nodeports { type inet_proto . inet_service : verdict; }`,
      `add rule ${T6} services ${V6.KEY} vmap @service_ips`,
      // ::1 is never a node port address (upstream: IPv6 localhost node ports do not work).
      `add rule ${T6} services fib daddr type local ip6 daddr != ::1 meta l4proto . th dport vmap @service_nodeports`,
      `add rule ${T6} filter_input ct state new ${V6.KEY} vmap @no_endpoint_services`,
      `add rule ${T6} filter_input ct state new fib daddr type local ip6 daddr != ::1 meta l4proto . th dport vmap @no_endpoint_nodeports`,
      `add rule ${T6} nat_postrouting ct status dnat ip6 saddr . ip6 daddr @hairpin ${MARK}`,
      `add rule ${T6} external_policy_local ip6 saddr ${V6.pods} ${V6.KEY} vmap @external_cluster`,
      `add rule ${T6} firewall_prerouting ${V6.KEY} @firewall_ips ${V6.KEY} . ip6 saddr != @firewall_allow drop`,
      `add rule ${T6} cluster_ips_check ip6 daddr @cluster_ips reject`,
      `add rule ${T6} cluster_ips_check ip6 daddr { fd00:10:96::/112 } drop`,
    ]) {
      expect(text).to.include(want);
    }
    // Nothing of IPv4: no martian guard for 127.0.0.0/8, no ip matches, no IPv4 keys or CIDRs.
    expect(text.filter((l) => /127\.|\bip [sd]addr|ipv4_addr|10\.96\./.test(l))).to.deep.equal([]);
    // Given node IPs, ::1 is left out.
    expect(lines(fullTransaction(buildRuleset(input6([], {}, { nodeIPs: ['::1', '2001:db8::7'] })))).filter((l) => l.includes('vmap @service_nodeports'))).to.deep.equal([
      `add rule ${T6} services ip6 daddr 2001:db8::7 meta l4proto . th dport vmap @service_nodeports`,
    ]);
  });

  it('has as many chains for 200 services as for 2 with the same endpoint counts', () => {
    const many = (n: number) => {
      const services = Array.from({ length: n }, (_, i) => svc({ name: `s${String(i).padStart(3, '0')}`, clusterIPs: [`10.96.1.${i}`], nodePort: 30000 + i }));
      const eps = Object.fromEntries(services.map((s, i) => [`ns1/${s.name}:http`, i % 2 ? [A] : [A, B]]));
      return buildRuleset(input(services, eps));
    };
    const small = many(2);
    const big = many(200);
    expect([...big.chains.keys()]).to.deep.equal([...small.chains.keys()]);
    expect(big.maps.get('dnat_tcp_2')?.elements.size).to.equal(200);
    const nft = new FakeNft();
    nft.applyNow(fullTransaction(big));
    expect(nft.checkInvariants()).to.deep.equal([]);
  });
});
