// Wires the service proxy (kube-proxy's role): Service and EndpointSlice
// informers feed a Proxier (iptables or nftables mode, wrapped by the UDP
// conntrack reconciler; or userspace mode), which starts once both informers have synced; beside it the
// healthz server (10256), the metrics server (10249) and the service
// health-check node ports. Before the first sync, the other modes' leftover
// rules are removed (proxy/cleanup.ts) and the conntrack settings written
// (proxy/conntracklimits.ts). runProxy is the `nodelet proxy`
// command; with --cleanup it only removes every mode's rules.
import type { V1EndpointSlice, V1Node, V1Service, V1ServiceCIDR } from '@kubernetes/client-node';
import { writeFile } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import { Registry } from 'prom-client';
import { type Clock, realClock } from '../lib/clock.ts';
import { describeError, NodeletError } from '../lib/errors.ts';
import { exec as realExec, type Exec } from '../lib/exec.ts';
import { collectProcessMetrics } from '../lib/processmetrics.ts';
import { Informer, kubeListWatch, type InformerHandler, type ListWatch } from '../lib/informer.ts';
import { trimEndpointSlice, trimNode, trimService, trimServiceCIDR } from './trim.ts';
import { configzBody, kubeProxyConfigurationYAML } from './configz.ts';
import { collectGarbage } from '../lib/gc.ts';
import { createLogger, type Logger } from '../lib/log.ts';
import { cidrsOfFamily, type ProxyConfig, nodePortIPs, parseProxyFlags } from './config.ts';
import { familySupport, primaryFamily, proxyFamilies } from './families.ts';
import { MetaProxier } from './metaproxier.ts';
import type { IPFamily } from './types.ts';
import { ConntrackReconciler, type SyncingProxier } from './conntrack.ts';
import {
  closeServer,
  healthCheckTargets,
  lastSyncFromRegistry,
  listen,
  ProxyHealth,
  proxyHttpHandler,
  ServiceHealthServer,
} from './healthcheck.ts';
import { IptablesProxier, ROUTE_LOCALNET, type Sysctl } from './iptables/proxier.ts';
import { newNftablesProxier } from './nftables/setup.ts';
import { type Backend, type BackendChoice, detectBackend, ExecIptables, saveRulesets } from './iptables/restore.ts';
import type { Proxier, ProxyMode } from './proxier.ts';
import { UserspaceProxier } from './userspace/proxier.ts';
import { cleanupLeftovers, leftoverModes } from './cleanup.ts';
import { applyConntrackSettings, type KernelFiles, realKernelFiles } from './conntracklimits.ts';
import { detectPrimaryFamily, fromNode, nodeHostIPs, type NodeGetter, podCIDROf, primaryNodeIPs } from './nodeip.ts';
import type { LocalDetector } from './localdetect.ts';
import { applyOomScoreAdj, type WriteFile } from './oomscore.ts';
import { watchConfigFile } from './configwatch.ts';
import { KubeNodeApi } from '../agent/nodeapi.ts';
import { type EventRecorder, KubeEventRecorder, KubeEventsApi, nodeRef } from '../agent/events.ts';
import { loadSplicer } from './userspace/splicer.ts';
import { KubeClient } from '../lib/kube/client.ts';
import { loadKubeconfig } from '../lib/kube/kubeconfig.ts';
import { logConfigWarnings } from '../agent/configfile/document.ts';

/** As kube-proxy: objects labelled for another proxy, and headless services' objects, are not ours. */
export const PROXY_LABEL_SELECTOR = '!service.kubernetes.io/service-proxy-name,!service.kubernetes.io/headless';

