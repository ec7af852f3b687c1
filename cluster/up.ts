// `nodelet up` / `nodelet down`: a local cluster of N sandboxed nodes on the
// upstream control plane. Up is idempotent (running it while up is harmless);
// down leaves nothing behind (processes, namespaces, mounts, links, files).
import { DAEMON_NODE_FLAGS } from '../lib/nodeflags.ts';
import { DEFAULTS } from '../agent/config.ts';
import { tcpProbe } from '../agent/prober/tcp.ts';
import { daemonEnv, warmCompileCache } from '../lib/compilecache.ts';
import Dockerode from 'dockerode';
import { ensureBusyboxImage, ensurePauseImage } from '../cri/images/build.ts';
import { rmSync } from 'node:fs';
import path from 'node:path';
import { exec } from '../lib/exec.ts';
import { daemonRunning, pidsMatching, startDaemon, stopDaemon, stopPid, waitFor } from './daemon.ts';
import { approveServingCsrs } from './csrapprove.ts';
import { ensureJoinPrep, type JoinInfo, joinCommand } from './bootstrap.ts';
import { type ClusterPaths, controlPlaneRunning, ensurePki, kubeconfigPath, kubectl, startControlPlane, stopControlPlane } from './controlplane.ts';
import { type ClusterProfile, apiserverURL, nodeName } from './profile.ts';
import { destroyNetwork, ensureBridge, ensureNode, inNode, leftovers, mountsUnder, type NodeSandbox, startDockerd } from './sandbox.ts';
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
  /** How another node joins (kubeadm init's token, CA hash and server). */
  join: JoinInfo;
}

export const nodeletPidFile = (p: ClusterProfile, n: NodeSandbox) => path.join(p.runDir, 'pids', `nodelet-${n.netns}.pid`);
export const nodeletLogFile = (p: ClusterProfile, n: NodeSandbox) => path.join(p.stateDir, 'logs', `nodelet-${n.netns}.log`);

/** Where a node's static pod manifests go (nodelet --pod-manifest-path). */
export const staticPodDir = (n: NodeSandbox) => path.join(path.dirname(n.dockerDataRoot), 'manifests');

/** Where a node that joined with a token keeps its kubeconfig and client certificate (`join --dir`). */
export const joinDir = (n: NodeSandbox) => path.join(path.dirname(n.dockerDataRoot), 'etc-nodelet');

