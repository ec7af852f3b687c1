// `nodelet up` / `nodelet down`: a local cluster of N sandboxed nodes on the
// upstream control plane. Up is idempotent (running it while up is harmless);
// down leaves nothing behind (processes, namespaces, mounts, links, files).
import Dockerode from 'dockerode';
import { ensureBusyboxImage, ensurePauseImage } from '../cri/images/build.ts';
import { rmSync } from 'node:fs';
import path from 'node:path';
import { exec } from '../lib/exec.ts';
import { daemonRunning, pidsMatching, startDaemon, stopDaemon, stopPid, waitFor } from './daemon.ts';
import { type ClusterPaths, controlPlaneRunning, ensurePki, kubeconfigPath, kubectl, startControlPlane, stopControlPlane } from './controlplane.ts';
import { type ClusterProfile, apiserverURL, nodeName } from './profile.ts';
import { destroyNetwork, ensureBridge, ensureNode, leftovers, mountsUnder, type NodeSandbox, startDockerd } from './sandbox.ts';
import { upstreamBinDir } from './upstream.ts';

const repoRoot = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');

export interface UpOptions {
  nodes: number;
  log: (msg: string) => void;
  /** Extra flags for every node's nodelet. */
  nodeletArgs?: string[];
  /** Run `nodelet proxy` on every node (default true; tests that run their own proxy say false). */
  proxy?: boolean;
}

export interface Cluster {
  profile: ClusterProfile;
  paths: ClusterPaths;
  nodes: Array<{ name: string; sandbox: NodeSandbox; pidFile: string; logFile: string }>;
}

export const nodeletPidFile = (p: ClusterProfile, n: NodeSandbox) => path.join(p.runDir, 'pids', `nodelet-${n.netns}.pid`);
export const nodeletLogFile = (p: ClusterProfile, n: NodeSandbox) => path.join(p.stateDir, 'logs', `nodelet-${n.netns}.log`);

/** Where a node's static pod manifests go (nodelet --pod-manifest-path). */
export const staticPodDir = (n: NodeSandbox) => path.join(path.dirname(n.dockerDataRoot), 'manifests');

export function nodeletArgs(p: ClusterProfile, name: string, n: NodeSandbox, extra: string[] = []): string[] {
  return [
    path.join(repoRoot, 'cmd', 'nodelet.ts'), 'agent',
    '--kubeconfig', kubeconfigPath(p, `node-${name}`),
    '--node-name', name,
    '--node-ip', n.nodeIP,
    '--pod-cidr', n.podCIDR,
    '--container-runtime-endpoint', `unix://${n.dockerSocket}`,
    '--root-dir', path.join(path.dirname(n.dockerDataRoot), 'nodelet'),
    // Beside the node's other state, so `down` removes it with the node.
    '--pod-logs-dir', path.join(path.dirname(n.dockerDataRoot), 'pod-logs'),
    '--pod-manifest-path', staticPodDir(n),
    ...extra,
  ];
}

export function startNodelet(p: ClusterProfile, name: string, n: NodeSandbox, extra: string[] = []): void {
  startDaemon({
    name: `nodelet-${name}`,
    cmd: process.execPath, // Node 24 from node_modules (npm scripts and bin/nodelet run us with it)
    args: nodeletArgs(p, name, n, extra),
    netns: n.netns,
    logFile: nodeletLogFile(p, n),
    pidFile: nodeletPidFile(p, n),
  });
}

export const proxyPidFile = (p: ClusterProfile, n: NodeSandbox) => path.join(p.runDir, 'pids', `proxy-${n.netns}.pid`);
export const proxyLogFile = (p: ClusterProfile, n: NodeSandbox) => path.join(p.stateDir, 'logs', `proxy-${n.netns}.log`);

/** The service proxy of one node, in its netns, as kube-proxy runs beside the kubelet. */
export function startNodeProxy(p: ClusterProfile, name: string, n: NodeSandbox): void {
  startDaemon({
    name: `proxy-${name}`,
    cmd: process.execPath,
    args: [
      path.join(repoRoot, 'cmd', 'nodelet.ts'), 'proxy',
      '--kubeconfig', kubeconfigPath(p, 'kube-proxy'),
      '--hostname-override', name,
      '--cluster-cidr', p.clusterCIDR,
    ],
    netns: n.netns,
    logFile: proxyLogFile(p, n),
    pidFile: proxyPidFile(p, n),
  });
}

export async function nodeReady(paths: ClusterPaths, name: string): Promise<boolean> {
  const r = await kubectl(paths, ['get', 'node', name, '-o', 'jsonpath={.status.conditions[?(@.type=="Ready")].status}'], { allowFail: true, timeoutMs: 5000 });
  return r.code === 0 && r.stdout.trim() === 'True';
}

