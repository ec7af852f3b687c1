// What the proxy reads of its own Node object, asked for until it is there
// (up to 30 s, as upstream): for --nodeport-addresses primary the node's
// primary IP (InternalIP, else ExternalIP; without one, 127.0.0.1 with a
// warning, upstream's fallback too), for --detect-local-mode=NodeCIDR its
// pod CIDR.
import type { V1Node } from '@kubernetes/client-node';
import net from 'node:net';
import type { Clock } from '../lib/clock.ts';
import { describeError } from '../lib/errors.ts';
import type { Logger } from '../lib/log.ts';

/** Gets a Node (undefined: not registered). */
export type NodeGetter = (name: string) => Promise<V1Node | undefined>;

/** The node's primary IPv4 address: its first InternalIP, else its first ExternalIP. */
export function primaryIPv4(node: V1Node | undefined): string | undefined {
  const addrs = node?.status?.addresses ?? [];
  for (const type of ['InternalIP', 'ExternalIP']) {
    const a = addrs.find((x) => x.type === type && net.isIPv4(x.address));
    if (a) return a.address;
  }
  return undefined;
}

/** How long a field of the Node is asked for, as upstream. */
export const NODE_WAIT_MS = 30_000;
export const LOOPBACK = '127.0.0.1';

/**
 * What `pick` finds in this node's Node object, asked for until it is there
 * (the node registers, the controller assigns a pod CIDR), up to 30 s as
 * upstream; undefined after that, with why.
 */
export async function fromNode<T>(get: NodeGetter, name: string, pick: (node: V1Node) => T | undefined, clock: Clock, signal?: AbortSignal): Promise<{ value: T } | { why: string }> {
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

export async function primaryNodeIP(get: NodeGetter, name: string, clock: Clock, log: Logger, signal?: AbortSignal): Promise<string> {
  const r = await fromNode(get, name, primaryIPv4, clock, signal);
  if ('value' in r) {
    log.info('node port addresses: the node\'s primary IP', { node: name, ip: r.value });
    return r.value;
  }
  log.warn('cannot determine this node\'s primary IP; NodePorts answer on 127.0.0.1 only (set --nodeport-addresses to CIDRs)', { node: name, reason: r.why });
  return LOOPBACK;
}

/** The node's IPv4 pod CIDR (spec.podCIDRs, else spec.podCIDR), for --detect-local-mode=NodeCIDR. */
export function podCIDRv4(node: V1Node | undefined): string | undefined {
  const cidrs = node?.spec?.podCIDRs ?? (node?.spec?.podCIDR ? [node.spec.podCIDR] : []);
  return cidrs.find((c) => net.isIPv4(c.split('/')[0] ?? ''));
}
