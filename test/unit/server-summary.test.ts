// /stats/summary: the Summary API built from runtime stats and /proc text.
import { expect } from 'chai';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { buildSummary, CpuRates, parseBootTime, parseMeminfo, parseNetDev, ProcPodNetwork, rfc3339, type SummaryInput } from '../../agent/server/summary.ts';
import type { ContainerStats } from '../../cri/api.ts';

const T0 = 1_700_000_000_000; // ms

function stats(id: string, cpuNs: number, ws: number, tsMs = T0): ContainerStats {
  const ts = tsMs * 1e6;
  return {
    attributes: { id, metadata: { name: id, attempt: 0 }, labels: {}, annotations: {} },
    cpu: { timestamp: ts, usageCoreNanoSeconds: cpuNs },
    memory: { timestamp: ts, workingSetBytes: ws, usageBytes: ws + 10, rssBytes: ws - 1, pageFaults: 3, majorPageFaults: 1 },
  };
}

const NET_DEV = `Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:     100       1    0    0    0     0          0         0      100       1    0    0    0     0       0          0
  eth0:    5000      40    2    0    0     0          0         0     7000      50    3    0    0     0       0          0
`;

function input(over: Partial<SummaryInput> = {}): SummaryInput {
  return {
    nodeName: 'node-a',
    nowMs: T0,
    node: {
      bootTimeMs: T0 - 3600_000,
      cpuCoreNanoSeconds: 10e9,
      memory: { totalBytes: 1000, freeBytes: 300, availableBytes: 600, rssBytes: 200, pageFaults: 9, majorPageFaults: 2 },
      interfaces: parseNetDev(NET_DEV),
      fs: { capacityBytes: 100, availableBytes: 40, usedBytes: 55, inodes: 10, inodesFree: 4 },
      imageFs: { imagesBytes: 30, containersBytes: 5, capacity: { capacityBytes: 100, availableBytes: 40, usedBytes: 55, inodes: 10, inodesFree: 4 } },
      rlimit: { maxpid: 4194304, curproc: 120 },
    },
    pods: [
      {
        name: 'web',
        namespace: 'default',
        uid: 'u1',
        startTimeMs: T0 - 60_000,
        containers: [
          { name: 'app', startedAtMs: T0 - 50_000, stats: stats('c1', 2e9, 100), logsBytes: 42 },
          { name: 'side', stats: stats('c2', 1e9, 50) },
        ],
        interfaces: [{ name: 'eth0', rxBytes: 1, rxErrors: 0, txBytes: 2, txErrors: 0 }],
      },
    ],
    ...over,
  };
}

