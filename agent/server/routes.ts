// The kubelet API's paths (upstream pkg/kubelet/server), parsed into a plain
// route, and the lookups a route needs: the pod by namespace/name (and UID when
// the path has one), the container in its spec, and what the runtime holds.
import type { V1Pod } from '@kubernetes/client-node';
import { CONTAINER_RUNNING, SANDBOX_READY } from '../../cri/api.ts';
import type { RuntimeContainer, RuntimePodStatus } from '../pod/types.ts';

/** A route that names one container of a pod, optionally with the pod's UID. */
export interface ContainerRoute {
  kind: 'exec' | 'attach' | 'run';
  namespace: string;
  pod: string;
  uid?: string;
  container: string;
}

export type Route =
  | { kind: 'healthz' }
  | { kind: 'pods' }
  | { kind: 'metrics' }
  | { kind: 'resourceMetrics' }
  | { kind: 'statsSummary' }
  | { kind: 'containerLogs'; namespace: string; pod: string; container: string }
  | ContainerRoute
  | { kind: 'portForward'; namespace: string; pod: string; uid?: string }
  | { kind: 'notFound' };

/** Route for a request path (without the query). Segments are URL-decoded. */
export function parseRoute(pathname: string): Route {
  if (pathname === '/healthz') return { kind: 'healthz' };
  if (pathname === '/pods' || pathname === '/pods/') return { kind: 'pods' };
  if (pathname === '/metrics') return { kind: 'metrics' };
  if (pathname === '/metrics/resource') return { kind: 'resourceMetrics' };
  if (pathname === '/stats/summary' || pathname === '/stats/summary/') return { kind: 'statsSummary' };
  let segs: string[];
  try {
    segs = pathname.split('/').slice(1).map((s) => decodeURIComponent(s));
  } catch {
    return { kind: 'notFound' };
  }
  if (segs.some((s) => s === '')) return { kind: 'notFound' };
  const [head, ...rest] = segs;
  switch (head) {
    case 'containerLogs':
      if (rest.length === 3) return { kind: 'containerLogs', namespace: rest[0]!, pod: rest[1]!, container: rest[2]! };
      break;
    case 'exec':
    case 'attach':
    case 'run':
      if (rest.length === 3) return { kind: head, namespace: rest[0]!, pod: rest[1]!, container: rest[2]! };
      if (rest.length === 4) return { kind: head, namespace: rest[0]!, pod: rest[1]!, uid: rest[2]!, container: rest[3]! };
      break;
    case 'portForward':
      if (rest.length === 2) return { kind: 'portForward', namespace: rest[0]!, pod: rest[1]! };
      if (rest.length === 3) return { kind: 'portForward', namespace: rest[0]!, pod: rest[1]!, uid: rest[2]! };
      break;
  }
  return { kind: 'notFound' };
}

/** The pods this node runs and what the runtime holds for them. */
export interface NodePods {
  /** API pods bound to this node and static pods. */
  pods(): V1Pod[];
  /** The runtime's view of a pod (containers and sandboxes newest first). */
  runtimePod(uid: string): RuntimePodStatus | undefined;
}

export function findPod(pods: readonly V1Pod[], namespace: string, name: string, uid?: string): V1Pod | undefined {
  return pods.find(
    (p) => p.metadata?.namespace === namespace && p.metadata?.name === name && (uid === undefined || p.metadata?.uid === uid),
  );
}

export function hasContainer(pod: V1Pod, name: string): boolean {
  const s = pod.spec;
  return [...(s?.containers ?? []), ...(s?.initContainers ?? []), ...(s?.ephemeralContainers ?? [])].some((c) => c.name === name);
}

function byNewest(rt: RuntimePodStatus | undefined, name: string): RuntimeContainer[] {
  return (rt?.containers ?? []).filter((c) => c.name === name).sort((a, b) => b.createdAt - a.createdAt);
}

export function runningContainer(rt: RuntimePodStatus | undefined, name: string): RuntimeContainer | undefined {
  return byNewest(rt, name).find((c) => c.state === CONTAINER_RUNNING);
}

/** The container whose logs to read: the newest one, or the one before it for `previous`. */
export function logContainer(
  rt: RuntimePodStatus | undefined,
  podName: string,
  name: string,
  previous: boolean,
): { container: RuntimeContainer } | { error: string } {
  const list = byNewest(rt, name);
  if (previous) {
    const prev = list[1];
    return prev ? { container: prev } : { error: `previous terminated container "${name}" in pod "${podName}" not found` };
  }
  const cur = list[0];
  return cur ? { container: cur } : { error: `container "${name}" in pod "${podName}" is waiting to start: ContainerCreating` };
}

export function readySandbox(rt: RuntimePodStatus | undefined): string | undefined {
  return rt?.sandboxes.find((s) => s.state === SANDBOX_READY)?.id;
}
