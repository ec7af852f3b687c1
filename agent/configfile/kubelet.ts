// KubeletConfiguration (kubelet.config.k8s.io/v1beta1) fields to `nodelet
// agent` flag values. Each field is validated here, with its path, by the same
// rules as its flag, so a bad value names the field and not a flag. As
// upstream's defaulting, a zero duration or a zero count means "the default".
import net from 'node:net';
import path from 'node:path';
import { cidrError, dns1123SubdomainError, parseRuntimeEndpoint } from '../config.ts';
import {
  type ConfigDocuments,
  type ConfigFileInfo,
  type ConfigWarning,
  Fields,
  KUBELET_KIND,
  type ReadFile,
  readConfigDocuments,
  readFileUtf8,
} from './document.ts';

/** The agent flags a KubeletConfiguration can set. */
export type KubeletFileFlag =
  | 'pod-manifest-path'
  | 'pod-logs-dir'
  | 'sync-frequency'
  | 'port'
  | 'healthz-port'
  | 'cluster-domain'
  | 'cluster-dns'
  | 'node-status-update-frequency'
  | 'node-status-report-frequency'
  | 'node-lease-duration-seconds'
  | 'runtime-request-timeout'
  | 'max-pods'
  | 'pod-cidr'
  | 'resolv-conf'
  | 'container-runtime-endpoint'
  | 'v';

export interface FileFlags<F extends string> {
  readonly flags: ReadonlyMap<F, string>;
  readonly info: ConfigFileInfo;
}

/** Upstream eviction signals (pkg/kubelet/eviction/api). */
export const EVICTION_SIGNALS: readonly string[] = [
  'memory.available',
  'allocatableMemory.available',
  'nodefs.available',
  'nodefs.inodesFree',
  'imagefs.available',
  'imagefs.inodesFree',
  'containerfs.available',
  'containerfs.inodesFree',
  'pid.available',
];

/** Upstream fields that nodelet accepts but does not act on. */
const UNSUPPORTED = [
  'enableServer', 'fileCheckFrequency', 'httpCheckFrequency', 'staticPodURL', 'staticPodURLHeader', 'address',
  'readOnlyPort', 'tlsCertFile', 'tlsPrivateKeyFile', 'tlsCipherSuites', 'tlsCurvePreferences', 'tlsMinVersion',
  'rotateCertificates', 'serverTLSBootstrap', 'authentication', 'authorization', 'registryPullQPS', 'registryBurst',
  'imagePullCredentialsVerificationPolicy', 'preloadedImagesVerificationAllowlist', 'eventRecordQPS', 'eventBurst',
  'enableDebuggingHandlers', 'enableContentionProfiling', 'healthzBindAddress', 'oomScoreAdj',
  'streamingConnectionIdleTimeout', 'imageMinimumGCAge', 'imageMaximumGCAge', 'imageGCHighThresholdPercent',
  'imageGCLowThresholdPercent', 'volumeStatsAggPeriod', 'kubeletCgroups', 'systemCgroups', 'cgroupRoot', 'cgroupsPerQOS',
  'cgroupDriver', 'cpuManagerPolicy', 'singleProcessOOMKill', 'cpuManagerPolicyOptions', 'cpuManagerReconcilePeriod',
  'draManagerReconcilePeriod', 'memoryManagerPolicy', 'topologyManagerPolicy', 'topologyManagerScope',
  'topologyManagerPolicyOptions', 'qosReserved', 'hairpinMode', 'podPidsLimit', 'runOnce', 'cpuCFSQuota',
  'cpuCFSQuotaPeriod', 'nodeStatusMaxImages', 'maxOpenFiles', 'contentType', 'kubeAPIQPS', 'kubeAPIBurst',
  'serializeImagePulls', 'maxParallelImagePulls', 'evictionSoft', 'evictionSoftGracePeriod',
  'evictionPressureTransitionPeriod', 'evictionMaxPodGracePeriod', 'evictionMinimumReclaim',
  'mergeDefaultEvictionSettings', 'podsPerCore', 'enableControllerAttachDetach', 'protectKernelDefaults',
  'makeIPTablesUtilChains', 'iptablesMasqueradeBit', 'iptablesDropBit', 'featureGates', 'failSwapOn', 'memorySwap',
  'containerLogMaxSize', 'containerLogMaxFiles', 'containerLogMaxWorkers', 'containerLogMonitorInterval',
  'configMapAndSecretChangeDetectionStrategy', 'systemReserved', 'kubeReserved', 'reservedSystemCPUs',
  'showHiddenMetricsForVersion', 'systemReservedCgroup', 'kubeReservedCgroup', 'enforceNodeAllocatable',
  'allowedUnsafeSysctls', 'volumePluginDir', 'providerID', 'kernelMemcgNotification', 'enableSystemLogHandler',
  'enableSystemLogQuery', 'shutdownGracePeriod', 'shutdownGracePeriodCriticalPods', 'shutdownGracePeriodByPodPriority',
  'crashLoopBackOff', 'reservedMemory', 'enableProfilingHandler', 'enableDebugFlagsHandler', 'seccompDefault',
  'memoryThrottlingFactor', 'memoryReservationPolicy', 'registerWithTaints', 'registerNode', 'tracing',
  'localStorageCapacityIsolation', 'imageServiceEndpoint', 'failCgroupV1', 'userNamespaces',
];