export interface ProxyDeps {
  kc: KubeClient;
  log: Logger;
  registry: Registry;
  clock: Clock;
  signal: AbortSignal;
  /** Runs iptables and conntrack (default lib/exec.ts). */
  exec?: Exec;
  /** Writes a sysctl (default: /proc/sys). */
  sysctl?: Sysctl;
  /** Gets this proxy's Node, for --nodeport-addresses primary (default: the API server). */
  getNode?: NodeGetter;
  /** Reads and writes the conntrack settings' files (default: /proc/sys and /sys). */
  kernelFiles?: KernelFiles;
  /** After each full sync that went through (default: a full garbage collection, lib/gc.ts). */
  afterFullSync?: () => void;
  /** Where the proxy's events about its Node go (none: not recorded). */
  events?: EventRecorder;
  /** Overrides the API list/watches (tests); without `nodes`, this node's topology labels are not watched, without `serviceCIDRs` no ServiceCIDR. */
  listWatches?: { services: ListWatch<V1Service>; slices: ListWatch<V1EndpointSlice>; nodes?: ListWatch<V1Node>; serviceCIDRs?: ListWatch<V1ServiceCIDR> };
}

/** How long the first sync waits for this proxy's Node to be listed (for its zone). */
const NODE_LIST_WAIT_MS = 5000;

export interface RunningProxy {
  stop(): Promise<void>;
  proxier: Proxier;
}

const writeSysctl: Sysctl = (key, value) => writeFile(`/proc/sys/${key.replaceAll('.', '/')}`, value);

/** The proxier, and the mode it runs in (nftables mode falls back to iptables where nft cannot run). */
interface Built {
  proxier: Proxier;
  mode: ProxyMode;
  /** The families proxied, primary first (two: dual-stack, a proxier each). */
  families: IPFamily[];
  /** The pod CIDR of each family that tells pod traffic apart (--detect-local-mode NodeCIDR), when the Node had one. */
  podCIDRs: Map<IPFamily, string>;
}

/** What one family's proxier is given besides its deps (the same in iptables and nftables modes). */
interface FamilyOptions {
  family: IPFamily;
  nodeName: string;
  nodeIPs: readonly string[];
  clusterCIDR?: string;
  masqueradeAll: boolean;
  masqueradeBit: number;
  localDetector?: LocalDetector;
  localhostNodePorts: boolean;
  minSyncPeriodMs: number;
  syncPeriodMs: number;
}

