// KubeProxyConfiguration (kubeproxy.config.k8s.io/v1alpha1) fields to `nodelet
// proxy` flag values, validated here with their paths by the rules of the
// flags. As upstream's defaulting, a zero sync period or '' means "the default".
import net from 'node:net';
import { ipFamilyOf } from '../../lib/ip.ts';
import { cidrError, dns1123SubdomainError, parseDuration } from '../config.ts';
import {
  type ConfigDocuments,
  type ConfigWarning,
  Fields,
  PROXY_KIND,
  type ReadFile,
  readConfigDocuments,
  readFileUtf8,
} from './document.ts';
import { type FileFlags, readLogging } from './kubelet.ts';
import { DETECT_LOCAL_MODES } from '../../proxy/localdetect.ts';

/** The proxy flags a KubeProxyConfiguration can set. */
export type ProxyFileFlag =
  | 'kubeconfig'
  | 'hostname-override'
  | 'proxy-mode'
  | 'cluster-cidr'
  | 'bind-address'
  | 'nodeport-addresses'
  | 'iptables-min-sync-period'
  | 'iptables-sync-period'
  | 'healthz-bind-address'
  | 'metrics-bind-address'
  | 'iptables-localhost-nodeports'
  | 'conntrack-max-per-core'
  | 'conntrack-min'
  | 'conntrack-tcp-timeout-established'
  | 'conntrack-tcp-timeout-close-wait'
  | 'conntrack-tcp-be-liberal'
  | 'conntrack-udp-timeout'
  | 'conntrack-udp-timeout-stream'
  | 'masquerade-all'
  | 'iptables-masquerade-bit'
  | 'oom-score-adj'
  | 'detect-local-mode'
  | 'pod-bridge-interface'
  | 'pod-interface-name-prefix'
  | 'v';

const MODES = ['iptables', 'nftables', 'userspace'];

const UNSUPPORTED = [
  'featureGates', 'bindAddressHardFail', 'enableProfiling', 'showHiddenMetricsForVersion', 'ipvs',
  'winkernel', 'configSyncPeriod', 'portRange',
  'windowsRunAsService',
];

/** Why `s` is not what --healthz-bind-address/--metrics-bind-address take (ip or ip:port), or undefined. */
export function bindAddressError(s: string): string | undefined {
  const text = s.trim();
  let host = text;
  let port = 0;
  const m = /^(.*):(\d+)$/.exec(text);
  if (m && net.isIP(m[1]!.replace(/^\[|\]$/g, '')) !== 0) {
    host = m[1]!.replace(/^\[|\]$/g, '');
    port = Number(m[2]);
  }
  if (net.isIP(host) === 0) return `'${s}' is not an ip:port address`;
  if (port > 65535) return `port ${port} is out of range 0..65535`;
  return undefined;
}

/**
 * Why a --cluster-cidr value is not usable, or undefined: one CIDR, or two of
 * different families comma-separated (a dual-stack cluster's, as upstream).
 */
export function clusterCIDRError(text: string): string | undefined {
  const list = text.split(',').map((c) => c.trim());
  if (list.length > 2) return `'${text}': at most one CIDR per IP family`;
  for (const c of list) {
    const why = cidrError(c);
    if (why) return `'${c}' ${why}`;
  }
  if (list.length === 2 && ipFamilyOf(list[0]!) === ipFamilyOf(list[1]!)) return `'${text}': a dual-stack value needs one IPv4 and one IPv6 CIDR`;
  return undefined;
}

function cidrWhy(c: string): string | undefined {
  const why = cidrError(c);
  return why ? `'${c}' ${why}` : undefined;
}

