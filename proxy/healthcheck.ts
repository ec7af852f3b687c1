// kube-proxy's two health surfaces (pkg/proxy/healthcheck):
// - the proxy health server (--healthz-bind-address, 10256): /healthz and
//   /livez answer 200 with {lastUpdated, currentTime} while rule syncs are
//   recent, 503 otherwise; /healthz also answers 503 while this node is being
//   deleted or is tainted for deletion by the cluster autoscaler (KEP-3836), so
//   load balancers drain it first; the metrics server serves /metrics beside them;
// - one HTTP server per service health-check node port (LoadBalancer services
//   with externalTrafficPolicy Local), answering 200 while this node has a
//   ready local endpoint for the service, so a load balancer skips nodes
//   without one.
import http from 'node:http';
import { isIP } from 'node:net';
import type { V1EndpointSlice, V1Node, V1Service } from '@kubernetes/client-node';
import { Counter, type Registry } from 'prom-client';
import type { Clock } from '../lib/clock.ts';
import { describeError } from '../lib/errors.ts';
import type { Logger } from '../lib/log.ts';
import type { RoutedSource } from './routed.ts';
import { endpointsFromSlices, SERVICE_NAME_LABEL, serviceKey, servicePortsFromService } from './types.ts';
import { LAST_SYNC_METRIC } from './syncmetrics.ts';
import { ipFamilyOf } from '../lib/ip.ts';

export interface ProxyHealthStatus {
  healthy: boolean;
  /** ms since epoch of the last successful sync; undefined before the first. */
  lastUpdated: number | undefined;
  currentTime: number;
}

/** Healthy once a sync succeeded and the last one is younger than timeoutMs (upstream: 2 x sync period). */
export function proxyHealth(lastSyncedMs: number | undefined, nowMs: number, timeoutMs: number): ProxyHealthStatus {
  const healthy = lastSyncedMs !== undefined && nowMs - lastSyncedMs < timeoutMs;
  return { healthy, lastUpdated: lastSyncedMs, currentTime: nowMs };
}

/**
 * Reads the last-sync gauge from the proxier's registry: the oldest of the
 * `families` proxiers' (a dual-stack proxy is healthy while both sync, as
 * upstream's); undefined until each has synced once.
 */
export function lastSyncFromRegistry(registry: Registry, families = 1): () => Promise<number | undefined> {
  return async () => {
    const m = registry.getSingleMetric(LAST_SYNC_METRIC);
    if (!m) return undefined;
    const values = (await m.get()).values.map((v) => v.value).filter((v) => v > 0);
    return values.length >= families ? Math.min(...values) * 1000 : undefined;
  };
}

/** The taint the cluster autoscaler puts on a node it is about to delete. */
export const TO_BE_DELETED_TAINT = 'ToBeDeletedByClusterAutoscaler';

/**
 * Whether load balancers may still send traffic through this node, as
 * upstream's NodeEligible: not being deleted and not tainted for deletion.
 * An unknown Node (not listed, no permission) is eligible. Pure.
 */
export function nodeEligible(node: V1Node | undefined): boolean {
  if (!node) return true;
  if (node.metadata?.deletionTimestamp) return false;
  return !(node.spec?.taints ?? []).some((t) => t.key === TO_BE_DELETED_TAINT);
}

export interface ProxyHealthOptions {
  clock: Clock;
  timeoutMs: number;
  lastSynced: () => Promise<number | undefined>;
  /** Where kubeproxy_proxy_healthz_total and kubeproxy_proxy_livez_total go (none: not counted). */
  registry?: Registry;
}

export class ProxyHealth {
  private readonly opts: ProxyHealthOptions;
  private eligible = true;
  private readonly answers: Record<'/healthz' | '/livez', Counter<'code'> | undefined>;
  constructor(opts: ProxyHealthOptions) {
    this.opts = opts;
    const registers = opts.registry ? [opts.registry] : undefined;
    this.answers = {
      '/healthz': registers && new Counter({ name: 'kubeproxy_proxy_healthz_total', help: 'Cumulative proxy healthz HTTP status', labelNames: ['code'], registers }),
      '/livez': registers && new Counter({ name: 'kubeproxy_proxy_livez_total', help: 'Cumulative proxy livez HTTP status', labelNames: ['code'], registers }),
    };
  }
  /** The proxier's own health (what the service health-check ports and /livez use): the Node plays no part. */
  async status(): Promise<ProxyHealthStatus> {
    return proxyHealth(await this.opts.lastSynced(), this.opts.clock.now(), this.opts.timeoutMs);
  }
  async healthy(): Promise<boolean> {
    return (await this.status()).healthy;
  }
  /** Follows this proxy's Node; true when eligibility changed. */
  syncNode(node: V1Node | undefined): boolean {
    const was = this.eligible;
    this.eligible = nodeEligible(node);
    return was !== this.eligible;
  }
  get nodeEligible(): boolean {
    return this.eligible;
  }
  counted(path: '/healthz' | '/livez', code: number): void {
    this.answers[path]?.inc({ code: String(code) });
  }
}

