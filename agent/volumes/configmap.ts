// configMap volumes: one file per key (or per item), written atomically on
// the node's disk as upstream's configmap plugin does.
import type { V1ConfigMap, V1KeyToPath, V1Pod, V1Volume } from '@kubernetes/client-node';
import { AtomicWriter, withFsGroup } from './atomicwriter.ts';
import type { Payload } from './atomicwriter.ts';
import { ensureDiskDir } from './emptydir.ts';
import { PLUGIN_CONFIGMAP, volumeDir } from './paths.ts';
import type { PluginEnv, PodVolume } from './types.ts';
import { FAILED_MOUNT, mountFailed, podUid } from './types.ts';

export const DEFAULT_MODE = 0o644;

/** Upstream's configmap.MakePayload. Throws with upstream's text for a missing key. */
export function configMapPayload(items: V1KeyToPath[] | undefined, cm: V1ConfigMap, defaultMode: number, optional: boolean): Payload {
  const data = cm.data ?? {};
  const binary = cm.binaryData ?? {};
  const payload: Payload = new Map();
  if (!items || items.length === 0) {
    for (const [k, v] of Object.entries(data)) payload.set(k, { data: Buffer.from(v), mode: defaultMode });
    for (const [k, v] of Object.entries(binary)) payload.set(k, { data: Buffer.from(v, 'base64'), mode: defaultMode });
    return payload;
  }
  for (const it of items) {
    let content: Buffer;
    if (Object.hasOwn(data, it.key)) content = Buffer.from(data[it.key]!);
    else if (Object.hasOwn(binary, it.key)) content = Buffer.from(binary[it.key]!, 'base64');
    else if (optional) continue;
    else throw new Error(`configmap references non-existent config key: ${it.key}`);
    payload.set(it.path, { data: content, mode: it.mode ?? defaultMode });
  }
  return payload;
}

/** The ConfigMap, an empty one when missing and optional; throws upstream's not-found text otherwise. */
export async function fetchConfigMap(env: PluginEnv, namespace: string, name: string, optional: boolean): Promise<V1ConfigMap> {
  const cm = await env.objects.getConfigMap(namespace, name);
  if (cm) return cm;
  if (optional) return { metadata: { namespace, name } };
  throw new Error(`configmap ${JSON.stringify(name)} not found`);
}

export async function setUpConfigMap(env: PluginEnv, pod: V1Pod, volume: V1Volume): Promise<PodVolume> {
  const src = volume.configMap!;
  const dir = volumeDir(env.rootDir, podUid(pod), PLUGIN_CONFIGMAP, volume.name);
  const fsGroup = pod.spec?.securityContext?.fsGroup;
  try {
    const optional = src.optional === true;
    const cm = await fetchConfigMap(env, pod.metadata?.namespace ?? 'default', src.name ?? '', optional);
    const payload = configMapPayload(src.items, cm, src.defaultMode ?? DEFAULT_MODE, optional);
    await ensureDiskDir(dir, fsGroup);
    await new AtomicWriter(dir, env.clock).write(withFsGroup(payload, fsGroup), fsGroup);
  } catch (err) {
    throw (err as { code?: string }).code === FAILED_MOUNT ? err : mountFailed(volume.name, err);
  }
  return { hostPath: dir, readOnly: true };
}
