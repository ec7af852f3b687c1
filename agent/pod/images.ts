// The image manager, as upstream's pkg/kubelet/images: applies the pull policy
// (Always / IfNotPresent / Never), pulls with credentials from the pod's
// imagePullSecrets, backs off failed pulls per image (10 s doubling to 300 s),
// and turns every failure into the waiting reason and events upstream uses
// (ErrImagePull, ImagePullBackOff, InvalidImageName, ErrImageNeverPull).
import type { V1Container, V1Pod, V1Secret } from '@kubernetes/client-node';
import type { AuthConfig, ImageService } from '../../cri/runtime.ts';
import { parseImageReference } from '../../cri/reference.ts';
import type { Clock } from '../../lib/clock.ts';
import { describeError } from '../../lib/errors.ts';
import { CrashLoopBackOff, formatGoDuration } from './backoff.ts';
import { pullPolicy } from './podconfig.ts';

export const REASON_ERR_IMAGE_PULL = 'ErrImagePull';
export const REASON_IMAGE_PULL_BACKOFF = 'ImagePullBackOff';
export const REASON_INVALID_IMAGE_NAME = 'InvalidImageName';
export const REASON_ERR_IMAGE_NEVER_PULL = 'ErrImageNeverPull';

export interface ImageEvent {
  type: 'Normal' | 'Warning';
  reason: string;
  message: string;
}

export type EnsureImageResult =
  | { ok: true; imageRef: string; events: ImageEvent[] }
  | { ok: false; reason: string; message: string; events: ImageEvent[] };

type DockerAuths = Record<string, { username?: string; password?: string; auth?: string; identitytoken?: string; registrytoken?: string }>;

/** Registry host of a config.json key ('https://index.docker.io/v1/' → 'docker.io'). */
function registryHost(key: string): string {
  let h = key.replace(/^https?:\/\//, '');
  h = h.split('/')[0] ?? h;
  if (h === 'index.docker.io' || h === 'registry-1.docker.io') return 'docker.io';
  return h;
}

/** Credentials for `image` from kubernetes.io/dockerconfigjson or dockercfg secrets (first match wins, as upstream's keyring). */
export function authForImage(image: string, secrets: readonly V1Secret[]): AuthConfig | undefined {
  let domain: string;
  try {
    domain = parseImageReference(image).domain;
  } catch {
    return undefined;
  }
  for (const s of secrets) {
    const data = s.data ?? {};
    let auths: DockerAuths | undefined;
    try {
      if (data['.dockerconfigjson']) auths = (JSON.parse(Buffer.from(data['.dockerconfigjson'], 'base64').toString()) as { auths?: DockerAuths }).auths;
      else if (data['.dockercfg']) auths = JSON.parse(Buffer.from(data['.dockercfg'], 'base64').toString()) as DockerAuths;
    } catch {
      continue; // a malformed secret is skipped, as upstream's keyring does
    }
    for (const [key, a] of Object.entries(auths ?? {})) {
      if (registryHost(key) !== domain) continue;
      const out: AuthConfig = { serverAddress: key };
      if (a.username) out.username = a.username;
      if (a.password) out.password = a.password;
      if (a.auth) out.auth = a.auth;
      if (a.identitytoken) out.identityToken = a.identitytoken;
      if (a.registrytoken) out.registryToken = a.registrytoken;
      return out;
    }
  }
  return undefined;
}

export class ImageManager {
  private readonly images: ImageService;
  private readonly clock: Clock;
  private readonly backoff: CrashLoopBackOff;
  /** When each image's last pull failed (ms), for the back-off window. */
  private readonly lastFailure = new Map<string, number>();

  constructor(deps: { images: ImageService; clock: Clock }) {
    this.images = deps.images;
    this.clock = deps.clock;
    this.backoff = new CrashLoopBackOff(deps.clock);
  }

  /** Makes sure the container's image is present; `secrets` are the pod's imagePullSecrets that exist. */
  async ensureImage(pod: V1Pod, c: V1Container, secrets: readonly V1Secret[]): Promise<EnsureImageResult> {
    const image = c.image ?? '';
    const events: ImageEvent[] = [];
    try {
      parseImageReference(image);
    } catch (err) {
      const message = `Failed to apply default image tag "${image}": ${describeError(err)}`;
      events.push({ type: 'Warning', reason: 'InspectFailed', message });
      return { ok: false, reason: REASON_INVALID_IMAGE_NAME, message, events };
    }
    const policy = pullPolicy(c);
    const present = policy === 'Always' ? undefined : await this.images.imageStatus({ image });
    if (present) {
      events.push({ type: 'Normal', reason: 'Pulled', message: `Container image "${image}" already present on machine` });
      return { ok: true, imageRef: present.id, events };
    }
    if (policy === 'Never') {
      const message = `Container image "${image}" is not present with pull policy of Never`;
      events.push({ type: 'Warning', reason: REASON_ERR_IMAGE_NEVER_PULL, message });
      return { ok: false, reason: REASON_ERR_IMAGE_NEVER_PULL, message, events };
    }
    const key = `${pod.metadata?.uid ?? ''}/${image}`;
    const failedAt = this.lastFailure.get(key);
    if (failedAt !== undefined && this.backoff.isInBackOffSince(key, failedAt)) {
      const message = `Back-off pulling image "${image}"`;
      events.push({ type: 'Normal', reason: 'BackOff', message });
      return { ok: false, reason: REASON_IMAGE_PULL_BACKOFF, message, events };
    }
    events.push({ type: 'Normal', reason: 'Pulling', message: `Pulling image "${image}"` });
    const started = this.clock.now();
    try {
      const ref = await this.images.pullImage({ image }, authForImage(image, secrets));
      this.lastFailure.delete(key);
      const took = formatGoDuration(this.clock.now() - started);
      events.push({ type: 'Normal', reason: 'Pulled', message: `Successfully pulled image "${image}" in ${took}` });
      return { ok: true, imageRef: ref, events };
    } catch (err) {
      const now = this.clock.now();
      this.backoff.next(key, now);
      this.lastFailure.set(key, now);
      const message = `Failed to pull image "${image}": ${describeError(err)}`;
      events.push({ type: 'Warning', reason: 'Failed', message });
      events.push({ type: 'Warning', reason: 'Failed', message: `Error: ${REASON_ERR_IMAGE_PULL}` });
      return { ok: false, reason: REASON_ERR_IMAGE_PULL, message, events };
    }
  }

  /** How long until the image's pull back-off ends (0 when not backing off). */
  retryAfterMs(pod: V1Pod, image: string): number {
    const key = `${pod.metadata?.uid ?? ''}/${image}`;
    const failedAt = this.lastFailure.get(key);
    if (failedAt === undefined) return 0;
    return Math.max(0, failedAt + this.backoff.get(key) - this.clock.now());
  }

  /** Forgets a pod's back-off state. */
  forgetPod(uid: string): void {
    for (const k of this.lastFailure.keys()) if (k.startsWith(`${uid}/`)) this.lastFailure.delete(k);
    this.backoff.gc();
  }
}
