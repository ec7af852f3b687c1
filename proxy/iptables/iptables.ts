// The iptables interface the proxy writes through (the real one runs
// iptables-restore / iptables-save; test/fakes/iptables.ts keeps a model), and
// the text helpers both sides share: quoting as iptables-save does, splitting
// a rule back into words, reading chain names out of iptables-save output.

export type Table = 'filter' | 'nat' | 'mangle' | 'raw';

export interface Iptables {
  /** Feeds restore-format text (one or more `*table ... COMMIT` blocks) to iptables-restore, whole or in pieces as they are made. */
  restore(text: string | Iterable<string>, opts: { noflush: boolean }): Promise<void>;
  /** The table in iptables-save format. */
  save(table: Table): Promise<string>;
  /** Creates the chain if missing; returns whether it existed. */
  ensureChain(table: Table, chain: string): Promise<boolean>;
  /** Whether the chain exists; throws when iptables cannot tell (the lock is busy). */
  chainExists(table: Table, chain: string): Promise<boolean>;
  /** Adds the rule (argv form, target included) if missing; returns whether it existed. */
  ensureRule(position: 'prepend' | 'append', table: Table, chain: string, args: readonly string[]): Promise<boolean>;
}

/** Quotes a word as iptables-save does: bare when only [A-Za-z0-9_-], else in double quotes. */
export function quoteArg(word: string): string {
  if (/^[A-Za-z0-9_-]+$/.test(word)) return word;
  return `"${word.replace(/["\\]/g, (c) => `\\${c}`)}"`;
}

/** Argv to one restore-format rule spec. Only --comment values can need quotes. */
export function formatArgs(args: readonly string[]): string {
  return args.map((a, i) => (args[i - 1] === '--comment' ? quoteArg(a) : a)).join(' ');
}

/** Splits a rule spec into words, undoing double quotes and backslash escapes. */
export function splitWords(spec: string): string[] {
  const words: string[] = [];
  let cur = '';
  let inWord = false;
  let quoted = false;
  for (let i = 0; i < spec.length; i++) {
    const c = spec[i] as string;
    if (quoted) {
      if (c === '\\' && i + 1 < spec.length) cur += spec[++i];
      else if (c === '"') quoted = false;
      else cur += c;
    } else if (c === '"') {
      quoted = inWord = true;
    } else if (c === ' ' || c === '\t') {
      if (inWord) words.push(cur);
      cur = '';
      inWord = false;
    } else {
      cur += c;
      inWord = true;
    }
  }
  if (quoted) throw new Error(`unterminated quote in: ${spec}`);
  if (inWord) words.push(cur);
  return words;
}

/** The chain or target a rule spec jumps or goes to (-j/-g), if any; quoted comments cannot fake one. */
export function ruleTarget(spec: string): string | undefined {
  const words = splitWords(spec);
  const i = words.findIndex((w) => w === '-j' || w === '-g' || w === '--jump' || w === '--goto');
  return i >= 0 ? words[i + 1] : undefined;
}

/** The chain names declared in iptables-save output (`:NAME POLICY [p:b]`) of one table. */
export function chainsFromSave(text: string): Set<string> {
  const out = new Set<string>();
  for (const line of text.split('\n')) {
    const m = /^:(\S+)\s/.exec(line);
    if (m?.[1]) out.add(m[1]);
  }
  return out;
}
