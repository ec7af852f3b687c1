// Hairpin mode on a pod's bridge port, as the kubelet's --hairpin-mode=hairpin-veth
// did for Docker: a pod that reaches itself through its own Service is DNATed
// back to its own address, and br_netfilter then has the bridge send the frame
// out of the port it came in on, which a bridge port refuses unless its
// hairpin flag is on. Run in the network namespace of the bridge (where the
// agent and its dockerd run); the sandbox's side is read through its pid.
import { NodeletError } from '../../lib/errors.ts';
import type { Exec } from '../../lib/exec.ts';

/** The peer interface index of eth0, from `ip -o link show eth0` ("2: eth0@if17: <..."). */
export function peerIndex(ipLinkEth0: string): number | undefined {
  const m = /^\d+:\s+eth0@if(\d+):/m.exec(ipLinkEth0);
  return m ? Number(m[1]) : undefined;
}

/** The name of interface `index` in `ip -o link` output ("17: veth1a2b@if2: <...>"). */
export function interfaceName(ipLink: string, index: number): string | undefined {
  const m = new RegExp(`^${index}:\\s+([^:@\\s]+)[@:]`, 'm').exec(ipLink);
  return m?.[1];
}

/** Turns hairpin on for the host side of the veth whose other end is eth0 of the sandbox with `pid`. */
export async function enableHairpin(exec: Exec, pid: number): Promise<string> {
  const inner = await exec('nsenter', [`--net=/proc/${pid}/ns/net`, '--', 'ip', '-o', 'link', 'show', 'eth0'], { timeoutMs: 10_000 });
  const index = peerIndex(inner.stdout);
  if (index === undefined) throw new NodeletError('CRI_HAIRPIN_FAILED', `sandbox pid ${pid}: no veth behind eth0 (${inner.stdout.trim().slice(0, 120)})`);
  const links = await exec('ip', ['-o', 'link', 'show'], { timeoutMs: 10_000 });
  const name = interfaceName(links.stdout, index);
  if (!name) throw new NodeletError('CRI_HAIRPIN_FAILED', `sandbox pid ${pid}: interface ${index} not in this network namespace`);
  await exec('ip', ['link', 'set', 'dev', name, 'type', 'bridge_slave', 'hairpin', 'on'], { timeoutMs: 10_000 });
  return name;
}
