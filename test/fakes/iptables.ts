// A stateful fake of proxy/iptables/iptables.ts: it parses restore text into a
// table -> chain -> rules model with iptables-restore's semantics (with
// --noflush: a declared chain is created or flushed, an undeclared one is kept,
// -X deletes; without it, the whole table is replaced), applies a table only at
// its COMMIT, and fails like iptables-restore on a jump to a missing chain or a
// -X of a chain still in use. checkInvariants() then looks for the mistakes a
// restore would accept: jumps into empty chains and service chains nobody uses.
import { NodeletError } from '../../lib/errors.ts';
import { inputText } from '../../lib/exec.ts';
import { formatArgs, ruleTarget, splitWords, type Iptables, type Table } from '../../proxy/iptables/iptables.ts';
import { isServiceChain } from '../../proxy/iptables/rules.ts';

const BUILTIN_CHAINS: Record<Table, readonly string[]> = {
  filter: ['INPUT', 'FORWARD', 'OUTPUT'],
  nat: ['PREROUTING', 'INPUT', 'OUTPUT', 'POSTROUTING'],
  mangle: ['PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING'],
  raw: ['PREROUTING', 'OUTPUT'],
};

export const BUILTIN_TARGETS: ReadonlySet<string> = new Set([
  'ACCEPT', 'DROP', 'REJECT', 'RETURN', 'DNAT', 'SNAT', 'MASQUERADE', 'MARK', 'LOG', 'CONNMARK', 'NOTRACK', 'REDIRECT',
]);

/** Entry chains that may legitimately be empty (no service has a node port). */
const MAY_BE_EMPTY: ReadonlySet<string> = new Set(['KUBE-NODEPORTS']);

/** Chain name -> rule specs (the text after `-A CHAIN `), in order. */
export type ChainMap = Map<string, string[]>;

function isTable(name: string): name is Table {
  return name in BUILTIN_CHAINS;
}

function emptyTable(table: Table): ChainMap {
  return new Map(BUILTIN_CHAINS[table].map((c) => [c, []]));
}

function cloneTable(t: ChainMap): ChainMap {
  return new Map([...t].map(([c, rules]) => [c, [...rules]]));
}

/** The chain a rule jumps or goes to, if any. */
function fail(lineNo: number, line: string, why: string): never {
  throw new NodeletError('PROXY_RESTORE_FAILED', `iptables-restore: line ${lineNo} failed (${why}): ${line}`);
}

export class FakeIptables implements Iptables {
  readonly tables = new Map<Table, ChainMap>((Object.keys(BUILTIN_CHAINS) as Table[]).map((t) => [t, emptyTable(t)]));
  /** Every restore input, in order. */
  readonly restores: string[] = [];
  /** The next this-many restore() calls fail (recorded, nothing applied), as a rejected iptables-restore. */
  failRestores = 0;
  /**
   * Only restores that write this table count against failRestores (undefined:
   * any); the tables before it in the input are committed, as iptables-restore
   * commits each table at its COMMIT.
   */
  failTable: Table | undefined;

  table(table: Table): ChainMap {
    const t = this.tables.get(table);
    if (!t) throw new Error(`no table ${table}`);
    return t;
  }

  chains(table: Table): Set<string> {
    return new Set(this.table(table).keys());
  }

  rules(table: Table, chain: string): string[] {
    return this.table(table).get(chain) ?? [];
  }

  /** Applies restore text now; throws NodeletError PROXY_RESTORE_FAILED and keeps the failed table unchanged. */
  applyRestore(text: string, opts: { noflush: boolean }): void {
    this.restores.push(text);
    this.apply(text, opts);
  }

  private apply(text: string, opts: { noflush: boolean }): void {
    let name: Table | undefined;
    let work: ChainMap | undefined;
    const lines = text.split('\n');
    for (const [i, raw] of lines.entries()) {
      const line = raw.trim();
      const n = i + 1;
      if (line === '' || line.startsWith('#')) continue;
      if (line.startsWith('*')) {
        if (work) fail(n, line, 'COMMIT expected');
        const t = line.slice(1);
        if (!isTable(t)) fail(n, line, 'unknown table');
        name = t;
        work = opts.noflush ? cloneTable(this.table(t)) : emptyTable(t);
        continue;
      }
      if (!work || !name) fail(n, line, 'no table');
      if (line === 'COMMIT') {
        this.tables.set(name, work);
        work = undefined;
        continue;
      }
      if (line.startsWith(':')) {
        const chain = line.slice(1).split(/\s+/)[0] ?? '';
        work.set(chain, []);
        continue;
      }
      const words = splitWords(line);
      const [op, chain = ''] = words;
      const spec = line.slice(line.indexOf(chain) + chain.length).trim();
      const rules = work.get(chain);
      switch (op) {
        case '-A':
        case '-I': {
          if (!rules) fail(n, line, `no chain ${chain}`);
          const target = ruleTarget(spec);
          if (target && !BUILTIN_TARGETS.has(target) && !work.has(target)) fail(n, line, `no chain/target ${target}`);
          if (op === '-A') rules.push(spec);
          else rules.unshift(spec);
          continue;
        }
        case '-F':
          if (!rules) fail(n, line, `no chain ${chain}`);
          rules.length = 0;
          continue;
        case '-X': {
          if (!rules) fail(n, line, `no chain ${chain}`);
          if (BUILTIN_CHAINS[name].includes(chain)) fail(n, line, 'builtin chain');
          if (rules.length > 0) fail(n, line, 'chain not empty');
          for (const [from, rs] of work) {
            if (rs.some((r) => ruleTarget(r) === chain)) fail(n, line, `chain still used by ${from}`);
          }
          work.delete(chain);
          continue;
        }
        default:
          fail(n, line, 'unknown command');
      }
    }
    if (work) fail(lines.length, '', 'COMMIT expected');
  }

