// What the proxy reads of its own Node object, asked for until it is there
// (up to 30 s, as upstream): for --nodeport-addresses primary the node's
// primary IP (InternalIP, else ExternalIP; without one, 127.0.0.1 with a
// warning, upstream's fallback too), for --detect-local-mode=NodeCIDR its
// pod CIDR.
import type { V1Node } from '@kubernetes/client-node';
import type { Clock } from '../lib/clock.ts';
import { canonicalIP, ipFamilyOf, type IPFamily } from '../lib/ip.ts';
import { describeError } from '../lib/errors.ts';
import type { Logger } from '../lib/log.ts';

/** Gets a Node (undefined: not registered). */
export type NodeGetter = (name: string) => Promise<V1Node | undefined>;

/** The node's primary address of a family: its first InternalIP of the family, else its first ExternalIP. */
export function primaryIP(node: V1Node | undefined, family: IPFamily = 'IPv4'): string | undefined {
  const addrs = node?.status?.addresses ?? [];
  for (const type of ['InternalIP', 'ExternalIP']) {
    const a = addrs.find((x) => x.type === type && ipFamilyOf(x.address) === family);
    if (a) return a.address;
  }
  return undefined;
}

/** The node's IPs in upstream's order (GetNodeHostIPs): its InternalIPs, then its ExternalIPs. */
export function nodeHostIPs(node: V1Node | undefined): string[] {
  const addrs = node?.status?.addresses ?? [];
  const out: string[] = [];
  for (const type of ['InternalIP', 'ExternalIP']) for (const a of addrs) if (a.type === type && ipFamilyOf(a.address)) out.push(a.address);
  return out;
}

/**
 * The primary IP family, as upstream's detectNodeIPs: a --bind-address that
 * is not 0.0.0.0 or ::, else the node's first IP, else IPv4 (the node IP is
 * then 127.0.0.1, which upstream warns about). Pure.
 */
export function detectPrimaryFamily(nodeIPs: readonly string[], bindAddress: string | undefined): { family: IPFamily; from: 'bind-address' | 'node' | 'default' } {
  const bind = bindAddress !== undefined && !isUnspecified(bindAddress) ? ipFamilyOf(bindAddress) : undefined;
  if (bind) return { family: bind, from: 'bind-address' };
  const first = nodeIPs[0] !== undefined ? ipFamilyOf(nodeIPs[0]) : undefined;
  return first ? { family: first, from: 'node' } : { family: 'IPv4', from: 'default' };
}

function isUnspecified(ip: string): boolean {
  return ip === '0.0.0.0' || canonicalIP(ip) === '::';
}

/** How long a field of the Node is asked for, as upstream. */
export const NODE_WAIT_MS = 30_000;
export const LOOPBACK = '127.0.0.1';
/** Upstream's fallback for each family when the node's IP is unknown. */
export const LOOPBACKS: Readonly<Record<IPFamily, string>> = { IPv4: LOOPBACK, IPv6: '::1' };

/**
 * What `pick` finds in this node's Node object, asked for until it is there
 * (the node registers, the controller assigns a pod CIDR), up to 30 s as
 * upstream; undefined after that, with why. `known`: the Node as start-up
 * already got it, looked at before asking again.
 */
export async function fromNode<T>(
  get: NodeGetter,
  name: string,
  pick: (node: V1Node) => T | undefined,
  clock: Clock,
  signal?: AbortSignal,
  known?: V1Node,
): Promise<{ value: T } | { why: string }> {
  const already = known ? pick(known) : undefined;
  if (already !== undefined) return { value: already };
  const deadline = clock.now() + NODE_WAIT_MS;
  let why = 'the Node has no such field';
  for (;;) {
    try {
      const node = await get(name);
      const value = node ? pick(node) : undefined;
      if (value !== undefined) return { value };
      if (!node) why = 'the Node is not registered';
    } catch (err) {
      why = describeError(err);
    }
    if (clock.now() >= deadline || signal?.aborted) return { why };
    await clock.sleep(1000, signal);
  }
}

/**
 * The node's primary address of each family, for --nodeport-addresses
 * primary: the Node is asked for until it has one of the first (primary)
 * family, as upstream's detectNodeIPs; the others come from the same Node,
 * and a family it has no address of gets its loopback (whose node ports
 * answer nowhere: IPv6 never, IPv4 only with localhost node ports), with a warning.
 */
export async function primaryNodeIPs(
  get: NodeGetter,
  name: string,
  families: readonly IPFamily[],
  clock: Clock,
  log: Logger,
  signal?: AbortSignal,
  known?: V1Node,
): Promise<Map<IPFamily, string>> {
  const primary = families[0] ?? 'IPv4';
  const r = await fromNode(get, name, (n) => (primaryIP(n, primary) !== undefined ? n : undefined), clock, signal, known);
  const node = 'value' in r ? r.value : undefined;
  const out = new Map<IPFamily, string>();
  for (const family of families) {
    const ip = primaryIP(node, family);
    if (ip) log.info("node port addresses: the node's primary IP", { node: name, ip, family });
    else {
      log.warn(`cannot determine this node's primary ${family} address; ${family} NodePorts answer on ${LOOPBACKS[family]} only (set --nodeport-addresses to CIDRs)`, {
        node: name,
        reason: 'why' in r ? r.why : `the Node has no ${family} address`,
      });
    }
    out.set(family, ip ?? LOOPBACKS[family]);
  }
  return out;
}

/** The node's pod CIDR of a family (spec.podCIDRs, else spec.podCIDR), for --detect-local-mode=NodeCIDR. */
export function podCIDROf(node: V1Node | undefined, family: IPFamily = 'IPv4'): string | undefined {
  const cidrs = node?.spec?.podCIDRs ?? (node?.spec?.podCIDR ? [node.spec.podCIDR] : []);
  return cidrs.find((c) => ipFamilyOf(c) === family);
}
