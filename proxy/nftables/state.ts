// The nftables proxy's model kept up to date one service at a time: NftState
// assembles the per-service fragments of rules.ts into a Ruleset, with
// reference counts for what services share, and journals what each change
// touched so that transaction.ts can send only that. buildRuleset is the
// whole model at once, from the same code.
import { portKey } from '../types.ts';
import {
  lbChain,
  serviceFragment,
  staticChains,
  staticMaps,
  STATIC_SETS,
  type Elem,
  type Fragment,
  type NftChain,
  type NftMap,
  type NftOptions,
  type NftRulesInput,
  type Ruleset,
} from './rules.ts';

interface Contender {
  owner: string;
  seq: number;
  elements: Elem[];
}

function before(a: Contender, b: Contender): boolean {
  return a.owner < b.owner || (a.owner === b.owner && a.seq < b.seq);
}

/** What changed since the last takeJournal(): the value (or absence) each touched thing had before. */
export interface Journal {
  elements: Map<string, Map<string, string | undefined>>;
  chains: Map<string, NftChain | undefined>;
  maps: Map<string, NftMap | undefined>;
}

const emptyJournal = (): Journal => ({ elements: new Map(), chains: new Map(), maps: new Map() });

/** The set elements of a fragment that other service ports may contribute too. */
function shared(frag: Fragment): Array<[set: string, key: string]> {
  return [...frag.hairpin.map((h) => ['hairpin', h] as [string, string]), ['cluster_ips', frag.clusterIP]];
}

function gotoTargets(value: string): string[] {
  return value.startsWith('goto ') ? [value.slice(5)] : [];
}

/**
 * The ruleset kept up to date service by service, so that one change costs
 * work in proportion to that change, not to the number of services: each
 * service port's fragment is added or taken back, claims keep their first
 * owner, shared elements (hairpin pairs) and load-balancing chains and maps
 * are reference counted, and a journal records what was touched for the
 * incremental transaction (transaction.ts journalTransaction).
 */
export class NftState {
  readonly rs: Ruleset;
  private readonly opts: NftOptions;
  private readonly frags = new Map<string, Fragment>();
  /** Service ("ns/name") -> its port keys with a fragment. */
  private readonly bySvc = new Map<string, Set<string>>();
  private readonly contenders = new Map<string, Contender[]>();
  /** Set elements several service ports may contribute ("set key"): hairpin pairs, cluster IPs. */
  private readonly sharedRefs = new Map<string, number>();
  private readonly chainRefs = new Map<string, number>();
  private readonly mapRefs = new Map<string, number>();
  private journal: Journal = emptyJournal();
  /** Off while a whole model is built (nothing to diff against): journaling every element would double the work. */
  private journaling: boolean;

  /** `journaling` false: record nothing until the first takeJournal(). */
  constructor(opts: NftOptions, journaling = true) {
    this.opts = opts;
    this.journaling = journaling;
    this.rs = { family: opts.family ?? 'IPv4', maps: new Map(), chains: new Map() };
    for (const [name, decl] of Object.entries(staticMaps(opts.family))) {
      this.rs.maps.set(name, { decl, isSet: STATIC_SETS.has(name), elements: new Map() });
    }
    for (const [name, c] of staticChains(opts)) this.rs.chains.set(name, c);
  }

  /** Service ports with endpoints whose Local policy finds none on this node. */
  noLocalEndpoints(): { internal: number; external: number } {
    let internal = 0;
    let external = 0;
    for (const f of this.frags.values()) {
      if (f.noLocalInternal) internal++;
      if (f.noLocalExternal) external++;
    }
    return { internal, external };
  }

  /** The port keys ("ns/name:port") of service `svc` ("ns/name") that have a fragment. */
  ownersOf(svc: string): string[] {
    return [...(this.bySvc.get(svc) ?? [])];
  }

  /** Replaces what service port `owner` ("ns/name:port") contributes (undefined: nothing). */
  set(owner: string, frag: Fragment | undefined): void {
    const old = this.frags.get(owner);
    if (old) this.remove(owner, old);
    if (frag) this.add(owner, frag);
    const svc = owner.split(':')[0] as string;
    const set = this.bySvc.get(svc) ?? new Set<string>();
    if (frag) set.add(owner);
    else set.delete(owner);
    if (set.size > 0) this.bySvc.set(svc, set);
    else this.bySvc.delete(svc);
  }

  /** Hands over the journal of the changes since the last call (and journals from now on). */
  takeJournal(): Journal {
    const j = this.journal;
    this.journal = emptyJournal();
    this.journaling = true;
    return j;
  }

  private add(owner: string, frag: Fragment): void {
    this.frags.set(owner, frag);
    frag.claims.forEach((c, seq) => {
      const me: Contender = { owner, seq, elements: c.elements };
      let list = this.contenders.get(c.key);
      if (!list) this.contenders.set(c.key, (list = []));
      const winner = list[0];
      let i = 0;
      while (i < list.length && before(list[i] as Contender, me)) i++;
      list.splice(i, 0, me);
      if (i === 0) {
        if (winner) this.retract(winner.elements);
        this.assert(me.elements);
      }
    });
    for (const [set, key] of shared(frag)) {
      const id = `${set} ${key}`;
      const n = this.sharedRefs.get(id) ?? 0;
      this.sharedRefs.set(id, n + 1);
      if (n === 0) this.setElement(set, key, '');
    }
  }

