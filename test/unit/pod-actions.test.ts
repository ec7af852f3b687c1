// computePodActions, table-driven over one base pod per family as upstream's
// TestComputePodActions, ...WithInitContainers, ...WithRestartableInitContainers.
// Pod IPs are from the usual 10.244.0.0/16 pod CIDR example.
import type { V1Container, V1Pod } from '@kubernetes/client-node';
import { expect } from 'chai';
import { computePodActions, podSandboxChanged, podTerminalPhase } from '../../agent/pod/actions.ts';
import { containerHash } from '../../agent/pod/hash.ts';
import type { ContainerToKill, PodActions, ProbeState, RuntimeContainer, RuntimePodStatus } from '../../agent/pod/types.ts';
import type { ContainerState } from '../../cri/api.ts';

const UID = '12345678-0000-4000-8000-000000000001';
const SEC = 1e9; // CRI times are nanoseconds

function spec(name: string, extra: Partial<V1Container> = {}): V1Container {
  return { name, image: 'nodelet.local/busybox:1.35', ...extra };
}

/** A runtime instance of `c`, created at `t` seconds, running in sandbox sb0 with the spec's hash. */
function inst(c: V1Container, state: ContainerState = 'CONTAINER_RUNNING', extra: Partial<RuntimeContainer> = {}): RuntimeContainer {
  const t = extra.createdAt ?? 100 * SEC;
  return {
    id: `id-${c.name}`,
    sandboxId: 'sb0',
    name: c.name,
    hash: containerHash(c),
    restartCount: 0,
    state,
    createdAt: t,
    startedAt: state === 'CONTAINER_CREATED' ? 0 : t + SEC,
    finishedAt: state === 'CONTAINER_EXITED' ? t + 5 * SEC : 0,
    exitCode: 0,
    reason: state === 'CONTAINER_EXITED' ? 'Completed' : '',
    message: '',
    image: c.image ?? '',
    imageRef: 'sha256:0123',
    ...extra,
  };
}

function exited(c: V1Container, exitCode: number, extra: Partial<RuntimeContainer> = {}): RuntimeContainer {
  return inst(c, 'CONTAINER_EXITED', { exitCode, reason: exitCode === 0 ? 'Completed' : 'Error', ...extra });
}

function sandbox(extra: Partial<RuntimePodStatus['sandboxes'][number]> = {}): RuntimePodStatus['sandboxes'][number] {
  return { id: 'sb0', state: 'SANDBOX_READY', attempt: 0, createdAt: 50 * SEC, ip: '10.244.0.5', hostNetwork: false, ...extra };
}

function noAction(extra: Partial<PodActions> = {}): PodActions {
  return {
    killPod: false,
    createSandbox: false,
    sandboxId: 'sb0',
    attempt: 0,
    initContainersToStart: [],
    containersToStart: [],
    containersToKill: [],
    initFailed: false,
    ...extra,
  };
}

interface Case {
  name: string;
  mutatePod?: (p: V1Pod) => void;
  mutateStatus?: (s: RuntimePodStatus, p: V1Pod) => void;
  probes?: ProbeState;
  want: PodActions;
}

function run(family: string, base: () => { pod: V1Pod; status: RuntimePodStatus }, cases: Case[]): void {
  describe(family, () => {
    for (const c of cases) {
      it(c.name, () => {
        const { pod, status } = base();
        c.mutatePod?.(pod);
        c.mutateStatus?.(status, pod);
        const got = computePodActions(pod, status, c.probes);
        expect(got).to.deep.equal(c.want);
      });
    }
  });
}

const kill = (name: string, reason: ContainerToKill['reason'], message: string): ContainerToKill => ({ id: `id-${name}`, name, reason, message });

// ---- app containers ----------------------------------------------------------

