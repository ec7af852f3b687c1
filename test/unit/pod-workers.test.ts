// PodWorkers: one sync in flight per pod, bursts collapse into one pending
// sync, a kill sticks, requeues fire through the clock, done drops the worker.
import { expect } from 'chai';
import { nullLogger } from '../../lib/log.ts';
import { PodWorkers, type SyncRequest, type SyncResult } from '../../agent/pod/workers.ts';
import { FakeClock, settle } from '../fakes/clock.ts';

function gate() {
  let open: () => void = () => {};
  const p = new Promise<void>((r) => (open = r));
  return { p, open };
}

describe('PodWorkers', () => {
  it('runs at most one sync per pod and collapses a burst of updates into one more sync', async () => {
    const clock = new FakeClock();
    const seen: SyncRequest[] = [];
    let inFlight = 0;
    let maxInFlight = 0;
    const g = gate();
    const w = new PodWorkers({
      clock,
      log: nullLogger(),
      sync: async (req) => {
        seen.push(req);
        inFlight++;
        maxInFlight = Math.max(maxInFlight, inFlight);
        if (seen.length === 1) await g.p;
        inFlight--;
        return {};
      },
    });
    w.update('a');
    for (let i = 0; i < 5; i++) w.update('a');
    await settle();
    expect(seen).to.have.length(1);
    g.open();
    await w.drain();
    expect(seen).to.have.length(2);
    expect(maxInFlight).to.equal(1);
  });

  it('runs different pods concurrently', async () => {
    const clock = new FakeClock();
    const g = gate();
    const started: string[] = [];
    const w = new PodWorkers({ clock, log: nullLogger(), sync: async (req) => (started.push(req.uid), await g.p, {}) });
    w.update('a');
    w.update('b');
    await settle();
    expect(started.sort()).to.deep.equal(['a', 'b']);
    g.open();
    await w.drain();
  });

  it('keeps a kill once asked for, even when a plain update follows', async () => {
    const clock = new FakeClock();
    const g = gate();
    const seen: boolean[] = [];
    const w = new PodWorkers({ clock, log: nullLogger(), sync: async (req) => (seen.push(req.kill), seen.length === 1 ? await g.p : undefined, {}) });
    w.update('a');
    await settle();
    w.update('a', true);
    w.update('a');
    g.open();
    await w.drain();
    expect(seen).to.deep.equal([false, true]);
    expect(w.isKilling('a')).to.equal(true);
  });

  it('requeues after the asked delay, and retries a sync that threw', async () => {
    const clock = new FakeClock();
    const results: (SyncResult | Error)[] = [{ requeueAfterMs: 5000 }, new Error('boom'), { done: true }];
    let calls = 0;
    const w = new PodWorkers({
      clock,
      log: nullLogger(),
      sync: async () => {
        const r = results[calls++];
        if (r instanceof Error) throw r;
        return r ?? {};
      },
    });
    w.update('a');
    await w.drain();
    expect(calls).to.equal(1);
    await clock.advance(4999);
    await settle();
    expect(calls).to.equal(1);
    await clock.advance(1);
    await w.drain();
    expect(calls).to.equal(2);
    await clock.advance(2000);
    await w.drain();
    expect(calls).to.equal(3);
    expect(w.has('a')).to.equal(false);
  });
});
