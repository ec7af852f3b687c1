// RuntimePodCache over the FakeRuntime: pods rebuilt from CRI lists, labels
// and status calls, and status calls only for what changed. Pod IPs are the
// fake's 10.244.0.0/16 pod CIDR example; the host network address is RFC 5737.
import { expect } from 'chai';
import { RuntimePodCache, restartCountOf, sandboxHostNetwork } from '../../agent/pod/runtimepods.ts';
import {
  ANNOTATION_CONTAINER_HASH,
  ANNOTATION_RESTART_COUNT,
  LABEL_CONTAINER_NAME,
  LABEL_HOST_NETWORK,
  podLabels,
} from '../../cri/labels.ts';
import type { PodSandboxConfig, PodSandboxStatus } from '../../cri/runtime.ts';
import { NodeletError } from '../../lib/errors.ts';
import { nullLogger } from '../../lib/log.ts';
import { FakeRuntime } from '../fakes/runtime.ts';

const IMAGE = 'nodelet.local/busybox:1.35';
const UID_A = 'aaaaaaaa-0000-4000-8000-00000000000a';
const UID_B = 'bbbbbbbb-0000-4000-8000-00000000000b';

interface TestPod {
  uid: string;
  name: string;
  config: PodSandboxConfig;
  sandboxId: string;
}

/** Runs a sandbox labelled as the kubelet labels it. */
async function runSandbox(
  rt: FakeRuntime,
  uid: string,
  name: string,
  opts: { attempt?: number; hostNetwork?: boolean } = {},
): Promise<TestPod> {
  const config: PodSandboxConfig = {
    metadata: { name, namespace: 'default', uid, attempt: opts.attempt ?? 0 },
    labels: podLabels({ name, namespace: 'default', uid }),
    linux: { securityContext: { namespaceOptions: { network: opts.hostNetwork ? 'NODE' : 'POD' } } },
  };
  const sandboxId = await rt.runPodSandbox(config);
  return { uid, name, config, sandboxId };
}

/** Creates (and by default starts) a container labelled and annotated as the kubelet does. */
async function addContainer(
  rt: FakeRuntime,
  pod: TestPod,
  name: string,
  opts: { hash?: string; restartCount?: number; start?: boolean } = {},
): Promise<string> {
  if (!rt.images.size) rt.addImage(IMAGE);
  const rc = opts.restartCount ?? 0;
  const id = await rt.createContainer(
    pod.sandboxId,
    {
      metadata: { name, attempt: rc },
      image: { image: IMAGE },
      labels: { ...podLabels({ name: pod.name, namespace: 'default', uid: pod.uid }), [LABEL_CONTAINER_NAME]: name },
      annotations: { [ANNOTATION_CONTAINER_HASH]: opts.hash ?? `hash-${name}`, [ANNOTATION_RESTART_COUNT]: String(rc) },
    },
    pod.config,
  );
  if (opts.start !== false) await rt.startContainer(id);
  return id;
}

function statusCalls(rt: FakeRuntime): string[] {
  return rt.calls.filter((c) => c.startsWith('containerStatus') || c.startsWith('podSandboxStatus'));
}

