// Removing what a proxy mode leaves in the kernel, as kube-proxy's
// CleanupLeftovers: at start, the other modes' rules (a node switched from
// userspace to iptables mode, or to nftables mode, would otherwise keep
// sending service traffic to the old mode's chains: REDIRECTs to a proxy that
// is gone, DNATs to endpoints that are not tracked any more), and every
// mode's on `nodelet proxy --cleanup`.
//
// Both IP families are cleaned whatever the node's (as upstream's: a node
// that was dual-stack, or ran the other family, may have left either):
// iptables and ip6tables, the nft tables `ip nodelet` and `ip6 nodelet`.
// The iptables part is one `iptables-restore --noflush` per table: our chains
// declared (which flushes them), the jumps into them from built-in chains
// deleted, then the chains deleted. A chain that a chain not ours jumps to is
// left alone (with what it jumps to), not torn out from under its user.
import { describeError } from '../lib/errors.ts';
import type { Exec } from '../lib/exec.ts';
import type { IPFamily } from '../lib/ip.ts';
import type { Logger } from '../lib/log.ts';
import { CANARY_CHAIN } from './iptables/canary.ts';
import { ruleTarget, type Table } from './iptables/iptables.ts';
import { binariesFor, type Backend, saveRulesets, saveTables, WAIT_FLAGS } from './iptables/restore.ts';
import {
  isServiceChain,
  KUBE_EXTERNAL_SERVICES,
  KUBE_FIREWALL,
  KUBE_FORWARD,
  KUBE_MARK_MASQ,
  KUBE_NODEPORTS,
  KUBE_POSTROUTING,
  KUBE_SERVICES,
} from './iptables/rules.ts';
import { ipKeyword, TABLE as NFT_TABLE, tableOf } from './nftables/rules.ts';
import type { ProxyMode } from './proxier.ts';
import { NODEPORT_CONTAINER, NODEPORT_HOST, NODEPORT_NON_LOCAL, PORTALS_CONTAINER, PORTALS_HOST } from './userspace/rules.ts';

/** Upstream's filter chain for LoadBalancer source ranges: not made by nodelet, removed if found. */
const KUBE_PROXY_FIREWALL = 'KUBE-PROXY-FIREWALL';

type OwnedTable = 'nat' | 'filter' | 'mangle';
const TABLES: readonly OwnedTable[] = ['nat', 'filter', 'mangle'];

const FAMILIES: readonly IPFamily[] = ['IPv4', 'IPv6'];

/** The chains each iptables-based mode makes, by table (iptables mode's per-service chains by prefix). */
const MODE_CHAINS: Record<'iptables' | 'userspace', Record<OwnedTable, ReadonlySet<string>>> = {
  iptables: {
    nat: new Set([KUBE_SERVICES, KUBE_NODEPORTS, KUBE_POSTROUTING, KUBE_MARK_MASQ, CANARY_CHAIN]),
    filter: new Set([KUBE_SERVICES, KUBE_EXTERNAL_SERVICES, KUBE_FORWARD, KUBE_NODEPORTS, KUBE_FIREWALL, KUBE_PROXY_FIREWALL, CANARY_CHAIN]),
    mangle: new Set([CANARY_CHAIN]),
  },
  userspace: {
    nat: new Set([PORTALS_CONTAINER, PORTALS_HOST, NODEPORT_CONTAINER, NODEPORT_HOST]),
    filter: new Set([NODEPORT_NON_LOCAL]),
    mangle: new Set(),
  },
};

/** The modes whose leftovers a proxy running in `mode` removes at start; 'all' for --cleanup. */
export function leftoverModes(mode: ProxyMode | 'all'): ProxyMode[] {
  const all: ProxyMode[] = ['iptables', 'userspace', 'nftables'];
  return mode === 'all' ? all : all.filter((m) => m !== mode);
}

