// The API objects a pod's environment and volumes are built from, behind an
// interface we own (KubePodObjects talks to the API server; test/fakes/podobjects.ts
// holds them in memory). A missing object is `undefined`, not an error: callers
// decide whether `optional` makes that fine (CreateContainerConfigError otherwise).
import type { V1ConfigMap, V1Secret, V1Service } from '@kubernetes/client-node';

export interface TokenRequest {
  namespace: string;
  serviceAccountName: string;
  audiences: string[];
  expirationSeconds: number;
  /** The pod the token is bound to (it stops working when the pod goes). */
  boundPod: { name: string; uid: string };
}

export interface IssuedToken {
  token: string;
  /** When the API server says it expires (ms since the epoch). */
  expiresAtMs: number;
}

export interface PodObjects {
  getConfigMap(namespace: string, name: string): Promise<V1ConfigMap | undefined>;
  getSecret(namespace: string, name: string): Promise<V1Secret | undefined>;
  /**
   * Every Service in the namespace (for the service environment variables).
   * With notOlderThan (a pod's resourceVersion), the list is at least as new
   * as that: it has every Service created before the pod.
   */
  listServices(namespace: string, notOlderThan?: string): Promise<V1Service[]>;
  /** TokenRequest on the service account (POST .../serviceaccounts/NAME/token). */
  requestToken(req: TokenRequest): Promise<IssuedToken>;
}
