// persistentVolumeClaim volumes, for the PV kinds a single node can serve
// itself: hostPath and local. The claim must be bound; the PV's path is used
// directly (upstream bind-mounts a local PV into the pod dir; a direct path
// gives the container the same view without a mount to clean up).
import type { V1Pod, V1Volume } from '@kubernetes/client-node';
import { stat } from 'node:fs/promises';
import { setUpHostPathAt } from './hostpath.ts';
import type { PluginEnv, PodVolume } from './types.ts';
import { mountFailed, unsupported } from './types.ts';

/** PersistentVolumeSpec fields that are not a volume source. */
const PV_SPEC_FIELDS = new Set([
  'accessModes',
  'capacity',
  'claimRef',
  'mountOptions',
  'nodeAffinity',
  'persistentVolumeReclaimPolicy',
  'storageClassName',
  'volumeAttributesClassName',
  'volumeMode',
]);

export async function setUpClaim(env: PluginEnv, pod: V1Pod, volume: V1Volume): Promise<PodVolume> {
  const src = volume.persistentVolumeClaim!;
  const ns = pod.metadata?.namespace ?? 'default';
  if (!env.claims) throw unsupported(volume.name, '"persistentVolumeClaim" (no claim lookup configured)');
  let pvName: string;
  let pv;
  try {
    const pvc = await env.claims.getPersistentVolumeClaim(ns, src.claimName);
    if (!pvc) throw new Error(`persistentvolumeclaim ${JSON.stringify(src.claimName)} not found`);
    pvName = pvc.spec?.volumeName ?? '';
    const phase = pvc.status?.phase ?? '';
    if (phase !== 'Bound' || pvName === '') {
      throw new Error(`PVC ${ns}/${src.claimName} has non-bound phase (${JSON.stringify(phase)}) or empty pvc.Spec.VolumeName (${JSON.stringify(pvName)})`);
    }
    pv = await env.claims.getPersistentVolume(pvName);
    if (!pv) throw new Error(`persistentvolume ${JSON.stringify(pvName)} not found`);
  } catch (err) {
    throw mountFailed(volume.name, err);
  }
  const readOnly = src.readOnly === true;
  if (pv.spec?.hostPath) return setUpHostPathAt(volume.name, pv.spec.hostPath.path, pv.spec.hostPath.type, readOnly);
  if (pv.spec?.local) {
    const p = pv.spec.local.path;
    try {
      const st = await stat(p);
      if (!st.isDirectory() && !st.isFile()) throw new Error(`${p} is not a directory or file`);
    } catch (err) {
      throw mountFailed(volume.name, err);
    }
    return { hostPath: p, readOnly };
  }
  const kind = Object.keys(pv.spec ?? {}).find((k) => !PV_SPEC_FIELDS.has(k)) ?? 'unknown';
  throw unsupported(volume.name, `"${kind}" (persistentVolumeClaim ${JSON.stringify(src.claimName)} is bound to PV ${JSON.stringify(pvName)})`);
}