const iso = (ms: number | undefined) => (ms === undefined ? '' : new Date(ms).toISOString());

/** Where the agent on this node asks whether new connections still go to a pod IP. */
export const ROUTED_PATH = '/nodelet/routed';

const isLoopback = (addr: string | undefined) => addr !== undefined && (addr.startsWith('127.') || addr === '::1' || addr.startsWith('::ffff:127.'));

/** What else a health or metrics server answers besides /healthz and /livez. */
export interface ProxyHttpExtras {
  /** /metrics (the metrics server). */
  registry?: Registry;
  /** /nodelet/routed?ip=A for the agent on this node, loopback only (the healthz server). */
  routed?: RoutedSource;
  /** /proxyMode: the mode's name, as kube-proxy's metrics server. */
  mode?: string;
  /** /configz: the running configuration (configz.ts), as kube-proxy's metrics server. */
  configz?: string;
}

/** The handler of the healthz server and of the metrics server: /healthz, /livez and `extras`. */
export function proxyHttpHandler(health: ProxyHealth, extras: ProxyHttpExtras = {}): http.RequestListener {
  const { registry, routed, mode, configz } = extras;
  return (req, res) => {
    const [path, query = ''] = (req.url ?? '/').split('?');
    if (routed && path === ROUTED_PATH) {
      const ip = new URLSearchParams(query).get('ip') ?? '';
      const json = (code: number, body: unknown) => res.writeHead(code, { 'content-type': 'application/json' }).end(JSON.stringify(body));
      if (!isLoopback(req.socket.remoteAddress)) return void json(403, { error: 'loopback only' });
      if (!isIP(ip)) return void json(400, { error: `not an IP address: "${ip}"` });
      const ips = routed.routedEndpoints();
      // 503 until the first sync: the caller cannot tell yet.
      if (!ips) return void json(503, { ip, synced: false });
      return void json(200, { ip, synced: true, routed: ips.has(ip) });
    }
    if (path === '/healthz' || path === '/livez') {
      health.status().then(
        (st) => {
          const body: Record<string, unknown> = { lastUpdated: iso(st.lastUpdated), currentTime: iso(st.currentTime) };
          let ok = st.healthy;
          if (path === '/healthz') {
            body.nodeEligible = health.nodeEligible;
            ok &&= health.nodeEligible;
          }
          const code = ok ? 200 : 503;
          health.counted(path, code);
          res.writeHead(code, { 'content-type': 'application/json', 'x-content-type-options': 'nosniff' });
          res.end(JSON.stringify(body));
        },
        (err: unknown) => res.writeHead(500).end(describeError(err)),
      );
      return;
    }
    if (mode !== undefined && path === '/proxyMode') {
      res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8', 'x-content-type-options': 'nosniff' }).end(mode);
      return;
    }
    if (configz !== undefined && path === '/configz') {
      res.writeHead(200, { 'content-type': 'application/json' }).end(configz);
      return;
    }
    if (registry && path === '/metrics') {
      registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
        (err: unknown) => res.writeHead(500).end(describeError(err)),
      );
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain' }).end('404 page not found\n');
  };
}

/** Listens and resolves once bound; rejects on a bind error (EADDRINUSE, ...). */
export function listen(server: http.Server, host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error) => reject(err);
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolve();
    });
  });
}

export function closeServer(server: http.Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}

// ---- service health-check node ports ----

export interface HealthCheckTarget {
  namespace: string;
  name: string;
  port: number;
  /** Ready endpoints of the service on this node (distinct IPs). */
  localEndpoints: number;
}

