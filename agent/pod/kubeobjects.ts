// PodObjects over the API server. A 404 on a get is `undefined`; every other
// failure is an ApiError (../../lib/kube/errors.ts).
// Every container start lists Services (for the link variables), so the list
// per namespace is kept for a short while and concurrent callers share one
// request.
import type { AuthenticationV1TokenRequest, V1ConfigMap, V1Secret, V1Service, V1ServiceList } from '@kubernetes/client-node';
import { realClock, type Clock } from '../../lib/clock.ts';
import { enc, type KubeClient } from '../../lib/kube/client.ts';
import { apiError, getOrUndefined } from '../../lib/kube/errors.ts';
import type { IssuedToken, PodObjects, TokenRequest } from './objects.ts';

export interface KubePodObjectsOptions {
  /** How long a namespace's Service list is reused. */
  serviceCacheMs?: number;
  clock?: Clock;
}

interface CachedList {
  atMs: number;
  services: V1Service[];
}

export class KubePodObjects implements PodObjects {
  private readonly c: KubeClient;
  private readonly clock: Clock;
  private readonly serviceCacheMs: number;
  private readonly serviceCache = new Map<string, CachedList>();
  private readonly serviceInFlight = new Map<string, Promise<V1Service[]>>();

  constructor(client: KubeClient, options: KubePodObjectsOptions = {}) {
    this.c = client;
    this.clock = options.clock ?? realClock;
    this.serviceCacheMs = options.serviceCacheMs ?? 1_000;
  }

  getConfigMap(namespace: string, name: string): Promise<V1ConfigMap | undefined> {
    const path = `/api/v1/namespaces/${enc(namespace)}/configmaps/${enc(name)}`;
    return getOrUndefined(this.c.request(`get configmap ${namespace}/${name}`, 'GET', path));
  }

  getSecret(namespace: string, name: string): Promise<V1Secret | undefined> {
    const path = `/api/v1/namespaces/${enc(namespace)}/secrets/${enc(name)}`;
    return getOrUndefined(this.c.request(`get secret ${namespace}/${name}`, 'GET', path));
  }

  async listServices(namespace: string): Promise<V1Service[]> {
    const cached = this.serviceCache.get(namespace);
    if (cached && this.clock.now() - cached.atMs < this.serviceCacheMs) return structuredClone(cached.services);
    let pending = this.serviceInFlight.get(namespace);
    if (!pending) {
      pending = this.fetchServices(namespace).finally(() => this.serviceInFlight.delete(namespace));
      this.serviceInFlight.set(namespace, pending);
    }
    return structuredClone(await pending);
  }

  private async fetchServices(namespace: string): Promise<V1Service[]> {
    // Failures are not cached: the next container start asks again.
    const list = await this.c.request<V1ServiceList>(`list services in ${namespace}`, 'GET', `/api/v1/namespaces/${enc(namespace)}/services`);
    // The API server sets each item's namespace; callers filter on it, so
    // fill it in if a proxy or a test server left it out.
    const services = (list.items ?? []).map((s) => ({ ...s, metadata: { ...s.metadata, namespace: s.metadata?.namespace ?? namespace } }));
    this.serviceCache.set(namespace, { atMs: this.clock.now(), services });
    return services;
  }

  async requestToken(req: TokenRequest): Promise<IssuedToken> {
    const body: AuthenticationV1TokenRequest = {
      apiVersion: 'authentication.k8s.io/v1',
      kind: 'TokenRequest',
      spec: {
        // Empty means the API server's own audiences.
        ...(req.audiences.length > 0 ? { audiences: req.audiences } : {}),
        expirationSeconds: req.expirationSeconds,
        boundObjectRef: { apiVersion: 'v1', kind: 'Pod', name: req.boundPod.name, uid: req.boundPod.uid },
      },
    };
    const op = `request token for serviceaccount ${req.namespace}/${req.serviceAccountName}`;
    const path = `/api/v1/namespaces/${enc(req.namespace)}/serviceaccounts/${enc(req.serviceAccountName)}/token`;
    const res = await this.c.request<AuthenticationV1TokenRequest>(op, 'POST', path, { body });
    const token = res.status?.token;
    if (!token) throw apiError(op, undefined, 'the API server returned no token');
    const exp = res.status?.expirationTimestamp;
    const expiresAtMs = exp ? new Date(exp).getTime() : this.clock.now() + req.expirationSeconds * 1000;
    return { token, expiresAtMs };
  }
}
