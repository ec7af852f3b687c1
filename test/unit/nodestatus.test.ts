// Fixture addresses are from the documentation ranges (RFC 5737: 192.0.2.0/24);
// the pod CIDR is the usual private 10.244.0.0/16 example.
import type { V1NodeCondition, V1NodeStatus } from '@kubernetes/client-node';
import { expect } from 'chai';
import type { MachineInfo } from '../../agent/machine.ts';
import { goArch, parseMemTotal, parsePrettyName } from '../../agent/machine.ts';
import type { NodeHealth, NodeInput } from '../../agent/nodestatus.ts';
import {
  binaryQuantity,
  buildNode,
  buildNodeStatus,
  computeConditions,
  reconcileDefaultLabels,
  runtimeHealth,
  shouldPatchStatus,
  statusChanged,
  statusFieldsPatch,
  timeMs,
} from '../../agent/nodestatus.ts';

const machine: MachineInfo = {
  cpuCores: 4,
  memoryBytes: 16331780 * 1024,
  ephemeralStorageBytes: 100 * 1024 ** 3,
  kernelVersion: '6.1.0-28-amd64',
  osImage: 'Debian GNU/Linux 12 (bookworm)',
  operatingSystem: 'linux',
  architecture: 'amd64',
  machineID: '0123456789abcdef0123456789abcdef',
  systemUUID: 'EC2A1B2C-0000-1111-2222-333344445555',
  bootID: 'dd490893-bd54-423a-9168-4a74648e1db8',
  hostname: 'worker-1',
};

const base: NodeInput = {
  nodeName: 'worker-1',
  hostname: 'worker-1',
  nodeIP: '192.0.2.10',
  maxPods: 110,
  kubeletPort: 10250,
  machine,
  runtime: { version: '0.1.0', runtimeName: 'docker', runtimeVersion: '27.3.1', runtimeApiVersion: 'v1' },
  kubeletVersion: 'v1.37.2',
};

const T0 = new Date('2025-01-01T00:00:00Z');
const T1 = new Date('2025-01-01T00:00:10Z');
const ready: NodeHealth = { runtimeReady: true };
const down: NodeHealth = { runtimeReady: false, runtimeMessage: 'container runtime is down: DockerDaemonNotAvailable: connect ENOENT /var/run/docker.sock' };

function cond(conds: readonly V1NodeCondition[], type: string): V1NodeCondition {
  const c = conds.find((x) => x.type === type);
  if (!c) throw new Error(`no ${type} condition`);
  return c;
}

describe('nodestatus: buildNode', () => {
  const cases: Array<{ name: string; input: Partial<NodeInput>; check: (n: ReturnType<typeof buildNode>) => void }> = [
    {
      name: 'default labels from hostname and machine',
      input: {},
      check: (n) =>
        expect(n.metadata?.labels).to.deep.equal({
          'kubernetes.io/hostname': 'worker-1',
          'kubernetes.io/os': 'linux',
          'kubernetes.io/arch': 'amd64',
          'beta.kubernetes.io/os': 'linux',
          'beta.kubernetes.io/arch': 'amd64',
        }),
    },
    {
      name: '--node-labels are added and override defaults',
      input: { nodeLabels: { 'example.com/pool': 'blue', 'kubernetes.io/hostname': 'alias' } },
      check: (n) => {
        expect(n.metadata?.labels?.['example.com/pool']).to.equal('blue');
        expect(n.metadata?.labels?.['kubernetes.io/hostname']).to.equal('alias');
      },
    },
    {
      name: 'name, apiVersion and kind',
      input: { nodeName: 'node-a' },
      check: (n) => {
        expect(n.metadata?.name).to.equal('node-a');
        expect([n.apiVersion, n.kind]).to.deep.equal(['v1', 'Node']);
      },
    },
    {
      name: 'capacity: cpu cores, memory in Ki, ephemeral storage canonical, pods = maxPods; allocatable = capacity',
      input: { maxPods: 50 },
      check: (n) => {
        expect(n.status?.capacity).to.deep.equal({ cpu: '4', memory: '16331780Ki', 'ephemeral-storage': '100Gi', pods: '50' });
        expect(n.status?.allocatable).to.deep.equal(n.status?.capacity);
      },
    },
    {
      name: 'nodeInfo: runtime as docker://<version>, kubelet version, machine facts',
      input: {},
      check: (n) =>
        expect(n.status?.nodeInfo).to.deep.equal({
          machineID: machine.machineID,
          systemUUID: machine.systemUUID,
          bootID: machine.bootID,
          kernelVersion: '6.1.0-28-amd64',
          osImage: 'Debian GNU/Linux 12 (bookworm)',
          containerRuntimeVersion: 'docker://27.3.1',
          kubeletVersion: 'v1.37.2',
          kubeProxyVersion: '',
          operatingSystem: 'linux',
          architecture: 'amd64',
        }),
    },
    {
      name: 'runtime never answered: empty runtime version',
      input: { runtime: undefined },
      check: (n) => expect(n.status?.nodeInfo?.containerRuntimeVersion).to.equal(''),
    },
    {
      name: 'addresses and kubelet endpoint',
      input: { kubeletPort: 10260 },
      check: (n) => {
        expect(n.status?.addresses).to.deep.equal([
          { type: 'InternalIP', address: '192.0.2.10' },
          { type: 'Hostname', address: 'worker-1' },
        ]);
        expect(n.status?.daemonEndpoints?.kubeletEndpoint?.Port).to.equal(10260);
      },
    },
    {
      name: 'pod CIDR set: spec.podCIDR and podCIDRs',
      input: { podCIDR: '10.244.1.0/24' },
      check: (n) => expect(n.spec).to.deep.equal({ podCIDR: '10.244.1.0/24', podCIDRs: ['10.244.1.0/24'] }),
    },
    {
      name: 'no pod CIDR: spec has none',
      input: {},
      check: (n) => expect(n.spec?.podCIDR).to.equal(undefined),
    },
    {
      name: 'conditions included when given',
      input: { conditions: computeConditions(undefined, ready, T0) },
      check: (n) => expect(n.status?.conditions?.map((c) => c.type)).to.deep.equal(['MemoryPressure', 'DiskPressure', 'PIDPressure', 'Ready']),
    },
  ];
  for (const c of cases) it(c.name, () => c.check(buildNode({ ...base, ...c.input })));
});

