// Pleg over the FakeRuntime and a FakeClock: per-pod lifecycle events as
// upstream's GenericPLEG, the relist loop (period, kick, relistNow), health
// and metrics. Pod IPs are the fake's 10.244.0.0/16 pod CIDR example.
import { expect } from 'chai';
import { Registry } from 'prom-client';
import {
  diffRelists,
  generateEvents,
  Pleg,
  type PodLifecycleEvent,
} from '../../agent/pod/pleg.ts';
import { RuntimePodCache } from '../../agent/pod/runtimepods.ts';
import type { RuntimePodStatus } from '../../agent/pod/types.ts';
import { ANNOTATION_CONTAINER_HASH, ANNOTATION_RESTART_COUNT, LABEL_CONTAINER_NAME, podLabels } from '../../cri/labels.ts';
import type { PodSandbox, PodSandboxConfig, PodSandboxFilter } from '../../cri/runtime.ts';
import { NodeletError } from '../../lib/errors.ts';
import { nullLogger } from '../../lib/log.ts';
import { FakeClock, settle } from '../fakes/clock.ts';
import { FakeRuntime } from '../fakes/runtime.ts';

const IMAGE = 'nodelet.local/busybox:1.35';
const UID = 'aaaaaaaa-0000-4000-8000-00000000000a';

/** A FakeRuntime whose sandbox list can be held back or made to fail every time. */
class GatedRuntime extends FakeRuntime {
  gate: Promise<void> | undefined;
  failLists = false;
  override async listPodSandbox(filter?: PodSandboxFilter): Promise<PodSandbox[]> {
    if (this.gate) await this.gate;
    if (this.failLists) {
      this.calls.push('listPodSandbox');
      throw new NodeletError('CRI_RUNTIME_FAILED', 'Cannot connect to the Docker daemon');
    }
    return super.listPodSandbox(filter);
  }
}

interface TestPod {
  config: PodSandboxConfig;
  sandboxId: string;
}

async function runSandbox(rt: FakeRuntime, attempt = 0): Promise<TestPod> {
  const config: PodSandboxConfig = {
    metadata: { name: 'web', namespace: 'default', uid: UID, attempt },
    labels: podLabels({ name: 'web', namespace: 'default', uid: UID }),
  };
  return { config, sandboxId: await rt.runPodSandbox(config) };
}

async function addContainer(rt: FakeRuntime, pod: TestPod, name: string, start = true): Promise<string> {
  if (!rt.images.size) rt.addImage(IMAGE);
  const id = await rt.createContainer(
    pod.sandboxId,
    {
      metadata: { name, attempt: 0 },
      image: { image: IMAGE },
      labels: { ...podLabels({ name: 'web', namespace: 'default', uid: UID }), [LABEL_CONTAINER_NAME]: name },
      annotations: { [ANNOTATION_CONTAINER_HASH]: 'h', [ANNOTATION_RESTART_COUNT]: '0' },
    },
    pod.config,
  );
  if (start) await rt.startContainer(id);
  return id;
}

function listCalls(rt: FakeRuntime): number {
  return rt.calls.filter((c) => c === 'listPodSandbox').length;
}

async function metricValue(reg: Registry, name: string, labels: Record<string, string> = {}): Promise<number | undefined> {
  const m = reg.getSingleMetric(name);
  if (!m) return undefined;
  const data = await m.get();
  const v = data.values.find(
    (x) => !('metricName' in x && x.metricName && x.metricName !== name) && Object.entries(labels).every(([k, val]) => x.labels[k] === val),
  );
  return v?.value;
}

async function histogramCount(reg: Registry, name: string): Promise<number> {
  const data = await reg.getSingleMetric(name)!.get();
  return data.values.find((x) => (x as { metricName?: string }).metricName === `${name}_count`)?.value ?? 0;
}

