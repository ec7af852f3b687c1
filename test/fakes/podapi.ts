// In-memory PodApi: records status patches, deletions and created pods (mirror
// pods); `fail` makes every call throw (an unreachable API server).
import type { V1Pod } from '@kubernetes/client-node';
import { NodeletError } from '../../lib/errors.ts';
import type { PodApi } from '../../agent/pod/podapi.ts';

export class FakePodApi implements PodApi {
  readonly patches: { namespace: string; name: string; patch: { metadata?: { uid?: string }; status: Record<string, unknown> } }[] = [];
  readonly deleted: string[] = [];
  readonly created: V1Pod[] = [];
  fail: Error | undefined;

  async patchPodStatus(namespace: string, name: string, patch: object): Promise<boolean> {
    if (this.fail) throw this.fail;
    this.patches.push({ namespace, name, patch: patch as FakePodApi['patches'][number]['patch'] });
    return true;
  }

  async deletePod(namespace: string, name: string, uid: string): Promise<void> {
    if (this.fail) throw this.fail;
    this.deleted.push(`${namespace}/${name}/${uid}`);
  }

  async createPod(pod: V1Pod): Promise<V1Pod> {
    if (this.fail) throw this.fail;
    const key = `${pod.metadata?.namespace}/${pod.metadata?.name}`;
    if (this.created.some((p) => `${p.metadata?.namespace}/${p.metadata?.name}` === key && !this.deleted.some((d) => d.startsWith(`${key}/`)))) {
      throw new NodeletError('API_CONFLICT', `pod ${key} already exists`);
    }
    const out = { ...structuredClone(pod), metadata: { ...pod.metadata, uid: `mirror-${this.created.length + 1}` } };
    this.created.push(out);
    return out;
  }

  /** The status of the last patch (empty when none). */
  last(): Record<string, unknown> {
    return this.patches[this.patches.length - 1]?.patch.status ?? {};
  }
}
