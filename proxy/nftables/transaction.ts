// Ruleset models (rules.ts) to `nft -f` text for the model's table (`ip
// nodelet`, or `ip6 nodelet` for IPv6). A full transaction replaces it
// atomically (add + delete + build, in one batch, so no packet sees it
// missing); an incremental one carries only the differences
// between the last applied model and the new one: element adds and deletes,
// new, changed and gone chains and maps. Both are pure and deterministic.
//
// One command per line, in an order nft accepts inside one batch: new maps
// and chains first (a verdict element or rule may only name what exists),
// then rules of new and changed chains, element deletes before adds (a changed
// value is delete + add), and last the chains and maps nothing uses any more.
import { tableOf, type NftChain, type NftMap, type Ruleset } from './rules.ts';
import type { Journal } from './state.ts';

/** Elements per `add element` command: nft parses one huge list slowly; chunks keep lines bounded. */
export const ELEMENTS_PER_COMMAND = 1000;

function mapCommand(T: string, name: string, m: NftMap): string {
  return `add ${m.isSet ? 'set' : 'map'} ${T} ${name} { ${m.decl}; }`;
}

function chainCommand(T: string, name: string, c: NftChain): string {
  return c.hook ? `add chain ${T} ${name} { ${c.hook} }` : `add chain ${T} ${name}`;
}

function ruleCommands(T: string, name: string, c: NftChain): string[] {
  return c.rules.map((r) => `add rule ${T} ${name} ${r}`);
}

function elementCommands(T: string, verb: 'add' | 'delete', name: string, items: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < items.length; i += ELEMENTS_PER_COMMAND) {
    out.push(`${verb} element ${T} ${name} { ${items.slice(i, i + ELEMENTS_PER_COMMAND).join(', ')} }`);
  }
  return out;
}

function element(m: NftMap, key: string, value: string): string {
  return m.isSet ? key : `${key} : ${value}`;
}

const byName = <V>(m: Map<string, V>) => [...m.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));

/** The whole table, replacing whatever the kernel's table of the family holds now. */
export function fullTransaction(rs: Ruleset): string {
  const T = tableOf(rs.family);
  const lines = [`add table ${T}`, `delete table ${T}`, `add table ${T}`];
  const maps = byName(rs.maps);
  const chains = byName(rs.chains);
  for (const [name, m] of maps) lines.push(mapCommand(T, name, m));
  for (const [name, c] of chains) lines.push(chainCommand(T, name, c));
  for (const [name, c] of chains) lines.push(...ruleCommands(T, name, c));
  for (const [name, m] of maps) {
    const items = [...m.elements].map(([k, v]) => element(m, k, v));
    lines.push(...elementCommands(T, 'add', name, items));
  }
  return lines.join('\n') + '\n';
}

function sameChain(a: NftChain, b: NftChain): boolean {
  return a.hook === b.hook && a.rules.length === b.rules.length && a.rules.every((r, i) => r === b.rules[i]);
}

export interface Diff {
  /** The transaction text; '' when nothing changed. */
  text: string;
  /** A base chain's hook changed: only a full transaction can do that. */
  needsFull: boolean;
  elementsAdded: number;
  elementsDeleted: number;
  chainsWritten: number;
}

