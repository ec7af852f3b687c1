// The VolumeManager: sets up a pod's volumes where upstream's kubelet keeps
// them (see paths.ts), turns a container's volumeMounts into runtime mounts,
// and removes everything when the pod goes. setUp is level-triggered and
// idempotent: the pod worker calls it on every sync, and that is also how
// configMap/secret/downwardAPI/projected contents follow their objects and
// how service-account tokens get refreshed.
import type { V1Container, V1Pod, V1Volume } from '@kubernetes/client-node';
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Mount } from '../../cri/api.ts';
import type { Clock } from '../../lib/clock.ts';
import { describeError, NodeletError } from '../../lib/errors.ts';
import type { Logger } from '../../lib/log.ts';
import { CREATE_CONTAINER_CONFIG_ERROR, expandSubPathExpr, type EnvVar } from '../pod/expand.ts';
import type { PodObjects } from '../pod/objects.ts';
import { setUpConfigMap } from './configmap.ts';
import { setUpDownwardAPI } from './downwardapi.ts';
import { setUpEmptyDir } from './emptydir.ts';
import { setUpHostPath } from './hostpath.ts';
import type { Mounter } from './mounter.ts';
import { containerDir, isSafeComponent, podDir, podsDir, podVolumesDir } from './paths.ts';
import { setUpProjected } from './projected.ts';
import { setUpClaim } from './pvc.ts';
import { removeAllOneFilesystem } from './removeall.ts';
import { setUpSecret } from './secret.ts';
import { prepareSubPath, translatePropagation, validateSubPath } from './subpath.ts';
import { TokenManager } from './tokens.ts';
import type { ClaimObjects, NodeAllocatable, PluginEnv, PodVolume } from './types.ts';
import { FAILED_MOUNT, unsupported } from './types.ts';

export type { ClaimObjects, NodeAllocatable, PodVolume } from './types.ts';

/** Error code for volumeMount problems; upstream reports them as CreateContainerConfigError. */
export { CREATE_CONTAINER_CONFIG_ERROR } from '../pod/expand.ts';
export const DEFAULT_TERMINATION_MESSAGE_PATH = '/dev/termination-log';

export interface VolumeManagerOptions {
  /** The kubelet root dir (/var/lib/nodelet); pods/ lives under it. */
  rootDir: string;
  objects: PodObjects;
  mounter: Mounter;
  clock: Clock;
  log: Logger;
  claims?: ClaimObjects;
  allocatable?: () => NodeAllocatable | undefined;
  /** Token refresh jitter source (tests pass () => 0). */
  random?: () => number;
}

export interface ContainerMounts {
  mounts: Mount[];
  /** Host file behind container.terminationMessagePath; read it when the container exits. */
  terminationMessageHostPath: string | undefined;
}

type SetUpFn = (env: PluginEnv, pod: V1Pod, volume: V1Volume) => Promise<PodVolume>;

const PLUGINS: [keyof V1Volume, SetUpFn][] = [
  ['emptyDir', setUpEmptyDir],
  ['hostPath', (_env, _pod, v) => setUpHostPath(v)],
  ['configMap', setUpConfigMap],
  ['secret', setUpSecret],
  ['downwardAPI', setUpDownwardAPI],
  ['projected', setUpProjected],
  ['persistentVolumeClaim', setUpClaim],
];

/** The volume source a volume uses (its one field besides name). */
export function volumeType(v: V1Volume): string {
  return Object.keys(v).find((k) => k !== 'name' && (v as unknown as Record<string, unknown>)[k] !== undefined) ?? 'unknown';
}

export class VolumeManager {
  private readonly env: PluginEnv;
  private readonly log: Logger;
  /** One operation per pod at a time (setUp, containerMounts, tearDown). */
  private readonly locks = new Map<string, Promise<unknown>>();
  readonly tokens: TokenManager;