describe('Pleg', () => {
  let rt: GatedRuntime;
  let clock: FakeClock;
  let registry: Registry;
  let seen: Array<{ uid: string; events: PodLifecycleEvent[] }>;
  let pleg: Pleg;
  let cache: RuntimePodCache;
  let ac: AbortController;

  const types = () => seen.flatMap((s) => s.events.map((e) => `${e.type} ${e.sandbox ? 'sandbox' : 'container'} ${e.id}`));

  beforeEach(() => {
    rt = new GatedRuntime();
    clock = new FakeClock();
    registry = new Registry();
    seen = [];
    cache = new RuntimePodCache(rt, nullLogger());
    pleg = new Pleg({ cache, clock, log: nullLogger(), registry, onPodChanged: (uid, events) => void seen.push({ uid, events }) });
    ac = new AbortController();
  });

  afterEach(async () => {
    ac.abort();
    await pleg.stop();
  });

  it('reports a new pod: its sandbox and running containers started, a created one changed', async () => {
    const pod = await runSandbox(rt);
    const app = await addContainer(rt, pod, 'app');
    const idle = await addContainer(rt, pod, 'idle', false);
    await pleg.relistNow();
    expect(seen.map((s) => s.uid)).to.deep.equal([UID]);
    expect(types()).to.have.members([
      `ContainerStarted sandbox ${pod.sandboxId}`,
      `ContainerStarted container ${app}`,
      `ContainerChanged container ${idle}`,
    ]);
    // The handler sees the new view.
    expect(cache.get(UID)!.containers).to.have.length(2);
  });

  it('says nothing while nothing changes', async () => {
    const pod = await runSandbox(rt);
    await addContainer(rt, pod, 'app');
    await pleg.relistNow();
    seen = [];
    await pleg.relistNow();
    await pleg.relistNow();
    expect(seen).to.deep.equal([]);
  });

  it('reports deaths, removals, starts and a dead sandbox', async () => {
    const pod = await runSandbox(rt);
    const a = await addContainer(rt, pod, 'a');
    const b = await addContainer(rt, pod, 'b');
    const c = await addContainer(rt, pod, 'c', false);
    await pleg.relistNow();
    seen = [];

    rt.exitContainer(a, 1);
    await rt.startContainer(c);
    await pleg.relistNow();
    expect(types()).to.have.members([`ContainerDied container ${a}`, `ContainerStarted container ${c}`]);
    expect(seen).to.have.length(1); // one call per pod per relist

    seen = [];
    await rt.removeContainer(a); // already reported dead: only removed
    await rt.removeContainer(b); // was running: died and removed
    await pleg.relistNow();
    expect(types()).to.have.members([`ContainerRemoved container ${a}`, `ContainerDied container ${b}`, `ContainerRemoved container ${b}`]);

    seen = [];
    rt.killSandbox(pod.sandboxId);
    await pleg.relistNow();
    expect(types()).to.deep.equal([`ContainerDied sandbox ${pod.sandboxId}`]);

    seen = [];
    await rt.removePodSandbox(pod.sandboxId);
    await pleg.relistNow();
    expect(types()).to.have.members([`ContainerRemoved sandbox ${pod.sandboxId}`, `ContainerDied container ${c}`, `ContainerRemoved container ${c}`]);
    expect(cache.get(UID)).to.equal(undefined);
  });

  it('relists every second once started', async () => {
    pleg.start(ac.signal);
    await settle();
    expect(listCalls(rt)).to.equal(1);
    await clock.advance(1000);
    expect(listCalls(rt)).to.equal(2);
    await clock.advance(3000);
    expect(listCalls(rt)).to.equal(5);
    const pod = await runSandbox(rt);
    await clock.advance(1000);
    expect(types()).to.deep.equal([`ContainerStarted sandbox ${pod.sandboxId}`]);
    expect(await histogramCount(registry, 'kubelet_pleg_relist_duration_seconds')).to.equal(6);
    expect(await histogramCount(registry, 'kubelet_pleg_relist_interval_seconds')).to.equal(5);
    await pleg.stop();
    await clock.advance(5000);
    expect(listCalls(rt)).to.equal(6);
  });

  it('relists at once when kicked, without waiting for the period', async () => {
    pleg.start(ac.signal);
    await settle();
    const pod = await runSandbox(rt);
    pleg.kick();
    await settle();
    expect(listCalls(rt)).to.equal(2);
    expect(types()).to.deep.equal([`ContainerStarted sandbox ${pod.sandboxId}`]);
  });

  it('relistNow waits for a relist that starts after the call; callers meanwhile share one', async () => {
    let open: () => void = () => {};
    rt.gate = new Promise<void>((r) => (open = r));
    const first = pleg.relistNow(); // in flight, held at the list
    await settle();
    const pod = await runSandbox(rt); // changed after the first relist began
    let doneA = false;
    const a = pleg.relistNow().then(() => (doneA = true));
    const b = pleg.relistNow();
    pleg.kick();
    await settle();
    expect(listCalls(rt)).to.equal(0);
    rt.gate = undefined;
    open();
    await first;
    await Promise.all([a, b]);
    expect(doneA).to.equal(true);
    expect(listCalls(rt)).to.equal(2); // the first, then one for everyone who asked during it
    expect(cache.get(UID)!.sandboxes[0]!.id).to.equal(pod.sandboxId);
  });

  it('logs a failed relist, rejects relistNow, keeps looping; healthy as upstream', async () => {
    expect(pleg.healthy()).to.deep.equal({ ok: false, message: 'pleg has yet to be successful' });
    rt.failLists = true;
    let err: unknown;
    await pleg.relistNow().catch((e: unknown) => (err = e));
    expect((err as NodeletError).code).to.equal('CRI_RUNTIME_FAILED');

    pleg.start(ac.signal);
    await clock.advance(2000);
    expect(listCalls(rt)).to.be.greaterThan(2);
    expect(pleg.healthy().ok).to.equal(false);

    rt.failLists = false;
    await clock.advance(1000);
    expect(pleg.healthy()).to.deep.equal({ ok: true, message: '' });

    rt.failLists = true;
    await clock.advance(3 * 60 * 1000);
    expect(pleg.healthy().ok).to.equal(true); // exactly at the threshold still counts
    await clock.advance(1000);
    expect(pleg.healthy()).to.deep.equal({ ok: false, message: 'pleg was last seen active 3m1s ago; threshold is 3m0s' });

    rt.failLists = false;
    await clock.advance(1000);
    expect(pleg.healthy().ok).to.equal(true);
  });

  it('keeps going when the handler throws', async () => {
    const calls: string[] = [];
    const bad = new Pleg({
      cache: new RuntimePodCache(rt, nullLogger()),
      clock,
      log: nullLogger(),
      registry: new Registry(),
      onPodChanged: (uid) => {
        calls.push(uid);
        throw new Error('handler bug');
      },
    });
    const pod = await runSandbox(rt);
    await bad.relistNow();
    await addContainer(rt, pod, 'app');
    await bad.relistNow();
    expect(calls).to.deep.equal([UID, UID]);
    expect(bad.healthy().ok).to.equal(true);
  });

  it('exports running pods and containers by state', async () => {
    const pod = await runSandbox(rt);
    const a = await addContainer(rt, pod, 'a');
    await addContainer(rt, pod, 'b');
    await addContainer(rt, pod, 'c', false);
    rt.exitContainer(a, 0);
    const other = await runSandbox(rt, 1);
    rt.killSandbox(other.sandboxId);
    await pleg.relistNow();
    expect(await metricValue(registry, 'kubelet_running_pods')).to.equal(1);
    expect(await metricValue(registry, 'kubelet_running_containers', { container_state: 'running' })).to.equal(1);
    expect(await metricValue(registry, 'kubelet_running_containers', { container_state: 'exited' })).to.equal(1);
    expect(await metricValue(registry, 'kubelet_running_containers', { container_state: 'created' })).to.equal(1);
    expect(await metricValue(registry, 'kubelet_running_containers', { container_state: 'unknown' })).to.equal(0);
    expect(await metricValue(registry, 'kubelet_pleg_last_seen_seconds')).to.equal(Math.floor(clock.now() / 1000));
  });
});