describe('server/summary', () => {
  it('parses /proc/net/dev, meminfo + vmstat and btime', () => {
    expect(parseNetDev(NET_DEV)).to.deep.equal([
      { name: 'lo', rxBytes: 100, rxErrors: 0, txBytes: 100, txErrors: 0 },
      { name: 'eth0', rxBytes: 5000, rxErrors: 2, txBytes: 7000, txErrors: 3 },
    ]);
    const mem = parseMeminfo('MemTotal: 4 kB\nMemFree: 1 kB\nMemAvailable: 2 kB\nAnonPages: 1 kB\n', 'pgfault 7\npgmajfault 3\n');
    expect(mem).to.deep.equal({ totalBytes: 4096, freeBytes: 1024, availableBytes: 2048, rssBytes: 1024, pageFaults: 7, majorPageFaults: 3 });
    expect(parseMeminfo('MemTotal: 4 kB\n', '')).to.equal(undefined);
    expect(parseBootTime('cpu 1 2 3\nbtime 1700000000\n')).to.equal(1_700_000_000_000);
  });

  it('builds node, pod and container sections in the Summary API shape', () => {
    const s = buildSummary(input(), new CpuRates());
    const t = rfc3339(T0);
    expect(t).to.equal('2023-11-14T22:13:20Z');
    expect(s.node).to.deep.equal({
      nodeName: 'node-a',
      startTime: rfc3339(T0 - 3600_000),
      cpu: { time: t, usageCoreNanoSeconds: 10e9 },
      memory: { time: t, availableBytes: 600, usageBytes: 700, workingSetBytes: 400, rssBytes: 200, pageFaults: 9, majorPageFaults: 2 },
      network: { time: t, name: 'eth0', rxBytes: 5000, rxErrors: 2, txBytes: 7000, txErrors: 3, interfaces: [{ name: 'eth0', rxBytes: 5000, rxErrors: 2, txBytes: 7000, txErrors: 3 }] },
      fs: { time: t, availableBytes: 40, capacityBytes: 100, usedBytes: 55, inodesFree: 4, inodes: 10, inodesUsed: 6 },
      runtime: {
        imageFs: { time: t, availableBytes: 40, capacityBytes: 100, usedBytes: 30, inodesFree: 4, inodes: 10, inodesUsed: 6 },
        containerFs: { time: t, availableBytes: 40, capacityBytes: 100, usedBytes: 5, inodesFree: 4, inodes: 10, inodesUsed: 6 },
      },
      rlimit: { time: t, maxpid: 4194304, curproc: 120 },
    });
    const [pod] = s.pods;
    expect(pod!.podRef).to.deep.equal({ name: 'web', namespace: 'default', uid: 'u1' });
    expect(pod!.startTime).to.equal(rfc3339(T0 - 60_000));
    expect(pod!.containers[0]).to.deep.equal({
      name: 'app',
      startTime: rfc3339(T0 - 50_000),
      cpu: { time: t, usageCoreNanoSeconds: 2e9 },
      memory: { time: t, usageBytes: 110, workingSetBytes: 100, rssBytes: 99, pageFaults: 3, majorPageFaults: 1 },
      logs: { time: t, usedBytes: 42 },
    });
    // The pod sums its containers.
    expect(pod!.cpu).to.deep.equal({ time: t, usageCoreNanoSeconds: 3e9 });
    expect(pod!.memory).to.deep.equal({ time: t, usageBytes: 170, workingSetBytes: 150, rssBytes: 148, pageFaults: 6, majorPageFaults: 2 });
    expect(pod!.network).to.deep.include({ name: 'eth0', rxBytes: 1, txBytes: 2 });
    expect(pod!['ephemeral-storage']).to.deep.equal({ time: t, usedBytes: 42 });
  });

  it('computes usageNanoCores from the previous sample, for node, containers and pods', () => {
    const rates = new CpuRates();
    buildSummary(input(), rates);
    const next = input({ nowMs: T0 + 2000 });
    next.node.cpuCoreNanoSeconds = 12e9; // +2 s of CPU in 2 s: one core
    next.pods[0]!.containers = [
      { name: 'app', stats: stats('c1', 2.5e9, 100, T0 + 1000) }, // +0.5 s in 1 s
      { name: 'side', stats: stats('c2', 1.1e9, 50, T0 + 1000) }, // +0.1 s in 1 s
    ];
    const s = buildSummary(next, rates);
    expect(s.node.cpu?.usageNanoCores).to.equal(1e9);
    expect(s.pods[0]!.containers.map((c) => c.cpu?.usageNanoCores)).to.deep.equal([5e8, 1e8]);
    expect(s.pods[0]!.cpu?.usageNanoCores).to.equal(6e8);
  });

  it('gives no rate for a first sample or a counter that went backwards, and repeats the rate for the same sample', () => {
    const r = new CpuRates();
    expect(r.rate('a', 1e9, 0)).to.equal(undefined);
    expect(r.rate('a', 2e9, 5e8)).to.equal(5e8);
    expect(r.rate('a', 2e9, 5e8)).to.equal(5e8);
    expect(r.rate('a', 3e9, 1e8)).to.equal(undefined); // restarted container
    r.retain(new Set());
    expect(r.rate('a', 4e9, 2e8)).to.equal(undefined); // forgotten
  });

  it('leaves out network and filesystems for only_cpu_and_memory', () => {
    const s = buildSummary(input({ onlyCpuAndMemory: true }), new CpuRates());
    expect(Object.keys(s.node).sort()).to.deep.equal(['cpu', 'memory', 'nodeName', 'startTime']);
    expect(Object.keys(s.pods[0]!).sort()).to.deep.equal(['containers', 'cpu', 'memory', 'podRef', 'startTime']);
    expect(s.pods[0]!.containers[0]).to.not.have.property('logs');
  });

  it('finds a sandbox process by its container ID in /proc/PID/cgroup and reads its net/dev', () => {
    const proc = mkdtempSync(path.join(os.tmpdir(), 'summary-proc-'));
    try {
      const mk = (pid: number, cgroup: string, net?: string) => {
        mkdirSync(path.join(proc, String(pid), 'net'), { recursive: true });
        writeFileSync(path.join(proc, String(pid), 'cgroup'), cgroup);
        if (net) writeFileSync(path.join(proc, String(pid), 'net', 'dev'), net);
      };
      mk(1, '0::/init.scope\n');
      mk(42, '0::/system.slice/docker-abc123.scope\n', NET_DEV);
      const net = new ProcPodNetwork(proc);
      const got = net.read(['abc123', 'missing']);
      expect([...got.keys()]).to.deep.equal(['abc123']);
      expect(got.get('abc123')?.find((i) => i.name === 'eth0')?.rxBytes).to.equal(5000);
      // The process went away: the next read looks again and finds nothing.
      rmSync(path.join(proc, '42'), { recursive: true });
      expect(net.read(['abc123']).size).to.equal(0);
    } finally {
      rmSync(proc, { recursive: true, force: true });
    }
  });
});