  constructor(opts: VolumeManagerOptions) {
    this.log = opts.log.child({ component: 'volumes' });
    this.tokens = new TokenManager(opts.objects, opts.clock, opts.random);
    this.env = {
      rootDir: opts.rootDir,
      objects: opts.objects,
      mounter: opts.mounter,
      tokens: this.tokens,
      clock: opts.clock,
      allocatable: opts.allocatable ?? (() => undefined),
      claims: opts.claims,
    };
  }

  private serialize<T>(uid: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.locks.get(uid) ?? Promise.resolve();
    const run = prev.then(fn, fn);
    const tail = run.catch(() => {});
    this.locks.set(uid, tail);
    void tail.then(() => {
      if (this.locks.get(uid) === tail) this.locks.delete(uid);
    });
    return run;
  }

  private uidOf(pod: V1Pod): string {
    const uid = pod.metadata?.uid ?? '';
    if (!isSafeComponent(uid)) throw new NodeletError(FAILED_MOUNT, `pod has an invalid uid ${JSON.stringify(uid)}`);
    return uid;
  }

  /**
   * Sets up every volume of the pod (again: cheap when nothing changed) and
   * returns them by name. All volumes are tried; the failures are reported
   * together in one FailedMount error.
   */
  async setUp(pod: V1Pod): Promise<Map<string, PodVolume>> {
    const uid = this.uidOf(pod);
    return this.serialize(uid, async () => {
      await mkdir(podVolumesDir(this.env.rootDir, uid), { recursive: true, mode: 0o750 });
      const out = new Map<string, PodVolume>();
      const failures: NodeletError[] = [];
      for (const v of pod.spec?.volumes ?? []) {
        try {
          if (!isSafeComponent(v.name)) throw new NodeletError(FAILED_MOUNT, `invalid volume name ${JSON.stringify(v.name)}`);
          const plugin = PLUGINS.find(([field]) => v[field] !== undefined);
          if (!plugin) throw unsupported(v.name, JSON.stringify(volumeType(v)));
          out.set(v.name, await plugin[1](this.env, pod, v));
        } catch (err) {
          failures.push(
            err instanceof NodeletError && err.code === FAILED_MOUNT
              ? err
              : new NodeletError(FAILED_MOUNT, `MountVolume.SetUp failed for volume "${v.name}" : ${describeError(err)}`, { cause: err }),
          );
        }
      }
      if (failures.length === 1) throw failures[0]!;
      if (failures.length > 1) {
        throw new NodeletError(FAILED_MOUNT, failures.map((f) => f.message).join('; '), { cause: failures[0] });
      }
      return out;
    });
  }

  /**
   * The runtime mounts for one container: its volumeMounts (subPath,
   * readOnly, propagation) and the termination-message file, a fresh one per
   * call (per container start) as upstream. `env` is the container's
   * resolved environment for subPathExpr; without it, the literal env values
   * of the spec are used.
   */
  async containerMounts(pod: V1Pod, container: V1Container, volumes: Map<string, PodVolume>, env?: Record<string, string>): Promise<ContainerMounts> {
    const uid = this.uidOf(pod);
    return this.serialize(uid, async () => {
      const fail = (msg: string, cause?: unknown) => new NodeletError(CREATE_CONTAINER_CONFIG_ERROR, msg, { cause });
      const envVars: EnvVar[] = env ? Object.entries(env).map(([key, value]) => ({ key, value })) : literalEnv(container);
      const mounts: Mount[] = [];
      for (const vm of container.volumeMounts ?? []) {
        const vol = volumes.get(vm.name);
        if (!vol) throw fail(`cannot find volume ${JSON.stringify(vm.name)} to mount into container ${JSON.stringify(container.name)}`);
        let hostPath = vol.hostPath;
        let subPath = vm.subPath ?? '';
        try {
          if (vm.subPathExpr) subPath = expandSubPathExpr(vm.subPathExpr, envVars);
          if (subPath !== '') {
            const bad = validateSubPath(subPath);
            if (bad) throw new Error(bad);
            hostPath = await prepareSubPath(vol.hostPath, subPath, vm, container.name);
          }
          const m: Mount = {
            containerPath: vm.mountPath,
            hostPath,
            readonly: vm.readOnly === true || vol.readOnly,
            propagation: translatePropagation(vm.mountPropagation),
          };
          mounts.push(m);
        } catch (err) {
          throw fail((err as Error).message, err);
        }
      }
      const tmp = container.terminationMessagePath ?? DEFAULT_TERMINATION_MESSAGE_PATH;
      let terminationMessageHostPath: string | undefined;
      if (tmp !== '') {
        if (!isSafeComponent(container.name)) throw fail(`invalid container name ${JSON.stringify(container.name)}`);
        const dir = containerDir(this.env.rootDir, uid, container.name);
        await mkdir(dir, { recursive: true, mode: 0o750 });
        terminationMessageHostPath = path.join(dir, randomBytes(4).toString('hex'));
        await writeFile(terminationMessageHostPath, '', { flag: 'wx' });
        // Any container user must be able to write its message, whatever the umask.
        await chmod(terminationMessageHostPath, 0o666);
        mounts.push({ containerPath: tmp, hostPath: terminationMessageHostPath });
      }
      return { mounts, terminationMessageHostPath };
    });
  }

