import { expect } from 'chai';
import { errorCode } from '../../lib/errors.ts';
import { chainsFromSave, formatArgs, splitWords } from '../../proxy/iptables/iptables.ts';
import { FakeIptables } from '../fakes/iptables.ts';

describe('proxy fake iptables', () => {
  const base = ['*nat', ':KUBE-A - [0:0]', ':KUBE-B - [0:0]', '-A KUBE-A -j KUBE-B', '-A KUBE-B -j RETURN', 'COMMIT', ''].join('\n');

  it('keeps undeclared chains with --noflush, flushes declared ones, deletes with -X', () => {
    const f = new FakeIptables();
    f.applyRestore(base, { noflush: true });
    f.applyRestore(['*nat', ':KUBE-A - [0:0]', ':KUBE-C - [0:0]', '-A KUBE-A -j KUBE-C', '-A KUBE-C -j RETURN', 'COMMIT', ''].join('\n'), {
      noflush: true,
    });
    expect(f.rules('nat', 'KUBE-A')).to.deep.equal(['-j KUBE-C']);
    expect(f.rules('nat', 'KUBE-B')).to.deep.equal(['-j RETURN']);
    expect(f.checkInvariants()).to.deep.equal([]);
    f.applyRestore(['*nat', ':KUBE-B - [0:0]', '-X KUBE-B', 'COMMIT', ''].join('\n'), { noflush: true });
    expect(f.chains('nat').has('KUBE-B')).to.equal(false);
  });

  it('fails like iptables-restore and leaves the table as it was', () => {
    const f = new FakeIptables();
    f.applyRestore(base, { noflush: true });
    const bad = [
      ['*nat', '-A KUBE-A -j KUBE-MISSING', 'COMMIT'],
      ['*nat', ':KUBE-B - [0:0]', '-X KUBE-B', 'COMMIT'], // still used by KUBE-A
      ['*nat', '-A KUBE-NOPE -j RETURN', 'COMMIT'],
      ['*nat', ':KUBE-A - [0:0]'], // no COMMIT
    ];
    for (const lines of bad) {
      let code: string | undefined;
      try {
        f.applyRestore(lines.join('\n'), { noflush: true });
      } catch (err) {
        code = errorCode(err);
      }
      expect(code, lines.join(' | ')).to.equal('PROXY_RESTORE_FAILED');
    }
    expect(f.rules('nat', 'KUBE-A')).to.deep.equal(['-j KUBE-B']);
  });

  it('replaces the whole table without --noflush', () => {
    const f = new FakeIptables();
    f.applyRestore(base, { noflush: true });
    f.applyRestore(['*nat', ':KUBE-C - [0:0]', 'COMMIT'].join('\n'), { noflush: false });
    expect([...f.chains('nat')].sort()).to.deep.equal(['INPUT', 'KUBE-C', 'OUTPUT', 'POSTROUTING', 'PREROUTING']);
  });

  it('reports jumps to empty chains and unused service chains', () => {
    const f = new FakeIptables();
    f.applyRestore(['*nat', ':KUBE-A - [0:0]', ':KUBE-SVC-X - [0:0]', ':KUBE-SEP-Y - [0:0]', '-A KUBE-A -j KUBE-SVC-X', 'COMMIT'].join('\n'), {
      noflush: true,
    });
    expect(f.checkInvariants()).to.deep.equal(['nat KUBE-A: jump to empty chain KUBE-SVC-X', 'nat KUBE-SEP-Y: not used by any rule']);
  });

  it('ensures rules and chains once, and saves what it holds', async () => {
    const f = new FakeIptables();
    expect(await f.ensureChain('nat', 'KUBE-SERVICES')).to.equal(false);
    const rule = ['-m', 'comment', '--comment', 'kubernetes service portals', '-j', 'KUBE-SERVICES'];
    expect(await f.ensureRule('prepend', 'nat', 'OUTPUT', rule)).to.equal(false);
    expect(await f.ensureRule('prepend', 'nat', 'OUTPUT', rule)).to.equal(true);
    const saved = await f.save('nat');
    expect(saved).to.include('-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES\n');
    expect(chainsFromSave(saved).has('KUBE-SERVICES')).to.equal(true);
  });

  it('an injected failure at a table commits the tables before it in the input, as iptables-restore', async () => {
    const f = new FakeIptables();
    f.failRestores = 1;
    f.failTable = 'filter';
    const text = '*nat\n:KUBE-A - [0:0]\nCOMMIT\n*filter\n:KUBE-B - [0:0]\nCOMMIT\n';
    expect(await f.restore(text, { noflush: true }).then(() => 'ok', (e: Error) => e.message)).to.match(/injected/);
    expect(f.chains('nat').has('KUBE-A')).to.equal(true);
    expect(f.chains('filter').has('KUBE-B')).to.equal(false);
    expect(f.restores).to.deep.equal([text]);
    // Spent: the same input goes through now.
    await f.restore(text, { noflush: true });
    expect(f.chains('filter').has('KUBE-B')).to.equal(true);
  });

  it('splits and formats words as iptables-save quotes them', () => {
    expect(splitWords('-m comment --comment "a \\"b\\" c" -j X')).to.deep.equal(['-m', 'comment', '--comment', 'a "b" c', '-j', 'X']);
    expect(formatArgs(['-m', 'comment', '--comment', 'plain-word', '-j', 'X'])).to.equal('-m comment --comment plain-word -j X');
  });
});
