// Issue 4: the VolumeManager with the real mount(8)/umount(8) on a temp dir
// (needs root): memory-backed volumes are real tmpfs mounts of the computed
// size, and tearDown leaves no mount and no directory behind. Then the same
// volumes mounted into a busybox container by a real dockerd in a sandbox node
// of its own (index 8, used by no other test), with API objects from the
// in-memory fake. Last, against the suite's real API server: the
// kube-api-access volume admission adds to a real pod (real TokenRequest,
// kube-root-ca.crt) and a PVC bound to a hostPath PV.
import { KubeClient } from '../../lib/kube/client.ts';
import type { V1Pod } from '@kubernetes/client-node';
import { expect } from 'chai';
import Dockerode from 'dockerode';
import { mkdtemp, readFile, rm, stat, statfs } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { waitFor } from '../../cluster/daemon.ts';
import { destroyNode, ensureNode, startDockerd } from '../../cluster/sandbox.ts';
import type { ClusterProfile } from '../../cluster/profile.ts';
import { DockerRuntime } from '../../cri/docker/runtime.ts';
import { BUSYBOX_IMAGE, ensureBusyboxImage, ensurePauseImage } from '../../cri/images/build.ts';
import { KubePodObjects } from '../../agent/pod/kubeobjects.ts';
import { KubeClaimObjects } from '../../agent/volumes/kubeclaims.ts';
import { VolumeManager } from '../../agent/volumes/manager.ts';
import { SystemMounter } from '../../agent/volumes/mounter.ts';
import { exec } from '../../lib/exec.ts';
import { realClock } from '../../lib/clock.ts';
import { nullLogger } from '../../lib/log.ts';
import { FakePodObjects } from '../fakes/podobjects.ts';
import { cluster, kubectlJson, kubectlRun, testProfile } from './cluster.ts';

const UID = 'aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee';

describe('volumes: real tmpfs mounts', function () {
  let root: string;
  let vm: VolumeManager;
  const mounter = new SystemMounter(exec);

  before(function () {
    if (process.getuid?.() !== 0) this.skip();
  });

  beforeEach(async () => {
    root = await mkdtemp(path.join(os.tmpdir(), 'nodelet-volumes-it-'));
    const objects = new FakePodObjects(realClock);
    objects.addSecret('ns1', 'db', { password: 'hunter2' });
    vm = new VolumeManager({ rootDir: root, objects, mounter, clock: realClock, log: nullLogger() });
  });

  afterEach(async () => {
    // Whatever a failed test left mounted goes before the directory does.
    await vm.tearDown(UID).catch(() => {});
    await rm(root, { recursive: true, force: true });
  });

  it('a Memory emptyDir gets a tmpfs of its sizeLimit; a secret lives on tmpfs; tearDown unmounts and removes', async () => {
    const pod: V1Pod = {
      metadata: { name: 'web', namespace: 'ns1', uid: UID },
      spec: {
        containers: [{ name: 'app', image: 'img' }],
        volumes: [
          { name: 'shm', emptyDir: { medium: 'Memory', sizeLimit: '16Mi' } },
          { name: 'creds', secret: { secretName: 'db' } },
        ],
      },
    };
    const vols = await vm.setUp(pod);
    await vm.setUp(pod); // idempotent: no second mount stacked on the first
    const shm = vols.get('shm')!.hostPath;
    const creds = vols.get('creds')!.hostPath;
    expect(await mounter.isMountPoint(shm)).to.equal(true);
    expect(await mounter.isMountPoint(creds)).to.equal(true);
    const fs = await statfs(shm);
    expect(fs.bsize * fs.blocks).to.equal(16 * 1024 * 1024);
    const mountinfo = await readFile('/proc/self/mountinfo', 'utf8');
    expect(mountinfo.split('\n').filter((l) => l.split(' ')[4] === shm)).to.have.length(1);
    expect(await readFile(path.join(creds, 'password'), 'utf8')).to.equal('hunter2');

    await vm.tearDown(UID);
    expect(await mounter.isMountPoint(shm)).to.equal(false);
    expect(await mounter.isMountPoint(creds)).to.equal(false);
    expect(await vm.podUids()).to.deep.equal([]);
  });
});

