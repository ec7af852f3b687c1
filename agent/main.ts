// Wires the node agent from flags: KubeConfig (loaded explicitly; client-node's
// loadFromDefault would silently fall back to localhost:8080), the Docker client,
// the node controller, the pod machinery (informer -> workers -> syncer, PLEG,
// status manager, volumes, events), and a healthz endpoint. Runs until
// SIGTERM/SIGINT.
import type { V1Pod, V1Secret } from '@kubernetes/client-node';
import Docker from 'dockerode';
import { readFileSync, statfsSync } from 'node:fs';
import http from 'node:http';
import { Registry } from 'prom-client';
import { watchContainerEvents } from '../cri/docker/events.ts';
import { enableHairpin } from '../cri/docker/hairpin.ts';
import { DEFAULT_PAUSE_IMAGE, DockerRuntime } from '../cri/docker/runtime.ts';
import { instrumentRuntime, RuntimeMetrics } from './runtimemetrics.ts';
import { realClock, type Clock } from '../lib/clock.ts';
import { describeError } from '../lib/errors.ts';
import { exec } from '../lib/exec.ts';
import { collectProcessMetrics } from '../lib/processmetrics.ts';
import { Informer, kubeListWatch } from '../lib/informer.ts';
import { createLogger, type Logger } from '../lib/log.ts';
import { parseAgentFlags, type AgentConfig } from './config.ts';
import { containerRef, KubeEventRecorder, KubeEventsApi, podRef } from './events.ts';
import { readMachineInfo, type MachineInfo } from './machine.ts';
import { NodeController } from './node.ts';
import { KubeNodeApi } from './nodeapi.ts';
import { makeEnvironment } from './pod/env.ts';
import { expandContainerCommandAndArgs } from './pod/expand.ts';
import { RuntimeHookRunner } from './pod/hooks.ts';
import { KubePodObjects } from './pod/kubeobjects.ts';
import { GarbageCollector } from './pod/gc.ts';
import { PodManager } from './pod/manager.ts';
import { Pleg } from './pod/pleg.ts';
import { KubePodApi } from './pod/podapi.ts';
import { parseResolvConf, type HostDNS } from './pod/podconfig.ts';
import { RuntimePodCache } from './pod/runtimepods.ts';
import { StatusManager } from './pod/statusmanager.ts';
import { ProxyTrafficGate } from './pod/trafficgate.ts';
import { PodSyncer } from './pod/syncer.ts';
import { ProbeManager } from './prober/manager.ts';
import { SystemMounter } from './volumes/mounter.ts';
import { KubeClaimObjects } from './volumes/kubeclaims.ts';
import { VolumeManager } from './volumes/manager.ts';
import { KubeAuthApi, RequestAuthenticator, RequestAuthorizer } from './server/auth.ts';
import { ensureServingCert } from './server/cert.ts';
import { KubeCsrApi, ServingCertManager, servingIdentity, servingTLS } from './server/servingcert.ts';
import type { NodePods } from './server/routes.ts';
import { KubeletServer } from './server/server.ts';
import { KubeClient } from '../lib/kube/client.ts';
import { readMaterial } from '../lib/kube/kubeconfig.ts';
import { logConfigWarnings } from './configfile/document.ts';

/** The Kubernetes release whose API nodelet speaks (cluster/versions.env). */
export const KUBELET_VERSION = 'v1.37.2';


export async function runAgent(argv: string[], _env: NodeJS.ProcessEnv): Promise<number> {
  const cfg = parseAgentFlags(argv);
  const kc = KubeClient.fromFile(cfg.kubeconfig, { userAgent: `nodelet/${KUBELET_VERSION}` });
  const log = createLogger(cfg.logLevel).child({ node: cfg.nodeName });
  logConfigWarnings(log, cfg.configFile);
  // A busy dockerd can take long to start many containers; a short client
  // timeout would fail calls that then succeed anyway, and the retries pile up.
  const docker = new Docker({ socketPath: cfg.runtimeSocketPath, timeout: cfg.runtimeRequestTimeoutMs });
  const registry = new Registry();
  collectProcessMetrics(registry);
  const runtime = instrumentRuntime(new DockerRuntime(docker, { hairpin: (pid) => enableHairpin(exec, pid) }), new RuntimeMetrics(registry));
  const machine = readMachineInfo(cfg.rootDir);
  const controller = new NodeController({
    api: new KubeNodeApi(kc),
    runtime,
    clock: realClock,
    log: log.child({ component: 'node' }),
    config: cfg,
    machine,
    kubeletVersion: KUBELET_VERSION,
  });
  const abort = new AbortController();
  let healthz: http.Server | undefined;
  if (cfg.healthzPort > 0) {
    healthz = http.createServer((req, res) => {
      const ok = req.url === '/healthz';
      res.writeHead(ok ? 200 : 404, { 'content-type': 'text/plain' }).end(ok ? 'ok' : 'not found');
    });
    healthz.on('error', (err) => log.warn('healthz server failed', { err: describeError(err), port: cfg.healthzPort }));
    healthz.listen(cfg.healthzPort, '127.0.0.1');
  }
  log.info('starting', { version: KUBELET_VERSION, apiServer: kc.server, runtime: cfg.containerRuntimeEndpoint });
  controller.start(abort.signal);
  const pods = startPods({ kc, cfg, docker, runtime, machine, clock: realClock, log, registry, signal: abort.signal });
  const kubeletApi = cfg.port > 0 ? await startKubeletServer(kc, cfg, runtime, pods.nodePods, registry, log, abort.signal) : undefined;
  await new Promise<void>((resolve) => {
    const onSignal = (sig: string) => {
      log.info('stopping', { signal: sig });
      resolve();
    };
    process.once('SIGTERM', () => onSignal('SIGTERM'));
    process.once('SIGINT', () => onSignal('SIGINT'));
  });
  abort.abort();
  await pods.stop();
  await controller.stop();
  await kubeletApi?.close();
  healthz?.close();
  log.info('stopped');
  return 0;
}

