// Which CSRs `make up` approves: our nodes' pending kubelet-serving requests only.
import { expect } from 'chai';
import { planApprovals, servingCsrNode, type CsrItem } from '../../cluster/csrapprove.ts';

const csr = (name: string, over: { signer?: string; user?: string; groups?: string[]; conditions?: string[] } = {}): CsrItem => ({
  metadata: { name },
  spec: { signerName: over.signer ?? 'kubernetes.io/kubelet-serving', username: over.user ?? 'system:node:n1', groups: over.groups ?? ['system:nodes', 'system:authenticated'] },
  status: { conditions: (over.conditions ?? []).map((type) => ({ type })) },
});

describe('cluster/csrapprove', () => {
  const nodes = new Set(['n1', 'n2']);

  it('recognizes a serving CSR of one of our nodes', () => {
    expect(servingCsrNode(csr('a'), nodes)).to.equal('n1');
    expect(servingCsrNode(csr('b', { signer: 'kubernetes.io/kube-apiserver-client-kubelet' }), nodes)).to.equal(undefined);
    expect(servingCsrNode(csr('c', { user: 'system:node:elsewhere' }), nodes)).to.equal(undefined);
    expect(servingCsrNode(csr('d', { user: 'alice' }), nodes)).to.equal(undefined);
    expect(servingCsrNode(csr('e', { groups: ['system:authenticated'] }), nodes)).to.equal(undefined);
  });

  it('approves pending ones, leaves decided ones, and reports the nodes already approved', () => {
    const plan = planApprovals(
      [
        csr('pending-n1'),
        csr('approved-n2', { user: 'system:node:n2', conditions: ['Approved'] }),
        csr('denied-n1', { conditions: ['Denied'] }),
        csr('client-n1', { signer: 'kubernetes.io/kube-apiserver-client-kubelet' }),
        csr('pending-foreign', { user: 'system:node:x' }),
      ],
      nodes,
    );
    expect(plan.approve).to.deep.equal(['pending-n1']);
    expect([...plan.approvedNodes]).to.deep.equal(['n2']);
  });
});