async function buildProxier(deps: ProxyDeps, cfg: ProxyConfig, exec: Exec, rulesets: Promise<ReadonlyMap<Backend, string>>): Promise<Built> {
  // Detection reads the rulesets saved at start; a backend given by flag needs no save here.
  const backendOf = async () => detectBackend(exec, cfg.iptablesBackend, cfg.iptablesBackend === 'auto' ? await rulesets : undefined);
  if (cfg.mode === 'userspace') {
    const backend = await backendOf();
    const { splicer, error } = loadSplicer();
    deps.log.info('userspace proxier', { backend, relay: splicer ? 'splice' : 'copy', ipFamily: 'IPv4' });
    if (!splicer) deps.log.warn('userspace proxy: the native splice relay is not built (make deps); copying bytes in JS at about half the throughput', { error });
    if (primaryFamily(cfg.clusterCIDR) !== 'IPv4') deps.log.warn('userspace mode proxies IPv4 services only (as upstream\'s userspace proxier did)');
    const proxier = new UserspaceProxier(
      { nodeName: cfg.nodeName, minSyncPeriodMs: cfg.minSyncPeriodMs, syncPeriodMs: cfg.syncPeriodMs },
      { iptables: new ExecIptables(exec, backend), clock: deps.clock, log: deps.log.child({ component: 'userspace' }), registry: deps.registry, splicer },
    );
    return { proxier, mode: 'userspace', families: ['IPv4'], podCIDRs: new Map() };
  }
  const afterFullSync = deps.afterFullSync ?? (() => void collectGarbage());
  const getNode = deps.getNode ?? nodeGetter(deps.kc);
  const sysctl = deps.sysctl ?? writeSysctl;
  const files = deps.kernelFiles ?? realKernelFiles;
  // The Node as got for the primary family serves the lookups below too (each asks again only when it lacks theirs).
  const { family: primary, node } = await detectPrimary(deps, cfg, getNode);
  const familyOptions = async (families: IPFamily[]): Promise<{ options: FamilyOptions[]; podCIDRs: Map<IPFamily, string> }> => {
    const primaryIPs = cfg.nodePortPrimary ? await primaryNodeIPs(getNode, cfg.nodeName, families, deps.clock, deps.log, deps.signal, node) : undefined;
    const detectors = await localDetectors(deps, cfg, getNode, families, node);
    const podCIDRs = new Map<IPFamily, string>();
    const options = families.map((family): FamilyOptions => {
      const nodeIPs = primaryIPs ? [primaryIPs.get(family)!] : nodePortIPs(cfg.nodePortAddresses, os.networkInterfaces(), family);
      if (!primaryIPs && cidrsOfFamily(cfg.nodePortAddresses, family).length > 0 && nodeIPs.length === 0) {
        throw new NodeletError('CONFIG_INVALID', `--nodeport-addresses ${cfg.nodePortAddresses.join(',')}: no local ${family} address is in these CIDRs`);
      }
      const detector = detectors.get(family);
      if (detector?.mode === 'NodeCIDR') podCIDRs.set(family, detector.cidr);
      const clusterCIDR = cidrsOfFamily(cfg.clusterCIDR, family)[0];
      return {
        family,
        nodeName: cfg.nodeName,
        nodeIPs,
        ...(clusterCIDR ? { clusterCIDR } : {}),
        masqueradeAll: cfg.masqueradeAll,
        masqueradeBit: cfg.masqueradeBit,
        ...(detector ? { localDetector: detector } : {}),
        localhostNodePorts: cfg.localhostNodePorts,
        minSyncPeriodMs: cfg.minSyncPeriodMs,
        syncPeriodMs: cfg.syncPeriodMs,
      };
    });
    return { options, podCIDRs };
  };
  const withConntrack = (inner: SyncingProxier) =>
    new ConntrackReconciler(inner, { exec, clock: deps.clock, log: deps.log.child({ component: 'conntrack', ipFamily: inner.family }), registry: deps.registry });
  const combine = (proxiers: Proxier[], families: IPFamily[]): Proxier =>
    proxiers.length === 1 ? proxiers[0]! : new MetaProxier(new Map(families.map((f, i) => [f, proxiers[i]!])));
  const announce = (mode: ProxyMode, families: IPFamily[]) =>
    deps.log.info(families.length > 1 ? 'proxy running in dual-stack mode' : 'proxy running in single-stack mode', { mode, primaryIPFamily: families[0], ipFamilies: families });

  if (cfg.mode === 'nftables') {
    // The nft command does both families; the kernel may not (as upstream).
    const families = proxyFamilies(primary, await familySupport(files, async () => true));
    checkClusterCIDRFamily(deps.log, cfg, families);
    const { options, podCIDRs } = await familyOptions(families);
    const built: SyncingProxier[] = [];
    for (const o of options) {
      // undefined when nft cannot run here: it has logged why, and iptables mode takes over.
      const nft = await newNftablesProxier({ exec, clock: deps.clock, log: deps.log, registry: deps.registry, sysctl, afterFullSync }, o);
      if (!nft) {
        deps.log.warn(built.length === 0 ? 'nftables mode unavailable, falling back to iptables mode' : `nftables mode: proxying ${families[0]} only`);
        break;
      }
      built.push(nft);
    }
    if (built.length > 0) {
      const used = families.slice(0, built.length);
      announce('nftables', used);
      return { proxier: combine(built.map(withConntrack), used), mode: 'nftables', families: used, podCIDRs };
    }
  }
  const backend = await backendOf();
  const families = proxyFamilies(primary, await familySupport(files, (f) => new ExecIptables(exec, backend, f).present()));
  checkClusterCIDRFamily(deps.log, cfg, families);
  const { options, podCIDRs } = await familyOptions(families);
  const proxiers = options.map((o) => {
    const log = deps.log.child({ component: 'iptables', ipFamily: o.family });
    log.info('iptables proxier', { backend, nodeIPs: o.nodeIPs.length ? o.nodeIPs : 'all local addresses' });
    const iptables = new ExecIptables(exec, backend, o.family);
    return withConntrack(new IptablesProxier({ iptables, clock: deps.clock, log, registry: deps.registry, sysctl, afterFullSync }, { ...o, backend }));
  });
  announce('iptables', families);
  return { proxier: combine(proxiers, families), mode: 'iptables', families, podCIDRs };
}

