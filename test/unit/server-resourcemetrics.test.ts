// /metrics/resource: what metrics-server reads, rendered as upstream does.
import { expect } from 'chai';
import { containerUsage, parseNodeUsage, renderResourceMetrics } from '../../agent/server/resourcemetrics.ts';
import type { ContainerStats } from '../../cri/api.ts';

function stats(id: string, pod: string, container: string, cpuNs: number, ws: number, tsNs = 1_700_000_000_000_000_000): ContainerStats {
  return {
    attributes: {
      id,
      metadata: { name: container, attempt: 0 },
      labels: { 'io.kubernetes.pod.name': pod, 'io.kubernetes.pod.namespace': 'default', 'io.kubernetes.pod.uid': `uid-${pod}`, 'io.kubernetes.container.name': container },
      annotations: {},
    },
    cpu: { timestamp: tsNs, usageCoreNanoSeconds: cpuNs },
    memory: { timestamp: tsNs, workingSetBytes: ws, usageBytes: ws, rssBytes: 0, pageFaults: 0, majorPageFaults: 0 },
  };
}

describe('server/resourcemetrics', () => {
  it('maps runtime stats to container usage, skipping containers without pod labels', () => {
    const foreign: ContainerStats = { attributes: { id: 'x', metadata: { name: 'x', attempt: 0 }, labels: {}, annotations: {} } };
    const u = containerUsage([stats('c1', 'web', 'app', 1_500_000_000, 1024), foreign], (id) => (id === 'c1' ? 1_700_000_000_500_000_000 : undefined));
    expect(u).to.deep.equal([
      { container: 'app', pod: 'web', namespace: 'default', podUid: 'uid-web', timestampMs: 1_700_000_000_000, cpuCoreSeconds: 1.5, memoryWorkingSetBytes: 1024, startTimeSeconds: 1_700_000_000.5 },
    ]);
  });

  it('renders container, node and pod families with sample timestamps; pods sum their containers', () => {
    const u = containerUsage([stats('c1', 'web', 'app', 1_000_000_000, 100), stats('c2', 'web', 'side', 500_000_000, 50)], () => undefined);
    const text = renderResourceMetrics({ timestampMs: 5, cpuCoreSeconds: 12.5, memoryWorkingSetBytes: 4096 }, u, false);
    expect(text).to.include('# TYPE container_cpu_usage_seconds_total counter\n');
    expect(text).to.include('container_cpu_usage_seconds_total{container="app",namespace="default",pod="web"} 1 1700000000000\n');
    expect(text).to.include('container_memory_working_set_bytes{container="side",namespace="default",pod="web"} 50 1700000000000\n');
    expect(text).to.include('node_cpu_usage_seconds_total 12.5 5\n');
    expect(text).to.include('node_memory_working_set_bytes 4096 5\n');
    expect(text).to.include('pod_cpu_usage_seconds_total{namespace="default",pod="web"} 1.5 1700000000000\n');
    expect(text).to.include('pod_memory_working_set_bytes{namespace="default",pod="web"} 150 1700000000000\n');
    expect(text).to.include('scrape_error 0\n');
    expect(text).to.not.include('container_start_time_seconds');
  });

  it('reports a failed stats call as scrape_error 1', () => {
    const text = renderResourceMetrics(undefined, [], true);
    expect(text).to.equal(
      '# HELP resource_scrape_error [STABLE] 1 if there was an error while getting container metrics, 0 otherwise\n# TYPE resource_scrape_error gauge\nresource_scrape_error 1\n' +
        '# HELP scrape_error [STABLE] 1 if there was an error while getting container metrics, 0 otherwise\n# TYPE scrape_error gauge\nscrape_error 1\n',
    );
  });

  it('reads node usage from /proc/stat and /proc/meminfo', () => {
    const stat = 'cpu  100 20 30 1000 7 3 2 1 0 0\ncpu0 50 10 15 500 3 1 1 0 0 0\n';
    const mem = 'MemTotal:        2048 kB\nMemFree:          100 kB\nMemAvailable:     512 kB\n';
    expect(parseNodeUsage(stat, mem, 42)).to.deep.equal({ timestampMs: 42, cpuCoreSeconds: 1.56, memoryWorkingSetBytes: 1536 * 1024 });
    expect(parseNodeUsage('nothing', mem, 1)).to.equal(undefined);
    expect(parseNodeUsage(stat, 'MemTotal: 1 kB\n', 1)).to.equal(undefined);
  });
});
