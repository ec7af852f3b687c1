// Issue 8's benchmark: a rolling update of a 3-replica Deployment (webapp
// 1.0 <-> 2.0, readiness probe on /health) while a client sends requests in a
// loop through the NodePort, each on a new connection; per rollout the time
// from `kubectl set image` to `rollout status` done, and the failed requests.
// Three ways, in one run on one cluster (profile dev4, NODELET_BENCH_PROFILE):
//   gate       nodelet as it ships: a deleted pod is signalled once this
//              node's proxy sends it no new connections (agent/pod/trafficgate.ts)
//   preStop    the upstream recommendation: a preStop `sleep 5`, and the agent
//              without the gate (--service-proxy-url=), as the upstream kubelet
//   neither    no gate, no preStop: what the upstream kubelet does without one
// NODELET_BENCH_ROLLOUTS (default 4) rollouts each. The cluster is brought up
// and taken down by the bench (NODELET_BENCH_KEEP=1 keeps it). Sandbox
// addresses only (the node IP).
// Run: node bench/rollout.ts. Writes bench/results/rollout-<ISO>.json and rollout-latest.json.
import os from 'node:os';
import Dockerode from 'dockerode';
import { stopDaemon, waitFor } from '../cluster/daemon.ts';
import { profileByName } from '../cluster/profile.ts';
import { type Cluster, clusterDown, clusterUp, nodeletPidFile, nodeReady, startNodelet } from '../cluster/up.ts';
import { ensureWebappImages, WEBAPP_PORT, webappImage } from '../cri/images/webapp.ts';
import { describeError } from '../lib/errors.ts';
import { answerVersion, httpGet, kube, type Kube, requestLoop } from '../test/e2e/kube.ts';
import { formatTable, writeJsonResult } from './lib/results.ts';
import { summarize } from './lib/stats.ts';

const NS = 'bench-rollout';
const ROLLOUTS = Number(process.env.NODELET_BENCH_ROLLOUTS ?? 4);
const REPLICAS = 3;
const PRESTOP_SLEEP_S = 5;
type Variant = 'gate' | 'preStop' | 'neither';

interface Rollout {
  variant: Variant;
  to: string;
  /** set image -> `rollout status` done (new pods Ready). */
  seconds: number;
  /** set image -> the old pods gone (stopped and deleted). */
  secondsToOldGone: number;
  requests: number;
  failed: number;
  failures: string[];
  load: number[];
}

const load = () => os.loadavg().map((x) => Math.round(x * 100) / 100);

function deployment(preStop: boolean): string {
  return JSON.stringify({
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'web', namespace: NS },
    spec: {
      replicas: REPLICAS,
      selector: { matchLabels: { app: 'web' } },
      template: {
        metadata: { labels: { app: 'web' } },
        spec: {
          containers: [{
            name: 'webapp',
            image: webappImage('1.0'),
            imagePullPolicy: 'Never',
            ports: [{ containerPort: WEBAPP_PORT }],
            readinessProbe: { httpGet: { path: '/health', port: WEBAPP_PORT }, periodSeconds: 1, failureThreshold: 1 },
            ...(preStop ? { lifecycle: { preStop: { exec: { command: ['sleep', String(PRESTOP_SLEEP_S)] } } } } : {}),
          }],
        },
      },
    },
  });
}

const SERVICE = JSON.stringify({
  apiVersion: 'v1',
  kind: 'Service',
  metadata: { name: 'web', namespace: NS },
  spec: { type: 'NodePort', selector: { app: 'web' }, ports: [{ port: 80, targetPort: WEBAPP_PORT }] },
});

async function settled(k: Kube): Promise<void> {
  await k.run(['rollout', 'status', 'deployment/web', '--timeout=180s'], { timeoutMs: 190_000 });
  await waitFor('only the new pods left', async () => {
    const pods = (await k.json(['get', 'pods', '-l', 'app=web'])).items as any[];
    return pods.length === REPLICAS && pods.every((p) => !p.metadata.deletionTimestamp);
  }, 120_000, 500);
}

async function measure(k: Kube, nodeIP: string, nodePort: number, variant: Variant, version: string): Promise<Rollout> {
  const loop = requestLoop(nodeIP, nodePort);
  const started = Date.now();
  const l = load();
  await k.run(['set', 'image', 'deployment/web', `webapp=${webappImage(version)}`]);
  await k.run(['rollout', 'status', 'deployment/web', '--timeout=180s'], { timeoutMs: 190_000 });
  const seconds = (Date.now() - started) / 1000;
  // Old pods may still be terminating (preStop): the client keeps going until they are gone.
  await settled(k);
  const secondsToOldGone = (Date.now() - started) / 1000;
  const res = await loop.stop();
  const r = { variant, to: version, seconds: Math.round(seconds * 10) / 10, secondsToOldGone: Math.round(secondsToOldGone * 10) / 10, requests: res.total, failed: res.failed, failures: res.failures, load: l };
  console.log(`  ${variant.padEnd(8)} -> ${version}: rollout ${r.seconds} s, old pods gone ${r.secondsToOldGone} s, ${r.requests} requests, ${r.failed} failed`);
  return r;
}