describe('volumes: mounted into a real container', function () {
  this.timeout(120_000);
  const NODE = 8;
  const uid = `vol-${Date.now()}`;
  let p: ClusterProfile | undefined;
  let rt: DockerRuntime;
  let root: string;
  let objects: FakePodObjects;
  let vm: VolumeManager;
  let sandboxId: string | undefined;

  before(async function () {
    this.timeout(240_000);
    if (process.getuid?.() !== 0) this.skip();
    p = testProfile();
    const n = await ensureNode(p, NODE, [NODE]);
    await startDockerd(n);
    const docker = new Dockerode({ socketPath: n.dockerSocket });
    await ensurePauseImage(docker);
    await ensureBusyboxImage(docker);
    rt = new DockerRuntime(docker);
    root = await mkdtemp(path.join(os.tmpdir(), 'nodelet-volumes-ctr-'));
    objects = new FakePodObjects(realClock);
    vm = new VolumeManager({ rootDir: root, objects, mounter: new SystemMounter(exec), clock: realClock, log: nullLogger() });
  });

  after(async function () {
    this.timeout(120_000);
    if (sandboxId) {
      await rt.stopPodSandbox(sandboxId).catch(() => {});
      await rt.removePodSandbox(sandboxId).catch(() => {});
    }
    await rt?.close();
    if (vm) await vm.tearDown(uid).catch(() => {});
    if (root) await rm(root, { recursive: true, force: true });
    if (p) await destroyNode(p, NODE);
  });

  it('configMap (read-only, updated in place), memory emptyDir, secret, subPath and the termination-message file', async () => {
    objects.addConfigMap('ns1', 'cfg', { greeting: 'hello' });
    objects.addSecret('ns1', 'db', { password: 'hunter2' });
    const pod: V1Pod = {
      metadata: { name: 'web', namespace: 'ns1', uid },
      spec: {
        containers: [
          {
            name: 'app',
            image: BUSYBOX_IMAGE,
            volumeMounts: [
              { name: 'cfg', mountPath: '/etc/cfg' },
              { name: 'shm', mountPath: '/scratch' },
              { name: 'creds', mountPath: '/secret' },
              { name: 'data', mountPath: '/data', subPath: 'sub/dir' },
            ],
          },
        ],
        volumes: [
          { name: 'cfg', configMap: { name: 'cfg' } },
          { name: 'shm', emptyDir: { medium: 'Memory', sizeLimit: '8Mi' } },
          { name: 'creds', secret: { secretName: 'db' } },
          { name: 'data', emptyDir: {} },
        ],
      },
    };
    const vols = await vm.setUp(pod);
    const { mounts, terminationMessageHostPath } = await vm.containerMounts(pod, pod.spec!.containers[0]!, vols);
    const sb = { metadata: { name: 'web', namespace: 'ns1', uid, attempt: 0 }, hostname: 'web' };
    sandboxId = await rt.runPodSandbox(sb);
    const cid = await rt.createContainer(
      sandboxId,
      { metadata: { name: 'app', attempt: 0 }, image: { image: BUSYBOX_IMAGE }, command: ['sleep', '1000'], mounts },
      sb,
    );
    await rt.startContainer(cid);
    const sh = async (script: string) => {
      const r = await rt.execSync(cid, ['sh', '-c', script], 20);
      return { out: r.stdout.toString().trim(), code: r.exitCode };
    };

    expect((await sh('cat /etc/cfg/greeting')).out).to.equal('hello');
    expect((await sh('touch /etc/cfg/new')).code).to.not.equal(0); // API-data volumes are read-only
    expect((await sh('cat /secret/password')).out).to.equal('hunter2');
    expect((await sh("df -k /scratch | tail -1 | awk '{print $2}'")).out).to.equal('8192');
    await sh('echo written > /data/f');
    expect(await readFile(path.join(vols.get('data')!.hostPath, 'sub', 'dir', 'f'), 'utf8')).to.equal('written\n');
    await sh('echo bye > /dev/termination-log');
    expect(await readFile(terminationMessageHostPath!, 'utf8')).to.equal('bye\n');

    // The ConfigMap changes; the next sync's setUp swaps ..data and the running container sees it.
    objects.addConfigMap('ns1', 'cfg', { greeting: 'hello again' });
    await vm.setUp(pod);
    expect((await sh('cat /etc/cfg/greeting')).out).to.equal('hello again');
  });
});

