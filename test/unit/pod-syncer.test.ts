// PodSyncer over the fake runtime: the executor carries out computePodActions
// (sandbox, init order, app containers, restarts with back-off, pull errors,
// config errors, graceful deletion, cleanup) and reports status through the
// status manager. Pod IPs come from the fake runtime; node IPs from RFC 5737.
import type { V1Container, V1Pod } from '@kubernetes/client-node';
import { expect } from 'chai';
import { CONTAINER_EXITED, CONTAINER_RUNNING, SANDBOX_NOTREADY, SANDBOX_READY } from '../../cri/api.ts';
import { ANNOTATION_CONTAINER_HASH, ANNOTATION_RESTART_COUNT, LABEL_CONTAINER_NAME, LABEL_POD_UID } from '../../cri/labels.ts';
import { NodeletError } from '../../lib/errors.ts';
import { nullLogger } from '../../lib/log.ts';
import { containerHash } from '../../agent/pod/hash.ts';
import type { HookRunner } from '../../agent/pod/hooks.ts';
import { FakePodApi } from '../fakes/podapi.ts';
import { RuntimePodCache } from '../../agent/pod/runtimepods.ts';
import { StatusManager } from '../../agent/pod/statusmanager.ts';
import { PodSyncer, probeGracePeriod, type HostVolume, type PodVolumeHost } from '../../agent/pod/syncer.ts';
import type { Mount } from '../../cri/api.ts';
import type { RuntimePodStatus } from '../../agent/pod/types.ts';
import type { TrafficGate } from '../../agent/pod/trafficgate.ts';
import { FakeClock } from '../fakes/clock.ts';
import { FakeRuntime } from '../fakes/runtime.ts';

const UID = 'bbbbbbbb-0000-4000-8000-000000000001';
const IMAGE = 'nodelet.local/busybox:1.35';

class FakeVolumes implements PodVolumeHost {
  setUpCalls = 0;
  tornDown: string[] = [];
  failWith: Error | undefined;
  async setUp(): Promise<Map<string, HostVolume>> {
    this.setUpCalls++;
    if (this.failWith) throw this.failWith;
    return new Map([['data', { hostPath: '/var/lib/nodelet/pods/x/volumes/kubernetes.io~empty-dir/data', readOnly: false }]]);
  }
  async containerMounts(_pod: V1Pod, c: V1Container, volumes: Map<string, HostVolume>): Promise<{ mounts: Mount[] }> {
    return { mounts: (c.volumeMounts ?? []).map((m) => ({ containerPath: m.mountPath, hostPath: volumes.get(m.name)?.hostPath ?? '' })) };
  }
  async tearDown(uid: string): Promise<void> {
    this.tornDown.push(uid);
  }
}

class FakeHooks implements HookRunner {
  readonly ran: string[] = [];
  fail = false;
  async run(id: string, _pod: V1Pod, c: V1Container, h: { exec?: { command?: string[] } }): Promise<string | undefined> {
    this.ran.push(`${c.name}:${(h.exec?.command ?? []).join(' ')}:${id}`);
    return this.fail ? 'hook failed' : undefined;
  }
}

function pod(extra: Partial<V1Pod['spec']> = {}, containers: V1Container[] = [{ name: 'app', image: IMAGE }]): V1Pod {
  return {
    metadata: { name: 'web', namespace: 'default', uid: UID },
    spec: { nodeName: 'n1', restartPolicy: 'Always', containers, ...extra },
    status: { phase: 'Pending' },
  };
}

