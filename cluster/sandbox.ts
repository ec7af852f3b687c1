// The node sandbox: each node is a network namespace with no default route,
// linked to a host bridge by a veth pair, with its own dockerd. The service CIDR
// is routed into a veth whose peer is down, so a ClusterIP packet that no rule
// catches dies inside the node (a route must exist, or a local connect() fails
// before the nat OUTPUT chain can DNAT it). Only addresses made here are used.
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, rmdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { exec } from '../lib/exec.ts';
import { daemonRunning, pidAlive, pidsMatching, readPid, startDaemon, stopDaemon, stopPid, waitFor } from './daemon.ts';
import { type ClusterProfile, hostIP, netnsName, nodeIP, nodeIPv6, podCIDR, podCIDRv6 } from './profile.ts';

const ip = (...args: string[]) => exec('ip', args);
const ipOk = (...args: string[]) => exec('ip', args, { allowFail: true });

export interface NodeSandbox {
  index: number;
  netns: string;
  nodeIP: string;
  /** Reachable from inside the node only (the host bridge has no IPv6 address). */
  nodeIPv6: string;
  podCIDR: string;
  /** The node's IPv6 pod range (dockerd --ipv6 --fixed-cidr-v6): pods are dual-stack. */
  podCIDRv6: string;
  /** Docker's bridge address inside the node: .1 of the pod CIDR. */
  bridgeIP: string;
  dockerSocket: string;
  dockerDataRoot: string;
  dockerExecRoot: string;
  dockerPidFile: string;
  dockerLog: string;
  /** cgroup parent of this node's containers, so cleanup can find them. */
  cgroupParent: string;
}

export function nodeSandbox(p: ClusterProfile, i: number): NodeSandbox {
  const netns = netnsName(p, i);
  const cidr = podCIDR(p, i);
  const dir = path.join(p.stateDir, 'nodes', netns);
  const run = path.join(p.runDir, netns);
  return {
    index: i,
    netns,
    nodeIP: nodeIP(p, i),
    nodeIPv6: nodeIPv6(p, i),
    podCIDR: cidr,
    podCIDRv6: podCIDRv6(p, i),
    bridgeIP: cidr.replace(/\.0\/24$/, '.1'),
    dockerSocket: path.join(run, 'docker.sock'),
    dockerDataRoot: path.join(dir, 'docker'),
    dockerExecRoot: path.join(run, 'docker-exec'),
    dockerPidFile: path.join(run, 'docker.pid'),
    dockerLog: path.join(p.stateDir, 'logs', `dockerd-${netns}.log`),
    cgroupParent: `/${netns}`,
  };
}

const hostVeth = (p: ClusterProfile, i: number) => `${p.prefix}v${i}`;

async function linkExists(name: string, netns?: string): Promise<boolean> {
  const r = netns ? await ipOk('-n', netns, 'link', 'show', name) : await ipOk('link', 'show', name);
  return r.code === 0;
}

/**
 * A fixed, locally administered MAC for the host bridge. A Linux bridge
 * otherwise takes the lowest MAC among its ports, so adding or removing a
 * node's veth can change it, and the other nodes' ARP entries for the host then
 * point nowhere until they expire (requests to the apiserver hang ~a minute).
 */
export function bridgeMac(p: ClusterProfile): string {
  const o = hostIP(p).split('.').map((x) => Number(x).toString(16).padStart(2, '0'));
  return ['02', '6e', ...o].join(':');
}

export async function ensureBridge(p: ClusterProfile): Promise<void> {
  if (!(await linkExists(p.bridge))) {
    await ip('link', 'add', p.bridge, 'type', 'bridge');
  }
  // Set every time: a bridge left by an older run may still float its MAC.
  await ip('link', 'set', p.bridge, 'address', bridgeMac(p));
  const addrs = (await ip('-4', 'addr', 'show', 'dev', p.bridge)).stdout;
  if (!addrs.includes(`${hostIP(p)}/`)) await ip('addr', 'add', `${hostIP(p)}/24`, 'dev', p.bridge);
  await ip('link', 'set', p.bridge, 'up');
}