describe('nodestatus: binaryQuantity', () => {
  const cases: Array<[number, string]> = [
    [0, '0'],
    [512, '512'],
    [1024, '1Ki'],
    [1536, '1Ki'], // rounded down to whole Ki
    [2048 * 1024, '2Mi'],
    [16331780 * 1024, '16331780Ki'],
    [8 * 1024 ** 3, '8Gi'],
    [3 * 1024 ** 4, '3Ti'],
  ];
  for (const [bytes, want] of cases) it(`${bytes} -> ${want}`, () => expect(binaryQuantity(bytes)).to.equal(want));
});

describe('nodestatus: computeConditions', () => {
  it('no previous status, runtime ready: the four conditions, all new', () => {
    const got = computeConditions(undefined, ready, T0);
    expect(got.map((c) => [c.type, c.status, c.reason, c.message])).to.deep.equal([
      ['MemoryPressure', 'False', 'KubeletHasSufficientMemory', 'kubelet has sufficient memory available'],
      ['DiskPressure', 'False', 'KubeletHasNoDiskPressure', 'kubelet has no disk pressure'],
      ['PIDPressure', 'False', 'KubeletHasSufficientPID', 'kubelet has sufficient PID available'],
      ['Ready', 'True', 'KubeletReady', 'kubelet is posting ready status'],
    ]);
    for (const c of got) {
      expect(timeMs(c.lastHeartbeatTime)).to.equal(T0.getTime());
      expect(timeMs(c.lastTransitionTime)).to.equal(T0.getTime());
    }
  });

  it('runtime down: Ready False with KubeletNotReady and the runtime message', () => {
    const r = cond(computeConditions(undefined, down, T0), 'Ready');
    expect([r.status, r.reason, r.message]).to.deep.equal(['False', 'KubeletNotReady', down.runtimeMessage]);
  });

  it('runtime down without a message: a generic one', () => {
    expect(cond(computeConditions(undefined, { runtimeReady: false }, T0), 'Ready').message).to.equal('container runtime is down');
  });

  const transitions: Array<{ name: string; prev: NodeHealth; next: NodeHealth; transitionAt: Date }> = [
    { name: 'ready -> ready keeps the transition time', prev: ready, next: ready, transitionAt: T0 },
    { name: 'ready -> not ready moves it', prev: ready, next: down, transitionAt: T1 },
    { name: 'not ready -> ready moves it', prev: down, next: ready, transitionAt: T1 },
    { name: 'not ready -> not ready keeps it', prev: down, next: down, transitionAt: T0 },
  ];
  for (const t of transitions) {
    it(t.name, () => {
      const prev = computeConditions(undefined, t.prev, T0);
      const next = computeConditions(prev, t.next, T1);
      const r = cond(next, 'Ready');
      expect(timeMs(r.lastTransitionTime)).to.equal(t.transitionAt.getTime());
      expect(timeMs(r.lastHeartbeatTime)).to.equal(T1.getTime());
      // The pressure conditions did not change: their transition time stays.
      expect(timeMs(cond(next, 'MemoryPressure').lastTransitionTime)).to.equal(T0.getTime());
    });
  }

  it('Ready Unknown set by the node lifecycle controller: back to True moves the transition time', () => {
    const prev: V1NodeCondition[] = [
      { type: 'Ready', status: 'Unknown', reason: 'NodeStatusUnknown', message: 'Kubelet stopped posting node status.', lastTransitionTime: T0 },
    ];
    const r = cond(computeConditions(prev, ready, T1), 'Ready');
    expect(r.status).to.equal('True');
    expect(timeMs(r.lastTransitionTime)).to.equal(T1.getTime());
  });

  it('times given as strings (as the API may return) are understood', () => {
    const prev = [{ type: 'Ready', status: 'True', lastTransitionTime: '2025-01-01T00:00:00Z' as unknown as Date }];
    expect(timeMs(cond(computeConditions(prev, ready, T1), 'Ready').lastTransitionTime)).to.equal(T0.getTime());
  });

  it("keeps other writers' conditions untouched, after its own", () => {
    const foreign: V1NodeCondition = { type: 'NetworkUnavailable', status: 'False', reason: 'RouteCreated', message: 'route created', lastTransitionTime: T0 };
    const got = computeConditions([foreign, ...computeConditions(undefined, ready, T0)], ready, T1);
    expect(got.map((c) => c.type)).to.deep.equal(['MemoryPressure', 'DiskPressure', 'PIDPressure', 'Ready', 'NetworkUnavailable']);
    expect(got[4]).to.deep.equal(foreign);
  });
});