function basePod(): { pod: V1Pod; status: RuntimePodStatus } {
  const containers = [spec('foo1'), spec('foo2'), spec('foo3')];
  const pod: V1Pod = {
    metadata: { name: 'foo', namespace: 'new', uid: UID },
    spec: { restartPolicy: 'Always', containers },
  };
  const status: RuntimePodStatus = {
    uid: UID,
    name: 'foo',
    namespace: 'new',
    sandboxes: [sandbox()],
    containers: containers.map((c) => inst(c)),
  };
  return { pod, status };
}

const at = (s: RuntimePodStatus, i: number): RuntimeContainer => s.containers[i] as RuntimeContainer;
const policy = (p: 'Always' | 'OnFailure' | 'Never') => (pod: V1Pod) => {
  pod.spec!.restartPolicy = p;
};
const exit = (s: RuntimePodStatus, i: number, code: number) => {
  Object.assign(at(s, i), { state: 'CONTAINER_EXITED', exitCode: code, reason: code === 0 ? 'Completed' : 'Error', finishedAt: 200 * SEC });
};

run('computePodActions: app containers', basePod, [
  { name: 'everything is good; do nothing', want: noAction() },
  {
    name: 'start pod sandbox and all containers for a new pod',
    mutateStatus: (s) => {
      s.sandboxes = [];
      s.containers = [];
    },
    want: noAction({ killPod: true, createSandbox: true, sandboxId: '', attempt: 0, containersToStart: [0, 1, 2] }),
  },
  {
    name: 'restart exited containers if RestartPolicy == Always',
    mutatePod: policy('Always'),
    mutateStatus: (s) => {
      exit(s, 0, 0);
      exit(s, 1, 111);
    },
    want: noAction({ containersToStart: [0, 1] }),
  },
  {
    name: 'restart failed containers if RestartPolicy == OnFailure',
    mutatePod: policy('OnFailure'),
    mutateStatus: (s) => {
      exit(s, 0, 0);
      exit(s, 1, 111);
    },
    want: noAction({ containersToStart: [1] }),
  },
  {
    name: 'restart created but not started containers if RestartPolicy == OnFailure',
    mutatePod: policy('OnFailure'),
    mutateStatus: (s) => {
      exit(s, 0, 0);
      at(s, 1).state = 'CONTAINER_CREATED';
    },
    want: noAction({ containersToStart: [1] }),
  },
  {
    name: "don't restart containers if RestartPolicy == Never",
    mutatePod: policy('Never'),
    mutateStatus: (s) => {
      exit(s, 0, 0);
      exit(s, 1, 111);
    },
    want: noAction(),
  },
  {
    name: 'kill the pod (sandbox) when every container has exited for good (Never)',
    mutatePod: policy('Never'),
    mutateStatus: (s) => {
      exit(s, 0, 0);
      exit(s, 1, 1);
      exit(s, 2, 0);
    },
    want: noAction({ killPod: true }),
  },
  {
    name: 'kill the pod when every container succeeded (OnFailure)',
    mutatePod: policy('OnFailure'),
    mutateStatus: (s) => [0, 1, 2].forEach((i) => exit(s, i, 0)),
    want: noAction({ killPod: true }),
  },
  {
    name: 'kill pod and recreate everything if the pod sandbox is dead, and RestartPolicy == Always',
    mutateStatus: (s) => {
      s.sandboxes[0]!.state = 'SANDBOX_NOTREADY';
    },
    want: noAction({ killPod: true, createSandbox: true, sandboxId: '', attempt: 1, containersToStart: [0, 1, 2] }),
  },
  {
    name: 'kill pod and recreate all containers (except for the succeeded one) if the pod sandbox is dead, and RestartPolicy == OnFailure',
    mutatePod: policy('OnFailure'),
    mutateStatus: (s) => {
      s.sandboxes[0]!.state = 'SANDBOX_NOTREADY';
      exit(s, 1, 0);
    },
    want: noAction({ killPod: true, createSandbox: true, sandboxId: '', attempt: 1, containersToStart: [0, 2] }),
  },
  {
    name: 'kill pod and recreate all containers if the pod sandbox does not have an IP',
    mutateStatus: (s) => {
      s.sandboxes[0]!.ip = '';
    },
    want: noAction({ killPod: true, createSandbox: true, sandboxId: '', attempt: 1, containersToStart: [0, 1, 2] }),
  },
  {
    name: 'a host-network sandbox needs no IP',
    mutatePod: (p) => {
      p.spec!.hostNetwork = true;
    },
    mutateStatus: (s) => {
      Object.assign(s.sandboxes[0]!, { ip: '', hostNetwork: true });
    },
    want: noAction(),
  },
  {
    name: 'recreate the sandbox when the network namespace mode changed',
    mutatePod: (p) => {
      p.spec!.hostNetwork = true;
    },
    want: noAction({ killPod: true, createSandbox: true, sandboxId: '', attempt: 1, containersToStart: [0, 1, 2] }),
  },
  {
    name: 'an unknown network mode is not a change (runtime did not say)',
    mutateStatus: (s) => {
      delete s.sandboxes[0]!.hostNetwork;
      s.sandboxes[0]!.ip = '';
    },
    want: noAction(),
  },
  {
    name: 'reconcile when more than one sandbox is ready: next attempt after the highest',
    mutateStatus: (s) => {
      s.sandboxes = [sandbox({ id: 'sb1', attempt: 3, createdAt: 60 * SEC }), sandbox()];
    },
    want: noAction({ killPod: true, createSandbox: true, sandboxId: '', attempt: 4, containersToStart: [0, 1, 2] }),
  },
  {
    name: 'kill and recreate the container if its spec changed',
    mutateStatus: (s) => {
      at(s, 1).hash = 'deadbeef';
    },
    want: noAction({ containersToStart: [1], containersToKill: [kill('foo2', 'SpecChanged', 'Container foo2 definition changed, will be restarted')] }),
  },
  {
    name: 'a new image restarts the container even under RestartPolicy Never',
    mutatePod: (p) => {
      policy('Never')(p);
      p.spec!.containers[1]!.image = 'nodelet.local/busybox:1.36';
    },
    want: noAction({ containersToStart: [1], containersToKill: [kill('foo2', 'SpecChanged', 'Container foo2 definition changed, will be restarted')] }),
  },
  {
    name: 'kill and recreate the container if the liveness check has failed',
    probes: { unhealthy: new Set(['foo2']) },
    want: noAction({ containersToStart: [1], containersToKill: [kill('foo2', 'Unhealthy', 'Container foo2 failed liveness probe, will be restarted')] }),
  },
  {
    name: 'kill and recreate the container if the startup check has failed',
    mutatePod: (p) => {
      p.spec!.containers[1]!.startupProbe = { exec: { command: ['true'] } };
    },
    probes: { unhealthy: new Set(['foo2']), started: new Set(['foo1', 'foo3']) },
    want: noAction({ containersToStart: [1], containersToKill: [kill('foo2', 'Unhealthy', 'Container foo2 failed startup probe, will be restarted')] }),
  },
  {
    name: 'an unhealthy container under RestartPolicy Never is killed, not restarted',
    mutatePod: policy('Never'),
    probes: { unhealthy: new Set(['foo3']) },
    want: noAction({ containersToKill: [kill('foo3', 'Unhealthy', 'Container foo3 failed liveness probe')] }),
  },
  {
    name: 'verify we do not create a pod sandbox if no ready sandbox for pod with RestartPolicy=Never and all containers exited',
    mutatePod: policy('Never'),
    mutateStatus: (s) => {
      Object.assign(s.sandboxes[0]!, { state: 'SANDBOX_NOTREADY', attempt: 1 });
      [0, 1, 2].forEach((i) => exit(s, i, 0));
    },
    want: noAction({ killPod: true, attempt: 2 }),
  },
  {
    name: 'verify we do not create a pod sandbox if no ready sandbox for pod with RestartPolicy=OnFailure and all containers succeeded',
    mutatePod: policy('OnFailure'),
    mutateStatus: (s) => {
      Object.assign(s.sandboxes[0]!, { state: 'SANDBOX_NOTREADY', attempt: 1 });
      [0, 1, 2].forEach((i) => exit(s, i, 0));
    },
    want: noAction({ killPod: true, attempt: 2 }),
  },
  {
    name: 'verify we create a pod sandbox if no ready sandbox for pod with RestartPolicy=Never and no containers have ever been created',
    mutatePod: policy('Never'),
    mutateStatus: (s) => {
      Object.assign(s.sandboxes[0]!, { state: 'SANDBOX_NOTREADY', attempt: 2 });
      s.containers = [];
    },
    want: noAction({ killPod: true, createSandbox: true, sandboxId: '', attempt: 3, containersToStart: [0, 1, 2] }),
  },
  {
    name: 'kill and recreate the container if the container is in unknown state',
    mutatePod: policy('Never'),
    mutateStatus: (s) => {
      at(s, 1).state = 'CONTAINER_UNKNOWN';
    },
    want: noAction({
      containersToStart: [1],
      containersToKill: [kill('foo2', 'PodRestart', 'Container is in "CONTAINER_UNKNOWN" state, try killing it before restart')],
    }),
  },
  {
    name: 'restart the container if the container is in created state',
    mutatePod: policy('Never'),
    mutateStatus: (s) => {
      at(s, 1).state = 'CONTAINER_CREATED';
    },
    want: noAction({ containersToStart: [1] }),
  },
  {
    name: 'a pod being deleted restarts nothing',
    mutatePod: (p) => {
      p.metadata!.deletionTimestamp = new Date('2025-01-01T00:00:00Z');
    },
    mutateStatus: (s) => exit(s, 1, 1),
    want: noAction(),
  },
  {
    name: 'the newest instance decides: an older dead instance is history',
    mutateStatus: (s, p) => {
      s.containers.push(exited(p.spec!.containers[0]!, 2, { id: 'old-foo1', createdAt: 10 * SEC }));
    },
    want: noAction(),
  },
  {
    name: 'kill a running container that is not in the spec',
    mutateStatus: (s) => {
      s.containers.push(inst(spec('stray')));
    },
    want: noAction({ containersToKill: [kill('stray', 'NotInSpec', 'Container stray is not in the pod spec, will be killed')] }),
  },
  {
    name: 'a dead container that is not in the spec is left to garbage collection',
    mutateStatus: (s) => {
      s.containers.push(exited(spec('stray'), 0));
    },
    want: noAction(),
  },
  {
    name: "a container's own restartPolicy rule overrides the pod's Never",
    mutatePod: (p) => {
      policy('Never')(p);
      Object.assign(p.spec!.containers[1]!, {
        restartPolicy: 'Never',
        restartPolicyRules: [{ action: 'Restart', exitCodes: { operator: 'In', values: [42] } }],
      });
    },
    mutateStatus: (s) => exit(s, 1, 42),
    want: noAction({ containersToStart: [1] }),
  },
]);

