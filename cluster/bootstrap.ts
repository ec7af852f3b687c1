// What kubeadm init prepares so that nodes can join with a token: a bootstrap
// token Secret in kube-system, the cluster-info ConfigMap in kube-public (the
// controller-manager's bootstrapsigner adds its jws-kubeconfig-<id>
// signatures), anonymous read access to it, and the RBAC bindings that let
// bootstrappers create CSRs and have them (and nodes' renewals) auto-approved.
import { randomInt } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { stringify } from 'yaml';
import { type ClusterPaths, kubectl } from './controlplane.ts';
import { waitFor } from './daemon.ts';
import { caCertHash } from './pki.ts';
import { type ClusterProfile, apiserverURL, hostIP } from './profile.ts';

/** The group kubeadm's default node token authenticates as (beside system:bootstrappers). */
export const NODE_TOKEN_GROUP = 'system:bootstrappers:kubeadm:default-node-token';
const TOKEN_TTL_MS = 24 * 3600_000;
const ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789';

export interface JoinInfo {
  /** HOST:PORT, as `nodelet join --server` takes it. */
  server: string;
  token: string;
  caCertHash: string;
}

export const joinCommand = (j: JoinInfo): string =>
  `nodelet join --server ${j.server} --token ${j.token} --discovery-token-ca-cert-hash ${j.caCertHash}`;

export function generateToken(rand: (n: number) => number = randomInt): string {
  const pick = (n: number) => Array.from({ length: n }, () => ALPHABET[rand(ALPHABET.length)]).join('');
  return `${pick(6)}.${pick(16)}`;
}

/** The cluster-info kubeconfig: server and CA only, as kubeadm writes it. */
export function clusterInfoKubeconfig(server: string, caPem: string): string {
  return stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: '', cluster: { server, 'certificate-authority-data': Buffer.from(caPem).toString('base64') } }],
    contexts: null,
    'current-context': '',
    preferences: {},
    users: null,
  });
}

const rbac = 'rbac.authorization.k8s.io';

/** Everything to apply, as a kubectl List (pure). */
export function joinPrepManifests(token: string, clusterInfo: string, expiresAt: Date): string {
  const [id, secret] = token.split('.') as [string, string];
  const crb = (name: string, role: string, group: string) => ({
    apiVersion: `${rbac}/v1`,
    kind: 'ClusterRoleBinding',
    metadata: { name },
    roleRef: { apiGroup: rbac, kind: 'ClusterRole', name: role },
    subjects: [{ apiGroup: rbac, kind: 'Group', name: group }],
  });
  const items = [
    {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: `bootstrap-token-${id}`, namespace: 'kube-system' },
      type: 'bootstrap.kubernetes.io/token',
      stringData: {
        description: 'nodelet up: the token `nodelet join` uses',
        'token-id': id,
        'token-secret': secret,
        expiration: expiresAt.toISOString().replace(/\.\d{3}Z$/, 'Z'),
        'usage-bootstrap-authentication': 'true',
        'usage-bootstrap-signing': 'true',
        'auth-extra-groups': NODE_TOKEN_GROUP,
      },
    },
    { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'cluster-info', namespace: 'kube-public' }, data: { kubeconfig: clusterInfo } },
    {
      apiVersion: `${rbac}/v1`,
      kind: 'Role',
      metadata: { name: 'kubeadm:bootstrap-signer-clusterinfo', namespace: 'kube-public' },
      rules: [{ apiGroups: [''], resources: ['configmaps'], resourceNames: ['cluster-info'], verbs: ['get'] }],
    },
    {
      apiVersion: `${rbac}/v1`,
      kind: 'RoleBinding',
      metadata: { name: 'kubeadm:bootstrap-signer-clusterinfo', namespace: 'kube-public' },
      roleRef: { apiGroup: rbac, kind: 'Role', name: 'kubeadm:bootstrap-signer-clusterinfo' },
      subjects: [{ apiGroup: rbac, kind: 'User', name: 'system:anonymous' }],
    },
    crb('kubeadm:kubelet-bootstrap', 'system:node-bootstrapper', NODE_TOKEN_GROUP),
    crb('kubeadm:node-autoapprove-bootstrap', 'system:certificates.k8s.io:certificatesigningrequests:nodeclient', NODE_TOKEN_GROUP),
    crb('kubeadm:node-autoapprove-certificate-rotation', 'system:certificates.k8s.io:certificatesigningrequests:selfnodeclient', 'system:nodes'),
    // Not kubeadm's: kube-proxy there runs as a DaemonSet with its own service
    // account; a joined node's `nodelet proxy` runs with the node's credentials.
    crb('nodelet:node-proxier', 'system:node-proxier', 'system:nodes'),
  ];
  return JSON.stringify({ apiVersion: 'v1', kind: 'List', items });
}

const tokenFile = (p: ClusterProfile) => path.join(p.stateDir, 'bootstrap-token');

/**
 * Idempotent: reuses the token of an earlier run while its Secret still
 * exists (the tokencleaner removes expired ones), makes a new one otherwise,
 * and waits until the bootstrapsigner has signed cluster-info for it.
 */
export async function ensureJoinPrep(p: ClusterProfile, paths: ClusterPaths, log: (m: string) => void): Promise<JoinInfo> {
  let token = existsSync(tokenFile(p)) ? readFileSync(tokenFile(p), 'utf8').trim() : '';
  const id = token.split('.')[0] ?? '';
  const known = token !== '' && (await kubectl(paths, ['-n', 'kube-system', 'get', 'secret', `bootstrap-token-${id}`], { allowFail: true })).code === 0;
  const caPem = readFileSync(paths.ca.certPath, 'utf8');
  const info = clusterInfoKubeconfig(apiserverURL(p), caPem);
  const objects = JSON.parse(joinPrepManifests(known ? token : (token = generateToken()), info, new Date(Date.now() + TOKEN_TTL_MS))) as { items: Array<{ kind: string }> };
  // A kept token keeps its Secret (and its expiry) as it is.
  if (known) objects.items = objects.items.filter((o) => o.kind !== 'Secret');
  else log(`bootstrap token: created ${token.split('.')[0]} (expires in 24 h)`);
  await kubectl(paths, ['apply', '-f', '-'], { input: JSON.stringify(objects) });
  await mkdir(p.stateDir, { recursive: true });
  await writeFile(tokenFile(p), `${token}\n`, { mode: 0o600 });
  const tokenId = token.split('.')[0]!;
  await waitFor(`the bootstrapsigner to sign cluster-info for token ${tokenId}`, async () => {
    const r = await kubectl(paths, ['-n', 'kube-public', 'get', 'configmap', 'cluster-info', '-o', `jsonpath={.data.jws-kubeconfig-${tokenId}}`], { allowFail: true });
    return r.code === 0 && r.stdout.trim() !== '';
  }, 60_000, 500);
  return { server: `${hostIP(p)}:${p.apiserverPort}`, token, caCertHash: caCertHash(caPem) };
}
