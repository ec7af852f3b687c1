// The pod calls the kubelet makes on the API server, behind an interface we
// own: patch a pod's status (JSON merge patch with a UID precondition) and
// delete a pod once it is fully terminated (grace 0, UID precondition, as
// upstream's status manager). Errors are ApiErrors (../../lib/kube/errors.ts).
import type { V1Pod } from '@kubernetes/client-node';
import { enc, type KubeClient, MERGE_PATCH } from '../../lib/kube/client.ts';
import { apiStatus } from '../../lib/kube/errors.ts';

export interface PodApi {
  /** `patch` is a JSON merge patch of the whole pod (metadata.uid + status). 404 → false. */
  patchPodStatus(namespace: string, name: string, patch: object): Promise<boolean>;
  /** Deletes with grace 0 when the UID still matches; gone already is fine. */
  deletePod(namespace: string, name: string, uid: string): Promise<void>;
  /** Creates a pod (a static pod's mirror); an existing one is API_CONFLICT. */
  createPod(pod: V1Pod): Promise<V1Pod>;
}

function podPath(namespace: string, name?: string): string {
  const base = `/api/v1/namespaces/${enc(namespace)}/pods`;
  return name === undefined ? base : `${base}/${enc(name)}`;
}

export class KubePodApi implements PodApi {
  private readonly c: KubeClient;

  constructor(client: KubeClient) {
    this.c = client;
  }

  async patchPodStatus(namespace: string, name: string, patch: object): Promise<boolean> {
    try {
      await this.c.request(`patch pod ${namespace}/${name} status`, 'PATCH', `${podPath(namespace, name)}/status`, { body: patch, contentType: MERGE_PATCH });
      return true;
    } catch (err) {
      if (apiStatus(err) === 404) return false;
      throw err;
    }
  }

  async deletePod(namespace: string, name: string, uid: string): Promise<void> {
    try {
      await this.c.request(`delete pod ${namespace}/${name}`, 'DELETE', podPath(namespace, name), {
        query: { gracePeriodSeconds: 0 },
        body: { apiVersion: 'v1', kind: 'DeleteOptions', gracePeriodSeconds: 0, preconditions: { uid } },
      });
    } catch (err) {
      // 404: gone already. 409: the UID no longer matches (a new pod of the same name): not ours to delete.
      const status = apiStatus(err);
      if (status === 404 || status === 409) return;
      throw err;
    }
  }

  createPod(pod: V1Pod): Promise<V1Pod> {
    const namespace = pod.metadata?.namespace ?? 'default';
    return this.c.request(`create pod ${namespace}/${pod.metadata?.name ?? ''}`, 'POST', podPath(namespace), { body: pod });
  }
}
