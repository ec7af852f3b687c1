import { expect } from 'chai';
import { backOffKey, CrashLoopBackOff, formatGoDuration, formatPod } from '../../agent/pod/backoff.ts';
import { FakeClock } from '../fakes/clock.ts';

const pod = { name: 'web', namespace: 'default', uid: 'c0ffee00-0000-4000-8000-000000000001' };
const S = 1000;

describe('pod/backoff: CrashLoopBackOff', () => {
  it('formats durations as Go does', () => {
    const cases: [number, string][] = [
      [0, '0s'], [500, '500ms'], [1500, '1.5s'], [10 * S, '10s'], [80 * S, '1m20s'],
      [160 * S, '2m40s'], [300 * S, '5m0s'], [3600 * S, '1h0m0s'], [-10 * S, '-10s'],
    ];
    for (const [ms, want] of cases) expect(formatGoDuration(ms), String(ms)).to.equal(want);
  });

  it('keys by pod, container and spec hash; formats the pod as upstream', () => {
    expect(backOffKey(pod, 'app', 'abc1')).to.equal('web_default_c0ffee00-0000-4000-8000-000000000001_app_abc1');
    expect(formatPod(pod)).to.equal('web_default(c0ffee00-0000-4000-8000-000000000001)');
  });

  it('a container that never exited is never in back-off', () => {
    const b = new CrashLoopBackOff(new FakeClock());
    expect(b.check(pod, 'app', 'h', undefined)).to.deep.equal({ inBackOff: false });
    expect(b.size).to.equal(0);
  });

  it('first crash restarts at once, then waits 10 s, doubling to 300 s', async () => {
    const clock = new FakeClock();
    const b = new CrashLoopBackOff(clock);
    // crash #1: no entry yet, start now; the delay becomes 10 s
    let finished = clock.now();
    expect(b.check(pod, 'app', 'h', finished).inBackOff).to.equal(false);
    const seen: number[] = [];
    for (let i = 0; i < 7; i++) {
      // it crashes again 1 s after the start
      await clock.advance(S);
      finished = clock.now();
      const d = b.check(pod, 'app', 'h', finished);
      expect(d.inBackOff).to.equal(true);
      if (!d.inBackOff) return;
      seen.push(d.delayMs);
      expect(d.until).to.equal(finished + d.delayMs);
      // still in back-off 1 ms before the end, out of it at the end
      await clock.advance(d.delayMs - 1);
      expect(b.check(pod, 'app', 'h', finished).inBackOff).to.equal(true);
      await clock.advance(1);
      expect(b.check(pod, 'app', 'h', finished).inBackOff).to.equal(false); // starts, delay advances
    }
    expect(seen).to.deep.equal([10, 20, 40, 80, 160, 300, 300].map((x) => x * S));
  });

  it('says so with the upstream message and event text', async () => {
    const clock = new FakeClock();
    const b = new CrashLoopBackOff(clock);
    b.check(pod, 'app', 'h', clock.now());
    await clock.advance(2 * S);
    const d = b.check(pod, 'app', 'h', clock.now());
    expect(d).to.include({
      inBackOff: true,
      message: 'back-off 10s restarting failed container=app pod=web_default(c0ffee00-0000-4000-8000-000000000001)',
      eventMessage: 'Back-off restarting failed container app in pod web_default(c0ffee00-0000-4000-8000-000000000001)',
    });
  });

  it('resets to 10 s after the container ran more than 10 minutes', async () => {
    const clock = new FakeClock();
    const b = new CrashLoopBackOff(clock);
    const key = backOffKey(pod, 'app', 'h');
    b.check(pod, 'app', 'h', clock.now()); // 10 s
    await clock.advance(20 * S);
    b.check(pod, 'app', 'h', clock.now() - 19 * S); // crashed 1 s after the start, 19 s ago: out of back-off, 20 s
    expect(b.get(key)).to.equal(20 * S);
    // this start ran 10 min + 1 s before crashing
    await clock.advance(601 * S);
    const d = b.check(pod, 'app', 'h', clock.now());
    expect(d.inBackOff).to.equal(false);
    expect(b.get(key)).to.equal(10 * S);
  });

  it('exactly 10 minutes does not reset (strictly longer is needed)', async () => {
    const clock = new FakeClock();
    const b = new CrashLoopBackOff(clock);
    const key = backOffKey(pod, 'app', 'h');
    b.check(pod, 'app', 'h', clock.now());
    await clock.advance(600 * S);
    const finished = clock.now(); // exactly 600 s after the last start
    await clock.advance(10 * S);
    expect(b.check(pod, 'app', 'h', finished).inBackOff).to.equal(false);
    expect(b.get(key)).to.equal(20 * S);
  });

  it('a new spec hash is a new key: a fixed image starts without waiting', async () => {
    const clock = new FakeClock();
    const b = new CrashLoopBackOff(clock);
    b.check(pod, 'app', 'old', clock.now());
    await clock.advance(S);
    expect(b.check(pod, 'app', 'old', clock.now()).inBackOff).to.equal(true);
    expect(b.check(pod, 'app', 'new', clock.now()).inBackOff).to.equal(false);
  });

  it('gc drops entries untouched for 10 minutes, keeps recent ones', async () => {
    const clock = new FakeClock();
    const b = new CrashLoopBackOff(clock);
    b.check(pod, 'a', 'h', clock.now());
    await clock.advance(500 * S);
    b.check(pod, 'b', 'h', clock.now());
    await clock.advance(101 * S);
    b.gc();
    expect(b.size).to.equal(1);
    expect(b.get(backOffKey(pod, 'a', 'h'))).to.equal(0);
    expect(b.get(backOffKey(pod, 'b', 'h'))).to.equal(10 * S);
  });

  it('takes its limits from options', async () => {
    const clock = new FakeClock();
    const b = new CrashLoopBackOff(clock, { initialMs: S, maxMs: 3 * S });
    const key = backOffKey(pod, 'a', 'h');
    for (let i = 0; i < 4; i++) {
      b.next(key, clock.now());
      await clock.advance(S);
    }
    expect(b.get(key)).to.equal(3 * S);
  });
});
