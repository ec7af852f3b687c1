// The prober manager and its workers over a FakeClock and the FakeRuntime's
// execSync (execResults): thresholds, initial delay, periods, startup gating,
// reset on a new container instance, hold after a liveness failure, stop
// conditions, triggers, events and metrics; one httpGet pod against a local
// server on 127.0.0.1. Fake pod IPs are from TEST-NET-1 (RFC 5737).
import type { V1Container, V1Pod, V1Probe } from '@kubernetes/client-node';
import { expect } from 'chai';
import http from 'node:http';
import type net from 'node:net';
import { Registry } from 'prom-client';
import { CONTAINER_EXITED, CONTAINER_RUNNING, SANDBOX_READY } from '../../cri/api.ts';
import type { ContainerState } from '../../cri/api.ts';
import type { Clock } from '../../lib/clock.ts';
import { nullLogger } from '../../lib/log.ts';
import { ProbeManager, wantedProbes } from '../../agent/prober/manager.ts';
import { RuntimePodCache } from '../../agent/pod/runtimepods.ts';
import { StatusManager } from '../../agent/pod/statusmanager.ts';
import { PodSyncer } from '../../agent/pod/syncer.ts';
import type { RuntimeContainer, RuntimePodStatus } from '../../agent/pod/types.ts';
import { FakeClock, settle } from '../fakes/clock.ts';
import { FakePodApi } from '../fakes/podapi.ts';
import { FakeRuntime } from '../fakes/runtime.ts';

const UID = 'cccccccc-0000-4000-8000-000000000001';
const IMAGE = 'nodelet.local/busybox:1.35';
const OK = { stdout: Buffer.from('fine'), stderr: Buffer.alloc(0), exitCode: 0 };
const BAD = { stdout: Buffer.from('not yet'), stderr: Buffer.alloc(0), exitCode: 1 };

const exec = (cmd: string, extra: Partial<V1Probe> = {}): V1Probe => ({ exec: { command: cmd.split(' ') }, periodSeconds: 10, ...extra });

function makePod(c: Partial<V1Container>, extra: Partial<V1Pod['spec']> = {}): V1Pod {
  return {
    metadata: { name: 'web', namespace: 'probes', uid: UID },
    spec: { containers: [{ name: 'app', image: IMAGE, ...c }], ...extra },
    status: { phase: 'Running' },
  };
}

function setup(random = () => 0) {
  const clock = new FakeClock();
  const rt = new FakeRuntime();
  rt.addImage(IMAGE);
  const changes: string[] = [];
  const events: string[] = [];
  const registry = new Registry();
  const prober = new ProbeManager({
    runtime: rt,
    clock,
    log: nullLogger(),
    registry,
    events: { podEvent: (_pod, c, type, reason, message) => events.push(`${c?.name ?? ''} ${type} ${reason} ${message}`) },
    onChange: (uid) => changes.push(uid),
    random,
  });
  const sandboxMeta = { name: 'web', namespace: 'probes', uid: UID, attempt: 0 };
  let sandbox = '';
  const containers: RuntimeContainer[] = [];

  /** Starts a new instance of a container in the fake runtime, started now (by the FakeClock). */
  async function start(name = 'app'): Promise<string> {
    sandbox ||= await rt.runPodSandbox({ metadata: sandboxMeta });
    const attempt = containers.filter((c) => c.name === name).length;
    const id = await rt.createContainer(sandbox, { metadata: { name, attempt }, image: { image: IMAGE } }, { metadata: sandboxMeta });
    await rt.startContainer(id);
    const nowNs = clock.now() * 1e6;
    containers.unshift({
      id, sandboxId: sandbox, name, hash: '1', restartCount: attempt, state: CONTAINER_RUNNING as ContainerState,
      createdAt: nowNs, startedAt: nowNs, finishedAt: 0, exitCode: 0, reason: '', message: '', image: IMAGE, imageRef: '',
    });
    return id;
  }
  function exit(id: string, exitCode: number): void {
    rt.exitContainer(id, exitCode);
    const c = containers.find((x) => x.id === id)!;
    c.state = CONTAINER_EXITED as ContainerState;
    c.exitCode = exitCode;
  }
  function view(): RuntimePodStatus {
    return {
      uid: UID, name: 'web', namespace: 'probes',
      sandboxes: sandbox ? [{ id: sandbox, state: SANDBOX_READY, attempt: 0, createdAt: 0, ip: '192.0.2.7' }] : [],
      containers: containers.map((c) => ({ ...c })),
    };
  }
  const execs = (cmd: string) => rt.calls.filter((c) => c.startsWith('execSync ') && c.endsWith(` ${cmd}`)).length;
  return { clock, rt, prober, changes, events, registry, start, exit, view, execs };
}

