// Chooses the nftables proxier for --proxy-mode=nftables: checks that nft
// runs and can talk to the kernel, and when it cannot, says so and returns
// undefined so that the caller falls back to iptables mode (as the issue
// asks: a node without nftables still gets a working proxy).
import type { Registry } from 'prom-client';
import type { Clock } from '../../lib/clock.ts';
import type { Exec } from '../../lib/exec.ts';
import type { Logger } from '../../lib/log.ts';
import type { Sysctl } from '../iptables/proxier.ts';
import { detectNft, ExecNft } from './nft.ts';
import { NftablesProxier, type NftablesProxierOptions } from './proxier.ts';

export interface NftablesSetupDeps {
  exec: Exec;
  clock: Clock;
  log: Logger;
  registry: Registry;
  sysctl: Sysctl;
  afterFullSync?: () => void;
}

export async function newNftablesProxier(deps: NftablesSetupDeps, options: NftablesProxierOptions): Promise<NftablesProxier | undefined> {
  const found = await detectNft(deps.exec);
  if ('missing' in found) {
    deps.log.warn('nftables mode unavailable, falling back to iptables mode', { reason: found.missing });
    return undefined;
  }
  const log = deps.log.child({ component: 'nftables' });
  log.info('nftables proxier', { nft: found.version, table: 'ip nodelet', nodeIPs: options.nodeIPs.length ? options.nodeIPs : 'all local addresses' });
  return new NftablesProxier(
    { nft: new ExecNft(deps.exec), clock: deps.clock, log, registry: deps.registry, sysctl: deps.sysctl, afterFullSync: deps.afterFullSync },
    options,
  );
}
