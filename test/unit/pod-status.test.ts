// generatePodStatus, table-driven over one base pod. Addresses: node IPs from
// RFC 5737 (192.0.2.0/24, 198.51.100.0/24), pod IPs from the usual
// 10.244.0.0/16 pod CIDR example.
import type { V1Container, V1ContainerStatus, V1Pod, V1PodCondition, V1PodStatus } from '@kubernetes/client-node';
import { expect } from 'chai';
import { containerHash } from '../../agent/pod/hash.ts';
import { generatePodStatus, getPhase, type PodStatusInput } from '../../agent/pod/status.ts';
import type { RuntimeContainer, RuntimePodStatus } from '../../agent/pod/types.ts';
import type { ContainerState } from '../../cri/api.ts';

const UID = 'aaaaaaaa-0000-4000-8000-000000000002';
const T0 = new Date('2025-01-01T00:00:00Z'); // scheduled
const T1 = new Date('2025-01-01T00:00:05Z'); // containers started
const T2 = new Date('2025-01-01T00:01:00Z'); // now
const ns = (d: Date, extraNs = 0) => d.getTime() * 1e6 + extraNs;

function spec(name: string, extra: Partial<V1Container> = {}): V1Container {
  return { name, image: `nodelet.local/${name}:1`, ...extra };
}

function inst(c: V1Container, state: ContainerState = 'CONTAINER_RUNNING', extra: Partial<RuntimeContainer> = {}): RuntimeContainer {
  return {
    id: `${c.name}-1`,
    sandboxId: 'sb0',
    name: c.name,
    hash: containerHash(c),
    restartCount: 0,
    state,
    createdAt: ns(T1) - 1e9,
    startedAt: state === 'CONTAINER_CREATED' ? 0 : ns(T1),
    finishedAt: 0,
    exitCode: 0,
    reason: '',
    message: '',
    image: c.image ?? '',
    imageRef: `docker-pullable://nodelet.local/${c.name}@sha256:abc`,
    ...extra,
  };
}

/** An exited instance that finished at `finished` with `code`. */
function dead(c: V1Container, code: number, finished: Date, extra: Partial<RuntimeContainer> = {}): RuntimeContainer {
  return inst(c, 'CONTAINER_EXITED', {
    exitCode: code,
    reason: code === 0 ? 'Completed' : 'Error',
    finishedAt: ns(finished),
    ...extra,
  });
}

function basePod(): V1Pod {
  return {
    metadata: { name: 'web', namespace: 'default', uid: UID, generation: 1 },
    spec: {
      restartPolicy: 'Always',
      nodeName: 'worker-1',
      containers: [spec('web', { readinessProbe: { httpGet: { path: '/', port: 80 } } }), spec('logger')],
    },
    status: {
      phase: 'Pending',
      qosClass: 'BestEffort',
      conditions: [{ type: 'PodScheduled', status: 'True', lastTransitionTime: T0 }],
    },
  };
}

function baseRuntime(pod: V1Pod): RuntimePodStatus {
  return {
    uid: UID,
    name: 'web',
    namespace: 'default',
    sandboxes: [{ id: 'sb0', state: 'SANDBOX_READY', attempt: 0, createdAt: ns(T1) - 2e9, ip: '10.244.1.7', hostNetwork: false }],
    containers: pod.spec!.containers.map((c) => inst(c)),
  };
}

function baseInput(): PodStatusInput {
  return { hostIPs: ['192.0.2.10'], now: T2, probes: { ready: new Set(['web']) } };
}

interface Case {
  name: string;
  mutatePod?: (p: V1Pod) => void;
  mutateRuntime?: (r: RuntimePodStatus, p: V1Pod) => void;
  mutateInput?: (i: PodStatusInput) => void;
  check: (s: V1PodStatus, pod: V1Pod) => void;
}

