// Static pods, as upstream's file source (pkg/kubelet/config/file.go) and
// mirror pods (pkg/kubelet/pod/mirror_client.go): every manifest in the
// static pod directory (YAML or JSON, one Pod each) becomes a pod of this
// node whose name gets "-<node>" appended, whose UID is a hash of its content
// and the node (so an edit is a new pod), and which is annotated with its
// source and hash. The API server gets a mirror pod (same name and spec,
// annotation kubernetes.io/config.mirror, owned by the Node) so users see it;
// the mirror carries the status, the static pod is what runs.
import type { V1Pod } from '@kubernetes/client-node';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';

export const ANNOTATION_CONFIG_SOURCE = 'kubernetes.io/config.source';
export const ANNOTATION_CONFIG_HASH = 'kubernetes.io/config.hash';
export const ANNOTATION_CONFIG_MIRROR = 'kubernetes.io/config.mirror';
export const ANNOTATION_CONFIG_SEEN = 'kubernetes.io/config.seen';

export function isMirrorPod(pod: V1Pod): boolean {
  return pod.metadata?.annotations?.[ANNOTATION_CONFIG_MIRROR] !== undefined;
}

export function isStaticPod(pod: V1Pod): boolean {
  return pod.metadata?.annotations?.[ANNOTATION_CONFIG_SOURCE] === 'file';
}

/** A UUID-shaped hash of the manifest and the node (upstream: md5 of the defaulted pod, node and source). */
export function staticPodUid(manifest: string, nodeName: string, file: string): string {
  const h = createHash('md5').update(manifest).update('\0').update(nodeName).update('\0').update(file).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}

export interface StaticManifests {
  pods: V1Pod[];
  /** One line per manifest that could not be used (file: why). */
  errors: string[];
}

/** The pod one manifest describes, with upstream's static-pod defaults; throws with why it cannot. */
export function staticPodFromManifest(text: string, file: string, nodeName: string): V1Pod {
  const doc = (file.endsWith('.json') ? JSON.parse(text) : parse(text)) as V1Pod | null;
  if (!doc || typeof doc !== 'object') throw new Error('empty manifest');
  if (doc.kind !== undefined && doc.kind !== 'Pod') throw new Error(`kind ${String(doc.kind)} is not Pod`);
  const name = doc.metadata?.name;
  if (!name) throw new Error('metadata.name is required');
  if (!doc.spec?.containers?.length) throw new Error('spec.containers must have at least one container');
  const uid = staticPodUid(text, nodeName, file);
  const pod: V1Pod = structuredClone(doc);
  pod.apiVersion = 'v1';
  pod.kind = 'Pod';
  pod.metadata = {
    ...pod.metadata,
    name: `${name}-${nodeName}`,
    namespace: pod.metadata?.namespace || 'default',
    uid,
    annotations: { ...(pod.metadata?.annotations ?? {}), [ANNOTATION_CONFIG_SOURCE]: 'file', [ANNOTATION_CONFIG_HASH]: uid },
  };
  pod.spec = { ...pod.spec!, nodeName };
  pod.spec.restartPolicy ??= 'Always';
  pod.spec.dnsPolicy ??= 'ClusterFirst';
  pod.spec.terminationGracePeriodSeconds ??= 30;
  pod.status = { phase: 'Pending' };
  return pod;
}

/** Reads every manifest in `dir` (dotfiles skipped, as upstream). A missing dir is no pods. */
export function readStaticPods(dir: string, nodeName: string): StaticManifests {
  const out: StaticManifests = { pods: [], errors: [] };
  let names: string[];
  try {
    names = readdirSync(dir).sort();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return out;
    out.errors.push(`${dir}: ${(err as Error).message}`);
    return out;
  }
  for (const n of names) {
    if (n.startsWith('.')) continue;
    const file = path.join(dir, n);
    try {
      if (!statSync(file).isFile()) continue;
      out.pods.push(staticPodFromManifest(readFileSync(file, 'utf8'), file, nodeName));
    } catch (err) {
      out.errors.push(`${file}: ${(err as Error).message.split('\n')[0]}`);
    }
  }
  return out;
}

/** The mirror pod for a static pod: same name, namespace, labels and spec; owned by the Node. */
export function mirrorPodFor(pod: V1Pod, node: { name: string; uid: string }): V1Pod {
  const m = pod.metadata ?? {};
  const annotations = { ...(m.annotations ?? {}), [ANNOTATION_CONFIG_MIRROR]: m.uid ?? '' };
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: m.name,
      namespace: m.namespace,
      ...(m.labels ? { labels: { ...m.labels } } : {}),
      annotations,
      ownerReferences: node.uid ? [{ apiVersion: 'v1', kind: 'Node', name: node.name, uid: node.uid, controller: true }] : [],
    },
    spec: structuredClone(pod.spec),
  };
}
