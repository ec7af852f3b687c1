// Agent flags, parsed and validated once into a frozen object. Flag names are
// upstream kubelet's where one exists. Host lookups (hostname, addresses) are
// behind `HostProbe` so tests can pin them.
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { NodeletError } from '../lib/errors.ts';
import { bigIntToIp, ipToBigInt } from '../lib/ip.ts';
import type { ConfigFileInfo } from './configfile/document.ts';
import { loadKubeletConfigFile } from './configfile/kubelet.ts';

export type LogLevel = 'error' | 'warn' | 'info' | 'debug';

export interface AgentConfig {
  readonly kubeconfig: string;
  /** Node object name: --hostname-override/--node-name, else the host name; lowercased. */
  readonly nodeName: string;
  /** Value of the kubernetes.io/hostname label and the Hostname address. */
  readonly hostname: string;
  readonly nodeIP: string;
  readonly podCIDR?: string;
  /** Normalized to unix:///abs/path. */
  readonly containerRuntimeEndpoint: string;
  /** The socket path of containerRuntimeEndpoint. */
  readonly runtimeSocketPath: string;
  readonly nodeLabels: Readonly<Record<string, string>>;
  readonly maxPods: number;
  readonly nodeLeaseDurationSeconds: number;
  readonly nodeStatusUpdateFrequencyMs: number;
  readonly nodeStatusReportFrequencyMs: number;
  readonly port: number;
  /** 0 disables the healthz endpoint, as upstream. */
  readonly healthzPort: number;
  readonly rootDir: string;
  readonly logLevel: LogLevel;
  /** Nameservers for ClusterFirst pods (upstream --cluster-dns); [] = none configured. */
  readonly clusterDNS: readonly string[];
  /** Upstream --cluster-domain (no default upstream; '' = no cluster search domains). */
  readonly clusterDomain: string;
  /** The resolver file dnsPolicy Default copies (upstream --resolv-conf; '' = none). */
  readonly resolvConf: string;
  /** Where container logs go: <podLogsDir>/<ns>_<name>_<uid>/<container>/<n>.log. */
  readonly podLogsDir: string;
  /** How often every pod is synced even without a change (upstream --sync-frequency). */
  readonly syncFrequencyMs: number;
  /** Directory of static pod manifests (upstream --pod-manifest-path / staticPodPath); '' = none. */
  readonly staticPodPath: string;
  /** Upstream --runtime-request-timeout: any runtime call may take this long (default 2m). */
  readonly runtimeRequestTimeoutMs: number;
  /**
   * nodelet's own --service-proxy-url: the health server of this node's
   * `nodelet proxy`, asked before a deleted pod is signalled (see
   * agent/pod/trafficgate.ts); '' = do not ask.
   */
  readonly serviceProxyURL: string;
  /** Set when --config named a file: its path and the fields that had no effect (main logs them). */
  readonly configFile?: ConfigFileInfo;
}

/** What the defaults need to know about the host. */
export interface HostProbe {
  hostname(): string;
  networkInterfaces(): NodeJS.Dict<os.NetworkInterfaceInfo[]>;
}

export const realHost: HostProbe = {
  hostname: () => os.hostname(),
  networkInterfaces: () => os.networkInterfaces(),
};

export const DEFAULTS = Object.freeze({
  containerRuntimeEndpoint: 'unix:///var/run/docker.sock',
  maxPods: 110,
  nodeLeaseDurationSeconds: 40,
  nodeStatusUpdateFrequencyMs: 10_000,
  nodeStatusReportFrequencyMs: 5 * 60_000,
  port: 10250,
  healthzPort: 10248,
  rootDir: '/var/lib/nodelet',
  logLevel: 'info' as LogLevel,
  resolvConf: '/etc/resolv.conf',
  podLogsDir: '/var/log/pods',
  syncFrequencyMs: 60_000,
  runtimeRequestTimeoutMs: 120_000,
  serviceProxyURL: 'http://127.0.0.1:10256',
});

type FlagName =
  | 'kubeconfig'
  | 'hostname-override'
  | 'node-ip'
  | 'pod-cidr'
  | 'container-runtime-endpoint'
  | 'node-labels'
  | 'max-pods'
  | 'node-lease-duration-seconds'
  | 'node-status-update-frequency'
  | 'node-status-report-frequency'
  | 'port'
  | 'healthz-port'
  | 'root-dir'
  | 'v'
  | 'log-level'
  | 'cluster-dns'
  | 'cluster-domain'
  | 'resolv-conf'
  | 'pod-logs-dir'
  | 'sync-frequency'
  | 'pod-manifest-path'
  | 'runtime-request-timeout'
  | 'service-proxy-url'
  | 'config';

