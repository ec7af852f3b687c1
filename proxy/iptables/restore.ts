// The real Iptables: one `iptables-restore --noflush` per call with the text on
// stdin, `iptables-save -t TABLE`, and -C (check) before -N/-I/-A for single
// chains and rules. Commands go through an injected Exec, so tests record argv
// and stdin. Which iptables backend (nf_tables or legacy) is chosen once, by
// detectBackend, as kube-proxy's iptables-wrapper does: the one whose tables
// already hold more rules wins, nft when equal.
import { NodeletError } from '../../lib/errors.ts';
import type { Exec, ExecResult } from '../../lib/exec.ts';
import type { IPFamily } from '../../lib/ip.ts';
import type { Iptables, Table } from './iptables.ts';

export type Backend = 'nft' | 'legacy';
export type BackendChoice = 'auto' | Backend;

/**
 * The xtables lock wait, as k8s.io/utils/iptables passes it to iptables and
 * to iptables-restore >= 1.6.2: wait up to 5 s, polling every 100 ms.
 */
export const WAIT_FLAGS: readonly string[] = ['-w', '5', '-W', '100000'];

/** iptables' exit status for a resource problem (the xtables lock not got in time). */
const RESOURCE_PROBLEM = 4;

export interface Binaries {
  iptables: string;
  save: string;
  restore: string;
}

/** The commands of a backend, for IPv4 (iptables-*) or IPv6 (ip6tables-*). */
export function binariesFor(backend: Backend, family: IPFamily = 'IPv4'): Binaries {
  const cmd = family === 'IPv6' ? 'ip6tables' : 'iptables';
  return {
    iptables: `${cmd}-${backend}`,
    save: `${cmd}-${backend}-save`,
    restore: `${cmd}-${backend}-restore`,
  };
}

/**
 * The legacy backend's commands, one at a time in this process. Legacy
 * iptables and ip6tables share one xtables lock, and a command that finds it
 * taken sleeps 100 ms (-W) before it tries again: a dual-stack proxy's two
 * proxiers sync at once (at start, on a flush), and a restore of one that
 * arrived while the other's held the lock lost up to 100 ms per try. Queued
 * here, the one that waits starts the moment the other ends. Saves take no
 * lock, and nft-backend commands none at all.
 */
let legacyQueue: Promise<unknown> = Promise.resolve();

function oneAtATime<T>(fn: () => Promise<T>): Promise<T> {
  const run = legacyQueue.then(fn, fn);
  legacyQueue = run.catch(() => undefined);
  return run;
}

/** The last non-empty line of stderr (iptables puts the reason there), or the exit code. */
function why(res: ExecResult): string {
  const lines = res.stderr.split('\n').map((l) => l.trim()).filter((l) => l !== '');
  return lines[lines.length - 1] ?? `exit ${res.code}`;
}

export class ExecIptables implements Iptables {
  readonly backend: Backend;
  private readonly exec: Exec;
  private readonly bin: Binaries;

  constructor(exec: Exec, backend: Backend, family: IPFamily = 'IPv4') {
    this.exec = exec;
    this.backend = backend;
    this.bin = binariesFor(backend, family);
  }

  /** Whether this family's iptables works here (upstream's Present(): nat POSTROUTING can be listed). */
  async present(): Promise<boolean> {
    return this.chainExists('nat', 'POSTROUTING').catch(() => false);
  }

  /** Runs a command; lock-taking ones of the legacy backend go through the queue (oneAtATime). */
  private async run(cmd: string, args: readonly string[], input?: string | Iterable<string>, locks = true): Promise<ExecResult> {
    const go = () => this.exec(cmd, args, { allowFail: true, ...(input !== undefined ? { input } : {}) });
    let res: ExecResult;
    try {
      res = await (locks && this.backend === 'legacy' ? oneAtATime(go) : go());
    } catch (err) {
      throw new NodeletError('PROXY_RESTORE_FAILED', `${cmd}: could not run`, { cause: err });
    }
    return res;
  }

  private fail(cmd: string, args: readonly string[], res: ExecResult): never {
    throw new NodeletError('PROXY_RESTORE_FAILED', `${cmd} ${args.join(' ')}: ${why(res)}`.slice(0, 2000));
  }

