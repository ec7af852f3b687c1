// The downward API's values, as upstream's fieldpath package and
// ExtractContainerResourceValue compute them: pure functions of the pod.
import type { V1Container, V1Pod } from '@kubernetes/client-node';
import { quantityNanos } from '../pod/qos.ts';
import type { NodeAllocatable } from './types.ts';

/** Go's strconv.Quote, closely enough for label and annotation values. */
export function goQuote(s: string): string {
  let out = '"';
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    if (ch === '"') out += '\\"';
    else if (ch === '\\') out += '\\\\';
    else if (c === 7) out += '\\a';
    else if (c === 8) out += '\\b';
    else if (c === 12) out += '\\f';
    else if (c === 10) out += '\\n';
    else if (c === 13) out += '\\r';
    else if (c === 9) out += '\\t';
    else if (c === 11) out += '\\v';
    else if (c < 0x20 || c === 0x7f) out += `\\x${c.toString(16).padStart(2, '0')}`;
    else if (c >= 0x80 && c < 0xa0) out += `\\u${c.toString(16).padStart(4, '0')}`;
    else out += ch;
  }
  return out + '"';
}

/** Upstream's FormatMap: `key="value"` lines sorted by key, no trailing newline. */
export function formatMap(m: Record<string, string> | undefined): string {
  return Object.keys(m ?? {})
    .sort()
    .map((k) => `${k}=${goQuote(m![k]!)}`)
    .join('\n');
}

/** `metadata.labels['app']` -> ['metadata.labels', 'app']. */
export function splitSubscript(fieldPath: string): [string, string] | undefined {
  if (!fieldPath.endsWith("']")) return undefined;
  const i = fieldPath.indexOf("['");
  if (i < 0) return undefined;
  return [fieldPath.slice(0, i), fieldPath.slice(i + 2, -2)];
}

/** The fields a downwardAPI volume may project (ExtractFieldPathAsString). Throws with upstream's text. */
export function extractFieldPath(pod: V1Pod, fieldPath: string): string {
  const md = pod.metadata ?? {};
  const sub = splitSubscript(fieldPath);
  if (sub) {
    const [p, key] = sub;
    if (p === 'metadata.annotations') return md.annotations?.[key] ?? '';
    if (p === 'metadata.labels') return md.labels?.[key] ?? '';
    throw new Error(`fieldPath ${JSON.stringify(fieldPath)} does not support subscript`);
  }
  switch (fieldPath) {
    case 'metadata.annotations':
      return formatMap(md.annotations);
    case 'metadata.labels':
      return formatMap(md.labels);
    case 'metadata.name':
      return md.name ?? '';
    case 'metadata.namespace':
      return md.namespace ?? '';
    case 'metadata.uid':
      return md.uid ?? '';
  }
  throw new Error(`unsupported fieldPath: ${fieldPath}`);
}

function findContainer(pod: V1Pod, name: string): V1Container | undefined {
  return [...(pod.spec?.containers ?? []), ...(pod.spec?.initContainers ?? [])].find((c) => c.name === name);
}

function ceilDiv(a: bigint, b: bigint): bigint {
  if (b <= 0n) throw new Error('divisor must be positive');
  return a >= 0n ? (a + b - 1n) / b : a / b;
}

/** Quantity -> Value() (whole units, rounded up) or MilliValue(). */
function units(q: string | undefined, milli: boolean): bigint {
  const n = q === undefined ? 0n : (quantityNanos(q) ?? 0n);
  return ceilDiv(n, milli ? 1_000_000n : 1_000_000_000n);
}

/**
 * A container's resource as a downward API string (limits.cpu, requests.memory,
 * ...), divided by `divisor` and rounded up; an unset limit is the node's
 * allocatable, as upstream's MergeContainerResourceLimits makes it.
 */
export function containerResourceValue(
  pod: V1Pod,
  containerName: string,
  resource: string,
  divisor: string | undefined,
  allocatable: NodeAllocatable | undefined,
): string {
  const c = findContainer(pod, containerName);
  if (!c) throw new Error(`container ${containerName} not found`);
  const dot = resource.indexOf('.');
  const kind = resource.slice(0, dot);
  const name = resource.slice(dot + 1);
  if (dot < 0 || (kind !== 'limits' && kind !== 'requests')) throw new Error(`unsupported container resource : ${resource}`);
  const isCpu = name === 'cpu';
  if (!isCpu && name !== 'memory' && name !== 'ephemeral-storage' && !name.startsWith('hugepages-')) {
    throw new Error(`unsupported container resource : ${resource}`);
  }
  const q = (kind === 'limits' ? c.resources?.limits : c.resources?.requests)?.[name];
  let value = units(q, isCpu);
  if (kind === 'limits' && value === 0n) {
    const alloc =
      name === 'cpu' ? allocatable?.cpuMillis : name === 'memory' ? allocatable?.memoryBytes : name === 'ephemeral-storage' ? allocatable?.ephemeralStorageBytes : undefined;
    if (alloc !== undefined) value = BigInt(Math.floor(alloc));
  }
  const div = units(divisor && divisor !== '0' ? divisor : '1', isCpu);
  return ceilDiv(value, div).toString();
}