export async function clusterUp(p: ClusterProfile, opts: UpOptions): Promise<Cluster> {
  const log = opts.log;
  const names = Array.from({ length: opts.nodes }, (_, k) => nodeName(p, k + 1));
  log('upstream binaries: finding or building (first build takes about 15 minutes on 2 cores)');
  const bin = await upstreamBinDir();
  const alreadyUp = controlPlaneRunning(p);
  if (!alreadyUp) {
    // Whatever a killed run left behind goes first.
    await clusterDown(p, { log, keepPki: true });
  }
  const paths = await ensurePki(p, names, bin);
  await ensureBridge(p); // the API server listens on the bridge's address
  await startControlPlane(p, paths, log);
  const indexes = names.map((_, k) => k + 1);
  const nodes: Cluster['nodes'] = [];
  for (const [k, name] of names.entries()) {
    const sandbox = await ensureNode(p, k + 1, indexes);
    await startDockerd(sandbox, paths.logs);
    // No registry is reachable: the pause image and a busybox to run come from here.
    const docker = new Dockerode({ socketPath: sandbox.dockerSocket, timeout: 120_000 });
    await ensurePauseImage(docker);
    await ensureBusyboxImage(docker);
    const pidFile = nodeletPidFile(p, sandbox);
    if (daemonRunning(pidFile)) log(`nodelet ${name}: already running`);
    else {
      log(`nodelet ${name}: starting in netns ${sandbox.netns} (log: ${nodeletLogFile(p, sandbox)})`);
      startNodelet(p, name, sandbox, opts.nodeletArgs);
    }
    if (opts.proxy !== false) {
      if (daemonRunning(proxyPidFile(p, sandbox))) log(`proxy ${name}: already running`);
      else {
        log(`proxy ${name}: starting (log: ${proxyLogFile(p, sandbox)})`);
        startNodeProxy(p, name, sandbox);
      }
    }
    nodes.push({ name, sandbox, pidFile, logFile: nodeletLogFile(p, sandbox) });
  }
  for (const n of nodes) {
    await waitFor(`node ${n.name} to be Ready (log: ${n.logFile})`, () => nodeReady(paths, n.name), 120_000, 500);
    log(`node ${n.name}: Ready`);
  }
  return { profile: p, paths, nodes };
}

export async function clusterDown(p: ClusterProfile, opts: { log: (m: string) => void; keepPki?: boolean }): Promise<void> {
  const pidsDir = path.join(p.runDir, 'pids');
  // nodelets first (they must not see their runtime vanish and report it), then nodes, then the control plane.
  const ours = new Set(pidsMatching(p.stateDir));
  for (const pid of pidsMatching(path.join(repoRoot, 'cmd', 'nodelet.ts')).filter((x) => ours.has(x))) {
    await stopPid(pid, 10_000);
  }
  await destroyNetwork(p);
  await stopControlPlane(p);
  for (const marker of [p.stateDir, p.runDir]) {
    for (const pid of pidsMatching(marker)) await stopPid(pid, 5000);
  }
  for (const dir of [p.stateDir, p.runDir]) {
    for (const m of mountsUnder(dir)) await exec('umount', ['-l', m], { allowFail: true });
  }
  rmSync(pidsDir, { recursive: true, force: true });
  rmSync(p.runDir, { recursive: true, force: true });
  for (const sub of ['etcd', 'nodes', 'logs', 'apiserver', 'controller-manager']) rmSync(path.join(p.stateDir, sub), { recursive: true, force: true });
  if (!opts.keepPki) rmSync(p.stateDir, { recursive: true, force: true });
  const left = await leftovers(p);
  if (left.length) opts.log(`down: still present: ${left.join('; ')}`);
}

export async function clusterSummary(c: Cluster): Promise<string> {
  const nodes = (await kubectl(c.paths, ['get', 'nodes', '-o', 'wide'], { allowFail: true })).stdout;
  const kc = c.paths.adminKubeconfig;
  return [
    '',
    `Cluster "${c.profile.name}" is up. API server: ${apiserverURL(c.profile)}`,
    '',
    nodes.trimEnd(),
    '',
    'Use it:',
    `  export KUBECONFIG=${kc}`,
    `  export PATH=${c.paths.bin}:$PATH   # the pinned kubectl`,
    '  kubectl get nodes',
    '',
    `NodePorts are reached from this host at the node address: ${c.nodes.map((n) => n.sandbox.nodeIP).join(', ')}`,
    `  e.g. curl http://${c.nodes[0]?.sandbox.nodeIP}:<nodePort>/`,
    `Node shells: nsenter --net=/run/netns/${c.nodes[0]?.sandbox.netns} sh    (Docker there: docker -H unix://${c.nodes[0]?.sandbox.dockerSocket})`,
    `Stop everything: make down`,
    '',
  ].join('\n');
}

