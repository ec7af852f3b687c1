// UDP conntrack cleanup, as kube-proxy's conntrack reconciler: UDP has no
// connection end, so a flow keeps its conntrack entry (and the DNAT decided
// when it started) while packets keep coming. Two cases need a delete:
// - a UDP service port gains its first ready endpoint (or appears with one):
//   flows that started while nothing caught the service IP must be forgotten,
//   or they never meet the new DNAT rule;
// - a ready endpoint goes away, or stops being one this node sends to (its
//   topology hints no longer name this zone): flows DNATed to it would keep
//   going there.
// The decision is pure (conntrackDeletions); ConntrackCleaner wraps a Proxier,
// keeps its own view of services and endpoints from the same events, and runs
// the deletes after the proxier's next successful sync (the new rules must be
// in place first, or the next packet recreates the stale entry). It runs them
// once more after the sync after that, since a sync already running when the
// event came did not include it.
import type { V1EndpointSlice, V1Service } from '@kubernetes/client-node';
import type { Clock } from '../lib/clock.ts';
import { describeError } from '../lib/errors.ts';
import type { Exec } from '../lib/exec.ts';
import type { Logger } from '../lib/log.ts';
import { EndpointsChangeTracker, ServiceChangeTracker, type EndpointsMap, type ServiceMap } from './changetracker.ts';
import type { LocalDetector } from './localdetect.ts';
import type { Proxier } from './proxier.ts';
import { categorizeEndpoints, type Topology, zoneOf } from './categorize.ts';
import { portKey, serviceKey, type ServicePortInfo } from './types.ts';

export interface ProxyState {
  services: ServiceMap;
  endpoints: EndpointsMap;
  /** This node and its zone (none: topology hints are not looked at). */
  topology?: Topology;
}

function udpPorts(s: ServiceMap): Map<string, ServicePortInfo> {
  const out = new Map<string, ServicePortInfo>();
  for (const ports of s.values()) for (const sp of ports) if (sp.protocol === 'UDP') out.set(portKey(sp), sp);
  return out;
}

/** The ready endpoints this node sends the port's traffic to. */
function readyIPs(state: ProxyState, sp: ServicePortInfo): Set<string> {
  const eps = state.endpoints.get(serviceKey(sp.namespace, sp.name))?.get(portKey(sp)) ?? [];
  const { reachable } = categorizeEndpoints(eps, sp, state.topology);
  return new Set(reachable.filter((e) => e.ready).map((e) => e.ip));
}

/** Service IPs a client may have sent to: cluster, external and load-balancer IPs. */
function serviceIPs(sp: ServicePortInfo): string[] {
  return [...sp.clusterIPs, ...sp.externalIPs, ...sp.loadBalancerIPs];
}

/** The `conntrack` argv lists that forget the UDP flows made stale by going from prev to cur. Pure. */
export function conntrackDeletions(prev: ProxyState, cur: ProxyState): string[][] {
  const out = new Map<string, string[]>();
  const add = (args: string[]) => out.set(args.join(' '), args);
  const before = udpPorts(prev.services);
  const after = udpPorts(cur.services);

  for (const [key, sp] of after) {
    const old = before.get(key);
    const was = old ? readyIPs(prev, old) : new Set<string>();
    const now = readyIPs(cur, sp);
    if (now.size > 0 && was.size === 0) {
      // Newly active: forget flows that met no DNAT.
      for (const ip of serviceIPs(sp)) add(['-D', '-p', 'udp', '--orig-dst', ip, '--dport', String(sp.port)]);
      if (sp.nodePort) add(['-D', '-p', 'udp', '--dport', String(sp.nodePort)]);
    }
    for (const gone of was) {
      if (now.has(gone)) continue;
      for (const ip of serviceIPs(sp)) add(['-D', '-p', 'udp', '--orig-dst', ip, '--dport', String(sp.port), '--dst-nat', gone]);
      if (sp.nodePort) add(['-D', '-p', 'udp', '--dport', String(sp.nodePort), '--dst-nat', gone]);
    }
  }
  for (const [key, sp] of before) {
    if (after.has(key)) continue;
    // The port is gone: its flows have nowhere to go.
    for (const ip of serviceIPs(sp)) add(['-D', '-p', 'udp', '--orig-dst', ip, '--dport', String(sp.port)]);
    if (sp.nodePort) add(['-D', '-p', 'udp', '--dport', String(sp.nodePort)]);
  }
  return [...out.values()];
}

interface Pending {
  deletions: string[][];
  /** Run after a sync that ended after this time. */
  after: number;
  passes: number;
}

export interface ConntrackCleanerDeps {
  exec: Exec;
  clock: Clock;
  log: Logger;
  nodeName: string;
  /** End time (ms) of the inner proxier's last successful sync; undefined before the first. */
  lastSynced: () => Promise<number | undefined>;
  /** How often to look for a finished sync while deletes wait (default 200 ms). */
  pollMs?: number;
}

