// Proxy flags, with upstream kube-proxy's names and defaults, parsed and
// validated once into a frozen object.
import net from 'node:net';
import type os from 'node:os';
import { cidrError, dns1123SubdomainError, type HostProbe, type LogLevel, parseDuration, realHost, verbosityToLevel } from '../agent/config.ts';
import type { ConfigFileInfo } from '../agent/configfile/document.ts';
import { clusterCIDRError, loadProxyConfigFile } from '../agent/configfile/proxy.ts';
import { NodeletError } from '../lib/errors.ts';
import type { ProxyMode } from './proxier.ts';
import type { BackendChoice } from './iptables/restore.ts';
import { CONNTRACK_DEFAULTS, type ConntrackConfig } from './conntracklimits.ts';
import { ipFamilyOf, ipInCIDR } from '../lib/ip.ts';
import { DEFAULT_MASQUERADE_BIT, type IPFamily } from './types.ts';
import { OOM_SCORE_ADJ_DEFAULT } from './oomscore.ts';
import { DETECT_LOCAL_MODES, type DetectLocalMode } from './localdetect.ts';

export interface BindAddress {
  readonly host: string;
  readonly port: number;
}

export interface ProxyConfig {
  readonly kubeconfig: string;
  /** The Node name this proxy serves: --hostname-override, else the host name; lowercased. */
  readonly nodeName: string;
  readonly mode: ProxyMode;
  /** As given: one CIDR, or an IPv4 and an IPv6 one comma-separated (dual-stack); see cidrOfFamily. */
  readonly clusterCIDR?: string;
  /** Upstream --masquerade-all: SNAT every connection to a cluster IP (some CNI plugins need it). */
  readonly masqueradeAll: boolean;
  /** Upstream --iptables-masquerade-bit (0..31, default 14): the fwmark bit that says "masquerade this", in iptables and nftables modes. */
  readonly masqueradeBit: number;
  /** CIDRs (either family) whose local addresses answer NodePorts; [] = every local address. */
  readonly nodePortAddresses: readonly string[];
  /** --nodeport-addresses primary: NodePorts answer on the node's primary IP (from its Node object) only. */
  readonly nodePortPrimary: boolean;
  /**
   * Upstream --bind-address (default 0.0.0.0): unless 0.0.0.0 or ::, this
   * node's primary IP, whose family is the primary one (nodeip.ts detectPrimaryFamily).
   */
  readonly bindAddress: string;
  readonly minSyncPeriodMs: number;
  readonly syncPeriodMs: number;
  /** undefined = disabled (flag set to ''). */
  readonly healthzBindAddress?: BindAddress;
  readonly metricsBindAddress?: BindAddress;
  readonly iptablesBackend: BackendChoice;
  /** Upstream --iptables-localhost-nodeports: NodePorts answer on 127.0.0.1 too. */
  readonly localhostNodePorts: boolean;
  readonly logLevel: LogLevel;
  /** Upstream --cleanup: remove every mode's rules and exit (no API server needed). */
  readonly cleanup: boolean;
  /** Upstream --init-only: write what needs full root (OOM score, conntrack settings, route_localnet) and exit. */
  readonly initOnly: boolean;
  /** Upstream --write-config-to: write this configuration as a KubeProxyConfiguration file there and exit. */
  readonly writeConfigTo?: string;
  /** Upstream --detect-local-mode: how pod traffic is told apart (ClusterCIDR by default). */
  readonly detectLocalMode: DetectLocalMode;
  /** --pod-bridge-interface (BridgeInterface mode) and --pod-interface-name-prefix (InterfaceNamePrefix mode). */
  readonly podBridgeInterface?: string;
  readonly podInterfaceNamePrefix?: string;
  /** Upstream --oom-score-adj: this process's OOM score, set at start (-1000..1000). */
  readonly oomScoreAdj: number;
  /** --conntrack-*: the kernel conntrack settings written at start. */
  readonly conntrack: ConntrackConfig;
  /** Set when --config named a file: its path and the fields that had no effect (main logs them). */
  readonly configFile?: ConfigFileInfo;
  /** Upstream --master: the API server's address, over the kubeconfig's. */
  readonly master?: string;
  /** kube-proxy flags given that nodelet accepts and ignores (main warns about each). */
  readonly ignoredFlags: readonly string[];
}

