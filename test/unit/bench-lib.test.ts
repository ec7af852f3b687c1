// The benches' shared helpers (bench/lib): statistics, /proc parsing, the PNG
// writer and plot maths, pod readiness, result files, upstream node configs.
// Addresses are the sandbox profile's own (cluster/profile.ts), never routed beyond it.
import { expect } from 'chai';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { inflateSync } from 'node:zlib';
import type { V1Pod } from '@kubernetes/client-node';
import { profileByName } from '../../cluster/profile.ts';
import { gauge, histogram } from '../../bench/proxy/objects.ts';
import { histogramV4 } from '../../bench/nftables/objects.ts';
import { nodeSandbox } from '../../cluster/sandbox.ts';
import { isRunningReady, podManifest } from '../../bench/lib/podbatch.ts';
import { Canvas, crc32, encodePng } from '../../bench/lib/png.ts';
import { cdfPoints, niceTicks } from '../../bench/lib/plot.ts';
import { busyShare, footprint, parseCpuTicks, parseCpuTotals, parseVmRssKb } from '../../bench/lib/proc.ts';
import { formatTable, writeJsonResult, writeResult } from '../../bench/lib/results.ts';
import { percentile, percentileOfAll, ratio, summarize } from '../../bench/lib/stats.ts';
import { cniConfig, containerdConfig, kubeletConfig, upstreamNode } from '../../bench/lib/upstreamnode.ts';

