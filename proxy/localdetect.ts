// kube-proxy's --detect-local-mode: how the rules tell traffic from this
// cluster's pods (masqueraded to a cluster IP only when it is not; sent to
// any endpoint of a Local-policy service when it is). ClusterCIDR (the
// default) and NodeCIDR match the source address; BridgeInterface and
// InterfaceNamePrefix the input interface (locally made packets have none,
// so they count as not local, as upstream).
import { ipFamilyOf } from '../lib/ip.ts';

export type DetectLocalMode = 'ClusterCIDR' | 'NodeCIDR' | 'BridgeInterface' | 'InterfaceNamePrefix';
export const DETECT_LOCAL_MODES: readonly DetectLocalMode[] = ['ClusterCIDR', 'NodeCIDR', 'BridgeInterface', 'InterfaceNamePrefix'];

export type LocalDetector =
  | { mode: 'ClusterCIDR' | 'NodeCIDR'; cidr: string }
  | { mode: 'BridgeInterface'; iface: string }
  | { mode: 'InterfaceNamePrefix'; prefix: string };

/** iptables matches for "from a pod" and "not from a pod". */
export function iptablesLocalMatches(d: LocalDetector): { ifLocal: string; ifNotLocal: string } {
  switch (d.mode) {
    case 'BridgeInterface':
      return { ifLocal: `-i ${d.iface}`, ifNotLocal: `! -i ${d.iface}` };
    case 'InterfaceNamePrefix':
      return { ifLocal: `-i ${d.prefix}+`, ifNotLocal: `! -i ${d.prefix}+` };
    default:
      return { ifLocal: `-s ${d.cidr}`, ifNotLocal: `! -s ${d.cidr}` };
  }
}

/** nft matches for "from a pod" and "not from a pod" (a CIDR's match is `ip6 saddr` when it is IPv6). */
export function nftLocalMatches(d: LocalDetector): { local: string; notLocal: string } {
  switch (d.mode) {
    case 'BridgeInterface':
      return { local: `iifname "${d.iface}"`, notLocal: `iifname != "${d.iface}"` };
    case 'InterfaceNamePrefix':
      return { local: `iifname "${d.prefix}*"`, notLocal: `iifname != "${d.prefix}*"` };
    default: {
      const saddr = ipFamilyOf(d.cidr) === 'IPv6' ? 'ip6 saddr' : 'ip saddr';
      return { local: `${saddr} ${d.cidr}`, notLocal: `${saddr} != ${d.cidr}` };
    }
  }
}

/** The detector of a rules input: the one given, else the cluster CIDR's (undefined: none, nothing is "local"). */
export function detectorOf(input: { localDetector?: LocalDetector | undefined; clusterCIDR?: string | undefined }): LocalDetector | undefined {
  return input.localDetector ?? (input.clusterCIDR ? { mode: 'ClusterCIDR', cidr: input.clusterCIDR } : undefined);
}