/**
 * --detect-local-mode as a detector per family (none: as upstream's no-op
 * one, no pod traffic is told apart). NodeCIDR waits for the Node to have a
 * pod CIDR of the primary family, and takes the others from the same Node.
 */
async function localDetectors(deps: ProxyDeps, cfg: ProxyConfig, getNode: NodeGetter, families: IPFamily[], known?: V1Node): Promise<Map<IPFamily, LocalDetector>> {
  const out = new Map<IPFamily, LocalDetector>();
  switch (cfg.detectLocalMode) {
    case 'BridgeInterface':
      for (const f of families) out.set(f, { mode: 'BridgeInterface', iface: cfg.podBridgeInterface ?? '' });
      return out;
    case 'InterfaceNamePrefix':
      for (const f of families) out.set(f, { mode: 'InterfaceNamePrefix', prefix: cfg.podInterfaceNamePrefix ?? '' });
      return out;
    case 'NodeCIDR': {
      const primary = families[0] ?? 'IPv4';
      const r = await fromNode(getNode, cfg.nodeName, (n) => (podCIDROf(n, primary) !== undefined ? n : undefined), deps.clock, deps.signal, known);
      for (const f of families) {
        const cidr = 'value' in r ? podCIDROf(r.value, f) : undefined;
        if (cidr) {
          deps.log.info('local traffic: the node\'s pod CIDR', { podCIDR: cidr, ipFamily: f });
          out.set(f, { mode: 'NodeCIDR', cidr });
        } else {
          deps.log.warn(`--detect-local-mode=NodeCIDR: the Node has no ${f} pod CIDR; ${f} pod traffic is not told apart`, { reason: 'why' in r ? r.why : `no ${f} pod CIDR` });
        }
      }
      return out;
    }
    default:
      for (const f of families) {
        const cidr = cidrsOfFamily(cfg.clusterCIDR, f)[0];
        if (cidr) out.set(f, { mode: 'ClusterCIDR', cidr });
        else deps.log.info(`no ${f} --cluster-cidr: traffic to ${f} cluster IPs from outside the cluster is not masqueraded`);
      }
      return out;
  }
}

/**
 * The primary IP family, as upstream's detectNodeIPs: --bind-address when it
 * names an address; else the family of the Node's first IP, the Node asked for
 * until it has one (up to 30 s, as upstream's NodeManager); else IPv4.
 */
async function detectPrimary(deps: ProxyDeps, cfg: ProxyConfig, getNode: NodeGetter): Promise<{ family: IPFamily; node?: V1Node }> {
  const bound = detectPrimaryFamily([], cfg.bindAddress);
  if (bound.from === 'bind-address') return { family: bound.family };
  const r = await fromNode(getNode, cfg.nodeName, (n) => (nodeHostIPs(n).length > 0 ? n : undefined), deps.clock, deps.signal);
  const node = 'value' in r ? r.value : undefined;
  const found = detectPrimaryFamily(nodeHostIPs(node), undefined);
  if (found.from === 'default') {
    deps.log.warn("can't determine this node's IP, assuming loopback (primary IP family IPv4); if this is incorrect, please set the --bind-address flag", {
      node: cfg.nodeName,
      reason: 'why' in r ? r.why : undefined,
    });
  }
  return { family: found.family, ...(node ? { node } : {}) };
}

/**
 * Upstream's checkBadIPConfig for the cluster CIDRs: all of the other family
 * is a warning, and fatal where only the primary family is proxied and local
 * traffic is told by the cluster CIDR (it could not be told at all).
 */
