// Issue 4: pods created through the real API server run on the real dockerd
// of the sandboxed node, and their status says what the upstream kubelet
// would. Pod IPs come from the node's pod CIDR; nothing leaves the sandbox.
import { expect } from 'chai';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { stopDaemon, waitFor } from '../../cluster/daemon.ts';
import { nodeReady, startNodelet } from '../../cluster/up.ts';
import { BUSYBOX_IMAGE } from '../../cri/images/build.ts';
import { inNode } from '../../cluster/sandbox.ts';
import { apiserverURL } from '../../cluster/profile.ts';
import { exec } from '../../lib/exec.ts';
import { cluster, kubectlJson, kubectlRun } from './cluster.ts';

const NS = 'pods-it';

async function apply(obj: object): Promise<void> {
  await kubectlRun(['apply', '-f', '-'], { input: JSON.stringify(obj) });
}

async function getPod(name: string): Promise<any> {
  return kubectlJson(['-n', NS, 'get', 'pod', name]);
}

async function waitPod(name: string, what: string, ok: (p: any) => boolean, ms = 60_000): Promise<any> {
  let last: any;
  try {
    await waitFor(`pod ${name}: ${what}`, async () => {
      last = await getPod(name);
      return ok(last);
    }, ms, 500);
  } catch (err) {
    console.log(JSON.stringify(last?.status, null, 1));
    throw err;
  }
  return last;
}

function pod(name: string, spec: object, meta: object = {}): object {
  return { apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: NS, ...meta }, spec: { terminationGracePeriodSeconds: 5, ...spec } };
}

const sh = (script: string, extra: object = {}) => ({ name: 'main', image: BUSYBOX_IMAGE, command: ['sh', '-c', script], ...extra });

async function dockerIn(args: string[]): Promise<string> {
  const n = cluster().nodes[0]!.sandbox;
  const r = await inNode(n, 'docker', ['-H', `unix://${n.dockerSocket}`, ...args], { timeoutMs: 20_000 });
  return r.stdout;
}