/**
 * kube-proxy flags nodelet has no use for: accepted with a warning, so that a
 * node's existing kube-proxy command line still starts (as the config file's
 * unsupported fields are). Anything else unknown is an error.
 */
export const IGNORED_UPSTREAM_FLAGS: readonly string[] = [
  'bind-address-hard-fail', 'boot-id-file', 'config-sync-period', 'feature-gates', 'profiling',
  'show-hidden-metrics-for-version', 'kube-api-burst', 'kube-api-qps', 'kube-api-content-type', 'proxy-port-range',
  'ipvs-exclude-cidrs', 'ipvs-min-sync-period', 'ipvs-scheduler', 'ipvs-strict-arp', 'ipvs-sync-period',
  'ipvs-tcp-timeout', 'ipvs-tcpfin-timeout', 'ipvs-udp-timeout', 'logging-format', 'log-flush-frequency', 'vmodule',
];

export const PROXY_DEFAULTS = Object.freeze({
  mode: 'iptables' as const,
  minSyncPeriodMs: 1000,
  syncPeriodMs: 30_000,
  healthzBindAddress: '0.0.0.0:10256',
  metricsBindAddress: '127.0.0.1:10249',
  bindAddress: '0.0.0.0',
  iptablesBackend: 'auto' as BackendChoice,
});

const FLAGS = [
  'kubeconfig',
  'hostname-override',
  'proxy-mode',
  'cluster-cidr',
  'bind-address',
  'nodeport-addresses',
  'iptables-min-sync-period',
  'iptables-sync-period',
  'healthz-bind-address',
  'metrics-bind-address',
  'iptables-backend',
  'iptables-localhost-nodeports',
  'v',
  'log-level',
  'config',
  'cleanup',
  'init-only',
  'write-config-to',
  'master',
  'conntrack-max-per-core',
  'conntrack-min',
  'conntrack-tcp-timeout-established',
  'conntrack-tcp-timeout-close-wait',
  'conntrack-tcp-be-liberal',
  'conntrack-udp-timeout',
  'conntrack-udp-timeout-stream',
  'masquerade-all',
  'iptables-masquerade-bit',
  'oom-score-adj',
  'detect-local-mode',
  'pod-bridge-interface',
  'pod-interface-name-prefix',
] as const;
type FlagName = (typeof FLAGS)[number];

function invalid(flag: string, why: string): NodeletError {
  return new NodeletError('CONFIG_INVALID', `--${flag}: ${why}`);
}

function scanFlags(argv: readonly string[], ignored: string[] = []): Map<FlagName, string> {
  const values = new Map<FlagName, string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith('-') || arg === '-' || arg === '--') {
      throw new NodeletError('CONFIG_INVALID', `unexpected argument '${arg}' (flags look like --name=value)`);
    }
    const body = arg.replace(/^--?/, '');
    const eq = body.indexOf('=');
    const given = eq >= 0 ? body.slice(0, eq) : body;
    if (IGNORED_UPSTREAM_FLAGS.includes(given)) {
      ignored.push(given);
      // Its value, when given apart (--profiling and --bind-address-hard-fail may stand alone, as pflag's booleans).
      const next = argv[i + 1];
      if (eq < 0 && next !== undefined && !next.startsWith('-') && given !== 'profiling' && given !== 'bind-address-hard-fail') i++;
      continue;
    }
    if (!(FLAGS as readonly string[]).includes(given)) throw new NodeletError('CONFIG_INVALID', `unknown flag --${given}`);
    const name = given as FlagName;
    let value: string;
    if (eq >= 0) value = body.slice(eq + 1);
    else if (BOOL_FLAGS.has(name) && (argv[i + 1] === undefined || argv[i + 1]!.startsWith('-'))) {
      value = 'true'; // a bare boolean flag, as pflag
    } else {
      const next = argv[i + 1];
      if (next === undefined || next.startsWith('--')) throw invalid(given, 'needs a value');
      value = next;
      i++;
    }
    values.set(name, value);
  }
  return values;
}

/** Flags that may stand alone, meaning true (as pflag's booleans). */
const BOOL_FLAGS: ReadonlySet<FlagName> = new Set(['iptables-localhost-nodeports', 'cleanup', 'init-only', 'conntrack-tcp-be-liberal', 'masquerade-all']);