export function nodeletArgs(p: ClusterProfile, name: string, n: NodeSandbox, extra: string[] = [], join?: JoinInfo): string[] {
  const how = join
    ? ['join', '--server', join.server, '--token', join.token, '--discovery-token-ca-cert-hash', join.caCertHash, '--dir', joinDir(n)]
    : ['agent', '--kubeconfig', kubeconfigPath(p, `node-${name}`)];
  return [
    ...DAEMON_NODE_FLAGS,
    path.join(repoRoot, 'cmd', 'nodelet.ts'), ...how,
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

/** With `join`, the node joins with the bootstrap token (`nodelet join`) instead of a pre-made kubeconfig. */
export function startNodelet(p: ClusterProfile, name: string, n: NodeSandbox, extra: string[] = [], join?: JoinInfo): void {
  startDaemon({
    name: `nodelet-${name}`,
    cmd: process.execPath, // Node 24 from node_modules (npm scripts and bin/nodelet run us with it)
    args: nodeletArgs(p, name, n, extra, join),
    netns: n.netns,
    logFile: nodeletLogFile(p, n),
    pidFile: nodeletPidFile(p, n),
    env: daemonEnv(),
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
      ...DAEMON_NODE_FLAGS,
      path.join(repoRoot, 'cmd', 'nodelet.ts'), 'proxy',
      '--kubeconfig', kubeconfigPath(p, 'kube-proxy'),
      '--hostname-override', name,
      '--cluster-cidr', `${p.clusterCIDR},${p.clusterCIDRv6}`,
      // A node here is a network namespace: the conntrack table size is the host's, read-only inside (as in kind).
      '--conntrack-max-per-core', '0',
    ],
    netns: n.netns,
    logFile: proxyLogFile(p, n),
    pidFile: proxyPidFile(p, n),
    env: daemonEnv(),
  });
}

export async function nodeReady(paths: ClusterPaths, name: string): Promise<boolean> {
  const r = await kubectl(paths, ['get', 'node', name, '-o', 'jsonpath={.status.conditions[?(@.type=="Ready")].status}'], { allowFail: true, timeoutMs: 5000 });
  return r.code === 0 && r.stdout.trim() === 'True';
}

/**
 * Pod traffic between nodes, as a CNI plugin (flannel) allows it: dockerd sets
 * the FORWARD policy to DROP and accepts only what its own bridge starts, so a
 * pod on another node could not reach this node's pods. Appended, and checked
 * first, so reruns and dockerd restarts keep exactly one of each.
 */
export async function allowPodForwarding(p: ClusterProfile, n: NodeSandbox): Promise<void> {
  for (const dir of ['-s', '-d']) {
    const rule = ['FORWARD', dir, p.clusterCIDR, '-m', 'comment', '--comment', 'nodelet: pod network', '-j', 'ACCEPT'];
    if ((await inNode(n, 'iptables', ['-w', '-C', ...rule], { allowFail: true })).code !== 0) await inNode(n, 'iptables', ['-w', '-A', ...rule]);
  }
}

/** Node i's namespace (with routes to the `peers`' pod CIDRs), its dockerd, images and pod forwarding. */
export async function ensureNodeRuntime(p: ClusterProfile, i: number, peers: number[], logDir: string): Promise<NodeSandbox> {
  const sandbox = await ensureNode(p, i, peers);
  await startDockerd(sandbox, logDir);
  // No registry is reachable: the pause image and a busybox to run come from here.
  const docker = new Dockerode({ socketPath: sandbox.dockerSocket, timeout: 120_000 });
  await ensurePauseImage(docker);
  await ensureBusyboxImage(docker);
  await allowPodForwarding(p, sandbox);
  return sandbox;
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
  // Node 1 gets a pre-made kubeconfig; the others join with a token, as kubeadm join.
  const paths = await ensurePki(p, names.slice(0, 1), bin);
  await ensureBridge(p); // the API server listens on the bridge's address
  await startControlPlane(p, paths, log);
  const join = await ensureJoinPrep(p, paths, log);
  const indexes = names.map((_, k) => k + 1);
  // So that no daemon loads the TypeScript stripper (lib/compilecache.ts); without it they still run.
  const cold = warmCompileCache();
  if (cold) log(`compile cache: ${cold}; daemons strip their types themselves`);
  const nodes: Cluster['nodes'] = [];
  const started: string[] = [];
  for (const [k, name] of names.entries()) {
    const sandbox = await ensureNodeRuntime(p, k + 1, indexes, paths.logs);
    const pidFile = nodeletPidFile(p, sandbox);
    if (daemonRunning(pidFile)) log(`nodelet ${name}: already running`);
    else {
      log(`nodelet ${name}: starting in netns ${sandbox.netns} (log: ${nodeletLogFile(p, sandbox)})`);
      startNodelet(p, name, sandbox, opts.nodeletArgs, k === 0 ? undefined : join);
      started.push(name);
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
  // The kubelet API's serving certificates (the controller-manager does not approve these).
  await approveServingCsrs(paths, started, log);
  // The agent opens its API once the approved certificate is in (it polls the CSR), so
  // `kubectl exec` right after up could be refused: wait for it (a flag may move the port).
  for (const n of nodes.filter((x) => started.includes(x.name))) {
    const open = async () => (await tcpProbe(n.sandbox.nodeIP, DEFAULTS.port, 1000)).result === 'success';
    await waitFor(`the kubelet API of ${n.name} at ${n.sandbox.nodeIP}:${DEFAULTS.port}`, open, 30_000, 250).catch((err: Error) => log(err.message));
  }
  return { profile: p, paths, nodes, join };
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
    'Join another machine (nodelet installed, see README):',
    `  ${joinCommand(c.join)}`,
    `Stop everything: make down`,
    '',
  ].join('\n');
}

