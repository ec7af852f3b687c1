// Which IP families the proxy serves, as upstream's platformCheckSupported
// and detectNodeIPs: each family whose tools work here and whose kernel
// support is on, the primary one first; both make a dual-stack proxy (one
// proxier per family, metaproxier.ts). The primary family comes from
// --bind-address or the Node's first IP, as upstream (nodeip.ts detectPrimaryFamily).
import { NodeletError } from '../lib/errors.ts';
import { ipFamilyOf, type IPFamily } from '../lib/ip.ts';
import type { KernelFiles } from './conntracklimits.ts';

export const DISABLE_IPV6 = '/proc/sys/net/ipv6/conf/all/disable_ipv6';

export type FamilySupport = Readonly<Record<IPFamily, boolean>>;

/** The first cluster CIDR's family, else IPv4 (the userspace mode, IPv4 only, warns when it is not). */
export function primaryFamily(clusterCIDR: string | undefined): IPFamily {
  return ipFamilyOf(clusterCIDR?.split(',')[0]?.trim() ?? '') ?? 'IPv4';
}

/** The families to proxy, primary first; the primary's support is required (as upstream). Pure. */
export function proxyFamilies(primary: IPFamily, support: FamilySupport): IPFamily[] {
  if (!support[primary]) throw new NodeletError('PROXY_FAMILY_UNSUPPORTED', `no support for the primary IP family ${primary} on this host`);
  const other: IPFamily = primary === 'IPv4' ? 'IPv6' : 'IPv4';
  return support[other] ? [primary, other] : [primary];
}

/**
 * What this host supports: `present(family)` says whether the mode's tools
 * work for it (ip6tables; nft does both), and IPv6 also needs the kernel's
 * IPv6 on (disable_ipv6 readable and not 1).
 */
export async function familySupport(files: KernelFiles, present: (family: IPFamily) => Promise<boolean>): Promise<FamilySupport> {
  const kernelIPv6 = await files.read(DISABLE_IPV6).then(
    (v) => v.trim() !== '1',
    () => false,
  );
  const [v4, v6] = await Promise.all([present('IPv4'), kernelIPv6 ? present('IPv6') : Promise.resolve(false)]);
  return { IPv4: v4, IPv6: v6 };
}