/** One target per service with a health-check node port, sorted by port. Pure. */
export function healthCheckTargets(services: readonly V1Service[], slices: readonly V1EndpointSlice[], nodeName: string): HealthCheckTarget[] {
  // Recomputed after every change: only the few services with a health-check
  // node port (LoadBalancer, externalTrafficPolicy Local) are worked on, and
  // only their slices grouped (at 10k services the pass over all of them was
  // 262 ms of a bench run's profile, plus most of servicePortsFromService's).
  const withPort = services.filter((svc) => (svc.spec?.healthCheckNodePort ?? 0) > 0);
  if (withPort.length === 0) return [];
  const keys = new Set(withPort.map((svc) => serviceKey(svc.metadata?.namespace ?? 'default', svc.metadata?.name ?? '')));
  const slicesBySvc = new Map<string, V1EndpointSlice[]>();
  for (const s of slices) {
    const svc = s.metadata?.labels?.[SERVICE_NAME_LABEL];
    if (!svc) continue;
    const key = serviceKey(s.metadata?.namespace ?? 'default', svc);
    if (!keys.has(key)) continue;
    const list = slicesBySvc.get(key) ?? [];
    list.push(s);
    slicesBySvc.set(key, list);
  }
  const out: HealthCheckTarget[] = [];
  for (const svc of withPort) {
    // The service's primary family (its first cluster IP's): a dual-stack service's pods are in both families' slices.
    const family = ipFamilyOf(svc.spec?.clusterIPs?.[0] ?? svc.spec?.clusterIP ?? '') ?? 'IPv4';
    const port = servicePortsFromService(svc, family).find((p) => p.healthCheckNodePort > 0)?.healthCheckNodePort;
    if (!port) continue;
    const namespace = svc.metadata?.namespace ?? 'default';
    const name = svc.metadata?.name ?? '';
    const local = new Set<string>();
    for (const eps of endpointsFromSlices(slicesBySvc.get(serviceKey(namespace, name)) ?? [], nodeName, family).values()) {
      for (const ep of eps) if (ep.isLocal && ep.ready) local.add(ep.ip);
    }
    out.push({ namespace, name, port, localEndpoints: local.size });
  }
  return out.sort((a, b) => a.port - b.port);
}

interface Listener {
  target: HealthCheckTarget;
  server?: http.Server;
}

/**
 * The HTTP servers of the health-check node ports. sync() opens a server per
 * new port, closes the ones no longer wanted, and updates the counts; a port
 * that failed to bind is retried on the next sync.
 */
export class ServiceHealthServer {
  private readonly host: string;
  private readonly log: Logger;
  private readonly proxyHealthy: () => Promise<boolean>;
  private readonly listeners = new Map<number, Listener>();

  constructor(opts: { host?: string; log: Logger; proxyHealthy: () => Promise<boolean> }) {
    this.host = opts.host ?? '0.0.0.0';
    this.log = opts.log;
    this.proxyHealthy = opts.proxyHealthy;
  }

  /** Ports being served now. */
  ports(): number[] {
    return [...this.listeners].filter(([, l]) => l.server).map(([p]) => p).sort((a, b) => a - b);
  }

  async sync(targets: readonly HealthCheckTarget[]): Promise<void> {
    const wanted = new Map(targets.map((t) => [t.port, t]));
    for (const [port, l] of [...this.listeners]) {
      if (wanted.has(port)) continue;
      this.listeners.delete(port);
      if (l.server) await closeServer(l.server);
      this.log.info('closed service health-check port', { port, service: `${l.target.namespace}/${l.target.name}` });
    }
    for (const [port, target] of wanted) {
      const l = this.listeners.get(port);
      if (l) {
        l.target = target;
        if (l.server) continue;
      }
      const entry: Listener = l ?? { target };
      this.listeners.set(port, entry);
      const server = http.createServer((req, res) => void this.answer(entry, res));
      try {
        await listen(server, this.host, port);
        entry.server = server;
        this.log.info('opened service health-check port', { port, service: `${target.namespace}/${target.name}` });
      } catch (err) {
        this.log.error('cannot open service health-check port; will retry', { port, error: describeError(err) });
      }
    }
  }

  private async answer(l: Listener, res: http.ServerResponse): Promise<void> {
    const healthy = await this.proxyHealthy().catch(() => false);
    const { namespace, name, localEndpoints } = l.target;
    res.writeHead(localEndpoints > 0 && healthy ? 200 : 503, {
      'content-type': 'application/json',
      'x-content-type-options': 'nosniff',
      'x-load-balancing-endpoint-weight': String(localEndpoints),
    });
    res.end(JSON.stringify({ service: { namespace, name }, localEndpoints, serviceProxyHealthy: healthy }));
  }

  async close(): Promise<void> {
    for (const l of this.listeners.values()) if (l.server) await closeServer(l.server);
    this.listeners.clear();
  }
}