/** Accepted spellings; --node-name is an alias of --hostname-override. */
const FLAGS: Record<string, FlagName> = {
  kubeconfig: 'kubeconfig',
  'hostname-override': 'hostname-override',
  'node-name': 'hostname-override',
  'node-ip': 'node-ip',
  'pod-cidr': 'pod-cidr',
  'container-runtime-endpoint': 'container-runtime-endpoint',
  'node-labels': 'node-labels',
  'max-pods': 'max-pods',
  'node-lease-duration-seconds': 'node-lease-duration-seconds',
  'node-status-update-frequency': 'node-status-update-frequency',
  'node-status-report-frequency': 'node-status-report-frequency',
  port: 'port',
  'healthz-port': 'healthz-port',
  'root-dir': 'root-dir',
  v: 'v',
  'log-level': 'log-level',
  'cluster-dns': 'cluster-dns',
  'cluster-domain': 'cluster-domain',
  'resolv-conf': 'resolv-conf',
  'pod-logs-dir': 'pod-logs-dir',
  'sync-frequency': 'sync-frequency',
  'pod-manifest-path': 'pod-manifest-path',
  'runtime-request-timeout': 'runtime-request-timeout',
  'service-proxy-url': 'service-proxy-url',
  config: 'config',
};

function invalid(flag: string, why: string): NodeletError {
  return new NodeletError('CONFIG_INVALID', `--${flag}: ${why}`);
}

/** Splits argv into flag values (last one wins, as pflag). Accepts --f=v and --f v. */
function scanFlags(argv: readonly string[]): { values: Map<FlagName, string>; spelled: Map<FlagName, string> } {
  const values = new Map<FlagName, string>();
  const spelled = new Map<FlagName, string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith('-') || arg === '-' || arg === '--') {
      throw new NodeletError('CONFIG_INVALID', `unexpected argument '${arg}' (flags look like --name=value)`);
    }
    const body = arg.replace(/^--?/, '');
    const eq = body.indexOf('=');
    const given = eq >= 0 ? body.slice(0, eq) : body;
    const name = FLAGS[given];
    if (!name) throw new NodeletError('CONFIG_INVALID', `unknown flag --${given}`);
    let value: string;
    if (eq >= 0) value = body.slice(eq + 1);
    else {
      const next = argv[i + 1];
      if (next === undefined || next.startsWith('--')) throw invalid(given, 'needs a value');
      value = next;
      i++;
    }
    values.set(name, value);
    spelled.set(name, given);
  }
  return { values, spelled };
}

