// A stateful fake of proxy/nftables/nft.ts: it parses the one-command-a-line
// subset of `nft -f` that the nftables proxy writes (tables, maps, sets,
// chains, rules, elements) into a model of table `ip nodelet` (`ip6
// nodelet` for an IPv6 fake) and applies a transaction all or nothing,
// failing as the kernel does: a rule or verdict
// naming a missing chain or map, a chain or map deleted while still
// referenced, an element added under an existing key with another value, an
// element deleted that is not there; and, as nft 1.0.6 would, a DNAT map
// whose typeof says `th dport`, or a key of another protocol than its typeof's
// (the rule would never match it). checkInvariants() then looks for what
// nft would accept but the proxy must never leave: a verdict whose DNAT map
// lacks an index below its chain's `mod k`, DNAT elements nothing can reach,
// chains and maps nothing uses.
import { NodeletError } from '../../lib/errors.ts';
import type { IPFamily } from '../../lib/ip.ts';
import type { Nft } from '../../proxy/nftables/nft.ts';
import { isStaticChain, tableOf } from '../../proxy/nftables/rules.ts';

export interface FakeMap {
  decl: string;
  isSet: boolean;
  elements: Map<string, string>;
}

export interface FakeChain {
  hook?: string;
  rules: string[];
}

interface State {
  exists: boolean;
  maps: Map<string, FakeMap>;
  chains: Map<string, FakeChain>;
}

const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

function clone(s: State): State {
  return {
    exists: s.exists,
    maps: new Map([...s.maps].map(([n, m]) => [n, { decl: m.decl, isSet: m.isSet, elements: new Map(m.elements) }])),
    chains: new Map([...s.chains].map(([n, c]) => [n, { ...c, rules: [...c.rules] }])),
  };
}

/** Chains a rule or verdict sends packets to (goto/jump). */
export function targets(text: string): string[] {
  return [...text.matchAll(/\b(?:goto|jump) (\w+)/g)].map((m) => m[1] as string);
}

/** Maps and sets a rule reads (@name). */
export function mapRefs(text: string): string[] {
  return [...text.matchAll(/@(\w+)/g)].map((m) => m[1] as string);
}

function splitItems(body: string): string[] {
  return body.split(',').map((s) => s.trim()).filter((s) => s !== '');
}

export class FakeNft implements Nft {
  /** The one table it models ("ip nodelet"), and that as a regular expression. */
  private readonly T: string;
  private readonly P: string;
  private state: State = { exists: false, maps: new Map(), chains: new Map() };
  /** Every transaction given to apply(), in order (failed ones too). */
  readonly transactions: string[] = [];
  /** The next this-many apply() calls fail (recorded, nothing applied). */
  failApplies = 0;

  constructor(family: IPFamily = 'IPv4') {
    this.T = tableOf(family);
    this.P = esc(this.T);
  }

  get exists(): boolean {
    return this.state.exists;
  }
  get maps(): ReadonlyMap<string, FakeMap> {
    return this.state.maps;
  }
  get chains(): ReadonlyMap<string, FakeChain> {
    return this.state.chains;
  }
  elements(map: string): Map<string, string> {
    return this.state.maps.get(map)?.elements ?? new Map();
  }

  async apply(text: string): Promise<void> {
    this.applyNow(text);
  }

  /** Applies a transaction now; throws NodeletError PROXY_NFT_FAILED and changes nothing on failure. */
  applyNow(text: string): void {
    this.transactions.push(text);
    if (this.failApplies > 0) {
      this.failApplies--;
      throw new NodeletError('PROXY_NFT_FAILED', 'nft -f -: Error: injected failure');
    }
    const work = clone(this.state);
    text.split('\n').forEach((raw, i) => {
      const line = raw.trim();
      if (line === '' || line.startsWith('#')) return;
      try {
        this.command(work, line);
      } catch (err) {
        throw new NodeletError('PROXY_NFT_FAILED', `nft -f -: line ${i + 1}: Error: ${(err as Error).message}: ${line.slice(0, 200)}`);
      }
    });
    this.state = work;
  }