// ---- init containers -----------------------------------------------------------

function baseWithInit(): { pod: V1Pod; status: RuntimePodStatus } {
  const inits = [spec('init1'), spec('init2'), spec('init3')];
  const containers = [spec('foo1'), spec('foo2'), spec('foo3')];
  const pod: V1Pod = {
    metadata: { name: 'foo', namespace: 'new', uid: UID },
    spec: { restartPolicy: 'Always', initContainers: inits, containers },
  };
  // Initialization completed; no app container yet.
  const status: RuntimePodStatus = {
    uid: UID,
    name: 'foo',
    namespace: 'new',
    sandboxes: [sandbox()],
    containers: inits.map((c, i) => exited(c, 0, { createdAt: (60 + i * 10) * SEC })),
  };
  return { pod, status };
}

run('computePodActions: init containers', baseWithInit, [
  { name: 'initialization completed; start all containers', want: noAction({ containersToStart: [0, 1, 2] }) },
  {
    name: 'no init containers have been started; start the first one',
    mutateStatus: (s) => {
      s.containers = [];
    },
    want: noAction({ initContainersToStart: [0] }),
  },
  {
    name: 'the first init container completed; start the second',
    mutateStatus: (s) => {
      s.containers = s.containers.slice(0, 1);
    },
    want: noAction({ initContainersToStart: [1] }),
  },
  {
    name: 'initialization in progress; do nothing',
    mutateStatus: (s) => {
      at(s, 2).state = 'CONTAINER_RUNNING';
    },
    want: noAction(),
  },
  {
    name: 'kill pod and restart the first init container if the pod sandbox is dead',
    mutateStatus: (s) => {
      s.sandboxes[0]!.state = 'SANDBOX_NOTREADY';
    },
    want: noAction({ killPod: true, createSandbox: true, sandboxId: '', attempt: 1, initContainersToStart: [0] }),
  },
  {
    name: 'restart a failed init container if RestartPolicy == Always',
    mutateStatus: (s) => {
      Object.assign(at(s, 2), { exitCode: 137, reason: 'Error' });
    },
    want: noAction({ initContainersToStart: [2] }),
  },
  {
    name: 'restart a failed init container if RestartPolicy == OnFailure',
    mutatePod: policy('OnFailure'),
    mutateStatus: (s) => {
      Object.assign(at(s, 2), { exitCode: 1, reason: 'Error' });
    },
    want: noAction({ initContainersToStart: [2] }),
  },
  {
    name: "a failed init container fails the pod if RestartPolicy == Never",
    mutatePod: policy('Never'),
    mutateStatus: (s) => {
      Object.assign(at(s, 2), { exitCode: 1, reason: 'Error' });
    },
    want: noAction({ killPod: true, initFailed: true }),
  },
  {
    name: 'an OOM-killed init container has failed whatever its exit code',
    mutateStatus: (s) => {
      Object.assign(at(s, 1), { exitCode: 0, reason: 'OOMKilled' });
      s.containers = s.containers.slice(0, 2);
    },
    want: noAction({ initContainersToStart: [1] }),
  },
  {
    name: 'an OOM-killed init container that exited 0 is retried under OnFailure, not a failed pod',
    mutatePod: policy('OnFailure'),
    mutateStatus: (s) => {
      Object.assign(at(s, 2), { exitCode: 0, reason: 'OOMKilled' });
    },
    want: noAction({ initContainersToStart: [2] }),
  },
  {
    name: 'kill and restart an init container in unknown state',
    mutateStatus: (s) => {
      at(s, 2).state = 'CONTAINER_UNKNOWN';
    },
    want: noAction({
      initContainersToStart: [2],
      containersToKill: [kill('init3', 'PodRestart', 'Init container is in "CONTAINER_UNKNOWN" state, try killing it before restart')],
    }),
  },
  {
    name: 'an init container in unknown state fails the pod if RestartPolicy == Never',
    mutatePod: policy('Never'),
    mutateStatus: (s) => {
      at(s, 2).state = 'CONTAINER_UNKNOWN';
    },
    want: noAction({ killPod: true, initFailed: true }),
  },
  {
    name: 'restart an init container stuck in created state',
    mutateStatus: (s) => {
      at(s, 2).state = 'CONTAINER_CREATED';
    },
    want: noAction({ initContainersToStart: [2] }),
  },
  {
    name: 'app containers running and init instances removed: initialized, nothing to do',
    mutateStatus: (s, p) => {
      s.containers = p.spec!.containers.map((c) => inst(c));
    },
    want: noAction(),
  },
  {
    name: 'sandbox dead after the app containers ran (Never): no new sandbox',
    mutatePod: policy('Never'),
    mutateStatus: (s, p) => {
      s.sandboxes[0]!.state = 'SANDBOX_NOTREADY';
      s.containers.push(...p.spec!.containers.map((c) => exited(c, 0)));
    },
    want: noAction({ killPod: true, attempt: 1 }),
  },
]);