/** Maps a KubeProxyConfiguration document to flag values; throws CONFIG_INVALID with the field path. */
export function proxyFileFlags(doc: Record<string, unknown>, file: string): FileFlags<ProxyFileFlag> {
  const warnings: ConfigWarning[] = [];
  const f = new Fields(file, PROXY_KIND, doc, warnings);
  const flags = new Map<ProxyFileFlag, string>();
  f.skip(['apiVersion', 'kind']);

  const client = f.object('clientConnection');
  if (client) {
    const kubeconfig = client.string('kubeconfig');
    if (kubeconfig) flags.set('kubeconfig', kubeconfig);
    client.unsupported(['acceptContentTypes', 'contentType', 'qps', 'burst']);
    client.finish();
  }

  const hostname = f.string('hostnameOverride')?.trim().toLowerCase();
  if (hostname) {
    const why = dns1123SubdomainError(hostname);
    if (why) throw f.fail('hostnameOverride', `'${hostname}' is not a valid node name: ${why}`);
    flags.set('hostname-override', hostname);
  }

  const mode = f.string('mode')?.trim();
  if (mode) {
    if (!MODES.includes(mode)) throw f.fail('mode', `'${mode}' is not supported by nodelet (${MODES.join(', ')})`);
    flags.set('proxy-mode', mode);
  }

  const clusterCIDR = f.string('clusterCIDR')?.trim();
  if (clusterCIDR) {
    const why = clusterCIDRError(clusterCIDR);
    if (why) throw f.fail('clusterCIDR', why);
    flags.set('cluster-cidr', clusterCIDR);
  }

  const bindAddress = f.string('bindAddress')?.trim();
  if (bindAddress) {
    if (net.isIP(bindAddress) === 0) throw f.fail('bindAddress', `'${bindAddress}' is not an IP address`);
    flags.set('bind-address', bindAddress);
  }

  const addresses = f.stringList('nodePortAddresses');
  if (addresses && addresses.length > 0) {
    const cidrs: string[] = [];
    let all = false;
    addresses.forEach((raw, i) => {
      const a = raw.trim();
      // Upstream keywords: 'all' is nodelet's default (every local address); 'localhost' is loopback;
      // 'primary' the node's primary IP, alone.
      if (a === 'all') all = true;
      else if (a === 'localhost') cidrs.push('127.0.0.0/8');
      else if (a === 'primary') {
        if (addresses.length > 1) throw f.fail(`nodePortAddresses[${i}]`, "'primary' cannot be combined with other entries");
        cidrs.push('primary');
      } else {
        const why = cidrWhy(a);
        if (why) throw f.fail(`nodePortAddresses[${i}]`, why);
        cidrs.push(a);
      }
    });
    if (!all) flags.set('nodeport-addresses', cidrs.join(','));
  }

  for (const key of ['healthzBindAddress', 'metricsBindAddress'] as const) {
    const v = f.string(key);
    if (!v) continue;
    const why = bindAddressError(v);
    if (why) throw f.fail(key, why);
    flags.set(key === 'healthzBindAddress' ? 'healthz-bind-address' : 'metrics-bind-address', v.trim());
  }

  const detectMode = f.string('detectLocalMode')?.trim();
  if (detectMode) {
    if (!(DETECT_LOCAL_MODES as readonly string[]).includes(detectMode)) throw f.fail('detectLocalMode', `'${detectMode}' is not one of ${DETECT_LOCAL_MODES.join(', ')}`);
    flags.set('detect-local-mode', detectMode);
  }
  const detect = f.object('detectLocal');
  if (detect) {
    const bridge = detect.string('bridgeInterface')?.trim();
    if (bridge) flags.set('pod-bridge-interface', bridge);
    const prefix = detect.string('interfaceNamePrefix')?.trim();
    if (prefix) flags.set('pod-interface-name-prefix', prefix);
    detect.finish();
  }
  const oom = f.int('oomScoreAdj');
  if (oom !== undefined) {
    if (oom < -1000 || oom > 1000) throw f.fail('oomScoreAdj', `${oom} is outside -1000..1000`);
    flags.set('oom-score-adj', String(oom));
  }
  readModeSections(f, flags);
  readConntrack(f, flags);
  readLogging(f, (v) => flags.set('v', String(v)));
  f.unsupported(UNSUPPORTED);
  f.finish();
  return { flags, info: Object.freeze({ path: file, warnings: Object.freeze(warnings) }) };
}

/**
 * iptables.* and nftables.*: nodelet has one pair of sync periods, one
 * masqueradeAll and one masqueradeBit for every mode, so either section sets
 * them; iptables wins where both are given.
 */