/** "ip:port" (or a bare ip, taking `defaultPort`); '' disables. */
export function parseBindAddress(flag: string, s: string, defaultPort: number): BindAddress | undefined {
  const text = s.trim();
  if (text === '') return undefined;
  let host = text;
  let port = defaultPort;
  const m = /^(.*):(\d+)$/.exec(text);
  if (m && net.isIP(m[1]!.replace(/^\[|\]$/g, '')) !== 0) {
    host = m[1]!.replace(/^\[|\]$/g, '');
    port = Number(m[2]);
  }
  if (net.isIP(host) === 0) throw invalid(flag, `'${s}' is not an ip:port address`);
  if (port > 65535) throw invalid(flag, `port ${port} is out of range 0..65535`);
  return port === 0 ? undefined : { host, port };
}

function parseBool(flag: string, s: string): boolean {
  if (/^(true|1|t)$/i.test(s)) return true;
  if (/^(false|0|f)$/i.test(s)) return false;
  throw invalid(flag, `'${s}' is not true or false`);
}

export function parseProxyFlags(argv: readonly string[], host: HostProbe = realHost): ProxyConfig {
  const ignoredFlags: string[] = [];
  const values = scanFlags(argv, ignoredFlags);
  // The file's KubeProxyConfiguration fields go under the flags: a flag given wins.
  const configPath = values.get('config')?.trim();
  const fromFile = configPath ? loadProxyConfigFile(configPath) : undefined;
  for (const [f, v] of fromFile?.flags ?? []) if (!values.has(f)) values.set(f, v);
  const get = (f: FlagName) => values.get(f);

  const bool = (f: FlagName, dflt: boolean): boolean => {
    const raw = get(f);
    return raw === undefined ? dflt : parseBool(f, raw);
  };
  const cleanup = bool('cleanup', false);
  const initOnly = bool('init-only', false);
  const writeConfigTo = get('write-config-to')?.trim() || undefined;
  const kubeconfig = get('kubeconfig') ?? '';
  const master = get('master')?.trim() || undefined;
  if (master !== undefined && !/^https?:\/\/[^/]/.test(master)) throw invalid('master', `'${master}' is not an http(s) URL`);
  if (kubeconfig.trim() === '' && !master && !cleanup && !initOnly && !writeConfigTo) {
    throw invalid('kubeconfig', 'is required (path to the kubeconfig the proxy uses to reach the API server)');
  }

  const override = get('hostname-override');
  const nodeName = (override ?? host.hostname()).trim().toLowerCase();
  if (nodeName === '') throw invalid('hostname-override', override === undefined ? 'not set and the host name is empty' : 'is empty');
  const dnsWhy = dns1123SubdomainError(nodeName);
  if (dnsWhy) throw invalid('hostname-override', `'${nodeName}' is not a valid node name: ${dnsWhy}`);

  const modeFlag = (get('proxy-mode') ?? '').trim();
  const mode = modeFlag === '' ? PROXY_DEFAULTS.mode : modeFlag;
  if (mode !== 'iptables' && mode !== 'userspace' && mode !== 'nftables') {
    throw invalid('proxy-mode', `'${modeFlag}' is not one of iptables, userspace, nftables`);
  }

  const clusterCIDR = get('cluster-cidr')?.trim();
  if (clusterCIDR) {
    const why = clusterCIDRError(clusterCIDR);
    if (why) throw invalid('cluster-cidr', why);
  }

  const bindAddress = get('bind-address')?.trim() || PROXY_DEFAULTS.bindAddress;
  if (net.isIP(bindAddress) === 0) throw invalid('bind-address', `'${bindAddress}' is not an IP address`);

  let nodePortAddresses = (get('nodeport-addresses') ?? '').split(',').map((x) => x.trim()).filter((x) => x !== '');
  const nodePortPrimary = nodePortAddresses.includes('primary');
  if (nodePortPrimary) {
    if (nodePortAddresses.length > 1) throw invalid('nodeport-addresses', "'primary' cannot be combined with CIDRs");
    nodePortAddresses = [];
  }
  for (const c of nodePortAddresses) {
    const why = cidrError(c);
    if (why) throw invalid('nodeport-addresses', `'${c}' ${why}`);
  }

  const duration = (f: FlagName, dflt: number, min: number): number => {
    const raw = get(f);
    if (raw === undefined) return dflt;
    let ms: number;
    try {
      ms = parseDuration(raw);
    } catch (err) {
      throw invalid(f, (err as Error).message);
    }
    if (ms < min) throw invalid(f, `'${raw}' is too short (at least ${min} ms)`);
    return ms;
  };
  const minSyncPeriodMs = duration('iptables-min-sync-period', PROXY_DEFAULTS.minSyncPeriodMs, 0);
  const syncPeriodMs = duration('iptables-sync-period', PROXY_DEFAULTS.syncPeriodMs, 1);
  if (minSyncPeriodMs > syncPeriodMs) {
    throw invalid('iptables-min-sync-period', `${minSyncPeriodMs} ms is longer than --iptables-sync-period (${syncPeriodMs} ms)`);
  }

  const count = (f: FlagName, dflt: number): number => {
    const raw = get(f)?.trim();
    if (raw === undefined) return dflt;
    if (!/^\d+$/.test(raw)) throw invalid(f, `'${raw}' is not a whole number (0 or more)`);
    return Number(raw);
  };
  const seconds = (f: FlagName, dflt: number) => Math.floor(duration(f, dflt * 1000, 0) / 1000);
  const conntrack: ConntrackConfig = Object.freeze({
    maxPerCore: count('conntrack-max-per-core', CONNTRACK_DEFAULTS.maxPerCore),
    min: count('conntrack-min', CONNTRACK_DEFAULTS.min),
    tcpEstablishedTimeoutS: seconds('conntrack-tcp-timeout-established', CONNTRACK_DEFAULTS.tcpEstablishedTimeoutS),
    tcpCloseWaitTimeoutS: seconds('conntrack-tcp-timeout-close-wait', CONNTRACK_DEFAULTS.tcpCloseWaitTimeoutS),
    tcpBeLiberal: bool('conntrack-tcp-be-liberal', CONNTRACK_DEFAULTS.tcpBeLiberal),
    udpTimeoutS: seconds('conntrack-udp-timeout', CONNTRACK_DEFAULTS.udpTimeoutS),
    udpStreamTimeoutS: seconds('conntrack-udp-timeout-stream', CONNTRACK_DEFAULTS.udpStreamTimeoutS),
  });

  const healthzBindAddress = parseBindAddress('healthz-bind-address', get('healthz-bind-address') ?? PROXY_DEFAULTS.healthzBindAddress, 10256);
  const metricsBindAddress = parseBindAddress('metrics-bind-address', get('metrics-bind-address') ?? PROXY_DEFAULTS.metricsBindAddress, 10249);

  const backend = (get('iptables-backend') ?? PROXY_DEFAULTS.iptablesBackend).trim();
  if (backend !== 'auto' && backend !== 'nft' && backend !== 'legacy') throw invalid('iptables-backend', `'${backend}' is not one of auto, nft, legacy`);

  const detectRaw = (get('detect-local-mode') ?? '').trim();
  const detectLocalMode = (detectRaw === '' ? 'ClusterCIDR' : detectRaw) as DetectLocalMode;
  if (!DETECT_LOCAL_MODES.includes(detectLocalMode)) throw invalid('detect-local-mode', `'${detectRaw}' is not one of ${DETECT_LOCAL_MODES.join(', ')}`);
  const podBridgeInterface = get('pod-bridge-interface')?.trim() || undefined;
  const podInterfaceNamePrefix = get('pod-interface-name-prefix')?.trim() || undefined;
  if (detectLocalMode === 'BridgeInterface' && !podBridgeInterface) throw invalid('pod-bridge-interface', 'is required with --detect-local-mode=BridgeInterface');
  if (detectLocalMode === 'InterfaceNamePrefix' && !podInterfaceNamePrefix) {
    throw invalid('pod-interface-name-prefix', 'is required with --detect-local-mode=InterfaceNamePrefix');
  }
  for (const [flag, v] of [['pod-bridge-interface', podBridgeInterface], ['pod-interface-name-prefix', podInterfaceNamePrefix]] as const) {
    // A Linux interface name: up to 15 characters, no spaces, quotes or slashes (it goes into rules as is).
    if (v !== undefined && !/^[A-Za-z0-9_.:-]{1,15}$/.test(v)) throw invalid(flag, `'${v}' is not an interface name`);
  }

  const oomRaw = get('oom-score-adj')?.trim();
  if (oomRaw !== undefined && !/^-?\d+$/.test(oomRaw)) throw invalid('oom-score-adj', `'${oomRaw}' is not a whole number`);
  const oomScoreAdj = oomRaw === undefined ? OOM_SCORE_ADJ_DEFAULT : Number(oomRaw);
  if (oomScoreAdj < -1000 || oomScoreAdj > 1000) throw invalid('oom-score-adj', `${oomScoreAdj} is outside -1000..1000`);

  const masqueradeAll = bool('masquerade-all', false);
  const bitRaw = get('iptables-masquerade-bit')?.trim();
  if (bitRaw !== undefined && !/^\d+$/.test(bitRaw)) throw invalid('iptables-masquerade-bit', `'${bitRaw}' is not a whole number`);
  const masqueradeBit = bitRaw === undefined ? DEFAULT_MASQUERADE_BIT : Number(bitRaw);
  if (masqueradeBit > 31) throw invalid('iptables-masquerade-bit', `${masqueradeBit} is outside 0..31`);
  const localhostNodePorts = bool('iptables-localhost-nodeports', true);

  let logLevel: LogLevel = 'info';
  const v = get('v');
  if (v !== undefined) {
    if (!/^\d+$/.test(v)) throw invalid('v', `'${v}' is not a verbosity number (0..10)`);
    logLevel = verbosityToLevel(Number(v));
  }
  const lvl = get('log-level');
  if (lvl !== undefined) {
    if (lvl !== 'error' && lvl !== 'warn' && lvl !== 'info' && lvl !== 'debug') throw invalid('log-level', `'${lvl}' is not one of error, warn, info, debug`);
    logLevel = lvl;
  }

  return Object.freeze({
    kubeconfig,
    nodeName,
    mode,
    ...(clusterCIDR ? { clusterCIDR } : {}),
    masqueradeAll,
    masqueradeBit,
    nodePortAddresses: Object.freeze(nodePortAddresses),
    nodePortPrimary,
    bindAddress,
    minSyncPeriodMs,
    syncPeriodMs,
    ...(healthzBindAddress ? { healthzBindAddress: Object.freeze(healthzBindAddress) } : {}),
    ...(metricsBindAddress ? { metricsBindAddress: Object.freeze(metricsBindAddress) } : {}),
    iptablesBackend: backend,
    localhostNodePorts,
    logLevel,
    cleanup,
    initOnly,
    ...(writeConfigTo ? { writeConfigTo } : {}),
    detectLocalMode,
    ...(podBridgeInterface ? { podBridgeInterface } : {}),
    ...(podInterfaceNamePrefix ? { podInterfaceNamePrefix } : {}),
    oomScoreAdj,
    conntrack,
    ...(fromFile ? { configFile: fromFile.info } : {}),
    ...(master ? { master } : {}),
    ignoredFlags: Object.freeze(ignoredFlags),
  });
}

/** The CIDRs of a comma-separated list (or of a list) that are of `family`. */
export function cidrsOfFamily(list: string | readonly string[] | undefined, family: IPFamily): string[] {
  const all = typeof list === 'string' ? list.split(',') : (list ?? []);
  return all.map((c) => c.trim()).filter((c) => c !== '' && ipFamilyOf(c) === family);
}

/**
 * The local addresses of `family` that answer NodePorts: those inside the
 * family's --nodeport-addresses CIDRs; [] (all local addresses) when none of
 * the family are given, as upstream (a CIDR list of one family leaves the
 * other family's node ports on every address).
 */
export function nodePortIPs(cidrs: readonly string[], ifaces: NodeJS.Dict<os.NetworkInterfaceInfo[]>, family: IPFamily = 'IPv4'): string[] {
  const ours = cidrsOfFamily(cidrs, family);
  if (ours.length === 0) return [];
  const out: string[] = [];
  for (const addrs of Object.values(ifaces)) {
    for (const a of addrs ?? []) {
      if (a.family === family && ours.some((c) => ipInCIDR(a.address, c)) && !out.includes(a.address)) out.push(a.address);
    }
  }
  return out.sort();
}