export class ConntrackCleaner implements Proxier {
  private readonly inner: Proxier;
  private readonly deps: ConntrackCleanerDeps;
  private readonly serviceChanges = new ServiceChangeTracker();
  private readonly endpointChanges: EndpointsChangeTracker;
  private state: ProxyState;
  private pending: Pending[] = [];
  private lastSeenSync = 0;
  /** The topology of the next fold. */
  private topology: Topology;
  /** When the oldest change not yet folded into `state` arrived. */
  private firstUnfolded: number | undefined;
  private stopped = false;
  private wake = new AbortController();
  private loopDone: Promise<void> | undefined;

  constructor(inner: Proxier, deps: ConntrackCleanerDeps) {
    this.inner = inner;
    this.deps = deps;
    this.endpointChanges = new EndpointsChangeTracker(deps.nodeName);
    this.topology = { nodeName: deps.nodeName, zone: '' };
    this.state = { services: new Map(), endpoints: new Map(), topology: this.topology };
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
    this.noteChange(this.serviceChanges.update(undefined, svc));
  }
  onServiceUpdate(prev: V1Service, svc: V1Service): void {
    this.inner.onServiceUpdate(prev, svc);
    this.noteChange(this.serviceChanges.update(prev, svc));
  }
  onServiceDelete(svc: V1Service): void {
    this.inner.onServiceDelete(svc);
    this.noteChange(this.serviceChanges.update(svc, undefined));
  }
  onSliceAdd(slice: V1EndpointSlice): void {
    this.inner.onSliceAdd(slice);
    this.noteChange(this.endpointChanges.update(undefined, slice));
  }
  onSliceUpdate(prev: V1EndpointSlice, slice: V1EndpointSlice): void {
    this.inner.onSliceUpdate(prev, slice);
    this.noteChange(this.endpointChanges.update(prev, slice));
  }
  onSliceDelete(slice: V1EndpointSlice): void {
    this.inner.onSliceDelete(slice);
    this.noteChange(this.endpointChanges.update(slice, undefined));
  }
  setLocalDetector(detector: LocalDetector): void {
    this.inner.setLocalDetector(detector);
  }
  setServiceCIDRs(cidrs: readonly string[]): void {
    this.inner.setServiceCIDRs(cidrs);
  }
  onTopologyChange(labels: Readonly<Record<string, string>>): void {
    this.inner.onTopologyChange(labels);
    const zone = zoneOf(labels);
    if (zone === this.topology.zone) return;
    this.topology = { ...this.topology, zone };
    this.noteChange(true);
  }

  /**
   * Notes a change; the loop folds changes in batches (at most once per poll
   * interval), since a fold copies and compares every service: per event it
   * made loading a big cluster quadratic.
   */
  private noteChange(pending: boolean): void {
    if (!pending) return;
    this.firstUnfolded ??= this.deps.clock.now();
    // Already woken: abort() would still make a DOMException (see BoundedFrequencyRunner.wakeUp).
    if (!this.wake.signal.aborted) this.wake.abort();
  }

  /** Folds the pending changes into the state and queues the deletes they call for. */
  private fold(): void {
    const after = this.firstUnfolded;
    if (after === undefined) return;
    this.firstUnfolded = undefined;
    const prev = this.state;
    const next: ProxyState = { services: new Map(prev.services), endpoints: new Map(prev.endpoints), topology: this.topology };
    this.serviceChanges.drain(next.services);
    this.endpointChanges.drain(next.endpoints);
    this.state = next;
    const deletions = conntrackDeletions(prev, next);
    if (deletions.length === 0) return;
    this.pending.push({ deletions, after, passes: 2 });
  }

  private async loop(): Promise<void> {
    const pollMs = this.deps.pollMs ?? 200;
    while (!this.stopped) {
      this.fold();
      if (this.pending.length > 0) {
        try {
          await this.runDue();
        } catch (err) {
          this.deps.log.warn('conntrack cleanup failed', { error: describeError(err) });
        }
      }
      this.wake = new AbortController();
      // Idle until a change comes; while deletes wait, look for a finished sync.
      await this.deps.clock.sleep(this.pending.length > 0 ? pollMs : 2 ** 31 - 1, this.wake.signal);
      // Changes keep coming while a cluster loads: gather them before the next fold.
      if (this.firstUnfolded !== undefined && !this.stopped) await this.deps.clock.sleep(Math.min(pollMs, 100));
    }
  }

  private async runDue(): Promise<void> {
    const synced = await this.deps.lastSynced();
    if (synced === undefined || synced <= this.lastSeenSync) return;
    this.lastSeenSync = synced;
    const due = this.pending.filter((p) => synced > p.after);
    for (const p of due) {
      for (const args of p.deletions) await this.conntrack(args);
      p.passes--;
    }
    this.pending = this.pending.filter((p) => p.passes > 0);
  }

  private async conntrack(args: string[]): Promise<void> {
    const res = await this.deps.exec('conntrack', args, { allowFail: true, timeoutMs: 10_000 });
    // Exit 1 with "0 flow entries have been deleted" is the normal nothing-to-do.
    if (res.code === 0 || /0 flow entries/.test(res.stderr)) {
      this.deps.log.debug('conntrack entries cleared', { args: args.join(' '), result: res.stderr.trim() });
      return;
    }
    this.deps.log.warn('conntrack delete failed', { args: args.join(' '), code: res.code, stderr: res.stderr.trim().slice(0, 300) });
  }
}
