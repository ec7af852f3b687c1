// Pod admission, as upstream's predicateAdmitHandler reduced to what a node
// decides alone: the pod's requests must fit what allocatable leaves after the
// pods already admitted, and the pod count must stay within max-pods. A pod
// that does not fit ends Failed with upstream's reason (OutOfcpu, OutOfmemory,
// OutOfpods, ...) and message. Pure: the caller passes the admitted pods.
import type { V1Container, V1Pod } from '@kubernetes/client-node';
import { quantityNanos } from './qos.ts';

export interface AdmitResult {
  admit: boolean;
  reason?: string;
  message?: string;
}

const CHECKED = ['cpu', 'memory', 'ephemeral-storage'] as const;

function nanos(q: string | undefined): bigint {
  return q === undefined ? 0n : (quantityNanos(q) ?? 0n);
}

/** The pod's effective request of one resource: max(sum of app containers, any init container) + overhead. */
export function podRequest(pod: V1Pod, resource: string): bigint {
  const req = (c: V1Container) => nanos(c.resources?.requests?.[resource]);
  let sum = 0n;
  for (const c of pod.spec?.containers ?? []) sum += req(c);
  // Sidecars (restartable init containers) run beside the app containers.
  let sidecars = 0n;
  let initMax = 0n;
  for (const c of pod.spec?.initContainers ?? []) {
    if (c.restartPolicy === 'Always') {
      sidecars += req(c);
      if (sidecars > initMax) initMax = sidecars;
    } else if (sidecars + req(c) > initMax) {
      initMax = sidecars + req(c);
    }
  }
  let total = sum + sidecars > initMax ? sum + sidecars : initMax;
  total += nanos(pod.spec?.overhead?.[resource]);
  return total;
}

/** Human form of a nano-quantity for messages: cpu in millicores, others in whole units. */
function show(resource: string, n: bigint): string {
  if (resource === 'cpu') return String(n / 1_000_000n);
  return String(n / 1_000_000_000n);
}

export function admitPod(pod: V1Pod, admitted: readonly V1Pod[], allocatable: Record<string, string>): AdmitResult {
  const maxPods = Number(allocatable['pods'] ?? '110');
  if (admitted.length + 1 > maxPods) {
    return { admit: false, reason: 'OutOfpods', message: `Node didn't have enough resource: pods, requested: 1, used: ${admitted.length}, capacity: ${maxPods}` };
  }
  for (const r of CHECKED) {
    const want = podRequest(pod, r);
    if (want === 0n) continue;
    const cap = allocatable[r] === undefined ? undefined : nanos(allocatable[r]);
    if (cap === undefined) continue;
    let used = 0n;
    for (const p of admitted) used += podRequest(p, r);
    if (used + want > cap) {
      return {
        admit: false,
        reason: `OutOf${r}`,
        message: `Node didn't have enough resource: ${r}, requested: ${show(r, want)}, used: ${show(r, used)}, capacity: ${show(r, cap)}`,
      };
    }
  }
  return { admit: true };
}
