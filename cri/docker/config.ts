// CRI configs -> Docker create options (pure, so the translation is unit-tested
// without a daemon). The sandbox is a pause container that owns the pod's
// network, IPC (and, when shared, PID) namespaces; app containers join it with
// `container:<sandboxId>` and so share its resolv.conf, hosts and hostname.
import type Dockerode from 'dockerode';
import { NodeletError } from '../../lib/errors.ts';
import type {
  ContainerConfig,
  LinuxContainerResources,
  LinuxContainerSecurityContext,
  Mount,
  NamespaceMode,
  NamespaceOption,
  PodSandboxConfig,
} from '../api.ts';
import {
  encodeLabels,
  LABEL_ATTEMPT,
  LABEL_CONTAINER_NAME,
  LABEL_HOST_IPC,
  LABEL_HOST_NETWORK,
  LABEL_HOST_PID,
  LABEL_LOG_PATH,
  LABEL_USER_IMAGE,
  LABEL_POD_NAME,
  LABEL_POD_NAMESPACE,
  LABEL_POD_UID,
  LABEL_SANDBOX_ID,
  LABEL_TYPE,
  TYPE_CONTAINER,
  TYPE_SANDBOX,
  containerName,
  sandboxName,
} from '../labels.ts';

/** The pause container's oom_score_adj, as the kubelet gives it: killed last. */
export const SANDBOX_OOM_SCORE_ADJ = -998;

export interface SandboxOptions {
  pauseImage: string;
  /** oom_score_adj of the pause container; 0 leaves Docker's default. */
  oomScoreAdj?: number;
  /** Bounds Docker's own json-file log of each container (our CRI log is separate). */
  dockerLogMaxSize?: string;
}

const nsMode = (o: NamespaceOption | undefined, k: 'network' | 'pid' | 'ipc', dflt: NamespaceMode): NamespaceMode =>
  o?.[k] ?? dflt;

export function sandboxNamespaces(config: PodSandboxConfig): { network: NamespaceMode; pid: NamespaceMode; ipc: NamespaceMode } {
  const o = config.linux?.securityContext?.namespaceOptions;
  // CRI defaults: network and IPC per pod, PID per container.
  return { network: nsMode(o, 'network', 'POD'), pid: nsMode(o, 'pid', 'CONTAINER'), ipc: nsMode(o, 'ipc', 'POD') };
}

function logConfig(maxSize: string | undefined): Dockerode.HostConfig['LogConfig'] {
  return { Type: 'json-file', Config: maxSize ? { 'max-size': maxSize, 'max-file': '2' } : {} };
}

export function sandboxCreateOptions(config: PodSandboxConfig, opts: SandboxOptions): Dockerode.ContainerCreateOptions {
  const m = config.metadata;
  const ns = sandboxNamespaces(config);
  const hostNet = ns.network === 'NODE';
  const sc = config.linux?.securityContext;
  const hc: Dockerode.HostConfig = {
    NetworkMode: hostNet ? 'host' : 'bridge',
    IpcMode: ns.ipc === 'NODE' ? 'host' : 'shareable',
    RestartPolicy: { Name: 'no', MaximumRetryCount: 0 },
    LogConfig: logConfig(opts.dockerLogMaxSize ?? '1m'),
  };
  if (opts.oomScoreAdj) hc.OomScoreAdj = opts.oomScoreAdj;
  if (ns.pid === 'NODE') hc.PidMode = 'host';
  if (config.linux?.cgroupParent) hc.CgroupParent = config.linux.cgroupParent;
  if (sc?.readonlyRootfs) hc.ReadonlyRootfs = true;
  if (sc?.privileged) hc.Privileged = true;
  const dns = config.dnsConfig;
  if (dns) {
    if (dns.servers.length) hc.Dns = [...dns.servers];
    if (dns.searches.length) hc.DnsSearch = [...dns.searches];
    if (dns.options.length) hc.DnsOptions = [...dns.options];
  }
  const sysctls = config.linux?.sysctls ?? {};
  // Network sysctls cannot be set in the host's namespace.
  const allowed = Object.entries(sysctls).filter(([k]) => !(hostNet && k.startsWith('net.')));
  if (allowed.length) hc.Sysctls = Object.fromEntries(allowed);
  const out: Dockerode.ContainerCreateOptions = {
    name: sandboxName(m),
    Image: opts.pauseImage,
    Labels: encodeLabels(config.labels, config.annotations, {
      [LABEL_TYPE]: TYPE_SANDBOX,
      [LABEL_POD_NAME]: m.name,
      [LABEL_POD_NAMESPACE]: m.namespace,
      [LABEL_POD_UID]: m.uid,
      [LABEL_ATTEMPT]: String(m.attempt),
      [LABEL_HOST_NETWORK]: String(hostNet),
      [LABEL_HOST_PID]: String(ns.pid === 'NODE'),
      [LABEL_HOST_IPC]: String(ns.ipc === 'NODE'),
      ...(config.logDirectory ? { [LABEL_LOG_PATH]: config.logDirectory } : {}),
    }),
    HostConfig: hc,
  };
  // Docker refuses a hostname with the host's network; it then has the node's.
  if (!hostNet && config.hostname) out.Hostname = config.hostname;
  const ports = config.portMappings ?? [];
  if (ports.length && !hostNet) {
    out.ExposedPorts = {};
    hc.PortBindings = {};
    for (const p of ports) {
      const key = `${p.containerPort}/${p.protocol.toLowerCase()}`;
      out.ExposedPorts[key] = {};
      if (p.hostPort > 0) {
        (hc.PortBindings[key] ??= []).push({ HostIp: p.hostIp ?? '', HostPort: String(p.hostPort) });
      }
    }
  }
  return out;
}