function setup(trafficGate?: TrafficGate) {
  const clock = new FakeClock();
  const rt = new FakeRuntime();
  rt.nowNs = clock.now() * 1e6;
  rt.addImage(IMAGE);
  const api = new FakePodApi();
  const log = nullLogger();
  const statuses = new StatusManager({ api, log });
  const events: string[] = [];
  const volumes = new FakeVolumes();
  const hooks = new FakeHooks();
  const cache = new RuntimePodCache(rt, log);
  let envError: Error | undefined;
  const syncer = new PodSyncer(
    {
      runtime: rt,
      clock,
      log,
      events: { podEvent: (_p, c, type, reason, message) => events.push(`${type} ${reason} ${c?.name ?? ''}: ${message}`) },
      statuses,
      podApi: api,
      env: async () => {
        if (envError) throw envError;
        return [{ key: 'A', value: '1' }];
      },
      expand: (c) => ({ command: c.command ?? [], args: c.args ?? [] }),
      volumes,
      hooks,
      pullSecrets: async () => [],
      probes: () => ({}),
      ...(trafficGate ? { trafficGate } : {}),
    },
    {
      nodeName: 'n1',
      hostIPs: ['192.0.2.10'],
      podLogsDir: '/var/log/pods',
      clusterDNS: ['10.96.0.10'],
      clusterDomain: 'cluster.local',
      hostDNS: () => ({ servers: [], searches: [], options: [] }),
      memoryCapacityBytes: 8 * 2 ** 30,
    },
  );
  const inspect = (): Promise<RuntimePodStatus> => cache.inspectPod(UID);
  const sync = (p: V1Pod | undefined, kill = false) => syncer.sync(UID, p, inspect, kill);
  return { clock, rt, api, events, volumes, hooks, sync, setEnvError: (e: Error | undefined) => (envError = e) };
}

function containersNamed(rt: FakeRuntime, name: string) {
  return [...rt.containers.values()].filter((c) => c.config.metadata.name === name);
}

