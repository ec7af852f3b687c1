// The userspace-mode proxier, as upstream's pkg/proxy/userspace Proxier
// (Kubernetes <= 1.25): every service port gets a listener of its own on
// the node (the "proxy port", ephemeral), and connections to it are copied
// to an endpoint chosen round-robin (proxy/userspace/roundrobin.ts, with
// ClientIP affinity). Where iptables is available, nat rules send traffic
// for cluster IPs, external and load-balancer IPs and node ports to the
// proxy ports (proxy/userspace/rules.ts: one iptables-restore per sync).
// A NodePort is also held by a listener on the node port itself, as upstream
// claimed it; here that listener serves the service too, so node ports work
// where there is no iptables at all.
//
// Construction (what proxy/main.ts calls):
//
//   new UserspaceProxier(
//     {
//       nodeName: 'node-a',
//       listenAddress: '0.0.0.0',   // default; where proxy and node-port sockets bind
//       hostIP: '192.0.2.10',       // DNAT target for host traffic when listening on 0.0.0.0;
//                                   // default: the first non-internal IPv4 of the host
//       udpIdleTimeoutMs: 250,      // upstream's --udp-timeout default
//       minSyncPeriodMs: 1000,      // default
//       syncPeriodMs: 30000,        // default
//     },
//     {
//       iptables: new ExecIptables(exec, backend), // or undefined: no rules, node ports served directly
//       clock: realClock,
//       log: log.child({ component: 'proxy' }),
//       registry,                   // optional prom-client Registry
//     },
//   );
//
// Sync (bounded-frequency runner): drain the change trackers, open listeners
// for new service ports and close those of removed ones (open connections
// stay, as upstream), hand the ready endpoints to the balancer (new
// connections use them at once), then rewrite the rules. A failed listen or
// restore is retried after minSyncPeriod.
//
// Not done: topology and traffic policies (upstream's userspace mode had none
// either), conntrack cleanup of stale UDP entries, a --proxy-port-range
// (ports are ephemeral), claiming external IPs that are local addresses.
import os from 'node:os';
import { Counter, Gauge, Registry } from 'prom-client';
import { SyncMetrics } from '../syncmetrics.ts';
import type { Clock } from '../../lib/clock.ts';
import { describeError, NodeletError } from '../../lib/errors.ts';
import type { Logger } from '../../lib/log.ts';
import { clusterEndpoints, type Topology } from '../categorize.ts';
import { flattenEndpoints, flattenServices } from '../changetracker.ts';
import type { Iptables } from '../iptables/iptables.ts';
import { ProxierBase } from '../proxier.ts';
import { BoundedFrequencyRunner } from '../runner.ts';
import { endpointString, portKey, type Endpoint, type ServicePortInfo } from '../types.ts';
import { LoadBalancerRR } from './roundrobin.ts';
import { portalRules, type PortalService } from './rules.ts';
import { DEFAULT_UDP_IDLE_TIMEOUT_MS, openProxySocket, type ProxySocket } from './socket.ts';
import type { Splicer } from './splicer.ts';

export interface UserspaceProxierOptions {
  nodeName: string;
  /** Where the proxy sockets (and node-port sockets) bind; default 0.0.0.0. */
  listenAddress?: string;
  /** Where traffic from this host is DNATed when listenAddress is 0.0.0.0; default: first non-internal IPv4. */
  hostIP?: string;
  /** Idle UDP sessions end after this long; default 250 ms (upstream's --udp-timeout). */
  udpIdleTimeoutMs?: number;
  /** Default 1 s. */
  minSyncPeriodMs?: number;
  /** The periodic resync; default 30 s. */
  syncPeriodMs?: number;
  /** TCP dial timeouts, one try each; default upstream's 250 ms, 500 ms, 1 s, 2 s. */
  dialTimeoutsMs?: readonly number[];
}

export interface UserspaceProxierDeps {
  /** undefined = no rules: only node ports are served (directly). */
  iptables: Iptables | undefined;
  clock: Clock;
  log: Logger;
  registry?: Registry;
  /** Shuffles endpoint lists; default Math.random. */
  random?: () => number;
  /** The native TCP relay; undefined = bytes are copied in JS. */
  splicer?: Splicer | undefined;
}