  private remove(owner: string, frag: Fragment): void {
    this.frags.delete(owner);
    frag.claims.forEach((c, seq) => {
      const list = this.contenders.get(c.key) ?? [];
      const i = list.findIndex((x) => x.owner === owner && x.seq === seq);
      if (i < 0) return;
      const gone = list.splice(i, 1)[0] as Contender;
      if (i === 0) {
        this.retract(gone.elements);
        if (list[0]) this.assert(list[0].elements);
      }
      if (list.length === 0) this.contenders.delete(c.key);
    });
    for (const [set, key] of shared(frag)) {
      const id = `${set} ${key}`;
      const n = (this.sharedRefs.get(id) ?? 0) - 1;
      if (n > 0) {
        this.sharedRefs.set(id, n);
      } else {
        this.sharedRefs.delete(id);
        this.setElement(set, key, undefined);
      }
    }
  }

  /** Makes the elements exist: chains (and their maps) first, so that DNAT entries find their map. */
  private assert(elements: readonly Elem[]): void {
    for (const [, , value] of elements) for (const t of gotoTargets(value)) this.refChain(t);
    for (const [map, key, value] of elements) this.setElement(map, key, value);
  }

  private retract(elements: readonly Elem[]): void {
    for (const [map, key] of elements) this.setElement(map, key, undefined);
    for (const [, , value] of elements) for (const t of gotoTargets(value)) this.unrefChain(t);
  }

  private setElement(map: string, key: string, value: string | undefined): void {
    const m = this.rs.maps.get(map);
    if (!m) {
      if (value === undefined) return;
      throw new Error(`element ${key} for undeclared map ${map}`);
    }
    if (this.journaling) {
      let touched = this.journal.elements.get(map);
      if (!touched) this.journal.elements.set(map, (touched = new Map()));
      if (!touched.has(key)) touched.set(key, m.elements.get(key));
    }
    if (value === undefined) m.elements.delete(key);
    else m.elements.set(key, value);
  }

  private refChain(name: string): void {
    const def = lbChain(name, this.opts);
    if (!def) return; // a fixed chain: always there
    const n = this.chainRefs.get(name) ?? 0;
    this.chainRefs.set(name, n + 1);
    if (n > 0) return;
    for (const m of def.maps) this.refMap(m.name, m.decl, m.isSet);
    for (const c of def.next) this.refChain(c);
    if (this.journaling && !this.journal.chains.has(name)) this.journal.chains.set(name, this.rs.chains.get(name));
    this.rs.chains.set(name, { rules: def.rules });
  }

  private unrefChain(name: string): void {
    const def = lbChain(name, this.opts);
    if (!def) return;
    const n = (this.chainRefs.get(name) ?? 0) - 1;
    if (n > 0) {
      this.chainRefs.set(name, n);
      return;
    }
    this.chainRefs.delete(name);
    if (this.journaling && !this.journal.chains.has(name)) this.journal.chains.set(name, this.rs.chains.get(name));
    this.rs.chains.delete(name);
    for (const c of def.next) this.unrefChain(c);
    for (const m of def.maps) this.unrefMap(m.name);
  }

  private refMap(name: string, decl: string, isSet: boolean): void {
    const n = this.mapRefs.get(name) ?? 0;
    this.mapRefs.set(name, n + 1);
    if (n > 0) return;
    if (this.journaling && !this.journal.maps.has(name)) this.journal.maps.set(name, this.rs.maps.get(name));
    this.rs.maps.set(name, { decl, isSet, elements: new Map() });
  }

  private unrefMap(name: string): void {
    const n = (this.mapRefs.get(name) ?? 0) - 1;
    if (n > 0) {
      this.mapRefs.set(name, n);
      return;
    }
    this.mapRefs.delete(name);
    // Its elements went with the claims that used its chain; any left are recorded so the journal stays exact.
    for (const key of [...(this.rs.maps.get(name)?.elements.keys() ?? [])]) this.setElement(name, key, undefined);
    if (this.journaling && !this.journal.maps.has(name)) this.journal.maps.set(name, this.rs.maps.get(name));
    this.rs.maps.delete(name);
  }
}

/** The whole desired ruleset. Deterministic: services in port-key order; a key claimed by an earlier service is skipped. */
export function buildRuleset(input: NftRulesInput): Ruleset {
  const { services, endpoints, ...opts } = input;
  const st = new NftState(opts, false);
  const sorted = [...services].map((sp) => [portKey(sp), sp] as const).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  for (const [key, sp] of sorted) st.set(key, serviceFragment(sp, endpoints.get(key) ?? [], opts));
  return st.rs;
}
