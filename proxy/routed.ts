// Which endpoint addresses the proxy sends new connections to, as of its last
// successful sync. The agent asks before it stops a deleted pod's containers
// (GET /nodelet/routed?ip=A on the health-check server), so a rolling update
// loses no requests: the pod is signalled only once no new connection can
// reach it. Kept as a snapshot of the synced state (map copies, no walk) and
// worked out on the first question after each sync.
import { categorizeEndpoints, type Topology } from './categorize.ts';
import type { EndpointsMap, ServiceMap } from './changetracker.ts';
import { portKey } from './types.ts';

export interface RoutedSource {
  /**
   * Ready endpoint IPs that new connections go to; undefined before the first
   * successful sync. Serving terminating endpoints that the rules use only
   * because nothing is ready are left out: no wait would take them out of
   * the rules while the pod lives, so the agent should not wait for them.
   */
  routedEndpoints(): ReadonlySet<string> | undefined;
}

/** What a successful sync programmed: copies of the maps (their values are replaced, never changed). */
export interface SyncedState {
  services: ServiceMap;
  endpoints: EndpointsMap;
  topology?: Topology | undefined;
}

export class RoutedSnapshot implements RoutedSource {
  private snap: SyncedState | undefined;
  private ips: Set<string> | undefined;

  /** After a successful sync: takes the snapshot (returned, for others to share). */
  synced(services: ServiceMap, endpoints: EndpointsMap, topology?: Topology): SyncedState {
    this.snap = { services: new Map(services), endpoints: new Map(endpoints), topology };
    this.ips = undefined;
    return this.snap;
  }

  routedEndpoints(): ReadonlySet<string> | undefined {
    if (!this.snap) return undefined;
    if (!this.ips) {
      const ips = new Set<string>();
      for (const [svc, ports] of this.snap.services) {
        const byPort = this.snap.endpoints.get(svc);
        if (!byPort) continue;
        for (const sp of ports) {
          const { reachable } = categorizeEndpoints(byPort.get(portKey(sp)) ?? [], sp, this.snap.topology);
          for (const e of reachable) if (e.ready) ips.add(e.ip);
        }
      }
      this.ips = ips;
    }
    return this.ips;
  }
}
