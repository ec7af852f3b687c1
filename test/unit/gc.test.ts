import { expect } from 'chai';
import { collectGarbage } from '../../lib/gc.ts';

describe('lib/gc: a full collection on demand', () => {
  it('collects what nothing holds any more, without --expose-gc on the command line', async () => {
    let big: number[] | undefined = Array.from({ length: 100_000 }, (_, i) => i);
    const ref = new WeakRef(big);
    big = undefined;
    // A WeakRef keeps its target until the job that made it ends.
    await new Promise((r) => setImmediate(r));
    expect(collectGarbage()).to.equal(true);
    expect(ref.deref()).to.equal(undefined);
    expect(collectGarbage()).to.equal(true); // again, through the same function
  });
});
