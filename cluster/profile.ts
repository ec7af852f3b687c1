// A cluster profile names everything one local cluster owns: network namespaces,
// links, addresses, ports and directories. `up` (make up) and `test` (make test)
// differ in every one of them, so both can run on one machine at once.
// Addresses are ones this sandbox creates itself; nothing routes beyond them.
export interface ClusterProfile {
  readonly name: string;
  /** Prefix of netns and link names (link names must stay <= 15 chars). */
  readonly prefix: string;
  readonly stateDir: string;
  readonly runDir: string;
  readonly bridge: string;
  /** /24 of the node network; .1 is the host (control plane), .10+i node i. */
  readonly nodeNet: string;
  readonly serviceCIDR: string;
  /** The cluster's IPv6 service range (dual-stack Services get their second cluster IP here); routed into the node's sink too. */
  readonly serviceCIDRv6: string;
  /** /64 beside nodeNet: node i has ::10+i on its eth0 (no host side; tests reach it from inside the node). */
  readonly nodeNetv6: string;
  /** /16; node i gets <a>.<b>.i.0/24. */
  readonly clusterCIDR: string;
  /** The pods' IPv6 range (a /56 of ULA beside nodeNetv6); node i gets its i-th /64 (dockerd --fixed-cidr-v6). */
  readonly clusterCIDRv6: string;
  readonly apiserverPort: number;
  readonly etcdClientPort: number;
  readonly etcdPeerPort: number;
  readonly controllerManagerPort: number;
  readonly schedulerPort: number;
}

const base = (name: string, prefix: string, net: number, pod: number, portBase: number): ClusterProfile =>
  Object.freeze({
    name,
    prefix,
    stateDir: `/var/lib/nodelet/${name}`,
    runDir: `/run/nodelet/${name}`,
    bridge: `${prefix}-br0`,
    nodeNet: `10.${net}.0.0/24`,
    serviceCIDR: '10.96.0.0/12',
    serviceCIDRv6: `fd00:${net}:96::/112`,
    nodeNetv6: `fd00:${net}::/64`,
    clusterCIDR: `10.${pod}.0.0/16`,
    clusterCIDRv6: `fd00:${net}:244::/56`,
    apiserverPort: portBase + 443,
    etcdClientPort: portBase + 379,
    etcdPeerPort: portBase + 380,
    controllerManagerPort: portBase + 257,
    schedulerPort: portBase + 259,
  });

export const profiles: Readonly<Record<string, ClusterProfile>> = Object.freeze({
  up: base('up', 'nl', 213, 244, 6000),
  test: base('test', 'nlt', 214, 245, 16000),
  // For a developer's own test runs beside `make test` (NODELET_TEST_PROFILE=dev).
  dev: base('dev', 'nld', 215, 246, 26000),
  // More of the same, so parallel development sessions do not share a cluster.
  dev2: base('dev2', 'nl2', 216, 247, 27000),
  dev3: base('dev3', 'nl3', 217, 248, 28000),
  dev4: base('dev4', 'nl4', 218, 249, 29000),
  dev5: base('dev5', 'nl5', 219, 250, 30000),
  dev6: base('dev6', 'nl6', 220, 251, 31000),
  dev7: base('dev7', 'nl7', 221, 252, 32000),
  dev8: base('dev8', 'nl8', 222, 253, 33000),
});

export function profileByName(name: string): ClusterProfile {
  const p = profiles[name];
  if (!p) throw new Error(`unknown cluster profile "${name}" (known: ${Object.keys(profiles).join(', ')})`);
  return p;
}

function octets(cidr: string): number[] {
  return cidr.split('/')[0]!.split('.').map(Number);
}

export const hostIP = (p: ClusterProfile): string => octets(p.nodeNet).slice(0, 3).concat(1).join('.');
export const nodeIP = (p: ClusterProfile, i: number): string => octets(p.nodeNet).slice(0, 3).concat(10 + i).join('.');
/** Node i's IPv6 address (ULA, RFC 4193): ::a for node 0, as nodeIP's .10. */
export const nodeIPv6 = (p: ClusterProfile, i: number): string => `${p.nodeNetv6.split('::')[0]}::${(10 + i).toString(16)}`;
export const podCIDR = (p: ClusterProfile, i: number): string => {
  const [a, b] = octets(p.clusterCIDR);
  return `${a}.${b}.${i}.0/24`;
};
/** Node i's IPv6 pod range: the i-th /64 of clusterCIDRv6 (the /56 leaves the low 8 bits of the fourth group to i). */
export const podCIDRv6 = (p: ClusterProfile, i: number): string => `${p.clusterCIDRv6.split('::')[0]}:${i.toString(16)}::/64`;
/** First address of a CIDR plus n (the service CIDR's .1 is the kubernetes Service). */
export const cidrAddr = (cidr: string, n: number): string => {
  const o = octets(cidr);
  const v = ((o[0]! << 24) | (o[1]! << 16) | (o[2]! << 8) | o[3]!) + n;
  return [v >>> 24, (v >>> 16) & 255, (v >>> 8) & 255, v & 255].join('.');
};
export const nodeName = (p: ClusterProfile, i: number): string => (p.name === 'up' ? `node${i}` : `${p.prefix}-node${i}`);
export const netnsName = (p: ClusterProfile, i: number): string => `${p.prefix}-node${i}`;
export const apiserverURL = (p: ClusterProfile): string => `https://${hostIP(p)}:${p.apiserverPort}`;
