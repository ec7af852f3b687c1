// --oom-score-adj: written to the proxy's own oom_score_adj at start; a
// kernel that refuses it is logged and the proxy goes on.
import { expect } from 'chai';
import { nullLogger } from '../../lib/log.ts';
import { parseProxyFlags } from '../../proxy/config.ts';
import { applyOomScoreAdj, OOM_SCORE_ADJ_FILE } from '../../proxy/oomscore.ts';

const host = { hostname: () => 'node-a', networkInterfaces: () => ({}) };
const parse = (...argv: string[]) => parseProxyFlags(['--kubeconfig=/k', ...argv], host);

describe('proxy --oom-score-adj', () => {
  it('defaults to upstream\'s -999 and takes -1000..1000', () => {
    expect(parse().oomScoreAdj).to.equal(-999);
    expect(parse('--oom-score-adj=0').oomScoreAdj).to.equal(0);
    expect(parse('--oom-score-adj', '-1000').oomScoreAdj).to.equal(-1000);
    expect(() => parse('--oom-score-adj=1001')).to.throw(/--oom-score-adj: 1001 is outside -1000\.\.1000/);
    expect(() => parse('--oom-score-adj=low')).to.throw(/--oom-score-adj: 'low' is not a whole number/);
  });

  it('writes the value to the process\'s own oom_score_adj', async () => {
    const writes: string[] = [];
    expect(await applyOomScoreAdj(-999, nullLogger(), async (f, t) => void writes.push(`${f}=${t}`))).to.equal(true);
    expect(writes).to.deep.equal([`${OOM_SCORE_ADJ_FILE}=-999\n`]);
  });

  it('goes on when the kernel refuses (no CAP_SYS_RESOURCE)', async () => {
    const refuse = async () => {
      throw Object.assign(new Error("EACCES: permission denied, open '/proc/self/oom_score_adj'"), { code: 'EACCES' });
    };
    expect(await applyOomScoreAdj(-999, nullLogger(), refuse)).to.equal(false);
  });
});
