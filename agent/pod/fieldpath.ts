// The downward API values both consumers share, as upstream's fieldpath
// package (ExtractFieldPathAsString, FormatMap, SplitMaybeSubscriptedPath)
// and pkg/api/v1/resource (MergeContainerResourceLimits,
// ExtractContainerResourceValue) compute them: pure functions of the pod.
// env.ts adds the kubelet-only fields (spec.nodeName, status.podIP, ...) and
// CreateContainerConfigError on top; downwardAPI volumes use these as they are.
import type { V1Container, V1Pod, V1ResourceFieldSelector } from '@kubernetes/client-node';
import { NodeletError } from '../../lib/errors.ts';
import { quantityNanos } from './qos.ts';

/** Code of every error thrown here; callers rewrap it in their own (env: CreateContainerConfigError, volumes: FailedMount). */
export const DOWNWARD_API_INVALID = 'DOWNWARD_API_INVALID';

function invalid(message: string): NodeletError {
  return new NodeletError(DOWNWARD_API_INVALID, message);
}

/** A v1.ResourceList: resource name -> quantity text. */
export type ResourceList = Record<string, string>;

const GO_ESCAPES: Record<string, string> = { '\x07': '\\a', '\b': '\\b', '\f': '\\f', '\n': '\\n', '\r': '\\r', '\t': '\\t', '\v': '\\v', '\\': '\\\\', '"': '\\"' };

/** Go's strconv.Quote, closely enough for label and annotation values. */
export function goQuote(s: string): string {
  let out = '"';
  for (const ch of s) {
    const esc = GO_ESCAPES[ch];
    const cp = ch.codePointAt(0)!;
    if (esc) out += esc;
    else if (cp < 0x20 || cp === 0x7f) out += `\\x${cp.toString(16).padStart(2, '0')}`;
    else if (cp >= 0x80 && cp < 0xa0) out += `\\u${cp.toString(16).padStart(4, '0')}`;
    else out += ch;
  }
  return out + '"';
}

/** Upstream's FormatMap: `key="value"` lines sorted by key, values quoted as Go does, no trailing newline. */
export function formatMap(m: Record<string, string> | undefined): string {
  const map = m ?? {};
  return Object.keys(map)
    .sort()
    .map((k) => `${k}=${goQuote(map[k]!)}`)
    .join('\n');
}

/** `metadata.labels['app']` -> ['metadata.labels', 'app'] (upstream SplitMaybeSubscriptedPath); undefined when not subscripted. */
export function splitSubscript(fieldPath: string): [string, string] | undefined {
  if (!fieldPath.endsWith("']")) return undefined;
  const s = fieldPath.slice(0, -2);
  const i = s.indexOf("['");
  if (i <= 0) return undefined;
  return [s.slice(0, i), s.slice(i + 2)];
}

const LABEL_KEY_FMT = '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]';
const LABEL_KEY_MSG = `must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName' or 'my.name' or '123-abc', regex used for validation is '${LABEL_KEY_FMT}')`;
const DNS1123_SUBDOMAIN_FMT = '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*';

/** upstream IsQualifiedName (label key): optional DNS subdomain prefix, '/', a name of up to 63 characters. */
export function labelKeyErrors(value: string): string[] {
  const errs: string[] = [];
  const parts = value.split('/');
  if (parts.length > 2) {
    return [`a valid label key ${LABEL_KEY_MSG} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')`];
  }
  const name = parts.length === 2 ? parts[1]! : parts[0]!;
  if (parts.length === 2) {
    const prefix = parts[0]!;
    if (prefix === '') errs.push('prefix part must be non-empty');
    else {
      if (prefix.length > 253) errs.push('prefix part must be no more than 253 characters');
      if (!new RegExp(`^${DNS1123_SUBDOMAIN_FMT}$`).test(prefix)) {
        errs.push(
          `prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '${DNS1123_SUBDOMAIN_FMT}')`,
        );
      }
    }
  }
  if (name === '') errs.push('name part must be non-empty');
  else if (name.length > 63) errs.push('name part must be no more than 63 characters');
  if (!new RegExp(`^${LABEL_KEY_FMT}$`).test(name)) errs.push(`name part ${LABEL_KEY_MSG}`);
  return errs;
}