describe('nodestatus: statusChanged / shouldPatchStatus', () => {
  const prev = computeConditions(undefined, ready, T0);
  const cases: Array<{ name: string; prev: V1NodeCondition[] | undefined; next: V1NodeCondition[]; want: boolean }> = [
    { name: 'only heartbeats moved: unchanged', prev, next: computeConditions(prev, ready, T1), want: false },
    { name: 'Ready flipped: changed', prev, next: computeConditions(prev, down, T1), want: true },
    { name: 'no previous conditions: changed', prev: undefined, next: prev, want: true },
    { name: 'a condition missing before: changed', prev: prev.slice(0, 3), next: computeConditions(prev, ready, T1), want: true },
    {
      name: 'message changed while status the same: changed',
      prev: computeConditions(undefined, down, T0),
      next: computeConditions(computeConditions(undefined, down, T0), { runtimeReady: false, runtimeMessage: 'other' }, T1),
      want: true,
    },
  ];
  for (const c of cases) it(c.name, () => expect(statusChanged(c.prev, c.next)).to.equal(c.want));

  const freq = 300_000;
  const unchanged = computeConditions(prev, ready, T1);
  const patchCases: Array<{ name: string; next: V1NodeCondition[]; lastReport: number; now: number; want: boolean }> = [
    { name: 'unchanged, report not due: no patch', next: unchanged, lastReport: 0, now: freq - 1, want: false },
    { name: 'unchanged, report due: patch (heartbeat)', next: unchanged, lastReport: 0, now: freq, want: true },
    { name: 'changed, report not due: patch', next: computeConditions(prev, down, T1), lastReport: 0, now: 1, want: true },
    { name: 'never reported: patch', next: unchanged, lastReport: Number.NEGATIVE_INFINITY, now: 0, want: true },
  ];
  for (const c of patchCases) {
    it(c.name, () => expect(shouldPatchStatus(prev, c.next, c.lastReport, c.now, freq)).to.equal(c.want));
  }
});

