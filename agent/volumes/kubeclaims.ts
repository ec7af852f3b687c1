// ClaimObjects over the API server, for persistentVolumeClaim volumes: a 404
// is `undefined`, any other failure an ApiError. The node authorizer lets a
// kubelet read the claims and volumes of pods bound to it.
import type { V1PersistentVolume, V1PersistentVolumeClaim } from '@kubernetes/client-node';
import { enc, type KubeClient } from '../../lib/kube/client.ts';
import { getOrUndefined } from '../../lib/kube/errors.ts';
import type { ClaimObjects } from './types.ts';

export class KubeClaimObjects implements ClaimObjects {
  private readonly c: KubeClient;

  constructor(client: KubeClient) {
    this.c = client;
  }

  getPersistentVolumeClaim(namespace: string, name: string): Promise<V1PersistentVolumeClaim | undefined> {
    const path = `/api/v1/namespaces/${enc(namespace)}/persistentvolumeclaims/${enc(name)}`;
    return getOrUndefined(this.c.request(`get persistentvolumeclaim ${namespace}/${name}`, 'GET', path));
  }

  getPersistentVolume(name: string): Promise<V1PersistentVolume | undefined> {
    return getOrUndefined(this.c.request(`get persistentvolume ${name}`, 'GET', `/api/v1/persistentvolumes/${enc(name)}`));
  }
}