  private command(s: State, line: string): void {
    const { T, P } = this;
    let m: RegExpExecArray | null;
    if (line === `add table ${T}`) {
      if (!s.exists) Object.assign(s, { exists: true, maps: new Map(), chains: new Map() });
      return;
    }
    if (line === `delete table ${T}`) {
      if (!s.exists) throw new Error('No such file or directory (table)');
      Object.assign(s, { exists: false, maps: new Map(), chains: new Map() });
      return;
    }
    if (!s.exists) throw new Error('No such file or directory (no table)');
    if ((m = new RegExp(`^add (map|set) ${P} (\\w+) \\{ (.+); \\}$`).exec(line))) {
      const [, kind, name, decl] = m as unknown as [string, string, string, string];
      const old = s.maps.get(name);
      if (old && (old.decl !== decl || old.isSet !== (kind === 'set'))) throw new Error('File exists (other type)');
      // nft 1.0.6 cannot read such a map back from the kernel ("conflicting protocols specified: ip vs. th").
      if (/^typeof .*\bth dport/.test(decl)) throw new Error('conflicting protocols specified: ip vs. th');
      if (!old) s.maps.set(name, { decl, isSet: kind === 'set', elements: new Map() });
      return;
    }
    if ((m = new RegExp(`^delete (?:map|set) ${P} (\\w+)$`).exec(line))) {
      const name = m[1] as string;
      if (!s.maps.has(name)) throw new Error(`No such file or directory (map ${name})`);
      for (const [cn, c] of s.chains) if (c.rules.some((r) => mapRefs(r).includes(name))) throw new Error(`Device or resource busy (map ${name} used by ${cn})`);
      s.maps.delete(name);
      return;
    }
    if ((m = new RegExp(`^add chain ${P} (\\w+)(?: \\{ (.+) \\})?$`).exec(line))) {
      const [, name, hook] = m as unknown as [string, string, string | undefined];
      const old = s.chains.get(name);
      if (old && old.hook !== hook) throw new Error(`File exists (chain ${name} with another hook)`);
      if (!old) s.chains.set(name, hook ? { hook, rules: [] } : { rules: [] });
      return;
    }
    if ((m = new RegExp(`^flush chain ${P} (\\w+)$`).exec(line))) {
      const c = s.chains.get(m[1] as string);
      if (!c) throw new Error(`No such file or directory (chain ${m[1]})`);
      c.rules = [];
      return;
    }
    if ((m = new RegExp(`^delete chain ${P} (\\w+)$`).exec(line))) {
      const name = m[1] as string;
      if (!s.chains.has(name)) throw new Error(`No such file or directory (chain ${name})`);
      for (const [cn, c] of s.chains) if (cn !== name && c.rules.some((r) => targets(r).includes(name))) throw new Error(`Device or resource busy (chain ${name} used by ${cn})`);
      for (const [mn, mm] of s.maps) for (const v of mm.elements.values()) if (targets(v).includes(name)) throw new Error(`Device or resource busy (chain ${name} used by map ${mn})`);
      s.chains.delete(name);
      return;
    }
    if ((m = new RegExp(`^add rule ${P} (\\w+) (.+)$`).exec(line))) {
      const [, name, rule] = m as unknown as [string, string, string];
      const c = s.chains.get(name);
      if (!c) throw new Error(`No such file or directory (chain ${name})`);
      for (const t of targets(rule)) if (!s.chains.has(t)) throw new Error(`No such file or directory (jump target ${t})`);
      for (const r of mapRefs(rule)) if (!s.maps.has(r)) throw new Error(`No such file or directory (map ${r})`);
      c.rules.push(rule);
      return;
    }
    if ((m = new RegExp(`^(add|delete) element ${P} (\\w+) \\{ (.+) \\}$`).exec(line))) {
      const [, verb, name, body] = m as unknown as [string, string, string, string];
      const map = s.maps.get(name);
      if (!map) throw new Error(`No such file or directory (map ${name})`);
      for (const item of splitItems(body)) {
        const sep = item.indexOf(' : ');
        const key = sep >= 0 ? item.slice(0, sep) : item;
        const value = sep >= 0 ? item.slice(sep + 3) : '';
        if (verb === 'delete') {
          if (sep >= 0) throw new Error('syntax error (delete takes keys only)');
          if (!map.elements.delete(key)) throw new Error(`No such file or directory (element ${key})`);
          continue;
        }
        if (map.isSet !== (sep < 0)) throw new Error(`syntax error (element ${item} does not fit ${map.isSet ? 'set' : 'map'} ${name})`);
        if (key.split(' . ').length !== keyWidth(map.decl)) throw new Error(`datatype mismatch (key ${key} for ${map.decl})`);
        // A typeof naming `tcp dport` makes the DNAT rule reading the map match TCP only: a UDP key there is dead.
        const proto = /\b(tcp|udp|sctp) dport/.exec(map.decl)?.[1];
        if (proto && !key.split(' . ').includes(proto)) throw new Error(`protocol mismatch (key ${key} in a ${proto} map)`);
        for (const t of targets(value)) if (!s.chains.has(t)) throw new Error(`No such file or directory (verdict target ${t})`);
        const old = map.elements.get(key);
        if (old !== undefined && old !== value) throw new Error(`File exists (element ${key})`);
        map.elements.set(key, value);
      }
      return;
    }
    throw new Error('syntax error (command not understood by the fake)');
  }