/** Creates node i's namespace and links; idempotent. */
export async function ensureNode(p: ClusterProfile, i: number, peers: number[] = []): Promise<NodeSandbox> {
  const n = nodeSandbox(p, i);
  await ensureBridge(p);
  if (!existsSync(`/run/netns/${n.netns}`)) await ip('netns', 'add', n.netns);
  const veth = hostVeth(p, i);
  if (!(await linkExists(veth))) {
    await ip('link', 'add', veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', n.netns);
  }
  await ip('link', 'set', veth, 'master', p.bridge, 'up');
  const inNs = (...args: string[]) => ip('-n', n.netns, ...args);
  await inNs('link', 'set', 'lo', 'up');
  const addrs = (await inNs('-4', 'addr', 'show', 'dev', 'eth0')).stdout;
  if (!addrs.includes(`${n.nodeIP}/`)) await inNs('addr', 'add', `${n.nodeIP}/24`, 'dev', 'eth0');
  // nodad: usable at once (duplicate address detection would hold it tentative for a second or two).
  const addrs6 = (await inNs('-6', 'addr', 'show', 'dev', 'eth0')).stdout;
  if (!addrs6.includes(`${n.nodeIPv6}/`)) await inNs('addr', 'add', `${n.nodeIPv6}/64`, 'dev', 'eth0', 'nodad');
  await inNs('link', 'set', 'eth0', 'up');
  // Pods have IPv6 addresses too (dockerd --ipv6): the node routes them, as it does IPv4 (dockerd turns that on).
  await exec('nsenter', [`--net=/run/netns/${n.netns}`, '--', 'sysctl', '-qw', 'net.ipv6.conf.all.forwarding=1']);
  // Service CIDR sink: svc0 is up, its peer svc1 stays down, so packets die here.
  if (!(await linkExists('svc0', n.netns))) await inNs('link', 'add', 'svc0', 'type', 'veth', 'peer', 'name', 'svc1');
  await inNs('link', 'set', 'svc0', 'up');
  await inNs('route', 'replace', p.serviceCIDR, 'dev', 'svc0');
  await inNs('-6', 'route', 'replace', p.serviceCIDRv6, 'dev', 'svc0');
  // The host reaches this node's pods through the node.
  await ip('route', 'replace', n.podCIDR, 'via', n.nodeIP);
  for (const j of peers) {
    if (j !== i) {
      await inNs('route', 'replace', podCIDR(p, j), 'via', nodeIP(p, j));
      await inNs('-6', 'route', 'replace', podCIDRv6(p, j), 'via', nodeIPv6(p, j));
    }
  }
  return n;
}

/** Runs a command inside the node's network namespace. */
export function inNode(n: NodeSandbox, cmd: string, args: string[], opts: { input?: string; allowFail?: boolean; timeoutMs?: number } = {}) {
  return exec('nsenter', [`--net=/run/netns/${n.netns}`, '--', cmd, ...args], opts);
}

export async function dockerAnswers(n: NodeSandbox): Promise<boolean> {
  if (!existsSync(n.dockerSocket)) return false;
  const r = await exec('docker', ['-H', `unix://${n.dockerSocket}`, 'version', '--format', '{{.Server.Version}}'], {
    allowFail: true,
    timeoutMs: 5000,
  });
  return r.code === 0;
}

export async function startDockerd(n: NodeSandbox, logDir?: string): Promise<void> {
  if (daemonRunning(n.dockerPidFile) && (await dockerAnswers(n))) return;
  for (const d of [n.dockerDataRoot, n.dockerExecRoot, path.dirname(n.dockerSocket)]) mkdirSync(d, { recursive: true });
  const logFile = logDir ? path.join(logDir, path.basename(n.dockerLog)) : n.dockerLog;
  // dockerd keeps its own pidfile; ours is for the nsenter'd process (same pid: nsenter execs).
  startDaemon({
    name: `dockerd-${n.netns}`,
    cmd: 'dockerd',
    args: [
      '--data-root', n.dockerDataRoot,
      '--exec-root', n.dockerExecRoot,
      '--pidfile', path.join(n.dockerExecRoot, 'dockerd.pid'),
      '-H', `unix://${n.dockerSocket}`,
      '--bip', `${n.bridgeIP}/24`,
      '--ip-masq=false',
      // Dual-stack pods: each sandbox gets an IPv6 address from the node's /64 as well.
      '--ipv6', '--fixed-cidr-v6', n.podCIDRv6,
      '--cgroup-parent', n.cgroupParent,
      '--log-driver', 'json-file',
    ],
    netns: n.netns,
    logFile,
    pidFile: n.dockerPidFile,
  });
  await waitFor(`dockerd in ${n.netns} to answer on ${n.dockerSocket} (log: ${logFile})`, () => dockerAnswers(n), 60_000, 300);
}

/** Stops dockerd gracefully (it stops its containers first). */
export async function stopDockerd(n: NodeSandbox, graceMs = 30_000): Promise<void> {
  await stopDaemon(n.dockerPidFile, graceMs);
}

/** Mount points at or below dir, deepest first. */
export function mountsUnder(dir: string): string[] {
  const mounts = readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[1] ?? '')
    .map((m) => m.replace(/\\040/g, ' '))
    .filter((m) => m === dir || m.startsWith(dir + '/'));
  return [...new Set(mounts)].sort((a, b) => b.length - a.length);
}

async function unmountAll(dir: string): Promise<void> {
  for (let round = 0; round < 3; round++) {
    const ms = mountsUnder(dir);
    if (ms.length === 0) return;
    for (const m of ms) await exec('umount', ['-l', m], { allowFail: true });
  }
}

