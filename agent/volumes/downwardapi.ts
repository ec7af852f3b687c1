// downwardAPI volumes: pod metadata and container resources as files,
// rewritten atomically when labels or annotations change.
import type { V1DownwardAPIVolumeFile, V1Pod, V1Volume } from '@kubernetes/client-node';
import { containerResourceValue, extractFieldPath, type ResourceList } from '../pod/fieldpath.ts';
import { AtomicWriter, withFsGroup } from './atomicwriter.ts';
import type { Payload } from './atomicwriter.ts';
import { ensureDiskDir } from './emptydir.ts';
import { PLUGIN_DOWNWARD_API, volumeDir } from './paths.ts';
import type { NodeAllocatable, PluginEnv, PodVolume } from './types.ts';
import { FAILED_MOUNT, mountFailed, podUid } from './types.ts';

export const DEFAULT_MODE = 0o644;

/**
 * Node allocatable as the v1.ResourceList the shared downward API code takes
 * (a volume's unset limits default to it; pod-level limits, which env vars
 * also consider, do not apply here, as upstream's volume plugin).
 */
export function allocatableResources(a: NodeAllocatable | undefined): ResourceList {
  const out: ResourceList = {};
  if (a?.cpuMillis !== undefined) out['cpu'] = `${Math.floor(a.cpuMillis)}m`;
  if (a?.memoryBytes !== undefined) out['memory'] = String(Math.floor(a.memoryBytes));
  if (a?.ephemeralStorageBytes !== undefined) out['ephemeral-storage'] = String(Math.floor(a.ephemeralStorageBytes));
  return out;
}

/** Upstream's downwardapi.CollectData: every item that fails is reported, the rest still computed. */
export function downwardAPIPayload(
  pod: V1Pod,
  items: V1DownwardAPIVolumeFile[] | undefined,
  defaultMode: number,
  allocatable: NodeAllocatable | undefined,
): { payload: Payload; errors: string[] } {
  const payload: Payload = new Map();
  const errors: string[] = [];
  const resources = allocatableResources(allocatable);
  for (const it of items ?? []) {
    const mode = it.mode ?? defaultMode;
    try {
      let value: string;
      if (it.fieldRef) value = extractFieldPath(pod, it.fieldRef.fieldPath);
      // A volume names its container (API validation requires it): no default container.
      else if (it.resourceFieldRef) value = containerResourceValue(it.resourceFieldRef, pod, undefined, resources);
      else continue;
      payload.set(it.path, { data: Buffer.from(value), mode });
    } catch (err) {
      errors.push((err as Error).message);
    }
  }
  return { payload, errors };
}

/** Go's utilerrors.NewAggregate(...).Error(): one message alone, several in brackets. */
export function aggregate(errors: string[]): string {
  return errors.length === 1 ? errors[0]! : `[${errors.join(', ')}]`;
}

export async function setUpDownwardAPI(env: PluginEnv, pod: V1Pod, volume: V1Volume): Promise<PodVolume> {
  const src = volume.downwardAPI!;
  const dir = volumeDir(env.rootDir, podUid(pod), PLUGIN_DOWNWARD_API, volume.name);
  const fsGroup = pod.spec?.securityContext?.fsGroup;
  try {
    const { payload, errors } = downwardAPIPayload(pod, src.items, src.defaultMode ?? DEFAULT_MODE, env.allocatable());
    if (errors.length > 0) throw new Error(aggregate(errors));
    await ensureDiskDir(dir, fsGroup);
    await new AtomicWriter(dir, env.clock).write(withFsGroup(payload, fsGroup), fsGroup);
  } catch (err) {
    throw (err as { code?: string }).code === FAILED_MOUNT ? err : mountFailed(volume.name, err);
  }
  return { hostPath: dir, readOnly: true };
}
