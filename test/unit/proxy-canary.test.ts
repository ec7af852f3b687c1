// CanaryMonitor (kube-proxy's iptables Monitor) against FakeIptables and a FakeClock.
import { expect } from 'chai';
import { CANARY_CHAIN, CanaryMonitor } from '../../proxy/iptables/canary.ts';
import type { Table } from '../../proxy/iptables/iptables.ts';
import { FakeClock } from '../fakes/clock.ts';
import { FakeIptables } from '../fakes/iptables.ts';
import { captureLogger, type LogEntry } from '../fakes/log.ts';

const INTERVAL = 30_000;

describe('proxy CanaryMonitor', () => {
  let ipt: FakeIptables;
  let clock: FakeClock;
  let flushes: number;
  let entries: LogEntry[];
  let monitor: CanaryMonitor;

  const has = (t: Table) => ipt.chains(t).has(CANARY_CHAIN);
  const drop = (...tables: Table[]) => {
    for (const t of tables) ipt.table(t).delete(CANARY_CHAIN);
  };
  const messages = () => entries.map((e) => e.message);

  beforeEach(async () => {
    ipt = new FakeIptables();
    clock = new FakeClock();
    flushes = 0;
    const cap = captureLogger();
    entries = cap.entries;
    monitor = new CanaryMonitor({ iptables: ipt, clock, log: cap.log, onFlush: () => flushes++ }, INTERVAL);
    monitor.start();
    await clock.advance(0);
  });

  afterEach(async () => {
    await monitor.stop();
  });

  it('puts a canary chain in mangle, nat and filter at start, and does nothing while they stay', async () => {
    expect([has('mangle'), has('nat'), has('filter')]).to.deep.equal([true, true, true]);
    await clock.advance(5 * INTERVAL);
    expect(flushes).to.equal(0);
  });

  it('a flush of all three tables: one reload at the next check, and the canaries are back', async () => {
    drop('mangle', 'nat', 'filter');
    await clock.advance(INTERVAL - 1);
    expect(flushes).to.equal(0);
    await clock.advance(1);
    expect(flushes).to.equal(1);
    expect([has('mangle'), has('nat'), has('filter')]).to.deep.equal([true, true, true]);
    expect(messages()).to.include.members(['iptables canary deleted', 'reloading after iptables flush']);
    expect(messages()).not.to.include('inconsistent iptables state detected: not every canary went');
    // Watched again: a second flush is a second reload.
    drop('mangle', 'nat', 'filter');
    await clock.advance(INTERVAL);
    expect(flushes).to.equal(2);
  });

  it('only mangle flushed: waits up to 5 s for the others, then reloads anyway, as inconsistent', async () => {
    drop('mangle');
    await clock.advance(INTERVAL + 4_900);
    expect(flushes).to.equal(0);
    await clock.advance(200);
    expect(flushes).to.equal(1);
    expect(messages()).to.include('inconsistent iptables state detected: not every canary went');
  });

  it('the others going while it waits: reloads then, before the 5 s', async () => {
    drop('mangle');
    await clock.advance(INTERVAL + 300);
    expect(flushes).to.equal(0);
    drop('nat', 'filter');
    await clock.advance(100);
    expect(flushes).to.equal(1);
    expect(messages()).not.to.include('inconsistent iptables state detected: not every canary went');
  });

  it('only nat or filter flushed: not seen (mangle is the one checked), as upstream', async () => {
    drop('nat', 'filter');
    await clock.advance(3 * INTERVAL);
    expect(flushes).to.equal(0);
  });

  it('a check iptables cannot answer (lock busy) is not a flush', async () => {
    ipt.failChecks = 1;
    await clock.advance(INTERVAL);
    expect(flushes).to.equal(0);
    expect(messages()).to.include('could not check for iptables canary');
    drop('mangle', 'nat', 'filter');
    await clock.advance(INTERVAL);
    expect(flushes).to.equal(1);
  });

  it('stop ends the loop without waiting for the interval', async () => {
    let stopped = false;
    void monitor.stop().then(() => (stopped = true));
    await clock.advance(0);
    expect(stopped).to.equal(true);
    expect(clock.pending).to.equal(0);
  });
});