/** Kills every process in the node's container cgroups (all v1 controllers or v2) and removes them. */
async function killCgroup(parent: string): Promise<void> {
  const roots: string[] = [];
  const base = '/sys/fs/cgroup';
  if (existsSync(path.join(base, 'cgroup.controllers'))) roots.push(path.join(base, parent));
  else if (existsSync(base)) {
    for (const c of readdirSync(base)) roots.push(path.join(base, c, parent));
  }
  const dirs: string[] = [];
  const walk = (d: string) => {
    if (!existsSync(d)) return;
    try { if (!statSync(d).isDirectory()) return; } catch { return; }
    for (const e of readdirSync(d, { withFileTypes: true })) if (e.isDirectory()) walk(path.join(d, e.name));
    dirs.push(d); // children before parents
  };
  roots.forEach(walk);
  for (const d of dirs) {
    try {
      for (const pid of readFileSync(path.join(d, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean)) {
        try { process.kill(Number(pid), 'SIGKILL'); } catch { /* gone */ }
      }
    } catch { /* no procs file */ }
  }
  await new Promise((r) => setTimeout(r, dirs.length ? 300 : 0));
  for (const d of dirs) {
    try { rmdirSync(d); } catch { /* busy or gone */ }
  }
}

/** Removes node i completely: dockerd, containers, mounts, namespace, links, routes, files. */
export async function destroyNode(p: ClusterProfile, i: number): Promise<void> {
  const n = nodeSandbox(p, i);
  const pid = readPid(n.dockerPidFile);
  if (pid !== undefined && pidAlive(pid)) await stopDockerd(n, 20_000);
  // Anything left of this node (a killed dockerd's containerd and shims) goes too.
  for (const marker of [n.dockerExecRoot, n.dockerDataRoot]) {
    for (const stale of pidsMatching(marker)) await stopPid(stale, 3000);
  }
  await killCgroup(n.cgroupParent);
  await unmountAll(n.dockerExecRoot);
  await unmountAll(n.dockerDataRoot);
  // nodelet's own mounts (tmpfs volumes under its root dir).
  await unmountAll(path.join(path.dirname(n.dockerDataRoot), 'nodelet'));
  if (existsSync(`/run/netns/${n.netns}`)) await ipOk('netns', 'del', n.netns);
  await ipOk('link', 'del', hostVeth(p, i));
  await ipOk('route', 'del', n.podCIDR);
  rmSync(path.dirname(n.dockerDataRoot), { recursive: true, force: true });
  rmSync(path.dirname(n.dockerSocket), { recursive: true, force: true });
}

/** Node indexes that have a namespace now (including stale ones from a killed run). */
export function existingNodes(p: ClusterProfile): number[] {
  if (!existsSync('/run/netns')) return [];
  const re = new RegExp(`^${p.prefix}-node(\\d+)$`);
  return readdirSync('/run/netns')
    .map((f) => re.exec(f)?.[1])
    .filter((x): x is string => x !== undefined)
    .map(Number);
}

export async function destroyNetwork(p: ClusterProfile): Promise<void> {
  for (const i of existingNodes(p)) await destroyNode(p, i);
  // Nodes whose netns is gone but whose dirs or processes remain.
  const nodesDir = path.join(p.stateDir, 'nodes');
  if (existsSync(nodesDir)) {
    const re = new RegExp(`^${p.prefix}-node(\\d+)$`);
    for (const d of readdirSync(nodesDir)) {
      const m = re.exec(d);
      if (m) await destroyNode(p, Number(m[1]));
    }
  }
  if (await linkExists(p.bridge)) await ipOk('link', 'del', p.bridge);
}

/** What remains of a profile on this machine; empty when fully cleaned. */
export async function leftovers(p: ClusterProfile): Promise<string[]> {
  const out: string[] = [];
  const pids = [...new Set([...pidsMatching(p.stateDir), ...pidsMatching(p.runDir)])];
  if (pids.length) out.push(`processes: ${pids.join(' ')}`);
  const ns = existingNodes(p);
  if (ns.length) out.push(`network namespaces: ${ns.map((i) => netnsName(p, i)).join(' ')}`);
  const mounts = [...mountsUnder(p.stateDir), ...mountsUnder(p.runDir)];
  if (mounts.length) out.push(`mounts: ${mounts.slice(0, 5).join(' ')}`);
  const links = (await ip('-o', 'link', 'show')).stdout
    .split('\n')
    .map((l) => l.split(':')[1]?.trim().split('@')[0] ?? '')
    .filter((l) => l === p.bridge || new RegExp(`^${p.prefix}v\\d+$`).test(l));
  if (links.length) out.push(`links: ${links.join(' ')}`);
  return out;
}