/**
 * The metadata fields any downward API consumer may read (upstream
 * ExtractFieldPathAsString): what a downwardAPI volume projects, and where the
 * env's fieldRef ends up for everything but the kubelet-only fields.
 */
export function extractFieldPath(pod: V1Pod, fieldPath: string): string {
  const md = pod.metadata ?? {};
  const sub = splitSubscript(fieldPath);
  if (sub) {
    const [base, key] = sub;
    if (base !== 'metadata.annotations' && base !== 'metadata.labels') throw invalid(`fieldPath ${goQuote(fieldPath)} does not support subscript`);
    // Annotation keys are validated lowercased but looked up as written.
    const errs = labelKeyErrors(base === 'metadata.annotations' ? key.toLowerCase() : key);
    if (errs.length) throw invalid(`invalid key subscript in ${fieldPath}: ${errs.join(';')}`);
    return (base === 'metadata.annotations' ? md.annotations : md.labels)?.[key] ?? '';
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
  throw invalid(`unsupported fieldPath: ${fieldPath}`);
}

/** The limits a missing or zero one is defaulted for; hugepages are never overcommitted, so never defaulted. */
const DEFAULTED_LIMITS = ['cpu', 'memory', 'ephemeral-storage'] as const;

/** A missing quantity, or one that is zero in value ("0", "0m"). */
export function isZeroOrMissing(q: string | undefined): boolean {
  return q === undefined || (quantityNanos(q) ?? 0n) === 0n;
}

/** Ceiling of a/b, rounding away from zero as upstream's Quantity.Value(). */
function divUp(a: bigint, b: bigint): bigint {
  const q = a / b;
  return a % b === 0n ? q : a > 0n === b > 0n ? q + 1n : q - 1n;
}

function parseQuantity(q: string | undefined, what: string): bigint {
  if (q === undefined) return 0n;
  const n = quantityNanos(q);
  if (n === undefined) throw invalid(`invalid quantity ${JSON.stringify(q)} for ${what}`);
  return n;
}

/**
 * A container's resource as a downward API string (limits.cpu,
 * requests.memory, ...), divided by the selector's divisor and rounded up
 * (upstream ExtractResourceValueByContainerNameAndNodeAllocatable). The
 * container is the one the selector names, else `container`. A missing or
 * zero cpu, memory or ephemeral-storage limit takes its value from
 * `allocatable` (MergeContainerResourceLimits).
 */
export function containerResourceValue(
  sel: V1ResourceFieldSelector,
  pod: V1Pod,
  container: V1Container | undefined,
  allocatable: ResourceList,
): string {
  let target = container;
  if (sel.containerName) {
    target = [...(pod.spec?.containers ?? []), ...(pod.spec?.initContainers ?? [])].find((c) => c.name === sel.containerName);
  }
  if (!target) throw invalid(`container ${sel.containerName ?? ''} not found`);
  const limits: ResourceList = { ...(target.resources?.limits ?? {}) };
  for (const r of DEFAULTED_LIMITS) {
    const a = allocatable[r];
    if (isZeroOrMissing(limits[r]) && a !== undefined) limits[r] = a;
  }
  const requests = target.resources?.requests ?? {};

  const divNanos = isZeroOrMissing(sel.divisor) ? 1_000_000_000n : parseQuantity(sel.divisor, 'divisor');
  const dot = sel.resource.indexOf('.');
  const kind = sel.resource.slice(0, dot);
  const name = sel.resource.slice(dot + 1);
  const list = kind === 'limits' ? limits : kind === 'requests' ? requests : undefined;
  const supported = name === 'cpu' || name === 'memory' || name === 'ephemeral-storage' || name.startsWith('hugepages-');
  if (dot < 0 || !list || !supported) throw invalid(`unsupported container resource : ${sel.resource}`);

  const nanos = parseQuantity(list[name], sel.resource);
  if (name === 'cpu') {
    // cpu in milli-units, rounded up (so 250m with divisor 1 is "1").
    return String(divUp(divUp(nanos, 1_000_000n), divUp(divNanos, 1_000_000n)));
  }
  return String(divUp(divUp(nanos, 1_000_000_000n), divUp(divNanos, 1_000_000_000n)));
}
