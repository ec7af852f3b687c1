import { expect } from 'chai';
import { Backoff } from '../../lib/backoff.ts';

describe('Backoff', () => {
  it('doubles up to the cap and resets', () => {
    const b = new Backoff(10, 35);
    expect([b.next(), b.next(), b.next(), b.next()]).to.deep.equal([10, 20, 35, 35]);
    b.reset();
    expect(b.next()).to.equal(10);
  });
});