function checkClusterCIDRFamily(log: Logger, cfg: ProxyConfig, families: readonly IPFamily[]): void {
  const primary = families[0]!;
  const other: IPFamily = primary === 'IPv4' ? 'IPv6' : 'IPv4';
  if (cidrsOfFamily(cfg.clusterCIDR, primary).length > 0 || cidrsOfFamily(cfg.clusterCIDR, other).length === 0) return;
  const msg = `cluster is ${primary}-${families.length > 1 ? 'primary' : 'only'} but clusterCIDRs contains only ${other} addresses`;
  if (families.length === 1 && cfg.detectLocalMode === 'ClusterCIDR') throw new NodeletError('CONFIG_INVALID', msg);
  log.warn(msg, { clusterCIDR: cfg.clusterCIDR, primaryIPFamily: primary });
}

function nodeGetter(kc: KubeClient): NodeGetter {
  const api = new KubeNodeApi(kc);
  return (name) => api.getNode(name);
}

/** The iptables backends whose leftovers are looked for: the one chosen, or both when detected. */
function cleanupBackends(choice: BackendChoice): Backend[] {
  return choice === 'auto' ? ['legacy', 'nft'] : [choice];
}

/** Starts serving `handler` on a bind address; a bind failure is logged, not fatal (as kube-proxy). */
async function serve(log: Logger, what: string, addr: { host: string; port: number } | undefined, handler: http.RequestListener): Promise<http.Server | undefined> {
  if (!addr) return undefined;
  const server = http.createServer(handler);
  try {
    await listen(server, addr.host, addr.port);
    log.info(`${what} server listening`, { address: `${addr.host}:${addr.port}` });
    return server;
  } catch (err) {
    log.error(`${what} server cannot listen`, { address: `${addr.host}:${addr.port}`, error: describeError(err) });
    return undefined;
  }
}

