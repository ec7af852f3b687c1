// The prober's slot timer: waits for the same slot share one timer, come
// together at the slot boundary, and a slot nobody waits for any more has
// no timer left.
import { expect } from 'chai';
import { SlotTimer } from '../../agent/prober/slots.ts';
import { FakeClock, settle } from '../fakes/clock.ts';

describe('prober: slot timer', () => {
  it('rounds up to the slot grid', () => {
    const s = new SlotTimer(new FakeClock(0), 50);
    expect([0, 1, 49, 50, 51, 1000].map((t) => s.align(t))).to.deep.equal([0, 50, 50, 50, 100, 1000]);
  });

  it('waits in one slot share one timer and all come at its boundary', async () => {
    const clock = new FakeClock(1_000_000);
    const s = new SlotTimer(clock, 50);
    const came: number[] = [];
    for (const at of [1_000_001, 1_000_020, 1_000_050]) void s.wait(at).done.then((ok) => ok && came.push(clock.now()));
    void s.wait(1_000_051).done.then((ok) => ok && came.push(clock.now()));
    expect(s.armed).to.equal(2);
    expect(clock.pending).to.equal(2);
    await clock.advance(49);
    expect(came).to.deep.equal([]);
    await clock.advance(1);
    expect(came).to.deep.equal([1_000_050, 1_000_050, 1_000_050]);
    await clock.advance(50);
    expect(came).to.have.length(4);
    expect(s.armed).to.equal(0);
  });

  it('a cancelled wait says so; the last one cancelled disarms the slot', async () => {
    const clock = new FakeClock(0);
    const s = new SlotTimer(clock, 50);
    const a = s.wait(10);
    const b = s.wait(20);
    a.cancel();
    expect(await a.done).to.equal(false);
    expect(clock.pending).to.equal(1);
    b.cancel();
    expect(await b.done).to.equal(false);
    await settle();
    expect(clock.pending).to.equal(0);
    expect(s.armed).to.equal(0);
    // A new wait for the same slot arms it again.
    const c = s.wait(30);
    await clock.advance(50);
    expect(await c.done).to.equal(true);
  });
});
