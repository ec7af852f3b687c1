// PodObjects over the API server. A 404 on a get is `undefined`; every other
// failure is an ApiError (../../lib/kube/errors.ts).
// Every container start lists Services (for the link variables), so the list
// per namespace is kept for a short while and concurrent callers share one
// request. A pod created after a Service must see it, so a list is reused
// only while it is younger than the cache time, counted from when it was asked
// for on a monotonic clock (whatever the wall clock does), and only for a pod
// whose resourceVersion it is not older than.
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
  answer: Promise<ListedServices>;
}

interface ListedServices {
  services: V1Service[];
  /** The list's resourceVersion. */
  version?: string;
}

/**
 * Whether resourceVersion a is not older than b. They are opaque to clients,
 * but etcd's are integers and the API server compares them so; anything else
 * counts as older, so that the list is asked for again.
 */
export function versionAtLeast(a: string | undefined, b: string): boolean {
  if (a === undefined || !/^\d+$/.test(a) || !/^\d+$/.test(b)) return false;
  return BigInt(a) >= BigInt(b);
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

  async listServices(namespace: string, notOlderThan?: string): Promise<V1Service[]> {
    const now = this.monotonicNow();
    let list = this.serviceLists.get(namespace);
    if (!list || now - list.askedMs >= this.serviceCacheMs) list = this.askServices(namespace, now);
    let got = await list.answer;
    // Shared with a caller that came earlier, or from before this pod: ask again.
    if (notOlderThan !== undefined && !versionAtLeast(got.version, notOlderThan)) {
      got = await this.askServices(namespace, this.monotonicNow()).answer;
    }
    return structuredClone(got.services);
  }

  private askServices(namespace: string, now: number): ServiceList {
    const entry: ServiceList = { askedMs: now, answer: this.fetchServices(namespace) };
    // Failures are not kept: the next container start asks again.
    entry.answer.catch(() => {
      if (this.serviceLists.get(namespace) === entry) this.serviceLists.delete(namespace);
    });
    this.serviceLists.set(namespace, entry);
    return entry;
  }

  private async fetchServices(namespace: string): Promise<ListedServices> {
    // No resourceVersion: the API server answers with its most recent state.
    const list = await this.c.request<V1ServiceList>(`list services in ${namespace}`, 'GET', `/api/v1/namespaces/${enc(namespace)}/services`);
    // The API server sets each item's namespace; callers filter on it, so
    // fill it in if a proxy or a test server left it out.
    const services = (list.items ?? []).map((s) => ({ ...s, metadata: { ...s.metadata, namespace: s.metadata?.namespace ?? namespace } }));
    return { services, ...(list.metadata?.resourceVersion ? { version: list.metadata.resourceVersion } : {}) };
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
