// ExecIptables and backend detection against a fake Exec that records argv and stdin.
import { expect } from 'chai';
import { errorCode, NodeletError } from '../../lib/errors.ts';
import { inputText, type Exec, type ExecOptions, type ExecResult } from '../../lib/exec.ts';
import { countKubeRules, detectBackend, ExecIptables } from '../../proxy/iptables/restore.ts';

interface Call {
  cmd: string;
  args: string[];
  input: string | undefined;
}

/** A fake Exec: `answer` decides each result; every call is recorded. */
function fakeExec(answer: (cmd: string, args: readonly string[]) => Partial<ExecResult> | 'ENOENT' = () => ({})): {
  exec: Exec;
  calls: Call[];
} {
  const calls: Call[] = [];
  const exec: Exec = async (cmd: string, args: readonly string[], opts: ExecOptions = {}) => {
    calls.push({ cmd, args: [...args], input: opts.input === undefined ? undefined : inputText(opts.input) });
    const a = answer(cmd, args);
    if (a === 'ENOENT') throw new NodeletError('EXEC_FAILED', `${cmd}: spawn ${cmd} ENOENT`);
    const res = { code: 0, stdout: '', stderr: '', ...a };
    if (res.code !== 0 && !opts.allowFail) throw new NodeletError('EXEC_FAILED', `${cmd}: exit ${res.code}`);
    return res;
  };
  return { exec, calls };
}

const NAT = '*nat\n:KUBE-SERVICES - [0:0]\n-A KUBE-SERVICES -j RETURN\nCOMMIT\n';