function containerId(p: any, name = 'main'): string {
  const cs = [...(p.status.containerStatuses ?? []), ...(p.status.initContainerStatuses ?? [])].find((c: any) => c.name === name);
  return String(cs?.containerID ?? '').replace(/^docker:\/\//, '');
}

async function events(name: string): Promise<string[]> {
  const list = await kubectlJson(['-n', NS, 'get', 'events', '--field-selector', `involvedObject.name=${name}`]);
  return list.items.map((e: any) => `${e.reason}: ${e.message}`);
}

describe('pods (real apiserver, real dockerd)', function () {
  this.timeout(180_000);

  before(async () => {
    await kubectlRun(['create', 'namespace', NS], { allowFail: true });
    // The API server's ServiceAccount admission waits for the namespace's default account.
    await waitFor('the default service account', async () => (await kubectlRun(['-n', NS, 'get', 'sa', 'default'], { allowFail: true })).code === 0, 60_000, 500);
  });

  after(async () => {
    await kubectlRun(['delete', 'namespace', NS, '--wait=false'], { allowFail: true });
  });

  it('runs a pod to Running with the status fields the kubelet reports', async () => {
    await apply(pod('web', { containers: [sh('sleep 3600', { ports: [{ containerPort: 8080 }] })] }));
    const p = await waitPod('web', 'Running and Ready', (x) => x.status?.phase === 'Running' && x.status.conditions?.some((c: any) => c.type === 'Ready' && c.status === 'True'));
    const n = cluster().nodes[0]!;
    const prefix = n.sandbox.podCIDR.split('.').slice(0, 3).join('.') + '.';
    expect(p.status.podIP.startsWith(prefix), `podIP ${p.status.podIP} in ${n.sandbox.podCIDR}`).to.equal(true);
    // Dual-stack pods (the sandbox's dockerd runs --ipv6): the node's primary family (IPv4) first, then its IPv6 address.
    const ips = (p.status.podIPs as { ip: string }[]).map((x) => x.ip);
    expect(ips, 'podIPs').to.have.length(2);
    expect(ips[0]).to.equal(p.status.podIP);
    expect(ips[1]!.startsWith(n.sandbox.podCIDRv6.replace(/::\/64$/, ':')), `podIPs[1] ${ips[1]} in ${n.sandbox.podCIDRv6}`).to.equal(true);
    expect(p.status.hostIP).to.equal(n.sandbox.nodeIP);
    expect(p.status.qosClass).to.equal('BestEffort');
    expect(p.status.startTime).to.be.a('string');
    const types = p.status.conditions.map((c: any) => `${c.type}=${c.status}`).sort();
    expect(types).to.deep.equal(['ContainersReady=True', 'Initialized=True', 'PodReadyToStartContainers=True', 'PodScheduled=True', 'Ready=True']);
    const cs = p.status.containerStatuses[0];
    expect(cs).to.include({ name: 'main', ready: true, started: true, restartCount: 0, image: BUSYBOX_IMAGE });
    expect(cs.containerID).to.match(/^docker:\/\/[0-9a-f]{64}$/);
    expect(cs.imageID).to.match(/sha256:[0-9a-f]{64}$/);
    expect(cs.state.running.startedAt).to.be.a('string');
    const ev = await events('web');
    expect(ev).to.include('Created: Created container: main');
    expect(ev).to.include('Started: Started container main');
    // The container really runs in the pod's network namespace with that IP.
    const ip = (await dockerIn(['exec', containerId(p), 'sh', '-c', "ip -4 -o addr show eth0 | awk '{print $4}'"])).trim();
    expect(ip.split('/')[0]).to.equal(p.status.podIP);
  });

  it('restarts a crashing container with a rising restartCount and CrashLoopBackOff', async () => {
    await apply(pod('crash', { containers: [sh('exit 3')] }));
    const p = await waitPod('crash', 'CrashLoopBackOff after a restart', (x) => {
      const cs = x.status?.containerStatuses?.[0];
      return cs?.restartCount >= 1 && cs?.state?.waiting?.reason === 'CrashLoopBackOff';
    }, 90_000);
    const cs = p.status.containerStatuses[0];
    expect(cs.state.waiting.message).to.match(/^back-off \d+s restarting failed container=main pod=crash_pods-it\(/);
    expect(cs.lastState.terminated).to.include({ exitCode: 3, reason: 'Error' });
    expect(p.status.phase).to.equal('Running');
    expect(await events('crash')).to.satisfy((ev: string[]) => ev.some((e) => e.startsWith('BackOff: Back-off restarting failed container main')));
  });

  it('ends restartPolicy Never and OnFailure pods Succeeded or Failed, with the termination message', async () => {
    await apply(pod('never-fail', { restartPolicy: 'Never', containers: [sh('echo -n bad input > /dev/termination-log; exit 2')] }));
    await apply(pod('onfailure-ok', { restartPolicy: 'OnFailure', containers: [sh('exit 0')] }));
    const failed = await waitPod('never-fail', 'Failed', (x) => x.status?.phase === 'Failed');
    expect(failed.status.containerStatuses[0].state.terminated).to.include({ exitCode: 2, reason: 'Error', message: 'bad input' });
    expect(failed.status.containerStatuses[0].restartCount).to.equal(0);
    const ok = await waitPod('onfailure-ok', 'Succeeded', (x) => x.status?.phase === 'Succeeded');
    expect(ok.status.containerStatuses[0].state.terminated).to.include({ exitCode: 0, reason: 'Completed' });
  });

  it('completes a Job', async () => {
    await kubectlRun(['-n', NS, 'create', 'job', 'once', `--image=${BUSYBOX_IMAGE}`, '--', 'sh', '-c', 'echo done']);
    await waitFor('job once to complete', async () => {
      const j = await kubectlJson(['-n', NS, 'get', 'job', 'once']);
      return (j.status?.succeeded ?? 0) === 1;
    }, 90_000, 1000);
    const pods = await kubectlJson(['-n', NS, 'get', 'pods', '-l', 'job-name=once']);
    expect(pods.items.map((x: any) => x.status.phase)).to.include('Succeeded');
  });

  it('runs init containers in order, before the app container, sharing an emptyDir', async () => {
    await apply(pod('init', {
      restartPolicy: 'Never',
      volumes: [{ name: 'work', emptyDir: {} }],
      initContainers: [
        { name: 'first', image: BUSYBOX_IMAGE, command: ['sh', '-c', 'echo first >> /work/order'], volumeMounts: [{ name: 'work', mountPath: '/work' }] },
        { name: 'second', image: BUSYBOX_IMAGE, command: ['sh', '-c', 'echo second >> /work/order'], volumeMounts: [{ name: 'work', mountPath: '/work' }] },
      ],
      containers: [sh('echo app >> /work/order; cat /work/order > /dev/termination-log', { volumeMounts: [{ name: 'work', mountPath: '/work' }] })],
    }));
    const p = await waitPod('init', 'Succeeded', (x) => x.status?.phase === 'Succeeded');
    expect(p.status.containerStatuses[0].state.terminated.message).to.equal('first\nsecond\napp\n');
    expect(p.status.initContainerStatuses.map((c: any) => c.state.terminated?.reason)).to.deep.equal(['Completed', 'Completed']);
  });

  it('fills configMap, secret, downwardAPI and projected volumes and the env, and the service-account token authenticates', async () => {
    await kubectlRun(['-n', NS, 'create', 'configmap', 'cfg', '--from-literal=greeting=hello']);
    await kubectlRun(['-n', NS, 'create', 'secret', 'generic', 'sec', '--from-literal=password=s3cret']);
    await kubectlRun(['-n', NS, 'create', 'service', 'clusterip', 'backend', '--tcp=80:8080']);
    await apply(pod('vols', {
      volumes: [
        { name: 'cfg', configMap: { name: 'cfg' } },
        { name: 'sec', secret: { secretName: 'sec', defaultMode: 0o400 } },
        { name: 'info', downwardAPI: { items: [{ path: 'name', fieldRef: { fieldPath: 'metadata.name' } }, { path: 'labels', fieldRef: { fieldPath: 'metadata.labels' } }] } },
      ],
      containers: [sh('sleep 3600', {
        env: [
          { name: 'GREETING', valueFrom: { configMapKeyRef: { name: 'cfg', key: 'greeting' } } },
          { name: 'POD_IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } },
          { name: 'MSG', value: '$(GREETING) from $(POD_IP)' },
        ],
        volumeMounts: [
          { name: 'cfg', mountPath: '/etc/cfg' },
          { name: 'sec', mountPath: '/etc/sec' },
          { name: 'info', mountPath: '/etc/info' },
        ],
      })],
    }, { labels: { app: 'vols' } }));
    const p = await waitPod('vols', 'Running', (x) => x.status?.phase === 'Running' && x.status.containerStatuses?.[0]?.ready === true);
    const id = containerId(p);
    const cat = async (f: string) => (await dockerIn(['exec', id, 'cat', f])).trim();
    expect(await cat('/etc/cfg/greeting')).to.equal('hello');
    expect(await cat('/etc/sec/password')).to.equal('s3cret');
    expect(await cat('/etc/info/name')).to.equal('vols');
    expect(await cat('/etc/info/labels')).to.equal('app="vols"');
    const env = await dockerIn(['exec', id, 'env']);
    expect(env).to.include(`MSG=hello from ${p.status.podIP}`);
    expect(env).to.match(/^BACKEND_SERVICE_HOST=10\.\d+\.\d+\.\d+$/m);
    expect(env).to.include('BACKEND_SERVICE_PORT=80');
    expect(env).to.match(/^KUBERNETES_SERVICE_HOST=10\.\d+\.\d+\.\d+$/m);
    // The admission-injected projected volume: token, CA and namespace.
    const sa = '/var/run/secrets/kubernetes.io/serviceaccount';
    expect(await cat(`${sa}/namespace`)).to.equal(NS);
    expect(await cat(`${sa}/ca.crt`)).to.match(/BEGIN CERTIFICATE/);
    const token = await cat(`${sa}/token`);
    // Only the token: no kubeconfig, so no client certificate takes precedence.
    const { paths, profile } = cluster();
    const who = await exec(path.join(paths.bin, 'kubectl'), [
      '--kubeconfig', '/dev/null', '--server', apiserverURL(profile), '--certificate-authority', paths.ca.certPath,
      '--token', token, 'auth', 'whoami', '-o', 'json',
    ], { allowFail: true, timeoutMs: 20_000 });
    expect(who.code, who.stderr).to.equal(0);
    expect(JSON.parse(who.stdout).status.userInfo.username).to.equal(`system:serviceaccount:${NS}:default`);
  });

  it('reports CreateContainerConfigError for a missing ConfigMap key and ErrImagePull for an image it cannot get', async () => {
    await apply(pod('badref', { containers: [sh('sleep 3600', { env: [{ name: 'X', valueFrom: { configMapKeyRef: { name: 'cfg', key: 'nope' } } }] })] }));
    await apply(pod('badimage', { containers: [{ name: 'main', image: 'nodelet.local/does-not-exist:1' }] }));
    const bad = await waitPod('badref', 'CreateContainerConfigError', (x) => x.status?.containerStatuses?.[0]?.state?.waiting?.reason === 'CreateContainerConfigError');
    expect(bad.status.containerStatuses[0].state.waiting.message).to.equal(`couldn't find key nope in ConfigMap ${NS}/cfg`);
    const img = await waitPod('badimage', 'an image pull error', (x) => ['ErrImagePull', 'ImagePullBackOff'].includes(x.status?.containerStatuses?.[0]?.state?.waiting?.reason));
    expect(img.status.phase).to.equal('Pending');
  });

  it('on deletion runs preStop, sends SIGTERM, and removes the pod object after the containers stopped', async () => {
    const hostDir = mkdtempSync(path.join('/tmp', 'nodelet-it-prestop-'));
    try {
      await apply(pod('graceful', {
        terminationGracePeriodSeconds: 10,
        volumes: [{ name: 'out', hostPath: { path: hostDir, type: 'Directory' } }],
        containers: [sh("trap 'echo term >> /out/log; exit 0' TERM; while true; do sleep 1; done", {
          volumeMounts: [{ name: 'out', mountPath: '/out' }],
          lifecycle: { preStop: { exec: { command: ['sh', '-c', 'echo prestop >> /out/log'] } } },
        })],
      }));
      const p = await waitPod('graceful', 'Running', (x) => x.status?.phase === 'Running' && x.status.containerStatuses?.[0]?.ready === true);
      const id = containerId(p);
      await kubectlRun(['-n', NS, 'delete', 'pod', 'graceful', '--wait=false']);
      await waitFor('pod graceful to be gone', async () => (await kubectlRun(['-n', NS, 'get', 'pod', 'graceful'], { allowFail: true })).code !== 0, 60_000, 500);
      expect(readFileSync(path.join(hostDir, 'log'), 'utf8')).to.equal('prestop\nterm\n');
      // The sandbox and container are cleaned up once the API forgot the pod.
      await waitFor('the container to be removed', async () => !(await dockerIn(['ps', '-aq', '--no-trunc'])).includes(id), 30_000, 500);
    } finally {
      rmSync(hostDir, { recursive: true, force: true });
    }
  });

  it('leaves running containers running across a nodelet restart and adopts them', async () => {
    const { nodes, profile, paths } = cluster();
    const n0 = nodes[0]!;
    const before = await getPod('web');
    const id = containerId(before);
    await stopDaemon(n0.pidFile, 15_000);
    startNodelet(profile, n0.name, n0.sandbox);
    await waitFor('node Ready after the restart', () => nodeReady(paths, n0.name), 60_000, 500);
    // A pod created now runs only once the new nodelet works through its pods.
    await apply(pod('after-restart', { containers: [sh('sleep 3600')] }));
    await waitPod('after-restart', 'Running', (x) => x.status?.phase === 'Running');
    const after = await getPod('web');
    expect(containerId(after)).to.equal(id);
    expect(after.status.containerStatuses[0].restartCount).to.equal(0);
    expect(after.status.phase).to.equal('Running');
    expect((await dockerIn(['inspect', '-f', '{{.State.Running}}', id])).trim()).to.equal('true');
  });

  it('passes requests and limits to the runtime and reports the QoS class; a memory hog is OOMKilled', async () => {
    const res = { requests: { cpu: '250m', memory: '32Mi' }, limits: { cpu: '250m', memory: '32Mi' } };
    await apply(pod('limited', { containers: [sh('sleep 3600', { resources: res })] }));
    await apply(pod('hog', { restartPolicy: 'Never', containers: [sh('x=a; while true; do x=$x$x; done', { resources: { limits: { memory: '16Mi' } } })] }));
    const p = await waitPod('limited', 'Running', (x) => x.status?.phase === 'Running');
    expect(p.status.qosClass).to.equal('Guaranteed');
    const hc = JSON.parse(await dockerIn(['inspect', '-f', '{{json .HostConfig}}', containerId(p)]));
    expect(hc).to.include({ CpuShares: 256, CpuQuota: 25000, CpuPeriod: 100000, Memory: 32 * 1024 * 1024 });
    const hog = await waitPod('hog', 'Failed', (x) => x.status?.phase === 'Failed');
    expect(hog.status.qosClass).to.equal('Burstable');
    expect(hog.status.containerStatuses[0].state.terminated).to.include({ reason: 'OOMKilled', exitCode: 137 });
  });

  it('rejects a pod that does not fit the node, with OutOfcpu', async () => {
    await apply({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'huge', namespace: NS }, spec: { nodeName: cluster().nodes[0]!.name, containers: [sh('sleep 1', { resources: { requests: { cpu: '1000' } } })] } });
    const p = await waitPod('huge', 'Failed', (x) => x.status?.phase === 'Failed');
    expect(p.status.reason).to.equal('OutOfcpu');
    expect(p.status.message).to.match(/^Pod was rejected: Node didn't have enough resource: cpu, requested: 1000000, used: \d+, capacity: \d+$/);
  });
});
