// An upstream kubelet node for benchmarks: containerd (Debian's, CRI built in) and
// the pinned kubelet in a sandbox node namespace of the profile, joined to the same
// API server as nodelet. Both daemons share a private mount namespace of their own,
// so their mounts (rootfs, pod netns, volumes) never reach the host, and die with it.
// Inside that namespace the kernel tunables the kubelet insists on setting
// (vm.overcommit_memory, kernel.panic, ...) are bind-mounted files, so the host's
// real values are never changed. Everything lives under the profile's state and run
// directories, and stop() removes it all (processes, mounts, cgroups, files).
import Dockerode from 'dockerode';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { daemonRunning, pidAlive, pidsMatching, readPid, startDaemon, stopDaemon, stopPid, waitFor } from '../../cluster/daemon.ts';
import { kubeconfigPath } from '../../cluster/controlplane.ts';
import type { ClusterPaths } from '../../cluster/controlplane.ts';
import { type ClusterProfile, cidrAddr } from '../../cluster/profile.ts';
import type { NodeSandbox } from '../../cluster/sandbox.ts';
import { exec } from '../../lib/exec.ts';

export const CNI_BIN_DIR = '/usr/lib/cni';
const CONTAINERD = '/usr/bin/containerd';
const FIXED_DIRS = ['/run/containerd', '/var/lib/cni', '/var/lib/kubelet', '/var/log/containers'];

/** What the kubelet would set on the host; we give it files holding exactly these. */
const KERNEL_TUNABLES: Record<string, string> = {
  'vm/overcommit_memory': '1',
  'vm/panic_on_oom': '0',
  'kernel/panic': '10',
  'kernel/panic_on_oops': '1',
  'kernel/keys/root_maxkeys': '1000000',
  'kernel/keys/root_maxbytes': '25000000',
};

export interface UpstreamNode {
  name: string;
  sandbox: NodeSandbox;
  dir: string;
  run: string;
  containerdSocket: string;
  containerdLog: string;
  kubeletLog: string;
  kubeletPidFile: string;
  containerdPidFile: string;
  mntns: string;
}

export function upstreamNode(p: ClusterProfile, name: string, sandbox: NodeSandbox): UpstreamNode {
  const dir = path.join(p.stateDir, 'upstream-node', sandbox.netns);
  const run = path.join(p.runDir, 'upstream-node', sandbox.netns);
  return {
    name,
    sandbox,
    dir,
    run,
    containerdSocket: path.join(run, 'containerd.sock'),
    containerdLog: path.join(dir, 'containerd.log'),
    kubeletLog: path.join(dir, 'kubelet.log'),
    kubeletPidFile: path.join(run, 'kubelet.pid'),
    containerdPidFile: path.join(run, 'containerd.pid'),
    mntns: path.join(run, 'mntns'),
  };
}

export function containerdConfig(u: UpstreamNode, pauseImage: string): string {
  return [
    'version = 2',
    `root = "${path.join(u.dir, 'containerd')}"`,
    `state = "${path.join(u.run, 'containerd-state')}"`,
    // The opt plugin would create /opt/containerd on the host.
    'disabled_plugins = ["io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]',
    '[grpc]',
    `  address = "${u.containerdSocket}"`,
    '[ttrpc]',
    `  address = "${u.containerdSocket}.ttrpc"`,
    '[plugins."io.containerd.grpc.v1.cri"]',
    `  sandbox_image = "${pauseImage}"`,
    '  enable_selinux = false',
    // This host withholds CAP_SYS_RESOURCE, so the sandbox's oom_score_adj of
    // -998 cannot be set; clamp it to ours (what rootless setups do).
    '  restrict_oom_score_adj = true',
    '  stream_server_address = "127.0.0.1"',
    '  [plugins."io.containerd.grpc.v1.cri".containerd]',
    '    snapshotter = "overlayfs"',
    '  [plugins."io.containerd.grpc.v1.cri".cni]',
    `    bin_dir = "${CNI_BIN_DIR}"`,
    `    conf_dir = "${path.join(u.dir, 'net.d')}"`,
    '',
  ].join('\n');
}

export function cniConfig(u: UpstreamNode): string {
  return JSON.stringify(
    {
      cniVersion: '0.4.0',
      name: 'bench',
      plugins: [
        {
          type: 'bridge',
          bridge: 'cbr0',
          isGateway: true,
          ipMasq: false,
          hairpinMode: false,
          ipam: {
            type: 'host-local',
            dataDir: path.join(u.dir, 'cni-ipam'),
            ranges: [[{ subnet: u.sandbox.podCIDR, gateway: cidrAddr(u.sandbox.podCIDR, 1) }]],
          },
        },
        { type: 'loopback' },
      ],
    },
    null,
    2,
  );
}

