// Everything nodelet writes on a Docker object to find it again after a restart:
// label keys in one place, Docker container names, and their encoders and
// parsers. Truth lives in the runtime: ListPodSandbox and ListContainers are
// rebuilt from these alone.
import type { ContainerMetadata, PodSandboxMetadata } from './api.ts';

// Keys the kubelet itself puts on sandboxes and containers (same as upstream).
export const LABEL_POD_NAME = 'io.kubernetes.pod.name';
export const LABEL_POD_NAMESPACE = 'io.kubernetes.pod.namespace';
export const LABEL_POD_UID = 'io.kubernetes.pod.uid';
export const LABEL_CONTAINER_NAME = 'io.kubernetes.container.name';
export const ANNOTATION_CONTAINER_HASH = 'io.kubernetes.container.hash';
export const ANNOTATION_RESTART_COUNT = 'io.kubernetes.container.restartCount';
export const ANNOTATION_TERMINATION_MESSAGE_PATH = 'io.kubernetes.container.terminationMessagePath';
export const ANNOTATION_TERMINATION_MESSAGE_POLICY = 'io.kubernetes.container.terminationMessagePolicy';
export const ANNOTATION_TERMINATION_GRACE_PERIOD = 'io.kubernetes.pod.terminationGracePeriod';

// Keys the runtime adds for itself (dockershim's, plus our own marker).
/** 'podsandbox' or 'container'. */
export const LABEL_TYPE = 'io.kubernetes.docker.type';
export const TYPE_SANDBOX = 'podsandbox';
export const TYPE_CONTAINER = 'container';
export const LABEL_SANDBOX_ID = 'io.kubernetes.sandbox.id';
export const LABEL_LOG_PATH = 'io.kubernetes.container.logpath';
/** Marks objects this runtime owns; recovery lists only these. */
export const LABEL_MANAGED = 'io.nodelet.managed';
export const LABEL_ATTEMPT = 'io.nodelet.attempt';
/** The sandbox's namespace choices ("true"/"false"), so status can report them after a restart. */
export const LABEL_HOST_NETWORK = 'io.nodelet.host-network';
export const LABEL_HOST_PID = 'io.nodelet.host-pid';
export const LABEL_HOST_IPC = 'io.nodelet.host-ipc';
/** The image as the pod spec named it (CRI's userSpecifiedImage; Docker only keeps the ID we ran). */
export const LABEL_USER_IMAGE = 'io.nodelet.image';
/**
 * The CRI label keys the caller gave (JSON array): Docker merges the image's
 * labels and ours into Config.Labels, and only the caller's are CRI labels.
 */
export const LABEL_CRI_KEYS = 'io.nodelet.labels';
/** CRI annotations ride on Docker labels with this prefix (as dockershim did). */
export const ANNOTATION_PREFIX = 'annotation.';

const INTERNAL = new Set([
  LABEL_TYPE,
  LABEL_SANDBOX_ID,
  LABEL_LOG_PATH,
  LABEL_MANAGED,
  LABEL_ATTEMPT,
  LABEL_HOST_NETWORK,
  LABEL_HOST_PID,
  LABEL_HOST_IPC,
  LABEL_CRI_KEYS,
  LABEL_USER_IMAGE,
]);

export const NAME_PREFIX = 'k8s';
export const SANDBOX_CONTAINER_NAME = 'POD';

/** Docker labels for CRI labels + annotations + the runtime's own keys. */
export function encodeLabels(
  labels: Record<string, string> | undefined,
  annotations: Record<string, string> | undefined,
  internal: Record<string, string>,
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(internal)) out[k] = v;
  for (const [k, v] of Object.entries(labels ?? {})) out[k] = v; // the caller's value wins on a shared key
  for (const [k, v] of Object.entries(annotations ?? {})) out[ANNOTATION_PREFIX + k] = v;
  out[LABEL_MANAGED] = 'true';
  out[LABEL_CRI_KEYS] = JSON.stringify(Object.keys(labels ?? {}).sort());
  return out;
}

/**
 * Splits Docker labels back into the CRI labels and annotations the caller gave
 * (image labels and the runtime's own keys are dropped).
 */
