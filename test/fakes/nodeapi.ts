// An in-memory API server for Nodes and Leases: resourceVersions increment,
// a stale lease update is a 409, status patches are JSON merge patches and
// are recorded. `unreachable` and failNext() make calls fail.
import type { V1Lease, V1Node } from '@kubernetes/client-node';
import type { NodeApi } from '../../agent/nodeapi.ts';
import { ApiError, apiError } from '../../lib/kube/errors.ts';

type Method = 'createNode' | 'getNode' | 'patchNodeStatus' | 'getLease' | 'createLease' | 'replaceLease';

function clone<T>(v: T): T {
  return structuredClone(v);
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v) && !(v instanceof Date);
}

/** RFC 7386 JSON merge patch: objects merge, null deletes, everything else replaces. */
export function mergePatch(target: unknown, patch: unknown): unknown {
  if (!isPlainObject(patch)) return clone(patch);
  const out: Record<string, unknown> = isPlainObject(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

export class FakeNodeApi implements NodeApi {
  readonly nodes = new Map<string, V1Node>();
  /** Keyed "namespace/name". */
  readonly leases = new Map<string, V1Lease>();
  readonly patches: Array<{ name: string; patch: object }> = [];
  /** Every call as "method arg", in order (failed ones too). */
  readonly calls: string[] = [];
  /** Every call fails as if the API server were down. */
  unreachable = false;
  private readonly failures = new Map<Method, ApiError[]>();
  private rv = 0;
  private uids = 0;

  /** The next call(s) of `method` throw `err`. */
  failNext(method: Method, err: ApiError = apiError(method, 500, 'injected failure')): void {
    const q = this.failures.get(method) ?? [];
    q.push(err);
    this.failures.set(method, q);
  }

  callCount(method: Method): number {
    return this.calls.filter((c) => c.startsWith(`${method} `)).length;
  }

  /** Puts a node in place as if created earlier (gets a uid and resourceVersion). */
  seedNode(node: V1Node): V1Node {
    const n = clone(node);
    n.metadata = { ...n.metadata, uid: n.metadata?.uid ?? this.newUID(), resourceVersion: this.nextRV() };
    this.nodes.set(n.metadata.name ?? '', n);
    return clone(n);
  }

  /** Deletes a node and, like the garbage collector, the leases it owns. */
  deleteNode(name: string): void {
    const uid = this.nodes.get(name)?.metadata?.uid;
    this.nodes.delete(name);
    for (const [k, l] of this.leases) {
      if (l.metadata?.ownerReferences?.some((o) => o.kind === 'Node' && o.uid === uid)) this.leases.delete(k);
    }
  }

  /** Another writer updated the lease: the agent's copy is now stale. */
  bumpLease(namespace: string, name: string): void {
    const l = this.leases.get(`${namespace}/${name}`);
    if (l?.metadata) l.metadata.resourceVersion = this.nextRV();
  }

  node(name: string): V1Node | undefined {
    const n = this.nodes.get(name);
    return n ? clone(n) : undefined;
  }

  lease(namespace: string, name: string): V1Lease | undefined {
    const l = this.leases.get(`${namespace}/${name}`);
    return l ? clone(l) : undefined;
  }

  async createNode(node: V1Node): Promise<V1Node> {
    const name = node.metadata?.name ?? '';
    this.enter('createNode', name);
    if (this.nodes.has(name)) throw apiError(`create node ${name}`, 409, `AlreadyExists: nodes "${name}" already exists`);
    return this.seedNode(node);
  }

  async getNode(name: string): Promise<V1Node | undefined> {
    this.enter('getNode', name);
    return this.node(name);
  }

  async patchNodeStatus(name: string, patch: object): Promise<void> {
    this.enter('patchNodeStatus', name);
    const cur = this.nodes.get(name);
    if (!cur) throw apiError(`patch node ${name} status`, 404, `NotFound: nodes "${name}" not found`);
    this.patches.push({ name, patch: clone(patch) });
    // The status subresource takes status and metadata changes; spec is ignored.
    const p = patch as { metadata?: unknown; status?: unknown };
    const next: V1Node = clone(cur);
    if (p.status !== undefined) next.status = mergePatch(next.status, p.status) as V1Node['status'];
    if (isPlainObject(p.metadata)) {
      const m = p.metadata as { labels?: unknown; annotations?: unknown };
      const meta = { ...next.metadata };
      if (m.labels !== undefined) meta.labels = mergePatch(meta.labels, m.labels) as Record<string, string>;
      if (m.annotations !== undefined) meta.annotations = mergePatch(meta.annotations, m.annotations) as Record<string, string>;
      next.metadata = meta;
    }
    next.metadata = { ...next.metadata, resourceVersion: this.nextRV() };
    this.nodes.set(name, next);
  }

  async getLease(namespace: string, name: string): Promise<V1Lease | undefined> {
    this.enter('getLease', `${namespace}/${name}`);
    return this.lease(namespace, name);
  }

  async createLease(lease: V1Lease): Promise<V1Lease> {
    const key = `${lease.metadata?.namespace ?? ''}/${lease.metadata?.name ?? ''}`;
    this.enter('createLease', key);
    if (this.leases.has(key)) throw apiError(`create lease ${key}`, 409, `AlreadyExists: leases.coordination.k8s.io "${lease.metadata?.name}" already exists`);
    const l = clone(lease);
    l.metadata = { ...l.metadata, uid: this.newUID(), resourceVersion: this.nextRV() };
    this.leases.set(key, l);
    return clone(l);
  }

  async replaceLease(lease: V1Lease): Promise<V1Lease> {
    const key = `${lease.metadata?.namespace ?? ''}/${lease.metadata?.name ?? ''}`;
    this.enter('replaceLease', key);
    const cur = this.leases.get(key);
    if (!cur) throw apiError(`update lease ${key}`, 404, `NotFound: leases.coordination.k8s.io "${lease.metadata?.name}" not found`);
    if (lease.metadata?.resourceVersion !== cur.metadata?.resourceVersion) {
      throw apiError(
        `update lease ${key}`,
        409,
        `Conflict: Operation cannot be fulfilled on leases.coordination.k8s.io "${lease.metadata?.name}": the object has been modified; please apply your changes to the latest version and try again`,
      );
    }
    const l = clone(lease);
    l.metadata = { ...l.metadata, uid: cur.metadata?.uid, resourceVersion: this.nextRV() };
    this.leases.set(key, l);
    return clone(l);
  }

  private enter(method: Method, arg: string): void {
    this.calls.push(`${method} ${arg}`);
    if (this.unreachable) throw apiError(`${method} ${arg}`, undefined, 'fetch failed: connect ECONNREFUSED 192.0.2.1:6443');
    const err = this.failures.get(method)?.shift();
    if (err) throw err;
  }

  private nextRV(): string {
    return String(++this.rv);
  }

  private newUID(): string {
    return `00000000-0000-4000-8000-${String(++this.uids).padStart(12, '0')}`;
  }
}

const _check: NodeApi = new FakeNodeApi();
