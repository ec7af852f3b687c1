// Canary (kube-proxy's iptables Monitor, checked from the sync) against FakeIptables and a FakeClock.
import { expect } from 'chai';
import { Canary, CANARY_CHAIN } from '../../proxy/iptables/canary.ts';
import type { Table } from '../../proxy/iptables/iptables.ts';
import { FakeClock } from '../fakes/clock.ts';
import { FakeIptables } from '../fakes/iptables.ts';
import { captureLogger, type LogEntry } from '../fakes/log.ts';

describe('proxy iptables Canary', () => {
  let ipt: FakeIptables;
  let clock: FakeClock;
  let entries: LogEntry[];
  let canary: Canary;

  const put = (...tables: Table[]) => {
    for (const t of tables) void ipt.ensureChain(t, CANARY_CHAIN);
  };
  const drop = (...tables: Table[]) => {
    for (const t of tables) ipt.table(t).delete(CANARY_CHAIN);
  };
  const messages = () => entries.map((e) => e.message);
  /** flushed(), with the fake clock moved along while it waits; resolves to [answer, ms waited]. */
  async function flushed(during?: () => void): Promise<[boolean, number]> {
    const from = clock.now();
    let answer: boolean | undefined;
    void canary.flushed().then((a) => (answer = a));
    await clock.advance(0);
    for (let i = 0; answer === undefined && i < 100; i++) {
      if (i === 3) during?.();
      await clock.advance(100);
    }
    return [answer!, clock.now() - from];
  }

  beforeEach(() => {
    ipt = new FakeIptables();
    clock = new FakeClock();
    const cap = captureLogger();
    entries = cap.entries;
    canary = new Canary({ iptables: ipt, clock, log: cap.log });
    put('nat', 'filter');
  });

  it('ensure makes the mangle canary (the restores make the others), and is idempotent', async () => {
    await canary.ensure();
    await canary.ensure();
    expect(ipt.chains('mangle').has(CANARY_CHAIN)).to.equal(true);
  });

  it('not flushed while the mangle canary is there, whatever the others (as upstream, mangle is the one looked at)', async () => {
    await canary.ensure();
    drop('nat', 'filter');
    expect(await flushed()).to.deep.equal([false, 0]);
  });

  it('all three gone: flushed, at once', async () => {
    await canary.ensure();
    drop('mangle', 'nat', 'filter');
    expect(await flushed()).to.deep.equal([true, 0]);
    expect(messages()).to.include.members(['iptables canary deleted', 'reloading after iptables flush']);
    expect(messages()).not.to.include('inconsistent iptables state detected: not every canary went');
  });

  it('only mangle gone: waits for the others up to 5 s, then says flushed anyway, as inconsistent', async () => {
    await canary.ensure();
    drop('mangle');
    const [answer, waited] = await flushed();
    expect(answer).to.equal(true);
    expect(waited).to.be.within(5000, 5100);
    expect(messages()).to.include('inconsistent iptables state detected: not every canary went');
  });

  it('the others going while it waits: flushed then, before the 5 s', async () => {
    await canary.ensure();
    drop('mangle');
    const [answer, waited] = await flushed(() => drop('nat', 'filter'));
    expect(answer).to.equal(true);
    expect(waited).to.be.lessThan(1000);
    expect(messages()).not.to.include('inconsistent iptables state detected: not every canary went');
  });

  it('a check iptables cannot answer (the lock busy) is not a flush', async () => {
    await canary.ensure();
    drop('mangle', 'nat', 'filter');
    ipt.failChecks = 1;
    expect(await flushed()).to.deep.equal([false, 0]);
    expect(messages()).to.include('could not check for iptables canary');
    expect(await flushed()).to.deep.equal([true, 0]);
  });
});