/** Container app of pod web started (at `nowMs`) in `rt`, and the runtime's view of it. */
async function runningApp(rt: FakeRuntime, nowMs: number): Promise<RuntimePodStatus> {
  rt.addImage(IMAGE);
  const meta = { name: 'web', namespace: 'probes', uid: UID, attempt: 0 };
  const sb = await rt.runPodSandbox({ metadata: meta });
  const id = await rt.createContainer(sb, { metadata: { name: 'app', attempt: 0 }, image: { image: IMAGE } }, { metadata: meta });
  await rt.startContainer(id);
  return {
    uid: UID, name: 'web', namespace: 'probes',
    sandboxes: [{ id: sb, state: SANDBOX_READY, attempt: 0, createdAt: 0, ip: '192.0.2.7' }],
    containers: [{ id, sandboxId: sb, name: 'app', hash: '1', restartCount: 0, state: CONTAINER_RUNNING as ContainerState, createdAt: 0, startedAt: nowMs * 1e6, finishedAt: 0, exitCode: 0, reason: '', message: '', image: IMAGE, imageRef: '' }],
  };
}

describe('prober: manager and workers', () => {
  it('finds probes on app containers and sidecars, not on regular init containers', () => {
    const pod = makePod({ readinessProbe: exec('r'), livenessProbe: exec('l') }, {
      initContainers: [
        { name: 'init', image: IMAGE, startupProbe: exec('s') },
        { name: 'side', image: IMAGE, restartPolicy: 'Always', startupProbe: exec('s') },
      ],
    });
    expect(wantedProbes(pod).map((w) => `${w.container.name}/${w.type}`)).to.deep.equal(['side/startup', 'app/liveness', 'app/readiness']);
  });

  it('readiness starts failing, turns ready on success and asks for a sync', async () => {
    const t = setup();
    t.rt.execResults.set('ready', OK);
    const pod = makePod({ readinessProbe: exec('ready') });
    t.prober.syncPod(pod, t.view());
    expect(t.prober.state(UID).ready?.has('app') ?? false).to.equal(false);
    await t.start();
    t.prober.syncPod(pod, t.view());
    expect(t.prober.state(UID).ready?.has('app')).to.equal(false); // nothing probed yet
    await settle();
    expect(t.prober.state(UID).ready?.has('app')).to.equal(true);
    expect(t.changes).to.deep.equal([UID]);
  });

  it('readiness needs failureThreshold failures in a row to drop and successThreshold successes to return', async () => {
    const t = setup();
    t.rt.execResults.set('ready', OK);
    const pod = makePod({ readinessProbe: exec('ready', { failureThreshold: 3, successThreshold: 2 }) });
    await t.start();
    t.prober.syncPod(pod, t.view());
    await settle();
    expect(t.prober.state(UID).ready?.has('app')).to.equal(false); // one success of two
    await t.clock.advance(10_000);
    expect(t.prober.state(UID).ready?.has('app')).to.equal(true);
    t.rt.execResults.set('ready', BAD);
    await t.clock.advance(10_000);
    await t.clock.advance(10_000);
    expect(t.prober.state(UID).ready?.has('app')).to.equal(true); // two failures of three
    await t.clock.advance(10_000);
    expect(t.prober.state(UID).ready?.has('app')).to.equal(false);
    // Every failed probe is an event, worded as upstream.
    expect(t.events.filter((e) => e === 'app Warning Unhealthy Readiness probe failed: not yet')).to.have.length(3);
    t.rt.execResults.set('ready', OK);
    await t.clock.advance(10_000);
    expect(t.prober.state(UID).ready?.has('app')).to.equal(false);
    await t.clock.advance(10_000);
    expect(t.prober.state(UID).ready?.has('app')).to.equal(true);
    expect(t.changes).to.have.length(3);
  });

  it('probes every periodSeconds, not before', async () => {
    const t = setup();
    const pod = makePod({ livenessProbe: exec('alive', { periodSeconds: 2 }) });
    await t.start();
    t.prober.syncPod(pod, t.view());
    await settle();
    expect(t.execs('alive')).to.equal(1);
    await t.clock.advance(1_999);
    expect(t.execs('alive')).to.equal(1);
    await t.clock.advance(1);
    expect(t.execs('alive')).to.equal(2);
    await t.clock.advance(6_000);
    expect(t.execs('alive')).to.equal(5);
  });

  it('probes once per tick when the timer wakes a little early', async () => {
    // Node's timers count from the loop's cached time, so they can fire a few ms before Date.now() reaches the tick.
    const inner = new FakeClock();
    const early: Clock = { now: () => inner.now(), sleep: (ms, signal) => inner.sleep(Math.max(0, ms - 3), signal) };
    const rt = new FakeRuntime();
    const prober = new ProbeManager({ runtime: rt, clock: early, log: nullLogger(), registry: new Registry(), events: { podEvent: () => {} }, onChange: () => {}, random: () => 0 });
    const view = await runningApp(rt, inner.now());
    prober.syncPod(makePod({ livenessProbe: exec('alive', { periodSeconds: 1 }) }), view);
    await settle();
    for (let i = 0; i < 100; i++) await inner.advance(100);
    // The first probe at once, then one per second for 10 s.
    expect(rt.calls.filter((c) => c.startsWith('execSync')).length).to.equal(11);
    prober.stop();
  });

  it('tells how late each scheduled probe starts (not counting triggered ones)', async () => {
    const clock = new FakeClock();
    const rt = new FakeRuntime();
    const late: number[] = [];
    const prober = new ProbeManager({
      runtime: rt, clock, log: nullLogger(), registry: new Registry(), events: { podEvent: () => {} }, onChange: () => {},
      random: () => 0.25, onProbeLateness: (ms) => late.push(ms),
    });
    rt.execResults.set('ready', BAD);
    const view = await runningApp(rt, clock.now());
    const pod = makePod({ readinessProbe: exec('ready', { periodSeconds: 4 }) });
    prober.syncPod(pod, view);
    await clock.advance(1_000); // the spread: a quarter of the period
    expect(late).to.deep.equal([0]);
    prober.syncPod(pod, view); // not ready: triggers an extra probe
    await settle();
    expect(rt.calls.filter((c) => c.startsWith('execSync')).length).to.equal(2);
    await clock.advance(8_000);
    expect(late).to.deep.equal([0, 0, 0]); // ticks at 5 s and 9 s
    prober.stop();
  });

  it('waits initialDelaySeconds after the container started', async () => {
    const t = setup();
    const pod = makePod({ livenessProbe: exec('alive', { periodSeconds: 1, initialDelaySeconds: 5 }) });
    await t.start();
    t.prober.syncPod(pod, t.view());
    await t.clock.advance(4_000);
    expect(t.execs('alive')).to.equal(0);
    await t.clock.advance(1_000);
    expect(t.execs('alive')).to.equal(1);
  });

  it('liveness fails after failureThreshold, holds, and a new container instance starts over', async () => {
    const t = setup();
    t.rt.execResults.set('alive', BAD);
    const pod = makePod({ livenessProbe: exec('alive', { failureThreshold: 2 }) });
    const first = await t.start();
    t.prober.syncPod(pod, t.view());
    await settle();
    expect(t.prober.state(UID).unhealthy?.has('app')).to.equal(false); // liveness starts healthy
    await t.clock.advance(10_000);
    expect(t.prober.state(UID).unhealthy?.has('app')).to.equal(true);
    expect(t.changes).to.deep.equal([UID]);
    expect(t.events).to.include('app Warning Unhealthy Liveness probe failed: not yet');
    // On hold: the doomed container is not probed again.
    await t.clock.advance(30_000);
    expect(t.execs('alive')).to.equal(2);
    // The syncer killed it and started another: its verdict starts over.
    t.exit(first, 137);
    await t.start();
    t.prober.syncPod(pod, t.view());
    expect(t.prober.state(UID).unhealthy?.has('app')).to.equal(false);
    t.rt.execResults.set('alive', OK);
    await t.clock.advance(10_000);
    expect(t.execs('alive')).to.be.greaterThan(2);
    expect(t.prober.state(UID).unhealthy?.has('app')).to.equal(false);
  });

  it('a new container instance resets readiness to not ready', async () => {
    const t = setup();
    t.rt.execResults.set('ready', OK);
    const pod = makePod({ readinessProbe: exec('ready', { initialDelaySeconds: 3 }) });
    const first = await t.start();
    t.prober.syncPod(pod, t.view());
    await t.clock.advance(10_000);
    expect(t.prober.state(UID).ready?.has('app')).to.equal(true);
    t.exit(first, 1);
    await t.start();
    t.prober.syncPod(pod, t.view());
    expect(t.prober.state(UID).ready?.has('app')).to.equal(false);
  });

  it('a startup probe holds liveness and readiness until it succeeds', async () => {
    const t = setup();
    t.rt.execResults.set('started', BAD);
    t.rt.execResults.set('alive', BAD);
    t.rt.execResults.set('ready', OK);
    const pod = makePod({
      startupProbe: exec('started', { periodSeconds: 1, failureThreshold: 30 }),
      livenessProbe: exec('alive', { periodSeconds: 1, failureThreshold: 1 }),
      readinessProbe: exec('ready', { periodSeconds: 1 }),
    });
    await t.start();
    t.prober.syncPod(pod, t.view());
    await t.clock.advance(10_000);
    expect(t.execs('started')).to.be.greaterThan(5);
    expect(t.execs('alive')).to.equal(0);
    expect(t.execs('ready')).to.equal(0);
    let s = t.prober.state(UID);
    expect(s.started?.has('app')).to.equal(false);
    expect(s.unhealthy?.has('app')).to.equal(false);
    t.rt.execResults.set('started', OK);
    t.rt.execResults.set('alive', OK);
    await t.clock.advance(1_000);
    s = t.prober.state(UID);
    expect(s.started?.has('app')).to.equal(true);
    const startupRuns = t.execs('started');
    await t.clock.advance(3_000);
    expect(t.execs('started')).to.equal(startupRuns); // done once started
    expect(t.execs('alive')).to.be.greaterThan(0);
    expect(t.prober.state(UID).ready?.has('app')).to.equal(true);
  });

  it('a startup probe failing past its threshold marks the container unhealthy', async () => {
    const t = setup();
    t.rt.execResults.set('started', BAD);
    const pod = makePod({ startupProbe: exec('started', { periodSeconds: 1, failureThreshold: 3 }) });
    await t.start();
    t.prober.syncPod(pod, t.view());
    await t.clock.advance(1_000);
    expect(t.prober.state(UID).unhealthy?.has('app')).to.equal(false); // two failures of three
    await t.clock.advance(1_000);
    const s = t.prober.state(UID);
    expect(s.unhealthy?.has('app')).to.equal(true);
    expect(s.started?.has('app')).to.equal(false);
    expect(t.events).to.include('app Warning Unhealthy Startup probe failed: not yet');
  });

  it('an exec probe that times out counts as a failure', async () => {
    const t = setup();
    t.rt.execResults.set('slow', 'timeout');
    const pod = makePod({ livenessProbe: exec('slow', { failureThreshold: 1, timeoutSeconds: 1 }) });
    await t.start();
    t.prober.syncPod(pod, t.view());
    await settle();
    expect(t.prober.state(UID).unhealthy?.has('app')).to.equal(true);
    expect(t.events).to.include('app Warning Unhealthy Liveness probe failed: command timed out: "slow" timed out after 1s');
  });

  it('a probe that cannot run keeps the verdict and says it errored', async () => {
    const t = setup();
    const pod = makePod({ livenessProbe: exec('alive', { failureThreshold: 1 }) });
    const id = await t.start();
    t.rt.containers.delete(id); // gone from the runtime behind our back
    t.prober.syncPod(pod, t.view());
    await settle();
    expect(t.prober.state(UID).unhealthy?.has('app')).to.equal(false);
    expect(t.events[0]).to.match(/^app Warning Unhealthy Liveness probe errored and resulted in unknown state: /);
  });

  it('a syncPod triggers an early readiness probe of a running container not yet ready', async () => {
    const t = setup();
    t.rt.execResults.set('ready', BAD);
    const pod = makePod({ readinessProbe: exec('ready') });
    await t.start();
    t.prober.syncPod(pod, t.view());
    await settle();
    expect(t.execs('ready')).to.equal(1);
    t.rt.execResults.set('ready', OK);
    t.prober.syncPod(pod, t.view());
    await settle();
    expect(t.execs('ready')).to.equal(2);
    expect(t.prober.state(UID).ready?.has('app')).to.equal(true);
    // Ready now: another sync does not probe early.
    t.prober.syncPod(pod, t.view());
    await settle();
    expect(t.execs('ready')).to.equal(2);
  });

  it('right after start, first probes are spread over the period', async () => {
    const t = setup(() => 0.5);
    const pod = makePod({ livenessProbe: exec('alive', { periodSeconds: 10 }) });
    await t.start();
    t.prober.syncPod(pod, t.view());
    await t.clock.advance(4_999);
    expect(t.execs('alive')).to.equal(0);
    await t.clock.advance(1);
    expect(t.execs('alive')).to.equal(1);
  });

  it('stops when the container exited for good (restartPolicy Never) and when the pod is terminal or removed', async () => {
    const t = setup();
    const pod = makePod({ livenessProbe: exec('alive', { periodSeconds: 1 }) }, { restartPolicy: 'Never' });
    const id = await t.start();
    t.prober.syncPod(pod, t.view());
    await t.clock.advance(2_000);
    const before = t.execs('alive');
    t.exit(id, 0);
    t.prober.syncPod(pod, t.view());
    await t.clock.advance(5_000);
    expect(t.execs('alive')).to.equal(before);
    expect(t.rt.calls.filter((c) => c.startsWith('execSync')).length).to.equal(before);
    expect(t.clock.pending).to.equal(0); // no worker left waiting

    t.prober.syncPod({ ...pod, status: { phase: 'Succeeded' } }, t.view());
    expect(t.prober.podCount()).to.equal(0);
    expect(t.prober.state(UID)).to.deep.equal({});

    const t2 = setup();
    const p2 = makePod({ readinessProbe: exec('ready', { periodSeconds: 1 }) });
    await t2.start();
    t2.prober.syncPod(p2, t2.view());
    await t2.clock.advance(1_000);
    t2.prober.removePod(UID);
    const n = t2.execs('ready');
    await t2.clock.advance(5_000);
    expect(t2.execs('ready')).to.equal(n);
    expect(t2.clock.pending).to.equal(0);
  });

  it('after a nodelet restart, an instance the pod status reports ready and started stays so until probed otherwise', async () => {
    const t = setup(() => 0.5);
    t.rt.execResults.set('ready', BAD);
    const pod = makePod({ readinessProbe: exec('ready', { periodSeconds: 1, failureThreshold: 2 }), startupProbe: exec('started', { periodSeconds: 1 }) });
    const id = await t.start();
    const reported: V1Pod = { ...pod, status: { phase: 'Running', containerStatuses: [{ name: 'app', containerID: `docker://${id}`, ready: true, started: true, restartCount: 0, image: IMAGE, imageID: '', state: { running: {} } }] } };
    t.prober.syncPod(reported, t.view());
    let s = t.prober.state(UID);
    expect(s.ready?.has('app')).to.equal(true);
    expect(s.started?.has('app')).to.equal(true);
    await t.clock.advance(1_000);
    expect(t.prober.state(UID).ready?.has('app')).to.equal(true); // one failure of two
    await t.clock.advance(1_000);
    expect(t.prober.state(UID).ready?.has('app')).to.equal(false);
    expect(t.execs('started')).to.equal(0); // started already: the startup probe is done
    // A status about another instance does not count.
    const t2 = setup();
    await t2.start();
    t2.prober.syncPod({ ...reported, status: { ...reported.status, containerStatuses: [{ ...reported.status!.containerStatuses![0]!, containerID: 'docker://other' }] } }, t2.view());
    s = t2.prober.state(UID);
    expect(s.ready?.has('app')).to.equal(false);
    expect(s.started?.has('app')).to.equal(false);
  });

  it('a container that exited (and will restart) is unhealthy and not ready until its next instance', async () => {
    const t = setup();
    t.rt.execResults.set('ready', OK);
    const pod = makePod({ readinessProbe: exec('ready', { periodSeconds: 1 }) });
    const id = await t.start();
    t.prober.syncPod(pod, t.view());
    await settle();
    expect(t.prober.state(UID).ready?.has('app')).to.equal(true);
    t.exit(id, 1);
    t.prober.syncPod(pod, t.view());
    await t.clock.advance(1_000);
    expect(t.prober.state(UID).ready?.has('app')).to.equal(false);
    expect(t.clock.pending).to.be.greaterThan(0); // still watching for the restart
  });

  it('a pod being deleted is not restarted for failing liveness', async () => {
    const t = setup();
    t.rt.execResults.set('alive', BAD);
    const pod = makePod({ livenessProbe: exec('alive', { periodSeconds: 1, failureThreshold: 1 }) });
    await t.start();
    const deleting: V1Pod = { ...pod, metadata: { ...pod.metadata, deletionTimestamp: new Date(t.clock.now()) } };
    t.prober.syncPod(deleting, t.view());
    await t.clock.advance(3_000);
    expect(t.execs('alive')).to.equal(0);
    expect(t.prober.state(UID).unhealthy?.has('app')).to.equal(false);
  });

  it('counts probes in prober_probe_total and times them in prober_probe_duration_seconds', async () => {
    const t = setup();
    t.rt.execResults.set('ready', BAD);
    const pod = makePod({ readinessProbe: exec('ready', { periodSeconds: 1 }) });
    await t.start();
    t.prober.syncPod(pod, t.view());
    await t.clock.advance(2_000);
    t.rt.execResults.set('ready', OK);
    await t.clock.advance(1_000);
    const total = await t.registry.getSingleMetric('prober_probe_total')!.get();
    const by = (r: string) => total.values.find((v) => v.labels.result === r);
    expect(by('failed')?.value).to.equal(3);
    expect(by('successful')?.value).to.equal(1);
    expect(by('failed')?.labels).to.deep.include({ probe_type: 'Readiness', container: 'app', pod: 'web', namespace: 'probes', pod_uid: UID });
    const dur = await t.registry.getSingleMetric('prober_probe_duration_seconds')!.get();
    expect(dur.values.find((v) => (v as { metricName?: string }).metricName === 'prober_probe_duration_seconds_count')?.value).to.equal(4);
    // A removed pod's series go with it.
    t.prober.removePod(UID);
    expect((await t.registry.getSingleMetric('prober_probe_total')!.get()).values).to.have.length(0);
  });

  it('probes a dual-stack pod on its IP of the node\'s primary family (status.podIP), as upstream', async () => {
    for (const [hostIPs, want] of [[['192.0.2.10'], '10.244.1.7'], [['2001:db8::10'], 'fd00:1:244::7']] as const) {
      const clock = new FakeClock();
      const seen: string[] = [];
      const prober = new ProbeManager({
        runtime: new FakeRuntime(), clock, log: nullLogger(), registry: new Registry(), events: { podEvent: () => {} }, onChange: () => {},
        runner: { run: async (_probe, target) => (seen.push(target.podIP), { result: 'success', output: '' }) },
        random: () => 0,
        hostIPs,
      });
      const rt = await runningApp(new FakeRuntime(), clock.now());
      Object.assign(rt.sandboxes[0]!, { ip: '10.244.1.7', additionalIps: ['fd00:1:244::7'] });
      prober.syncPod(makePod({ readinessProbe: { tcpSocket: { port: 80 as never }, periodSeconds: 1 } }), rt);
      await settle();
      await clock.advance(1_000);
      await settle();
      expect(seen.length, `probes run (host ${hostIPs[0]})`).to.be.at.least(1);
      expect([...new Set(seen)], `host ${hostIPs[0]}`).to.deep.equal([want]);
      prober.removePod(UID);
    }
  });

  it('httpGet readiness against a server on the pod IP', async () => {
    let healthy = false;
    const server = http.createServer((_req, res) => {
      res.writeHead(healthy ? 200 : 503);
      res.end();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as net.AddressInfo).port;
    try {
      const t = setup();
      const pod = makePod({ ports: [{ name: 'web', containerPort: port }], readinessProbe: { httpGet: { port: 'web' as never, path: '/ready', host: '127.0.0.1' }, periodSeconds: 1, failureThreshold: 1, timeoutSeconds: 10 } });
      await t.start();
      const idle = async () => {
        for (let i = 0; i < 2000 && (t.prober.probing > 0 || i === 0); i++) await new Promise((r) => setTimeout(r, 5));
        await settle();
      };
      t.prober.syncPod(pod, t.view());
      await idle();
      expect(t.prober.state(UID).ready?.has('app')).to.equal(false);
      expect(t.events).to.include('app Warning Unhealthy Readiness probe failed: HTTP probe failed with statuscode: 503');
      healthy = true;
      await t.clock.advance(1_000);
      await idle();
      expect(t.prober.state(UID).ready?.has('app')).to.equal(true);
      t.prober.stop();
    } finally {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    }
  });
});

describe('prober: wired to the pod syncer', () => {
  function wired() {
    const clock = new FakeClock();
    const rt = new FakeRuntime();
    rt.nowNs = clock.now() * 1e6;
    rt.addImage(IMAGE);
    const api = new FakePodApi();
    const log = nullLogger();
    const events: string[] = [];
    const podEvents = { podEvent: (_p: V1Pod, c: { name: string } | undefined, type: string, reason: string, message: string) => events.push(`${type} ${reason} ${c?.name ?? ''}: ${message}`) };
    const syncs: string[] = [];
    const prober = new ProbeManager({ runtime: rt, clock, log, registry: new Registry(), events: podEvents, onChange: (uid) => syncs.push(uid), random: () => 0 });
    const cache = new RuntimePodCache(rt, log);
    const syncer = new PodSyncer(
      {
        runtime: rt, clock, log, events: podEvents, statuses: new StatusManager({ api, log }), podApi: api,
        env: async () => [], expand: (c) => ({ command: c.command ?? [], args: c.args ?? [] }),
        volumes: { setUp: async () => new Map(), containerMounts: async () => ({ mounts: [] }), tearDown: async () => {} },
        hooks: { run: async () => undefined }, pullSecrets: async () => [],
        probes: (uid) => prober.state(uid),
        onSynced: (pod, view) => prober.syncPod(pod, view),
        onDone: (uid) => prober.removePod(uid),
      },
      { nodeName: 'n1', hostIPs: ['192.0.2.10'], podLogsDir: '/var/log/pods', clusterDNS: [], clusterDomain: 'cluster.local', hostDNS: () => ({ servers: [], searches: [], options: [] }), memoryCapacityBytes: 2 ** 30 },
    );
    const inspect = async (): Promise<RuntimePodStatus> => {
      await cache.relist();
      return cache.get(UID) ?? { uid: UID, name: '', namespace: '', sandboxes: [], containers: [] };
    };
    const sync = async (p: V1Pod | undefined) => {
      const r = await syncer.sync(UID, p, inspect, false);
      await settle();
      return r;
    };
    const apps = () => [...rt.containers.values()].filter((c) => c.config.metadata.name === 'app');
    return { clock, rt, api, events, syncs, prober, sync, apps };
  }
  const base = (c: Partial<V1Container>): V1Pod => ({ ...makePod(c, { nodeName: 'n1', restartPolicy: 'Always' }), status: { phase: 'Pending' } });

  it('readiness drives the container ready flag and the Ready condition', async () => {
    const t = wired();
    t.rt.execResults.set('ready', OK);
    const pod = base({ readinessProbe: exec('ready', { periodSeconds: 1 }) });
    await t.sync(pod);
    const first = t.api.last() as { conditions?: { type: string; status: string }[]; containerStatuses?: { ready: boolean }[] };
    expect(first.containerStatuses?.[0]?.ready).to.equal(false);
    expect(t.syncs).to.deep.equal([UID]); // the first probe passed: sync again
    await t.sync(pod);
    const st = t.api.last() as typeof first;
    expect(st.containerStatuses?.[0]?.ready).to.equal(true);
    expect(st.conditions?.find((c) => c.type === 'Ready')?.status).to.equal('True');
    expect(st.conditions?.find((c) => c.type === 'ContainersReady')?.status).to.equal('True');
  });

  it('a liveness failure restarts the container once, and the new instance is not judged by the old verdict', async () => {
    const t = wired();
    t.rt.execResults.set('alive', BAD);
    const pod = base({ livenessProbe: exec('alive', { periodSeconds: 1, failureThreshold: 1 }) });
    await t.sync(pod);
    expect(t.prober.state(UID).unhealthy?.has('app')).to.equal(true);
    t.rt.execResults.set('alive', OK);
    await t.sync(pod);
    expect(t.events).to.include('Warning Unhealthy app: Liveness probe failed: not yet');
    expect(t.events).to.include('Normal Killing app: Container app failed liveness probe, will be restarted');
    const [older, newer] = t.apps().sort((a, b) => a.status.createdAt - b.status.createdAt);
    expect(older?.status.state).to.equal(CONTAINER_EXITED);
    expect(newer?.status.state).to.equal(CONTAINER_RUNNING);
    // Another sync keeps the new instance.
    await t.sync(pod);
    await t.clock.advance(3_000);
    await t.sync(pod);
    expect(t.apps()).to.have.length(2);
    expect(t.events.filter((e) => e.includes('Killing'))).to.have.length(1);
    expect((t.api.last() as { containerStatuses?: { restartCount: number }[] }).containerStatuses?.[0]?.restartCount).to.equal(1);
  });

  it('a pod cleaned up drops its workers', async () => {
    const t = wired();
    await t.sync(base({ readinessProbe: exec('ready') }));
    expect(t.prober.podCount()).to.equal(1);
    await t.sync(undefined);
    expect(t.prober.podCount()).to.equal(0);
  });
});