describe('PodSyncer', () => {
  it('creates the sandbox and starts the container, labelled for recovery, and reports Running', async () => {
    const t = setup();
    const p = pod();
    await t.sync(p);
    expect(t.rt.sandboxes.size).to.equal(1);
    const [c] = containersNamed(t.rt, 'app');
    expect(c?.status.state).to.equal(CONTAINER_RUNNING);
    expect(c?.config.labels?.[LABEL_POD_UID]).to.equal(UID);
    expect(c?.config.labels?.[LABEL_CONTAINER_NAME]).to.equal('app');
    expect(c?.config.annotations?.[ANNOTATION_CONTAINER_HASH]).to.equal(containerHash(p.spec!.containers[0]!));
    expect(c?.config.annotations?.[ANNOTATION_RESTART_COUNT]).to.equal('0');
    expect(c?.config.envs).to.deep.equal([{ key: 'A', value: '1' }]);
    const sb = [...t.rt.sandboxes.values()][0]!;
    expect(sb.config.dnsConfig?.servers).to.deep.equal(['10.96.0.10']);
    expect(sb.config.dnsConfig?.searches.slice(0, 3)).to.deep.equal(['default.svc.cluster.local', 'svc.cluster.local', 'cluster.local']);
    const st = t.api.last();
    expect(st['phase']).to.equal('Running');
    expect(st['podIP']).to.be.a('string').and.not.equal('');
    expect(st['hostIP']).to.equal('192.0.2.10');
    expect(t.events).to.include('Normal Created app: Created container: app');
    expect(t.events).to.include('Normal Started app: Started container app');
    expect(t.volumes.setUpCalls).to.equal(1);
  });

  it('mounts the volumes the volume host set up', async () => {
    const t = setup();
    await t.sync(pod({}, [{ name: 'app', image: IMAGE, volumeMounts: [{ name: 'data', mountPath: '/data' }] }]));
    expect(containersNamed(t.rt, 'app')[0]?.config.mounts).to.deep.equal([
      { containerPath: '/data', hostPath: '/var/lib/nodelet/pods/x/volumes/kubernetes.io~empty-dir/data' },
    ]);
  });

  it('does nothing and patches nothing when the pod is already as wanted', async () => {
    const t = setup();
    const p = pod();
    await t.sync(p);
    const patches = t.api.patches.length;
    const calls = t.rt.calls.filter((c) => c.startsWith('create') || c.startsWith('run')).length;
    await t.sync(p);
    expect(t.rt.calls.filter((c) => c.startsWith('create') || c.startsWith('run')).length).to.equal(calls);
    expect(t.api.patches.length).to.equal(patches);
  });

  it('restarts a crashed container with a higher restart count, then backs off with CrashLoopBackOff', async () => {
    const t = setup();
    const p = pod();
    await t.sync(p);
    const first = containersNamed(t.rt, 'app')[0]!;
    t.rt.exitContainer(first.id, 1);
    await t.sync(p);
    const second = containersNamed(t.rt, 'app').find((c) => c.id !== first.id)!;
    expect(second.config.annotations?.[ANNOTATION_RESTART_COUNT]).to.equal('1');
    t.rt.exitContainer(second.id, 1);
    const r = await t.sync(p);
    expect(containersNamed(t.rt, 'app')).to.have.length(2); // not started a third time yet
    expect(r.requeueAfterMs).to.be.a('number');
    const st = t.api.last() as { containerStatuses?: { state?: { waiting?: { reason?: string; message?: string } }; restartCount?: number }[] };
    const cs = st.containerStatuses?.[0];
    expect(cs?.state?.waiting?.reason).to.equal('CrashLoopBackOff');
    expect(cs?.state?.waiting?.message).to.match(/^back-off 10s restarting failed container=app pod=web_default/);
    expect(cs?.restartCount).to.equal(1);
    expect(t.events.some((e) => e.startsWith('Warning BackOff app'))).to.equal(true);
  });

  it('runs a restartPolicy Never pod to Succeeded and stops its sandbox', async () => {
    const t = setup();
    const p = pod({ restartPolicy: 'Never' });
    await t.sync(p);
    const c = containersNamed(t.rt, 'app')[0]!;
    t.rt.exitContainer(c.id, 0);
    await t.sync(p);
    expect(t.api.last()['phase']).to.equal('Succeeded');
    expect([...t.rt.sandboxes.values()][0]!.status.state).to.equal(SANDBOX_NOTREADY);
    expect(containersNamed(t.rt, 'app')).to.have.length(1);
  });

  it('ends Failed when a Never container exits non-zero', async () => {
    const t = setup();
    const p = pod({ restartPolicy: 'Never' });
    await t.sync(p);
    t.rt.exitContainer(containersNamed(t.rt, 'app')[0]!.id, 3);
    await t.sync(p);
    expect(t.api.last()['phase']).to.equal('Failed');
  });

  it('runs init containers one at a time before the app container', async () => {
    const t = setup();
    const p = pod({}, [{ name: 'app', image: IMAGE }]);
    p.spec!.initContainers = [{ name: 'init1', image: IMAGE }, { name: 'init2', image: IMAGE }];
    await t.sync(p);
    expect(containersNamed(t.rt, 'init1')).to.have.length(1);
    expect(containersNamed(t.rt, 'init2')).to.have.length(0);
    expect(containersNamed(t.rt, 'app')).to.have.length(0);
    expect((t.api.last() as { initContainerStatuses?: unknown[] }).initContainerStatuses).to.have.length(2);
    t.rt.exitContainer(containersNamed(t.rt, 'init1')[0]!.id, 0);
    await t.sync(p);
    expect(containersNamed(t.rt, 'init2')).to.have.length(1);
    expect(containersNamed(t.rt, 'app')).to.have.length(0);
    t.rt.exitContainer(containersNamed(t.rt, 'init2')[0]!.id, 0);
    await t.sync(p);
    expect(containersNamed(t.rt, 'app')[0]?.status.state).to.equal(CONTAINER_RUNNING);
  });

  it('reports ErrImagePull, then ImagePullBackOff, for an image that cannot be pulled', async () => {
    const t = setup();
    const p = pod({}, [{ name: 'app', image: 'nodelet.local/missing:1' }]);
    await t.sync(p);
    const waiting = () => ((t.api.last() as { containerStatuses?: { state?: { waiting?: { reason?: string } } }[] }).containerStatuses?.[0]?.state?.waiting?.reason);
    expect(waiting()).to.equal('ErrImagePull');
    expect(t.events.some((e) => e.startsWith('Normal Pulling app: Pulling image "nodelet.local/missing:1"'))).to.equal(true);
    await t.sync(p);
    expect(waiting()).to.equal('ImagePullBackOff');
    expect(containersNamed(t.rt, 'app')).to.have.length(0);
  });

  it('reports InvalidImageName for a malformed image reference', async () => {
    const t = setup();
    await t.sync(pod({}, [{ name: 'app', image: 'UPPER/Case::bad' }]));
    const cs = (t.api.last() as { containerStatuses?: { state?: { waiting?: { reason?: string } } }[] }).containerStatuses?.[0];
    expect(cs?.state?.waiting?.reason).to.equal('InvalidImageName');
  });

  it('reports CreateContainerConfigError with the env error message', async () => {
    const t = setup();
    t.setEnvError(new NodeletError('CreateContainerConfigError', 'configmap "cfg" not found'));
    await t.sync(pod());
    const cs = (t.api.last() as { containerStatuses?: { state?: { waiting?: { reason?: string; message?: string } } }[] }).containerStatuses?.[0];
    expect(cs?.state?.waiting).to.deep.equal({ reason: 'CreateContainerConfigError', message: 'configmap "cfg" not found' });
    expect(t.events).to.include('Warning Failed app: Error: configmap "cfg" not found');
  });

  it('does not start containers while a volume cannot be mounted, and says why in an event', async () => {
    const t = setup();
    t.volumes.failWith = new NodeletError('FailedMount', 'MountVolume.SetUp failed for volume "cfg" : configmap "cfg" not found');
    const r = await t.sync(pod());
    expect(t.rt.sandboxes.size).to.equal(0);
    expect(r.requeueAfterMs).to.be.a('number');
    expect(t.events.some((e) => e.startsWith('Warning FailedMount'))).to.equal(true);
  });

  it('on deletion runs preStop, stops the containers, reports the final status and deletes with grace 0', async () => {
    const t = setup();
    const p = pod({ terminationGracePeriodSeconds: 5 }, [{ name: 'app', image: IMAGE, lifecycle: { preStop: { exec: { command: ['sh', '-c', 'echo bye'] } } } }]);
    await t.sync(p);
    const deleting: V1Pod = { ...p, metadata: { ...p.metadata, deletionTimestamp: new Date(t.clock.now()), deletionGracePeriodSeconds: 5 } };
    await t.sync(deleting);
    expect(t.hooks.ran).to.have.length(1);
    expect(t.hooks.ran[0]).to.match(/^app:sh -c echo bye:/);
    expect(containersNamed(t.rt, 'app')[0]?.status.state).to.equal(CONTAINER_EXITED);
    expect(t.rt.calls.some((c) => c.startsWith('stopContainer'))).to.equal(true);
    expect(t.api.deleted).to.deep.equal([`default/web/${UID}`]);
    expect(t.events).to.include('Normal Killing app: Stopping container app');
  });

  it('on deletion waits for the service proxy to stop routing to the pod before stopping it; the wait comes off the grace', async () => {
    const asked: Array<{ ips: readonly string[]; timeoutMs: number; stopsBefore: number }> = [];
    let t: ReturnType<typeof setup>;
    const gate: TrafficGate = {
      waitUnrouted: async (ips, timeoutMs) => {
        asked.push({ ips, timeoutMs, stopsBefore: t.rt.calls.filter((c) => c.startsWith('stopContainer')).length });
        await t.clock.advance(1500);
        return 'unrouted';
      },
    };
    t = setup(gate);
    const p = pod({ terminationGracePeriodSeconds: 30 });
    await t.sync(p);
    const running: V1Pod = { ...p, status: { podIP: '10.244.1.7', podIPs: [{ ip: '10.244.1.7' }] } };
    const deleting: V1Pod = { ...running, metadata: { ...p.metadata, deletionTimestamp: new Date(t.clock.now()), deletionGracePeriodSeconds: 30 } };
    await t.sync(deleting);
    // Asked once, before any container was stopped, bounded by 5 s (under half the grace).
    expect(asked).to.deep.equal([{ ips: ['10.244.1.7'], timeoutMs: 5000, stopsBefore: 0 }]);
    const stop = t.rt.calls.find((c) => c.startsWith('stopContainer'));
    expect(stop, 'the container stopped after the wait').to.not.equal(undefined);
    expect(stop).to.match(/ 29$/); // 30 s grace less the whole second waited
    expect(t.api.deleted).to.deep.equal([`default/web/${UID}`]);
  });

  it('does not ask the proxy for a pod without an IP, a host-network pod, or a grace of 0', async () => {
    const asked: string[][] = [];
    const gate: TrafficGate = { waitUnrouted: async (ips) => (asked.push([...ips]), 'unrouted') };
    for (const [spec, status, grace] of [
      [{}, {}, 30],
      [{ hostNetwork: true }, { podIP: '192.0.2.10' }, 30],
      [{}, { podIP: '10.244.1.8' }, 0],
    ] as const) {
      const t = setup(gate);
      const p = pod({ terminationGracePeriodSeconds: 30, ...spec });
      await t.sync(p);
      await t.sync({ ...p, status: { ...status }, metadata: { ...p.metadata, deletionTimestamp: new Date(t.clock.now()), deletionGracePeriodSeconds: grace } });
      expect(t.rt.calls.some((c) => c.startsWith('stopContainer'))).to.equal(true);
    }
    expect(asked).to.deep.equal([]);
  });

  it('removes everything and tears down volumes once the API has no such pod', async () => {
    const t = setup();
    await t.sync(pod());
    const r = await t.sync(undefined, true);
    expect(r.done).to.equal(true);
    expect(t.rt.sandboxes.size).to.equal(0);
    expect(t.rt.containers.size).to.equal(0);
    expect(t.volumes.tornDown).to.deep.equal([UID]);
  });

  it('kills a container whose postStart hook fails', async () => {
    const t = setup();
    t.hooks.fail = true;
    await t.sync(pod({}, [{ name: 'app', image: IMAGE, lifecycle: { postStart: { exec: { command: ['false'] } } } }]));
    expect(containersNamed(t.rt, 'app')[0]?.status.state).to.equal(CONTAINER_EXITED);
    expect(t.events).to.include('Warning FailedPostStartHook app: PostStartHook failed');
  });

  it('replaces a sandbox that died, with the next attempt number', async () => {
    const t = setup();
    const p = pod();
    await t.sync(p);
    const sb = [...t.rt.sandboxes.values()][0]!;
    t.rt.killSandbox(sb.id);
    await t.sync(p);
    const sbs = [...t.rt.sandboxes.values()];
    const ready = sbs.filter((s) => s.status.state === SANDBOX_READY);
    expect(ready).to.have.length(1);
    expect(ready[0]!.config.metadata.attempt).to.equal(1);
    expect(t.events).to.include('Normal SandboxChanged : Pod sandbox changed, it will be killed and re-created.');
  });
});

describe('probeGracePeriod', () => {
  it('takes the startup probe\'s grace before the container started, else the liveness probe\'s', () => {
    const c: V1Container = { name: 'app', startupProbe: { terminationGracePeriodSeconds: 3 }, livenessProbe: { terminationGracePeriodSeconds: 7 } };
    expect(probeGracePeriod(c, {})).to.equal(3);
    expect(probeGracePeriod(c, { started: new Set(['app']) })).to.equal(7);
    expect(probeGracePeriod({ name: 'x', livenessProbe: {} }, {})).to.equal(undefined);
  });
});