interface PodDeps {
  kc: KubeClient;
  cfg: AgentConfig;
  docker: Docker;
  runtime: DockerRuntime;
  machine: MachineInfo;
  clock: Clock;
  log: Logger;
  registry: Registry;
  signal: AbortSignal;
}

/** The resolver the host uses (for dnsPolicy Default); empty when it cannot be read. */
function hostDNS(file: string): HostDNS {
  if (!file) return { servers: [], searches: [], options: [] };
  try {
    return parseResolvConf(readFileSync(file, 'utf8'));
  } catch {
    return { servers: [], searches: [], options: [] };
  }
}

/**
 * The kubelet HTTPS API on --port, with a serving certificate issued through
 * a kubelet-serving CSR (self-signed until then, at most 5 s at first start);
 * client certificates must chain to the cluster CA of our kubeconfig. A
 * failure to start is logged, not fatal: pods keep running without it.
 */
async function startKubeletServer(kc: KubeClient, cfg: AgentConfig, runtime: DockerRuntime, nodePods: NodePods, registry: Registry, log: Logger, signal: AbortSignal): Promise<KubeletServer | undefined> {
  const slog = log.child({ component: 'kubelet-server' });
  try {
    const clientCA = readMaterial(kc.credentials.ca);
    if (!clientCA) throw new Error('the kubeconfig names no cluster CA to verify client certificates with');
    // The serving certificate through a kubelet-serving CSR; the self-signed one until it is issued.
    const node = { nodeName: cfg.nodeName, hostname: cfg.hostname, nodeIP: cfg.nodeIP };
    const certs = new ServingCertManager({ api: new KubeCsrApi(kc), clock: realClock, log: slog, rootDir: cfg.rootDir, identity: servingIdentity(node) });
    const tls = await servingTLS(certs, 5000, signal, async () => {
      const kp = await ensureServingCert(cfg.rootDir, node);
      return { cert: readFileSync(kp.certPath), key: readFileSync(kp.keyPath) };
    });
    const authApi = new KubeAuthApi(kc);
    const server = new KubeletServer(
      {
        nodeName: cfg.nodeName,
        pods: nodePods,
        runtime,
        authn: new RequestAuthenticator(authApi, realClock),
        authz: new RequestAuthorizer(authApi, realClock),
        registry,
        clock: realClock,
        log: slog,
        rootDir: cfg.rootDir,
      },
      { cert: tls.cert, key: tls.key, clientCA },
    );
    tls.whenIssued((c) => {
      server.setCertificate(c.certPem, c.keyPem);
      slog.info('kubelet API now serving the issued certificate', { expires: c.cert.validTo });
    });
    const port = await server.listen(cfg.port);
    slog.info('kubelet API listening', { port, issuedCertificate: tls.issued });
    return server;
  } catch (err) {
    slog.error('kubelet API not started', { port: cfg.port, err: describeError(err) });
    return undefined;
  }
}

