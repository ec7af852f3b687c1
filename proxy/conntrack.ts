// UDP conntrack reconciler, as kube-proxy's since 1.32 (pkg/proxy/conntrack
// CleanStaleEntries). UDP has no connection end, so a flow keeps its conntrack
// entry, and the DNAT chosen when it started, while packets keep coming. After
// every successful sync the UDP flows of the proxier's IP family are listed
// (`conntrack -L -p udp -f ipv4|ipv6`; a dual-stack node has a reconciler per
// family, each wrapping that family's proxier) and those the rules no longer
// stand behind are deleted:
// - to a service IP:port or a node port, answered by an address that is not
//   an endpoint this node uses for it (the endpoint went, turned not-ready,
//   or is hinted for another zone now; or the flow met no DNAT at all,
//   because the service had no endpoint when it started);
// - to a service with no endpoint left, or to one just deleted, answered by
//   anything but the service IP itself (a DNAT to an endpoint that is gone):
//   the next packet is then rejected at once instead of vanishing (upstream
//   leaves these until they time out).
// Level-triggered: it works from the synced state and what the table holds,
// so flows made stale while the proxy was down, or recreated by a packet
// between a change and its sync, go at the next reconcile.
import os from 'node:os';
import type { V1EndpointSlice, V1Service } from '@kubernetes/client-node';
import { Counter, Histogram, type Registry } from 'prom-client';
import type { Clock } from '../lib/clock.ts';
import { describeError } from '../lib/errors.ts';
import type { Exec } from '../lib/exec.ts';
import { canonicalIP, type IPFamily } from '../lib/ip.ts';
import type { Logger } from '../lib/log.ts';
import { sharedMetrics } from '../lib/sharedmetrics.ts';
import { categorizeEndpoints } from './categorize.ts';
import type { LocalDetector } from './localdetect.ts';
import type { Proxier, SyncedState } from './proxier.ts';
import { SYNC_BUCKETS } from './syncmetrics.ts';
import { portKey, serviceKey, type Endpoint, type ServicePortInfo } from './types.ts';

/** A UDP conntrack entry, as far as the decision needs it. */
export interface UdpFlow {
  origDst: string;
  origDport: number;
  /** The reply's source: the endpoint a DNATed flow went to, else the original destination. */
  replySrc: string;
}

/**
 * The UDP flows in `conntrack -L -p udp` output (one entry a line: the
 * original tuple's key=value pairs, then the reply tuple's; the same for
 * IPv4 and IPv6, whose addresses conntrack prints compressed). Lines that do
 * not parse are skipped.
 */
export function parseConntrackList(text: string): UdpFlow[] {
  const out: UdpFlow[] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith('udp')) continue;
    let origDst: string | undefined;
    let origDport: number | undefined;
    let replySrc: string | undefined;
    let srcSeen = 0;
    for (const word of line.split(/\s+/)) {
      const eq = word.indexOf('=');
      if (eq < 0) continue;
      const key = word.slice(0, eq);
      const value = word.slice(eq + 1);
      if (key === 'src' && ++srcSeen === 2) replySrc = value;
      else if (key === 'dst' && origDst === undefined) origDst = value;
      else if (key === 'dport' && origDport === undefined) origDport = Number(value);
    }
    if (origDst !== undefined && replySrc !== undefined && origDport !== undefined && Number.isInteger(origDport)) {
      out.push({ origDst, origDport, replySrc });
    }
  }
  return out;
}

/** A UDP service port as the decision sees it. */
interface Target {
  /** Cluster, external and load-balancer IPs. */
  ips: ReadonlySet<string>;
  port: number;
  nodePort: number;
  /** The endpoints flows may stay with; empty: none may (besides un-DNATed ones). */
  keep: ReadonlySet<string>;
}

/**
 * The endpoints a flow may keep going to: the ready ones this node sends new
 * traffic to (topology hints and traffic policies applied), and terminating
 * ones that still serve (their flows drain, as upstream keeps them).
 */
function keptEndpoints(eps: readonly Endpoint[], sp: ServicePortInfo, state: SyncedState): Set<string> {
  const keep = new Set<string>();
  for (const e of categorizeEndpoints(eps, sp, state.topology).reachable) if (e.ready) keep.add(comparable(e.ip));
  for (const e of eps) if (e.serving && e.terminating) keep.add(comparable(e.ip));
  return keep;
}

/** The UDP service ports of a synced state, by port key. */
function udpServicePorts(state: SyncedState): Map<string, ServicePortInfo> {
  const out = new Map<string, ServicePortInfo>();
  for (const ports of state.services.values()) for (const sp of ports) if (sp.protocol === 'UDP') out.set(portKey(sp), sp);
  return out;
}

/**
 * An address as the decision compares it: IPv6 in Go's spelling, since an
 * address in the API may be spelled otherwise than conntrack prints it
 * ("2001:DB8:0::1"); IPv4 as it is.
 */
function comparable(ip: string): string {
  return ip.includes(':') ? (canonicalIP(ip) ?? ip) : ip;
}

