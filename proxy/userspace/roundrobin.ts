// The userspace proxy's load balancer, as upstream's LoadBalancerRR
// (pkg/proxy/userspace/roundrobin.go): per service port a list of "ip:port"
// endpoints walked round-robin. The list is shuffled whenever its set changes
// (so that many proxies do not all start on the same endpoint) and the index
// goes back to 0. With ClientIP affinity a client IP keeps its endpoint until
// it has been unused for ttlSeconds; a failed dial asks again with
// `resetAffinity`, which moves the client to the next endpoint.
import type { Clock } from '../../lib/clock.ts';
import { DEFAULT_STICKY_SECONDS } from '../types.ts';

export type Affinity = 'None' | 'ClientIP';

interface Sticky {
  endpoint: string;
  lastUsed: number;
}

interface Balancer {
  endpoints: string[];
  index: number;
  affinity: Affinity;
  ttlMs: number;
  /** Client IP -> its endpoint. */
  sticky: Map<string, Sticky>;
}

/** Fisher-Yates with an injectable random source (tests pass a seeded one). */
export function shuffle<T>(items: readonly T[], random: () => number): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    const a = out[i] as T;
    out[i] = out[j] as T;
    out[j] = a;
  }
  return out;
}

function sameSet(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  const set = new Set(a);
  return b.every((x) => set.has(x));
}

export class LoadBalancerRR {
  private readonly clock: Clock;
  private readonly random: () => number;
  private readonly services = new Map<string, Balancer>();

  constructor(clock: Clock, random: () => number = Math.random) {
    this.clock = clock;
    this.random = random;
  }

  private state(key: string): Balancer {
    let b = this.services.get(key);
    if (!b) {
      b = { endpoints: [], index: 0, affinity: 'None', ttlMs: DEFAULT_STICKY_SECONDS * 1000, sticky: new Map() };
      this.services.set(key, b);
    }
    return b;
  }

  /** Creates or updates a service port's affinity; its endpoints are kept. ttlSeconds 0 = the 3-hour default. */
  setService(key: string, affinity: Affinity, ttlSeconds: number): void {
    const b = this.state(key);
    if (b.affinity !== affinity) b.sticky.clear();
    b.affinity = affinity;
    b.ttlMs = (ttlSeconds > 0 ? ttlSeconds : DEFAULT_STICKY_SECONDS) * 1000;
  }

  deleteService(key: string): void {
    this.services.delete(key);
  }

  has(key: string): boolean {
    return this.services.has(key);
  }

  /** Sets the endpoints ("ip:port"). A changed set is shuffled and restarts the walk; clients of removed endpoints lose their affinity. */
  setEndpoints(key: string, endpoints: readonly string[]): void {
    const b = this.state(key);
    if (sameSet(b.endpoints, endpoints)) return;
    const keep = new Set(endpoints);
    for (const [ip, s] of b.sticky) if (!keep.has(s.endpoint)) b.sticky.delete(ip);
    b.endpoints = shuffle(endpoints, this.random);
    b.index = 0;
  }

  /** The current order of the walk (for tests and logs). */
  endpoints(key: string): readonly string[] {
    return this.services.get(key)?.endpoints ?? [];
  }

  hasEndpoints(key: string): boolean {
    return (this.services.get(key)?.endpoints.length ?? 0) > 0;
  }

  /** The endpoint for a new connection or UDP session from `clientIP`; undefined when there is none. */
  next(key: string, clientIP: string, resetAffinity = false): string | undefined {
    const b = this.services.get(key);
    if (!b || b.endpoints.length === 0) return undefined;
    const now = this.clock.now();
    const sticky = b.affinity === 'ClientIP';
    if (sticky && !resetAffinity) {
      const s = b.sticky.get(clientIP);
      if (s && now - s.lastUsed < b.ttlMs) {
        s.lastUsed = now;
        return s.endpoint;
      }
    }
    const endpoint = b.endpoints[b.index % b.endpoints.length] as string;
    b.index = (b.index + 1) % b.endpoints.length;
    if (sticky) b.sticky.set(clientIP, { endpoint, lastUsed: now });
    return endpoint;
  }

  /** Forgets affinity records older than their service's timeout (upstream does this on every sync). */
  cleanupStaleStickySessions(): void {
    const now = this.clock.now();
    for (const b of this.services.values()) {
      for (const [ip, s] of b.sticky) if (now - s.lastUsed >= b.ttlMs) b.sticky.delete(ip);
    }
  }

  /** Number of clients with affinity to some endpoint of `key`. */
  stickyClients(key: string): number {
    return this.services.get(key)?.sticky.size ?? 0;
  }
}