export async function startProxy(deps: ProxyDeps, cfg: ProxyConfig): Promise<RunningProxy> {
  const { log, clock } = deps;
  const exec = deps.exec ?? realExec;
  const abort = new AbortController();
  const onOuterAbort = () => abort.abort();
  deps.signal.addEventListener('abort', onOuterAbort, { once: true });
  if (deps.signal.aborted) abort.abort();

  // One save of each backend's rules, for backend detection and the leftover cleanup.
  const backends = cleanupBackends(cfg.iptablesBackend);
  const rulesets = saveRulesets(exec, backends);
  const built = await buildProxier(deps, cfg, exec, rulesets);
  const { proxier, mode } = built;
  // The other modes' rules go while the informers list (before the first sync; failures are logged, not fatal).
  const leftovers = rulesets.then((saved) => cleanupLeftovers({ exec, log: log.child({ component: 'cleanup' }) }, leftoverModes(mode), backends, saved));
  const conntrack = applyConntrackSettings(deps.kernelFiles ?? realKernelFiles, log.child({ component: 'conntrack' }), cfg.conntrack, os.availableParallelism());
  const health = new ProxyHealth({ clock, timeoutMs: 2 * cfg.syncPeriodMs, lastSynced: lastSyncFromRegistry(deps.registry, built.families.length), registry: deps.registry });

  const lw = deps.listWatches ?? {
    services: kubeListWatch<V1Service>(deps.kc, '/api/v1/services', { labelSelector: PROXY_LABEL_SELECTOR }),
    slices: kubeListWatch<V1EndpointSlice>(deps.kc, '/apis/discovery.k8s.io/v1/endpointslices', { labelSelector: PROXY_LABEL_SELECTOR }),
  };
  // This proxy's own Node, for its zone label (topology hints), as upstream's node informer.
  const nodeLW = deps.listWatches ? deps.listWatches.nodes : kubeListWatch<V1Node>(deps.kc, '/api/v1/nodes', { fieldSelector: `metadata.name=${cfg.nodeName}` });
  const informerLog = log.child({ component: 'informer' });
  // Each object as the proxy needs it, no more (proxy/trim.ts).
  const services = new Informer<V1Service>({ name: 'services', listWatch: lw.services, clock, log: informerLog, transform: trimService });
  const slices = new Informer<V1EndpointSlice>({ name: 'endpointslices', listWatch: lw.slices, clock, log: informerLog, transform: trimEndpointSlice });
  const node = nodeLW && new Informer<V1Node>({ name: 'node', listWatch: nodeLW, clock, log: informerLog, transform: trimNode });
  // nftables mode drops traffic to unallocated addresses of the ServiceCIDRs, which it watches (as upstream; not waited for).
  const cidrLW = mode !== 'nftables' ? undefined : deps.listWatches ? deps.listWatches.serviceCIDRs : kubeListWatch<V1ServiceCIDR>(deps.kc, '/apis/networking.k8s.io/v1/servicecidrs');
  const serviceCIDRs = cidrLW && new Informer<V1ServiceCIDR>({ name: 'servicecidrs', listWatch: cidrLW, clock, log: informerLog, transform: trimServiceCIDR });
  const onServiceCIDRs = () => proxier.setServiceCIDRs([...new Set(serviceCIDRs?.list().flatMap((sc) => sc.spec?.cidrs ?? []) ?? [])]);
  serviceCIDRs?.addHandler({ onAdd: onServiceCIDRs, onUpdate: onServiceCIDRs, onDelete: onServiceCIDRs });

  // Health-check node ports follow the informers' stores, recomputed after any change (coalesced, serialized).
  const hcServer = new ServiceHealthServer({ log: log.child({ component: 'healthcheck' }), proxyHealthy: () => health.healthy() });
  let hcQueued = false;
  let hcChain: Promise<void> = Promise.resolve();
  const queueHealthChecks = () => {
    if (hcQueued || abort.signal.aborted) return;
    hcQueued = true;
    // At most once a second: the targets are computed over every service and
    // slice, and a big cluster sends thousands of events while it loads.
    setTimeout(() => {
      hcQueued = false;
      if (abort.signal.aborted) return;
      const targets = healthCheckTargets(services.list(), slices.list(), cfg.nodeName);
      hcChain = hcChain.then(() => hcServer.sync(targets)).catch((err: unknown) => {
          log.error('health-check ports sync failed', { error: describeError(err) });
        });
    }, 1000);
  };

  const svcHandler: InformerHandler<V1Service> = {
    onAdd: (s) => { proxier.onServiceAdd(s); queueHealthChecks(); },
    onUpdate: (a, b) => { proxier.onServiceUpdate(a, b); queueHealthChecks(); },
    onDelete: (s) => { proxier.onServiceDelete(s); queueHealthChecks(); },
  };
  const sliceHandler: InformerHandler<V1EndpointSlice> = {
    onAdd: (s) => { proxier.onSliceAdd(s); queueHealthChecks(); },
    onUpdate: (a, b) => { proxier.onSliceUpdate(a, b); queueHealthChecks(); },
    onDelete: (s) => { proxier.onSliceDelete(s); queueHealthChecks(); },
  };
  services.addHandler(svcHandler);
  slices.addHandler(sliceHandler);
  // NodeCIDR mode follows the Node's pod CIDRs: set after start, or changed (upstream restarts for that).
  const podCIDRs = built.podCIDRs;
  const syncEligible = (n: V1Node) => {
    if (health.syncNode(n)) {
      log.info(health.nodeEligible ? 'node eligible for load-balancer traffic again; /healthz follows the proxier' : 'node is being deleted or tainted for deletion; /healthz answers 503 so load balancers drain it', { node: cfg.nodeName });
    }
  };
  const onNode = (n: V1Node) => {
    syncEligible(n);
    proxier.onTopologyChange(n.metadata?.labels ?? {});
    if (cfg.detectLocalMode !== 'NodeCIDR' || mode === 'userspace') return;
    for (const family of built.families) {
      const cidr = podCIDROf(n, family);
      const was = podCIDRs.get(family);
      if (cidr === undefined || cidr === was) continue;
      log.info(was ? 'local traffic: the node\'s pod CIDR changed' : 'local traffic: the node has a pod CIDR now', { podCIDR: cidr, was, ipFamily: family });
      podCIDRs.set(family, cidr);
      proxier.setLocalDetector({ mode: 'NodeCIDR', cidr });
    }
  };
  // A deleted Node keeps the eligibility of its last state, as upstream.
  node?.addHandler({ onAdd: onNode, onUpdate: (_, n) => onNode(n), onDelete: (n) => { syncEligible(n); proxier.onTopologyChange({}); } });

  const healthz = await serve(log, 'healthz', cfg.healthzBindAddress, proxyHttpHandler(health, { routed: proxier }));
  const metrics = await serve(log, 'metrics', cfg.metricsBindAddress, proxyHttpHandler(health, { registry: deps.registry, mode, configz: configzBody(cfg) }));

  let proxierStarted = false;
  const stop = async () => {
    abort.abort();
    deps.signal.removeEventListener('abort', onOuterAbort);
    if (proxierStarted) await proxier.stop();
    await hcChain;
    await hcServer.close();
    for (const s of [healthz, metrics]) if (s) await closeServer(s);
  };

  services.start(abort.signal);
  slices.start(abort.signal);
  node?.start(abort.signal);
  serviceCIDRs?.start(abort.signal);
  // The first sync uses the zone when the Node is listed in time; an unlisted
  // Node (no permission to list it, say) delays nothing for longer.
  const nodeListed = node && Promise.race([node.waitForSync(abort.signal), clock.sleep(NODE_LIST_WAIT_MS, abort.signal)]);
  try {
    await Promise.all([services.waitForSync(abort.signal), slices.waitForSync(abort.signal), nodeListed, leftovers, conntrack]);
  } catch (err) {
    await stop();
    throw err;
  }
  proxier.start();
  proxierStarted = true;
  // As kube-proxy's "Starting" (action StartKubeProxy) on its Node: `kubectl describe node` lists it.
  deps.events?.event(nodeRef(cfg.nodeName), 'Normal', 'Starting', '');
  log.info('proxy started', { mode, services: services.list().length, endpointSlices: slices.list().length });
  return { stop, proxier };
}