export function kubeletConfig(p: ClusterProfile, u: UpstreamNode, caPath: string, maxPods: number): string {
  // JSON is YAML; the kubelet accepts it.
  return JSON.stringify(
    {
      apiVersion: 'kubelet.config.k8s.io/v1beta1',
      kind: 'KubeletConfiguration',
      address: u.sandbox.nodeIP,
      readOnlyPort: 0,
      healthzBindAddress: '127.0.0.1',
      authentication: { anonymous: { enabled: false }, webhook: { enabled: false }, x509: { clientCAFile: caPath } },
      authorization: { mode: 'AlwaysAllow' },
      cgroupDriver: 'cgroupfs',
      // Under the node's cgroup parent, so the sandbox's cleanup finds the pods.
      cgroupRoot: u.sandbox.cgroupParent,
      failCgroupV1: false,
      failSwapOn: false,
      containerRuntimeEndpoint: `unix://${u.containerdSocket}`,
      podLogsDir: path.join(u.dir, 'pod-logs'),
      maxPods,
      podCIDR: u.sandbox.podCIDR,
      clusterDNS: [cidrAddr(p.serviceCIDR, 10)],
      clusterDomain: 'cluster.local',
      resolvConf: '/etc/resolv.conf',
      serializeImagePulls: false,
      imageGCHighThresholdPercent: 100,
      imageGCLowThresholdPercent: 99,
      evictionHard: { 'memory.available': '1Mi', 'nodefs.available': '1%', 'imagefs.available': '1%', 'nodefs.inodesFree': '1%' },
      hairpinMode: 'none',
      registerNode: true,
      containerLogMaxFiles: 2,
    },
    null,
    2,
  );
}

const nsenterArgs = (u: UpstreamNode) => [`--net=/run/netns/${u.sandbox.netns}`, `--mount=${u.mntns}`, '--'];

