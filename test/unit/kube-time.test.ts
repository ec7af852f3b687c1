// Go's Duration.String(), as config files and Go components print durations.
import { expect } from 'chai';
import { goDuration } from '../../lib/kube/time.ts';

describe('kube time formats', () => {
  it('prints durations as Go\'s time.Duration.String()', () => {
    const cases: Array<[number, string]> = [
      [0, '0s'], [1, '1ms'], [999, '999ms'], [1000, '1s'], [1500, '1.5s'], [30_000, '30s'], [180_000, '3m0s'],
      [181_500, '3m1.5s'], [3_600_000, '1h0m0s'], [3_723_000, '1h2m3s'], [86_400_000, '24h0m0s'], [-1500, '-1.5s'],
    ];
    for (const [ms, want] of cases) expect(goDuration(ms), String(ms)).to.equal(want);
  });
});
