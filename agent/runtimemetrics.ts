// The runtime as upstream's instrumentedRuntimeService sees it: every CRI call
// counted and timed by operation_type (upstream's names), errors counted apart.
// A Proxy keeps the wrapped object's type, so callers need no change.
import { Counter, exponentialBuckets, Histogram, type Registry } from 'prom-client';
import { errorCode } from '../lib/errors.ts';

/** Our method names -> upstream's operation_type label values. */
export const RUNTIME_OPERATIONS: Readonly<Record<string, string>> = {
  version: 'version',
  status: 'status',
  runPodSandbox: 'run_podsandbox',
  stopPodSandbox: 'stop_podsandbox',
  removePodSandbox: 'remove_podsandbox',
  podSandboxStatus: 'podsandbox_status',
  listPodSandbox: 'list_podsandbox',
  createContainer: 'create_container',
  startContainer: 'start_container',
  stopContainer: 'stop_container',
  removeContainer: 'remove_container',
  listContainers: 'list_containers',
  containerStatus: 'container_status',
  updateContainerResources: 'update_container',
  execSync: 'exec_sync',
  exec: 'exec',
  attach: 'attach',
  portForward: 'port_forward',
  containerStats: 'container_stats',
  listContainerStats: 'list_container_stats',
  listImages: 'list_images',
  imageStatus: 'image_status',
  pullImage: 'pull_image',
  removeImage: 'remove_image',
  imageFsInfo: 'image_fs_info',
};

export class RuntimeMetrics {
  readonly duration: Histogram<'operation_type'>;
  readonly total: Counter<'operation_type'>;
  readonly errors: Counter<'operation_type'>;

  constructor(registry: Registry) {
    const registers = [registry];
    this.duration = new Histogram({
      name: 'kubelet_runtime_operations_duration_seconds',
      help: 'Duration in seconds of runtime operations. Broken down by operation type.',
      labelNames: ['operation_type'],
      // Upstream's ExponentialBuckets(.005, 2.5, 14): 5 ms to about 12 minutes (image pulls).
      buckets: exponentialBuckets(0.005, 2.5, 14),
      registers,
    });
    this.total = new Counter({
      name: 'kubelet_runtime_operations_total',
      help: 'Cumulative number of runtime operations by operation type.',
      labelNames: ['operation_type'],
      registers,
    });
    this.errors = new Counter({
      name: 'kubelet_runtime_operations_errors_total',
      help: 'Cumulative number of runtime operation errors by operation type.',
      labelNames: ['operation_type'],
      registers,
    });
  }
}

/** Not an error of the runtime: the object is simply not there (upstream counts NotFound too, but callers expect it). */
const EXPECTED = new Set(['CRI_NOT_FOUND']);

/**
 * `target` with every method named in RUNTIME_OPERATIONS timed. `now` is in
 * milliseconds (performance.now by default: durations, not wall time).
 */
export function instrumentRuntime<T extends object>(target: T, metrics: RuntimeMetrics, now: () => number = () => performance.now()): T {
  const wrapped = new Map<PropertyKey, unknown>();
  return new Proxy(target, {
    get(t, prop, receiver) {
      const value: unknown = Reflect.get(t, prop, receiver);
      const op = typeof prop === 'string' && Object.hasOwn(RUNTIME_OPERATIONS, prop) ? RUNTIME_OPERATIONS[prop] : undefined;
      if (!op || typeof value !== 'function') return value;
      let fn = wrapped.get(prop);
      if (!fn) {
        const original = value as (...args: unknown[]) => unknown;
        fn = (...args: unknown[]): unknown => {
          const start = now();
          const done = (failed: unknown) => {
            metrics.duration.observe({ operation_type: op }, (now() - start) / 1000);
            metrics.total.inc({ operation_type: op });
            if (failed !== undefined && !EXPECTED.has(errorCode(failed) ?? '')) metrics.errors.inc({ operation_type: op });
          };
          let result: unknown;
          try {
            result = original.apply(t, args);
          } catch (err) {
            done(err);
            throw err;
          }
          if (result instanceof Promise) {
            return result.then(
              (v) => {
                done(undefined);
                return v;
              },
              (err: unknown) => {
                done(err ?? new Error('rejected'));
                throw err;
              },
            );
          }
          done(undefined);
          return result;
        };
        wrapped.set(prop, fn);
      }
      return fn;
    },
  });
}
