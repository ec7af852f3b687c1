// Pure translations of a pod spec into CRI configs, as upstream's kuberuntime
// (kuberuntime_sandbox.go, kuberuntime_container_linux.go, labels.go) and
// network/dns: the sandbox config (hostname, DNS, ports, namespaces, sysctls),
// the container config (labels and annotations that survive a restart,
// resources, security), and the pod's DNS settings. No I/O: the caller reads
// the host's resolv.conf and resolves env and mounts.
import type { V1Container, V1Pod } from '@kubernetes/client-node';
import type {
  Capability,
  ContainerConfig,
  DNSConfig,
  KeyValue,
  LinuxContainerResources,
  LinuxContainerSecurityContext,
  Mount,
  NamespaceOption,
  PodSandboxConfig,
  PortMapping,
  Protocol,
} from '../../cri/api.ts';
import {
  ANNOTATION_CONTAINER_HASH,
  ANNOTATION_RESTART_COUNT,
  ANNOTATION_TERMINATION_GRACE_PERIOD,
  ANNOTATION_TERMINATION_MESSAGE_PATH,
  ANNOTATION_TERMINATION_MESSAGE_POLICY,
  LABEL_CONTAINER_NAME,
  LABEL_POD_NAME,
  LABEL_POD_NAMESPACE,
  LABEL_POD_UID,
} from '../../cri/labels.ts';
import { podLogDirectory } from '../../cri/logformat.ts';
import { containerHash } from './hash.ts';
import { getPodQOS, quantityNanos } from './qos.ts';

export const ANNOTATION_PRESTOP = 'io.kubernetes.container.preStopHandler';
export const ANNOTATION_PORTS = 'io.kubernetes.container.ports';
export const DEFAULT_TERMINATION_MESSAGE_PATH = '/dev/termination-log';
export const DEFAULT_TERMINATION_GRACE_SECONDS = 30;

// Resolver limits as upstream's validation (pkg/apis/core/validation).
const MAX_NAMESERVERS = 3;
const MAX_SEARCH_PATHS = 32;
const MAX_SEARCH_CHARS = 2048;

// CPU as upstream's cm.MilliCPUToShares / MilliCPUToQuota.
const MIN_SHARES = 2;
const MAX_SHARES = 262144;
const SHARES_PER_CPU = 1024;
const QUOTA_PERIOD = 100_000;
const MIN_QUOTA = 1000;

export interface HostDNS {
  servers: string[];
  searches: string[];
  options: string[];
}

export interface DNSSettings {
  clusterDNS: readonly string[];
  clusterDomain: string;
  host: HostDNS;
}

export interface DNSDecision {
  config: DNSConfig;
  /** Set when ClusterFirst fell back to the host's resolver (upstream's MissingClusterDNS event). */
  warning?: string;
}

