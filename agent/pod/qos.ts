// A pod's QoS class, as upstream's GetPodQOS / ComputePodQOS
// (pkg/apis/core/v1/helper/qos): only cpu and memory count; pod-level
// resources, when given, decide alone.
import type { V1Pod, V1ResourceRequirements } from '@kubernetes/client-node';

export type QOSClass = 'Guaranteed' | 'Burstable' | 'BestEffort';

const QOS_RESOURCES = ['cpu', 'memory'] as const;

const BINARY: Record<string, bigint> = { Ki: 1n << 10n, Mi: 1n << 20n, Gi: 1n << 30n, Ti: 1n << 40n, Pi: 1n << 50n, Ei: 1n << 60n };
const DECIMAL: Record<string, number> = { n: -9, u: -6, m: -3, '': 0, k: 3, M: 6, G: 9, T: 12, P: 15, E: 18 };

/**
 * A resource quantity ("500m", "1.5Gi", "2e3", "128974848") in nano-units,
 * exact (bigint), rounded up below one nano as upstream's Quantity does.
 * Undefined when the text is not a quantity.
 */
export function quantityNanos(q: string): bigint | undefined {
  const m = /^([+-]?)(\d+\.?\d*|\.\d+)(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?\d+)?$/.exec(q.trim());
  if (!m) return undefined;
  const [, sign, num = '', suffix = ''] = m;
  const [intPart = '', fracPart = ''] = num.split('.');
  let n = BigInt((intPart + fracPart).replace(/^0+(?=\d)/, '') || '0');
  let exp = 9 - fracPart.length; // nano-units
  const bin = BINARY[suffix];
  if (bin !== undefined) n *= bin;
  else if (suffix.length > 1 && (suffix[0] === 'e' || suffix[0] === 'E')) exp += Number(suffix.slice(1));
  else exp += DECIMAL[suffix] ?? 0;
  if (exp >= 0) n *= 10n ** BigInt(exp);
  else {
    const d = 10n ** BigInt(-exp);
    n = (n + d - 1n) / d;
  }
  return sign === '-' ? -n : n;
}

/** Two quantities are equal in value ("1" == "1000m", "1Gi" == "1073741824"); a missing one is zero. */
function sameQuantity(a: string | undefined, b: string | undefined): boolean {
  return (a === undefined ? 0n : (quantityNanos(a) ?? 0n)) === (b === undefined ? 0n : (quantityNanos(b) ?? 0n));
}

function isZero(q: string | undefined): boolean {
  return q === undefined || (quantityNanos(q) ?? 0n) === 0n;
}

/** The class one set of requirements implies (upstream's resourceQOS). */
function resourceQOS(r: V1ResourceRequirements | undefined): QOSClass {
  const requests = r?.requests ?? {};
  const limits = r?.limits ?? {};
  if (Object.keys(requests).length === 0 && Object.keys(limits).length === 0) return 'BestEffort';
  let qos: QOSClass | undefined;
  for (const res of QOS_RESOURCES) {
    const req = requests[res];
    const lim = limits[res];
    // Unequal means at least one is non-zero: neither Guaranteed nor BestEffort.
    if (!sameQuantity(req, lim)) return 'Burstable';
    const bestEffort = isZero(req) && isZero(lim);
    if (qos === undefined) qos = bestEffort ? 'BestEffort' : 'Guaranteed';
    else if (bestEffort !== (qos === 'BestEffort')) return 'Burstable';
  }
  return qos ?? 'BestEffort';
}

/** Evaluates the spec (upstream's ComputePodQOS). */
export function computePodQOS(pod: V1Pod): QOSClass {
  if (pod.spec?.resources) return resourceQOS(pod.spec.resources);
  let podQOS: QOSClass | undefined;
  for (const c of [...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])]) {
    const qos = resourceQOS(c.resources);
    if (qos === 'Burstable') return qos;
    if (podQOS === undefined) podQOS = qos;
    else if (podQOS !== qos) return 'Burstable'; // one BestEffort and one Guaranteed
  }
  return podQOS ?? 'BestEffort';
}

/** The class persisted in status (the API server sets it at creation and it never changes), else computed. */
export function getPodQOS(pod: V1Pod): QOSClass {
  const s = pod.status?.qosClass;
  if (s === 'Guaranteed' || s === 'Burstable' || s === 'BestEffort') return s;
  return computePodQOS(pod);
}