export function parseAgentFlags(argv: readonly string[], host: HostProbe = realHost): AgentConfig {
  const { values, spelled } = scanFlags(argv);
  // The file's KubeletConfiguration fields go under the flags: a flag given wins.
  const configPath = values.get('config')?.trim();
  const fromFile = configPath ? loadKubeletConfigFile(configPath) : undefined;
  for (const [f, v] of fromFile?.flags ?? []) if (!values.has(f)) values.set(f, v);
  const get = (f: FlagName) => values.get(f);
  const nameOf = (f: FlagName) => spelled.get(f) ?? f;

  const kubeconfig = get('kubeconfig');
  if (kubeconfig === undefined || kubeconfig.trim() === '') {
    throw invalid('kubeconfig', 'is required (path to the kubeconfig the agent uses to reach the API server)');
  }

  const override = get('hostname-override');
  const hostname = (override ?? host.hostname()).trim().toLowerCase();
  const hostFlag = nameOf('hostname-override');
  if (hostname === '') throw invalid(hostFlag, override === undefined ? 'not set and the host name is empty' : 'is empty');
  const dnsWhy = dns1123SubdomainError(hostname);
  if (dnsWhy) {
    throw invalid(hostFlag, `'${hostname}' is not a valid node name: ${dnsWhy}` +
      (override === undefined ? ' (it is the host name; set --hostname-override)' : ''));
  }

  const nodeIPFlag = get('node-ip');
  let nodeIP: string;
  if (nodeIPFlag !== undefined) {
    const why = nodeIPError(nodeIPFlag);
    if (why) throw invalid('node-ip', `'${nodeIPFlag}' ${why}`);
    nodeIP = nodeIPFlag;
  } else {
    const found = firstHostIPv4(host.networkInterfaces());
    if (!found) throw invalid('node-ip', 'not set and the host has no non-loopback IPv4 address; set it');
    nodeIP = found;
  }

  const podCIDRFlag = get('pod-cidr');
  if (podCIDRFlag !== undefined) {
    const why = cidrError(podCIDRFlag);
    if (why) throw invalid('pod-cidr', `'${podCIDRFlag}' ${why}`);
  }

  const endpoint = get('container-runtime-endpoint') ?? DEFAULTS.containerRuntimeEndpoint;
  const runtimeSocketPath = parseRuntimeEndpoint(endpoint);

  const labelsFlag = get('node-labels');
  const nodeLabels = labelsFlag === undefined ? {} : parseNodeLabels(labelsFlag);

  const int = (f: FlagName, dflt: number, min: number, max: number): number => {
    const raw = get(f);
    if (raw === undefined) return dflt;
    if (!/^\d+$/.test(raw.trim())) throw invalid(nameOf(f), `'${raw}' is not a whole number`);
    const n = Number(raw.trim());
    if (n < min || n > max) throw invalid(nameOf(f), `${n} is out of range ${min}..${max}`);
    return n;
  };
  const maxPods = int('max-pods', DEFAULTS.maxPods, 1, 1_000_000);
  const nodeLeaseDurationSeconds = int('node-lease-duration-seconds', DEFAULTS.nodeLeaseDurationSeconds, 1, 3600);
  const port = int('port', DEFAULTS.port, 1, 65535);
  const healthzPort = int('healthz-port', DEFAULTS.healthzPort, 0, 65535);

  const duration = (f: FlagName, dflt: number): number => {
    const raw = get(f);
    if (raw === undefined) return dflt;
    let ms: number;
    try {
      ms = parseDuration(raw);
    } catch (err) {
      throw invalid(nameOf(f), (err as Error).message);
    }
    if (ms < 1000) throw invalid(nameOf(f), `'${raw}' is too short (at least 1s)`);
    return ms;
  };
  const nodeStatusUpdateFrequencyMs = duration('node-status-update-frequency', DEFAULTS.nodeStatusUpdateFrequencyMs);
  // Upstream: when the update frequency is set but the report frequency is
  // not, the report frequency follows it (backward compatibility).
  const nodeStatusReportFrequencyMs = duration(
    'node-status-report-frequency',
    get('node-status-update-frequency') !== undefined ? nodeStatusUpdateFrequencyMs : DEFAULTS.nodeStatusReportFrequencyMs,
  );

  const rootDir = get('root-dir') ?? DEFAULTS.rootDir;
  if (!path.isAbsolute(rootDir)) throw invalid('root-dir', `'${rootDir}' is not an absolute path`);

  let logLevel: LogLevel = DEFAULTS.logLevel;
  // Both may be given; --log-level is the more specific one and wins.
  const v = get('v');
  if (v !== undefined) {
    if (!/^\d+$/.test(v)) throw invalid('v', `'${v}' is not a verbosity number (0..10)`);
    logLevel = verbosityToLevel(Number(v));
  }
  const lvl = get('log-level');
  if (lvl !== undefined) {
    if (!isLogLevel(lvl)) throw invalid('log-level', `'${lvl}' is not one of error, warn, info, debug`);
    logLevel = lvl;
  }

  const clusterDNS = (get('cluster-dns') ?? '').split(',').map((x) => x.trim()).filter((x) => x !== '');
  for (const ip of clusterDNS) if (net.isIP(ip) === 0) throw invalid('cluster-dns', `'${ip}' is not an IP address`);
  const clusterDomain = (get('cluster-domain') ?? '').trim().replace(/\.$/, '');
  if (clusterDomain !== '') {
    const why = dns1123SubdomainError(clusterDomain);
    if (why) throw invalid('cluster-domain', `'${clusterDomain}' ${why}`);
  }
  const resolvConf = get('resolv-conf') ?? DEFAULTS.resolvConf;
  const podLogsDir = get('pod-logs-dir') ?? DEFAULTS.podLogsDir;
  if (!path.isAbsolute(podLogsDir)) throw invalid('pod-logs-dir', `'${podLogsDir}' is not an absolute path`);
  const syncFrequencyMs = duration('sync-frequency', DEFAULTS.syncFrequencyMs);
  const runtimeRequestTimeoutMs = duration('runtime-request-timeout', DEFAULTS.runtimeRequestTimeoutMs);
  const serviceProxyURL = (get('service-proxy-url') ?? DEFAULTS.serviceProxyURL).replace(/\/+$/, '');
  if (serviceProxyURL !== '' && !/^https?:\/\/[^/]+$/.test(serviceProxyURL)) {
    throw invalid('service-proxy-url', `'${serviceProxyURL}' is not an http://host:port URL`);
  }
  const staticPodPath = get('pod-manifest-path') ?? '';
  if (staticPodPath !== '' && !path.isAbsolute(staticPodPath)) throw invalid('pod-manifest-path', `'${staticPodPath}' is not an absolute path`);

  const cfg: AgentConfig = {
    kubeconfig,
    nodeName: hostname,
    hostname,
    nodeIP,
    ...(podCIDRFlag !== undefined ? { podCIDR: podCIDRFlag } : {}),
    containerRuntimeEndpoint: `unix://${runtimeSocketPath}`,
    runtimeSocketPath,
    nodeLabels: Object.freeze(nodeLabels),
    maxPods,
    nodeLeaseDurationSeconds,
    nodeStatusUpdateFrequencyMs,
    nodeStatusReportFrequencyMs,
    port,
    healthzPort,
    rootDir: path.resolve(rootDir),
    logLevel,
    clusterDNS: Object.freeze(clusterDNS),
    clusterDomain,
    resolvConf,
    podLogsDir: path.resolve(podLogsDir),
    syncFrequencyMs,
    staticPodPath: staticPodPath === '' ? '' : path.resolve(staticPodPath),
    runtimeRequestTimeoutMs,
    serviceProxyURL,
    ...(fromFile ? { configFile: fromFile.info } : {}),
  };
  return Object.freeze(cfg);
}