/** Unsupported fields whose value nodelet follows anyway (it always registers and serves). */
const NODELET_BEHAVIOUR: Readonly<Record<string, unknown>> = { registerNode: true, enableServer: true };

/** resource.Quantity syntax: a signed decimal number with an optional binary/decimal suffix or exponent. */
const QUANTITY = /^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+|Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?$/;

/** Why `value` is not an eviction threshold upstream accepts, or undefined. */
export function evictionThresholdError(value: string): string | undefined {
  const v = value.trim();
  if (v.endsWith('%')) {
    const n = Number(v.slice(0, -1));
    if (v.length === 1 || !Number.isFinite(n)) return `'${value}' is not a percentage`;
    if (n < 0 || n > 100) return `'${value}' must be between 0% and 100%`;
    return undefined;
  }
  if (!QUANTITY.test(v)) return `'${value}' is not a quantity (like 100Mi) or a percentage (like 10%)`;
  if (v.startsWith('-') || Number(v.replace(/[a-zA-Z]+$/, '')) === 0) return `'${value}' must be positive`;
  return undefined;
}

/** Maps a KubeletConfiguration document to flag values; throws CONFIG_INVALID with the field path. */
export function kubeletFileFlags(doc: Record<string, unknown>, file: string): FileFlags<KubeletFileFlag> {
  const warnings: ConfigWarning[] = [];
  const f = new Fields(file, KUBELET_KIND, doc, warnings);
  const flags = new Map<KubeletFileFlag, string>();
  f.skip(['apiVersion', 'kind']);

  const absPath = (key: string, flag: KubeletFileFlag) => {
    const v = f.string(key);
    if (v === undefined || v === '') return;
    if (!path.isAbsolute(v)) throw f.fail(key, `'${v}' is not an absolute path`);
    flags.set(flag, v);
  };
  // Flag rules: at least 1s. Zero is upstream's "default".
  const duration = (key: string, flag: KubeletFileFlag) => {
    const ms = f.duration(key);
    if (ms === undefined || ms === 0) return;
    if (ms < 1000) throw f.fail(key, `'${f.string(key)}' is too short (at least 1s)`);
    flags.set(flag, `${ms}ms`);
  };
  const int = (key: string, flag: KubeletFileFlag, min: number, max: number, zeroIsDefault: boolean) => {
    const n = f.int(key);
    if (n === undefined || (n === 0 && zeroIsDefault)) return;
    if (n < min || n > max) throw f.fail(key, `${n} is out of range ${min}..${max}`);
    flags.set(flag, String(n));
  };

  absPath('staticPodPath', 'pod-manifest-path');
  absPath('podLogsDir', 'pod-logs-dir');
  duration('syncFrequency', 'sync-frequency');
  int('port', 'port', 1, 65535, true);
  // A pointer upstream: 0 is set, and disables the endpoint.
  int('healthzPort', 'healthz-port', 0, 65535, false);

  const domain = f.string('clusterDomain')?.trim().replace(/\.$/, '');
  if (domain) {
    const why = dns1123SubdomainError(domain);
    if (why) throw f.fail('clusterDomain', `'${domain}' ${why}`);
    flags.set('cluster-domain', domain);
  }
  const dns = f.stringList('clusterDNS');
  if (dns && dns.length > 0) {
    dns.forEach((ip, i) => {
      if (net.isIP(ip.trim()) === 0) throw f.fail(`clusterDNS[${i}]`, `'${ip}' is not an IP address`);
    });
    flags.set('cluster-dns', dns.map((ip) => ip.trim()).join(','));
  }

  duration('nodeStatusUpdateFrequency', 'node-status-update-frequency');
  duration('nodeStatusReportFrequency', 'node-status-report-frequency');
  int('nodeLeaseDurationSeconds', 'node-lease-duration-seconds', 1, 3600, true);
  duration('runtimeRequestTimeout', 'runtime-request-timeout');
  int('maxPods', 'max-pods', 1, 1_000_000, true);

  const podCIDR = f.string('podCIDR')?.trim();
  if (podCIDR) {
    const why = cidrError(podCIDR);
    if (why) throw f.fail('podCIDR', `'${podCIDR}' ${why}`);
    flags.set('pod-cidr', podCIDR);
  }
  // A pointer upstream: '' is set, and means no resolver file.
  const resolvConf = f.string('resolvConf');
  if (resolvConf !== undefined) flags.set('resolv-conf', resolvConf);

  const endpoint = f.string('containerRuntimeEndpoint');
  if (endpoint) {
    try {
      parseRuntimeEndpoint(endpoint);
    } catch (err) {
      throw f.fail('containerRuntimeEndpoint', (err as Error).message.replace(/^--[\w-]+: /, ''));
    }
    flags.set('container-runtime-endpoint', endpoint);
  }

  const evictionHard = f.stringMap('evictionHard');
  if (evictionHard && Object.keys(evictionHard).length > 0) {
    for (const [signal, value] of Object.entries(evictionHard)) {
      if (!EVICTION_SIGNALS.includes(signal)) throw f.fail(`evictionHard[${signal}]`, `'${signal}' is not an eviction signal (${EVICTION_SIGNALS.join(', ')})`);
      const why = evictionThresholdError(value);
      if (why) throw f.fail(`evictionHard[${signal}]`, why);
    }
    f.warn('evictionHard', 'accepted but not enforced: nodelet does not evict pods under node pressure yet');
  }

  readLogging(f, (v) => flags.set('v', String(v)));
  // Values that are what nodelet does anyway are not worth a warning.
  for (const [key, same] of Object.entries(NODELET_BEHAVIOUR)) if (doc[key] === same) f.skip([key]);
  f.unsupported(UNSUPPORTED);
  f.finish();
  return { flags, info: Object.freeze({ path: file, warnings: Object.freeze(warnings) }) };
}