export function resourcesToHostConfig(r: LinuxContainerResources | undefined): Dockerode.HostConfig {
  const hc: Dockerode.HostConfig = {};
  if (!r) return hc;
  if (r.cpuShares) hc.CpuShares = r.cpuShares;
  if (r.cpuQuota) hc.CpuQuota = r.cpuQuota;
  if (r.cpuPeriod) hc.CpuPeriod = r.cpuPeriod;
  if (r.memoryLimitInBytes) {
    hc.Memory = r.memoryLimitInBytes;
    // No swap unless asked: swap limit = memory limit (what the kubelet sets for NoSwap).
    hc.MemorySwap = r.memorySwapLimitInBytes || r.memoryLimitInBytes;
  }
  if (r.oomScoreAdj !== undefined && r.oomScoreAdj !== 0) hc.OomScoreAdj = r.oomScoreAdj;
  if (r.cpusetCpus) hc.CpusetCpus = r.cpusetCpus;
  if (r.cpusetMems) hc.CpusetMems = r.cpusetMems;
  return hc;
}

const PROPAGATION: Record<string, string> = {
  PROPAGATION_PRIVATE: 'rprivate',
  PROPAGATION_HOST_TO_CONTAINER: 'rslave',
  PROPAGATION_BIDIRECTIONAL: 'rshared',
};

/** A Docker bind: host:container[:ro,propagation] (Docker creates a missing host dir). */
export function mountToBind(m: Mount): string {
  const opts: string[] = [];
  if (m.readonly) opts.push('ro');
  if (m.propagation && m.propagation !== 'PROPAGATION_PRIVATE') opts.push(PROPAGATION[m.propagation]!);
  return `${m.hostPath}:${m.containerPath}${opts.length ? ':' + opts.join(',') : ''}`;
}

function securityToHostConfig(sc: LinuxContainerSecurityContext | undefined, hc: Dockerode.HostConfig, out: Dockerode.ContainerCreateOptions): void {
  if (!sc) return;
  if (sc.runAsUsername) out.User = sc.runAsUsername + (sc.runAsGroup !== undefined ? `:${sc.runAsGroup}` : '');
  else if (sc.runAsUser !== undefined) out.User = String(sc.runAsUser) + (sc.runAsGroup !== undefined ? `:${sc.runAsGroup}` : '');
  if (sc.supplementalGroups?.length) hc.GroupAdd = sc.supplementalGroups.map(String);
  if (sc.privileged) hc.Privileged = true;
  if (sc.capabilities?.addCapabilities?.length) hc.CapAdd = [...sc.capabilities.addCapabilities];
  if (sc.capabilities?.dropCapabilities?.length) hc.CapDrop = [...sc.capabilities.dropCapabilities];
  if (sc.readonlyRootfs) hc.ReadonlyRootfs = true;
  const opts: string[] = [];
  if (sc.noNewPrivs) opts.push('no-new-privileges');
  if (sc.seccomp?.profileType === 'Unconfined') opts.push('seccomp=unconfined');
  if (sc.seccomp?.profileType === 'Localhost') {
    throw new NodeletError('CRI_UNSUPPORTED', 'seccomp profile type Localhost is not supported by this runtime');
  }
  if (opts.length) hc.SecurityOpt = opts;
  // Privileged containers see everything; Docker rejects masks with privileged.
  if (!sc.privileged) {
    if (sc.maskedPaths) hc.MaskedPaths = [...sc.maskedPaths];
    if (sc.readonlyPaths) hc.ReadonlyPaths = [...sc.readonlyPaths];
  }
}

