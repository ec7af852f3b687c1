// VolumeManager against a temp root dir, FakePodObjects and a FakeMounter.
import type { V1Container, V1Pod, V1Volume } from '@kubernetes/client-node';
import { expect } from 'chai';
import { lstat, mkdir, mkdtemp, readdir, readFile, readlink, rm, stat, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { AtomicWriter } from '../../agent/volumes/atomicwriter.ts';
import type { ClaimObjects, PodVolume } from '../../agent/volumes/manager.ts';
import { VolumeManager } from '../../agent/volumes/manager.ts';
import { errorCode } from '../../lib/errors.ts';
import { nullLogger } from '../../lib/log.ts';
import { FakeClock } from '../fakes/clock.ts';
import { FakeMounter } from '../fakes/mounter.ts';
import { FakePodObjects } from '../fakes/podobjects.ts';

const UID = '11111111-2222-3333-4444-555555555555';
const Mi = 1024 * 1024;

function pod(volumes: V1Volume[], over: Partial<V1Pod['spec']> = {}, uid = UID): V1Pod {
  return {
    metadata: { name: 'web', namespace: 'ns1', uid, labels: { app: 'web' } },
    spec: { containers: [{ name: 'app', image: 'img' }], volumes, ...over },
  };
}

async function rejection(p: Promise<unknown>): Promise<Error & { code?: string }> {
  try {
    await p;
  } catch (err) {
    return err as Error & { code?: string };
  }
  throw new Error('expected a rejection');
}

async function exists(p: string): Promise<boolean> {
  try {
    await lstat(p);
    return true;
  } catch {
    return false;
  }
}

/** The user-visible names of an atomic-writer volume (without the ..data machinery). */
async function visible(dir: string): Promise<string[]> {
  return (await readdir(dir)).filter((n) => !n.startsWith('..')).sort();
}

describe('volumes: VolumeManager', () => {
  let root: string;
  let clock: FakeClock;
  let objects: FakePodObjects;
  let mounter: FakeMounter;
  let claims: FakeClaims;
  let vm: VolumeManager;
  const vdir = (plugin: string, name: string, uid = UID) => path.join(root, 'pods', uid, 'volumes', plugin, name);

  class FakeClaims implements ClaimObjects {
    pvcs = new Map<string, import('@kubernetes/client-node').V1PersistentVolumeClaim>();
    pvs = new Map<string, import('@kubernetes/client-node').V1PersistentVolume>();
    async getPersistentVolumeClaim(ns: string, name: string) {
      return this.pvcs.get(`${ns}/${name}`);
    }
    async getPersistentVolume(name: string) {
      return this.pvs.get(name);
    }
  }

  beforeEach(async () => {
    root = await mkdtemp(path.join(os.tmpdir(), 'nodelet-volumes-'));
    clock = new FakeClock();
    objects = new FakePodObjects(clock);
    mounter = new FakeMounter();
    claims = new FakeClaims();
    vm = new VolumeManager({
      rootDir: root,
      objects,
      mounter,
      clock,
      log: nullLogger(),
      claims,
      allocatable: () => ({ cpuMillis: 2000, memoryBytes: 1024 * Mi }),
      random: () => 0,
    });
  });
  afterEach(async () => {
    await rm(root, { recursive: true, force: true });
  });

  describe('emptyDir', () => {
    it('is a world-writable directory under the upstream layout', async () => {
      const vols = await vm.setUp(pod([{ name: 'cache', emptyDir: {} }]));
      const dir = vdir('kubernetes.io~empty-dir', 'cache');
      expect(vols.get('cache')).to.deep.equal({ hostPath: dir, readOnly: false });
      expect((await stat(dir)).mode & 0o7777).to.equal(0o777);
      expect(mounter.mounts.size).to.equal(0);
    });

    it('keeps its contents across setUp calls', async () => {
      const p = pod([{ name: 'cache', emptyDir: {} }]);
      await vm.setUp(p);
      await writeFile(path.join(vdir('kubernetes.io~empty-dir', 'cache'), 'f'), 'data');
      await vm.setUp(p);
      expect(await readFile(path.join(vdir('kubernetes.io~empty-dir', 'cache'), 'f'), 'utf8')).to.equal('data');
    });

    it('medium Memory mounts a tmpfs of sizeLimit, once', async () => {
      const p = pod([{ name: 'shm', emptyDir: { medium: 'Memory', sizeLimit: '64Mi' } }]);
      await vm.setUp(p);
      await vm.setUp(p);
      const dir = vdir('kubernetes.io~empty-dir', 'shm');
      expect([...mounter.mounts]).to.deep.equal([[dir, 64 * Mi]]);
      expect(mounter.log).to.have.length(1);
    });

    it('medium Memory without sizeLimit is sized to allocatable memory', async () => {
      await vm.setUp(pod([{ name: 'shm', emptyDir: { medium: 'Memory' } }]));
      expect([...mounter.mounts.values()]).to.deep.equal([1024 * Mi]);
    });

    it('HugePages is not supported', async () => {
      const err = await rejection(vm.setUp(pod([{ name: 'hp', emptyDir: { medium: 'HugePages' } }])));
      expect(err.code).to.equal('FailedMount');
      expect(err.message).to.equal('MountVolume.SetUp failed for volume "hp" : unsupported volume type: emptyDir medium "HugePages"');
    });
  });

  describe('hostPath', () => {
    let host: string;
    beforeEach(async () => {
      host = path.join(root, 'host');
      await mkdir(host);
      await writeFile(path.join(host, 'file'), 'x');
    });
    const hp = (p: string, type?: string): V1Volume => ({ name: 'h', hostPath: { path: p, ...(type !== undefined ? { type } : {}) } });

    it('uses the path as is', async () => {
      const vols = await vm.setUp(pod([hp(host)]));
      expect(vols.get('h')).to.deep.equal({ hostPath: host, readOnly: false });
    });
    it('DirectoryOrCreate creates the directory (0755)', async () => {
      const d = path.join(host, 'new', 'deep');
      await vm.setUp(pod([hp(d, 'DirectoryOrCreate')]));
      expect((await stat(d)).isDirectory()).to.equal(true);
    });
    it('FileOrCreate creates an empty file', async () => {
      const f = path.join(host, 'new.log');
      await vm.setUp(pod([hp(f, 'FileOrCreate')]));
      expect((await stat(f)).isFile()).to.equal(true);
    });
    const failing: [string, string, string][] = [
      ['Directory on a missing path', 'missing', 'Directory'],
      ['Directory on a file', 'file', 'Directory'],
      ['File on a directory', '.', 'File'],
      ['Socket on a file', 'file', 'Socket'],
      ['CharDevice on a file', 'file', 'CharDevice'],
      ['BlockDevice on a file', 'file', 'BlockDevice'],
    ];
    const words: Record<string, string> = { Directory: 'a directory', File: 'a file', Socket: 'a socket file', CharDevice: 'a character device', BlockDevice: 'a block device' };
    for (const [name, rel, type] of failing) {
      it(`${name} fails with upstream text`, async () => {
        const p = path.join(host, rel);
        const err = await rejection(vm.setUp(pod([hp(p, type)])));
        expect(err.code).to.equal('FailedMount');
        expect(err.message).to.equal(`MountVolume.SetUp failed for volume "h" : hostPath type check failed: ${p} is not ${words[type]}`);
      });
    }
    it('CharDevice accepts /dev/null', async () => {
      await vm.setUp(pod([hp('/dev/null', 'CharDevice')]));
    });
  });

  describe('configMap', () => {
    const cmVol = (extra: object = {}): V1Volume => ({ name: 'cfg', configMap: { name: 'app-config', ...extra } });
    const dir = () => vdir('kubernetes.io~configmap', 'cfg');

    it('writes each key through ..data symlinks, read-only in containers', async () => {
      objects.addConfigMap('ns1', 'app-config', { 'app.conf': 'a=1\n', 'other.txt': 'x' }, { 'logo.bin': Buffer.from([1, 2, 3]).toString('base64') });
      const vols = await vm.setUp(pod([cmVol()]));
      expect(vols.get('cfg')).to.deep.equal({ hostPath: dir(), readOnly: true });
      expect(await visible(dir())).to.deep.equal(['app.conf', 'logo.bin', 'other.txt']);
      expect(await readlink(path.join(dir(), 'app.conf'))).to.equal('..data/app.conf');
      expect(await readlink(path.join(dir(), '..data'))).to.match(/^\.\.2025_01_01_00_00_00\./);
      expect(await readFile(path.join(dir(), 'app.conf'), 'utf8')).to.equal('a=1\n');
      expect(await readFile(path.join(dir(), 'logo.bin'))).to.deep.equal(Buffer.from([1, 2, 3]));
      expect((await stat(path.join(dir(), 'app.conf'))).mode & 0o7777).to.equal(0o644);
      expect(mounter.mounts.size).to.equal(0); // configMaps live on disk
    });

    it('items map keys to paths with modes; defaultMode applies to the rest', async () => {
      objects.addConfigMap('ns1', 'app-config', { a: 'A', b: 'B' });
      await vm.setUp(pod([cmVol({ defaultMode: 0o600, items: [{ key: 'a', path: 'sub/a.txt', mode: 0o400 }, { key: 'b', path: 'b.txt' }] })]));
      expect(await visible(dir())).to.deep.equal(['b.txt', 'sub']);
      expect(await readlink(path.join(dir(), 'sub'))).to.equal('..data/sub');
      expect(await readFile(path.join(dir(), 'sub', 'a.txt'), 'utf8')).to.equal('A');
      expect((await stat(path.join(dir(), 'sub', 'a.txt'))).mode & 0o7777).to.equal(0o400);
      expect((await stat(path.join(dir(), 'b.txt'))).mode & 0o7777).to.equal(0o600);
    });

    it('a missing ConfigMap fails with upstream text; an optional one gives an empty volume', async () => {
      const err = await rejection(vm.setUp(pod([cmVol()])));
      expect(errorCode(err)).to.equal('FailedMount');
      expect(err.message).to.equal('MountVolume.SetUp failed for volume "cfg" : configmap "app-config" not found');
      await vm.setUp(pod([cmVol({ optional: true })]));
      expect(await visible(dir())).to.deep.equal([]);
    });

    it('a missing key fails with upstream text', async () => {
      objects.addConfigMap('ns1', 'app-config', { a: 'A' });
      const err = await rejection(vm.setUp(pod([cmVol({ items: [{ key: 'nope', path: 'n' }] })])));
      expect(err.message).to.equal('MountVolume.SetUp failed for volume "cfg" : configmap references non-existent config key: nope');
    });

    it('follows the ConfigMap: new contents swapped in atomically, removed keys vanish, no rewrite when unchanged', async () => {
      objects.addConfigMap('ns1', 'app-config', { a: 'v1', gone: 'bye' });
      const p = pod([cmVol()]);
      await vm.setUp(p);
      const first = await readlink(path.join(dir(), '..data'));
      await clock.advance(1000);
      await vm.setUp(p);
      expect(await readlink(path.join(dir(), '..data'))).to.equal(first);

      objects.addConfigMap('ns1', 'app-config', { a: 'v2', added: 'hi' });
      await vm.setUp(p);
      const second = await readlink(path.join(dir(), '..data'));
      expect(second).to.not.equal(first);
      expect(await readFile(path.join(dir(), 'a'), 'utf8')).to.equal('v2');
      expect(await visible(dir())).to.deep.equal(['a', 'added']);
      // Only the live data dir is left.
      expect((await readdir(dir())).filter((n) => n.startsWith('..2')).sort()).to.deep.equal([second]);
    });
  });

  describe('secret', () => {
    it('is written on a tmpfs, base64-decoded', async () => {
      objects.addSecret('ns1', 'db', { password: 'hunter2' });
      const vols = await vm.setUp(pod([{ name: 'creds', secret: { secretName: 'db' } }]));
      const dir = vdir('kubernetes.io~secret', 'creds');
      expect(vols.get('creds')).to.deep.equal({ hostPath: dir, readOnly: true });
      expect(await mounter.isMountPoint(dir)).to.equal(true);
      expect(mounter.mounts.get(dir)).to.equal(1024 * Mi);
      expect(await readFile(path.join(dir, 'password'), 'utf8')).to.equal('hunter2');
    });
    it('a missing Secret fails with upstream text, before anything is mounted', async () => {
      const err = await rejection(vm.setUp(pod([{ name: 'creds', secret: { secretName: 'db' } }])));
      expect(err.message).to.equal('MountVolume.SetUp failed for volume "creds" : secret "db" not found');
      expect(mounter.mounts.size).to.equal(0);
    });
    it('an unreachable API server is a FailedMount with the cause', async () => {
      objects.failWith = new Error('connect ECONNREFUSED');
      const err = await rejection(vm.setUp(pod([{ name: 'creds', secret: { secretName: 'db' } }])));
      expect(err.code).to.equal('FailedMount');
      expect(err.message).to.equal('MountVolume.SetUp failed for volume "creds" : connect ECONNREFUSED');
    });
  });

  describe('downwardAPI', () => {
    it('projects metadata and resources, and follows label changes', async () => {
      const v: V1Volume = {
        name: 'info',
        downwardAPI: {
          items: [
            { path: 'labels', fieldRef: { fieldPath: 'metadata.labels' } },
            { path: 'name', fieldRef: { fieldPath: 'metadata.name' } },
            { path: 'mem', resourceFieldRef: { containerName: 'app', resource: 'limits.memory', divisor: '1Mi' } },
          ],
        },
      };
      const p = pod([v]);
      await vm.setUp(p);
      const dir = vdir('kubernetes.io~downward-api', 'info');
      expect(await readFile(path.join(dir, 'labels'), 'utf8')).to.equal('app="web"');
      expect(await readFile(path.join(dir, 'name'), 'utf8')).to.equal('web');
      expect(await readFile(path.join(dir, 'mem'), 'utf8')).to.equal('1024'); // unset limit = allocatable
      p.metadata!.labels = { app: 'web', version: '2' };
      await vm.setUp(p);
      expect(await readFile(path.join(dir, 'labels'), 'utf8')).to.equal('app="web"\nversion="2"');
    });
  });

  describe('projected', () => {
    // What the API server's ServiceAccount admission adds to every pod.
    const kubeApiAccess: V1Volume = {
      name: 'kube-api-access-x7k2p',
      projected: {
        defaultMode: 420,
        sources: [
          { serviceAccountToken: { expirationSeconds: 3607, path: 'token' } },
          { configMap: { name: 'kube-root-ca.crt', items: [{ key: 'ca.crt', path: 'ca.crt' }] } },
          { downwardAPI: { items: [{ path: 'namespace', fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.namespace' } }] } },
        ],
      },
    };
    const dir = () => vdir('kubernetes.io~projected', 'kube-api-access-x7k2p');

    it('kube-api-access: token, ca.crt and namespace on a tmpfs', async () => {
      objects.addConfigMap('ns1', 'kube-root-ca.crt', { 'ca.crt': '-----BEGIN CERTIFICATE-----\n' });
      const vols = await vm.setUp(pod([kubeApiAccess], { serviceAccountName: 'robot' }));
      expect(vols.get('kube-api-access-x7k2p')).to.deep.equal({ hostPath: dir(), readOnly: true });
      expect(await mounter.isMountPoint(dir())).to.equal(true);
      expect(await visible(dir())).to.deep.equal(['ca.crt', 'namespace', 'token']);
      expect(await readFile(path.join(dir(), 'token'), 'utf8')).to.equal('token-ns1-robot-web-1');
      expect(await readFile(path.join(dir(), 'namespace'), 'utf8')).to.equal('ns1');
      expect(await readFile(path.join(dir(), 'ca.crt'), 'utf8')).to.equal('-----BEGIN CERTIFICATE-----\n');
      expect((await stat(path.join(dir(), 'token'))).mode & 0o7777).to.equal(0o644);
      expect(objects.tokenRequests).to.deep.equal([
        { namespace: 'ns1', serviceAccountName: 'robot', audiences: [], expirationSeconds: 3607, boundPod: { name: 'web', uid: UID } },
      ]);
    });

    it('the token is reused on resync and rotated after 80% of its lifetime', async () => {
      objects.addConfigMap('ns1', 'kube-root-ca.crt', { 'ca.crt': 'CA' });
      const p = pod([kubeApiAccess]);
      await vm.setUp(p);
      const data1 = await readlink(path.join(dir(), '..data'));
      await clock.advance(60_000);
      await vm.setUp(p);
      expect(objects.tokenRequests).to.have.length(1);
      expect(await readlink(path.join(dir(), '..data'))).to.equal(data1);
      await clock.advance(Math.ceil(3607 * 0.8 * 1000));
      await vm.setUp(p);
      expect(objects.tokenRequests).to.have.length(2);
      expect(await readFile(path.join(dir(), 'token'), 'utf8')).to.equal('token-ns1-default-web-2');
      expect(mounter.log).to.have.length(1); // the tmpfs stays
    });

    it('audience and expiration are passed on; the default expiration is 3600 s', async () => {
      await vm.setUp(pod([{ name: 'vault', projected: { sources: [{ serviceAccountToken: { audience: 'vault', path: 't' } }] } }]));
      expect(objects.tokenRequests[0]!.audiences).to.deep.equal(['vault']);
      expect(objects.tokenRequests[0]!.expirationSeconds).to.equal(3600);
    });

    it('with fsGroup the token is 0640 and group-owned; other files get g+r', async () => {
      objects.addConfigMap('ns1', 'kube-root-ca.crt', { 'ca.crt': 'CA' });
      await vm.setUp(pod([kubeApiAccess], { securityContext: { fsGroup: 2000 } }));
      const st = await stat(path.join(dir(), 'token'));
      expect(st.mode & 0o7777).to.equal(0o640);
      expect(st.gid).to.equal(2000);
      expect((await stat(path.join(dir(), 'ca.crt'))).mode & 0o7777).to.equal(0o644);
    });

    it('a missing source object fails and names it; errors of all sources are collected', async () => {
      const err = await rejection(vm.setUp(pod([kubeApiAccess])));
      expect(err.message).to.equal('MountVolume.SetUp failed for volume "kube-api-access-x7k2p" : configmap "kube-root-ca.crt" not found');
      const two: V1Volume = { name: 'two', projected: { sources: [{ configMap: { name: 'a' } }, { secret: { name: 'b' } }] } };
      const err2 = await rejection(vm.setUp(pod([two])));
      expect(err2.message).to.equal('MountVolume.SetUp failed for volume "two" : [configmap "a" not found, secret "b" not found]');
    });
  });

  describe('unsupported and failing volumes', () => {
    it('nfs, csi, ... are FailedMount "unsupported volume type"', async () => {
      const err = await rejection(vm.setUp(pod([{ name: 'share', nfs: { server: '192.0.2.1', path: '/export' } }])));
      expect(err.code).to.equal('FailedMount');
      expect(err.message).to.equal('MountVolume.SetUp failed for volume "share" : unsupported volume type "nfs"');
    });
    it('other volumes are still set up; all failures are reported together', async () => {
      const err = await rejection(
        vm.setUp(pod([{ name: 'ok', emptyDir: {} }, { name: 'a', configMap: { name: 'x' } }, { name: 'b', csi: { driver: 'd' } }])),
      );
      expect(err.message).to.equal(
        'MountVolume.SetUp failed for volume "a" : configmap "x" not found; MountVolume.SetUp failed for volume "b" : unsupported volume type "csi"',
      );
      expect(await exists(vdir('kubernetes.io~empty-dir', 'ok'))).to.equal(true);
    });
  });

  describe('persistentVolumeClaim', () => {
    const pvcVol = (readOnly?: boolean): V1Volume => ({ name: 'data', persistentVolumeClaim: { claimName: 'data-0', ...(readOnly ? { readOnly } : {}) } });
    it('a claim bound to a hostPath PV uses its path', async () => {
      const p = path.join(root, 'pv1');
      claims.pvcs.set('ns1/data-0', { spec: { volumeName: 'pv1' }, status: { phase: 'Bound' } });
      claims.pvs.set('pv1', { spec: { hostPath: { path: p, type: 'DirectoryOrCreate' } } });
      const vols = await vm.setUp(pod([pvcVol(true)]));
      expect(vols.get('data')).to.deep.equal({ hostPath: p, readOnly: true });
      expect((await stat(p)).isDirectory()).to.equal(true);
    });
    it('a local PV uses its path', async () => {
      claims.pvcs.set('ns1/data-0', { spec: { volumeName: 'pv2' }, status: { phase: 'Bound' } });
      claims.pvs.set('pv2', { spec: { local: { path: root } } });
      expect((await vm.setUp(pod([pvcVol()]))).get('data')).to.deep.equal({ hostPath: root, readOnly: false });
    });
    it('an unbound claim fails with upstream text', async () => {
      claims.pvcs.set('ns1/data-0', { spec: {}, status: { phase: 'Pending' } });
      const err = await rejection(vm.setUp(pod([pvcVol()])));
      expect(err.message).to.equal('MountVolume.SetUp failed for volume "data" : PVC ns1/data-0 has non-bound phase ("Pending") or empty pvc.Spec.VolumeName ("")');
    });
    it('a claim bound to an nfs PV is unsupported', async () => {
      claims.pvcs.set('ns1/data-0', { spec: { volumeName: 'pv3' }, status: { phase: 'Bound' } });
      claims.pvs.set('pv3', { spec: { accessModes: ['ReadWriteMany'], nfs: { server: '192.0.2.1', path: '/x' } } });
      const err = await rejection(vm.setUp(pod([pvcVol()])));
      expect(err.message).to.match(/unsupported volume type "nfs"/);
    });
    it('without claim lookups PVCs are unsupported', async () => {
      const bare = new VolumeManager({ rootDir: root, objects, mounter, clock, log: nullLogger() });
      const err = await rejection(bare.setUp(pod([pvcVol()])));
      expect(err.message).to.match(/unsupported volume type "persistentVolumeClaim"/);
    });
  });

  describe('containerMounts', () => {
    let vols: Map<string, PodVolume>;
    let p: V1Pod;
    beforeEach(async () => {
      objects.addConfigMap('ns1', 'cfg', { 'app.conf': 'x' });
      p = pod([
        { name: 'cache', emptyDir: {} },
        { name: 'cfg', configMap: { name: 'cfg' } },
      ]);
      vols = await vm.setUp(p);
    });
    const ctr = (volumeMounts: V1Container['volumeMounts'], extra: Partial<V1Container> = {}): V1Container => ({ name: 'app', image: 'img', volumeMounts, ...extra });

    it('maps volumeMounts; API-data volumes are always read-only; adds the termination-message file', async () => {
      const { mounts, terminationMessageHostPath } = await vm.containerMounts(
        p,
        ctr([
          { name: 'cache', mountPath: '/cache' },
          { name: 'cache', mountPath: '/cache-ro', readOnly: true, mountPropagation: 'HostToContainer' },
          { name: 'cfg', mountPath: '/etc/app' },
        ]),
        vols,
      );
      const cache = vdir('kubernetes.io~empty-dir', 'cache');
      expect(terminationMessageHostPath).to.match(new RegExp(`^${root}/pods/${UID}/containers/app/[0-9a-f]{8}$`));
      expect(mounts).to.deep.equal([
        { containerPath: '/cache', hostPath: cache, readonly: false, propagation: 'PROPAGATION_PRIVATE' },
        { containerPath: '/cache-ro', hostPath: cache, readonly: true, propagation: 'PROPAGATION_HOST_TO_CONTAINER' },
        { containerPath: '/etc/app', hostPath: vdir('kubernetes.io~configmap', 'cfg'), readonly: true, propagation: 'PROPAGATION_PRIVATE' },
        { containerPath: '/dev/termination-log', hostPath: terminationMessageHostPath },
      ]);
      const st = await stat(terminationMessageHostPath!);
      expect(st.size).to.equal(0);
      expect(st.mode & 0o777).to.equal(0o666);
    });

    it('a fresh termination-message file per start, at a custom path; none when the path is empty', async () => {
      const a = await vm.containerMounts(p, ctr([], { terminationMessagePath: '/tmp/msg' }), vols);
      const b = await vm.containerMounts(p, ctr([], { terminationMessagePath: '/tmp/msg' }), vols);
      expect(a.terminationMessageHostPath).to.not.equal(b.terminationMessageHostPath);
      expect(a.mounts).to.deep.equal([{ containerPath: '/tmp/msg', hostPath: a.terminationMessageHostPath }]);
      const none = await vm.containerMounts(p, ctr([], { terminationMessagePath: '' }), vols);
      expect(none).to.deep.equal({ mounts: [], terminationMessageHostPath: undefined });
    });

    it('subPath is created in the volume when missing', async () => {
      const { mounts } = await vm.containerMounts(p, ctr([{ name: 'cache', mountPath: '/logs', subPath: 'logs/app' }]), vols);
      const want = path.join(vdir('kubernetes.io~empty-dir', 'cache'), 'logs', 'app');
      expect(mounts[0]!.hostPath).to.equal(want);
      expect((await stat(want)).isDirectory()).to.equal(true);
    });

    it('subPath of a configMap key resolves to the current file', async () => {
      const { mounts } = await vm.containerMounts(p, ctr([{ name: 'cfg', mountPath: '/etc/app.conf', subPath: 'app.conf' }]), vols);
      expect(await readFile(mounts[0]!.hostPath, 'utf8')).to.equal('x');
      expect(mounts[0]!.hostPath).to.match(/\/\.\.2025_01_01_00_00_00\.[^/]+\/app\.conf$/);
      expect(mounts[0]!.readonly).to.equal(true);
    });

    it('subPathExpr expands the container environment', async () => {
      const c = ctr([{ name: 'cache', mountPath: '/logs', subPathExpr: '$(POD_NAME)' }], { env: [{ name: 'POD_NAME', value: 'web-0' }] });
      const { mounts } = await vm.containerMounts(p, c, vols);
      expect(mounts[0]!.hostPath).to.equal(path.join(vdir('kubernetes.io~empty-dir', 'cache'), 'web-0'));
      const given = await vm.containerMounts(p, c, vols, { POD_NAME: 'from-env' });
      expect(given.mounts[0]!.hostPath).to.equal(path.join(vdir('kubernetes.io~empty-dir', 'cache'), 'from-env'));
      // the resolved environment replaces the spec's literals entirely
      const err = await rejection(vm.containerMounts(p, c, vols, { OTHER: 'x' }));
      expect(err.message).to.equal('missing value for POD_NAME');
    });

    const bad: [string, Partial<import('@kubernetes/client-node').V1VolumeMount>, string][] = [
      ['an absolute subPath', { subPath: '/etc' }, 'error SubPath `/etc` must not be an absolute path'],
      ['a subPath with ..', { subPath: '../../etc' }, "unable to provision SubPath `../../etc`: must not contain '..'"],
      ['a subPathExpr with a missing variable', { subPathExpr: '$(NOPE)' }, 'missing value for NOPE'],
      ['an unknown volume', { name: 'nope' }, 'cannot find volume "nope" to mount into container "app"'],
    ];
    for (const [name, mount, msg] of bad) {
      it(`rejects ${name}`, async () => {
        const err = await rejection(vm.containerMounts(p, ctr([{ name: 'cache', mountPath: '/m', ...mount }]), vols));
        expect(err.code).to.equal('CreateContainerConfigError');
        expect(err.message).to.equal(msg);
      });
    }

    it('rejects a subPath that a symlink leads out of the volume', async () => {
      const cache = vdir('kubernetes.io~empty-dir', 'cache');
      await symlink('/etc', path.join(cache, 'escape'));
      const err = await rejection(vm.containerMounts(p, ctr([{ name: 'cache', mountPath: '/m', subPath: 'escape' }]), vols));
      expect(err.code).to.equal('CreateContainerConfigError');
      expect(err.message).to.equal('failed to prepare subPath for volumeMount "cache" of container "app"');
      const err2 = await rejection(vm.containerMounts(p, ctr([{ name: 'cache', mountPath: '/m', subPath: 'escape/newdir' }]), vols));
      expect(err2.code).to.equal('CreateContainerConfigError');
      expect(await exists('/etc/newdir')).to.equal(false);
    });
  });

  describe('tearDown and orphans', () => {
    it('unmounts tmpfs volumes, removes the pod dir and forgets its tokens', async () => {
      objects.addSecret('ns1', 's', { k: 'v' });
      await vm.setUp(pod([{ name: 'sec', secret: { secretName: 's' } }, { name: 'tok', projected: { sources: [{ serviceAccountToken: { path: 't' } }] } }]));
      expect(mounter.mounts.size).to.equal(2);
      expect(vm.tokens.size).to.equal(1);
      await vm.tearDown(UID);
      expect(mounter.mounts.size).to.equal(0);
      expect(await exists(path.join(root, 'pods', UID))).to.equal(false);
      expect(vm.tokens.size).to.equal(0);
      await vm.tearDown(UID); // idempotent
    });

    it('a failing unmount keeps the pod dir', async () => {
      await vm.setUp(pod([{ name: 'shm', emptyDir: { medium: 'Memory' } }]));
      mounter.failUnmount = new Error('target is busy');
      const err = await rejection(vm.tearDown(UID));
      expect(err.code).to.equal('VOLUME_TEARDOWN_FAILED');
      expect(err.message).to.match(/target is busy/);
      expect(await exists(vdir('kubernetes.io~empty-dir', 'shm'))).to.equal(true);
    });

    it('never deletes through a mount left inside a volume', async () => {
      const vols = await vm.setUp(pod([{ name: 'c', emptyDir: {} }]));
      const inner = path.join(vols.get('c')!.hostPath, 'bind');
      await mkdir(inner);
      await writeFile(path.join(inner, 'precious'), 'host data');
      mounter.mounts.set(inner, undefined); // e.g. a Bidirectional mount a privileged container made
      const err = await rejection(vm.tearDown(UID));
      expect(err.code).to.equal('VOLUME_TEARDOWN_FAILED');
      expect(err.message).to.equal(`cannot delete directory ${inner}: it is a mount point`);
      expect(await readFile(path.join(inner, 'precious'), 'utf8')).to.equal('host data');
    });

    it('cleanupOrphans removes only pods that are not active', async () => {
      const other = '99999999-2222-3333-4444-555555555555';
      await vm.setUp(pod([{ name: 'c', emptyDir: {} }]));
      await vm.setUp(pod([{ name: 'c', emptyDir: { medium: 'Memory' } }], {}, other));
      expect((await vm.podUids()).sort()).to.deep.equal([UID, other].sort());
      expect(await vm.cleanupOrphans([UID])).to.deep.equal([other]);
      expect(await vm.podUids()).to.deep.equal([UID]);
      expect(mounter.mounts.size).to.equal(0);
    });

    it('rejects path-like UIDs', async () => {
      expect((await rejection(vm.tearDown('../x'))).message).to.match(/invalid pod uid/);
      expect((await rejection(vm.setUp(pod([], {}, '..')))).message).to.match(/invalid uid/);
    });
  });
});

describe('volumes: AtomicWriter', () => {
  let dir: string;
  let clock: FakeClock;
  let w: AtomicWriter;
  const f = (s: string, mode = 0o644) => ({ data: Buffer.from(s), mode });
  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'nodelet-aw-'));
    clock = new FakeClock();
    w = new AtomicWriter(dir, clock);
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('writes, skips an unchanged payload, rewrites on a mode change', async () => {
    expect(await w.write(new Map([['a', f('1')]]))).to.equal(true);
    expect(await w.write(new Map([['a', f('1')]]))).to.equal(false);
    expect(await w.write(new Map([['a', f('1', 0o600)]]))).to.equal(true);
    expect((await stat(path.join(dir, 'a'))).mode & 0o777).to.equal(0o600);
  });

  it('recreates a user-visible link removed by hand without rewriting', async () => {
    await w.write(new Map([['a', f('1')]]));
    await rm(path.join(dir, 'a'));
    expect(await w.write(new Map([['a', f('1')]]))).to.equal(false);
    expect(await readFile(path.join(dir, 'a'), 'utf8')).to.equal('1');
  });

  it('removes nested paths that left the payload, and stale data dirs of a crashed write', async () => {
    await w.write(new Map([['d/x', f('1')], ['d/y', f('2')], ['top', f('t')]]));
    await mkdir(path.join(dir, '..2020_01_01_00_00_00.123'));
    await w.write(new Map([['d/x', f('1')]]));
    expect(await visible(dir)).to.deep.equal(['d']);
    expect(await readdir(path.join(dir, 'd'))).to.deep.equal(['x']);
    expect((await readdir(dir)).filter((n) => n.startsWith('..2'))).to.have.length(1);
  });

  it('never leaves a half-written data dir live: ..data still points at the old set on failure', async () => {
    await w.write(new Map([['a', f('1')]]));
    const before = await readlink(path.join(dir, '..data'));
    let threw = false;
    try {
      await w.write(new Map([['a', f('2')], ['../evil', f('x')]]));
    } catch {
      threw = true;
    }
    expect(threw).to.equal(true);
    expect(await readlink(path.join(dir, '..data'))).to.equal(before);
    expect(await readFile(path.join(dir, 'a'), 'utf8')).to.equal('1');
  });
});