/** logging (component-base LoggingConfiguration): verbosity maps to -v; nodelet always writes JSON. */
export function readLogging(parent: Fields, setVerbosity: (v: number) => void): void {
  const logging = parent.object('logging');
  if (!logging) return;
  const v = logging.int('verbosity');
  if (v !== undefined) {
    if (v < 0) throw logging.fail('verbosity', `${v} is negative`);
    setVerbosity(v);
  }
  const format = logging.string('format');
  if (format !== undefined && format !== '' && format !== 'json') {
    if (format !== 'text') throw logging.fail('format', `'${format}' is not text or json`);
    logging.warn('format', 'nodelet always logs JSON; ignored');
  }
  logging.unsupported(['flushFrequency', 'vmodule', 'options']);
  logging.finish();
}

/** The KubeletConfiguration of `file` as flag values; no document = no values. */
export function kubeletFlagsFromDocuments(docs: ConfigDocuments, file: string): FileFlags<KubeletFileFlag> {
  if (!docs.kubelet) return { flags: new Map(), info: Object.freeze({ path: file, warnings: Object.freeze([]) }) };
  return kubeletFileFlags(docs.kubelet, file);
}

export function loadKubeletConfigFile(file: string, read: ReadFile = readFileUtf8): FileFlags<KubeletFileFlag> {
  return kubeletFlagsFromDocuments(readConfigDocuments(file, read), file);
}