/** The transaction that turns `prev` (as applied) into `next`. */
export function diffTransaction(prev: Ruleset, next: Ruleset): Diff {
  const T = tableOf(next.family);
  const lines: string[] = [];
  const diff: Diff = { text: '', needsFull: false, elementsAdded: 0, elementsDeleted: 0, chainsWritten: 0 };
  const nextMaps = byName(next.maps);
  const nextChains = byName(next.chains);

  for (const [name, m] of nextMaps) {
    const old = prev.maps.get(name);
    if (old && (old.decl !== m.decl || old.isSet !== m.isSet)) diff.needsFull = true;
    if (!old) lines.push(mapCommand(T, name, m));
  }
  const rewrite: [string, NftChain][] = [];
  for (const [name, c] of nextChains) {
    const old = prev.chains.get(name);
    if (!old) {
      lines.push(chainCommand(T, name, c));
      rewrite.push([name, c]);
    } else if (!sameChain(old, c)) {
      if (old.hook !== c.hook) diff.needsFull = true;
      rewrite.push([name, c]);
    }
  }
  for (const [name, c] of rewrite) {
    if (prev.chains.has(name)) lines.push(`flush chain ${T} ${name}`);
    lines.push(...ruleCommands(T, name, c));
  }
  diff.chainsWritten = rewrite.length;

  // Elements: deletes (gone or changed) before adds, map by map.
  const adds: string[] = [];
  for (const [name, m] of nextMaps) {
    const old = prev.maps.get(name);
    const del: string[] = [];
    const add: string[] = [];
    if (old) {
      for (const [k, v] of old.elements) {
        const now = m.elements.get(k);
        if (now === undefined || now !== v) del.push(k);
      }
    }
    for (const [k, v] of m.elements) {
      if (old?.elements.get(k) !== v) add.push(element(m, k, v));
    }
    lines.push(...elementCommands(T, 'delete', name, del));
    adds.push(...elementCommands(T, 'add', name, add));
    diff.elementsDeleted += del.length;
    diff.elementsAdded += add.length;
  }
  lines.push(...adds);

  // Gone chains: flush them all first (their rules may goto each other or name gone maps), then delete.
  const goneChains = byName(prev.chains).filter(([name]) => !next.chains.has(name));
  for (const [name] of goneChains) lines.push(`flush chain ${T} ${name}`);
  for (const [name] of goneChains) lines.push(`delete chain ${T} ${name}`);
  for (const [name, m] of byName(prev.maps)) {
    if (!next.maps.has(name)) lines.push(`delete ${m.isSet ? 'set' : 'map'} ${T} ${name}`);
  }
  diff.text = lines.length ? lines.join('\n') + '\n' : '';
  return diff;
}

/**
 * The transaction for what an NftState journal says was touched, against
 * the state's ruleset now: the same commands, in the same order, as
 * diffTransaction(before, now) would give, in time proportional to the change.
 */
export function journalTransaction(j: Journal, now: Ruleset): Diff {
  const T = tableOf(now.family);
  const lines: string[] = [];
  const diff: Diff = { text: '', needsFull: false, elementsAdded: 0, elementsDeleted: 0, chainsWritten: 0 };
  const sorted = <V>(m: Map<string, V>) => byName(m);

  for (const [name, old] of sorted(j.maps)) {
    const m = now.maps.get(name);
    if (m && !old) lines.push(mapCommand(T, name, m));
    if (m && old && (m.decl !== old.decl || m.isSet !== old.isSet)) diff.needsFull = true;
  }
  const rewrite: [string, NftChain][] = [];
  for (const [name, old] of sorted(j.chains)) {
    const c = now.chains.get(name);
    if (!c) continue;
    if (!old) {
      lines.push(chainCommand(T, name, c));
      rewrite.push([name, c]);
    } else if (!sameChain(old, c)) {
      if (old.hook !== c.hook) diff.needsFull = true;
      rewrite.push([name, c]);
    }
  }
  for (const [name, c] of rewrite) {
    if (j.chains.get(name)) lines.push(`flush chain ${T} ${name}`);
    lines.push(...ruleCommands(T, name, c));
  }
  diff.chainsWritten = rewrite.length;

  const adds: string[] = [];
  for (const [name, touched] of sorted(j.elements)) {
    const m = now.maps.get(name);
    const existed = !j.maps.has(name) || j.maps.get(name) !== undefined;
    const del: string[] = [];
    const add: string[] = [];
    for (const [k, before] of [...touched].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
      const after = m?.elements.get(k);
      if (before === after) continue;
      // A map that is new in this transaction holds nothing yet; a gone one takes its elements with it.
      if (before !== undefined && existed && m) del.push(k);
      if (after !== undefined && m) add.push(element(m, k, after));
    }
    lines.push(...elementCommands(T, 'delete', name, del));
    adds.push(...elementCommands(T, 'add', name, add));
    diff.elementsDeleted += del.length;
    diff.elementsAdded += add.length;
  }
  lines.push(...adds);

  const goneChains = sorted(j.chains).filter(([name, old]) => old && !now.chains.has(name));
  for (const [name] of goneChains) lines.push(`flush chain ${T} ${name}`);
  for (const [name] of goneChains) lines.push(`delete chain ${T} ${name}`);
  for (const [name, old] of sorted(j.maps)) {
    if (old && !now.maps.has(name)) lines.push(`delete ${old.isSet ? 'set' : 'map'} ${T} ${name}`);
  }
  diff.text = lines.length ? lines.join('\n') + '\n' : '';
  return diff;
}

/** Elements in all maps and sets of a ruleset (for metrics). */
export function countElements(rs: Ruleset): number {
  let n = 0;
  for (const m of rs.maps.values()) n += m.elements.size;
  return n;
}
