// PodObjects over the API server (@kubernetes/client-node 2.x). A 404 on a
// get is `undefined`; every other failure is an ApiError from mapClientError.
// Every container start lists Services (for the link variables), so the list
// per namespace is kept for a short while and concurrent callers share one
// request.
import * as k8s from '@kubernetes/client-node';
import type { AuthenticationV1TokenRequest, V1ConfigMap, V1Secret, V1Service } from '@kubernetes/client-node';
import { realClock, type Clock } from '../../lib/clock.ts';
import { mapClientError, timeoutMiddleware } from '../nodeapi.ts';
import type { IssuedToken, PodObjects, TokenRequest } from './objects.ts';

export interface KubePodObjectsOptions {
  /** Per-request timeout, so a hung API server cannot stall a pod worker. */
  timeoutMs?: number;
  /** How long a namespace's Service list is reused. */
  serviceCacheMs?: number;
  clock?: Clock;
}

interface CachedList {
  atMs: number;
  services: V1Service[];
}

function isNotFound(err: unknown): boolean {
  return err instanceof k8s.ApiException && err.code === 404;
}

export class KubePodObjects implements PodObjects {
  private readonly core: k8s.CoreV1Api;
  private readonly opts: k8s.ConfigurationOptions;
  private readonly clock: Clock;
  private readonly serviceCacheMs: number;
  private readonly serviceCache = new Map<string, CachedList>();
  private readonly serviceInFlight = new Map<string, Promise<V1Service[]>>();

  /** `kc` is loaded by the caller (from the file given with --kubeconfig). */
  constructor(kc: k8s.KubeConfig, options: KubePodObjectsOptions = {}) {
    this.core = kc.makeApiClient(k8s.CoreV1Api);
    this.opts = { middleware: [timeoutMiddleware(options.timeoutMs ?? 10_000)], middlewareMergeStrategy: 'append' };
    this.clock = options.clock ?? realClock;
    this.serviceCacheMs = options.serviceCacheMs ?? 1_000;
  }

  async getConfigMap(namespace: string, name: string): Promise<V1ConfigMap | undefined> {
    try {
      return await this.core.readNamespacedConfigMap({ name, namespace }, this.opts);
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw mapClientError(`get configmap ${namespace}/${name}`, err);
    }
  }

  async getSecret(namespace: string, name: string): Promise<V1Secret | undefined> {
    try {
      return await this.core.readNamespacedSecret({ name, namespace }, this.opts);
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw mapClientError(`get secret ${namespace}/${name}`, err);
    }
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
    let list: k8s.V1ServiceList;
    try {
      list = await this.core.listNamespacedService({ namespace }, this.opts);
    } catch (err) {
      // Failures are not cached: the next container start asks again.
      throw mapClientError(`list services in ${namespace}`, err);
    }
    // The API server sets each item's namespace; callers filter on it, so
    // fill it in if a proxy or a test server left it out.
    const services = list.items.map((s) => ({ ...s, metadata: { ...s.metadata, namespace: s.metadata?.namespace ?? namespace } }));
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
    let res: AuthenticationV1TokenRequest;
    try {
      res = await this.core.createNamespacedServiceAccountToken({ name: req.serviceAccountName, namespace: req.namespace, body }, this.opts);
    } catch (err) {
      throw mapClientError(op, err);
    }
    const token = res.status?.token;
    if (!token) throw mapClientError(op, new Error('the API server returned no token'));
    const exp = res.status?.expirationTimestamp;
    const expiresAtMs = exp ? new Date(exp).getTime() : this.clock.now() + req.expirationSeconds * 1000;
    return { token, expiresAtMs };
  }
}
