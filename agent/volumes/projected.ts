// projected volumes: configMaps, secrets, downward API items and
// service-account tokens merged into one directory on a tmpfs (the
// kube-api-access-* volume the API server's admission adds to every pod is
// one of these). Errors of all sources are collected, as upstream does.
import type { V1Pod, V1Volume } from '@kubernetes/client-node';
import { AtomicWriter, withFsGroup } from './atomicwriter.ts';
import type { Payload } from './atomicwriter.ts';
import { configMapPayload, fetchConfigMap } from './configmap.ts';
import { aggregate, downwardAPIPayload } from './downwardapi.ts';
import { PLUGIN_PROJECTED, volumeDir } from './paths.ts';
import { ensureMemoryVolumeDir, fetchSecret, secretPayload } from './secret.ts';
import type { PluginEnv, PodVolume } from './types.ts';
import { FAILED_MOUNT, mountFailed, podUid } from './types.ts';

export const DEFAULT_MODE = 0o644;
/** The API server's default for serviceAccountToken.expirationSeconds. */
export const DEFAULT_TOKEN_EXPIRATION_SECONDS = 3600;

/**
 * The user every container runs as, when they all agree (upstream's
 * FsUserFrom); the token file is then owned by it with mode 0600.
 */
export function fsUserFrom(pod: V1Pod): number | undefined {
  const podUser = pod.spec?.securityContext?.runAsUser;
  let user: number | undefined;
  const all = [...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])];
  for (const c of all) {
    const u = c.securityContext?.runAsUser ?? podUser;
    if (u === undefined) return undefined;
    if (user !== undefined && user !== u) return undefined;
    user = u;
  }
  return user;
}

export function serviceAccountName(pod: V1Pod): string {
  return pod.spec?.serviceAccountName || pod.spec?.serviceAccount || 'default';
}

/** The merged payload; errors of each failing source are collected, not thrown. */
export async function projectedPayload(env: PluginEnv, pod: V1Pod, volume: V1Volume): Promise<{ payload: Payload; errors: string[] }> {
  const src = volume.projected!;
  const ns = pod.metadata?.namespace ?? 'default';
  const defaultMode = src.defaultMode ?? DEFAULT_MODE;
  const fsGroup = pod.spec?.securityContext?.fsGroup;
  const fsUser = fsUserFrom(pod);
  const payload: Payload = new Map();
  const errors: string[] = [];
  const merge = (p: Payload) => {
    for (const [k, v] of p) payload.set(k, v);
  };
  for (const s of src.sources ?? []) {
    try {
      if (s.configMap) {
        const optional = s.configMap.optional === true;
        const cm = await fetchConfigMap(env, ns, s.configMap.name ?? '', optional);
        merge(configMapPayload(s.configMap.items, cm, defaultMode, optional));
      } else if (s.secret) {
        const optional = s.secret.optional === true;
        const secret = await fetchSecret(env, ns, s.secret.name ?? '', optional);
        merge(secretPayload(s.secret.items, secret, defaultMode, optional));
      } else if (s.downwardAPI) {
        const d = downwardAPIPayload(pod, s.downwardAPI.items, defaultMode, env.allocatable());
        merge(d.payload);
        errors.push(...d.errors);
      } else if (s.serviceAccountToken) {
        const t = s.serviceAccountToken;
        const token = await env.tokens.get({
          namespace: ns,
          serviceAccountName: serviceAccountName(pod),
          audiences: t.audience ? [t.audience] : [],
          expirationSeconds: t.expirationSeconds ?? DEFAULT_TOKEN_EXPIRATION_SECONDS,
          boundPod: { name: pod.metadata?.name ?? '', uid: podUid(pod) },
        });
        // With an fsUser or fsGroup the token is private to it (0600; fsGroup then adds g+r).
        const mode = fsUser !== undefined || fsGroup !== undefined ? 0o600 : defaultMode;
        payload.set(t.path, { data: Buffer.from(token.token), mode, ...(fsUser !== undefined ? { fsUser } : {}) });
      } else if (s.clusterTrustBundle) {
        errors.push('clusterTrustBundle projections are not supported');
      }
    } catch (err) {
      errors.push((err as Error).message);
    }
  }
  return { payload: withFsGroup(payload, fsGroup), errors };
}

export async function setUpProjected(env: PluginEnv, pod: V1Pod, volume: V1Volume): Promise<PodVolume> {
  const dir = volumeDir(env.rootDir, podUid(pod), PLUGIN_PROJECTED, volume.name);
  try {
    const { payload, errors } = await projectedPayload(env, pod, volume);
    if (errors.length > 0) throw new Error(aggregate(errors));
    await ensureMemoryVolumeDir(env, pod, dir);
    await new AtomicWriter(dir, env.clock).write(payload, pod.spec?.securityContext?.fsGroup);
  } catch (err) {
    throw (err as { code?: string }).code === FAILED_MOUNT ? err : mountFailed(volume.name, err);
  }
  return { hostPath: dir, readOnly: true };
}
