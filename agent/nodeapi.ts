// The API-server calls the node agent makes, behind an interface we own.
// Errors are mapped once (../lib/kube/errors.ts): a 404 on a get is
// `undefined`, a 409 is API_CONFLICT, everything else (HTTP or network) is
// API_ERROR with the HTTP status when there was one. Messages are one line.
import type { V1Lease, V1Node } from '@kubernetes/client-node';
import { enc, type KubeClient, MERGE_PATCH } from '../lib/kube/client.ts';
import { getOrUndefined } from '../lib/kube/errors.ts';

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

export class KubeNodeApi implements NodeApi {
  private readonly c: KubeClient;

  constructor(client: KubeClient) {
    this.c = client;
  }

  createNode(node: V1Node): Promise<V1Node> {
    return this.c.request(`create node ${node.metadata?.name ?? ''}`, 'POST', '/api/v1/nodes', { body: node });
  }

  getNode(name: string): Promise<V1Node | undefined> {
    return getOrUndefined(this.c.request(`get node ${name}`, 'GET', `/api/v1/nodes/${enc(name)}`));
  }

  async patchNodeStatus(name: string, patch: object): Promise<void> {
    await this.c.request(`patch node ${name} status`, 'PATCH', `/api/v1/nodes/${enc(name)}/status`, { body: patch, contentType: MERGE_PATCH });
  }

  getLease(namespace: string, name: string): Promise<V1Lease | undefined> {
    return getOrUndefined(this.c.request(`get lease ${namespace}/${name}`, 'GET', leasePath(namespace, name)));
  }

  createLease(lease: V1Lease): Promise<V1Lease> {
    const namespace = lease.metadata?.namespace ?? '';
    return this.c.request(`create lease ${namespace}/${lease.metadata?.name ?? ''}`, 'POST', leasePath(namespace), { body: lease });
  }

  replaceLease(lease: V1Lease): Promise<V1Lease> {
    const namespace = lease.metadata?.namespace ?? '';
    const name = lease.metadata?.name ?? '';
    return this.c.request(`update lease ${namespace}/${name}`, 'PUT', leasePath(namespace, name), { body: lease });
  }
}

function leasePath(namespace: string, name?: string): string {
  const base = `/apis/coordination.k8s.io/v1/namespaces/${enc(namespace)}/leases`;
  return name === undefined ? base : `${base}/${enc(name)}`;
}