  /** Unmounts the pod's tmpfs volumes and removes its directory; the tokens bound to it are forgotten. */
  async tearDown(podUid: string): Promise<void> {
    if (!isSafeComponent(podUid)) throw new NodeletError('VOLUME_TEARDOWN_FAILED', `invalid pod uid ${JSON.stringify(podUid)}`);
    return this.serialize(podUid, async () => {
      const volumesDir = podVolumesDir(this.env.rootDir, podUid);
      for (const plugin of await readdirOrEmpty(volumesDir)) {
        for (const name of await readdirOrEmpty(path.join(volumesDir, plugin))) {
          const dir = path.join(volumesDir, plugin, name);
          if (!(await this.env.mounter.isMountPoint(dir))) continue;
          try {
            await this.env.mounter.unmount(dir);
          } catch (err) {
            // Never rm -rf through a live mount: leave the pod dir for the next try.
            throw new NodeletError('VOLUME_TEARDOWN_FAILED', `UnmountVolume.TearDown failed for volume ${JSON.stringify(name)} of pod ${podUid}: ${describeError(err)}`, { cause: err });
          }
          if (await this.env.mounter.isMountPoint(dir)) {
            throw new NodeletError('VOLUME_TEARDOWN_FAILED', `volume ${dir} is still mounted after unmount`);
          }
        }
      }
      await removeAllOneFilesystem(podDir(this.env.rootDir, podUid), (d) => this.env.mounter.isMountPoint(d));
      this.tokens.forgetPod(podUid);
      this.log.debug('pod volumes torn down', { podUid });
    });
  }

  /** UIDs that have a pod dir on disk. */
  async podUids(): Promise<string[]> {
    return (await readdirOrEmpty(podsDir(this.env.rootDir))).filter(isSafeComponent);
  }

  /** Tears down every pod dir whose UID is not active; returns the UIDs removed. Failures are logged and retried next time. */
  async cleanupOrphans(activeUids: Iterable<string>): Promise<string[]> {
    const active = new Set(activeUids);
    const removed: string[] = [];
    for (const uid of await this.podUids()) {
      if (active.has(uid)) continue;
      try {
        await this.tearDown(uid);
        removed.push(uid);
        this.log.info('removed orphaned pod volumes', { podUid: uid });
      } catch (err) {
        this.log.warn('orphaned pod volumes not removed', { podUid: uid, err: describeError(err) });
      }
    }
    this.tokens.cleanupExpired();
    return removed;
  }
}

/** The spec's literal env values, in order (a later duplicate wins in expansion). */
function literalEnv(c: V1Container): EnvVar[] {
  return (c.env ?? []).flatMap((e) => (e.value !== undefined ? [{ key: e.name, value: e.value }] : []));
}

async function readdirOrEmpty(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}