describe('volumes: against the real API server', function () {
  this.timeout(120_000);
  const NS = 'volumes-it';
  const PV = 'volumes-it-pv';
  let root: string;
  let vm: VolumeManager;
  let hostDir: string;
  let podUid = '';

  before(async function () {
    this.timeout(120_000);
    const kc = KubeClient.fromFile(cluster().paths.adminKubeconfig);
    root = await mkdtemp(path.join(os.tmpdir(), 'nodelet-volumes-api-'));
    hostDir = path.join(root, 'pv-data');
    vm = new VolumeManager({
      rootDir: root,
      objects: new KubePodObjects(kc),
      claims: new KubeClaimObjects(kc),
      mounter: new SystemMounter(exec),
      clock: realClock,
      log: nullLogger(),
    });
    await kubectlRun(['delete', 'namespace', NS, '--ignore-not-found', '--wait=true'], { allowFail: true });
    await kubectlRun(['delete', 'pv', PV, '--ignore-not-found'], { allowFail: true });
    await kubectlRun(['create', 'namespace', NS]);
    await waitFor('the default service account', async () => (await kubectlRun(['-n', NS, 'get', 'serviceaccount', 'default'], { allowFail: true })).code === 0, 60_000, 500);
    await waitFor('kube-root-ca.crt', async () => (await kubectlRun(['-n', NS, 'get', 'configmap', 'kube-root-ca.crt'], { allowFail: true })).code === 0, 60_000, 500);
    const manifests = [
      { apiVersion: 'v1', kind: 'PersistentVolume', metadata: { name: PV }, spec: { storageClassName: '', capacity: { storage: '1Mi' }, accessModes: ['ReadWriteOnce'], hostPath: { path: hostDir, type: 'DirectoryOrCreate' } } },
      { apiVersion: 'v1', kind: 'PersistentVolumeClaim', metadata: { name: 'data', namespace: NS }, spec: { storageClassName: '', volumeName: PV, accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Mi' } } } },
      // Pinned to a node that does not exist: it stays Pending, and is only the token's bound object and a real pod spec.
      { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'web', namespace: NS }, spec: { nodeName: 'volumes-it-nowhere', containers: [{ name: 'app', image: 'nodelet.local/busybox:1.35' }], volumes: [{ name: 'data', persistentVolumeClaim: { claimName: 'data' } }] } },
    ];
    await kubectlRun(['apply', '-f', '-'], { input: JSON.stringify({ apiVersion: 'v1', kind: 'List', items: manifests }) });
    await waitFor('the claim to bind', async () => (await kubectlJson(['-n', NS, 'get', 'pvc', 'data'])).status?.phase === 'Bound', 60_000, 500);
  });

  after(async function () {
    this.timeout(60_000);
    if (podUid) await vm.tearDown(podUid).catch(() => {});
    await kubectlRun(['delete', 'namespace', NS, '--ignore-not-found', '--wait=false'], { allowFail: true });
    await kubectlRun(['delete', 'pv', PV, '--ignore-not-found', '--wait=false'], { allowFail: true });
    if (root) await rm(root, { recursive: true, force: true });
  });

  it('sets up the admission-injected kube-api-access volume and a bound PVC of a real pod', async () => {
    const pod = await kubectlJson<V1Pod>(['-n', NS, 'get', 'pod', 'web']);
    podUid = pod.metadata!.uid!;
    const access = pod.spec!.volumes!.find((v) => v.name.startsWith('kube-api-access-'));
    expect(access?.projected, 'admission added kube-api-access').to.not.equal(undefined);
    const vols = await vm.setUp(pod);

    const dir = vols.get(access!.name)!.hostPath;
    const token = await readFile(path.join(dir, 'token'), 'utf8');
    const claims = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString());
    expect(claims.sub).to.equal(`system:serviceaccount:${NS}:default`);
    expect(claims['kubernetes.io'].pod).to.deep.equal({ name: 'web', uid: podUid });
    expect(await readFile(path.join(dir, 'namespace'), 'utf8')).to.equal(NS);
    const ca = await kubectlJson(['-n', NS, 'get', 'configmap', 'kube-root-ca.crt']);
    expect(await readFile(path.join(dir, 'ca.crt'), 'utf8')).to.equal(ca.data['ca.crt']);

    expect(vols.get('data')).to.deep.equal({ hostPath: hostDir, readOnly: false });
    expect((await stat(hostDir)).isDirectory(), 'DirectoryOrCreate made it').to.equal(true);

    // A resync within the token's lifetime changes nothing on disk.
    const before = await readFile(path.join(dir, 'token'), 'utf8');
    await vm.setUp(pod);
    expect(await readFile(path.join(dir, 'token'), 'utf8')).to.equal(before);
  });
});
