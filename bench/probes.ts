// Prober scheduling and cost (issue 5): 110 pods, each with an httpGet
// readiness probe and a tcpSocket liveness probe at periodSeconds 1, run by
// the real ProbeManager and RuntimeProber on the real clock for a window.
// The probed servers run in a child process on 127.0.0.1, so this process's
// CPU is the prober's own. Reported: probe start drift (how late each probe
// starts against its worker's 1 s ticker, as the worker itself measures it;
// p50/p99) and CPU of the prober as a
// share of one core. Targets: drift p99 <= 100 ms, CPU <= 10% of one core.
// This measures the prober in isolation (no pod syncs, no API traffic), not a
// whole nodelet. Loopback only.
// Run: node bench/probes.ts   Writes bench/results/probes-<ISO>.json and probes-latest.json.
import type { V1Pod } from '@kubernetes/client-node';
import { spawn } from 'node:child_process';
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import { Registry } from 'prom-client';
import { CONTAINER_RUNNING, SANDBOX_READY } from '../cri/api.ts';
import type { ContainerState } from '../cri/api.ts';
import { realClock } from '../lib/clock.ts';
import { nullLogger } from '../lib/log.ts';
import { ProbeManager } from '../agent/prober/manager.ts';
import { RuntimeProber, type ProbeRunner } from '../agent/prober/prober.ts';
import type { RuntimePodStatus } from '../agent/pod/types.ts';
import { formatTable, writeJsonResult } from './lib/results.ts';
import { summarize } from './lib/stats.ts';

const PODS = Number(process.env.NODELET_BENCH_PROBE_PODS ?? 110);
const WINDOW_MS = Number(process.env.NODELET_BENCH_PROBE_MS ?? 30_000);
const PERIOD_MS = 1000;
const TARGET_DRIFT_P99_MS = 100;
const TARGET_CPU = 0.1;

/** An HTTP server and a TCP listener on 127.0.0.1 in a child process; resolves their ports. */
async function startServers(): Promise<{ http: number; tcp: number; stop: () => void }> {
  const script = `
    const http = await import('node:http');
    const net = await import('node:net');
    const h = http.createServer((_q, r) => r.end('ok'));
    const t = net.createServer((c) => c.destroy());
    await new Promise((r) => h.listen(0, '127.0.0.1', r));
    await new Promise((r) => t.listen(0, '127.0.0.1', r));
    console.log(JSON.stringify({ http: h.address().port, tcp: t.address().port }));
  `;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  const ports = await new Promise<{ http: number; tcp: number }>((resolve, reject) => {
    child.stdout.once('data', (b: Buffer) => resolve(JSON.parse(b.toString())));
    child.once('exit', (code) => reject(new Error(`probe servers exited with ${code}`)));
  });
  return { ...ports, stop: () => child.kill() };
}

function benchPod(i: number, ports: { http: number; tcp: number }): V1Pod {
  return {
    metadata: { name: `probe-${i}`, namespace: 'bench-probes', uid: `00000000-0000-4000-8000-${String(i).padStart(12, '0')}` },
    spec: {
      containers: [{
        name: 'app',
        readinessProbe: { httpGet: { host: '127.0.0.1', port: ports.http as never, path: '/ready' }, periodSeconds: 1 },
        livenessProbe: { tcpSocket: { host: '127.0.0.1', port: ports.tcp as never }, periodSeconds: 1 },
      }],
    },
    status: { phase: 'Running' },
  };
}

function runtimeView(pod: V1Pod, i: number): RuntimePodStatus {
  const nowNs = Date.now() * 1e6;
  return {
    uid: pod.metadata!.uid!, name: pod.metadata!.name!, namespace: 'bench-probes',
    sandboxes: [{ id: `sb-${i}`, state: SANDBOX_READY, attempt: 0, createdAt: nowNs, ip: '127.0.0.1' }],
    containers: [{
      id: `c-${i}`, sandboxId: `sb-${i}`, name: 'app', hash: '1', restartCount: 0, state: CONTAINER_RUNNING as ContainerState,
      createdAt: nowNs, startedAt: nowNs, finishedAt: 0, exitCode: 0, reason: '', message: '', image: 'bench', imageRef: '',
    }],
  };
}

async function main(): Promise<void> {
  const servers = await startServers();
  const inner = new RuntimeProber({ runtime: { execSync: async () => { throw new Error('no exec in this bench'); } } });
  const results = { success: 0, failure: 0, other: 0 };
  const drift: number[] = [];
  const runner: ProbeRunner = {
    run: async (probe, target) => {
      const o = await inner.run(probe, target);
      if (o.result === 'success') results.success++;
      else if (o.result === 'failure') results.failure++;
      else results.other++;
      return o;
    },
  };
  const ac = new AbortController();
  const prober = new ProbeManager({
    runtime: { execSync: async () => { throw new Error('unused'); } },
    clock: realClock,
    log: nullLogger(),
    registry: new Registry(),
    events: { podEvent: () => {} },
    onChange: () => {},
    runner,
    // The first probes are spread over the period on purpose; their lateness counts too.
    onProbeLateness: (ms) => drift.push(ms),
  });
  try {
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    for (let i = 0; i < PODS; i++) {
      const pod = benchPod(i, servers);
      prober.syncPod(pod, runtimeView(pod, i));
    }
    await realClock.sleep(WINDOW_MS, ac.signal);
    const cpu = process.cpuUsage(cpu0);
    const wallMs = performance.now() - t0;
    prober.stop();

    const d = summarize(drift);
    const cpuShare = (cpu.user + cpu.system) / 1000 / wallMs;
    const probes = results.success + results.failure + results.other;
    const expected = PODS * 2 * (WINDOW_MS / PERIOD_MS);
    const result = {
      bench: 'probes',
      pods: PODS,
      probesPerPod: 2,
      periodMs: PERIOD_MS,
      windowMs: Math.round(wallMs),
      probes,
      expectedProbes: expected,
      results,
      drift: { ...d, samplesMs: undefined },
      cpuShareOfOneCore: Math.round(cpuShare * 1000) / 1000,
      targets: { driftP99Ms: TARGET_DRIFT_P99_MS, cpuShareOfOneCore: TARGET_CPU },
      met: { drift: d.p99 <= TARGET_DRIFT_P99_MS, cpu: cpuShare <= TARGET_CPU },
      node: process.version,
      // Other load skews both numbers: keep it with the result.
      host: { cpus: os.cpus().length, loadavg1m: Math.round(os.loadavg()[0]! * 10) / 10 },
    };
    console.log(formatTable([
      ['metric', 'value', 'target'],
      ['probes run / expected', `${probes} / ${expected}`, ''],
      ['results (success/failure/other)', `${results.success}/${results.failure}/${results.other}`, ''],
      ['start drift p50 (ms)', String(d.p50), ''],
      ['start drift p99 (ms)', String(d.p99), `<= ${TARGET_DRIFT_P99_MS}`],
      ['start drift max (ms)', String(d.max), ''],
      ['CPU (share of one core)', result.cpuShareOfOneCore.toFixed(3), `<= ${TARGET_CPU}`],
      ['host load average (1 min)', String(result.host.loadavg1m), `${result.host.cpus} CPUs`],
    ]));
    const { file } = writeJsonResult('probes', new Date().toISOString(), result);
    console.log(`wrote ${file}`);
  } finally {
    prober.stop();
    servers.stop();
  }
}

await main();