function ipsOf(sp: ServicePortInfo): Set<string> {
  return new Set([...sp.clusterIPs, ...sp.externalIPs, ...sp.loadBalancerIPs].map(comparable));
}

/** conntrack's name of a family (its -f argument). */
function conntrackFamily(family: IPFamily): string {
  return family === 'IPv6' ? 'ipv6' : 'ipv4';
}

/** The family flag of a delete: conntrack's default is IPv4, so an IPv4 delete goes without (as it always did). */
function deleteFamilyFlag(family: IPFamily): string[] {
  return family === 'IPv4' ? [] : ['-f', conntrackFamily(family)];
}

/**
 * The `conntrack` argv lists that delete the stale flows among `flows` (pure).
 * `removed`: UDP service ports deleted since the last reconcile; `localIPs`:
 * this node's addresses (a node-port flow is one addressed to them);
 * `family`: the flows' and the state's IP family.
 */
export function staleFlowDeletions(
  state: SyncedState,
  removed: readonly ServicePortInfo[],
  flows: readonly UdpFlow[],
  localIPs: ReadonlySet<string>,
  family: IPFamily = 'IPv4',
): string[][] {
  const targets: Target[] = [];
  for (const [key, sp] of udpServicePorts(state)) {
    const eps = state.endpoints.get(serviceKey(sp.namespace, sp.name))?.get(key) ?? [];
    targets.push({ ips: ipsOf(sp), port: sp.port, nodePort: sp.nodePort, keep: keptEndpoints(eps, sp, state) });
  }
  for (const sp of removed) targets.push({ ips: ipsOf(sp), port: sp.port, nodePort: sp.nodePort, keep: new Set() });
  // Looked up by port first: most flows are to ports no UDP service has.
  const byPort = new Map<number, { target: Target; nodePort: boolean }[]>();
  const index = (port: number, entry: { target: Target; nodePort: boolean }) => {
    const list = byPort.get(port);
    if (list) list.push(entry);
    else byPort.set(port, [entry]);
  };
  for (const t of targets) {
    index(t.port, { target: t, nodePort: false });
    if (t.nodePort) index(t.nodePort, { target: t, nodePort: true });
  }

  const local = new Set([...localIPs].map(comparable));
  const out = new Map<string, string[]>();
  for (const f of flows) {
    const entries = byPort.get(f.origDport);
    if (!entries) continue;
    const [dst, replySrc] = [comparable(f.origDst), comparable(f.replySrc)];
    for (const { target, nodePort } of entries) {
      if (!(nodePort ? local.has(dst) : target.ips.has(dst))) continue;
      if (target.keep.has(replySrc)) continue;
      // With no endpoint to keep, an un-DNATed flow is left: it goes nowhere (or is rejected) already.
      if (target.keep.size === 0 && replySrc === dst) continue;
      // The addresses as conntrack printed them (it reads any spelling).
      const args = ['-D', '-p', 'udp', ...deleteFamilyFlag(family), '--orig-dst', f.origDst, '--orig-port-dst', String(f.origDport), '--reply-src', f.replySrc];
      out.set(args.join(' '), args);
    }
  }
  return [...out.values()];
}

/** This node's addresses of `family` (loopback included: node ports answer on localhost). */
function localIPsOf(family: IPFamily): Set<string> {
  const out = new Set<string>();
  for (const addrs of Object.values(os.networkInterfaces())) for (const a of addrs ?? []) if (a.family === family) out.add(a.address);
  return out;
}

/** A proxier of one IP family whose successful syncs can be listened to (ProxierBase). */
export interface SyncingProxier extends Proxier {
  readonly family: IPFamily;
  onSynced(listener: (state: SyncedState) => void): void;
}

export interface ConntrackReconcilerDeps {
  exec: Exec;
  clock: Clock;
  log: Logger;
  registry: Registry;
  /** This node's addresses of the proxier's family, asked at each reconcile (default: localIPsOf). */
  localIPs?: () => ReadonlySet<string>;
}

/** The reconciler's metrics, one set per registry: a dual-stack node's two reconcilers tell theirs apart by ip_family. */
class ConntrackMetricSet {
  readonly duration: Histogram<'ip_family'>;
  readonly deleted: Counter<'ip_family'>;

  static of(registry: Registry): ConntrackMetricSet {
    return sharedMetrics(registry, 'proxy-conntrack', (r) => new ConntrackMetricSet(r));
  }

  private constructor(registry: Registry) {
    this.duration = new Histogram({
      name: 'kubeproxy_conntrack_reconciler_sync_duration_seconds',
      help: 'ReconcileConntrackFlowsLatency latency in seconds',
      labelNames: ['ip_family'],
      buckets: [...SYNC_BUCKETS],
      registers: [registry],
    });
    this.deleted = new Counter({
      name: 'kubeproxy_conntrack_reconciler_deleted_entries_total',
      help: 'Cumulative conntrack flows deleted by conntrack reconciler',
      labelNames: ['ip_family'],
      registers: [registry],
    });
  }
}

/**
 * Wraps a proxier: passes every event on, and after each of its successful
 * syncs reconciles the UDP flows with what was synced (one reconcile at a
 * time; syncs that end during one are folded into the next).
 */
