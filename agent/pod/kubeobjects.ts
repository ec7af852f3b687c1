// PodObjects over the API server. A 404 on a get is `undefined`; every other
// failure is an ApiError (../../lib/kube/errors.ts).
// Every container start lists Services (for the link variables), so the list
// per namespace is kept for a short while and concurrent callers share one
// request. Its age counts from when the request was sent, on a monotonic
// clock: a pod created after a Service must see it, so a list may only be
// reused if it was asked for less than the cache time ago, whatever the wall
// clock did meanwhile.
import type { AuthenticationV1TokenRequest, V1ConfigMap, V1Secret, V1Service, V1ServiceList } from '@kubernetes/client-node';
import { realClock, type Clock } from '../../lib/clock.ts';
import { enc, type KubeClient } from '../../lib/kube/client.ts';
import { apiError, getOrUndefined } from '../../lib/kube/errors.ts';
import type { IssuedToken, PodObjects, TokenRequest } from './objects.ts';

export interface KubePodObjectsOptions {
  /** How long a namespace's Service list is reused, from when it was asked for. */
  serviceCacheMs?: number;
  /** Monotonic milliseconds for the cache's age (performance.now by default). */
  monotonicNow?: () => number;
  clock?: Clock;
}

interface ServiceList {
  /** When the request was sent (monotonic ms). */
  askedMs: number;
  services: Promise<V1Service[]>;
}

export class KubePodObjects implements PodObjects {
  private readonly c: KubeClient;
  private readonly clock: Clock;
  private readonly serviceCacheMs: number;
  private readonly monotonicNow: () => number;
  /** The latest list asked for per namespace, answered or still in flight. */
  private readonly serviceLists = new Map<string, ServiceList>();

  constructor(client: KubeClient, options: KubePodObjectsOptions = {}) {
    this.c = client;
    this.clock = options.clock ?? realClock;
    this.serviceCacheMs = options.serviceCacheMs ?? 1_000;
    this.monotonicNow = options.monotonicNow ?? (() => performance.now());
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
    const now = this.monotonicNow();
    let list = this.serviceLists.get(namespace);
    if (!list || now - list.askedMs >= this.serviceCacheMs) {
      const entry: ServiceList = { askedMs: now, services: this.fetchServices(namespace) };
      // Failures are not kept: the next container start asks again.
      entry.services.catch(() => {
        if (this.serviceLists.get(namespace) === entry) this.serviceLists.delete(namespace);
      });
      this.serviceLists.set(namespace, entry);
      list = entry;
    }
    return structuredClone(await list.services);
  }

  private async fetchServices(namespace: string): Promise<V1Service[]> {
    const list = await this.c.request<V1ServiceList>(`list services in ${namespace}`, 'GET', `/api/v1/namespaces/${enc(namespace)}/services`);
    // The API server sets each item's namespace; callers filter on it, so
    // fill it in if a proxy or a test server left it out.
    return (list.items ?? []).map((s) => ({ ...s, metadata: { ...s.metadata, namespace: s.metadata?.namespace ?? namespace } }));
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