describe('proxy ExecIptables', () => {
  it('restore runs one iptables-restore with -w 5 -W 100000 and --noflush and the text on stdin', async () => {
    const { exec, calls } = fakeExec();
    await new ExecIptables(exec, 'nft').restore(NAT, { noflush: true });
    expect(calls).to.deep.equal([{ cmd: 'iptables-nft-restore', args: ['-w', '5', '-W', '100000', '--noflush'], input: NAT }]);
  });

  it('restore without noflush omits --noflush; the legacy backend uses the legacy binaries', async () => {
    const { exec, calls } = fakeExec();
    await new ExecIptables(exec, 'legacy').restore(NAT, { noflush: false });
    expect(calls).to.deep.equal([{ cmd: 'iptables-legacy-restore', args: ['-w', '5', '-W', '100000'], input: NAT }]);
  });

  it('a failed restore is PROXY_RESTORE_FAILED with the stderr line', async () => {
    const { exec } = fakeExec(() => ({ code: 1, stderr: 'iptables-restore: line 3 failed\n' }));
    const err = await new ExecIptables(exec, 'nft').restore(NAT, { noflush: true }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(errorCode(err)).to.equal('PROXY_RESTORE_FAILED');
    expect((err as Error).message).to.contain('iptables-restore: line 3 failed');
  });

  it('a missing binary is PROXY_RESTORE_FAILED too', async () => {
    const { exec } = fakeExec(() => 'ENOENT');
    const err = await new ExecIptables(exec, 'nft').save('nat').then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(errorCode(err)).to.equal('PROXY_RESTORE_FAILED');
  });

  it('save runs iptables-save -t TABLE and returns stdout', async () => {
    const { exec, calls } = fakeExec(() => ({ stdout: NAT }));
    expect(await new ExecIptables(exec, 'nft').save('nat')).to.equal(NAT);
    expect(calls.map((c) => [c.cmd, ...c.args])).to.deep.equal([['iptables-nft-save', '-t', 'nat']]);
  });

  it('ensureRule checks with -C, then prepends (-I) or appends (-A) only when missing', async () => {
    const rule = ['-m', 'comment', '--comment', 'kubernetes service portals', '-j', 'KUBE-SERVICES'];
    const missing = fakeExec((_cmd, args) => (args.includes('-C') ? { code: 1, stderr: 'iptables: Bad rule' } : {}));
    expect(await new ExecIptables(missing.exec, 'nft').ensureRule('prepend', 'nat', 'OUTPUT', rule)).to.equal(false);
    expect(missing.calls.map((c) => [c.cmd, ...c.args])).to.deep.equal([
      ['iptables-nft', '-w', '5', '-W', '100000', '-t', 'nat', '-C', 'OUTPUT', ...rule],
      ['iptables-nft', '-w', '5', '-W', '100000', '-t', 'nat', '-I', 'OUTPUT', ...rule],
    ]);

    const append = fakeExec((_cmd, args) => (args.includes('-C') ? { code: 1 } : {}));
    await new ExecIptables(append.exec, 'legacy').ensureRule('append', 'filter', 'INPUT', rule);
    expect(append.calls[1]?.args.slice(6, 8)).to.deep.equal(['-A', 'INPUT']);
    expect(append.calls[1]?.cmd).to.equal('iptables-legacy');

    const present = fakeExec();
    expect(await new ExecIptables(present.exec, 'nft').ensureRule('prepend', 'nat', 'OUTPUT', rule)).to.equal(true);
    expect(present.calls).to.have.length(1);
  });

  it('ensureRule fails on a check error other than "missing" (exit 2)', async () => {
    const { exec, calls } = fakeExec(() => ({ code: 2, stderr: "iptables v1.8.7 (nf_tables): Chain 'NOPE' does not exist" }));
    const err = await new ExecIptables(exec, 'nft').ensureRule('append', 'nat', 'NOPE', ['-j', 'RETURN']).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(errorCode(err)).to.equal('PROXY_RESTORE_FAILED');
    expect((err as Error).message).to.contain("Chain 'NOPE' does not exist");
    expect(calls).to.have.length(1);
  });

  it('ensureChain creates with -N and treats "already exists" as present', async () => {
    const created = fakeExec();
    expect(await new ExecIptables(created.exec, 'nft').ensureChain('nat', 'KUBE-SERVICES')).to.equal(false);
    expect(created.calls[0]?.args).to.deep.equal(['-w', '5', '-W', '100000', '-t', 'nat', '-N', 'KUBE-SERVICES']);
    const exists = fakeExec(() => ({ code: 1, stderr: 'iptables: Chain already exists.\n' }));
    expect(await new ExecIptables(exists.exec, 'nft').ensureChain('nat', 'KUBE-SERVICES')).to.equal(true);
  });

  it('chainExists lists the chain with -S: exit 0 yes, 1 no; 4 (the lock) is an error, not an answer', async () => {
    const there = fakeExec(() => ({ stdout: '-N KUBE-PROXY-CANARY\n' }));
    expect(await new ExecIptables(there.exec, 'legacy').chainExists('mangle', 'KUBE-PROXY-CANARY')).to.equal(true);
    expect(there.calls[0]).to.deep.include({ cmd: 'iptables-legacy', args: ['-w', '5', '-W', '100000', '-t', 'mangle', '-S', 'KUBE-PROXY-CANARY'] });
    const gone = fakeExec(() => ({ code: 1, stderr: 'iptables: No chain/target/match by that name.\n' }));
    expect(await new ExecIptables(gone.exec, 'legacy').chainExists('mangle', 'KUBE-PROXY-CANARY')).to.equal(false);
    const busy = fakeExec(() => ({ code: 4, stderr: 'Another app is currently holding the xtables lock.\n' }));
    const err = await new ExecIptables(busy.exec, 'nft').chainExists('mangle', 'KUBE-PROXY-CANARY').then(() => undefined, (e: unknown) => e);
    expect(err).to.be.instanceOf(NodeletError).and.have.property('message').that.includes('xtables lock');
  });
});

describe('proxy detectBackend', () => {
  const rules = (n: number) =>
    ['*nat', ':KUBE-SERVICES - [0:0]', ...Array.from({ length: n }, () => '-A KUBE-SERVICES -j RETURN'), '-A OUTPUT -j ACCEPT', 'COMMIT', ''].join('\n');
  const host = (legacy: number | 'missing', nft: number | 'missing') =>
    fakeExec((cmd) => {
      const n = cmd === 'iptables-legacy-save' ? legacy : cmd === 'iptables-nft-save' ? nft : 'missing';
      return n === 'missing' ? 'ENOENT' : { stdout: rules(n) };
    }).exec;

  const cases: { name: string; legacy: number | 'missing'; nft: number | 'missing'; choice?: 'auto' | 'nft' | 'legacy'; want: string }[] = [
    { name: 'legacy rules only -> legacy', legacy: 5, nft: 0, want: 'legacy' },
    { name: 'nft rules only -> nft', legacy: 0, nft: 5, want: 'nft' },
    { name: 'no rules anywhere -> nft', legacy: 0, nft: 0, want: 'nft' },
    { name: 'equal counts -> nft', legacy: 3, nft: 3, want: 'nft' },
    { name: 'more legacy than nft -> legacy', legacy: 4, nft: 2, want: 'legacy' },
    { name: 'nft binary missing counts as zero', legacy: 1, nft: 'missing', want: 'legacy' },
    { name: 'both binaries missing -> nft', legacy: 'missing', nft: 'missing', want: 'nft' },
    { name: 'override nft wins over legacy rules', legacy: 9, nft: 0, choice: 'nft', want: 'nft' },
    { name: 'override legacy wins over nft rules', legacy: 0, nft: 9, choice: 'legacy', want: 'legacy' },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      expect(await detectBackend(host(c.legacy, c.nft), c.choice ?? 'auto')).to.equal(c.want);
    });
  }

  it('counts only KUBE- rules', () => {
    expect(countKubeRules(rules(2))).to.equal(2);
  });
});