describe('RuntimePodCache', () => {
  let rt: FakeRuntime;
  let cache: RuntimePodCache;

  beforeEach(() => {
    rt = new FakeRuntime();
    cache = new RuntimePodCache(rt, nullLogger());
  });

  it('builds each pod from one list of sandboxes, one of containers and their status', async () => {
    const pod = await runSandbox(rt, UID_A, 'web', { attempt: 2 });
    const id = await addContainer(rt, pod, 'app', { hash: 'h1', restartCount: 3 });
    rt.calls.length = 0;

    const view = await cache.relist();

    expect(rt.calls.filter((c) => c === 'listPodSandbox' || c === 'listContainers')).to.deep.equal(['listPodSandbox', 'listContainers']);
    expect([...view.keys()]).to.deep.equal([UID_A]);
    const p = cache.get(UID_A);
    expect(p).to.include({ uid: UID_A, name: 'web', namespace: 'default' });
    const sbStatus = rt.sandboxes.get(pod.sandboxId)!.status;
    expect(p!.sandboxes).to.deep.equal([
      { id: pod.sandboxId, state: 'SANDBOX_READY', attempt: 2, createdAt: sbStatus.createdAt, ip: '10.244.0.1', hostNetwork: false },
    ]);
    const cs = rt.containers.get(id)!.status;
    expect(p!.containers).to.deep.equal([
      {
        id,
        sandboxId: pod.sandboxId,
        name: 'app',
        hash: 'h1',
        restartCount: 3,
        state: 'CONTAINER_RUNNING',
        createdAt: cs.createdAt,
        startedAt: cs.startedAt,
        finishedAt: 0,
        exitCode: 0,
        reason: '',
        message: '',
        image: IMAGE,
        imageRef: cs.imageRef,
      },
    ]);
    expect(cs.startedAt).to.be.greaterThan(0);
    expect(cache.pods()).to.have.length(1);
  });

  it('reports an exited container with its exit code, reason, message and times', async () => {
    const pod = await runSandbox(rt, UID_A, 'job');
    const id = await addContainer(rt, pod, 'main');
    rt.exitContainer(id, 2, 'Error', 'boom');
    await cache.relist();
    const c = cache.get(UID_A)!.containers[0]!;
    expect(c).to.include({ state: 'CONTAINER_EXITED', exitCode: 2, reason: 'Error', message: 'boom' });
    expect(c.finishedAt).to.be.greaterThan(c.startedAt);
  });

  it('lists sandboxes and containers newest first', async () => {
    const old = await runSandbox(rt, UID_A, 'web', { attempt: 0 });
    const first = await addContainer(rt, old, 'app', { restartCount: 0 });
    rt.exitContainer(first, 1);
    const second = await addContainer(rt, old, 'app', { restartCount: 1 });
    await rt.stopPodSandbox(old.sandboxId);
    const fresh = await runSandbox(rt, UID_A, 'web', { attempt: 1 });
    const third = await addContainer(rt, fresh, 'app', { restartCount: 2 });

    await cache.relist();
    const p = cache.get(UID_A)!;
    expect(p.sandboxes.map((s) => [s.id, s.state, s.attempt])).to.deep.equal([
      [fresh.sandboxId, 'SANDBOX_READY', 1],
      [old.sandboxId, 'SANDBOX_NOTREADY', 0],
    ]);
    expect(p.containers.map((c) => [c.id, c.restartCount])).to.deep.equal([
      [third, 2],
      [second, 1],
      [first, 0],
    ]);
    // A sandbox that is not running has no pod IP any more.
    expect(p.sandboxes[1]!.ip).to.equal('');
  });

  it('gives a host-network sandbox no pod IP and says it uses the host network', async () => {
    await runSandbox(rt, UID_A, 'hostnet', { hostNetwork: true });
    await cache.relist();
    expect(cache.get(UID_A)!.sandboxes[0]).to.include({ hostNetwork: true, ip: '' });
  });

  it('groups by pod UID and ignores sandboxes and containers without the UID label', async () => {
    const a = await runSandbox(rt, UID_A, 'a');
    await addContainer(rt, a, 'app');
    const b = await runSandbox(rt, UID_B, 'b');
    await addContainer(rt, b, 'app');
    // Something else's objects in the same runtime.
    const foreign = await rt.runPodSandbox({ metadata: { name: 'x', namespace: 'default', uid: 'x', attempt: 0 }, labels: { app: 'x' } });
    await rt.createContainer(
      foreign,
      { metadata: { name: 'c', attempt: 0 }, image: { image: IMAGE }, labels: { [LABEL_CONTAINER_NAME]: 'c' } },
      { metadata: { name: 'x', namespace: 'default', uid: 'x', attempt: 0 } },
    );

    await cache.relist();
    expect(cache.pods().map((p) => p.uid).sort()).to.deep.equal([UID_A, UID_B]);
    expect(cache.get('x')).to.equal(undefined);
    expect(statusCalls(rt).some((c) => c.includes(foreign))).to.equal(false);
  });

  it('keeps a pod whose sandbox is gone while its containers remain', async () => {
    const pod = await runSandbox(rt, UID_A, 'web');
    await addContainer(rt, pod, 'app');
    rt.sandboxes.delete(pod.sandboxId);
    await cache.relist();
    const p = cache.get(UID_A)!;
    expect(p).to.include({ name: 'web', namespace: 'default' });
    expect(p.sandboxes).to.deep.equal([]);
    expect(p.containers).to.have.length(1);
  });

  it('makes no status calls for a steady pod, and re-queries only what changed state', async () => {
    const pod = await runSandbox(rt, UID_A, 'web');
    const app = await addContainer(rt, pod, 'app');
    const side = await addContainer(rt, pod, 'side');
    await cache.relist();
    expect(statusCalls(rt)).to.have.length(3);

    rt.calls.length = 0;
    await cache.relist();
    expect(rt.calls).to.deep.equal(['listPodSandbox', 'listContainers']);

    rt.exitContainer(side, 0);
    rt.calls.length = 0;
    await cache.relist();
    expect(statusCalls(rt)).to.deep.equal([`containerStatus ${side}`]);
    expect(cache.get(UID_A)!.containers.find((c) => c.id === side)).to.include({ state: 'CONTAINER_EXITED', reason: 'Completed' });
    expect(cache.get(UID_A)!.containers.find((c) => c.id === app)).to.include({ state: 'CONTAINER_RUNNING' });

    rt.killSandbox(pod.sandboxId);
    rt.calls.length = 0;
    await cache.relist();
    expect(statusCalls(rt)).to.deep.equal([`podSandboxStatus ${pod.sandboxId}`]);
    expect(cache.get(UID_A)!.sandboxes[0]).to.include({ state: 'SANDBOX_NOTREADY', ip: '' });

    rt.calls.length = 0;
    await cache.relist();
    expect(statusCalls(rt)).to.deep.equal([]);
  });

  it('inspects one pod alone, sharing the status cache, without looking at other pods', async () => {
    const a = await runSandbox(rt, UID_A, 'web');
    const b = await runSandbox(rt, UID_B, 'db');
    const appA = await addContainer(rt, a, 'app');
    await addContainer(rt, b, 'app');
    rt.calls.length = 0;
    const view = await cache.inspectPod(UID_A);
    expect(view.sandboxes.map((s) => s.id)).to.deep.equal([a.sandboxId]);
    expect(view.containers.map((c) => c.id)).to.deep.equal([appA]);
    expect(view).to.include({ uid: UID_A, name: 'web', namespace: 'default' });
    expect(statusCalls(rt)).to.deep.equal([`podSandboxStatus ${a.sandboxId}`, `containerStatus ${appA}`]);
    rt.calls.length = 0;
    await cache.inspectPod(UID_A);
    expect(statusCalls(rt)).to.deep.equal([]);
    // The relist reuses what inspectPod learned.
    rt.calls.length = 0;
    await cache.relist();
    expect(statusCalls(rt).filter((c) => c.includes(a.sandboxId) || c.includes(appA))).to.deep.equal([]);
  });

  it('inspecting a pod the runtime does not hold gives an empty pod; a failed status call throws', async () => {
    expect(await cache.inspectPod(UID_B)).to.deep.equal({ uid: UID_B, name: '', namespace: '', sandboxes: [], containers: [] });
    const a = await runSandbox(rt, UID_A, 'web');
    rt.injectErrors.set('podSandboxStatus', new NodeletError('CRI_RUNTIME_FAILED', 'docker is busy'));
    let caught: unknown;
    try {
      await cache.inspectPod(UID_A);
    } catch (err) {
      caught = err;
    }
    expect((caught as NodeletError).code).to.equal('CRI_RUNTIME_FAILED');
    expect(a.sandboxId).to.be.a('string');
  });

  it('forgets removed containers and pods', async () => {
    const pod = await runSandbox(rt, UID_A, 'web');
    const app = await addContainer(rt, pod, 'app');
    await cache.relist();
    await rt.removeContainer(app);
    await cache.relist();
    expect(cache.get(UID_A)!.containers).to.deep.equal([]);
    await rt.removePodSandbox(pod.sandboxId);
    await cache.relist();
    expect(cache.get(UID_A)).to.equal(undefined);
    expect(cache.pods()).to.deep.equal([]);
    // Nothing of the pod is left to query.
    rt.calls.length = 0;
    await cache.relist();
    expect(statusCalls(rt)).to.deep.equal([]);
  });

  it('skips a container removed between the list and its status call', async () => {
    const pod = await runSandbox(rt, UID_A, 'web');
    await addContainer(rt, pod, 'app');
    rt.injectErrors.set('containerStatus', new NodeletError('CRI_NOT_FOUND', 'container gone'));
    await cache.relist();
    const p = cache.get(UID_A)!;
    expect(p.containers).to.deep.equal([]);
    expect(p.sandboxes).to.have.length(1);
    expect(cache.stalePods().size).to.equal(0);
    // It is still listed, so the next relist asks again.
    await cache.relist();
    expect(cache.get(UID_A)!.containers).to.have.length(1);
  });

  it('keeps the previous view of a pod whose status call fails otherwise, and marks it stale', async () => {
    const pod = await runSandbox(rt, UID_A, 'web');
    const app = await addContainer(rt, pod, 'app');
    const b = await runSandbox(rt, UID_B, 'other');
    await cache.relist();
    const before = cache.get(UID_A);

    rt.exitContainer(app, 1);
    await rt.stopPodSandbox(b.sandboxId);
    rt.injectErrors.set('containerStatus', new NodeletError('CRI_RUNTIME_FAILED', 'inspect: 500'));
    await cache.relist();
    expect(cache.get(UID_A)).to.equal(before);
    expect([...cache.stalePods()]).to.deep.equal([UID_A]);
    // Other pods are refreshed.
    expect(cache.get(UID_B)!.sandboxes[0]!.state).to.equal('SANDBOX_NOTREADY');

    await cache.relist();
    expect(cache.stalePods().size).to.equal(0);
    expect(cache.get(UID_A)!.containers[0]).to.include({ state: 'CONTAINER_EXITED', exitCode: 1 });
  });

  it('leaves out a new pod whose first status call fails', async () => {
    const pod = await runSandbox(rt, UID_A, 'web');
    rt.injectErrors.set('podSandboxStatus', new NodeletError('CRI_RUNTIME_FAILED', 'inspect: 500'));
    await cache.relist();
    expect(cache.get(UID_A)).to.equal(undefined);
    expect(cache.stalePods().has(UID_A)).to.equal(true);
    await cache.relist();
    expect(cache.get(UID_A)!.sandboxes[0]!.id).to.equal(pod.sandboxId);
  });

  it('throws when a list fails and keeps the previous view', async () => {
    await runSandbox(rt, UID_A, 'web');
    await cache.relist();
    rt.injectErrors.set('listContainers', new NodeletError('CRI_RUNTIME_FAILED', 'docker down'));
    let err: unknown;
    await cache.relist().catch((e: unknown) => (err = e));
    expect((err as NodeletError).code).to.equal('CRI_RUNTIME_FAILED');
    expect(cache.get(UID_A)).to.not.equal(undefined);
  });
});