/** Upstream's ChooseHostInterface, simplified: the first non-internal IPv4 address. */
export function chooseHostIP(ifaces: NodeJS.Dict<os.NetworkInterfaceInfo[]>): string | undefined {
  for (const name of Object.keys(ifaces).sort()) {
    for (const a of ifaces[name] ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  }
  return undefined;
}

/**
 * Ready endpoints, within the topology hints that name this node or zone;
 * when none is ready, the serving terminating ones (as the iptables mode).
 * Traffic policies are not looked at (upstream's userspace mode had none).
 */
export function usableEndpoints(eps: readonly Endpoint[], topo?: Topology): string[] {
  return clusterEndpoints(eps, topo).map(endpointString);
}

interface PortEntry {
  info: ServicePortInfo;
  socket: ProxySocket;
  /** The listener on the node port, when the service has one and it could be opened. */
  nodePortSocket?: ProxySocket;
}

/** The userspace-only metrics; the sync ones are SyncMetrics (IPv4: this mode proxies IPv4 only). */
class Metrics {
  readonly sync: SyncMetrics;
  readonly restoreFailures: Counter;
  readonly servicePorts: Gauge;

  constructor(registry: Registry) {
    const registers = [registry];
    this.sync = new SyncMetrics(registry, 'IPv4');
    this.restoreFailures = new Counter({
      name: 'kubeproxy_sync_proxy_rules_iptables_restore_failures_total',
      help: 'Cumulative proxy iptables restore failures',
      registers,
    });
    this.servicePorts = new Gauge({
      name: 'nodelet_proxy_userspace_service_ports',
      help: 'Service ports the userspace proxy listens for',
      registers,
    });
  }
}

export class UserspaceProxier extends ProxierBase {
  private readonly iptables: Iptables | undefined;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly metrics: Metrics | undefined;
  private readonly listenAddress: string;
  private readonly hostIP: string;
  private readonly udpIdleTimeoutMs: number;
  private readonly minSyncPeriodMs: number;
  private readonly dialTimeoutsMs: readonly number[] | undefined;
  private readonly splicer: Splicer | undefined;
  private readonly runner: BoundedFrequencyRunner;
  private readonly lb: LoadBalancerRR;

  /** By service port key. */
  private readonly ports = new Map<string, PortEntry>();
  private stopped = false;

  constructor(options: UserspaceProxierOptions, deps: UserspaceProxierDeps) {
    super(options.nodeName, { clock: deps.clock, registry: deps.registry ?? new Registry() });
    this.iptables = deps.iptables;
    this.clock = deps.clock;
    this.log = deps.log;
    this.splicer = deps.splicer;
    this.metrics = deps.registry ? new Metrics(deps.registry) : undefined;
    this.listenAddress = options.listenAddress ?? '0.0.0.0';
    const hostIP = this.listenAddress === '0.0.0.0' ? (options.hostIP ?? chooseHostIP(os.networkInterfaces())) : this.listenAddress;
    if (this.iptables && !hostIP) {
      throw new NodeletError('PROXY_NO_HOST_IP', 'userspace proxy: no non-loopback IPv4 address to send host traffic to; set hostIP');
    }
    this.hostIP = hostIP ?? this.listenAddress;
    if (this.iptables && this.listenAddress.startsWith('127.')) {
      // As upstream's ErrProxyOnLocalhost: DNAT from other hosts to 127/8 needs route_localnet and is not what anyone wants.
      this.log.warn('userspace proxy listens on a loopback address; only this host can use its services', { listenAddress: this.listenAddress });
    }
    this.udpIdleTimeoutMs = options.udpIdleTimeoutMs ?? DEFAULT_UDP_IDLE_TIMEOUT_MS;
    this.minSyncPeriodMs = options.minSyncPeriodMs ?? 1000;
    this.dialTimeoutsMs = options.dialTimeoutsMs;
    this.lb = new LoadBalancerRR(deps.clock, deps.random);
    this.runner = new BoundedFrequencyRunner(
      () => this.syncProxyRules().then(() => undefined),
      this.minSyncPeriodMs,
      options.syncPeriodMs ?? 30000,
      this.clock,
      (err) => this.log.error('userspace proxy sync failed', { error: describeError(err) }),
    );
  }

  start(): void {
    this.runner.start();
    this.runner.run();
  }

  /** Stops syncing and closes every listener and open connection (rules stay, as upstream; the next start rewrites them). */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.runner.stop();
    for (const [key, e] of this.ports) await this.closePort(key, e, true);
  }

  protected changed(): void {
    this.runner.run();
  }

  /** Every sync sets every port's endpoints: nothing is kept to invalidate. */
  protected invalidate(): void {}

  /** Userspace mode tells no pod traffic apart (upstream's had no local detection). */
  setLocalDetector(): void {}

  /** The proxy port of a service port key ("ns/name:port"), if it is being proxied. */
  proxyPort(key: string): number | undefined {
    return this.ports.get(key)?.socket.port;
  }

  /** Whether the node port of a service port key has its own listener. */
  servesNodePort(key: string): boolean {
    return this.ports.get(key)?.nodePortSocket !== undefined;
  }

  /** Open connections / UDP sessions of a service port (proxy port and node port together). */
  active(key: string): number {
    const e = this.ports.get(key);
    return e ? e.socket.active + (e.nodePortSocket?.active ?? 0) : 0;
  }

  /** One sync; never throws. Returns whether everything was applied (else a retry is queued). */
  async syncProxyRules(): Promise<boolean> {
    if (this.stopped) return false;
    const started = this.clock.now();
    this.drain();
    const want = new Map<string, ServicePortInfo>();
    for (const sp of flattenServices(this.services)) want.set(portKey(sp), sp);

    let ok = true;
    for (const [key, e] of this.ports) {
      const sp = want.get(key);
      if (!sp || sp.protocol !== e.info.protocol) {
        await this.closePort(key, e, false);
      }
    }
    for (const [key, sp] of want) {
      if (!(await this.ensurePort(key, sp))) ok = false;
    }

    const endpoints = flattenEndpoints(this.endpoints);
    const topo = this.topology();
    for (const key of this.ports.keys()) this.lb.setEndpoints(key, usableEndpoints(endpoints.get(key) ?? [], topo));
    this.lb.cleanupStaleStickySessions();
    // The balancer takes new connections to these from now on, whatever the iptables part does.
    this.synced();

    if (this.iptables && !(await this.writeRules(this.iptables))) ok = false;

    if (!ok) this.runner.retryAfter(this.minSyncPeriodMs);
    this.metrics?.sync.observe((this.clock.now() - started) / 1000);
    this.metrics?.servicePorts.set(this.ports.size);
    if (ok) this.metrics?.sync.synced(this.clock.now());
    this.log.debug('userspace proxy synced', { ok, servicePorts: this.ports.size });
    return ok;
  }

  /** Opens or updates one service port's listeners; false when a listener could not be opened (retried next sync). */
  private async ensurePort(key: string, sp: ServicePortInfo): Promise<boolean> {
    let e = this.ports.get(key);
    if (sp.protocol === 'SCTP') {
      // node:net has no SCTP; upstream's userspace mode had none either.
      return true;
    }
    if (!e) {
      try {
        const socket = await openProxySocket(sp.protocol, this.listenAddress, 0, this.chooser(key), this.socketOptions());
        e = { info: sp, socket };
        this.ports.set(key, e);
        this.log.info('userspace proxy: proxying service port', { service: key, protocol: sp.protocol, proxyPort: socket.port });
      } catch (err) {
        this.log.error('userspace proxy: cannot open a proxy port', { service: key, error: describeError(err) });
        return false;
      }
    }
    e.info = sp;
    this.lb.setService(key, sp.sessionAffinity, sp.stickySeconds);

    if (e.nodePortSocket && e.nodePortSocket.port !== sp.nodePort) {
      await e.nodePortSocket.close(false);
      delete e.nodePortSocket;
    }
    if (sp.nodePort !== 0 && !e.nodePortSocket) {
      try {
        e.nodePortSocket = await openProxySocket(sp.protocol, this.listenAddress, sp.nodePort, this.chooser(key), this.socketOptions());
        this.log.info('userspace proxy: claimed node port', { service: key, protocol: sp.protocol, nodePort: sp.nodePort });
      } catch (err) {
        this.log.error('userspace proxy: cannot open node port', { service: key, nodePort: sp.nodePort, error: describeError(err) });
        return false;
      }
    }
    return true;
  }

  private async closePort(key: string, e: PortEntry, dropActive: boolean): Promise<void> {
    this.ports.delete(key);
    this.lb.deleteService(key);
    await e.socket.close(dropActive);
    await e.nodePortSocket?.close(dropActive);
    this.log.info('userspace proxy: stopped proxying service port', { service: key, proxyPort: e.socket.port });
  }

  private chooser(key: string) {
    return (clientIP: string, reset: boolean) => this.lb.next(key, clientIP, reset);
  }

  private socketOptions() {
    return {
      log: this.log,
      clock: this.clock,
      udpIdleTimeoutMs: this.udpIdleTimeoutMs,
      splicer: this.splicer,
      ...(this.dialTimeoutsMs ? { dialTimeoutsMs: this.dialTimeoutsMs } : {}),
    };
  }

  private async writeRules(iptables: Iptables): Promise<boolean> {
    const services: PortalService[] = [...this.ports.values()].map((e) => ({
      name: portKey(e.info),
      protocol: e.info.protocol,
      clusterIPs: e.info.clusterIPs,
      port: e.info.port,
      nodePort: e.info.nodePort,
      externalIPs: e.info.externalIPs,
      loadBalancerIPs: e.info.loadBalancerIPs,
      proxyPort: e.socket.port,
    }));
    const out = portalRules({ services, listenIP: this.listenAddress, hostIP: this.hostIP });
    try {
      for (const j of out.jumps) {
        await iptables.ensureChain(j.table, j.rule[j.rule.length - 1] ?? '');
        await iptables.ensureRule(j.position, j.table, j.chain, j.rule);
      }
    } catch (err) {
      this.log.error('userspace proxy: cannot ensure the jumps into its chains', { error: describeError(err) });
      return false;
    }
    try {
      await iptables.restore(out.text, { noflush: true });
    } catch (err) {
      this.metrics?.restoreFailures.inc();
      this.log.error('userspace proxy: iptables-restore failed', { error: describeError(err) });
      return false;
    }
    return true;
  }
}