function cond(s: V1PodStatus, type: string): V1PodCondition {
  const c = (s.conditions ?? []).find((x) => x.type === type);
  if (!c) throw new Error(`no ${type} condition`);
  return c;
}

function cs(s: V1PodStatus, name: string): V1ContainerStatus {
  const c = [...(s.containerStatuses ?? []), ...(s.initContainerStatuses ?? [])].find((x) => x.name === name);
  if (!c) throw new Error(`no status for ${name}`);
  return c;
}

const condSummary = (s: V1PodStatus) => (s.conditions ?? []).map((c) => `${c.type}=${c.status}${c.reason ? `(${c.reason})` : ''}`);

const withInit = (p: V1Pod) => {
  p.spec!.initContainers = [spec('init')];
};
const policy = (r: 'Always' | 'OnFailure' | 'Never') => (p: V1Pod) => {
  p.spec!.restartPolicy = r;
};
const byName = (r: RuntimePodStatus, name: string) => r.containers.find((c) => c.name === name) as RuntimeContainer;

const cases: Case[] = [
  {
    name: 'running and ready: Running, all conditions True in upstream order, statuses sorted by name',
    check: (s) => {
      expect(s.phase).to.equal('Running');
      expect(condSummary(s)).to.deep.equal([
        'PodReadyToStartContainers=True',
        'Initialized=True',
        'Ready=True',
        'ContainersReady=True',
        'PodScheduled=True',
      ]);
      expect(s.containerStatuses!.map((c) => c.name)).to.deep.equal(['logger', 'web']);
      expect(cs(s, 'web')).to.deep.equal({
        name: 'web',
        restartCount: 0,
        image: 'nodelet.local/web:1',
        imageID: 'docker-pullable://nodelet.local/web@sha256:abc',
        containerID: 'docker://web-1',
        ready: true,
        started: true,
        state: { running: { startedAt: T1 } },
      });
      expect(s).to.not.have.property('initContainerStatuses');
      expect(s).to.include({ podIP: '10.244.1.7', hostIP: '192.0.2.10', qosClass: 'BestEffort', observedGeneration: 1 });
      expect(s.podIPs).to.deep.equal([{ ip: '10.244.1.7' }]);
      expect(s.hostIPs).to.deep.equal([{ ip: '192.0.2.10' }]);
      expect(s.startTime).to.deep.equal(T2);
    },
  },
  {
    name: 'new pod, nothing in the runtime yet: Pending, ContainerCreating, sandbox not ready',
    mutateRuntime: (r) => {
      r.sandboxes = [];
      r.containers = [];
    },
    check: (s) => {
      expect(s.phase).to.equal('Pending');
      expect(cs(s, 'web')).to.deep.equal({
        name: 'web',
        image: 'nodelet.local/web:1',
        imageID: '',
        ready: false,
        started: false,
        restartCount: 0,
        state: { waiting: { reason: 'ContainerCreating' } },
      });
      expect(cond(s, 'PodReadyToStartContainers').status).to.equal('False');
      expect(cond(s, 'ContainersReady')).to.include({ status: 'False', reason: 'ContainersNotReady', message: 'containers with unready status: [web logger]' });
      expect(cond(s, 'Ready')).to.include({ status: 'False', reason: 'ContainersNotReady', message: 'containers with unready status: [web logger]' });
      expect(s.podIP).to.equal(undefined);
    },
  },
  {
    name: 'readiness probe not passing: the container runs but the pod is not Ready',
    mutateInput: (i) => {
      i.probes = {};
    },
    check: (s) => {
      expect(s.phase).to.equal('Running');
      expect(cs(s, 'web')).to.include({ ready: false, started: true });
      expect(cs(s, 'logger')).to.include({ ready: true, started: true });
      expect(cond(s, 'Ready')).to.include({ status: 'False', reason: 'ContainersNotReady', message: 'containers with unready status: [web]' });
    },
  },
  {
    name: 'a startup probe that has not succeeded: not started, not ready',
    mutatePod: (p) => {
      p.spec!.containers[1]!.startupProbe = { exec: { command: ['true'] } };
    },
    check: (s) => {
      expect(cs(s, 'logger')).to.include({ ready: false, started: false });
    },
  },
  {
    name: 'CrashLoopBackOff: waiting with the executor reason, last state terminated, restart count from the runtime',
    mutateRuntime: (r, p) => {
      const web = p.spec!.containers[0]!;
      r.containers = r.containers.filter((c) => c.name !== 'web');
      r.containers.push(
        dead(web, 1, new Date('2025-01-01T00:00:40Z'), { id: 'web-4', restartCount: 3, createdAt: ns(T1) + 30e9, startedAt: ns(T1, 250_000_000) + 30e9 }),
        dead(web, 1, new Date('2025-01-01T00:00:20Z'), { id: 'web-3', restartCount: 2, createdAt: ns(T1) + 10e9 }),
      );
    },
    mutateInput: (i) => {
      i.waiting = new Map([['web', { reason: 'CrashLoopBackOff', message: 'back-off 40s restarting failed container=web pod=web_default(' + UID + ')' }]]);
    },
    check: (s) => {
      expect(s.phase).to.equal('Running');
      expect(cs(s, 'web')).to.deep.equal({
        name: 'web',
        restartCount: 3,
        image: 'nodelet.local/web:1',
        imageID: 'docker-pullable://nodelet.local/web@sha256:abc',
        containerID: 'docker://web-4',
        ready: false,
        started: false,
        state: { waiting: { reason: 'CrashLoopBackOff', message: `back-off 40s restarting failed container=web pod=web_default(${UID})` } },
        lastState: {
          terminated: {
            exitCode: 1,
            reason: 'Error',
            startedAt: new Date('2025-01-01T00:00:35Z'), // fraction of a second dropped
            finishedAt: new Date('2025-01-01T00:00:40Z'),
            containerID: 'docker://web-4',
          },
        },
      });
    },
  },
  {
    name: 'without an executor reason a dead container shows terminated, the older instance as last state',
    mutateRuntime: (r, p) => {
      const web = p.spec!.containers[0]!;
      r.containers = r.containers.filter((c) => c.name !== 'web');
      r.containers.push(
        dead(web, 2, T2, { id: 'web-2', restartCount: 1, createdAt: ns(T1) + 20e9 }),
        dead(web, 1, T1, { id: 'web-1' }),
      );
    },
    mutateInput: (i) => {
      i.waiting = new Map();
    },
    check: (s) => {
      expect(cs(s, 'web').state?.terminated).to.include({ exitCode: 2, containerID: 'docker://web-2' });
      expect(cs(s, 'web').lastState?.terminated).to.include({ exitCode: 1, containerID: 'docker://web-1' });
      expect(cs(s, 'web').restartCount).to.equal(1);
    },
  },
  {
    name: 'ErrImagePull for a container never created',
    mutateRuntime: (r) => {
      r.containers = r.containers.filter((c) => c.name !== 'logger');
    },
    mutateInput: (i) => {
      i.waiting = new Map([['logger', { reason: 'ErrImagePull', message: 'pull access denied' }]]);
    },
    check: (s) => {
      expect(cs(s, 'logger').state).to.deep.equal({ waiting: { reason: 'ErrImagePull', message: 'pull access denied' } });
      expect(cs(s, 'logger').lastState).to.equal(undefined);
      expect(s.phase).to.equal('Pending');
    },
  },
  {
    name: 'a created, not started container waits with no reason',
    mutateRuntime: (r) => {
      byName(r, 'logger').state = 'CONTAINER_CREATED';
    },
    check: (s) => {
      expect(cs(s, 'logger').state).to.deep.equal({ waiting: {} });
      expect(s.phase).to.equal('Pending');
    },
  },
  {
    name: 'init phase: Pending, Initialized False, app containers PodInitializing',
    mutatePod: withInit,
    mutateRuntime: (r, p) => {
      r.containers = [inst(p.spec!.initContainers![0]!)];
    },
    check: (s) => {
      expect(s.phase).to.equal('Pending');
      expect(cond(s, 'Initialized')).to.include({ status: 'False', reason: 'ContainersNotInitialized', message: 'containers with incomplete status: [init]' });
      expect(cs(s, 'init')).to.include({ ready: false, started: true, containerID: 'docker://init-1' });
      expect(cs(s, 'web').state).to.deep.equal({ waiting: { reason: 'PodInitializing' } });
      expect(cs(s, 'logger').state).to.deep.equal({ waiting: { reason: 'PodInitializing' } });
    },
  },
  {
    name: 'init done: Initialized True, the init container terminated Completed and ready',
    mutatePod: withInit,
    mutateRuntime: (r, p) => {
      r.containers.push(dead(p.spec!.initContainers![0]!, 0, T1, { createdAt: ns(T0) }));
    },
    check: (s) => {
      expect(s.phase).to.equal('Running');
      expect(cond(s, 'Initialized').status).to.equal('True');
      expect(cs(s, 'init')).to.include({ ready: true, started: false });
      expect(cs(s, 'init').state?.terminated).to.include({ exitCode: 0, reason: 'Completed' });
    },
  },
  {
    name: 'init instance removed after the app containers started: reported Completed',
    mutatePod: withInit,
    check: (s) => {
      expect(cs(s, 'init').state?.terminated).to.include({ exitCode: 0, reason: 'Completed' });
      expect(cond(s, 'Initialized').status).to.equal('True');
    },
  },
  {
    name: 'init failed under Never: Failed',
    mutatePod: (p) => {
      withInit(p);
      policy('Never')(p);
    },
    mutateRuntime: (r, p) => {
      r.containers = [dead(p.spec!.initContainers![0]!, 1, T1)];
    },
    check: (s) => {
      expect(s.phase).to.equal('Failed');
      expect(cs(s, 'init').state?.terminated).to.include({ exitCode: 1, reason: 'Error' });
      expect(cond(s, 'ContainersReady')).to.include({ status: 'False', reason: 'PodFailed' });
    },
  },
  {
    name: 'init failing under Always: Pending, init waiting in CrashLoopBackOff with its last termination',
    mutatePod: withInit,
    mutateRuntime: (r, p) => {
      r.containers = [dead(p.spec!.initContainers![0]!, 1, T1, { restartCount: 2 })];
    },
    mutateInput: (i) => {
      i.waiting = new Map([['init', { reason: 'CrashLoopBackOff', message: 'back-off 20s' }]]);
    },
    check: (s) => {
      expect(s.phase).to.equal('Pending');
      expect(cs(s, 'init').state).to.deep.equal({ waiting: { reason: 'CrashLoopBackOff', message: 'back-off 20s' } });
      expect(cs(s, 'init').lastState?.terminated).to.include({ exitCode: 1 });
      expect(cs(s, 'init').restartCount).to.equal(2);
    },
  },
  {
    name: 'Job-style: Never, all exited 0: Succeeded, conditions PodCompleted',
    mutatePod: policy('Never'),
    mutateRuntime: (r, p) => {
      r.containers = p.spec!.containers.map((c) => dead(c, 0, T2));
    },
    check: (s) => {
      expect(s.phase).to.equal('Succeeded');
      expect(condSummary(s)).to.deep.equal([
        'PodReadyToStartContainers=True',
        'Initialized=True(PodCompleted)',
        'Ready=False(PodCompleted)',
        'ContainersReady=False(PodCompleted)',
        'PodScheduled=True',
      ]);
    },
  },
  {
    name: 'Job-style: Never, one exited non-zero: Failed',
    mutatePod: policy('Never'),
    mutateRuntime: (r, p) => {
      r.containers = [dead(p.spec!.containers[0]!, 0, T2), dead(p.spec!.containers[1]!, 3, T2)];
    },
    check: (s) => {
      expect(s.phase).to.equal('Failed');
      expect(cond(s, 'Ready')).to.include({ status: 'False', reason: 'PodFailed' });
    },
  },
  {
    name: 'Never, one still running: Running',
    mutatePod: policy('Never'),
    mutateRuntime: (r) => {
      Object.assign(byName(r, 'logger'), { state: 'CONTAINER_EXITED', exitCode: 0, finishedAt: ns(T2) });
    },
    check: (s) => expect(s.phase).to.equal('Running'),
  },
  {
    name: 'OnFailure, all exited one failed: Running (it restarts)',
    mutatePod: policy('OnFailure'),
    mutateRuntime: (r, p) => {
      r.containers = [dead(p.spec!.containers[0]!, 0, T2), dead(p.spec!.containers[1]!, 1, T2)];
    },
    check: (s) => expect(s.phase).to.equal('Running'),
  },
  {
    name: 'Always, all exited: Running (they restart)',
    mutateRuntime: (r, p) => {
      r.containers = p.spec!.containers.map((c) => dead(c, 0, T2));
    },
    check: (s) => expect(s.phase).to.equal('Running'),
  },
  {
    name: 'the pod worker says terminal: Always pod with all exited ends Succeeded',
    mutateRuntime: (r, p) => {
      r.containers = p.spec!.containers.map((c) => dead(c, 0, T2));
    },
    mutateInput: (i) => {
      i.podIsTerminal = true;
    },
    check: (s) => expect(s.phase).to.equal('Succeeded'),
  },
  {
    name: 'a terminal phase is never left, and keeps its reason and message',
    mutatePod: (p) => {
      Object.assign(p.status!, { phase: 'Failed', reason: 'OutOfcpu', message: 'Pod was rejected' });
    },
    check: (s) => {
      expect(s).to.include({ phase: 'Failed', reason: 'OutOfcpu', message: 'Pod was rejected' });
    },
  },
  {
    name: 'lastTransitionTime stays when the status does not change, moves when it does',
    mutatePod: (p) => {
      p.status!.conditions = [
        { type: 'PodScheduled', status: 'True', lastTransitionTime: T0 },
        { type: 'Initialized', status: 'True', lastTransitionTime: T0 },
        { type: 'Ready', status: 'False', reason: 'ContainersNotReady', lastTransitionTime: T0 },
        { type: 'ContainersReady', status: 'True', lastTransitionTime: T1 },
      ];
    },
    check: (s) => {
      expect(cond(s, 'PodScheduled').lastTransitionTime).to.deep.equal(T0); // kept from the scheduler
      expect(cond(s, 'Initialized').lastTransitionTime).to.deep.equal(T0); // True -> True
      expect(cond(s, 'Ready').lastTransitionTime).to.deep.equal(T2); // False -> True
      expect(cond(s, 'ContainersReady').lastTransitionTime).to.deep.equal(T1); // True -> True
      expect(cond(s, 'PodReadyToStartContainers').lastTransitionTime).to.deep.equal(T2); // new
    },
  },
  {
    name: 'conditions others own are kept; readiness gates decide Ready',
    mutatePod: (p) => {
      p.spec!.readinessGates = [{ conditionType: 'example.com/lb-ready' }];
      p.status!.conditions!.push({ type: 'example.com/lb-ready', status: 'False', lastTransitionTime: T1 });
    },
    check: (s) => {
      expect(s.conditions![0]).to.deep.equal({ type: 'example.com/lb-ready', status: 'False', lastTransitionTime: T1 });
      expect(cond(s, 'ContainersReady').status).to.equal('True');
      expect(cond(s, 'Ready')).to.include({
        status: 'False',
        reason: 'ReadinessGatesNotReady',
        message: 'the status of pod readiness gate "example.com/lb-ready" is not "True", but False',
      });
    },
  },
  {
    name: 'conditions carry the observed generation',
    mutatePod: (p) => {
      p.metadata!.generation = 4;
    },
    check: (s) => {
      expect(s.observedGeneration).to.equal(4);
      expect((s.conditions ?? []).map((c) => c.observedGeneration)).to.deep.equal([4, 4, 4, 4, 4]);
    },
  },
  {
    name: 'pod IPs stay after the sandbox stopped (the runtime no longer knows them)',
    mutatePod: (p) => {
      Object.assign(p.status!, { podIP: '10.244.1.7', podIPs: [{ ip: '10.244.1.7' }] });
    },
    mutateRuntime: (r, p) => {
      r.sandboxes[0]!.state = 'SANDBOX_NOTREADY';
      r.sandboxes[0]!.ip = '';
      r.containers = p.spec!.containers.map((c) => dead(c, 0, T2));
    },
    check: (s) => {
      expect(s.podIPs).to.deep.equal([{ ip: '10.244.1.7' }]);
      expect(cond(s, 'PodReadyToStartContainers').status).to.equal('False');
    },
  },
  {
    name: 'a dual-stack sandbox gives two pod IPs, the node\'s primary family first',
    mutateRuntime: (r) => {
      r.sandboxes[0]!.additionalIps = ['fd00:1:244::7'];
    },
    check: (s) => {
      expect(s.podIP).to.equal('10.244.1.7');
      expect(s.podIPs).to.deep.equal([{ ip: '10.244.1.7' }, { ip: 'fd00:1:244::7' }]);
    },
  },
  {
    name: 'on an IPv6-primary node the IPv6 pod IP comes first (upstream sortPodIPs)',
    mutateRuntime: (r) => {
      r.sandboxes[0]!.additionalIps = ['fd00:1:244::7'];
    },
    mutateInput: (i) => {
      i.hostIPs = ['2001:db8::10', '192.0.2.10'];
    },
    check: (s) => {
      expect(s.podIP).to.equal('fd00:1:244::7');
      expect(s.podIPs).to.deep.equal([{ ip: 'fd00:1:244::7' }, { ip: '10.244.1.7' }]);
    },
  },
  {
    name: 'host-network pods have the node IPs as pod IPs; dual-stack hosts give two',
    mutatePod: (p) => {
      p.spec!.hostNetwork = true;
    },
    mutateRuntime: (r) => {
      Object.assign(r.sandboxes[0]!, { ip: '', hostNetwork: true });
    },
    mutateInput: (i) => {
      i.hostIPs = ['192.0.2.10', '2001:db8::10'];
    },
    check: (s) => {
      expect(s.podIPs).to.deep.equal([{ ip: '192.0.2.10' }, { ip: '2001:db8::10' }]);
      expect(s.hostIPs).to.deep.equal([{ ip: '192.0.2.10' }, { ip: '2001:db8::10' }]);
    },
  },
  {
    name: 'startTime is kept once set',
    mutatePod: (p) => {
      p.status!.startTime = T0;
    },
    check: (s) => expect(s.startTime).to.deep.equal(T0),
  },
  {
    name: 'startTime for a new pod comes from the input (whole seconds)',
    mutateInput: (i) => {
      i.startTime = new Date('2025-01-01T00:00:03.750Z');
    },
    check: (s) => expect(s.startTime).to.deep.equal(new Date('2025-01-01T00:00:03Z')),
  },
  {
    name: 'a container that was running and vanished from the runtime: last state ContainerStatusUnknown, one more restart',
    mutatePod: (p) => {
      p.status!.containerStatuses = [
        { name: 'logger', image: 'x', imageID: 'y', ready: true, restartCount: 2, state: { running: { startedAt: T1 } } },
      ];
    },
    mutateRuntime: (r) => {
      r.containers = r.containers.filter((c) => c.name !== 'logger');
    },
    check: (s) => {
      expect(cs(s, 'logger')).to.deep.include({
        restartCount: 3,
        state: { waiting: { reason: 'ContainerCreating' } },
        lastState: {
          terminated: {
            reason: 'ContainerStatusUnknown',
            message: 'The container could not be located when the pod was deleted.  The container used to be Running',
            exitCode: 137,
          },
        },
      });
      expect(s.phase).to.equal('Running');
    },
  },
  {
    name: 'a terminated status with no runtime instance left (garbage-collected) is kept as it was',
    mutatePod: (p) => {
      policy('Never')(p);
      const term = { exitCode: 0, reason: 'Completed', containerID: 'docker://logger-0', finishedAt: T1 };
      p.status!.containerStatuses = [
        { name: 'logger', image: 'x', imageID: 'y', ready: false, restartCount: 0, state: { terminated: term } },
      ];
    },
    mutateRuntime: (r) => {
      r.containers = r.containers.filter((c) => c.name !== 'logger');
    },
    check: (s) => {
      expect(cs(s, 'logger').state?.terminated).to.include({ containerID: 'docker://logger-0', exitCode: 0 });
    },
  },
  {
    name: 'a sidecar counts for ContainersReady and stays in initContainerStatuses',
    mutatePod: (p) => {
      p.spec!.initContainers = [spec('proxy', { restartPolicy: 'Always', readinessProbe: { tcpSocket: { port: 15000 } } })];
    },
    mutateRuntime: (r, p) => {
      r.containers.push(inst(p.spec!.initContainers![0]!, 'CONTAINER_RUNNING', { createdAt: ns(T0) }));
    },
    check: (s) => {
      expect(s.phase).to.equal('Running');
      expect(cs(s, 'proxy')).to.include({ started: true, ready: false });
      expect(cond(s, 'Initialized').status).to.equal('True');
      expect(cond(s, 'ContainersReady')).to.include({ status: 'False', message: 'containers with unready status: [proxy]' });
    },
  },
  {
    name: 'qosClass from the spec when status has none',
    mutatePod: (p) => {
      delete p.status!.qosClass;
      for (const c of p.spec!.containers) c.resources = { requests: { cpu: '100m', memory: '64Mi' }, limits: { cpu: '100m', memory: '64Mi' } };
    },
    check: (s) => expect(s.qosClass).to.equal('Guaranteed'),
  },
];

