// --nodeport-addresses primary (kube-proxy 1.29+): NodePorts answer on the
// node's primary IP only. As upstream, that is the Node object's address
// (InternalIP, else ExternalIP), asked for until the node is registered, up
// to 30 s; without one, 127.0.0.1 with a warning (upstream's fallback too).
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

export const PRIMARY_WAIT_MS = 30_000;
export const LOOPBACK = '127.0.0.1';

export async function primaryNodeIP(get: NodeGetter, name: string, clock: Clock, log: Logger, signal?: AbortSignal): Promise<string> {
  const deadline = clock.now() + PRIMARY_WAIT_MS;
  let why = 'the Node has no InternalIP or ExternalIP';
  for (;;) {
    try {
      const node = await get(name);
      const ip = primaryIPv4(node);
      if (ip) {
        log.info('node port addresses: the node\'s primary IP', { node: name, ip });
        return ip;
      }
      if (!node) why = 'the Node is not registered';
    } catch (err) {
      why = describeError(err);
    }
    if (clock.now() >= deadline || signal?.aborted) break;
    await clock.sleep(1000, signal);
  }
  log.warn('cannot determine this node\'s primary IP; NodePorts answer on 127.0.0.1 only (set --nodeport-addresses to CIDRs)', { node: name, reason: why });
  return LOOPBACK;
}
