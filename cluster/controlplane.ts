// The local control plane: etcd, kube-apiserver, kube-controller-manager and
// kube-scheduler from the pinned release, with our own PKI.
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { exec } from '../lib/exec.ts';
import { DaemonExited, daemonRunning, startDaemon, stopDaemon, waitFor } from './daemon.ts';
import { ensureCA, ensureCert, ensureKeyPair, type KeyCert, writeKubeconfig } from './pki.ts';
import { type ClusterProfile, apiserverURL, cidrAddr, hostIP } from './profile.ts';

export interface ClusterPaths {
  pki: string;
  ca: KeyCert;
  adminKubeconfig: string;
  logs: string;
  bin: string;
}

export const components = ['etcd', 'kube-apiserver', 'kube-controller-manager', 'kube-scheduler'] as const;

export const pidFile = (p: ClusterProfile, name: string) => path.join(p.runDir, 'pids', `${name}.pid`);
export const logFile = (p: ClusterProfile, name: string) => path.join(p.stateDir, 'logs', `${name}.log`);
export const kubeconfigPath = (p: ClusterProfile, user: string) => path.join(p.stateDir, 'kubeconfig', `${user}.kubeconfig`);

/** Certificates and kubeconfigs for the control plane and for each node (idempotent). */
export async function ensurePki(p: ClusterProfile, nodeNames: string[], bin: string): Promise<ClusterPaths> {
  const pki = path.join(p.stateDir, 'pki');
  mkdirSync(pki, { recursive: true });
  const ca = await ensureCA(pki, 'nodelet-ca');
  const server = apiserverURL(p);
  await ensureCert(pki, ca, {
    name: 'apiserver',
    cn: 'kube-apiserver',
    usage: 'server',
    dnsSANs: ['kubernetes', 'kubernetes.default', 'kubernetes.default.svc', 'kubernetes.default.svc.cluster.local', 'localhost'],
    ipSANs: ['127.0.0.1', hostIP(p), cidrAddr(p.serviceCIDR, 1)],
  });
  await ensureCert(pki, ca, { name: 'apiserver-kubelet-client', cn: 'kube-apiserver-kubelet-client', orgs: ['system:masters'], usage: 'client' });
  await ensureKeyPair(pki, 'sa');
  const users: Array<{ user: string; cn: string; orgs?: string[] }> = [
    { user: 'admin', cn: 'kubernetes-admin', orgs: ['system:masters'] },
    { user: 'controller-manager', cn: 'system:kube-controller-manager' },
    { user: 'scheduler', cn: 'system:kube-scheduler' },
    { user: 'kube-proxy', cn: 'system:kube-proxy' },
    ...nodeNames.map((n) => ({ user: `node-${n}`, cn: `system:node:${n}`, orgs: ['system:nodes'] })),
  ];
  for (const u of users) {
    const kc = await ensureCert(pki, ca, { name: u.user, cn: u.cn, orgs: u.orgs, usage: 'client' });
    await writeKubeconfig(kubeconfigPath(p, u.user), { server, caPath: ca.certPath, certPath: kc.certPath, keyPath: kc.keyPath, user: u.user });
  }
  return { pki, ca, adminKubeconfig: kubeconfigPath(p, 'admin'), logs: path.join(p.stateDir, 'logs'), bin };
}