export function decodeLabels(docker: Record<string, string> | undefined): {
  labels: Record<string, string>;
  annotations: Record<string, string>;
} {
  const labels: Record<string, string> = {};
  const annotations: Record<string, string> = {};
  let keys: Set<string> | undefined;
  try {
    const raw = docker?.[LABEL_CRI_KEYS];
    if (raw !== undefined) keys = new Set(JSON.parse(raw) as string[]);
  } catch {
    keys = undefined;
  }
  for (const [k, v] of Object.entries(docker ?? {})) {
    if (k.startsWith(ANNOTATION_PREFIX)) annotations[k.slice(ANNOTATION_PREFIX.length)] = v;
    else if (keys ? keys.has(k) : !INTERNAL.has(k)) labels[k] = v;
  }
  return { labels, annotations };
}

/** Labels the kubelet puts on every object of a pod (pod name, namespace, UID). */
export function podLabels(pod: { name: string; namespace: string; uid: string }): Record<string, string> {
  return { [LABEL_POD_NAME]: pod.name, [LABEL_POD_NAMESPACE]: pod.namespace, [LABEL_POD_UID]: pod.uid };
}

/** What the kubelet needs back from a container's labels and annotations. */
export interface ContainerIdentity {
  podName: string;
  podNamespace: string;
  podUID: string;
  containerName: string;
  /** The hash of the container spec it was created from ('' when absent). */
  hash: string;
  restartCount: number;
}

/** Labels and annotations the kubelet sets on an app container (upstream's split). */
export function encodeContainerIdentity(id: ContainerIdentity): {
  labels: Record<string, string>;
  annotations: Record<string, string>;
} {
  return {
    labels: {
      ...podLabels({ name: id.podName, namespace: id.podNamespace, uid: id.podUID }),
      [LABEL_CONTAINER_NAME]: id.containerName,
    },
    annotations: {
      [ANNOTATION_CONTAINER_HASH]: id.hash,
      [ANNOTATION_RESTART_COUNT]: String(id.restartCount),
    },
  };
}

/** Reads encodeContainerIdentity's output back; undefined when a pod or container key is missing. */
export function decodeContainerIdentity(
  labels: Record<string, string>,
  annotations: Record<string, string>,
): ContainerIdentity | undefined {
  const podName = labels[LABEL_POD_NAME];
  const podNamespace = labels[LABEL_POD_NAMESPACE];
  const podUID = labels[LABEL_POD_UID];
  const containerName = labels[LABEL_CONTAINER_NAME];
  if (podName === undefined || podNamespace === undefined || podUID === undefined || containerName === undefined) {
    return undefined;
  }
  const rc = Number(annotations[ANNOTATION_RESTART_COUNT] ?? '0');
  return {
    podName,
    podNamespace,
    podUID,
    containerName,
    hash: annotations[ANNOTATION_CONTAINER_HASH] ?? '',
    restartCount: Number.isInteger(rc) && rc >= 0 ? rc : 0,
  };
}

// ---- Docker container names ----------------------------------------------

/** k8s_POD_<pod>_<ns>_<uid>_<attempt> */
export function sandboxName(m: PodSandboxMetadata): string {
  return [NAME_PREFIX, SANDBOX_CONTAINER_NAME, m.name, m.namespace, m.uid, String(m.attempt)].join('_');
}

/** k8s_<container>_<pod>_<ns>_<uid>_<attempt> (attempt of the container, not the sandbox). */
export function containerName(sandbox: PodSandboxMetadata, c: ContainerMetadata): string {
  return [NAME_PREFIX, c.name, sandbox.name, sandbox.namespace, sandbox.uid, String(c.attempt)].join('_');
}

export interface ParsedName {
  /** 'POD' for a sandbox. */
  container: string;
  pod: string;
  namespace: string;
  uid: string;
  attempt: number;
}

/**
 * Parses a name made by sandboxName / containerName (a leading '/' as Docker
 * reports it is accepted). Pod, namespace and container names are DNS names and
 * UIDs have no '_', so '_' separates unambiguously. Undefined when not ours.
 */
export function parseName(name: string): ParsedName | undefined {
  const parts = name.replace(/^\//, '').split('_');
  if (parts.length !== 6 || parts[0] !== NAME_PREFIX) return undefined;
  const [, container, pod, namespace, uid, attemptText] = parts as [string, string, string, string, string, string];
  if (!container || !pod || !namespace || !uid || !/^\d+$/.test(attemptText)) return undefined;
  return { container, pod, namespace, uid, attempt: Number(attemptText) };
}

export function isSandboxName(name: string): boolean {
  return parseName(name)?.container === SANDBOX_CONTAINER_NAME;
}

/** CRI label selectors: every key must be present with the same value. */
export function matchesSelector(labels: Record<string, string>, selector: Record<string, string> | undefined): boolean {
  if (!selector) return true;
  return Object.entries(selector).every(([k, v]) => labels[k] === v);
}