// ---- sidecars (restartable init containers) --------------------------------------

function baseWithSidecars(): { pod: V1Pod; status: RuntimePodStatus } {
  const inits = [spec('init1'), spec('sidecar2', { restartPolicy: 'Always' }), spec('sidecar3', { restartPolicy: 'Always' })];
  const containers = [spec('foo1'), spec('foo2')];
  const pod: V1Pod = {
    metadata: { name: 'foo', namespace: 'new', uid: UID },
    spec: { restartPolicy: 'Always', initContainers: inits, containers },
  };
  const status: RuntimePodStatus = {
    uid: UID,
    name: 'foo',
    namespace: 'new',
    sandboxes: [sandbox()],
    containers: [
      exited(inits[0]!, 0, { createdAt: 60 * SEC }),
      inst(inits[1]!, 'CONTAINER_RUNNING', { createdAt: 70 * SEC }),
      inst(inits[2]!, 'CONTAINER_RUNNING', { createdAt: 80 * SEC }),
      ...containers.map((c) => inst(c)),
    ],
  };
  return { pod, status };
}

const onlyInits = (n: number) => (s: RuntimePodStatus) => {
  s.containers = s.containers.slice(0, n);
};

run('computePodActions: sidecar init containers', baseWithSidecars, [
  { name: 'everything is good; do nothing', want: noAction() },
  { name: 'new sandbox: start the first init container', mutateStatus: onlyInits(0), want: noAction({ initContainersToStart: [0] }) },
  { name: 'regular init done: start the first sidecar', mutateStatus: onlyInits(1), want: noAction({ initContainersToStart: [1] }) },
  { name: 'a started sidecar lets the next init container start', mutateStatus: onlyInits(2), want: noAction({ initContainersToStart: [2] }) },
  {
    name: 'a sidecar whose startup probe has not succeeded yet holds the next one back',
    mutatePod: (p) => {
      p.spec!.initContainers![1]!.startupProbe = { exec: { command: ['true'] } };
    },
    mutateStatus: onlyInits(2),
    want: noAction(),
  },
  {
    name: 'a sidecar whose startup probe succeeded lets the next one start',
    mutatePod: (p) => {
      p.spec!.initContainers![1]!.startupProbe = { exec: { command: ['true'] } };
    },
    mutateStatus: onlyInits(2),
    probes: { started: new Set(['sidecar2']) },
    want: noAction({ initContainersToStart: [2] }),
  },
  {
    name: 'a sidecar that failed its startup probe is killed and restarted',
    mutatePod: (p) => {
      p.spec!.initContainers![1]!.startupProbe = { exec: { command: ['true'] } };
    },
    mutateStatus: onlyInits(2),
    probes: { unhealthy: new Set(['sidecar2']) },
    want: noAction({ initContainersToStart: [1], containersToKill: [kill('sidecar2', 'Unhealthy', 'Init container sidecar2 failed startup probe')] }),
  },
  {
    name: 'all sidecars started: start the app containers',
    mutateStatus: onlyInits(3),
    want: noAction({ containersToStart: [0, 1] }),
  },
  {
    name: 'a sidecar that exited after initialization is restarted, apps keep running',
    mutateStatus: (s) => {
      Object.assign(at(s, 1), { state: 'CONTAINER_EXITED', exitCode: 1, reason: 'Error' });
    },
    want: noAction({ initContainersToStart: [1] }),
  },
  {
    name: 'a sidecar whose instance was removed after initialization is started again',
    mutateStatus: (s) => {
      s.containers.splice(2, 1);
    },
    want: noAction({ initContainersToStart: [2] }),
  },
  {
    name: 'a sidecar whose spec changed is killed and restarted',
    mutateStatus: (s) => {
      at(s, 1).hash = 'deadbeef';
    },
    want: noAction({ initContainersToStart: [1], containersToKill: [kill('sidecar2', 'SpecChanged', 'Init container sidecar2 definition changed')] }),
  },
  {
    name: 'a sidecar that failed liveness is killed and restarted',
    probes: { unhealthy: new Set(['sidecar3']) },
    want: noAction({ initContainersToStart: [2], containersToKill: [kill('sidecar3', 'Unhealthy', 'Init container sidecar3 failed liveness probe')] }),
  },
  {
    name: 'sidecars do not keep a finished pod alive (Never): kill the pod, restart no sidecar',
    mutatePod: policy('Never'),
    mutateStatus: (s) => {
      exit(s, 3, 0);
      exit(s, 4, 0);
      Object.assign(at(s, 1), { state: 'CONTAINER_EXITED', exitCode: 137, reason: 'Error' });
    },
    want: noAction({ killPod: true }),
  },
]);