function args(p: ClusterProfile, c: ClusterPaths, name: (typeof components)[number]): string[] {
  const f = (n: string) => path.join(c.pki, n);
  switch (name) {
    case 'etcd': {
      const client = `http://127.0.0.1:${p.etcdClientPort}`;
      const peer = `http://127.0.0.1:${p.etcdPeerPort}`;
      return ['--name', 'default', '--data-dir', path.join(p.stateDir, 'etcd'), '--listen-client-urls', client,
        '--advertise-client-urls', client, '--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer,
        '--initial-cluster', `default=${peer}`, '--log-level', 'warn'];
    }
    case 'kube-apiserver':
      return ['--etcd-servers', `http://127.0.0.1:${p.etcdClientPort}`, '--bind-address', hostIP(p),
        '--advertise-address', hostIP(p), '--secure-port', String(p.apiserverPort),
        '--tls-cert-file', f('apiserver.crt'), '--tls-private-key-file', f('apiserver.key'),
        // Dual-stack Services: IPv4 first (the default family), IPv6 for those that ask.
        '--client-ca-file', c.ca.certPath, '--service-cluster-ip-range', `${p.serviceCIDR},${p.serviceCIDRv6}`,
        '--service-node-port-range', '30000-32767', '--authorization-mode', 'Node,RBAC',
        '--enable-admission-plugins', 'NodeRestriction', '--allow-privileged=true',
        '--enable-bootstrap-token-auth=true',
        '--service-account-key-file', f('sa.pub'), '--service-account-signing-key-file', f('sa.key'),
        '--service-account-issuer', 'https://kubernetes.default.svc.cluster.local',
        '--kubelet-client-certificate', f('apiserver-kubelet-client.crt'),
        '--kubelet-client-key', f('apiserver-kubelet-client.key'),
        '--kubelet-preferred-address-types', 'InternalIP,Hostname',
        '--cert-dir', path.join(p.stateDir, 'apiserver'), '--v', '1'];
    case 'kube-controller-manager': {
      const kc = kubeconfigPath(p, 'controller-manager');
      return ['--kubeconfig', kc, '--authentication-kubeconfig', kc, '--authorization-kubeconfig', kc,
        '--bind-address', '127.0.0.1', '--secure-port', String(p.controllerManagerPort),
        '--cluster-signing-cert-file', c.ca.certPath, '--cluster-signing-key-file', c.ca.keyPath,
        '--root-ca-file', c.ca.certPath, '--service-account-private-key-file', f('sa.key'),
        '--use-service-account-credentials=true', '--allocate-node-cidrs=true',
        '--cluster-cidr', p.clusterCIDR, '--node-cidr-mask-size', '24', '--service-cluster-ip-range', p.serviceCIDR,
        '--controllers', '*,bootstrapsigner,tokencleaner', '--leader-elect=false',
        '--cert-dir', path.join(p.stateDir, 'controller-manager'), '--v', '1'];
    }
    case 'kube-scheduler': {
      const kc = kubeconfigPath(p, 'scheduler');
      return ['--kubeconfig', kc, '--authentication-kubeconfig', kc, '--authorization-kubeconfig', kc,
        '--bind-address', '127.0.0.1', '--secure-port', String(p.schedulerPort), '--leader-elect=false', '--v', '1'];
    }
  }
}

export function kubectl(c: ClusterPaths, argv: string[], opts: { input?: string; allowFail?: boolean; timeoutMs?: number } = {}) {
  return exec(path.join(c.bin, 'kubectl'), ['--kubeconfig', c.adminKubeconfig, ...argv], { timeoutMs: 60_000, ...opts });
}

async function etcdHealthy(p: ClusterProfile): Promise<boolean> {
  const r = await fetch(`http://127.0.0.1:${p.etcdClientPort}/health`, { signal: AbortSignal.timeout(2000) });
  return r.ok && ((await r.json()) as { health?: string }).health === 'true';
}

export async function apiserverReady(c: ClusterPaths): Promise<boolean> {
  const r = await kubectl(c, ['get', '--raw', '/readyz'], { allowFail: true, timeoutMs: 5000 });
  return r.code === 0 && r.stdout.trim() === 'ok';
}

export async function startControlPlane(p: ClusterProfile, c: ClusterPaths, log: (m: string) => void): Promise<void> {
  for (const name of components) {
    if (daemonRunning(pidFile(p, name))) {
      log(`${name}: already running`);
    } else {
      log(`${name}: starting (log: ${logFile(p, name)})`);
      startDaemon({ name, cmd: path.join(c.bin, name), args: args(p, c, name), logFile: logFile(p, name), pidFile: pidFile(p, name) });
    }
    if (name === 'etcd') await waitFor(`etcd to be healthy (log: ${logFile(p, name)})`, aliveAnd(p, name, () => etcdHealthy(p)), 60_000);
    if (name === 'kube-apiserver') await waitFor(`kube-apiserver /readyz (log: ${logFile(p, name)})`, aliveAnd(p, name, () => apiserverReady(c)), 120_000, 500);
  }
}

/** A readiness check that fails at once, with the log's last lines, when the daemon has died. */
function aliveAnd(p: ClusterProfile, name: string, check: () => Promise<boolean>): () => Promise<boolean> {
  return async () => {
    if (!daemonRunning(pidFile(p, name))) {
      const tail = existsSync(logFile(p, name)) ? readFileSync(logFile(p, name), 'utf8').trim().split('\n').slice(-3).join(' | ') : '';
      throw new DaemonExited(`${name} exited: ${tail.slice(-600)}`);
    }
    return check();
  };
}

export async function stopControlPlane(p: ClusterProfile): Promise<void> {
  for (const name of [...components].reverse()) await stopDaemon(pidFile(p, name), 15_000);
}

export const controlPlaneRunning = (p: ClusterProfile): boolean => components.every((n) => daemonRunning(pidFile(p, n)));
export const hasPki = (p: ClusterProfile): boolean => existsSync(path.join(p.stateDir, 'pki', 'ca.crt'));
