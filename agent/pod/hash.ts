// The container spec hash the kubelet stores on each container (label
// io.kubernetes.container.hash) and compares on every sync: a different hash
// means "the spec changed, restart it".
//
// Upstream (1.31+) hashes only the fields whose change must restart a running
// container, name and image, because hashing the whole struct restarted every
// container whenever an upgrade added a defaulted field. The rest of a pod's
// container spec is immutable in the API, so nothing is lost. We do the same,
// deterministically: canonical JSON (sorted keys) of the picked fields, then
// FNV-1a 32-bit, printed in lowercase hex without padding (as upstream's
// strconv.FormatUint(hash, 16)).
import type { V1Container } from '@kubernetes/client-node';

/** JSON with object keys sorted at every level; undefined members dropped; Dates as RFC 3339. */
export function canonicalJSON(value: unknown): string {
  return JSON.stringify(normalize(value));
}

function normalize(v: unknown): unknown {
  if (v instanceof Date) return v.toISOString();
  if (Array.isArray(v)) return v.map((x) => (x === undefined ? null : normalize(x)));
  if (v !== null && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(v).sort()) {
      const x = (v as Record<string, unknown>)[k];
      if (x !== undefined) out[k] = normalize(x);
    }
    return out;
  }
  return v;
}

/** FNV-1a, 32 bits, over the UTF-8 bytes of `s`. */
export function fnv1a32(s: string): number {
  let h = 0x811c9dc5;
  for (const b of new TextEncoder().encode(s)) {
    h ^= b;
    // h * 16777619 mod 2^32, without losing bits to float rounding.
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

/** The spec fields whose change restarts a running container (upstream's pickFieldsToHash). */
export function hashedContainerFields(c: V1Container): Record<string, string> {
  return { name: c.name, image: c.image ?? '' };
}

/** Stable hash of a container spec: same input, same string, across restarts and key orders. */
export function containerHash(c: V1Container): string {
  return fnv1a32(canonicalJSON(hashedContainerFields(c))).toString(16);
}
