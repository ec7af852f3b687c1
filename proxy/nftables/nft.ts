// The nft interface the nftables proxy writes through: one `nft -f -` per
// transaction (nft applies a whole file as one atomic netlink batch, so a
// failed file changes nothing). The real one runs the binary through an
// injected Exec; test/fakes/nft.ts keeps a model of the table instead.
import { NodeletError } from '../../lib/errors.ts';
import type { Exec, ExecResult } from '../../lib/exec.ts';
import type { IPFamily } from '../../lib/ip.ts';
import { tableOf } from './rules.ts';

export interface Nft {
  /** Runs one transaction (nft -f syntax). Throws NodeletError PROXY_NFT_FAILED; nothing is applied then. */
  apply(text: string): Promise<void>;
}

/** The first error line nft printed (it names the failing command), or the exit code. */
function why(res: ExecResult): string {
  const lines = res.stderr.split('\n').map((l) => l.trim()).filter((l) => l !== '');
  return lines.find((l) => l.includes('Error')) ?? lines[0] ?? `exit ${res.code}`;
}

export class ExecNft implements Nft {
  private readonly exec: Exec;
  private readonly bin: string;

  constructor(exec: Exec, bin = 'nft') {
    this.exec = exec;
    this.bin = bin;
  }

  async apply(text: string): Promise<void> {
    let res: ExecResult;
    try {
      res = await this.exec(this.bin, ['-f', '-'], { input: text, allowFail: true, timeoutMs: 120_000 });
    } catch (err) {
      throw new NodeletError('PROXY_NFT_FAILED', `${this.bin}: could not run`, { cause: err });
    }
    if (res.code !== 0) throw new NodeletError('PROXY_NFT_FAILED', `${this.bin} -f -: ${why(res)}`.slice(0, 2000));
  }
}

/**
 * The nft version ("1.0.6"), or why nft cannot serve `family` here (no
 * binary, no nf_tables, no such table family in the kernel): the caller falls
 * back to iptables. As upstream (knftables), the probe is the family's table
 * added in check mode: the kernel validates the batch and commits nothing.
 */
export async function detectNft(exec: Exec, family: IPFamily = 'IPv4', bin = 'nft'): Promise<{ version: string } | { missing: string }> {
  try {
    const v = await exec(bin, ['--version'], { allowFail: true, timeoutMs: 10_000 });
    if (v.code !== 0) return { missing: `${bin} --version: ${why(v)}` };
    const probe = await exec(bin, ['--check', '-f', '-'], { input: `add table ${tableOf(family)}\n`, allowFail: true, timeoutMs: 10_000 });
    if (probe.code !== 0) return { missing: `${bin} --check add table ${tableOf(family)}: ${why(probe)}` };
    const m = /v?(\d+\.\d+(?:\.\d+)?)/.exec(v.stdout);
    return { version: m?.[1] ?? v.stdout.trim() };
  } catch (err) {
    return { missing: `${bin}: not found (${(err as Error).message})` };
  }
}
