import type { V1Container, V1Pod, V1ResourceRequirements } from '@kubernetes/client-node';
import { expect } from 'chai';
import { computePodQOS, getPodQOS, quantityNanos } from '../../agent/pod/qos.ts';

function ctr(name: string, requests?: Record<string, string>, limits?: Record<string, string>): V1Container {
  const resources: V1ResourceRequirements = {};
  if (requests) resources.requests = requests;
  if (limits) resources.limits = limits;
  return { name, image: 'img', resources };
}

function pod(containers: V1Container[], initContainers?: V1Container[], podResources?: V1ResourceRequirements): V1Pod {
  return { metadata: { name: 'p' }, spec: { containers, ...(initContainers ? { initContainers } : {}), ...(podResources ? { resources: podResources } : {}) } };
}

const cpuMem = (cpu: string, mem: string) => ({ cpu, memory: mem });

describe('pod/qos: quantities', () => {
  const cases: [string, bigint | undefined][] = [
    ['1', 1_000_000_000n],
    ['1000m', 1_000_000_000n],
    ['0.5', 500_000_000n],
    ['500m', 500_000_000n],
    ['1Ki', 1024n * 1_000_000_000n],
    ['1.5Gi', 1610612736n * 1_000_000_000n],
    ['1Gi', 1073741824n * 1_000_000_000n],
    ['1073741824', 1073741824n * 1_000_000_000n],
    ['1e3', 1000n * 1_000_000_000n],
    ['1E', 10n ** 18n * 1_000_000_000n],
    ['1k', 1000n * 1_000_000_000n],
    ['1n', 1n],
    ['0.1n', 1n], // below a nano rounds up
    ['-2', -2_000_000_000n],
    ['0', 0n],
    ['abc', undefined],
    ['1Zi', undefined],
    ['', undefined],
  ];
  for (const [q, want] of cases) {
    it(`${JSON.stringify(q)} -> ${want}`, () => expect(quantityNanos(q)).to.equal(want));
  }
});

describe('pod/qos: GetPodQOS', () => {
  const cases: { name: string; pod: V1Pod; want: string }[] = [
    { name: 'no resources anywhere', pod: pod([ctr('a'), ctr('b')]), want: 'BestEffort' },
    { name: 'only a non-QoS resource (ephemeral-storage)', pod: pod([ctr('a', { 'ephemeral-storage': '1Gi' })]), want: 'BestEffort' },
    { name: 'requests equal limits for cpu and memory', pod: pod([ctr('a', cpuMem('100m', '100Mi'), cpuMem('100m', '100Mi'))]), want: 'Guaranteed' },
    { name: 'equal in value, different spelling', pod: pod([ctr('a', cpuMem('1', '1Gi'), cpuMem('1000m', '1073741824'))]), want: 'Guaranteed' },
    {
      name: 'all containers guaranteed',
      pod: pod([ctr('a', cpuMem('1', '1Gi'), cpuMem('1', '1Gi')), ctr('b', cpuMem('2', '2Gi'), cpuMem('2', '2Gi'))]),
      want: 'Guaranteed',
    },
    { name: 'limits only for cpu', pod: pod([ctr('a', { cpu: '1' }, { cpu: '1' })]), want: 'Burstable' },
    { name: 'requests below limits', pod: pod([ctr('a', cpuMem('100m', '100Mi'), cpuMem('200m', '100Mi'))]), want: 'Burstable' },
    { name: 'requests without limits', pod: pod([ctr('a', cpuMem('100m', '100Mi'))]), want: 'Burstable' },
    { name: 'one guaranteed, one best effort', pod: pod([ctr('a', cpuMem('1', '1Gi'), cpuMem('1', '1Gi')), ctr('b')]), want: 'Burstable' },
    {
      name: 'init containers count too',
      pod: pod([ctr('a', cpuMem('1', '1Gi'), cpuMem('1', '1Gi'))], [ctr('init', { cpu: '1' })]),
      want: 'Burstable',
    },
    { name: 'zero quantities are best effort', pod: pod([ctr('a', cpuMem('0', '0'), cpuMem('0', '0'))]), want: 'BestEffort' },
    {
      name: 'pod-level resources decide alone',
      pod: pod([ctr('a'), ctr('b', { cpu: '1' })], undefined, { requests: cpuMem('1', '1Gi'), limits: cpuMem('1', '1Gi') }),
      want: 'Guaranteed',
    },
  ];
  for (const c of cases) {
    it(`${c.name} -> ${c.want}`, () => expect(computePodQOS(c.pod)).to.equal(c.want));
  }

  it('returns the class persisted in status (immutable once set by the API server)', () => {
    const p = pod([ctr('a')]);
    p.status = { qosClass: 'Burstable' };
    expect(getPodQOS(p)).to.equal('Burstable');
    expect(computePodQOS(p)).to.equal('BestEffort');
  });
});
