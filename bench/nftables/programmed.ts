// "Is this endpoint in the rules yet?", asked of the kernel inside a proxy's
// network namespace, one way per proxy: each looks only at the one service's
// part of the ruleset, so a poll costs little even at 20k services.
//   nodelet nftables    the service's elements of its DNAT map (nft get element)
//   kube-proxy nftables its service chain (named in the service-ips map), listed
//   iptables modes      the endpoint's KUBE-SEP chain exists (same hash in both)
import { spawn } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { endpointChainName } from '../../proxy/iptables/rules.ts';
import { binariesFor } from '../../proxy/iptables/restore.ts';
import { dnatMapName, ipKeyword, TABLE } from '../../proxy/nftables/rules.ts';
import { servicePortKey } from '../../proxy/types.ts';
import { inNetns } from '../proxy/procs.ts';
import { BENCH_NAMESPACE, ENDPOINTS_PER_SERVICE, SERVICE_PORT, TARGET_PORT } from '../proxy/objects.ts';

export type ProxyName = 'nodelet-nftables' | 'nodelet-iptables' | 'kube-proxy-iptables' | 'kube-proxy-nftables';

export interface Target {
  /** The bench service's name (svc-0), its cluster IP, and the endpoint address looked for. */
  name: string;
  clusterIP: string;
  endpoint: string;
}

/** Returns a check that resolves true once `t.endpoint` is programmed for `t`'s service. */
export async function programmedCheck(proxy: ProxyName, netns: string, t: Target): Promise<() => Promise<boolean>> {
  const run = (cmd: string, args: string[]) => inNetns(netns, cmd, args, { allowFail: true, timeoutMs: 60_000 });
  switch (proxy) {
    case 'nodelet-nftables': {
      const map = dnatMapName('svc', 'tcp', ENDPOINTS_PER_SERVICE)!;
      const keys = Array.from({ length: ENDPOINTS_PER_SERVICE }, (_, j) => `${t.clusterIP} . tcp . ${SERVICE_PORT} . ${j}`).join(', ');
      return async () => {
        const r = await run('nft', ['get', 'element', ipKeyword('IPv4'), TABLE, map, `{ ${keys} }`]);
        // get element fails as a whole when one key is missing (mid-swap): not programmed yet.
        return r.code === 0 && r.stdout.includes(`${t.endpoint} . ${TARGET_PORT}`);
      };
    }
    case 'kube-proxy-nftables': {
      // The chain name holds a hash of the service port; the service-ips map names it.
      const r = await run('nft', ['get', 'element', 'ip', 'kube-proxy', 'service-ips', `{ ${t.clusterIP} . tcp . ${SERVICE_PORT} }`]);
      const chain = /goto\s+(\S+?)[\s,}]/.exec(r.stdout)?.[1]?.replace(/^"|"$/g, '');
      if (r.code !== 0 || !chain) throw new Error(`kube-proxy nftables: no service-ips element for ${t.clusterIP}: ${r.stderr.trim() || r.stdout.trim()}`);
      return async () => {
        const l = await run('nft', ['list', 'chain', 'ip', 'kube-proxy', chain]);
        // 1.37 DNATs through an inline map (`ip . port`); older releases jump to endpoint-…__ip/port chains.
        return l.code === 0 && (l.stdout.includes(`${t.endpoint} . ${TARGET_PORT}`) || l.stdout.includes(`__${t.endpoint}/`));
      };
    }
    case 'nodelet-iptables':
    case 'kube-proxy-iptables': {
      const chain = endpointChainName(servicePortKey(BENCH_NAMESPACE, t.name, ''), 'TCP', `${t.endpoint}:${TARGET_PORT}`);
      return async () => (await run(binariesFor('nft').iptables, ['-t', 'nat', '-S', chain])).code === 0;
    }
  }
}

/**
 * `nft monitor` in the namespace, started before a change: the kernel reports
 * each committed transaction, so the moment an endpoint shows up is known
 * without a poll's process start in between. Works for the iptables modes
 * too (iptables-nft writes through nf_tables; a new KUBE-SEP chain is an
 * `add chain` event).
 */
export interface Monitor {
  /** When (performance.now()) a line holding one of the needles was first seen, if yet. */
  seen(needles: readonly string[]): number | undefined;
  stop(): void;
}

export function startMonitor(netns: string): Monitor {
  const child = spawn('/usr/bin/nsenter', [`--net=/run/netns/${netns}`, '--', 'nft', 'monitor'], { stdio: ['ignore', 'pipe', 'ignore'] });
  const lines: Array<{ t: number; line: string }> = [];
  let rest = '';
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (chunk: string) => {
    const t = performance.now();
    const parts = (rest + chunk).split('\n');
    rest = parts.pop() ?? '';
    for (const line of parts) {
      lines.push({ t, line });
      if (lines.length > 5000) lines.splice(0, 1000); // only the latest matter; a sync's burst is bounded
    }
  });
  child.on('error', () => undefined);
  return {
    seen: (needles) => lines.find((l) => needles.some((n) => l.line.includes(n)))?.t,
    stop: () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    },
  };
}

/** What a change to `endpoint` looks like in the monitor's output, for each proxy's rules. */
export function monitorNeedles(name: string, endpoint: string): string[] {
  return [`${endpoint} . ${TARGET_PORT}`, `__${endpoint}/`, endpointChainName(servicePortKey(BENCH_NAMESPACE, name, ''), 'TCP', `${endpoint}:${TARGET_PORT}`)];
}
