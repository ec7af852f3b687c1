// Approves the nodes' kubelet-serving CSRs, which the controller-manager signs
// but never approves by itself (upstream leaves that to the cluster's
// operator). `make up` and the test fixture run it after starting nodes: only
// CSRs for the kubernetes.io/kubelet-serving signer, requested by
// system:node:<name> in group system:nodes for one of our own nodes.
import type { ClusterPaths } from './controlplane.ts';
import { kubectl } from './controlplane.ts';
import { waitFor } from './daemon.ts';

export const KUBELET_SERVING_SIGNER = 'kubernetes.io/kubelet-serving';

export interface CsrItem {
  metadata?: { name?: string };
  spec?: { signerName?: string; username?: string; groups?: string[] };
  status?: { conditions?: Array<{ type?: string }>; certificate?: string };
}

/** The node a CSR is for when it is one of our nodes' serving CSRs; undefined otherwise. */
export function servingCsrNode(csr: CsrItem, nodes: ReadonlySet<string>): string | undefined {
  const s = csr.spec;
  if (s?.signerName !== KUBELET_SERVING_SIGNER || !s.username?.startsWith('system:node:') || !s.groups?.includes('system:nodes')) return undefined;
  const node = s.username.slice('system:node:'.length);
  return nodes.has(node) ? node : undefined;
}

const decided = (csr: CsrItem) => (csr.status?.conditions ?? []).some((c) => c.type === 'Approved' || c.type === 'Denied' || c.type === 'Failed');

/** Pending serving CSRs to approve, and the nodes that already have an approved one. */
export function planApprovals(items: readonly CsrItem[], nodes: ReadonlySet<string>): { approve: string[]; approvedNodes: Set<string> } {
  const approve: string[] = [];
  const approvedNodes = new Set<string>();
  for (const csr of items) {
    const node = servingCsrNode(csr, nodes);
    if (!node || !csr.metadata?.name) continue;
    if ((csr.status?.conditions ?? []).some((c) => c.type === 'Approved')) approvedNodes.add(node);
    else if (!decided(csr)) approve.push(csr.metadata.name);
  }
  return { approve, approvedNodes };
}

/**
 * Approves our nodes' pending serving CSRs until each of `nodes` has an
 * approved one or `timeoutMs` passes (then it says so and returns: the nodes
 * keep serving with their self-signed certificates).
 */
export async function approveServingCsrs(paths: ClusterPaths, nodes: readonly string[], log: (m: string) => void, timeoutMs = 30_000): Promise<void> {
  if (nodes.length === 0) return;
  const want = new Set(nodes);
  try {
    await waitFor(`kubelet-serving CSRs of ${nodes.join(', ')}`, async () => {
      const r = await kubectl(paths, ['get', 'csr', '-o', 'json'], { allowFail: true, timeoutMs: 10_000 });
      if (r.code !== 0) return false;
      const plan = planApprovals((JSON.parse(r.stdout) as { items?: CsrItem[] }).items ?? [], want);
      if (plan.approve.length) {
        await kubectl(paths, ['certificate', 'approve', ...plan.approve], { allowFail: true, timeoutMs: 10_000 });
        log(`approved kubelet-serving CSRs: ${plan.approve.join(', ')}`);
        return false;
      }
      return nodes.every((n) => plan.approvedNodes.has(n));
    }, timeoutMs, 500);
  } catch {
    log(`no kubelet-serving CSR approved for some of ${nodes.join(', ')} within ${timeoutMs / 1000} s; those nodes serve with self-signed certificates`);
  }
}
