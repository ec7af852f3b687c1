// Chooses the nftables proxier of a family for --proxy-mode=nftables: checks
// that nft runs and the kernel takes the family's table, and when not, says
// so and returns undefined so that the caller falls back to iptables mode (as
// the issue asks: a node without nftables still gets a working proxy).
import type { Registry } from 'prom-client';
import type { Clock } from '../../lib/clock.ts';
import type { Exec } from '../../lib/exec.ts';
import type { Logger } from '../../lib/log.ts';
import type { Sysctl } from '../iptables/proxier.ts';
import { detectNft, ExecNft } from './nft.ts';
import { NftablesProxier, type NftablesProxierOptions } from './proxier.ts';
import { tableOf } from './rules.ts';

export interface NftablesSetupDeps {
  exec: Exec;
  clock: Clock;
  log: Logger;
  registry: Registry;
  sysctl: Sysctl;
  afterFullSync?: () => void;
}

/** The proxier of `options.family` (default IPv4), or undefined when nft cannot serve that family here. */
export async function newNftablesProxier(deps: NftablesSetupDeps, options: NftablesProxierOptions): Promise<NftablesProxier | undefined> {
  const family = options.family ?? 'IPv4';
  const found = await detectNft(deps.exec, family);
  if ('missing' in found) {
    // The caller says what happens instead (iptables mode, or the other family alone).
    deps.log.warn('nftables unavailable for this IP family', { ipFamily: family, reason: found.missing });
    return undefined;
  }
  const log = deps.log.child({ component: 'nftables', ipFamily: family });
  log.info('nftables proxier', { nft: found.version, table: tableOf(family), nodeIPs: options.nodeIPs.length ? options.nodeIPs : 'all local addresses' });
  return new NftablesProxier(
    { nft: new ExecNft(deps.exec), clock: deps.clock, log, registry: deps.registry, sysctl: deps.sysctl, afterFullSync: deps.afterFullSync },
    options,
  );
}
