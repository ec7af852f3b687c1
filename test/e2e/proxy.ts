// The e2e flows need the node's service proxy, which the integration fixture
// leaves off (the proxy suite runs its own in every mode). Started as `nodelet
// up` starts it; stopped by its pid file; its rules removed from outside (as
// kube-proxy --cleanup would), so the proxy suite starts from a clean node.
import type { ClusterProfile } from '../../cluster/profile.ts';
import { daemonRunning, stopDaemon, waitFor } from '../../cluster/daemon.ts';
import { inNode, type NodeSandbox } from '../../cluster/sandbox.ts';
import { proxyPidFile, startNodeProxy } from '../../cluster/up.ts';

/** Removes every KUBE-* rule and chain and nftables mode's tables from the node, both IP families. */
export const CLEANUP_RULES = `for ipt in iptables ip6tables; do for t in nat filter; do
  $ipt-save -t $t | grep -E '^-A (PREROUTING|OUTPUT|POSTROUTING|INPUT|FORWARD) .*-j KUBE-' | sed 's/^-A /-D /' | while read -r r; do eval $ipt -w -t $t $r; done
  chains=$($ipt-save -t $t | awk '/^:KUBE-/{print substr($1,2)}')
  for c in $chains; do $ipt -w -t $t -F $c; done
  for c in $chains; do $ipt -w -t $t -X $c; done
done; done
nft delete table ip nodelet 2>/dev/null || true
nft delete table ip6 nodelet 2>/dev/null || true`;

export async function cleanupProxyRules(n: NodeSandbox): Promise<void> {
  await inNode(n, 'sh', ['-c', CLEANUP_RULES], { allowFail: true, timeoutMs: 60_000 });
}

/** Starts the node's proxy from clean rules and waits for its healthz (port 10256 on the node IP). */
export async function startProxy(p: ClusterProfile, name: string, n: NodeSandbox): Promise<void> {
  if (daemonRunning(proxyPidFile(p, n))) await stopDaemon(proxyPidFile(p, n));
  await cleanupProxyRules(n);
  startNodeProxy(p, name, n);
  await waitFor('the node proxy healthz to answer', async () => {
    if (!daemonRunning(proxyPidFile(p, n))) throw new Error('the proxy exited');
    const r = await fetch(`http://${n.nodeIP}:10256/healthz`, { signal: AbortSignal.timeout(2000) }).catch(() => undefined);
    return r?.status === 200;
  }, 60_000, 300);
}

export async function stopProxy(p: ClusterProfile, n: NodeSandbox): Promise<void> {
  await stopDaemon(proxyPidFile(p, n));
  await cleanupProxyRules(n);
}
