// admitPod: requests against allocatable minus admitted pods, pod count, init
// and sidecar arithmetic, upstream reasons and messages.
import type { V1Pod } from '@kubernetes/client-node';
import { expect } from 'chai';
import { admitPod, podRequest } from '../../agent/pod/admission.ts';

const alloc = { cpu: '2', memory: '4Gi', pods: '3' };
const p = (cpu: string, memory = '0'): V1Pod => ({ metadata: { name: 'x' }, spec: { containers: [{ name: 'c', resources: { requests: { cpu, memory } } }] } });

describe('admitPod', () => {
  it('admits a pod that fits', () => {
    expect(admitPod(p('500m'), [p('1')], alloc)).to.deep.equal({ admit: true });
  });
  it('rejects OutOfcpu with upstream numbers (millicores)', () => {
    expect(admitPod(p('1500m'), [p('1')], alloc)).to.deep.equal({
      admit: false,
      reason: 'OutOfcpu',
      message: "Node didn't have enough resource: cpu, requested: 1500, used: 1000, capacity: 2000",
    });
  });
  it('rejects OutOfmemory', () => {
    expect(admitPod(p('0', '5Gi'), [], alloc).reason).to.equal('OutOfmemory');
  });
  it('rejects OutOfpods past max-pods', () => {
    expect(admitPod(p('0'), [p('0'), p('0'), p('0')], alloc).reason).to.equal('OutOfpods');
  });
  it('counts the largest init container and sidecars beside the app containers', () => {
    const pod: V1Pod = {
      spec: {
        initContainers: [
          { name: 'big', resources: { requests: { cpu: '3' } } },
          { name: 'side', restartPolicy: 'Always', resources: { requests: { cpu: '100m' } } },
        ],
        containers: [{ name: 'app', resources: { requests: { cpu: '200m' } } }],
      },
    };
    expect(podRequest(pod, 'cpu')).to.equal(3_000_000_000n);
    pod.spec!.initContainers![0]!.resources!.requests!['cpu'] = '100m';
    expect(podRequest(pod, 'cpu')).to.equal(300_000_000n);
  });
});