// ---- sandbox change reasons and terminal phase -----------------------------------

describe('podSandboxChanged', () => {
  it('keeps the current attempt and sandbox when nothing changed', () => {
    const { pod, status } = basePod();
    status.sandboxes = [sandbox({ attempt: 2 }), sandbox({ id: 'sb-old', state: 'SANDBOX_NOTREADY', attempt: 1, createdAt: 10 * SEC })];
    expect(podSandboxChanged(pod, status)).to.deep.equal({ changed: false, attempt: 2, sandboxId: 'sb0', why: '' });
  });
  it('judges the newest sandbox, whatever the list order', () => {
    const { pod, status } = basePod();
    status.sandboxes = [sandbox({ id: 'sb-old', attempt: 0, createdAt: 10 * SEC }), sandbox({ id: 'sb-new', state: 'SANDBOX_NOTREADY', attempt: 1, createdAt: 90 * SEC })];
    expect(podSandboxChanged(pod, status)).to.include({ changed: true, attempt: 2, sandboxId: 'sb-new', why: 'sandbox not ready' });
  });
});

describe('podTerminalPhase', () => {
  const cases: { name: string; policy: 'Always' | 'OnFailure' | 'Never'; exits: (number | 'running')[]; want: string | undefined }[] = [
    { name: 'Always never ends', policy: 'Always', exits: [0, 0, 0], want: undefined },
    { name: 'Never, all exit 0: Succeeded', policy: 'Never', exits: [0, 0, 0], want: 'Succeeded' },
    { name: 'Never, one failed: Failed', policy: 'Never', exits: [0, 2, 0], want: 'Failed' },
    { name: 'Never, one still running: not yet', policy: 'Never', exits: [0, 'running', 0], want: undefined },
    { name: 'OnFailure, one failed: it will restart', policy: 'OnFailure', exits: [0, 1, 0], want: undefined },
    { name: 'OnFailure, all exit 0: Succeeded', policy: 'OnFailure', exits: [0, 0, 0], want: 'Succeeded' },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const { pod, status } = basePod();
      pod.spec!.restartPolicy = c.policy;
      c.exits.forEach((e, i) => {
        if (e !== 'running') exit(status, i, e);
      });
      expect(podTerminalPhase(pod, status)).to.equal(c.want);
    });
  }
  it('a failed init container under Never: Failed', () => {
    const { pod, status } = baseWithInit();
    pod.spec!.restartPolicy = 'Never';
    Object.assign(at(status, 1), { exitCode: 1, reason: 'Error' });
    expect(podTerminalPhase(pod, status)).to.equal('Failed');
  });
  it('a running sidecar does not keep a finished Job pod alive', () => {
    const { pod, status } = baseWithSidecars();
    pod.spec!.restartPolicy = 'Never';
    exit(status, 3, 0);
    exit(status, 4, 0);
    expect(podTerminalPhase(pod, status)).to.equal('Succeeded');
  });
  it('containers that never ran: not yet', () => {
    const { pod, status } = basePod();
    pod.spec!.restartPolicy = 'Never';
    status.containers = [];
    expect(podTerminalPhase(pod, status)).to.equal(undefined);
  });
});