  async restore(text: string | Iterable<string>, opts: { noflush: boolean }): Promise<void> {
    const args = [...WAIT_FLAGS, ...(opts.noflush ? ['--noflush'] : [])];
    const res = await this.run(this.bin.restore, args, text);
    if (res.code !== 0) this.fail(this.bin.restore, args, res);
  }

  async save(table: Table): Promise<string> {
    const args = ['-t', table];
    const res = await this.run(this.bin.save, args, undefined, false);
    if (res.code !== 0) this.fail(this.bin.save, args, res);
    return res.stdout;
  }

  async ensureChain(table: Table, chain: string): Promise<boolean> {
    const args = [...WAIT_FLAGS, '-t', table, '-N', chain];
    const res = await this.run(this.bin.iptables, args);
    if (res.code === 0) return false;
    if (/already exists/i.test(res.stderr)) return true;
    this.fail(this.bin.iptables, args, res);
  }

  async chainExists(table: Table, chain: string): Promise<boolean> {
    const args = [...WAIT_FLAGS, '-t', table, '-S', chain];
    const res = await this.run(this.bin.iptables, args);
    // As k8s.io/utils/iptables: exit 4 (RESOURCE_PROBLEM, the lock) says nothing; any other failure is "no such chain".
    if (res.code === RESOURCE_PROBLEM) this.fail(this.bin.iptables, args, res);
    return res.code === 0;
  }

  async ensureRule(position: 'prepend' | 'append', table: Table, chain: string, rule: readonly string[]): Promise<boolean> {
    const base = [...WAIT_FLAGS, '-t', table];
    const check = await this.run(this.bin.iptables, [...base, '-C', chain, ...rule]);
    if (check.code === 0) return true;
    // -C exits 1 when the rule is missing; anything else (2: bad chain or option) is an error.
    if (check.code !== 1) this.fail(this.bin.iptables, [...base, '-C', chain, ...rule], check);
    const args = [...base, position === 'prepend' ? '-I' : '-A', chain, ...rule];
    const res = await this.run(this.bin.iptables, args);
    if (res.code !== 0) this.fail(this.bin.iptables, args, res);
    return false;
  }
}

/** Rules in iptables-save output that are ours: `-A KUBE-...` lines (kube-proxy's wrapper counts these). */
export function countKubeRules(saveText: string): number {
  let n = 0;
  for (const line of saveText.split('\n')) if (/^-A KUBE-/.test(line)) n++;
  return n;
}

/**
 * Each backend's whole ruleset of a family (`iptables-<backend>-save` or
 * ip6tables', every table it has); a backend that cannot run here (no binary, no permission) is left out.
 * At start the proxy saves once and both detectBackend and the leftover
 * cleanup read it.
 */
export async function saveRulesets(exec: Exec, backends: readonly Backend[], family: IPFamily = 'IPv4'): Promise<Map<Backend, string>> {
  const out = new Map<Backend, string>();
  await Promise.all(
    backends.map(async (b) => {
      try {
        const res = await exec(binariesFor(b, family).save, [], { allowFail: true, timeoutMs: 60_000 });
        if (res.code === 0) out.set(b, res.stdout);
      } catch {
        // binary missing
      }
    }),
  );
  return out;
}

/** The tables of iptables-save text by name, each from its `*name` line to its COMMIT. */
export function saveTables(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const m of text.matchAll(/^\*(\S+)\n[\s\S]*?^COMMIT$/gm)) out.set(m[1]!, m[0]);
  return out;
}

/**
 * The backend to use: `choice` when not 'auto'; else the one whose tables
 * hold more KUBE- rules (iptables-legacy-save vs iptables-nft-save, or the
 * rulesets `saved` already holds; a missing binary counts as zero), nft when equal.
 */
export async function detectBackend(exec: Exec, choice: BackendChoice = 'auto', saved?: ReadonlyMap<Backend, string>): Promise<Backend> {
  if (choice !== 'auto') return choice;
  const texts = saved ?? (await saveRulesets(exec, ['legacy', 'nft']));
  const [legacy, nft] = [countKubeRules(texts.get('legacy') ?? ''), countKubeRules(texts.get('nft') ?? '')];
  return legacy > nft ? 'legacy' : 'nft';
}
