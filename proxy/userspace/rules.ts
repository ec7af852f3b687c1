// The pure rule generator of the userspace proxy: the service ports and the
// proxy port each one listens on -> iptables-restore text that sends service
// traffic to those ports, in the chains and shape of upstream's userspace
// mode (pkg/proxy/userspace/proxier.go, Kubernetes <= 1.25):
//
//   nat KUBE-PORTALS-CONTAINER  (from PREROUTING: traffic from pods and outside)
//   nat KUBE-PORTALS-HOST       (from OUTPUT: traffic from this host)
//   nat KUBE-NODEPORT-CONTAINER (last in PREROUTING, dst-type LOCAL)
//   nat KUBE-NODEPORT-HOST      (last in OUTPUT, dst-type LOCAL)
//   filter KUBE-NODEPORT-NON-LOCAL (from INPUT: accept new connections to the proxy ports)
//
// Traffic that enters from an interface is REDIRECTed to the proxy port when
// the proxy listens on every address, else DNATed to the listen address.
// Traffic from the host itself is always DNATed (REDIRECT would answer from
// another address than the one asked), to the host IP when the proxy
// listens on every address.
//
// Unlike upstream, which added and deleted single rules, every sync rewrites
// the five chains with one `iptables-restore --noflush` (declaring a chain
// flushes it). Upstream's `-m physdev ! --physdev-is-in` on external-IP
// portals is left out: it needs br_netfilter and only matters for bridged
// traffic to external IPs.
import type { JumpRule } from '../iptables/rules.ts';
import { quoteArg, type Table } from '../iptables/iptables.ts';
import type { Protocol } from '../types.ts';

export const PORTALS_CONTAINER = 'KUBE-PORTALS-CONTAINER';
export const PORTALS_HOST = 'KUBE-PORTALS-HOST';
export const NODEPORT_CONTAINER = 'KUBE-NODEPORT-CONTAINER';
export const NODEPORT_HOST = 'KUBE-NODEPORT-HOST';
export const NODEPORT_NON_LOCAL = 'KUBE-NODEPORT-NON-LOCAL';

/** One proxied service port, as the generator needs it. */
export interface PortalService {
  /** Service port key ("ns/name:port"), used as the rule comment. */
  name: string;
  protocol: Protocol;
  clusterIPs: readonly string[];
  port: number;
  /** 0 = none. */
  nodePort: number;
  externalIPs: readonly string[];
  loadBalancerIPs: readonly string[];
  /** The port the proxy listens on for this service port. */
  proxyPort: number;
}

export interface PortalInput {
  services: readonly PortalService[];
  /** The address the proxy sockets are bound to; 0.0.0.0 = all. */
  listenIP: string;
  /** Where host traffic is DNATed when listenIP is 0.0.0.0 (upstream's hostIP: a non-loopback address of the node). */
  hostIP: string;
}

export interface PortalOutput {
  /** nat and filter blocks, for one restore. */
  text: string;
  /** Jumps from builtin chains into ours; the adapter ensures them (prepend or append as given). */
  jumps: PortalJump[];
}

export interface PortalJump extends JumpRule {
  position: 'prepend' | 'append';
}

function host(ip: string): string {
  return ip.includes('/') ? ip : `${ip}/32`;
}

const ANY = '0.0.0.0';

/**
 * `-d IP/32 -p tcp -m comment --comment "x" -m tcp --dport N [extra]`: upstream's
 * matches in its order, as iptables-save prints them (address and protocol first).
 */
function match(sp: PortalService, dst: string | undefined, dport: number, extra?: string): string {
  const proto = sp.protocol.toLowerCase();
  return [dst && `-d ${host(dst)}`, `-p ${proto}`, `-m comment --comment ${quoteArg(sp.name)}`, `-m ${proto} --dport ${dport}`, extra]
    .filter((w): w is string => typeof w === 'string' && w !== '')
    .join(' ');
}