export interface ContainerContext {
  sandboxId: string;
  sandboxConfig: PodSandboxConfig;
  /** Image to run (already resolved to what Docker knows). */
  image: string;
  /** Absolute host path of the CRI log ('' for none). */
  logPath: string;
  dockerLogMaxSize?: string;
}

export function containerCreateOptions(config: ContainerConfig, ctx: ContainerContext): Dockerode.ContainerCreateOptions {
  const sm = ctx.sandboxConfig.metadata;
  const sbNs = sandboxNamespaces(ctx.sandboxConfig);
  const cNs = config.linux?.securityContext?.namespaceOptions;
  const join = `container:${ctx.sandboxId}`;
  const pid = nsMode(cNs, 'pid', sbNs.pid);
  const ipc = nsMode(cNs, 'ipc', sbNs.ipc);
  const hc: Dockerode.HostConfig = {
    NetworkMode: join,
    IpcMode: ipc === 'NODE' ? 'host' : join,
    RestartPolicy: { Name: 'no', MaximumRetryCount: 0 },
    LogConfig: logConfig(ctx.dockerLogMaxSize ?? '10m'),
    ...resourcesToHostConfig(config.linux?.resources),
  };
  if (pid === 'NODE') hc.PidMode = 'host';
  else if (pid === 'POD') hc.PidMode = join;
  else if (pid === 'TARGET' && cNs?.targetId) hc.PidMode = `container:${cNs.targetId}`;
  if (ctx.sandboxConfig.linux?.cgroupParent) hc.CgroupParent = ctx.sandboxConfig.linux.cgroupParent;
  const binds = (config.mounts ?? []).map(mountToBind);
  if (binds.length) hc.Binds = binds;
  const devices = (config.devices ?? []).map((d) => ({
    PathOnHost: d.hostPath,
    PathInContainer: d.containerPath,
    CgroupPermissions: d.permissions || 'rwm',
  }));
  if (devices.length) hc.Devices = devices;
  const out: Dockerode.ContainerCreateOptions = {
    name: containerName(sm, config.metadata),
    Image: ctx.image,
    Labels: encodeLabels(config.labels, config.annotations, {
      [LABEL_TYPE]: TYPE_CONTAINER,
      [LABEL_SANDBOX_ID]: ctx.sandboxId,
      [LABEL_POD_NAME]: sm.name,
      [LABEL_POD_NAMESPACE]: sm.namespace,
      [LABEL_POD_UID]: sm.uid,
      [LABEL_CONTAINER_NAME]: config.metadata.name,
      [LABEL_ATTEMPT]: String(config.metadata.attempt),
      ...(ctx.logPath ? { [LABEL_LOG_PATH]: ctx.logPath } : {}),
      ...(config.image.userSpecifiedImage ? { [LABEL_USER_IMAGE]: config.image.userSpecifiedImage } : {}),
    }),
    Env: (config.envs ?? []).map((e) => `${e.key}=${e.value}`),
    Tty: config.tty ?? false,
    OpenStdin: config.stdin ?? false,
    StdinOnce: config.stdinOnce ?? false,
    AttachStdin: config.stdin ?? false,
    AttachStdout: true,
    AttachStderr: true,
    HostConfig: hc,
  };
  // CRI command replaces the image's ENTRYPOINT, args its CMD (as Kubernetes defines).
  if (config.command?.length) out.Entrypoint = [...config.command];
  if (config.args?.length) out.Cmd = [...config.args];
  else if (config.command?.length) out.Cmd = [];
  if (config.workingDir) out.WorkingDir = config.workingDir;
  securityToHostConfig(config.linux?.securityContext, hc, out);
  return out;
}
