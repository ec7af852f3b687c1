// What the volume plugins share: the per-volume context they set up in, the
// result they hand back, and the one error shape the pod worker reports as a
// FailedMount event.
import type { V1PersistentVolume, V1PersistentVolumeClaim, V1Pod } from '@kubernetes/client-node';
import type { Clock } from '../../lib/clock.ts';
import { describeError, NodeletError } from '../../lib/errors.ts';
import type { PodObjects } from '../pod/objects.ts';
import type { Mounter } from './mounter.ts';
import type { TokenManager } from './tokens.ts';

/** A volume ready on the host, as containerMounts consumes it. */
export interface PodVolume {
  hostPath: string;
  /**
   * The volume itself is read-only in every container (configMap, secret,
   * downwardAPI, projected as upstream since CVE-2017-1002102; a readOnly PVC).
   */
  readOnly: boolean;
}

/** Node capacity left to pods; defaults for unset limits and tmpfs sizes (bytes, millicores). */
export interface NodeAllocatable {
  cpuMillis?: number;
  memoryBytes?: number;
  ephemeralStorageBytes?: number;
}

export const FAILED_MOUNT = 'FailedMount';

/** Upstream's event text: MountVolume.SetUp failed for volume "x" : <why>. */
export function mountFailed(volume: string, why: string | unknown, cause?: unknown): NodeletError {
  const text = typeof why === 'string' ? why : describeError(why);
  return new NodeletError(FAILED_MOUNT, `MountVolume.SetUp failed for volume "${volume}" : ${text}`, {
    cause: cause ?? (typeof why === 'string' ? undefined : why),
  });
}

/** What every plugin sets up with; built once by the VolumeManager. */
export interface PluginEnv {
  rootDir: string;
  objects: PodObjects;
  mounter: Mounter;
  tokens: TokenManager;
  clock: Clock;
  /** Node allocatable when known (tmpfs sizes, downward API defaults). */
  allocatable(): NodeAllocatable | undefined;
  claims: ClaimObjects | undefined;
}

/**
 * The extra API reads persistentVolumeClaim volumes need; optional (without
 * it such volumes fail as unsupported). Missing objects are `undefined`.
 */
export interface ClaimObjects {
  getPersistentVolumeClaim(namespace: string, name: string): Promise<V1PersistentVolumeClaim | undefined>;
  getPersistentVolume(name: string): Promise<V1PersistentVolume | undefined>;
}

export function podUid(pod: V1Pod): string {
  return pod.metadata?.uid ?? '';
}

export function unsupported(volume: string, what: string): NodeletError {
  return mountFailed(volume, `unsupported volume type ${what}`);
}
