// The pod calls the kubelet makes on the API server, behind an interface we
// own: patch a pod's status (JSON merge patch with a UID precondition) and
// delete a pod once it is fully terminated (grace 0, UID precondition, as
// upstream's status manager). Errors are mapped as in ../nodeapi.ts.
import * as k8s from '@kubernetes/client-node';
import type { V1Pod } from '@kubernetes/client-node';
import { mapClientError, timeoutMiddleware } from '../nodeapi.ts';

export interface PodApi {
  /** `patch` is a JSON merge patch of the whole pod (metadata.uid + status). 404 → false. */
  patchPodStatus(namespace: string, name: string, patch: object): Promise<boolean>;
  /** Deletes with grace 0 when the UID still matches; gone already is fine. */
  deletePod(namespace: string, name: string, uid: string): Promise<void>;
  /** Creates a pod (a static pod's mirror); an existing one is API_CONFLICT. */
  createPod(pod: V1Pod): Promise<V1Pod>;
}

export class KubePodApi implements PodApi {
  private readonly core: k8s.CoreV1Api;
  private readonly opts: k8s.ConfigurationOptions;
  private readonly mergePatchOpts: k8s.ConfigurationOptions;

  constructor(kc: k8s.KubeConfig, options: { timeoutMs?: number } = {}) {
    this.core = kc.makeApiClient(k8s.CoreV1Api);
    this.opts = { middleware: [timeoutMiddleware(options.timeoutMs ?? 10_000)], middlewareMergeStrategy: 'append' };
    this.mergePatchOpts = k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch, this.opts);
  }

  async patchPodStatus(namespace: string, name: string, patch: object): Promise<boolean> {
    try {
      await this.core.patchNamespacedPodStatus({ name, namespace, body: patch }, this.mergePatchOpts);
      return true;
    } catch (err) {
      if (err instanceof k8s.ApiException && err.code === 404) return false;
      throw mapClientError(`patch pod ${namespace}/${name} status`, err);
    }
  }

  async deletePod(namespace: string, name: string, uid: string): Promise<void> {
    try {
      await this.core.deleteNamespacedPod(
        { name, namespace, gracePeriodSeconds: 0, body: { gracePeriodSeconds: 0, preconditions: { uid } } },
        this.opts,
      );
    } catch (err) {
      if (err instanceof k8s.ApiException && err.code === 404) return;
      // 409: the UID no longer matches (a new pod of the same name): not ours to delete.
      if (err instanceof k8s.ApiException && err.code === 409) return;
      throw mapClientError(`delete pod ${namespace}/${name}`, err);
    }
  }

  async createPod(pod: V1Pod): Promise<V1Pod> {
    const namespace = pod.metadata?.namespace ?? 'default';
    try {
      return await this.core.createNamespacedPod({ namespace, body: pod }, this.opts);
    } catch (err) {
      throw mapClientError(`create pod ${namespace}/${pod.metadata?.name ?? ''}`, err);
    }
  }
}