// ---------------------------------------------------------------- helpers

const UNIT_MS: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  'µs': 1e-3,
  'μs': 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

/** Go time.ParseDuration ('10s', '5m', '1m30s', '1.5h', '250ms') to milliseconds. */
export function parseDuration(s: string): number {
  const text = s.trim();
  if (text === '0') return 0;
  const re = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)/y;
  let ms = 0;
  let pos = 0;
  while (pos < text.length) {
    re.lastIndex = pos;
    const m = re.exec(text);
    if (!m) break;
    ms += Number(m[1]) * UNIT_MS[m[2]!]!;
    pos = re.lastIndex;
  }
  if (text === '' || pos !== text.length) {
    throw new Error(`'${s}' is not a duration (use Go form like 10s, 5m, 1m30s)`);
  }
  return Math.round(ms);
}

/** unix:///path or a plain absolute path to the socket path. */
export function parseRuntimeEndpoint(endpoint: string): string {
  let p = endpoint.trim();
  if (p.startsWith('unix://')) p = p.slice('unix://'.length);
  else if (/^[a-z][a-z0-9+.-]*:\/\//i.test(p)) {
    throw invalid('container-runtime-endpoint', `'${endpoint}': only unix sockets are supported (unix:///path)`);
  }
  if (!path.isAbsolute(p)) {
    throw invalid('container-runtime-endpoint', `'${endpoint}': the socket path must be absolute`);
  }
  return path.normalize(p);
}

const LABEL_NAME = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;

/** Label namespaces and keys a kubelet may set (upstream IsKubeletLabel). */
const KUBELET_LABELS = new Set([
  'kubernetes.io/hostname',
  'topology.kubernetes.io/zone',
  'topology.kubernetes.io/region',
  'failure-domain.beta.kubernetes.io/zone',
  'failure-domain.beta.kubernetes.io/region',
  'beta.kubernetes.io/instance-type',
  'node.kubernetes.io/instance-type',
  'kubernetes.io/os',
  'kubernetes.io/arch',
  'beta.kubernetes.io/os',
  'beta.kubernetes.io/arch',
]);
const KUBELET_LABEL_NAMESPACES = ['kubelet.kubernetes.io', 'node.kubernetes.io'];

function labelKeyError(key: string): string | undefined {
  const slash = key.indexOf('/');
  const prefix = slash >= 0 ? key.slice(0, slash) : undefined;
  const name = slash >= 0 ? key.slice(slash + 1) : key;
  if (prefix !== undefined) {
    const why = dns1123SubdomainError(prefix);
    if (why) return `prefix '${prefix}' ${why}`;
  }
  if (name.length === 0 || name.length > 63 || !LABEL_NAME.test(name)) {
    return 'name must be 1-63 characters of [A-Za-z0-9-_.], starting and ending alphanumeric';
  }
  if (prefix !== undefined) {
    const reserved = ['kubernetes.io', 'k8s.io'].some((ns) => prefix === ns || prefix.endsWith(`.${ns}`));
    const allowed =
      KUBELET_LABELS.has(key) ||
      KUBELET_LABEL_NAMESPACES.some((ns) => prefix === ns || prefix.endsWith(`.${ns}`));
    if (reserved && !allowed) {
      return `is in a kubernetes.io/k8s.io namespace a node may not set (allowed: ${KUBELET_LABEL_NAMESPACES.join(', ')} and the well-known node labels)`;
    }
  }
  return undefined;
}