function readModeSections(f: Fields, flags: Map<ProxyFileFlag, string>): void {
  const periods: Record<'syncPeriod' | 'minSyncPeriod', { ms: number; field: Fields } | undefined> = { syncPeriod: undefined, minSyncPeriod: undefined };
  let masqueradeAll: { value: boolean; field: Fields } | undefined;
  let masqueradeBit: { value: number; field: Fields } | undefined;
  for (const section of ['iptables', 'nftables'] as const) {
    const s = f.object(section);
    if (!s) continue;
    for (const key of ['syncPeriod', 'minSyncPeriod'] as const) {
      const ms = s.duration(key);
      if (ms === undefined || ms === 0) continue; // 0 is upstream's "default"
      const have = periods[key];
      if (!have) periods[key] = { ms, field: s };
      else if (have.ms !== ms) s.warn(key, `nodelet uses one ${key} for every mode and takes ${have.field.field(key)}; ignored`);
    }
    const masq = s.bool('masqueradeAll');
    if (masq !== undefined) {
      if (!masqueradeAll) masqueradeAll = { value: masq, field: s };
      else if (masqueradeAll.value !== masq) s.warn('masqueradeAll', `nodelet uses one masqueradeAll for every mode and takes ${masqueradeAll.field.field('masqueradeAll')}; ignored`);
    }
    if (section === 'iptables') {
      const lnp = s.bool('localhostNodePorts');
      if (lnp !== undefined) flags.set('iptables-localhost-nodeports', String(lnp));
      s.unsupported(['snatNodeInternalIP']);
    }
    const bit = s.int('masqueradeBit');
    if (bit !== undefined) {
      if (bit < 0 || bit > 31) throw s.fail('masqueradeBit', `${bit} is outside 0..31`);
      if (!masqueradeBit) masqueradeBit = { value: bit, field: s };
      else if (masqueradeBit.value !== bit) s.warn('masqueradeBit', `nodelet uses one masqueradeBit for every mode and takes ${masqueradeBit.field.field('masqueradeBit')}; ignored`);
    }
    s.finish();
  }
  const sync = periods.syncPeriod;
  const min = periods.minSyncPeriod;
  if (sync && min && min.ms > sync.ms) {
    throw min.field.fail('minSyncPeriod', `${min.ms} ms is longer than ${sync.field.field('syncPeriod')} (${sync.ms} ms)`);
  }
  if (sync) flags.set('iptables-sync-period', `${sync.ms}ms`);
  if (min) flags.set('iptables-min-sync-period', `${min.ms}ms`);
  if (masqueradeAll) flags.set('masquerade-all', String(masqueradeAll.value));
  if (masqueradeBit) flags.set('iptables-masquerade-bit', String(masqueradeBit.value));
}

/**
 * conntrack.*: unlike the sync periods, 0 here is a value (leave the kernel's
 * setting), as upstream's pointer fields; a field left out takes the default.
 */
function readConntrack(f: Fields, flags: Map<ProxyFileFlag, string>): void {
  const c = f.object('conntrack');
  if (!c) return;
  for (const [key, flag] of [['maxPerCore', 'conntrack-max-per-core'], ['min', 'conntrack-min']] as const) {
    const v = c.int(key);
    if (v === undefined) continue;
    if (v < 0) throw c.fail(key, `${v} is negative`);
    flags.set(flag, String(v));
  }
  const durations = [
    ['tcpEstablishedTimeout', 'conntrack-tcp-timeout-established'],
    ['tcpCloseWaitTimeout', 'conntrack-tcp-timeout-close-wait'],
    ['udpTimeout', 'conntrack-udp-timeout'],
    ['udpStreamTimeout', 'conntrack-udp-timeout-stream'],
  ] as const;
  for (const [key, flag] of durations) {
    // kubeadm writes "" for a timeout it leaves to the default.
    const raw = c.string(key)?.trim();
    if (!raw) continue;
    let ms: number;
    try {
      ms = parseDuration(raw);
    } catch (err) {
      throw c.fail(key, (err as Error).message);
    }
    flags.set(flag, `${ms}ms`);
  }
  const liberal = c.bool('tcpBeLiberal');
  if (liberal !== undefined) flags.set('conntrack-tcp-be-liberal', String(liberal));
  c.finish();
}

/** The KubeProxyConfiguration of `file` as flag values; no document = no values. */
export function proxyFlagsFromDocuments(docs: ConfigDocuments, file: string): FileFlags<ProxyFileFlag> {
  if (!docs.proxy) return { flags: new Map(), info: Object.freeze({ path: file, warnings: Object.freeze([]) }) };
  return proxyFileFlags(docs.proxy, file);
}

export function loadProxyConfigFile(file: string, read: ReadFile = readFileUtf8): FileFlags<ProxyFileFlag> {
  return proxyFlagsFromDocuments(readConfigDocuments(file, read), file);
}