export class ConntrackReconciler implements Proxier {
  private readonly inner: SyncingProxier;
  private readonly deps: ConntrackReconcilerDeps;
  private readonly metrics: ConntrackMetricSet;
  private readonly labels: { ip_family: IPFamily };
  /** The latest synced state not reconciled yet. */
  private next: SyncedState | undefined;
  /** UDP service ports of the last state reconciled. */
  private lastPorts = new Map<string, ServicePortInfo>();
  /** Ports deleted since, whose DNATed flows the next reconcile removes. */
  private removed = new Map<string, ServicePortInfo>();
  private stopped = false;
  private wake = new AbortController();
  private loopDone: Promise<void> | undefined;

  constructor(inner: SyncingProxier, deps: ConntrackReconcilerDeps) {
    this.inner = inner;
    this.deps = deps;
    this.metrics = ConntrackMetricSet.of(deps.registry);
    this.labels = { ip_family: inner.family };
    inner.onSynced((state) => {
      this.next = state;
      if (!this.wake.signal.aborted) this.wake.abort();
    });
  }

  routedEndpoints(): ReadonlySet<string> | undefined {
    return this.inner.routedEndpoints();
  }

  start(): void {
    this.inner.start();
    this.loopDone ??= this.loop();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.wake.abort();
    await this.loopDone;
    await this.inner.stop();
  }

  onServiceAdd(svc: V1Service): void {
    this.inner.onServiceAdd(svc);
  }
  onServiceUpdate(prev: V1Service, svc: V1Service): void {
    this.inner.onServiceUpdate(prev, svc);
  }
  onServiceDelete(svc: V1Service): void {
    this.inner.onServiceDelete(svc);
  }
  onSliceAdd(slice: V1EndpointSlice): void {
    this.inner.onSliceAdd(slice);
  }
  onSliceUpdate(prev: V1EndpointSlice, slice: V1EndpointSlice): void {
    this.inner.onSliceUpdate(prev, slice);
  }
  onSliceDelete(slice: V1EndpointSlice): void {
    this.inner.onSliceDelete(slice);
  }
  setLocalDetector(detector: LocalDetector): void {
    this.inner.setLocalDetector(detector);
  }
  setServiceCIDRs(cidrs: readonly string[]): void {
    this.inner.setServiceCIDRs(cidrs);
  }
  onTopologyChange(labels: Readonly<Record<string, string>>): void {
    this.inner.onTopologyChange(labels);
  }

  private async loop(): Promise<void> {
    while (!this.stopped) {
      const state = this.next;
      this.next = undefined;
      if (state) {
        try {
          await this.reconcile(state);
        } catch (err) {
          this.deps.log.warn('conntrack reconcile failed', { error: describeError(err) });
        }
      }
      if (this.next || this.stopped) continue;
      this.wake = new AbortController();
      await this.deps.clock.sleep(2 ** 31 - 1, this.wake.signal);
    }
  }

  /** One reconcile against `state`; throws when the table cannot be listed (the removed ports wait for the next). */
  private async reconcile(state: SyncedState): Promise<void> {
    const started = this.deps.clock.now();
    const ports = udpServicePorts(state);
    for (const [key, sp] of this.lastPorts) if (!ports.has(key)) this.removed.set(key, sp);
    for (const key of ports.keys()) this.removed.delete(key);
    this.lastPorts = ports;
    // No UDP service, none just gone: nothing a flow could be stale for (and no listing).
    if (ports.size === 0 && this.removed.size === 0) return;
    const family = this.inner.family;
    const list = await this.deps.exec('conntrack', ['-L', '-p', 'udp', '-f', conntrackFamily(family)], { allowFail: true, timeoutMs: 30_000 });
    if (list.code !== 0) throw new Error(`conntrack -L: ${list.stderr.trim().split('\n').pop() ?? `exit ${list.code}`}`);
    const localIPs = this.deps.localIPs?.() ?? localIPsOf(family);
    const deletions = staleFlowDeletions(state, [...this.removed.values()], parseConntrackList(list.stdout), localIPs, family);
    this.removed.clear();
    let deleted = 0;
    for (const args of deletions) deleted += await this.conntrack(args);
    if (deleted > 0) this.metrics.deleted.inc(this.labels, deleted);
    this.metrics.duration.observe(this.labels, (this.deps.clock.now() - started) / 1000);
    if (deletions.length > 0) this.deps.log.debug('conntrack reconciled', { deletes: deletions.length, deleted });
  }

  /** Runs one delete; returns how many entries went. */
  private async conntrack(args: string[]): Promise<number> {
    const res = await this.deps.exec('conntrack', args, { allowFail: true, timeoutMs: 10_000 });
    const n = Number(/(\d+) flow entries have been deleted/.exec(res.stderr)?.[1] ?? 0);
    // Exit 1 with "0 flow entries have been deleted": the flow ended by itself meanwhile.
    if (res.code === 0 || /0 flow entries/.test(res.stderr)) return n;
    this.deps.log.warn('conntrack delete failed', { args: args.join(' '), code: res.code, stderr: res.stderr.trim().slice(0, 300) });
    return 0;
  }
}
