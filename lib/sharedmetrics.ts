// Metrics that several components register in one registry: a dual-stack
// proxy runs a proxier per IP family and both report under the same names
// (told apart by an ip_family label, as upstream's). prom-client refuses a
// second metric of a name, so each set is made once per registry, here.
import type { Registry } from 'prom-client';

const made = new WeakMap<Registry, Map<string, unknown>>();

/** The set `key` of `registry`, made by `make` the first time it is asked for. */
export function sharedMetrics<T>(registry: Registry, key: string, make: (registry: Registry) => T): T {
  let sets = made.get(registry);
  if (!sets) made.set(registry, (sets = new Map()));
  if (!sets.has(key)) sets.set(key, make(registry));
  return sets.get(key) as T;
}
