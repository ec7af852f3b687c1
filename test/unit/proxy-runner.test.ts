import { expect } from 'chai';
import sinon from 'sinon';
import { realClock } from '../../lib/clock.ts';
import { BoundedFrequencyRunner } from '../../proxy/runner.ts';

describe('proxy BoundedFrequencyRunner', () => {
  let timers: sinon.SinonFakeTimers;
  let runner: BoundedFrequencyRunner | undefined;
  let runs: number[]; // fake time of each run, relative to the start
  const T0 = 1_000_000;

  function start(fn?: () => void | Promise<void>, onError?: (err: unknown) => void): BoundedFrequencyRunner {
    const r = new BoundedFrequencyRunner(
      async () => {
        runs.push(Date.now() - T0);
        await fn?.();
      },
      1000,
      30000,
      realClock,
      onError,
    );
    r.start();
    runner = r;
    return r;
  }

  beforeEach(() => {
    timers = sinon.useFakeTimers({ now: T0 });
    runs = [];
  });
  afterEach(async () => {
    const stopping = runner?.stop();
    await timers.runAllAsync();
    await stopping;
    runner = undefined;
    timers.restore();
  });

  it('runs at once on the first request and coalesces a burst', async () => {
    const r = start();
    r.run();
    r.run();
    r.run();
    await timers.tickAsync(10);
    expect(runs).to.deep.equal([0]);
  });

  it('keeps runs at least minInterval apart', async () => {
    const r = start();
    r.run();
    await timers.tickAsync(100);
    r.run();
    r.run();
    await timers.tickAsync(800);
    expect(runs).to.deep.equal([0]);
    await timers.tickAsync(100);
    expect(runs).to.deep.equal([0, 1000]);
    await timers.tickAsync(5000);
    expect(runs).to.deep.equal([0, 1000]);
  });

  it('runs every maxInterval without requests', async () => {
    start();
    await timers.tickAsync(29_999);
    expect(runs).to.deep.equal([]);
    await timers.tickAsync(1);
    expect(runs).to.deep.equal([30_000]);
    await timers.tickAsync(30_000);
    expect(runs).to.deep.equal([30_000, 60_000]);
  });

  it('retries after the given delay, but not before minInterval', async () => {
    const r = start();
    r.run();
    await timers.tickAsync(0);
    r.retryAfter(100);
    await timers.tickAsync(999);
    expect(runs).to.deep.equal([0]);
    await timers.tickAsync(1);
    expect(runs).to.deep.equal([0, 1000]);
    r.retryAfter(5000);
    await timers.tickAsync(5000);
    expect(runs).to.deep.equal([0, 1000, 6000]);
  });

  it('retries a failed run after minInterval and reports the error', async () => {
    const errors: unknown[] = [];
    let fail = true;
    const r = start(() => {
      if (fail) {
        fail = false;
        throw new Error('restore failed');
      }
    }, (err) => errors.push(err));
    r.run();
    await timers.tickAsync(1000);
    expect(runs).to.deep.equal([0, 1000]);
    expect(errors.map((e) => (e as Error).message)).to.deep.equal(['restore failed']);
  });

  it('never overlaps runs; a request during a run waits for it', async () => {
    let active = 0;
    let maxActive = 0;
    const r = start(async () => {
      maxActive = Math.max(maxActive, ++active);
      await new Promise((resolve) => setTimeout(resolve, 2500));
      active--;
    });
    r.run();
    await timers.tickAsync(500);
    r.run();
    await timers.tickAsync(2500);
    expect(runs).to.deep.equal([0, 2500]);
    expect(maxActive).to.equal(1);
  });

  it('stops', async () => {
    const r = start();
    await r.stop();
    r.run();
    await timers.tickAsync(60_000);
    expect(runs).to.deep.equal([]);
  });
});