describe('bench/lib', () => {
  describe('stats', () => {
    it('takes nearest-rank percentiles of sorted samples', () => {
      const s = Array.from({ length: 100 }, (_, i) => i + 1);
      expect(percentile(s, 0.5)).to.equal(50);
      expect(percentile(s, 0.99)).to.equal(99);
      expect(percentile([7], 0.99)).to.equal(7);
      expect(percentile([], 0.5)).to.be.NaN;
    });

    it('summarizes unsorted samples, keeping them in their order', () => {
      const s = summarize([30, 10, 20.04]);
      expect(s).to.deep.include({ n: 3, p50: 20, p99: 30, mean: 20, min: 10, max: 30 });
      expect(s.samplesMs).to.deep.equal([30, 10, 20]);
    });

    it('ranks pods that never finished above all samples', () => {
      const thirty = Array.from({ length: 29 }, (_, i) => i + 1);
      expect(percentileOfAll(thirty, 30, 0.5)).to.equal(15);
      expect(percentileOfAll(thirty, 30, 0.99)).to.equal(null);
      expect(percentileOfAll([...thirty, 30], 30, 0.99)).to.equal(30);
      expect(percentileOfAll([], 0, 0.5)).to.equal(null);
    });

    it('gives no ratio when a side is missing', () => {
      expect(ratio(3, 2)).to.equal(1.5);
      expect(ratio(3, undefined)).to.equal(null);
      expect(ratio(NaN, 2)).to.equal(null);
      expect(ratio(3, 0)).to.equal(null);
    });
  });

  describe('proc', () => {
    it('reads VmRSS in kB', () => {
      expect(parseVmRssKb('Name:\tnode\nVmPeak:\t 999 kB\nVmRSS:\t  183456 kB\nRssAnon: 1 kB\n')).to.equal(183456);
      expect(() => parseVmRssKb('Name:\tzombie\n')).to.throw(/VmRSS/);
    });

    it('adds utime and stime even when the command name holds spaces and parens', () => {
      const stat = '4242 (my (odd) cmd) S 1 4242 4242 0 -1 4194560 100 0 0 0 1234 567 0 0 20 0 11 0 100 0 0';
      expect(parseCpuTicks(stat)).to.equal(1234 + 567);
    });

    it('turns two samples into RSS MB and CPU % of one core', () => {
      const f = footprint({ rssKb: 100 * 1024, cpuTicks: 1000 }, { rssKb: 150 * 1024, cpuTicks: 1300 }, 160 * 1024, 30_000, 100);
      // 300 ticks = 3 s of CPU in 30 s = 10 % of a core.
      expect(f).to.deep.equal({ rssMb: 150, rssMaxMb: 160, cpuPercent: 10, windowS: 30 });
    });

    it("reads the machine's busy share from /proc/stat (idle and iowait are idle)", () => {
      // user nice system idle iowait irq softirq steal
      const a = parseCpuTotals('cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 50 0 25 400 25 0 0 0 0 0\n');
      expect(a).to.deep.equal({ busy: 150, total: 1000 });
      const b = parseCpuTotals('cpu  130 0 60 950 60 0 0 0 0 0\n');
      expect(busyShare(a, b)).to.be.closeTo(40 / 200, 1e-9);
      expect(busyShare(a, a)).to.equal(0);
      expect(() => parseCpuTotals('intr 1 2 3\n')).to.throw(/cpu/);
    });
  });

  describe('png', () => {
    it('computes the PNG CRC-32', () => {
      expect(crc32(Buffer.from('IEND'))).to.equal(0xae426082);
    });

    it('writes a PNG whose image data inflates to the pixels, row by row', () => {
      const rgb = Uint8Array.from([255, 0, 0, 0, 255, 0, 0, 0, 255, 10, 20, 30]);
      const png = encodePng(2, 2, rgb);
      expect(png.subarray(0, 8)).to.deep.equal(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
      expect(png.toString('ascii', 12, 16)).to.equal('IHDR');
      expect(png.readUInt32BE(16)).to.equal(2);
      expect(png.readUInt32BE(20)).to.equal(2);
      expect([png[24], png[25]]).to.deep.equal([8, 2]);
      const idatAt = png.indexOf('IDAT');
      const len = png.readUInt32BE(idatAt - 4);
      const raw = inflateSync(png.subarray(idatAt + 4, idatAt + 4 + len));
      expect([...raw]).to.deep.equal([0, 255, 0, 0, 0, 255, 0, 0, 0, 0, 255, 10, 20, 30]);
      expect(png.readUInt32BE(idatAt + 4 + len)).to.equal(crc32(png.subarray(idatAt, idatAt + 4 + len)));
      expect(png.toString('ascii', png.length - 8, png.length - 4)).to.equal('IEND');
    });

    it('refuses a pixel buffer of the wrong size', () => {
      expect(() => encodePng(2, 2, new Uint8Array(3))).to.throw(RangeError);
    });

    it('draws text as 5x7 glyphs in a 6-pixel advance', () => {
      const c = new Canvas(20, 10, [255, 255, 255]);
      expect(c.text(1, 1, '1.', [0, 0, 0])).to.equal(12);
      const ink = (x: number, y: number) => c.pixels[(y * 20 + x) * 3] === 0;
      // '1': the centre column is inked from row 0 to 6, the base is three wide.
      expect([0, 1, 2, 3, 4, 5, 6].every((r) => ink(3, 1 + r))).to.equal(true);
      expect([2, 3, 4].map((x) => ink(x, 7))).to.deep.equal([true, true, true]);
      expect(ink(1, 1)).to.equal(false);
    });
  });

  describe('plot', () => {
    it('picks round ticks that cover the maximum', () => {
      expect(niceTicks(237)).to.deep.equal([0, 50, 100, 150, 200, 250]);
      expect(niceTicks(1800)).to.deep.equal([0, 500, 1000, 1500, 2000]);
      expect(niceTicks(0)).to.deep.equal([0, 1]);
    });

    it('counts pods that never started in the CDF denominator', () => {
      expect(cdfPoints([30, 10])).to.deep.equal([[10, 0.5], [30, 1]]);
      expect(cdfPoints([30, 10], 4)).to.deep.equal([[10, 0.25], [30, 0.5]]);
    });
  });

  describe('podbatch', () => {
    const pod = (phase: string, ready: boolean[], containers = ready.length): V1Pod => ({
      spec: { containers: Array.from({ length: containers }, (_, i) => ({ name: `c${i}` })) },
      status: { phase, containerStatuses: ready.map((r, i) => ({ name: `c${i}`, ready: r, image: '', imageID: '', restartCount: 0 })) },
    });

    it('calls a pod started only when Running with every container ready', () => {
      expect(isRunningReady(pod('Running', [true, true]))).to.equal(true);
      expect(isRunningReady(pod('Running', [true, false]))).to.equal(false);
      expect(isRunningReady(pod('Pending', [true]))).to.equal(false);
      expect(isRunningReady(pod('Running', [true], 2))).to.equal(false);
      expect(isRunningReady({})).to.equal(false);
    });

    it('pins the pod to the node and labels it with its batch', () => {
      const p = podManifest('c-001', { namespace: 'ns', node: 'n2', image: 'img:1', command: ['sleep', '1'], batch: 'b1' });
      expect(p.spec?.nodeName).to.equal('n2');
      expect(p.metadata?.labels).to.deep.equal({ 'bench.nodelet.io/batch': 'b1' });
      expect(p.spec?.containers[0]).to.deep.include({ image: 'img:1', command: ['sleep', '1'] });
      expect(p.spec?.terminationGracePeriodSeconds).to.equal(1);
    });
  });

  describe('results', () => {
    it('aligns table columns', () => {
      expect(formatTable([['a', 'bb'], ['ccc', '1']])).to.equal('a    bb\nccc   1');
    });

    it('writes a timestamped file and a latest copy', () => {
      const dir = mkdtempSync(path.join(os.tmpdir(), 'bench-results-'));
      try {
        const { file, latest } = writeJsonResult('x', '2026-01-02T03:04:05.678Z', { a: 1 }, dir);
        expect(path.basename(file)).to.equal('x-2026-01-02T03-04-05.678Z.json');
        expect(JSON.parse(readFileSync(latest, 'utf8'))).to.deep.equal({ a: 1 });
        const png = writeResult('x', '2026-01-02T03:04:05.678Z', 'png', Buffer.from([1, 2]), dir);
        expect([...readFileSync(png.latest)]).to.deep.equal([1, 2]);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  });

  describe('upstream node configs', () => {
    const p = profileByName('dev5');
    const u = upstreamNode(p, 'nl5-node2', nodeSandbox(p, 2));

    it('keeps containerd inside the profile dirs, with the local pause image and clamped OOM scores', () => {
      const t = containerdConfig(u, 'nodelet.local/pause:3.10');
      expect(t).to.include(`root = "${p.stateDir}/upstream-node/nl5-node2/containerd"`);
      expect(t).to.include(`address = "${p.runDir}/upstream-node/nl5-node2/containerd.sock"`);
      expect(t).to.include('sandbox_image = "nodelet.local/pause:3.10"');
      expect(t).to.include('restrict_oom_score_adj = true');
      expect(t).to.include('io.containerd.internal.v1.opt');
    });

    it('gives pods addresses from the node pod CIDR', () => {
      const c = JSON.parse(cniConfig(u));
      expect(c.plugins[0].ipam.ranges).to.deep.equal([[{ subnet: '10.250.2.0/24', gateway: '10.250.2.1' }]]);
      expect(c.plugins[0].ipam.dataDir).to.equal(`${p.stateDir}/upstream-node/nl5-node2/cni-ipam`);
    });

    it('runs the kubelet on cgroup v1 under the node cgroup parent', () => {
      const k = JSON.parse(kubeletConfig(p, u, '/ca.crt', 110));
      expect(k).to.deep.include({ cgroupRoot: '/nl5-node2', failCgroupV1: false, maxPods: 110, address: '10.219.0.12', readOnlyPort: 0 });
      expect(k.containerRuntimeEndpoint).to.equal(`unix://${u.containerdSocket}`);
      expect(k.clusterDNS).to.deep.equal(['10.96.0.10']);
    });
  });
});

describe('bench/proxy metrics text', () => {
  // As kube-proxy 1.37 and nodelet print them on a host with IPv6: a series per family (labels in either order).
  const text = [
    'kubeproxy_sync_full_proxy_rules_duration_seconds_sum{ip_family="IPv4"} 0.25',
    'kubeproxy_sync_full_proxy_rules_duration_seconds_count{ip_family="IPv4"} 1',
    'kubeproxy_sync_full_proxy_rules_duration_seconds_sum{ip_family="IPv6"} 0.002',
    'kubeproxy_sync_full_proxy_rules_duration_seconds_count{ip_family="IPv6"} 3',
    'kubeproxy_sync_proxy_rules_iptables_total{ip_family="IPv6",table="nat"} 5',
    'kubeproxy_sync_proxy_rules_iptables_total{table="nat",ip_family="IPv4"} 5012',
  ].join('\n');

  it('reads the IPv4 series only when asked, all series otherwise', () => {
    expect(histogram(text, 'kubeproxy_sync_full_proxy_rules_duration_seconds', 'ip_family="IPv4"')).to.deep.equal({ sum: 0.25, count: 1 });
    expect(histogramV4(text, 'kubeproxy_sync_full_proxy_rules_duration_seconds')).to.deep.equal({ sum: 0.25, count: 1 });
    expect(histogram(text, 'kubeproxy_sync_full_proxy_rules_duration_seconds').count).to.equal(4);
    expect(gauge(text, 'kubeproxy_sync_proxy_rules_iptables_total', 'table="nat"', 'ip_family="IPv4"')).to.equal(5012);
    expect(gauge(text, 'kubeproxy_sync_proxy_rules_iptables_total', 'table="filter"')).to.equal(undefined);
  });
});
