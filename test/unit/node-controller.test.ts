// NodeController against an in-memory API server, a fake runtime and a manual
// clock. Fixture addresses are from RFC 5737 (192.0.2.0/24).
import type { V1Lease, V1Node, V1NodeCondition } from '@kubernetes/client-node';
import { expect } from 'chai';
import type { MachineInfo } from '../../agent/machine.ts';
import type { NodeControllerConfig } from '../../agent/node.ts';
import { LEASE_NAMESPACE, newLease, NodeController } from '../../agent/node.ts';
import { timeMs } from '../../agent/nodestatus.ts';
import type { Logger } from '../../lib/log.ts';
import { FakeClock, settle } from '../fakes/clock.ts';
import { captureLogger, type LogEntry } from '../fakes/log.ts';
import { FakeNodeApi } from '../fakes/nodeapi.ts';
import { FakeRuntime } from '../fakes/runtime.ts';

const NODE = 'worker-1';
const T0 = Date.UTC(2025, 0, 1, 0, 0, 0);

const config: NodeControllerConfig = {
  nodeName: NODE,
  hostname: NODE,
  nodeIP: '192.0.2.10',
  podCIDR: '10.244.1.0/24',
  nodeLabels: { 'example.com/pool': 'blue' },
  maxPods: 110,
  port: 10250,
  nodeLeaseDurationSeconds: 40,
  nodeStatusUpdateFrequencyMs: 10_000,
  nodeStatusReportFrequencyMs: 300_000,
};

const machine: MachineInfo = {
  cpuCores: 2,
  memoryBytes: 4 * 1024 ** 3,
  ephemeralStorageBytes: 20 * 1024 ** 3,
  kernelVersion: '6.1.0-28-amd64',
  osImage: 'Debian GNU/Linux 12 (bookworm)',
  operatingSystem: 'linux',
  architecture: 'amd64',
  machineID: '0123456789abcdef0123456789abcdef',
  systemUUID: '',
  bootID: 'dd490893-bd54-423a-9168-4a74648e1db8',
  hostname: NODE,
};

function readyOf(node: V1Node | undefined): V1NodeCondition {
  const c = node?.status?.conditions?.find((x) => x.type === 'Ready');
  if (!c) throw new Error('node has no Ready condition');
  return c;
}

function renewMs(lease: V1Lease | undefined): number | undefined {
  return timeMs(lease?.spec?.renewTime as Date | string | undefined);
}