/** `nodelet proxy [flags]`: runs until SIGTERM/SIGINT. */
export async function runProxy(argv: string[], _env: NodeJS.ProcessEnv): Promise<number> {
  const cfg = parseProxyFlags(argv);
  if (cfg.writeConfigTo) return writeConfigFile(cfg, cfg.writeConfigTo);
  if (cfg.cleanup) return runCleanup(cfg);
  if (cfg.initOnly) return runInitOnly(cfg, { kernelFiles: realKernelFiles, sysctl: writeSysctl });
  const kc = proxyClient(cfg);
  const log = createLogger(cfg.logLevel).child({ component: 'proxy', node: cfg.nodeName });
  logConfigWarnings(log, cfg.configFile);
  for (const flag of cfg.ignoredFlags) log.warn(`--${flag}: a kube-proxy flag nodelet does not use; ignored`, { flag });
  const abort = new AbortController();
  let unwatch = () => {};
  const stopped = new Promise<StopReason>((resolve) => {
    process.once('SIGTERM', () => resolve({ signal: 'SIGTERM' }));
    process.once('SIGINT', () => resolve({ signal: 'SIGINT' }));
    const file = cfg.configFile?.path;
    if (file) {
      unwatch = watchConfigFile(file, (event) => resolve({ configChanged: event }), (err) =>
        log.warn('cannot watch the config file; a change to it takes a restart', { file, error: describeError(err) }));
    }
  });
  log.info('starting', { mode: cfg.mode, apiServer: kc.server });
  await applyOomScoreAdj(cfg.oomScoreAdj, log);
  const registry = new Registry();
  // process_resident_memory_bytes and friends, as kube-proxy's /metrics has them.
  collectProcessMetrics(registry);
  const events = new KubeEventRecorder({ api: new KubeEventsApi(kc), nodeName: cfg.nodeName, component: 'kube-proxy', clock: realClock, log: log.child({ component: 'events' }) });
  const starting = startProxy({ kc, log, registry, clock: realClock, signal: abort.signal, events }, cfg);
  const first = await Promise.race([starting.then((running) => ({ running })), stopped.then((reason) => ({ reason }))]);
  const reason = 'reason' in first ? first.reason : await stopped;
  unwatch();
  if ('configChanged' in reason) {
    // As kube-proxy: exit with an error so that the supervisor starts the proxy again with the new file.
    log.error("content of the proxy server's configuration file was updated; exiting so that it is read again", { file: cfg.configFile?.path, event: reason.configChanged });
  } else log.info('stopping', { signal: reason.signal });
  if ('reason' in first) {
    // Stopped before the informers synced.
    abort.abort();
    await starting.then((r) => r.stop(), () => {});
  } else {
    await first.running.stop();
    log.info('stopped');
  }
  await events.close();
  return 'configChanged' in reason ? 1 : 0;
}

