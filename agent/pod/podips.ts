// A pod's IPs as the kubelet reports them (pure).
import { isIPv4, isIPv6 } from 'node:net';
import type { PodSandboxNetworkStatus } from '../../cri/api.ts';
import type { RuntimeSandbox } from './types.ts';

/** Pod IPs as upstream's sortPodIPs: at most one per family, the node's primary family first. */
export function sortPodIPs(podIPs: readonly string[], hostIPs: readonly string[]): string[] {
  const v6First = hostIPs[0] !== undefined && isIPv6(hostIPs[0]);
  const primary = podIPs.find(v6First ? isIPv6 : isIPv4);
  const secondary = podIPs.find(v6First ? isIPv4 : isIPv6);
  return [primary, secondary].filter((x): x is string => x !== undefined);
}

/** A sandbox's IPs (none with host networking or when not ready), the node's primary family first. */
export function sandboxIPs(sandbox: Pick<RuntimeSandbox, 'ip' | 'additionalIps'> | undefined, hostIPs: readonly string[]): string[] {
  if (!sandbox?.ip) return [];
  return sortPodIPs([sandbox.ip, ...(sandbox.additionalIps ?? [])], hostIPs);
}

/** A CRI sandbox network status as addresses: ip ('' when none) and the additional ones. */
export function networkIPs(net: PodSandboxNetworkStatus | undefined): { ip: string; additionalIps: string[] } {
  return { ip: net?.ip ?? '', additionalIps: (net?.additionalIps ?? []).map((a) => a.ip).filter(Boolean) };
}
