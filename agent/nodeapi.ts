// The API-server calls the node agent makes, behind an interface we own.
// Errors are mapped once here: a 404 on a get is `undefined`, a 409 is
// API_CONFLICT, everything else (HTTP or network) is API_ERROR with the HTTP
// status when there was one. Messages are one line.
import * as k8s from '@kubernetes/client-node';
import type { V1Lease, V1Node } from '@kubernetes/client-node';
import { describeError, NodeletError } from '../lib/errors.ts';

export interface NodeApi {
  createNode(node: V1Node): Promise<V1Node>;
  getNode(name: string): Promise<V1Node | undefined>;
  /** JSON merge patch (RFC 7386) of the node's status subresource. */
  patchNodeStatus(name: string, patch: object): Promise<void>;
  getLease(namespace: string, name: string): Promise<V1Lease | undefined>;
  createLease(lease: V1Lease): Promise<V1Lease>;
  /** PUT; the lease's metadata.resourceVersion must be current, else API_CONFLICT. */
  replaceLease(lease: V1Lease): Promise<V1Lease>;
}

export type ApiErrorCode = 'API_CONFLICT' | 'API_ERROR';

export class ApiError extends NodeletError {
  /** HTTP status, undefined when the server was not reached. */
  readonly status: number | undefined;
  constructor(code: ApiErrorCode, message: string, status: number | undefined, options?: { cause?: unknown }) {
    super(code, message, options);
    this.name = 'ApiError';
    this.status = status;
  }
}

/** HTTP status of an error from a NodeApi call, if the server answered. */
export function apiStatus(err: unknown): number | undefined {
  return err instanceof ApiError ? err.status : undefined;
}

/** Builds the error for a failed call `op` (e.g. "create node n1"). */
export function apiError(op: string, status: number | undefined, detail: string, cause?: unknown): ApiError {
  const code: ApiErrorCode = status === 409 ? 'API_CONFLICT' : 'API_ERROR';
  const head = status === undefined ? op : `${op}: HTTP ${status}`;
  return new ApiError(code, `${head}: ${oneLine(detail)}`, status, cause === undefined ? undefined : { cause });
}

function oneLine(s: string): string {
  return s.replace(/\s*\n\s*/g, ' ').trim();
}

/** The message of a Kubernetes Status body (a JSON string or object), or the body itself. */
function statusText(body: unknown, fallback: string): string {
  let b: unknown = body;
  if (typeof body === 'string') {
    try {
      b = JSON.parse(body);
    } catch {
      return body.trim() === '' ? fallback : body.slice(0, 500);
    }
  }
  if (b && typeof b === 'object') {
    const s = b as { message?: unknown; reason?: unknown };
    const parts = [s.reason, s.message].filter((x): x is string => typeof x === 'string' && x !== '');
    if (parts.length) return parts.join(': ');
  }
  return fallback;
}

/** Why a request did not reach the server, in one line (undici nests the socket error). */
function networkText(err: unknown): string {
  const parts: string[] = [];
  let cur: unknown = err;
  for (let depth = 0; cur && depth < 5; depth++) {
    if (cur instanceof AggregateError && cur.message === '') {
      const first = cur.errors[0];
      cur = first;
      continue;
    }
    const msg = cur instanceof Error ? cur.message : String(cur);
    if (msg && !parts.some((p) => p.includes(msg))) parts.push(msg);
    cur = cur instanceof Error ? cur.cause : undefined;
  }
  return parts.length ? parts.join(': ') : describeError(err);
}

/** Maps anything a client-node call threw to an ApiError. */
export function mapClientError(op: string, err: unknown): ApiError {
  if (err instanceof k8s.ApiException) {
    const status = typeof err.code === 'number' ? err.code : undefined;
    const fallback = status === 401 ? 'Unauthorized (check the kubeconfig credentials)' : 'no details';
    return apiError(op, status, statusText(err.body, fallback), err);
  }
  return apiError(op, undefined, networkText(err), err);
}

function isNotFound(err: unknown): boolean {
  return err instanceof k8s.ApiException && err.code === 404;
}

/** Aborts every request after `ms` so a hung API server cannot stall a loop. */
export function timeoutMiddleware(ms: number): k8s.ObservableMiddleware {
  return {
    pre: (ctx) => {
      ctx.setSignal(AbortSignal.timeout(ms));
      return new k8s.Observable(Promise.resolve(ctx));
    },
    post: (rsp) => new k8s.Observable(Promise.resolve(rsp)),
  };
}

export class KubeNodeApi implements NodeApi {
  private readonly core: k8s.CoreV1Api;
  private readonly coordination: k8s.CoordinationV1Api;
  private readonly opts: k8s.ConfigurationOptions;
  private readonly mergePatchOpts: k8s.ConfigurationOptions;

  /** `kc` is loaded by the caller (from the file given with --kubeconfig). */
  constructor(kc: k8s.KubeConfig, options: { timeoutMs?: number } = {}) {
    this.core = kc.makeApiClient(k8s.CoreV1Api);
    this.coordination = kc.makeApiClient(k8s.CoordinationV1Api);
    this.opts = { middleware: [timeoutMiddleware(options.timeoutMs ?? 10_000)], middlewareMergeStrategy: 'append' };
    // client-node sends patches as JSON Patch unless told otherwise.
    this.mergePatchOpts = k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch, this.opts);
  }

  async createNode(node: V1Node): Promise<V1Node> {
    const op = `create node ${node.metadata?.name ?? ''}`;
    try {
      return await this.core.createNode({ body: node }, this.opts);
    } catch (err) {
      throw mapClientError(op, err);
    }
  }

  async getNode(name: string): Promise<V1Node | undefined> {
    try {
      return await this.core.readNode({ name }, this.opts);
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw mapClientError(`get node ${name}`, err);
    }
  }

  async patchNodeStatus(name: string, patch: object): Promise<void> {
    try {
      await this.core.patchNodeStatus({ name, body: patch }, this.mergePatchOpts);
    } catch (err) {
      throw mapClientError(`patch node ${name} status`, err);
    }
  }

  async getLease(namespace: string, name: string): Promise<V1Lease | undefined> {
    try {
      return await this.coordination.readNamespacedLease({ name, namespace }, this.opts);
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw mapClientError(`get lease ${namespace}/${name}`, err);
    }
  }

  async createLease(lease: V1Lease): Promise<V1Lease> {
    const namespace = lease.metadata?.namespace ?? '';
    try {
      return await this.coordination.createNamespacedLease({ namespace, body: lease }, this.opts);
    } catch (err) {
      throw mapClientError(`create lease ${namespace}/${lease.metadata?.name ?? ''}`, err);
    }
  }

  async replaceLease(lease: V1Lease): Promise<V1Lease> {
    const namespace = lease.metadata?.namespace ?? '';
    const name = lease.metadata?.name ?? '';
    try {
      return await this.coordination.replaceNamespacedLease({ name, namespace, body: lease }, this.opts);
    } catch (err) {
      throw mapClientError(`update lease ${namespace}/${name}`, err);
    }
  }
}