/** Upstream's main entry for every service port (the cluster IPs, external IPs, load-balancer IPs, node port). */
export function portalRules(input: PortalInput): PortalOutput {
  const listenAny = input.listenIP === ANY;
  const toContainer = (p: number) => (listenAny ? `-j REDIRECT --to-ports ${p}` : `-j DNAT --to-destination ${input.listenIP}:${p}`);
  const toHost = (p: number) => `-j DNAT --to-destination ${listenAny ? input.hostIP : input.listenIP}:${p}`;

  const container: string[] = [];
  const hostRules: string[] = [];
  const npContainer: string[] = [];
  const npHost: string[] = [];
  const nonLocal: string[] = [];
  const services = [...input.services].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : a.protocol < b.protocol ? -1 : a.protocol > b.protocol ? 1 : 0));
  for (const sp of services) {
    const p = sp.proxyPort;
    // In upstream's order: cluster IPs, external IPs, load-balancer IPs. An external IP is
    // only taken from the host when it is one of the host's own addresses.
    const portals = [
      ...sp.clusterIPs.map((ip) => ({ ip, hostExtra: undefined })),
      ...sp.externalIPs.map((ip) => ({ ip, hostExtra: '-m addrtype --dst-type LOCAL' })),
      ...sp.loadBalancerIPs.map((ip) => ({ ip, hostExtra: undefined })),
    ];
    for (const { ip, hostExtra } of portals) {
      container.push(`-A ${PORTALS_CONTAINER} ${match(sp, ip, sp.port)} ${toContainer(p)}`);
      hostRules.push(`-A ${PORTALS_HOST} ${match(sp, ip, sp.port, hostExtra)} ${toHost(p)}`);
    }
    if (sp.nodePort !== 0) {
      npContainer.push(`-A ${NODEPORT_CONTAINER} ${match(sp, undefined, sp.nodePort)} ${toContainer(p)}`);
      npHost.push(`-A ${NODEPORT_HOST} ${match(sp, undefined, sp.nodePort)} ${toHost(p)}`);
      nonLocal.push(`-A ${NODEPORT_NON_LOCAL} ${match(sp, undefined, p, '-m state --state NEW')} -j ACCEPT`);
    }
  }

  const natChains = [PORTALS_CONTAINER, PORTALS_HOST, NODEPORT_CONTAINER, NODEPORT_HOST];
  const text = [
    '*nat',
    ...natChains.map((c) => `:${c} - [0:0]`),
    ...container,
    ...hostRules,
    ...npContainer,
    ...npHost,
    'COMMIT',
    '*filter',
    `:${NODEPORT_NON_LOCAL} - [0:0]`,
    ...nonLocal,
    'COMMIT',
    '',
  ].join('\n');
  return { text, jumps: portalJumps() };
}

const CLUSTER_IPS_NOTE = 'handle ClusterIPs; NOTE: this must be before the NodePort rules';
const NODEPORTS_NOTE = 'handle service NodePorts; NOTE: this must be the last rule in the chain';
const NON_LOCAL_NOTE = 'Ensure that non-local NodePort traffic can flow';

/** As upstream's iptablesInit: portals first in PREROUTING/OUTPUT, node ports last (they match broadly). */
export function portalJumps(): PortalJump[] {
  const jump = (table: Table, chain: string, position: 'prepend' | 'append', pre: string[], note: string, target: string): PortalJump => ({
    table,
    chain,
    position,
    rule: [...pre, '-m', 'comment', '--comment', note, '-j', target],
  });
  const local = ['-m', 'addrtype', '--dst-type', 'LOCAL'];
  return [
    jump('nat', 'PREROUTING', 'prepend', [], CLUSTER_IPS_NOTE, PORTALS_CONTAINER),
    jump('nat', 'OUTPUT', 'prepend', [], CLUSTER_IPS_NOTE, PORTALS_HOST),
    jump('nat', 'PREROUTING', 'append', local, NODEPORTS_NOTE, NODEPORT_CONTAINER),
    jump('nat', 'OUTPUT', 'append', local, NODEPORTS_NOTE, NODEPORT_HOST),
    jump('filter', 'INPUT', 'prepend', [], NON_LOCAL_NOTE, NODEPORT_NON_LOCAL),
  ];
}