describe('PLEG event generation', () => {
  it('follows upstream generateEvents', () => {
    const t = (o: Parameters<typeof generateEvents>[2], n: Parameters<typeof generateEvents>[3]) => generateEvents('c1', false, o, n).map((e) => e.type);
    expect(t('running', 'running')).to.deep.equal([]);
    expect(t('non-existent', 'running')).to.deep.equal(['ContainerStarted']);
    expect(t('unknown', 'running')).to.deep.equal(['ContainerStarted']);
    expect(t('running', 'exited')).to.deep.equal(['ContainerDied']);
    expect(t('non-existent', 'exited')).to.deep.equal(['ContainerDied']);
    expect(t('running', 'unknown')).to.deep.equal(['ContainerChanged']);
    expect(t('exited', 'non-existent')).to.deep.equal(['ContainerRemoved']);
    expect(t('running', 'non-existent')).to.deep.equal(['ContainerDied', 'ContainerRemoved']);
    expect(t('unknown', 'non-existent')).to.deep.equal(['ContainerDied', 'ContainerRemoved']);
  });

  it('diffs two relists per pod', () => {
    const pod = (uid: string, containers: Array<[string, RuntimePodStatus['containers'][number]['state']]>): RuntimePodStatus => ({
      uid,
      name: uid,
      namespace: 'default',
      sandboxes: [{ id: `${uid}-sb`, state: 'SANDBOX_READY', attempt: 0, createdAt: 1, ip: '10.244.0.9' }],
      containers: containers.map(([id, state]) => ({
        id, sandboxId: `${uid}-sb`, name: id, hash: '', restartCount: 0, state, createdAt: 1, startedAt: 0, finishedAt: 0,
        exitCode: 0, reason: '', message: '', image: IMAGE, imageRef: '',
      })),
    });
    const prev = new Map([
      ['p1', pod('p1', [['c1', 'CONTAINER_RUNNING']])],
      ['p2', pod('p2', [['c2', 'CONTAINER_RUNNING']])],
    ]);
    const next = new Map([
      ['p1', pod('p1', [['c1', 'CONTAINER_RUNNING']])],
      ['p3', pod('p3', [['c3', 'CONTAINER_CREATED']])],
    ]);
    const d = diffRelists(prev, next);
    expect([...d.keys()].sort()).to.deep.equal(['p2', 'p3']);
    expect(d.get('p3')).to.deep.equal([
      { type: 'ContainerStarted', id: 'p3-sb', sandbox: true },
      { type: 'ContainerChanged', id: 'c3', sandbox: false },
    ]);
    expect(d.get('p2')).to.deep.equal([
      { type: 'ContainerDied', id: 'p2-sb', sandbox: true },
      { type: 'ContainerRemoved', id: 'p2-sb', sandbox: true },
      { type: 'ContainerDied', id: 'c2', sandbox: false },
      { type: 'ContainerRemoved', id: 'c2', sandbox: false },
    ]);
  });
});