function startPods(d: PodDeps): { stop(): Promise<void>; nodePods: NodePods } {
  const { kc, cfg, runtime, clock, log } = d;
  const objects = new KubePodObjects(kc, { clock });
  const allocatable = { cpu: String(d.machine.cpuCores), memory: String(d.machine.memoryBytes), pods: String(cfg.maxPods) };
  const volumes = new VolumeManager({
    rootDir: cfg.rootDir,
    objects,
    mounter: new SystemMounter(exec),
    clock,
    log,
    allocatable: () => ({ cpuMillis: d.machine.cpuCores * 1000, memoryBytes: d.machine.memoryBytes }),
    claims: new KubeClaimObjects(kc),
  });
  const recorder = new KubeEventRecorder({ api: new KubeEventsApi(kc), nodeName: cfg.nodeName, clock, log: log.child({ component: 'events' }) });
  const podApi = new KubePodApi(kc);
  const statuses = new StatusManager({ api: podApi, log: log.child({ component: 'status' }) });
  const cache = new RuntimePodCache(runtime, log.child({ component: 'runtime-pods' }));
  const prober = new ProbeManager({
    runtime,
    clock,
    log: log.child({ component: 'prober' }),
    registry: d.registry,
    events: { podEvent: (pod, c, type, reason, message) => recorder.event(c ? containerRef(pod, c.name) : podRef(pod), type, reason, message) },
    onChange: (uid) => manager?.onRuntimeChange(uid),
    hostIPs: [cfg.nodeIP],
  });
  const syncer = new PodSyncer(
    {
      runtime,
      clock,
      log: log.child({ component: 'pods' }),
      events: { podEvent: (pod, c, type, reason, message) => recorder.event(c ? containerRef(pod, c.name) : podRef(pod), type, reason, message) },
      statuses,
      podApi,
      env: async (pod, c, ctx) =>
        (await makeEnvironment(pod, c, { objects, podIPs: ctx.podIPs, hostIPs: ctx.hostIPs, nodeName: cfg.nodeName, nodeAllocatable: { cpu: allocatable.cpu, memory: allocatable.memory } })).env,
      expand: (c, env) => expandContainerCommandAndArgs(c, env),
      volumes,
      hooks: new RuntimeHookRunner({ runtime, clock }),
      pullSecrets: async (pod: V1Pod) => {
        const ns = pod.metadata?.namespace ?? 'default';
        const found = await Promise.all((pod.spec?.imagePullSecrets ?? []).map((r) => (r.name ? objects.getSecret(ns, r.name) : undefined)));
        return found.filter((s): s is V1Secret => s !== undefined);
      },
      probes: (uid) => prober.state(uid),
      onSynced: (pod, rt) => prober.syncPod(pod, rt),
      onDone: (uid) => prober.removePod(uid),
      statusTarget: (pod) => manager?.statusTarget(pod),
      ...(cfg.serviceProxyURL ? { trafficGate: new ProxyTrafficGate({ baseURL: cfg.serviceProxyURL, clock, log: log.child({ component: 'trafficgate' }) }) } : {}),
    },
    {
      nodeName: cfg.nodeName,
      hostIPs: [cfg.nodeIP],
      podLogsDir: cfg.podLogsDir,
      clusterDNS: cfg.clusterDNS,
      clusterDomain: cfg.clusterDomain,
      hostDNS: () => hostDNS(cfg.resolvConf),
      memoryCapacityBytes: d.machine.memoryBytes,
    },
  );
  const informer = new Informer<V1Pod>({
    name: 'pods',
    listWatch: kubeListWatch<V1Pod>(kc, '/api/v1/pods', { fieldSelector: `spec.nodeName=${cfg.nodeName}` }),
    clock,
    log: log.child({ component: 'pod-informer' }),
  });
  let manager: PodManager | undefined;
  const nodeApi = new KubeNodeApi(kc);
  let nodeUid = '';
  const pleg = new Pleg({ cache, clock, log: log.child({ component: 'pleg' }), registry: d.registry, onPodChanged: (uid) => manager?.onRuntimeChange(uid) });
  manager = new PodManager({
    informer,
    cache,
    pleg,
    syncer,
    statuses,
    clock,
    log: log.child({ component: 'pod-manager' }),
    allocatable: () => allocatable,
    syncFrequencyMs: cfg.syncFrequencyMs,
    podApi,
    nodeName: cfg.nodeName,
    nodeUid: async () => {
      nodeUid ||= (await nodeApi.getNode(cfg.nodeName).catch(() => undefined))?.metadata?.uid ?? '';
      return nodeUid;
    },
    staticPodPath: cfg.staticPodPath,
  });
  informer.start(d.signal);
  pleg.start(d.signal);
  manager.start(d.signal);
  new GarbageCollector({
    runtime,
    clock,
    log: log.child({ component: 'gc' }),
    pods: () => cache.pods(),
    imageFs: async () => {
      const mount = (await runtime.imageFsInfo()).imageFilesystems[0]?.fsId.mountpoint;
      if (!mount) return undefined;
      // The filesystem's own usage, as upstream's image GC reads it (capacity - available).
      const st = statfsSync(mount);
      const capacityBytes = st.blocks * st.bsize;
      return { capacityBytes, usedBytes: capacityBytes - st.bavail * st.bsize };
    },
    pinned: [DEFAULT_PAUSE_IMAGE],
    // Volume dirs of pods that neither the API nor the runtime knows any more.
    cleanupVolumes: async () => {
      const active = new Set([...cache.pods().map((p) => p.uid), ...(manager?.uids() ?? [])]);
      await volumes.cleanupOrphans(active);
    },
  }).start(d.signal);
  // Docker events only hint at an early relist; the PLEG's relist is the truth.
  const events = watchContainerEvents(d.docker, () => pleg.kick(), { signal: d.signal, onRelist: () => pleg.kick(), log, clock });
  return {
    nodePods: {
      pods: () => (manager?.uids() ?? []).map((uid) => manager?.get(uid)).filter((p): p is V1Pod => p !== undefined),
      runtimePod: (uid) => cache.get(uid),
    },
    stop: async () => {
      manager?.stop();
      prober.stop();
      await pleg.stop();
      await events;
      await recorder.close();
    },
  };
}
