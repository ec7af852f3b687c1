// Bound counters and histograms print what prom-client's own print for the
// same updates (the scrape format users and dashboards read).
import { expect } from 'chai';
import { Counter, Histogram, Registry } from 'prom-client';
import { BoundCounter, BoundHistogram } from '../../lib/boundmetrics.ts';

/** The exposition lines sorted, with each line's labels sorted (their order carries no meaning). */
function canonical(text: string): string[] {
  return text.trim().split('\n').map((line) => {
    const m = /^([^{ ]+)\{([^}]*)\} (.*)$/.exec(line);
    if (!m) return line;
    return `${m[1]}{${m[2]!.split(',').sort().join(',')}} ${m[3]}`;
  }).sort();
}

describe('boundmetrics', () => {
  it('a bound counter prints as a prom-client counter, series only once touched', async () => {
    const ours = new Registry();
    const theirs = new Registry();
    const c = new BoundCounter({ name: 'x_total', help: 'X.', labelNames: ['a', 'b'], registers: [ours] });
    const p = new Counter({ name: 'x_total', help: 'X.', labelNames: ['a', 'b'], registers: [theirs] });
    const s1 = c.series({ b: '2', a: '1' });
    c.series({ a: 'never', b: 'used' });
    s1.inc();
    s1.inc(2.5);
    c.series({ a: '3', b: 'y"z' }).inc();
    p.inc({ a: '1', b: '2' });
    p.inc({ a: '1', b: '2' }, 2.5);
    p.inc({ a: '3', b: 'y"z' });
    expect(canonical(await ours.metrics())).to.deep.equal(canonical(await theirs.metrics()));
    expect(() => s1.inc(-1)).to.throw(TypeError);
  });

  it('a bound histogram prints as a prom-client histogram, and remove() drops a series', async () => {
    const ours = new Registry();
    const theirs = new Registry();
    const h = new BoundHistogram({ name: 'd_seconds', help: 'D.', labelNames: ['k'], registers: [ours] });
    const p = new Histogram({ name: 'd_seconds', help: 'D.', labelNames: ['k'], registers: [theirs] });
    const values = [0, 0.005, 0.0051, 0.3, 1, 7, 12, 0.01];
    for (const v of values) {
      h.series({ k: 'a' }).observe(v);
      p.observe({ k: 'a' }, v);
    }
    h.series({ k: 'b' }).observe(0.2);
    p.observe({ k: 'b' }, 0.2);
    expect(canonical(await ours.metrics())).to.deep.equal(canonical(await theirs.metrics()));
    h.remove({ k: 'a' });
    p.remove({ k: 'a' });
    expect(canonical(await ours.metrics())).to.deep.equal(canonical(await theirs.metrics()));
    expect(await ours.metrics()).to.not.include('k="a"');
    expect(() => h.series({ k: 'b' }).observe(Number.NaN)).to.throw(TypeError);
  });
});