/** Why `nodelet proxy` ends: a signal (exit 0) or a change to its --config file (exit 1, as kube-proxy). */
type StopReason = { signal: string } | { configChanged: string };

/**
 * `nodelet proxy --init-only`, as kube-proxy's: what needs full root, done
 * once (an init container, say), so that the proxy itself can run with
 * CAP_NET_ADMIN only: its OOM score, the conntrack settings, and
 * route_localnet where node ports answer on localhost. No API server needed.
 * 1 when route_localnet could not be written; a refused OOM score or
 * conntrack value is logged, as at every start (and as kube-proxy does).
 */
export async function runInitOnly(
  cfg: ProxyConfig,
  deps: { kernelFiles: KernelFiles; sysctl: Sysctl; writeOomScore?: WriteFile },
  log: Logger = createLogger(cfg.logLevel).child({ component: 'proxy' }),
): Promise<number> {
  logConfigWarnings(log, cfg.configFile);
  let ok = true;
  await applyOomScoreAdj(cfg.oomScoreAdj, log, deps.writeOomScore);
  const conntrack = await applyConntrackSettings(deps.kernelFiles, log.child({ component: 'conntrack' }), cfg.conntrack, os.availableParallelism());
  if (cfg.localhostNodePorts && cfg.mode !== 'userspace') {
    try {
      await deps.sysctl(ROUTE_LOCALNET, '1');
    } catch (err) {
      log.error('cannot set route_localnet (node ports on localhost need it)', { error: describeError(err) });
      ok = false;
    }
  }
  log.info('init done', { conntrackSet: conntrack.set.length, conntrackRefused: conntrack.failed.length });
  return ok ? 0 : 1;
}

/** The API client: the kubeconfig's, with --master (upstream's) over its server; --master alone has no credentials. */
export function proxyClient(cfg: Pick<ProxyConfig, 'kubeconfig' | 'master'>): KubeClient {
  const opts = { userAgent: 'nodelet-proxy' };
  if (!cfg.master) return KubeClient.fromFile(cfg.kubeconfig, opts);
  const creds = cfg.kubeconfig.trim() ? loadKubeconfig(cfg.kubeconfig) : undefined;
  return new KubeClient({ ...creds, server: cfg.master.replace(/\/+$/, '') }, opts);
}

/** `nodelet proxy --write-config-to FILE`, as kube-proxy's: this configuration as a KubeProxyConfiguration, then exit. */
export async function writeConfigFile(cfg: ProxyConfig, file: string): Promise<number> {
  const log = createLogger(cfg.logLevel).child({ component: 'proxy' });
  try {
    await writeFile(file, kubeProxyConfigurationYAML(cfg), { mode: 0o644 });
  } catch (err) {
    throw new NodeletError('PROXY_CONFIG_WRITE_FAILED', `--write-config-to ${file}`, { cause: err });
  }
  log.info('wrote the configuration', { file });
  return 0;
}

/** `nodelet proxy --cleanup`: removes every mode's rules and exits; 1 when some could not be removed. */
export async function runCleanup(cfg: ProxyConfig, exec: Exec = realExec, log: Logger = createLogger(cfg.logLevel).child({ component: 'proxy' })): Promise<number> {
  logConfigWarnings(log, cfg.configFile);
  const report = await cleanupLeftovers({ exec, log }, leftoverModes('all'), cleanupBackends(cfg.iptablesBackend));
  log.info('cleanup done', { removed: report.removed.length, errors: report.errors.length });
  return report.errors.length > 0 ? 1 : 0;
}