/** Parses resolv.conf text (nameserver, search/domain, options lines). */
export function parseResolvConf(text: string): HostDNS {
  const out: HostDNS = { servers: [], searches: [], options: [] };
  for (const raw of text.split('\n')) {
    const line = raw.replace(/[#;].*$/, '').trim();
    if (!line) continue;
    const [key, ...rest] = line.split(/\s+/);
    if (key === 'nameserver' && rest[0]) out.servers.push(rest[0]);
    else if (key === 'search' || key === 'domain') out.searches = rest.filter((s) => s !== '.');
    else if (key === 'options') out.options.push(...rest);
  }
  return out;
}

type DNSType = 'cluster' | 'host' | 'none';

function dnsType(pod: V1Pod): DNSType {
  const policy = pod.spec?.dnsPolicy ?? 'ClusterFirst';
  if (policy === 'None') return 'none';
  if (policy === 'Default') return 'host';
  if (policy === 'ClusterFirstWithHostNet') return 'cluster';
  return pod.spec?.hostNetwork ? 'host' : 'cluster';
}

function dedupe(xs: string[]): string[] {
  return xs.filter((x, i) => xs.indexOf(x) === i);
}

/** Options merge by name; the pod's win (upstream's mergeDNSOptions). */
function mergeOptions(base: string[], extra: { name?: string; value?: string }[]): string[] {
  const byName = new Map<string, string>();
  for (const o of base) {
    const [name = '', value] = o.split(':');
    byName.set(name, value === undefined ? name : `${name}:${value}`);
  }
  for (const o of extra) {
    if (!o.name) continue;
    byName.set(o.name, o.value !== undefined && o.value !== '' ? `${o.name}:${o.value}` : o.name);
  }
  return [...byName.values()];
}

function trimSearches(searches: string[]): string[] {
  const out: string[] = [];
  let chars = 0;
  for (const s of searches) {
    if (out.length >= MAX_SEARCH_PATHS || chars + s.length + (out.length ? 1 : 0) > MAX_SEARCH_CHARS) break;
    chars += s.length + (out.length ? 1 : 0);
    out.push(s);
  }
  return out;
}

/** The pod's resolver (upstream's GetPodDNS). */
export function podDNS(pod: V1Pod, s: DNSSettings): DNSDecision {
  let type = dnsType(pod);
  let warning: string | undefined;
  if (type === 'cluster' && s.clusterDNS.length === 0) {
    warning = 'kubelet does not have ClusterDNS IP configured and cannot create Pod using "ClusterFirst" policy. Falling back to "Default" policy.';
    type = 'host';
  }
  let cfg: DNSConfig = { servers: [], searches: [], options: [] };
  if (type === 'cluster') {
    const ns = pod.metadata?.namespace ?? 'default';
    const d = s.clusterDomain;
    const cluster = d ? [`${ns}.svc.${d}`, `svc.${d}`, d] : [];
    cfg = { servers: [...s.clusterDNS], searches: [...cluster, ...s.host.searches], options: ['ndots:5'] };
  } else if (type === 'host') {
    cfg = { servers: [...s.host.servers], searches: [...s.host.searches], options: [...s.host.options] };
  }
  const extra = pod.spec?.dnsConfig;
  if (extra) {
    cfg.servers.push(...(extra.nameservers ?? []));
    cfg.searches.push(...(extra.searches ?? []));
    cfg.options = mergeOptions(cfg.options, extra.options ?? []);
  }
  cfg.servers = dedupe(cfg.servers).slice(0, MAX_NAMESERVERS);
  cfg.searches = trimSearches(dedupe(cfg.searches));
  return warning ? { config: cfg, warning } : { config: cfg };
}

/** The pod's hostname: spec.hostname, else the pod name, cut to 63 characters as upstream. */
export function podHostname(pod: V1Pod): string {
  const name = pod.spec?.hostname || pod.metadata?.name || '';
  return name.slice(0, 63).replace(/[-.]+$/, '');
}

export function portMappings(pod: V1Pod): PortMapping[] {
  const out: PortMapping[] = [];
  for (const c of pod.spec?.containers ?? []) {
    for (const p of c.ports ?? []) {
      if (!p.hostPort) continue;
      out.push({
        protocol: (p.protocol ?? 'TCP') as Protocol,
        containerPort: p.containerPort,
        hostPort: p.hostPort,
        ...(p.hostIP ? { hostIp: p.hostIP } : {}),
      });
    }
  }
  return out;
}

function podIdentity(pod: V1Pod): { name: string; namespace: string; uid: string } {
  return { name: pod.metadata?.name ?? '', namespace: pod.metadata?.namespace ?? 'default', uid: pod.metadata?.uid ?? '' };
}

export function sandboxConfig(pod: V1Pod, attempt: number, opts: { dns: DNSConfig; podLogsDir: string }): PodSandboxConfig {
  const id = podIdentity(pod);
  const spec = pod.spec;
  const ns: NamespaceOption = {
    network: spec?.hostNetwork ? 'NODE' : 'POD',
    pid: spec?.hostPID ? 'NODE' : spec?.shareProcessNamespace ? 'POD' : 'CONTAINER',
    ipc: spec?.hostIPC ? 'NODE' : 'POD',
  };
  const psc = spec?.securityContext;
  const sysctls = Object.fromEntries((psc?.sysctls ?? []).map((s) => [s.name, s.value]));
  const cfg: PodSandboxConfig = {
    metadata: { ...id, attempt },
    hostname: podHostname(pod),
    logDirectory: podLogDirectory(opts.podLogsDir, id.namespace, id.name, id.uid),
    dnsConfig: opts.dns,
    portMappings: portMappings(pod),
    labels: { ...(pod.metadata?.labels ?? {}), [LABEL_POD_NAME]: id.name, [LABEL_POD_NAMESPACE]: id.namespace, [LABEL_POD_UID]: id.uid },
    annotations: { ...(pod.metadata?.annotations ?? {}) },
    linux: {
      securityContext: {
        namespaceOptions: ns,
        ...(psc?.runAsUser !== undefined ? { runAsUser: psc.runAsUser } : {}),
        ...(psc?.runAsGroup !== undefined ? { runAsGroup: psc.runAsGroup } : {}),
        ...(psc?.supplementalGroups?.length ? { supplementalGroups: [...psc.supplementalGroups] } : {}),
      },
      ...(Object.keys(sysctls).length ? { sysctls } : {}),
    },
  };
  return cfg;
}

function milli(q: string | undefined): number {
  if (q === undefined) return 0;
  const n = quantityNanos(q);
  return n === undefined ? 0 : Number((n + 999_999n) / 1_000_000n);
}

function bytes(q: string | undefined): number {
  if (q === undefined) return 0;
  const n = quantityNanos(q);
  return n === undefined ? 0 : Number((n + 999_999_999n) / 1_000_000_000n);
}

/** CPU shares, quota and memory limit; OOM score by QoS (upstream's GetContainerOOMScoreAdjust). */
export function containerResources(pod: V1Pod, c: V1Container, memoryCapacityBytes: number): LinuxContainerResources {
  const req = c.resources?.requests ?? {};
  const lim = c.resources?.limits ?? {};
  // A limit without a request means request = limit (API defaulting does this too).
  const cpuReq = milli(req['cpu'] ?? lim['cpu']);
  const cpuLim = milli(lim['cpu']);
  const r: LinuxContainerResources = {
    cpuShares: cpuReq === 0 ? MIN_SHARES : Math.min(MAX_SHARES, Math.max(MIN_SHARES, Math.floor((cpuReq * SHARES_PER_CPU) / 1000))),
  };
  if (cpuLim > 0) {
    r.cpuPeriod = QUOTA_PERIOD;
    r.cpuQuota = Math.max(MIN_QUOTA, Math.floor((cpuLim * QUOTA_PERIOD) / 1000));
  }
  const memLim = bytes(lim['memory']);
  if (memLim > 0) r.memoryLimitInBytes = memLim;
  r.oomScoreAdj = oomScoreAdj(pod, c, memoryCapacityBytes);
  return r;
}

export function oomScoreAdj(pod: V1Pod, c: V1Container, memoryCapacityBytes: number): number {
  const qos = getPodQOS(pod);
  if (qos === 'Guaranteed') return -997;
  if (qos === 'BestEffort') return 1000;
  const req = bytes(c.resources?.requests?.['memory'] ?? c.resources?.limits?.['memory']);
  if (memoryCapacityBytes <= 0) return 999;
  let adj = 1000 - Math.floor((1000 * req) / memoryCapacityBytes);
  if (adj < 2) adj = 2;
  if (adj >= 1000) adj = 999;
  return adj;
}

function securityContext(pod: V1Pod, c: V1Container): LinuxContainerSecurityContext {
  const psc = pod.spec?.securityContext;
  const sc = c.securityContext;
  const out: LinuxContainerSecurityContext = {
    namespaceOptions: {
      network: pod.spec?.hostNetwork ? 'NODE' : 'POD',
      pid: pod.spec?.hostPID ? 'NODE' : pod.spec?.shareProcessNamespace ? 'POD' : 'CONTAINER',
      ipc: pod.spec?.hostIPC ? 'NODE' : 'POD',
    },
  };
  const runAsUser = sc?.runAsUser ?? psc?.runAsUser;
  const runAsGroup = sc?.runAsGroup ?? psc?.runAsGroup;
  if (runAsUser !== undefined) out.runAsUser = runAsUser;
  if (runAsGroup !== undefined) out.runAsGroup = runAsGroup;
  const groups = [...(psc?.supplementalGroups ?? []), ...(psc?.fsGroup !== undefined ? [psc.fsGroup] : [])];
  if (groups.length) out.supplementalGroups = groups;
  if (sc?.privileged) out.privileged = true;
  if (sc?.readOnlyRootFilesystem) out.readonlyRootfs = true;
  if (sc?.allowPrivilegeEscalation === false) out.noNewPrivs = true;
  const caps: Capability = {};
  if (sc?.capabilities?.add?.length) caps.addCapabilities = [...sc.capabilities.add];
  if (sc?.capabilities?.drop?.length) caps.dropCapabilities = [...sc.capabilities.drop];
  if (caps.addCapabilities || caps.dropCapabilities) out.capabilities = caps;
  return out;
}

export interface ContainerInputs {
  restartCount: number;
  /** The image to run (the resolved ID when known). */
  imageRef: string;
  envs: KeyValue[];
  mounts: Mount[];
  /** command and args after $(VAR) expansion. */
  command: string[];
  args: string[];
  memoryCapacityBytes: number;
}

export function containerConfig(pod: V1Pod, c: V1Container, inp: ContainerInputs): ContainerConfig {
  const id = podIdentity(pod);
  const annotations: Record<string, string> = {
    [ANNOTATION_CONTAINER_HASH]: containerHash(c),
    [ANNOTATION_RESTART_COUNT]: String(inp.restartCount),
    [ANNOTATION_TERMINATION_MESSAGE_PATH]: c.terminationMessagePath ?? DEFAULT_TERMINATION_MESSAGE_PATH,
    [ANNOTATION_TERMINATION_MESSAGE_POLICY]: c.terminationMessagePolicy ?? 'File',
    [ANNOTATION_TERMINATION_GRACE_PERIOD]: String(pod.spec?.terminationGracePeriodSeconds ?? DEFAULT_TERMINATION_GRACE_SECONDS),
  };
  if (c.lifecycle?.preStop) annotations[ANNOTATION_PRESTOP] = JSON.stringify(c.lifecycle.preStop);
  if (c.ports?.length) annotations[ANNOTATION_PORTS] = JSON.stringify(c.ports);
  const cfg: ContainerConfig = {
    metadata: { name: c.name, attempt: inp.restartCount },
    image: { image: inp.imageRef, userSpecifiedImage: c.image ?? '' },
    ...(inp.command.length ? { command: inp.command } : {}),
    ...(inp.args.length ? { args: inp.args } : {}),
    ...(c.workingDir ? { workingDir: c.workingDir } : {}),
    envs: inp.envs,
    mounts: inp.mounts,
    labels: { [LABEL_POD_NAME]: id.name, [LABEL_POD_NAMESPACE]: id.namespace, [LABEL_POD_UID]: id.uid, [LABEL_CONTAINER_NAME]: c.name },
    annotations,
    logPath: `${c.name}/${inp.restartCount}.log`,
    stdin: c.stdin ?? false,
    stdinOnce: c.stdinOnce ?? false,
    tty: c.tty ?? false,
    linux: { resources: containerResources(pod, c, inp.memoryCapacityBytes), securityContext: securityContext(pod, c) },
  };
  return cfg;
}

/** The default pull policy: Always for :latest or no tag, IfNotPresent otherwise (API defaulting). */
export function pullPolicy(c: V1Container): 'Always' | 'IfNotPresent' | 'Never' {
  const p = c.imagePullPolicy;
  if (p === 'Always' || p === 'IfNotPresent' || p === 'Never') return p;
  const image = c.image ?? '';
  if (image.includes('@')) return 'IfNotPresent';
  const last = image.slice(image.lastIndexOf('/') + 1);
  const tag = last.includes(':') ? last.slice(last.indexOf(':') + 1) : '';
  return tag === '' || tag === 'latest' ? 'Always' : 'IfNotPresent';
}
