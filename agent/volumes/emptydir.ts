// emptyDir: a directory that lives as long as the pod, on the node's disk or,
// with medium Memory, on a tmpfs sized as upstream's
// calculateEmptyDirMemorySize. Secret and projected volumes sit on the same
// kind of tmpfs (upstream wraps them in a memory emptyDir) so their contents
// never touch the disk.
import type { V1Container, V1Pod, V1Volume } from '@kubernetes/client-node';
import { chmod, chown, mkdir, stat } from 'node:fs/promises';
import { quantityNanos } from '../pod/qos.ts';
import { PLUGIN_EMPTY_DIR, volumeDir } from './paths.ts';
import type { PluginEnv, PodVolume } from './types.ts';
import { mountFailed, podUid } from './types.ts';

function bytes(q: string | undefined): number | undefined {
  if (q === undefined) return undefined;
  const n = quantityNanos(q);
  return n === undefined ? undefined : Number((n + 999_999_999n) / 1_000_000_000n);
}

/**
 * The pod's memory limit as its cgroup gets it: only when every container
 * declares one; max(sum of app containers, largest init container). A
 * pod-level limit wins when set.
 */
export function podMemoryLimitBytes(pod: V1Pod): number | undefined {
  const podLevel = bytes(pod.spec?.resources?.limits?.memory);
  if (podLevel !== undefined && podLevel > 0) return podLevel;
  const lim = (c: V1Container) => bytes(c.resources?.limits?.memory);
  const app = pod.spec?.containers ?? [];
  const init = pod.spec?.initContainers ?? [];
  if (app.length === 0 || [...app, ...init].some((c) => !lim(c))) return undefined;
  const sum = app.reduce((a, c) => a + lim(c)!, 0);
  return Math.max(sum, ...init.map((c) => lim(c)!));
}

/**
 * tmpfs size: node allocatable memory, lowered to the pod's memory limit,
 * lowered to the volume's sizeLimit (each only when positive and smaller).
 * Undefined = no size option (the kernel's default, half of RAM).
 */
export function emptyDirMemorySize(pod: V1Pod, sizeLimit: string | undefined, allocatableMemory: number | undefined): number | undefined {
  let size = allocatableMemory;
  const lower = (v: number | undefined) => {
    if (v !== undefined && v > 0 && (size === undefined || v <= size)) size = v;
  };
  lower(podMemoryLimitBytes(pod));
  lower(bytes(sizeLimit));
  return size;
}

async function exists(p: string): Promise<boolean> {
  try {
    await stat(p);
    return true;
  } catch {
    return false;
  }
}

/** The volume directory on disk, world-writable as upstream makes it (0777). */
export async function ensureDiskDir(dir: string, fsGroup: number | undefined): Promise<void> {
  if (await exists(dir)) return;
  await mkdir(dir, { recursive: true, mode: 0o777 });
  if (fsGroup !== undefined) {
    await chown(dir, -1, fsGroup);
    await chmod(dir, 0o2777); // setgid: new files inherit the fsGroup
  } else await chmod(dir, 0o777);
}

/** The volume directory with a tmpfs on it; mounts only when not mounted yet. */
export async function ensureTmpfsDir(env: PluginEnv, dir: string, sizeBytes: number | undefined, fsGroup: number | undefined): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o750 });
  if (await env.mounter.isMountPoint(dir)) return;
  await env.mounter.mountTmpfs(dir, sizeBytes);
  if (fsGroup !== undefined) {
    await chown(dir, -1, fsGroup);
    await chmod(dir, 0o3777);
  }
}

export async function setUpEmptyDir(env: PluginEnv, pod: V1Pod, volume: V1Volume): Promise<PodVolume> {
  const src = volume.emptyDir!;
  const dir = volumeDir(env.rootDir, podUid(pod), PLUGIN_EMPTY_DIR, volume.name);
  const fsGroup = pod.spec?.securityContext?.fsGroup;
  const medium = src.medium ?? '';
  try {
    if (medium === '') await ensureDiskDir(dir, fsGroup);
    else if (medium === 'Memory') {
      await ensureTmpfsDir(env, dir, emptyDirMemorySize(pod, src.sizeLimit, env.allocatable()?.memoryBytes), fsGroup);
    } else {
      throw mountFailed(volume.name, `unsupported volume type: emptyDir medium ${JSON.stringify(medium)}`);
    }
  } catch (err) {
    throw (err as { code?: string }).code === 'FailedMount' ? err : mountFailed(volume.name, err);
  }
  return { hostPath: dir, readOnly: false };
}
