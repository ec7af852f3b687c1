// A batch of pods pinned to one node: create them all at once through the API,
// watch until each is Running with every container ready, then delete them and
// watch until they are gone. Times are this process's clock: per pod, from the
// moment its create call returned (the pod exists in the API) to the watch event
// that first shows it Running and ready; deletion from the delete call to the
// DELETED event. The watch adds the same small delay for every node measured.
import * as k8s from '@kubernetes/client-node';
import type { V1Pod } from '@kubernetes/client-node';
import { Informer, kubeListWatch } from '../../lib/informer.ts';
import { KubeClient } from '../../lib/kube/client.ts';
import { realClock } from '../../lib/clock.ts';
import { describeError } from '../../lib/errors.ts';
import { nullLogger } from '../../lib/log.ts';

export const BATCH_LABEL = 'bench.nodelet.io/batch';

export interface PodSpecOptions {
  namespace: string;
  node: string;
  image: string;
  command: string[];
  batch: string;
}

export function podManifest(name: string, o: PodSpecOptions): V1Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: o.namespace, labels: { [BATCH_LABEL]: o.batch } },
    spec: {
      nodeName: o.node,
      // sleep as PID 1 ignores SIGTERM; do not wait the default 30 s for it.
      terminationGracePeriodSeconds: 1,
      containers: [{ name: 'app', image: o.image, imagePullPolicy: 'IfNotPresent', command: o.command }],
    },
  };
}

/** Running, and every container of the spec reports ready. */
export function isRunningReady(pod: V1Pod): boolean {
  if (pod.status?.phase !== 'Running') return false;
  const want = pod.spec?.containers.length ?? 0;
  const statuses = pod.status.containerStatuses ?? [];
  return statuses.length === want && statuses.every((s) => s.ready);
}

export interface BatchResult {
  pods: number;
  /** create call returned -> first seen Running and ready, ms, for pods that got there. */
  startMs: number[];
  notRunning: string[];
  createErrors: string[];
  /** first create sent -> last pod Running and ready (or the timeout). */
  wallMs: number;
  /** delete call -> DELETED event, ms. */
  deleteMs: number[];
  notDeleted: number;
}

export interface BatchOptions extends Omit<PodSpecOptions, 'batch'> {
  count: number;
  prefix: string;
  startTimeoutMs: number;
  deleteTimeoutMs: number;
  /** Runs while all pods are up, before they are deleted (e.g. a footprint window). */
  whileRunning?: () => Promise<void>;
  signal?: AbortSignal;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** `kubeconfig`: the admin kubeconfig's path. */
export async function runBatch(kubeconfig: string, o: BatchOptions): Promise<BatchResult> {
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(kubeconfig);
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const batch = `${o.prefix}-${Date.now()}`;
  const created = new Map<string, number>();
  const running = new Map<string, number>();
  const gone = new Map<string, number>();
  const ac = new AbortController();
  const stop = () => ac.abort();
  o.signal?.addEventListener('abort', stop, { once: true });
  const informer = new Informer<V1Pod>({
    name: `bench-${batch}`,
    listWatch: kubeListWatch<V1Pod>(KubeClient.fromFile(kubeconfig), `/api/v1/namespaces/${o.namespace}/pods`, { labelSelector: `${BATCH_LABEL}=${batch}` }),
    clock: realClock,
    log: nullLogger(),
  });
  const seen = (pod: V1Pod) => {
    const name = pod.metadata?.name ?? '';
    if (!running.has(name) && isRunningReady(pod)) running.set(name, Date.now());
  };
  informer.addHandler({
    onAdd: seen,
    onUpdate: (_old, pod) => seen(pod),
    onDelete: (pod) => gone.set(pod.metadata?.name ?? '', Date.now()),
  });
  informer.start(ac.signal);
  try {
    await informer.waitForSync(ac.signal);
    const names = Array.from({ length: o.count }, (_, i) => `${o.prefix}-${String(i + 1).padStart(3, '0')}`);
    const t0 = Date.now();
    const results = await Promise.allSettled(
      names.map(async (name) => {
        await core.createNamespacedPod({ namespace: o.namespace, body: podManifest(name, { ...o, batch }) });
        created.set(name, Date.now());
      }),
    );
    const createErrors = [...new Set(results.flatMap((r) => (r.status === 'rejected' ? [describeError(r.reason)] : [])))];
    const deadline = t0 + o.startTimeoutMs;
    while (Date.now() < deadline && [...created.keys()].some((n) => !running.has(n))) {
      if (ac.signal.aborted) throw new Error('interrupted');
      await sleep(50);
    }
    const wallMs = (running.size ? Math.max(...running.values()) : Date.now()) - t0;
    const startMs = [...created].flatMap(([n, c]) => (running.has(n) ? [Math.max(0, running.get(n)! - c)] : []));
    const notRunning = [...created.keys()].filter((n) => !running.has(n));
    if (o.whileRunning) await o.whileRunning();

    const tDelete = Date.now();
    await core.deleteCollectionNamespacedPod({ namespace: o.namespace, labelSelector: `${BATCH_LABEL}=${batch}`, gracePeriodSeconds: 1 });
    const delDeadline = tDelete + o.deleteTimeoutMs;
    while (Date.now() < delDeadline && [...created.keys()].some((n) => !gone.has(n))) {
      if (ac.signal.aborted) throw new Error('interrupted');
      await sleep(50);
    }
    const deleteMs = [...created.keys()].flatMap((n) => (gone.has(n) ? [gone.get(n)! - tDelete] : []));
    return { pods: o.count, startMs, notRunning, createErrors, wallMs, deleteMs, notDeleted: created.size - deleteMs.length };
  } finally {
    ac.abort();
    o.signal?.removeEventListener('abort', stop);
  }
}