/** Whether `chain` of `table` belongs to one of `modes`. */
export function ownedChain(modes: readonly ProxyMode[], table: OwnedTable, chain: string): boolean {
  for (const m of modes) {
    if (m === 'nftables') continue;
    if (MODE_CHAINS[m][table].has(chain)) return true;
    if (m === 'iptables' && table === 'nat' && isServiceChain(chain)) return true;
  }
  return false;
}

export interface TableCleanup {
  /** Restore text for `--noflush`, or undefined when nothing is ours. */
  text?: string;
  /** Chains the text deletes. */
  removed: string[];
  /** Our chains left in place because a chain not ours jumps to them (directly or through another). */
  kept: string[];
}

/**
 * What removes the chains `owned` picks from one table, given its
 * iptables-save text (pure). Built-in chains' jumps into them are deleted;
 * a user chain's jump keeps its target (and everything that one reaches).
 */
export function tableCleanup(table: Table, save: string, owned: (chain: string) => boolean): TableCleanup {
  const builtin = new Set<string>();
  const ours = new Set<string>();
  for (const line of save.split('\n')) {
    const m = /^:(\S+) (\S+)/.exec(line);
    if (!m) continue;
    if (m[2] !== '-') builtin.add(m[1]!);
    else if (owned(m[1]!)) ours.add(m[1]!);
  }
  if (ours.size === 0) return { removed: [], kept: [] };

  const deletes: string[] = [];
  const keep: string[] = [];
  // Our chains' rules, for following jumps from a kept chain (only needed when one is kept).
  const oursRules: string[] = [];
  for (const line of save.split('\n')) {
    if (!line.startsWith('-A ')) continue;
    const sp = line.indexOf(' ', 3);
    const chain = line.slice(3, sp < 0 ? undefined : sp);
    if (ours.has(chain)) {
      oursRules.push(line);
      continue;
    }
    const target = ruleTarget(line.slice(sp + 1));
    if (target === undefined || !ours.has(target)) continue;
    if (builtin.has(chain)) deletes.push(`-D ${line.slice(3)}`);
    else keep.push(target);
  }
  const kept = new Set<string>();
  while (keep.length > 0) {
    const c = keep.pop()!;
    if (kept.has(c)) continue;
    kept.add(c);
    for (const line of oursRules) {
      if (!line.startsWith(`-A ${c} `)) continue;
      const t = ruleTarget(line.slice(c.length + 4));
      if (t !== undefined && ours.has(t)) keep.push(t);
    }
  }
  const removed = [...ours].filter((c) => !kept.has(c)).sort().reverse();
  if (removed.length === 0) return { removed: [], kept: [...kept].sort() };
  const text = [
    `*${table}`,
    // Descending: both backends insert a chain that sorts first at the head (see rules.ts).
    ...removed.map((c) => `:${c} - [0:0]`),
    ...deletes,
    ...removed.map((c) => `-X ${c}`),
    'COMMIT',
    '',
  ].join('\n');
  return { text, removed, kept: [...kept].sort() };
}

export interface CleanupDeps {
  exec: Exec;
  log: Logger;
}

export interface CleanupReport {
  /** What went: "legacy nat KUBE-SERVICES", "legacy IPv6 nat KUBE-SERVICES", "nft table ip6 nodelet". */
  removed: string[];
  /** What failed, with why (the proxy goes on; --cleanup exits 1). */
  errors: string[];
}

/**
 * Removes the rules of `modes` from `backends` (iptables and ip6tables) and
 * nftables, for both IP families. `saved`: the backends' IPv4 rulesets when
 * already saved (saveRulesets); the IPv6 ones are saved here. A tool that
 * cannot run here (no binary, no permission, no IPv6) means there is nothing
 * of that kind to remove: logged at debug, not an error.
 */