  async restore(input: string | Iterable<string>, opts: { noflush: boolean }): Promise<void> {
    const text = inputText(input);
    const at = this.failTable === undefined ? 0 : `\n${text}`.indexOf(`\n*${this.failTable}\n`);
    if (this.failRestores > 0 && at >= 0) {
      this.failRestores--;
      this.restores.push(text);
      if (at > 0) this.apply(text.slice(0, at), opts);
      throw new NodeletError('PROXY_RESTORE_FAILED', 'iptables-restore: injected failure');
    }
    this.applyRestore(text, opts);
  }

  saveText(table: Table): string {
    const t = this.table(table);
    const builtin = BUILTIN_CHAINS[table];
    const out = [`*${table}`];
    // As both real backends list them: builtin chains, then the others sorted by name (however they were created).
    const order = [...builtin.filter((c) => t.has(c)), ...[...t.keys()].filter((c) => !builtin.includes(c)).sort()];
    for (const c of order) out.push(`:${c} ${builtin.includes(c) ? 'ACCEPT' : '-'} [0:0]`);
    for (const c of order) for (const r of t.get(c) ?? []) out.push(`-A ${c} ${r}`);
    out.push('COMMIT', '');
    return out.join('\n');
  }

  async save(table: Table): Promise<string> {
    return this.saveText(table);
  }

  async ensureChain(table: Table, chain: string): Promise<boolean> {
    const t = this.table(table);
    if (t.has(chain)) return true;
    t.set(chain, []);
    return false;
  }

  /** chainExists() throws this many times (iptables' lock busy). */
  failChecks = 0;

  async chainExists(table: Table, chain: string): Promise<boolean> {
    if (this.failChecks > 0) {
      this.failChecks--;
      throw new NodeletError('PROXY_RESTORE_FAILED', 'iptables: resource problem (injected)');
    }
    return this.table(table).has(chain);
  }

  async ensureRule(position: 'prepend' | 'append', table: Table, chain: string, args: readonly string[]): Promise<boolean> {
    const rules = this.table(table).get(chain);
    if (!rules) throw new NodeletError('PROXY_IPTABLES_FAILED', `iptables: no chain ${table}/${chain}`);
    const spec = formatArgs(args);
    if (rules.includes(spec)) return true;
    if (position === 'prepend') rules.unshift(spec);
    else rules.push(spec);
    return false;
  }

  /**
   * The problems a restore accepts but that are bugs in the rules, one line
   * each; [] when all is well:
   * - a rule jumps to something that is neither a builtin target nor a chain;
   * - a rule in one of our chains jumps to an empty chain (a no-op jump;
   *   jumps from builtin chains, and to KUBE-NODEPORTS, may find it empty);
   * - a per-service chain (KUBE-SVC/SVL/EXT/FW/SEP) that no rule jumps to
   *   (a stale chain that should have been deleted).
   */
  checkInvariants(): string[] {
    const problems: string[] = [];
    for (const [name, t] of this.tables) {
      const builtin = BUILTIN_CHAINS[name];
      const used = new Set<string>();
      for (const [chain, rules] of t) {
        for (const r of rules) {
          const target = ruleTarget(r);
          if (!target || BUILTIN_TARGETS.has(target)) continue;
          used.add(target);
          const dest = t.get(target);
          if (!dest) problems.push(`${name} ${chain}: jump to missing chain ${target}`);
          else if (dest.length === 0 && !builtin.includes(chain) && !MAY_BE_EMPTY.has(target)) problems.push(`${name} ${chain}: jump to empty chain ${target}`);
        }
      }
      for (const chain of t.keys()) {
        if (isServiceChain(chain) && !used.has(chain)) problems.push(`${name} ${chain}: not used by any rule`);
      }
    }
    return problems;
  }
}

// The compiler keeps the fake in step with the interface.
const _check: Iptables = new FakeIptables();
void _check;