/** A private mount namespace pinned to a file, with the fake kernel tunables in it. */
async function ensureMountNamespace(u: UpstreamNode): Promise<void> {
  if (mountedAt(u.mntns)) return;
  writeFileSync(u.mntns, '');
  await exec('unshare', [`--mount=${u.mntns}`, '--propagation', 'private', 'true']);
  const tun = path.join(u.run, 'sysctl');
  mkdirSync(tun, { recursive: true });
  // Pod network namespaces (containerd puts them in /var/run/netns) stay ours too.
  const netnsDir = path.join(u.run, 'netns');
  mkdirSync(netnsDir, { recursive: true });
  const script: string[] = ['set -e'];
  for (const [key, value] of Object.entries(KERNEL_TUNABLES)) {
    const f = path.join(tun, key.replace(/\//g, '.'));
    writeFileSync(f, `${value}\n`);
    script.push(`mount --bind ${f} /proc/sys/${key}`);
  }
  script.push(`mount --bind ${netnsDir} /run/netns`);
  // Fixed host paths used whatever the config says (containerd 1.6: shim sockets
  // and the runc root under /run/containerd; libcni's cache under /var/lib/cni;
  // the kubelet: /var/lib/kubelet/device-plugins, /var/log/containers links):
  // our own directories inside, mount points on the host (made here if missing,
  // removed again by stop if still empty).
  for (const [target, own] of FIXED_DIRS.map((t) => [t, path.join(u.dir, 'fixed', t.replace(/\//g, '_'))] as const)) {
    mkdirSync(own, { recursive: true });
    if (!existsSync(target)) {
      mkdirSync(target, { recursive: true });
      writeFileSync(path.join(u.run, `made${target.replace(/\//g, '_')}`), target);
    }
    script.push(`mount --bind ${own} ${target}`);
  }
  await exec('nsenter', [`--mount=${u.mntns}`, '--', 'sh', '-c', script.join('\n')]);
}

function mountedAt(target: string): boolean {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .some((l) => l.split(' ')[4] === target);
}

async function ctr(u: UpstreamNode, args: string[], input?: Buffer) {
  return exec('ctr', ['-a', u.containerdSocket, '-n', 'k8s.io', ...args], { input, timeoutMs: 120_000 });
}

/** Saves images from a node's dockerd into the containerd of u. */
export async function importImages(u: UpstreamNode, docker: Dockerode, images: string[]): Promise<void> {
  for (const image of images) {
    const tar = await docker.getImage(image).get();
    const chunks: Buffer[] = [];
    for await (const c of tar as AsyncIterable<Buffer>) chunks.push(c);
    await ctr(u, ['images', 'import', '--no-unpack=false', '-'], Buffer.concat(chunks));
  }
}

export interface StartOptions {
  kubeletBin: string;
  paths: ClusterPaths;
  pauseImage: string;
  images: string[];
  /** dockerd that already has the images. */
  imageSource: Dockerode;
  maxPods: number;
  log: (m: string) => void;
}

export async function startUpstreamNode(p: ClusterProfile, u: UpstreamNode, o: StartOptions): Promise<void> {
  for (const d of [u.dir, u.run, path.join(u.dir, 'net.d'), path.join(u.dir, 'kubelet'), path.join(u.dir, 'pod-logs')]) mkdirSync(d, { recursive: true });
  // The kubelet checks that its cgroup root exists in every v1 hierarchy.
  for (const c of cgroupRoots(u.sandbox.cgroupParent)) mkdirSync(c, { recursive: true });
  await ensureMountNamespace(u);
  writeFileSync(path.join(u.dir, 'containerd.toml'), containerdConfig(u, o.pauseImage));
  writeFileSync(path.join(u.dir, 'net.d', '10-bench.conflist'), cniConfig(u));
  writeFileSync(path.join(u.dir, 'kubelet.yaml'), kubeletConfig(p, u, o.paths.ca.certPath, o.maxPods));
  o.log(`upstream node ${u.name}: containerd (log: ${u.containerdLog})`);
  startDaemon({
    name: `containerd-${u.name}`,
    cmd: 'nsenter',
    args: [...nsenterArgs(u), CONTAINERD, '--config', path.join(u.dir, 'containerd.toml'), '--log-level', 'warn'],
    logFile: u.containerdLog,
    pidFile: u.containerdPidFile,
  });
  await waitFor(
    `containerd of ${u.name} (log: ${u.containerdLog})`,
    async () => {
      if (!daemonRunning(u.containerdPidFile)) throw new Error(`containerd exited: ${tail(u.containerdLog)}`);
      return (await exec('ctr', ['-a', u.containerdSocket, 'version'], { allowFail: true, timeoutMs: 5000 })).code === 0;
    },
    30_000,
    300,
  );
  await importImages(u, o.imageSource, o.images);
  o.log(`upstream node ${u.name}: kubelet (log: ${u.kubeletLog})`);
  startDaemon({
    name: `kubelet-${u.name}`,
    cmd: 'nsenter',
    args: [
      ...nsenterArgs(u),
      o.kubeletBin,
      '--config', path.join(u.dir, 'kubelet.yaml'),
      '--kubeconfig', kubeconfigPath(p, `node-${u.name}`),
      '--root-dir', path.join(u.dir, 'kubelet'),
      '--cert-dir', path.join(u.dir, 'kubelet', 'pki'),
      '--hostname-override', u.name,
      '--node-ip', u.sandbox.nodeIP,
      '--v', '1',
    ],
    logFile: u.kubeletLog,
    pidFile: u.kubeletPidFile,
  });
}

export function tail(file: string, lines = 5): string {
  if (!existsSync(file)) return '';
  return readFileSync(file, 'utf8').trim().split('\n').slice(-lines).join(' | ').slice(-1500);
}

function cgroupRoots(parent: string): string[] {
  const base = '/sys/fs/cgroup';
  if (existsSync(path.join(base, 'cgroup.controllers'))) return [path.join(base, parent)];
  return readdirSync(base)
    .filter((c) => c !== 'unified' && !c.includes(','))
    .map((c) => path.join(base, c, parent));
}

export const kubeletPid = (u: UpstreamNode): number | undefined => {
  const pid = readPid(u.kubeletPidFile);
  return pid !== undefined && pidAlive(pid) ? pid : undefined;
};

/** Kills kubelet, containerd and its shims and drops the mount namespace (the pods' own processes are the sandbox cgroup cleanup's). */
export async function stopUpstreamNode(u: UpstreamNode): Promise<void> {
  await stopDaemon(u.kubeletPidFile, 10_000);
  await stopDaemon(u.containerdPidFile, 10_000);
  // Shims outlive containerd; they carry its socket path (under u.run) in their argv.
  for (const pid of [...pidsMatching(u.run), ...pidsMatching(u.dir)]) await stopPid(pid, 3000);
  if (existsSync(u.mntns)) {
    await exec('umount', ['-l', u.mntns], { allowFail: true });
  }
}

/** Removes the node's files and the host mount points made for it; after stopUpstreamNode. */
export function removeUpstreamNode(u: UpstreamNode): void {
  for (const f of existsSync(u.run) ? readdirSync(u.run).filter((x) => x.startsWith('made_')) : []) {
    try {
      rmdirSync(readFileSync(path.join(u.run, f), 'utf8')); // only if still empty on the host
    } catch { /* not empty or gone: leave it */ }
  }
  rmSync(u.run, { recursive: true, force: true });
  rmSync(u.dir, { recursive: true, force: true });
}