describe('runtime pod helpers', () => {
  const status = (network?: 'NODE' | 'POD'): PodSandboxStatus => ({
    id: 's',
    metadata: { name: 'p', namespace: 'default', uid: 'u', attempt: 0 },
    state: 'SANDBOX_READY',
    createdAt: 1,
    ...(network ? { linux: { namespaces: { options: { network } } } } : {}),
    labels: {},
    annotations: {},
    runtimeHandler: '',
  });

  it('reads host networking from the namespace options, else the runtime label', () => {
    expect(sandboxHostNetwork(status('NODE'), { [LABEL_HOST_NETWORK]: 'false' })).to.equal(true);
    expect(sandboxHostNetwork(status('POD'), {})).to.equal(false);
    expect(sandboxHostNetwork(status(), { [LABEL_HOST_NETWORK]: 'true' })).to.equal(true);
    expect(sandboxHostNetwork(status(), { [LABEL_HOST_NETWORK]: 'false' })).to.equal(false);
    expect(sandboxHostNetwork(status(), {})).to.equal(undefined);
    expect(sandboxHostNetwork(undefined, {})).to.equal(undefined);
  });

  it('reads the restart count annotation, falling back to the attempt', () => {
    expect(restartCountOf({ [ANNOTATION_RESTART_COUNT]: '4' }, 0)).to.equal(4);
    expect(restartCountOf({}, 2)).to.equal(2);
    expect(restartCountOf({ [ANNOTATION_RESTART_COUNT]: 'x' }, 1)).to.equal(1);
    expect(restartCountOf({ [ANNOTATION_RESTART_COUNT]: '-1' }, 1)).to.equal(1);
  });
});
