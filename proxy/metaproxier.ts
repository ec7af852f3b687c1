// A dual-stack node's proxier, as upstream's MetaProxier: one proxier per IP
// family, each with its own tables and sync loop. Services go to both (each
// keeps its family's cluster IP); EndpointSlices go by their addressType.
import type { V1EndpointSlice, V1Service } from '@kubernetes/client-node';
import { ipFamilyOf } from '../lib/ip.ts';
import type { LocalDetector } from './localdetect.ts';
import type { Proxier } from './proxier.ts';
import type { IPFamily } from './types.ts';

export class MetaProxier implements Proxier {
  private readonly byFamily: ReadonlyMap<IPFamily, Proxier>;

  /** `proxiers`: the primary family's first. */
  constructor(proxiers: ReadonlyMap<IPFamily, Proxier>) {
    this.byFamily = proxiers;
  }

  private get all(): Proxier[] {
    return [...this.byFamily.values()];
  }

  start(): void {
    for (const p of this.all) p.start();
  }

  async stop(): Promise<void> {
    await Promise.all(this.all.map((p) => p.stop()));
  }

  onServiceAdd(svc: V1Service): void {
    for (const p of this.all) p.onServiceAdd(svc);
  }
  onServiceUpdate(prev: V1Service, svc: V1Service): void {
    for (const p of this.all) p.onServiceUpdate(prev, svc);
  }
  onServiceDelete(svc: V1Service): void {
    for (const p of this.all) p.onServiceDelete(svc);
  }

  /** The proxier of a slice's addressType (none for FQDN slices: nothing proxies those). */
  private forSlice(slice: V1EndpointSlice): Proxier | undefined {
    const t = slice.addressType;
    return t === 'IPv4' || t === 'IPv6' ? this.byFamily.get(t) : undefined;
  }
  onSliceAdd(slice: V1EndpointSlice): void {
    this.forSlice(slice)?.onSliceAdd(slice);
  }
  onSliceUpdate(prev: V1EndpointSlice, slice: V1EndpointSlice): void {
    this.forSlice(slice)?.onSliceUpdate(prev, slice);
  }
  onSliceDelete(slice: V1EndpointSlice): void {
    this.forSlice(slice)?.onSliceDelete(slice);
  }

  onTopologyChange(labels: Readonly<Record<string, string>>): void {
    for (const p of this.all) p.onTopologyChange(labels);
  }

  /** A CIDR detector goes to its family's proxier; an interface detector to both. */
  setLocalDetector(detector: LocalDetector): void {
    const family = 'cidr' in detector ? ipFamilyOf(detector.cidr) : undefined;
    if (family) this.byFamily.get(family)?.setLocalDetector(detector);
    else for (const p of this.all) p.setLocalDetector(detector);
  }

  setServiceCIDRs(cidrs: readonly string[]): void {
    for (const p of this.all) p.setServiceCIDRs(cidrs);
  }

  /** Every family's routed endpoints; undefined until each has synced once. */
  routedEndpoints(): ReadonlySet<string> | undefined {
    const out = new Set<string>();
    for (const p of this.all) {
      const ips = p.routedEndpoints();
      if (!ips) return undefined;
      for (const ip of ips) out.add(ip);
    }
    return out;
  }
}
