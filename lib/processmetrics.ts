// The process metrics every nodelet daemon serves: prom-client's defaults
// (process_cpu_seconds_total, process_resident_memory_bytes, heap, handles, GC),
// with event-loop delay sampled every 100 ms instead of prom-client's 10 ms.
// Its sampler is a timer that wakes the loop at that rate whether or not there
// is work: at 10 ms it was most of an idle daemon's CPU (70 of 100 ms per 20 s,
// about 0.35 % of a core, measured with process.cpuUsage). Node records each
// interval between ticks whole, so prom-client's numbers included the 10 ms
// itself; these are the delay beyond the tick. The names are prom-client's.
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { collectDefaultMetrics, Gauge, type Registry } from 'prom-client';

/** How often event-loop delay is sampled. */
export const EVENT_LOOP_RESOLUTION_MS = 100;

/** prom-client's histogram-based event-loop gauges, replaced here (nodejs_eventloop_lag_seconds, measured at scrape, stays). */
const REPLACED = ['min', 'max', 'mean', 'stddev', 'p50', 'p90', 'p99'] as const;

/** A timer interval prom-client's own sampler never reaches (int32 ms, about 24 days). */
const NEVER_MS = 2 ** 31 - 1;

export function collectProcessMetrics(register: Registry): void {
  collectDefaultMetrics({ register, eventLoopMonitoringPrecision: NEVER_MS });
  for (const stat of REPLACED) register.removeSingleMetric(`nodejs_eventloop_lag_${stat}_seconds`);
  const h = monitorEventLoopDelay({ resolution: EVENT_LOOP_RESOLUTION_MS });
  h.enable();
  const beyondTick = (ns: number) => Math.max(0, ns / 1e6 - EVENT_LOOP_RESOLUTION_MS) / 1000;
  const read: Record<(typeof REPLACED)[number], () => number> = {
    min: () => beyondTick(h.min),
    max: () => beyondTick(h.max),
    mean: () => beyondTick(h.mean),
    stddev: () => h.stddev / 1e9,
    p50: () => beyondTick(h.percentile(50)),
    p90: () => beyondTick(h.percentile(90)),
    p99: () => beyondTick(h.percentile(99)),
  };
  const gauges = new Map<(typeof REPLACED)[number], Gauge>();
  // One scrape reads every gauge: the first one's collect sets them all from the samples so far, then starts afresh.
  const setAll = () => {
    // No tick since the last scrape (two scrapes within 100 ms): nothing was measured, so no delay.
    for (const [stat, g] of gauges) g.set(h.count > 0 ? read[stat]() : 0);
    h.reset();
  };
  for (const stat of REPLACED) {
    const help = `Event loop delay beyond the ${EVENT_LOOP_RESOLUTION_MS} ms sampling tick since the last scrape: ${stat}.`;
    gauges.set(stat, new Gauge({ name: `nodejs_eventloop_lag_${stat}_seconds`, help, registers: [register], ...(stat === REPLACED[0] ? { collect: setAll } : {}) }));
  }
}