describe('NodeController', () => {
  let clock: FakeClock;
  let api: FakeNodeApi;
  let runtime: FakeRuntime;
  let entries: LogEntry[];
  let ctl: NodeController;
  let ac: AbortController;

  beforeEach(() => {
    clock = new FakeClock(T0);
    api = new FakeNodeApi();
    runtime = new FakeRuntime();
    const cap = captureLogger();
    entries = cap.entries;
    ctl = new NodeController({ api, runtime, clock, log: cap.log, config, machine, kubeletVersion: 'v1.37.2' });
    ac = new AbortController();
  });

  afterEach(async () => {
    await ctl.stop();
  });

  async function start(): Promise<void> {
    ctl.start(ac.signal);
    await settle();
  }

  const lease = () => api.lease(LEASE_NAMESPACE, NODE);

  it('registers the node with labels, spec, capacity and a Ready status', async () => {
    await start();
    const node = api.node(NODE);
    expect(node, 'node created').to.not.equal(undefined);
    expect(node?.metadata?.labels).to.deep.equal({
      'kubernetes.io/hostname': NODE,
      'kubernetes.io/os': 'linux',
      'kubernetes.io/arch': 'amd64',
      'beta.kubernetes.io/os': 'linux',
      'beta.kubernetes.io/arch': 'amd64',
      'example.com/pool': 'blue',
    });
    expect(node?.spec?.podCIDR).to.equal('10.244.1.0/24');
    expect(node?.status?.capacity).to.deep.equal({ cpu: '2', memory: '4Gi', 'ephemeral-storage': '20Gi', pods: '110' });
    expect(node?.status?.nodeInfo?.containerRuntimeVersion).to.equal('docker://27.3.1');
    expect(node?.status?.nodeInfo?.kubeletVersion).to.equal('v1.37.2');
    const r = readyOf(node);
    expect([r.status, r.reason]).to.deep.equal(['True', 'KubeletReady']);
    expect(timeMs(r.lastHeartbeatTime)).to.equal(T0);
    expect(ctl.registered).to.equal(true);
    expect(ctl.ready).to.equal(true);
    expect(ctl.nodeUID).to.equal(node?.metadata?.uid);
    expect(api.callCount('createNode')).to.equal(1);
    expect(entries.some((e) => e.level === 'info' && e.message === 'successfully registered node')).to.equal(true);
  });

  it('creates the lease owned by the node, then renews it every 10 s', async () => {
    await start();
    const created = lease();
    expect(created?.spec?.holderIdentity).to.equal(NODE);
    expect(created?.spec?.leaseDurationSeconds).to.equal(40);
    expect(created?.metadata?.ownerReferences).to.deep.equal([
      { apiVersion: 'v1', kind: 'Node', name: NODE, uid: api.node(NODE)?.metadata?.uid },
    ]);
    expect(renewMs(created)).to.equal(T0);
    expect(api.callCount('createLease')).to.equal(1);
    expect(api.callCount('replaceLease')).to.equal(0);

    await clock.advance(9_999);
    expect(api.callCount('replaceLease'), 'not before 10 s').to.equal(0);
    await clock.advance(1);
    expect(api.callCount('replaceLease')).to.equal(1);
    expect(renewMs(lease())).to.equal(T0 + 10_000);
    expect(lease()?.metadata?.resourceVersion).to.not.equal(created?.metadata?.resourceVersion);

    await clock.advance(20_000);
    expect(api.callCount('replaceLease')).to.equal(3);
    expect(renewMs(lease())).to.equal(T0 + 30_000);
    expect(api.callCount('createLease'), 'created once').to.equal(1);
    expect(api.callCount('getLease'), 'renewals need no GET').to.equal(1);
  });

  it('writes renewTime as a MicroTime (six fractional digits)', () => {
    const l = newLease(undefined, { nodeName: NODE, nodeUID: 'u1', leaseDurationSeconds: 40 }, T0 + 123);
    expect(JSON.stringify(l.spec?.renewTime)).to.equal('"2025-01-01T00:00:00.123000Z"');
  });

  it('turns NotReady when the runtime goes down, and Ready again when it is back', async () => {
    await start();
    runtime.setHealthy(false, 'connect ENOENT /var/run/docker.sock');
    await clock.advance(10_000);
    let r = readyOf(api.node(NODE));
    expect([r.status, r.reason, r.message]).to.deep.equal([
      'False',
      'KubeletNotReady',
      'container runtime is down: DockerDaemonNotAvailable: connect ENOENT /var/run/docker.sock',
    ]);
    expect(timeMs(r.lastTransitionTime)).to.equal(T0 + 10_000);
    expect(ctl.ready).to.equal(false);
    const notReady = entries.find((e) => e.level === 'warn' && e.message === 'node is NotReady');
    expect(notReady?.detail).to.match(/connect ENOENT/);

    // Still down: no transition, and nothing to patch.
    const patches = api.patches.length;
    await clock.advance(10_000);
    expect(api.patches.length).to.equal(patches);
    expect(timeMs(readyOf(api.node(NODE)).lastTransitionTime)).to.equal(T0 + 10_000);

    runtime.setHealthy(true);
    await clock.advance(10_000);
    r = readyOf(api.node(NODE));
    expect([r.status, r.reason, r.message]).to.deep.equal(['True', 'KubeletReady', 'kubelet is posting ready status']);
    expect(timeMs(r.lastTransitionTime)).to.equal(T0 + 30_000);
    expect(ctl.ready).to.equal(true);
    // The lease is a liveness signal, renewed whatever the runtime does.
    expect(api.callCount('replaceLease')).to.equal(3);
  });

  it('patches status only on change or when the report frequency elapses', async () => {
    await start();
    await clock.advance(290_000);
    expect(api.patches, 'nothing changed within 5 min').to.have.length(0);
    await clock.advance(10_000);
    expect(api.patches).to.have.length(1);
    const patch = api.patches[0]!.patch as { status?: { conditions?: V1NodeCondition[] } };
    expect(Object.keys(patch)).to.deep.equal(['status']);
    expect(Object.keys(patch.status ?? {}), 'only conditions: the rest is unchanged').to.deep.equal(['conditions']);
    const r = readyOf(api.node(NODE));
    expect(timeMs(r.lastHeartbeatTime)).to.equal(T0 + 300_000);
    expect(timeMs(r.lastTransitionTime)).to.equal(T0);
  });

  it('re-registers a node that already exists (409): reconciles default labels and status, keeps its uid', async () => {
    const old = api.seedNode({
      metadata: {
        name: NODE,
        uid: 'b1f3c2d4-0000-4000-8000-000000000001',
        labels: { 'kubernetes.io/hostname': NODE, 'kubernetes.io/arch': 'arm64', 'example.com/team': 'infra' },
      },
      status: {
        conditions: [
          { type: 'NetworkUnavailable', status: 'False', reason: 'RouteCreated', message: 'route created', lastTransitionTime: new Date(T0 - 3_600_000) },
          { type: 'Ready', status: 'Unknown', reason: 'NodeStatusUnknown', message: 'Kubelet stopped posting node status.', lastTransitionTime: new Date(T0 - 600_000) },
        ],
        nodeInfo: { ...({} as NonNullable<NonNullable<V1Node['status']>['nodeInfo']>), bootID: 'previous-boot' },
      },
    });
    await start();
    expect(api.calls.slice(0, 3)).to.deep.equal([`createNode ${NODE}`, `getNode ${NODE}`, `patchNodeStatus ${NODE}`]);
    const node = api.node(NODE);
    expect(node?.metadata?.uid).to.equal(old.metadata?.uid);
    expect(ctl.nodeUID).to.equal(old.metadata?.uid);
    expect(node?.metadata?.labels).to.deep.equal({
      'kubernetes.io/hostname': NODE,
      'kubernetes.io/arch': 'amd64', // default label reconciled
      'kubernetes.io/os': 'linux',
      'beta.kubernetes.io/os': 'linux',
      'beta.kubernetes.io/arch': 'amd64',
      'example.com/team': 'infra', // an admin's label stays; --node-labels apply at creation only (upstream)
    });
    const r = readyOf(node);
    expect([r.status, r.reason]).to.deep.equal(['True', 'KubeletReady']);
    expect(timeMs(r.lastTransitionTime)).to.equal(T0);
    expect(node?.status?.conditions?.find((c) => c.type === 'NetworkUnavailable')?.reason).to.equal('RouteCreated');
    expect(node?.status?.nodeInfo?.bootID).to.equal(machine.bootID);
    expect(node?.status?.capacity?.cpu).to.equal('2');
    expect(ctl.registered).to.equal(true);
    expect(lease()?.metadata?.ownerReferences?.[0]?.uid).to.equal(old.metadata?.uid);
    expect(entries.some((e) => e.message === 'node was previously registered; reconciling it')).to.equal(true);
  });

  it('keeps retrying with backoff while the API server is unreachable, then registers', async () => {
    api.unreachable = true;
    await start();
    expect(api.callCount('createNode')).to.equal(1);
    expect(ctl.registered).to.equal(false);
    // 100 ms doubling up to 7 s: attempts at +0.1, +0.3, +0.7, +1.5, +3.1, +6.3, +12.7, +19.7 s.
    const attemptsBy: Array<[number, number]> = [
      [99, 1],
      [1, 2],
      [200, 3],
      [400, 4],
      [800, 5],
      [1_600, 6],
      [3_200, 7],
      [6_400, 8],
      [7_000, 9],
      [7_000, 10],
    ];
    for (const [ms, want] of attemptsBy) {
      await clock.advance(ms);
      expect(api.callCount('createNode'), `after +${ms} ms`).to.equal(want);
    }
    expect(ctl.registered).to.equal(false);
    expect(api.callCount('createLease'), 'no lease before the node').to.equal(0);

    const errors = entries.filter((e) => e.level === 'error');
    expect(errors).to.have.length(10);
    for (const e of errors) {
      expect(e.message).to.equal('unable to register node with API server');
      expect(e.error).to.be.a('string').and.match(/ECONNREFUSED/);
      expect(e.error as string).to.not.match(/\n|\bat .*:\d+:\d+/); // one line, no stack
    }

    api.unreachable = false;
    await clock.advance(7_000);
    expect(ctl.registered).to.equal(true);
    expect(ctl.ready).to.equal(true);
    expect(api.node(NODE)).to.not.equal(undefined);
    expect(lease()).to.not.equal(undefined);
  });

  it('keeps the lease and status loops going through an API outage', async () => {
    await start();
    api.unreachable = true;
    await clock.advance(30_000);
    expect(entries.some((e) => e.message === 'unable to update node status')).to.equal(true);
    expect(entries.some((e) => e.message === 'failed to ensure lease exists, will retry')).to.equal(true);
    api.unreachable = false;
    await clock.advance(10_000);
    expect(renewMs(lease())).to.be.greaterThan(T0 + 30_000);
    expect(ctl.ready).to.equal(true);
  });

  it('on a lease conflict re-reads the lease and retries', async () => {
    await start();
    api.bumpLease(LEASE_NAMESPACE, NODE); // another writer: our copy is stale
    await clock.advance(10_000);
    expect(api.calls.filter((c) => /Lease/.test(c))).to.deep.equal([
      `getLease ${LEASE_NAMESPACE}/${NODE}`,
      `createLease ${LEASE_NAMESPACE}/${NODE}`,
      `replaceLease ${LEASE_NAMESPACE}/${NODE}`, // 409
      `getLease ${LEASE_NAMESPACE}/${NODE}`,
      `replaceLease ${LEASE_NAMESPACE}/${NODE}`,
    ]);
    expect(renewMs(lease())).to.equal(T0 + 10_000);
    const conflict = entries.find((e) => e.message === 'failed to update lease');
    expect(conflict?.error).to.match(/HTTP 409: Conflict/);
  });

  it('registers again when the node is deleted, and re-owns the lease', async () => {
    await start();
    const firstUID = api.node(NODE)?.metadata?.uid;
    api.deleteNode(NODE); // the garbage collector also removes the lease
    await clock.advance(20_000);
    const node = api.node(NODE);
    expect(node).to.not.equal(undefined);
    expect(node?.metadata?.uid).to.not.equal(firstUID);
    expect(ctl.nodeUID).to.equal(node?.metadata?.uid);
    expect(lease()?.metadata?.ownerReferences?.[0]?.uid).to.equal(node?.metadata?.uid);
  });

  it('stops promptly on stop() and on the start signal; no calls after', async () => {
    await start();
    await ctl.stop();
    expect(clock.pending, 'no loop left sleeping').to.equal(0);
    const calls = api.calls.length;
    await clock.advance(60_000);
    expect(api.calls.length).to.equal(calls);

    const other = new NodeController({ api, runtime, clock, log: captureLogger().log, config, machine, kubeletVersion: 'v1.37.2' });
    const ac2 = new AbortController();
    api.unreachable = true; // stuck in registration backoff
    other.start(ac2.signal);
    await settle();
    ac2.abort();
    await other.stop();
    expect(clock.pending).to.equal(0);
  });

  it('refuses a second start', async () => {
    await start();
    expect(() => ctl.start(ac.signal)).to.throw(/already started/);
  });
});