export async function cleanupLeftovers(
  deps: CleanupDeps,
  modes: readonly ProxyMode[],
  backends: readonly Backend[],
  saved?: ReadonlyMap<Backend, string>,
): Promise<CleanupReport> {
  const report: CleanupReport = { removed: [], errors: [] };
  const chainModes = modes.filter((m) => m !== 'nftables');
  if (chainModes.length > 0) {
    for (const family of FAMILIES) {
      const rulesets = family === 'IPv4' && saved ? saved : await saveRulesets(deps.exec, backends, family);
      for (const backend of backends) {
        const save = rulesets.get(backend);
        if (save === undefined) deps.log.debug('no leftover check: the backend cannot save here', { backend, family });
        else await cleanupIptables(deps, chainModes, backend, family, saveTables(save), report);
      }
    }
  }
  if (modes.includes('nftables')) await cleanupNftables(deps, report);
  if (report.removed.length > 0) deps.log.info('removed leftover proxy rules', { modes, removed: summarize(report.removed) });
  for (const e of report.errors) deps.log.warn('leftover proxy rules not removed', { error: e });
  return report;
}

/** A log-sized list: per-service chains are counted, not listed. */
function summarize(removed: readonly string[]): string[] {
  const named = removed.filter((r) => !isServiceChain(r.split(' ').pop() ?? ''));
  const perService = removed.length - named.length;
  return perService > 0 ? [...named, `${perService} per-service chains`] : named;
}

async function cleanupIptables(
  deps: CleanupDeps,
  modes: readonly ProxyMode[],
  backend: Backend,
  family: IPFamily,
  tables: ReadonlyMap<string, string>,
  report: CleanupReport,
): Promise<void> {
  const bin = binariesFor(backend, family);
  // How the report names where a chain was: IPv4 as it always did.
  const where = family === 'IPv4' ? backend : `${backend} ${family}`;
  for (const table of TABLES) {
    const save = tables.get(table);
    if (save === undefined) continue; // a table the backend does not have holds nothing of ours
    const plan = tableCleanup(table, save, (c) => ownedChain(modes, table, c));
    if (plan.kept.length > 0) {
      deps.log.warn('leftover proxy chains kept: chains not ours jump to them', { backend, family, table, chains: plan.kept.slice(0, 20) });
    }
    if (!plan.text) continue;
    try {
      const res = await deps.exec(bin.restore, [...WAIT_FLAGS, '--noflush'], { input: plan.text, allowFail: true, timeoutMs: 120_000 });
      if (res.code !== 0) {
        report.errors.push(`${bin.restore} (${table}): ${res.stderr.trim().split('\n').pop() ?? `exit ${res.code}`}`);
        continue;
      }
    } catch (err) {
      report.errors.push(`${bin.restore} (${table}): ${describeError(err)}`);
      continue;
    }
    for (const c of plan.removed) report.removed.push(`${where} ${table} ${c}`);
  }
}

async function cleanupNftables(deps: CleanupDeps, report: CleanupReport): Promise<void> {
  let tables: string;
  try {
    const res = await deps.exec('nft', ['list', 'tables'], { allowFail: true, timeoutMs: 30_000 });
    if (res.code !== 0) {
      deps.log.debug('no leftover check: nft cannot list tables', { stderr: res.stderr.trim().slice(-300) });
      return;
    }
    tables = res.stdout;
  } catch (err) {
    deps.log.debug('no leftover check: nft not available', { error: describeError(err) });
    return;
  }
  const listed = new Set(tables.split('\n').map((l) => l.trim()));
  for (const family of FAMILIES) {
    const nftFamily = ipKeyword(family);
    const name = tableOf(family);
    if (!listed.has(`table ${name}`)) continue;
    try {
      const res = await deps.exec('nft', ['delete', 'table', nftFamily, NFT_TABLE], { allowFail: true, timeoutMs: 60_000 });
      if (res.code !== 0) report.errors.push(`nft delete table ${name}: ${res.stderr.trim().split('\n')[0] ?? `exit ${res.code}`}`);
      else report.removed.push(`nft table ${name}`);
    } catch (err) {
      report.errors.push(`nft delete table ${name}: ${describeError(err)}`);
    }
  }
}