describe('proxy ExecIptables: the legacy backend\'s shared xtables lock', () => {
  /** An exec whose restores and -N take `ms` (real time), recording when each starts and ends. */
  function timedExec(ms: number) {
    const spans: { cmd: string; start: number; end: number }[] = [];
    const exec: Exec = async (cmd, _args, opts = {}) => {
      if (opts.input !== undefined) inputText(opts.input);
      const start = performance.now();
      if (!cmd.endsWith('-save')) await new Promise((r) => setTimeout(r, ms));
      spans.push({ cmd, start, end: performance.now() });
      return { code: 0, stdout: '', stderr: '' };
    };
    return { exec, spans };
  }
  const overlaps = (spans: { start: number; end: number }[]) => spans.some((a, i) => spans.some((b, j) => i !== j && a.start < b.end && b.start < a.end));

  it('runs the IPv4 and IPv6 proxiers\' legacy restores and -N one after another (never both waiting on the lock), saves at once', async () => {
    const { exec, spans } = timedExec(20);
    const v4 = new ExecIptables(exec, 'legacy', 'IPv4');
    const v6 = new ExecIptables(exec, 'legacy', 'IPv6');
    await Promise.all([v4.restore(NAT, { noflush: true }), v6.restore(NAT, { noflush: true }), v6.ensureChain('mangle', 'X'), v4.restore(NAT, { noflush: true })]);
    expect(spans.map((s) => s.cmd).sort()).to.deep.equal(['ip6tables-legacy', 'ip6tables-legacy-restore', 'iptables-legacy-restore', 'iptables-legacy-restore']);
    expect(overlaps(spans)).to.equal(false);
    // A failed command does not stall the queue.
    const failing: Exec = async () => { throw new Error('spawn ENOENT'); };
    expect(await new ExecIptables(failing, 'legacy', 'IPv4').restore(NAT, { noflush: true }).then(() => 'ok', (e: unknown) => errorCode(e))).to.equal('PROXY_RESTORE_FAILED');
    await v4.restore(NAT, { noflush: true });
    expect(spans).to.have.length(5);
  });

  it('leaves the nft backend\'s commands (no xtables lock) and saves to run side by side', async () => {
    const { exec, spans } = timedExec(20);
    await Promise.all([new ExecIptables(exec, 'nft', 'IPv4').restore(NAT, { noflush: true }), new ExecIptables(exec, 'nft', 'IPv6').restore(NAT, { noflush: true })]);
    expect(overlaps(spans)).to.equal(true);
  });
});
