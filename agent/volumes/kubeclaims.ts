// ClaimObjects over the API server (@kubernetes/client-node 2.x), for
// persistentVolumeClaim volumes: a 404 is `undefined`, any other failure an
// ApiError from mapClientError. The node authorizer lets a kubelet read the
// claims and volumes of pods bound to it.
import * as k8s from '@kubernetes/client-node';
import type { V1PersistentVolume, V1PersistentVolumeClaim } from '@kubernetes/client-node';
import { mapClientError, timeoutMiddleware } from '../nodeapi.ts';
import type { ClaimObjects } from './types.ts';

function isNotFound(err: unknown): boolean {
  return err instanceof k8s.ApiException && err.code === 404;
}

export class KubeClaimObjects implements ClaimObjects {
  private readonly core: k8s.CoreV1Api;
  private readonly opts: k8s.ConfigurationOptions;

  /** `kc` is loaded by the caller (from the file given with --kubeconfig). */
  constructor(kc: k8s.KubeConfig, timeoutMs = 10_000) {
    this.core = kc.makeApiClient(k8s.CoreV1Api);
    this.opts = { middleware: [timeoutMiddleware(timeoutMs)], middlewareMergeStrategy: 'append' };
  }

  async getPersistentVolumeClaim(namespace: string, name: string): Promise<V1PersistentVolumeClaim | undefined> {
    try {
      return await this.core.readNamespacedPersistentVolumeClaim({ name, namespace }, this.opts);
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw mapClientError(`get persistentvolumeclaim ${namespace}/${name}`, err);
    }
  }

  async getPersistentVolume(name: string): Promise<V1PersistentVolume | undefined> {
    try {
      return await this.core.readPersistentVolume({ name }, this.opts);
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw mapClientError(`get persistentvolume ${name}`, err);
    }
  }
}