async function restartAgent(c: Cluster, extra: string[]): Promise<void> {
  const node = c.nodes[0]!;
  await stopDaemon(nodeletPidFile(c.profile, node.sandbox), 30_000);
  startNodelet(c.profile, node.name, node.sandbox, extra);
  await waitFor(`node ${node.name} Ready again`, () => nodeReady(c.paths, node.name), 120_000, 1000);
}

async function main(): Promise<void> {
  const p = profileByName(process.env.NODELET_BENCH_PROFILE ?? 'dev4');
  const log = (m: string) => console.log(`  [cluster] ${m}`);
  const t0 = Date.now();
  const c = await clusterUp(p, { nodes: 1, log });
  const rollouts: Rollout[] = [];
  try {
    const node = c.nodes[0]!;
    await ensureWebappImages(new Dockerode({ socketPath: node.sandbox.dockerSocket, timeout: 120_000 }));
    const k = kube(c, NS);
    await k.run(['delete', 'namespace', NS, '--ignore-not-found', '--wait=true'], { timeoutMs: 180_000 });
    await k.run(['create', 'namespace', NS]);
    await waitFor('the default service account', async () => (await k.run(['get', 'sa', 'default'], { allowFail: true })).code === 0, 60_000, 500);
    await k.run(['apply', '-f', '-'], { input: SERVICE });
    const nodePort = (await k.json(['get', 'service', 'web'])).spec.ports[0].nodePort as number;

    for (const variant of ['gate', 'neither', 'preStop'] as const) {
      if (variant === 'neither') await restartAgent(c, ['--service-proxy-url=']);
      await k.run(['apply', '-f', '-'], { input: deployment(variant === 'preStop') });
      await settled(k);
      // Start every variant from 1.0.
      const img = (await k.json(['get', 'deployment', 'web'])).spec.template.spec.containers[0].image as string;
      if (img !== webappImage('1.0')) {
        await k.run(['set', 'image', 'deployment/web', `webapp=${webappImage('1.0')}`]);
        await settled(k);
      }
      // The NodePort answers before the clock starts (the Service is new on the first round).
      await waitFor('20 answers in a row through the NodePort', async () => {
        for (let i = 0; i < 20; i++) if (!answerVersion(await httpGet(node.sandbox.nodeIP, nodePort))) return false;
        return true;
      }, 60_000, 200);
      for (let i = 0; i < ROLLOUTS; i++) rollouts.push(await measure(k, node.sandbox.nodeIP, nodePort, variant, i % 2 === 0 ? '2.0' : '1.0'));
    }
  } finally {
    if (process.env.NODELET_BENCH_KEEP !== '1') await clusterDown(p, { log }).catch((err) => console.error(`clusterDown: ${describeError(err)}`));
  }

  const by = (v: Variant) => rollouts.filter((r) => r.variant === v);
  const stat = (v: Variant) => {
    const rs = by(v);
    const s = summarize(rs.map((r) => r.seconds * 1000));
    const g = summarize(rs.map((r) => r.secondsToOldGone * 1000));
    return { rollouts: rs.length, secondsP50: s.p50 / 1000, secondsMax: s.max / 1000, oldGoneP50: g.p50 / 1000, requests: rs.reduce((a, r) => a + r.requests, 0), failed: rs.reduce((a, r) => a + r.failed, 0) };
  };
  const summary = { gate: stat('gate'), preStop: stat('preStop'), neither: stat('neither') };
  const rows = [['way', 'rollouts', 'rollout s p50', 'max', 'old pods gone s p50', 'requests', 'failed']];
  for (const [name, s] of Object.entries(summary)) {
    rows.push([name, String(s.rollouts), s.secondsP50.toFixed(1), s.secondsMax.toFixed(1), s.oldGoneP50.toFixed(1), String(s.requests), String(s.failed)]);
  }
  console.log(`\n${formatTable(rows)}`);
  const ratio = summary.gate.secondsP50 / summary.preStop.secondsP50;
  const goneRatio = summary.gate.oldGoneP50 / summary.preStop.oldGoneP50;
  console.log(`gate vs preStop sleep ${PRESTOP_SLEEP_S} s: rollout time ratio ${ratio.toFixed(2)}, old pods gone ratio ${goneRatio.toFixed(2)}; failed requests with the gate: ${summary.gate.failed} (target 0)`);
  const { file } = writeJsonResult('rollout', new Date().toISOString(), {
    benchmark: 'rollout',
    profile: p.name,
    replicas: REPLICAS,
    preStopSleepSeconds: PRESTOP_SLEEP_S,
    method: 'kubectl set image to rollout status done; a client loops GET / through the NodePort from the host, each on a new connection (2 s timeout, 20 ms gap), until the old pods are gone',
    host: { cpus: os.cpus().length, node: process.version },
    summary,
    ratioGateToPreStop: Math.round(ratio * 100) / 100,
    ratioOldGoneGateToPreStop: Math.round(goneRatio * 100) / 100,
    targets: { failedWithGate: 0 },
    met: { failedWithGate: summary.gate.failed === 0 },
    rollouts,
    totalS: Math.round((Date.now() - t0) / 1000),
  });
  console.log(`wrote ${file}`);
}

await main();