describe('pod/status: generatePodStatus', () => {
  for (const c of cases) {
    it(c.name, () => {
      const pod = basePod();
      c.mutatePod?.(pod);
      const runtime = baseRuntime(pod);
      c.mutateRuntime?.(runtime, pod);
      const input = baseInput();
      c.mutateInput?.(input);
      const before = structuredClone(pod);
      const s = generatePodStatus(pod, runtime, input);
      c.check(s, pod);
      expect(pod, 'the pod is not modified').to.deep.equal(before);
    });
  }

  it('is stable: feeding the result back in changes nothing but nothing moves in time', () => {
    const pod = basePod();
    const runtime = baseRuntime(pod);
    const first = generatePodStatus(pod, runtime, baseInput());
    const later = { ...baseInput(), now: new Date('2025-01-01T00:05:00Z') };
    const second = generatePodStatus({ ...pod, status: first }, runtime, later);
    expect(second).to.deep.equal(first);
  });
});

describe('pod/status: getPhase', () => {
  const pod = basePod();
  const running: V1ContainerStatus = { name: 'web', image: 'i', imageID: '', ready: true, restartCount: 0, state: { running: {} } };
  it('is Pending while any container status is unknown', () => {
    expect(getPhase(pod, [running], false, true)).to.equal('Pending');
  });
  it('is Running when all are known and one runs', () => {
    expect(getPhase(pod, [running, { ...running, name: 'logger' }], false, true)).to.equal('Running');
  });
});