describe('nodestatus: statusFieldsPatch', () => {
  const desired = buildNodeStatus(base);
  const cases: Array<{ name: string; observed: V1NodeStatus | undefined; want: string[] }> = [
    { name: 'nothing observed: every owned field', observed: undefined, want: ['capacity', 'allocatable', 'addresses', 'daemonEndpoints', 'nodeInfo'] },
    { name: 'observed equals desired: nothing', observed: structuredClone(desired), want: [] },
    {
      name: 'extra keys from other writers are not a difference',
      observed: {
        ...structuredClone(desired),
        capacity: { ...desired.capacity, 'hugepages-2Mi': '0' },
        nodeInfo: { ...desired.nodeInfo!, swap: { capacity: 0 } },
        images: [],
      },
      want: [],
    },
    {
      name: 'new boot id and runtime version: nodeInfo',
      observed: { ...structuredClone(desired), nodeInfo: { ...desired.nodeInfo!, bootID: 'old', containerRuntimeVersion: 'docker://26.0.0' } },
      want: ['nodeInfo'],
    },
    {
      name: 'address changed: addresses',
      observed: { ...structuredClone(desired), addresses: [{ type: 'InternalIP', address: '192.0.2.99' }, { type: 'Hostname', address: 'worker-1' }] },
      want: ['addresses'],
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const got = statusFieldsPatch(c.observed, desired);
      expect(Object.keys(got)).to.have.members(c.want);
      for (const k of c.want) expect(got[k as keyof V1NodeStatus]).to.deep.equal(desired[k as keyof V1NodeStatus]);
    });
  }
});

describe('nodestatus: reconcileDefaultLabels', () => {
  const desired = buildNode({ ...base, nodeLabels: { 'example.com/pool': 'blue' } });
  it('fixes default labels that differ, leaves --node-labels and admin labels alone', () => {
    const existing = buildNode(base);
    existing.metadata!.labels = { 'kubernetes.io/hostname': 'worker-1', 'kubernetes.io/arch': 'arm64', 'example.com/team': 'infra' };
    expect(reconcileDefaultLabels(desired, existing)).to.deep.equal({
      'kubernetes.io/os': 'linux',
      'kubernetes.io/arch': 'amd64',
      'beta.kubernetes.io/os': 'linux',
      'beta.kubernetes.io/arch': 'amd64',
    });
  });
  it('nothing to do: undefined', () => {
    expect(reconcileDefaultLabels(desired, buildNode(base))).to.equal(undefined);
  });
});

describe('nodestatus: runtimeHealth', () => {
  const cases: Array<{ name: string; input: Parameters<typeof runtimeHealth>[0]; want: NodeHealth }> = [
    {
      name: 'runtime and network ready',
      input: { conditions: [{ type: 'RuntimeReady', status: true, reason: '', message: '' }, { type: 'NetworkReady', status: true, reason: '', message: '' }] },
      want: { runtimeReady: true },
    },
    {
      name: 'runtime down: reason and message',
      input: { conditions: [{ type: 'RuntimeReady', status: false, reason: 'DockerDaemonNotAvailable', message: 'connect ENOENT /var/run/docker.sock' }] },
      want: { runtimeReady: false, runtimeMessage: 'container runtime is down: DockerDaemonNotAvailable: connect ENOENT /var/run/docker.sock' },
    },
    {
      name: 'network not ready: upstream message form',
      input: {
        conditions: [
          { type: 'RuntimeReady', status: true, reason: '', message: '' },
          { type: 'NetworkReady', status: false, reason: 'NetworkPluginNotReady', message: 'cni plugin not initialized' },
        ],
      },
      want: {
        runtimeReady: false,
        runtimeMessage: 'container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady message:cni plugin not initialized',
      },
    },
    { name: 'no conditions at all', input: { conditions: [] }, want: { runtimeReady: false, runtimeMessage: 'container runtime is down: no RuntimeReady condition reported' } },
    { name: 'asking failed', input: { error: 'boom' }, want: { runtimeReady: false, runtimeMessage: 'container runtime is down: boom' } },
  ];
  for (const c of cases) it(c.name, () => expect(runtimeHealth(c.input)).to.deep.equal(c.want));
});

describe('machine: parsers', () => {
  it('MemTotal in bytes', () => {
    expect(parseMemTotal('MemTotal:       16331780 kB\nMemFree:         1000 kB\n')).to.equal(16331780 * 1024);
    expect(parseMemTotal('nothing')).to.equal(undefined);
  });
  it('PRETTY_NAME unquoted', () => {
    expect(parsePrettyName('NAME="Debian GNU/Linux"\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n')).to.equal('Debian GNU/Linux 12 (bookworm)');
    expect(parsePrettyName("PRETTY_NAME='Alpine Linux v3.20'")).to.equal('Alpine Linux v3.20');
    expect(parsePrettyName('ID=x')).to.equal(undefined);
  });
  const arches: Array<[string, string]> = [
    ['x64', 'amd64'],
    ['arm64', 'arm64'],
    ['arm', 'arm'],
    ['ia32', '386'],
    ['ppc64', 'ppc64le'],
    ['s390x', 's390x'],
    ['riscv64', 'riscv64'],
  ];
  for (const [node, go] of arches) it(`arch ${node} -> ${go}`, () => expect(goArch(node)).to.equal(go));
});