/** 'k=v,k2=v2' (upstream --node-labels syntax) to a map. */
export function parseNodeLabels(text: string): Record<string, string> {
  const labels: Record<string, string> = {};
  if (text.trim() === '') return labels;
  for (const item of text.split(',')) {
    const pair = item.trim();
    const eq = pair.indexOf('=');
    if (eq <= 0) throw invalid('node-labels', `'${pair}' is not key=value`);
    const key = pair.slice(0, eq);
    const value = pair.slice(eq + 1);
    const keyWhy = labelKeyError(key);
    if (keyWhy) throw invalid('node-labels', `label key '${key}': ${keyWhy}`);
    if (value.length > 63 || (value !== '' && !LABEL_NAME.test(value))) {
      throw invalid('node-labels', `label '${key}' value '${value}': must be at most 63 characters of [A-Za-z0-9-_.], starting and ending alphanumeric`);
    }
    labels[key] = value;
  }
  return labels;
}

/** Why `s` is not a DNS-1123 subdomain (what Node names must be), or undefined. */
export function dns1123SubdomainError(s: string): string | undefined {
  if (s.length > 253) return 'must be at most 253 characters';
  if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/.test(s)) {
    return "must be lowercase alphanumerics, '-' and '.', starting and ending alphanumeric";
  }
  return undefined;
}

function nodeIPError(ip: string): string | undefined {
  const family = net.isIP(ip);
  if (family === 0) return 'is not an IP address';
  const big = ipToBigInt(ip);
  if (family === 4) {
    const first = Number(big >> 24n);
    if (big === 0n) return 'is unspecified';
    if (first === 127) return 'is a loopback address';
    if (first >= 224 && first <= 239) return 'is a multicast address';
    if (first === 169 && Number((big >> 16n) & 0xffn) === 254) return 'is a link-local address';
  } else {
    if (big === 0n) return 'is unspecified';
    if (big === 1n) return 'is a loopback address';
    if (big >> 120n === 0xffn) return 'is a multicast address';
    if (big >> 118n === 0x3fan) return 'is a link-local address';
  }
  return undefined;
}

/** Why `s` is not an IPv4/IPv6 CIDR with a clean network address, or undefined. */
export function cidrError(s: string): string | undefined {
  const m = /^([^/]+)\/(\d{1,3})$/.exec(s.trim());
  if (!m) return 'is not a CIDR (like 10.244.1.0/24)';
  const ip = m[1]!;
  const bits = Number(m[2]);
  const family = net.isIP(ip);
  if (family === 0) return `is not a CIDR: '${ip}' is not an IP address`;
  const width = family === 4 ? 32 : 128;
  if (bits > width) return `has prefix length ${bits}, more than ${width}`;
  const host = width - bits;
  const addr = ipToBigInt(ip);
  if (host > 0 && (addr & ((1n << BigInt(host)) - 1n)) !== 0n) {
    const netAddr = (addr >> BigInt(host)) << BigInt(host);
    return `has host bits set (did you mean ${bigIntToIp(netAddr, family === 4 ? 4 : 6)}/${bits}?)`;
  }
  return undefined;
}

/** First non-internal, non-link-local IPv4 address, in interface order. */
export function firstHostIPv4(ifaces: NodeJS.Dict<os.NetworkInterfaceInfo[]>): string | undefined {
  for (const addrs of Object.values(ifaces)) {
    for (const a of addrs ?? []) {
      if (a.family === 'IPv4' && !a.internal && !a.address.startsWith('169.254.') && !a.address.startsWith('127.')) {
        return a.address;
      }
    }
  }
  return undefined;
}

function isLogLevel(s: string): s is LogLevel {
  return s === 'error' || s === 'warn' || s === 'info' || s === 'debug';
}

/** klog verbosity to a winston level: V(4) and up is debug, as the k8s logging conventions. */
export function verbosityToLevel(v: number): LogLevel {
  return v >= 4 ? 'debug' : 'info';
}