  /**
   * What a correct ruleset never has; [] when fine. Follows every verdict
   * element to the chain that DNATs (through mark-and-goto chains) and checks
   * that its map holds indices 0..k-1 for that key, and that no DNAT element
   * is left that no verdict leads to.
   */
  checkInvariants(): string[] {
    const s = this.state;
    const problems: string[] = [];
    const used = new Set<string>();
    const usedMaps = new Set<string>();
    for (const [cn, c] of s.chains) {
      for (const r of c.rules) {
        for (const t of targets(r)) {
          used.add(t);
          if (!s.chains.has(t)) problems.push(`rule in ${cn} targets missing chain ${t}`);
        }
        for (const ref of mapRefs(r)) {
          usedMaps.add(ref);
          if (!s.maps.has(ref)) problems.push(`rule in ${cn} reads missing map ${ref}`);
        }
      }
    }
    const reached = new Map<string, number>(); // "map|key prefix" -> k
    for (const [mn, m] of s.maps) {
      for (const [key, value] of m.elements) {
        for (const t of targets(value)) {
          used.add(t);
          if (!s.chains.has(t)) {
            problems.push(`element ${key} of ${mn} targets missing chain ${t}`);
            continue;
          }
          const lb = this.balancer(t);
          if (!lb) continue;
          reached.set(`${lb.map}|${key}`, lb.k);
          const dm = s.maps.get(lb.map);
          for (let i = 0; i < lb.k; i++) {
            if (!dm?.elements.has(`${key} . ${i}`)) problems.push(`element ${key} of ${mn} -> ${t}: ${lb.map} has no index ${i}`);
          }
        }
      }
    }
    for (const [mn, m] of s.maps) {
      if (!/^dnat_/.test(mn)) continue;
      for (const key of m.elements.keys()) {
        const cut = key.lastIndexOf(' . ');
        const k = reached.get(`${mn}|${key.slice(0, cut)}`);
        if (k === undefined || Number(key.slice(cut + 3)) >= k) problems.push(`element ${key} of ${mn} is unreachable`);
      }
      if (!usedMaps.has(mn)) problems.push(`map ${mn} is not used by any rule`);
    }
    // The fixed chains may wait unused (no service has a Local policy yet); per-k chains may not.
    for (const cn of s.chains.keys()) if (!isStaticChain(cn) && !used.has(cn)) problems.push(`chain ${cn} is not used`);
    return problems;
  }

  /** The DNAT map and k of a load-balancing chain, following a leading mark-and-goto chain. */
  private balancer(chain: string, depth = 0): { map: string; k: number } | undefined {
    const c = this.state.chains.get(chain);
    if (!c || depth > 3) return undefined;
    for (const r of c.rules) {
      const m = /numgen random mod (\d+) map @(\w+)/.exec(r);
      if (m) return { k: Number(m[1]), map: m[2] as string };
      // Sticky: k pick chains, each DNATing through the same map with its own index.
      const v = /numgen random mod (\d+) vmap \{/.exec(r);
      if (v) {
        const picks = targets(r);
        const maps = new Set(picks.map((t) => (this.state.chains.get(t)?.rules ?? []).map((x) => / map @(\w+)/.exec(x)?.[1]).find(Boolean)));
        const [map] = maps;
        return maps.size === 1 && map && picks.length === Number(v[1]) ? { k: Number(v[1]), map } : undefined;
      }
    }
    const only = c.rules.length === 1 ? targets(c.rules[0] as string) : [];
    return only.length === 1 && /^meta mark set/.test(c.rules[0] as string) ? this.balancer(only[0] as string, depth + 1) : undefined;
  }
}

/** Fields in a map's key: `type a . b : v` or `typeof x . y : v`. */
function keyWidth(decl: string): number {
  const key = decl.replace(/^typeof |^type /, '').split(' : ')[0] ?? '';
  return key.split(' . ').length;
}

const _: Nft = new FakeNft();
void _;
