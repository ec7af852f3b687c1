// secret volumes: like configMap, but on a tmpfs (upstream wraps them in a
// memory emptyDir) so secret bytes never reach the node's disk.
import type { V1KeyToPath, V1Pod, V1Secret, V1Volume } from '@kubernetes/client-node';
import { AtomicWriter, withFsGroup } from './atomicwriter.ts';
import type { Payload } from './atomicwriter.ts';
import { emptyDirMemorySize, ensureTmpfsDir } from './emptydir.ts';
import { PLUGIN_SECRET, volumeDir } from './paths.ts';
import type { PluginEnv, PodVolume } from './types.ts';
import { FAILED_MOUNT, mountFailed, podUid } from './types.ts';

export const DEFAULT_MODE = 0o644;

/** Upstream's secret.MakePayload (data is base64 as the API returns it). */
export function secretPayload(items: V1KeyToPath[] | undefined, secret: V1Secret, defaultMode: number, optional: boolean): Payload {
  const data = secret.data ?? {};
  const payload: Payload = new Map();
  if (!items || items.length === 0) {
    for (const [k, v] of Object.entries(data)) payload.set(k, { data: Buffer.from(v, 'base64'), mode: defaultMode });
    return payload;
  }
  for (const it of items) {
    if (!Object.hasOwn(data, it.key)) {
      if (optional) continue;
      throw new Error(`references non-existent secret key: ${it.key}`);
    }
    payload.set(it.path, { data: Buffer.from(data[it.key]!, 'base64'), mode: it.mode ?? defaultMode });
  }
  return payload;
}

export async function fetchSecret(env: PluginEnv, namespace: string, name: string, optional: boolean): Promise<V1Secret> {
  const s = await env.objects.getSecret(namespace, name);
  if (s) return s;
  if (optional) return { metadata: { namespace, name } };
  throw new Error(`secret ${JSON.stringify(name)} not found`);
}

/** Where secret and projected volumes live: a tmpfs sized like a memory emptyDir without sizeLimit. */
export async function ensureMemoryVolumeDir(env: PluginEnv, pod: V1Pod, dir: string): Promise<void> {
  await ensureTmpfsDir(env, dir, emptyDirMemorySize(pod, undefined, env.allocatable()?.memoryBytes), undefined);
}

export async function setUpSecret(env: PluginEnv, pod: V1Pod, volume: V1Volume): Promise<PodVolume> {
  const src = volume.secret!;
  const dir = volumeDir(env.rootDir, podUid(pod), PLUGIN_SECRET, volume.name);
  const fsGroup = pod.spec?.securityContext?.fsGroup;
  try {
    const optional = src.optional === true;
    const secret = await fetchSecret(env, pod.metadata?.namespace ?? 'default', src.secretName ?? '', optional);
    const payload = secretPayload(src.items, secret, src.defaultMode ?? DEFAULT_MODE, optional);
    await ensureMemoryVolumeDir(env, pod, dir);
    await new AtomicWriter(dir, env.clock).write(withFsGroup(payload, fsGroup), fsGroup);
  } catch (err) {
    throw (err as { code?: string }).code === FAILED_MOUNT ? err : mountFailed(volume.name, err);
  }
  return { hostPath: dir, readOnly: true };
}
