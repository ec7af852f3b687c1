// lib/processmetrics: prom-client's default metric names, the event-loop ones sampled every 100 ms.
import { expect } from 'chai';
import { collectDefaultMetrics, Registry } from 'prom-client';
import { collectProcessMetrics, EVENT_LOOP_RESOLUTION_MS } from '../../lib/processmetrics.ts';

const names = async (r: Registry) => (await r.getMetricsAsJSON()).map((m) => m.name).sort();
/** One scrape (a scrape resets the event-loop samples), as name -> value. */
const scrape = async (r: Registry) => new Map((await r.getMetricsAsJSON()).map((m) => [m.name, (m.values[0]?.value as number | undefined) ?? NaN]));
const sleep = (ms: number) => new Promise((res) => setTimeout(res, ms));

describe('lib/processmetrics', () => {
  it('serves the same metric names as prom-client\'s collectDefaultMetrics', async () => {
    const ours = new Registry();
    collectProcessMetrics(ours);
    const theirs = new Registry();
    collectDefaultMetrics({ register: theirs });
    expect(await names(ours)).to.deep.equal(await names(theirs));
    expect(await names(ours)).to.include.members(['process_cpu_seconds_total', 'process_resident_memory_bytes', 'nodejs_eventloop_lag_p99_seconds']);
  });

  it('reports event-loop delay beyond the sampling tick: ~0 when idle, the blocked time when the loop was blocked', async function () {
    this.timeout(10_000);
    const r = new Registry();
    collectProcessMetrics(r);
    await r.metrics();
    await sleep(EVENT_LOOP_RESOLUTION_MS * 4);
    // Without the tick taken off, every sample (so the smallest too) would be >= 0.1 s.
    expect((await scrape(r)).get('nodejs_eventloop_lag_min_seconds'), 'idle min').to.be.below(EVENT_LOOP_RESOLUTION_MS / 1000);
    // Block the loop for 300 ms across ticks.
    await sleep(EVENT_LOOP_RESOLUTION_MS * 2);
    const until = Date.now() + 300;
    while (Date.now() < until) { /* busy */ }
    await sleep(EVENT_LOOP_RESOLUTION_MS * 2);
    const blocked = (await scrape(r)).get('nodejs_eventloop_lag_max_seconds')!;
    expect(blocked, 'max after a 300 ms block').to.be.at.least(0.15);
    // A scrape starts afresh: the block is not in the next interval's max.
    await sleep(EVENT_LOOP_RESOLUTION_MS * 3);
    expect((await scrape(r)).get('nodejs_eventloop_lag_max_seconds'), 'max after the next quiet interval').to.be.below(blocked);
  });
});
