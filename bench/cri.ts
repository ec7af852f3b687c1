// Pod start latency of the CRI runtime (cri/docker/runtime.ts) against the floor
// of the same work done with plain Docker calls, in a sandbox node of its own
// (node 6 of NODELET_BENCH_PROFILE, default dev), which is always destroyed.
//   (a) nodelet: per pod runPodSandbox + createContainer + startContainer
//   (b) floor:   per pod the two `docker run -d` equivalents through dockerode:
//                pause, then the app with --network container:<pause>
//   (c) 20 pods at once through the runtime; errors counted
// Run: node bench/cri.ts   Writes bench/results/cri-<ISO>.json and cri-latest.json.
import Dockerode from 'dockerode';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { profileByName } from '../cluster/profile.ts';
import { destroyNode, ensureNode, startDockerd } from '../cluster/sandbox.ts';
import { DockerRuntime } from '../cri/docker/runtime.ts';
import { BUSYBOX_IMAGE, ensureBusyboxImage, ensurePauseImage, PAUSE_IMAGE } from '../cri/images/build.ts';
import { containerLogPath, podLogDirectory } from '../cri/logformat.ts';
import type { ContainerConfig, PodSandboxConfig } from '../cri/runtime.ts';
import { describeError } from '../lib/errors.ts';
import { round, summarize } from './lib/stats.ts';

const NODE = 6;
const PODS = Number(process.env.NODELET_BENCH_PODS ?? 50);
const CONCURRENT = Number(process.env.NODELET_BENCH_CONCURRENT ?? 20);
const WARMUP = 3;
const TARGET_RATIO = 1.3;
const APP_CMD = ['sleep', '3600'];

async function main(): Promise<number> {
  const t0 = performance.now();
  const profileName = process.env.NODELET_BENCH_PROFILE ?? 'dev';
  const p = profileByName(profileName);
  const logRoot = path.join(p.stateDir, 'bench-cri-logs');
  let rt: DockerRuntime | undefined;
  let interrupted = false;
  const onSignal = () => {
    interrupted = true;
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const check = () => {
    if (interrupted) throw new Error('interrupted');
  };
  try {
    const n = await ensureNode(p, NODE, [NODE]);
    await startDockerd(n);
    const docker = new Dockerode({ socketPath: n.dockerSocket });
    await ensurePauseImage(docker);
    await ensureBusyboxImage(docker);
    rmSync(logRoot, { recursive: true, force: true });
    rt = new DockerRuntime(docker);
    const runtime = rt;
    const dockerVersion = (await docker.version()).Version;
    console.log(`cri bench: profile ${p.name}, node ${n.netns}, docker ${dockerVersion}, ${PODS} pods, ${CONCURRENT} concurrent`);

    const cleanAll = async () => {
      const all = await docker.listContainers({ all: true });
      // App containers first: a pause container cannot go while others use its namespaces.
      const apps = all.filter((c) => !c.Image.startsWith(PAUSE_IMAGE.split(':')[0]!));
      const pauses = all.filter((c) => !apps.includes(c));
      await Promise.all(apps.map((c) => docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined)));
      await Promise.all(pauses.map((c) => docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined)));
      const left = await docker.listContainers({ all: true });
      if (left.length) throw new Error(`cleanup left ${left.length} containers`);
    };

    let seq = 0;
    const sandboxConfig = (): PodSandboxConfig => {
      const name = `bench${++seq}`;
      const uid = `uid-${seq}-${Date.now()}`;
      return {
        metadata: { name, namespace: 'default', uid, attempt: 0 },
        hostname: name,
        logDirectory: podLogDirectory(logRoot, 'default', name, uid),
        dnsConfig: { servers: ['10.96.0.10'], searches: ['default.svc.cluster.local'], options: ['ndots:5'] },
        labels: { app: 'bench' },
      };
    };
    const containerConfig = (): ContainerConfig => ({
      metadata: { name: 'app', attempt: 0 },
      image: { image: BUSYBOX_IMAGE },
      command: APP_CMD,
      logPath: containerLogPath('app', 0),
    });
    const nodeletPod = async (): Promise<number> => {
      const start = performance.now();
      const sb = sandboxConfig();
      const sid = await runtime.runPodSandbox(sb);
      const cid = await runtime.createContainer(sid, containerConfig(), sb);
      await runtime.startContainer(cid);
      return performance.now() - start;
    };
    const floorPod = async (): Promise<number> => {
      const start = performance.now();
      const name = `floor${++seq}`;
      const pause = await docker.createContainer({ name: `${name}-pause`, Image: PAUSE_IMAGE, Hostname: name });
      await pause.start();
      const app = await docker.createContainer({
        name: `${name}-app`,
        Image: BUSYBOX_IMAGE,
        Cmd: APP_CMD,
        HostConfig: { NetworkMode: `container:${pause.id}` },
      });
      await app.start();
      return performance.now() - start;
    };
    const sequential = async (label: string, pod: () => Promise<number>): Promise<number[]> => {
      for (let i = 0; i < WARMUP; i++) await pod();
      await runtime.close(); // stop the warm-up pods' log copiers before their containers go
      await cleanAll();
      const out: number[] = [];
      for (let i = 0; i < PODS; i++) {
        check();
        out.push(await pod());
      }
      console.log(`  ${label}: ${PODS} pods done`);
      await runtime.close();
      await cleanAll();
      return out;
    };

    const nodelet = summarize(await sequential('nodelet', nodeletPod));
    const floor = summarize(await sequential('floor', floorPod));

    check();
    const cStart = performance.now();
    const settled = await Promise.allSettled(Array.from({ length: CONCURRENT }, () => nodeletPod()));
    const concurrentWallMs = performance.now() - cStart;
    const errors = settled.flatMap((s) => (s.status === 'rejected' ? [describeError(s.reason)] : []));
    const okTimes = settled.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
    const running = (await runtime.listContainers({ state: 'CONTAINER_RUNNING' })).length;
    await runtime.close();
    await cleanAll();

    const ratioP50 = nodelet.p50 / floor.p50;
    const ratioP99 = nodelet.p99 / floor.p99;
    const concurrent = {
      pods: CONCURRENT,
      ok: okTimes.length,
      errors: errors.length,
      runningAfter: running,
      errorMessages: [...new Set(errors)],
      wallMs: round(concurrentWallMs),
      perPod: summarize(okTimes),
    };

    const rows: string[][] = [
      ['', 'p50 ms', 'p99 ms', 'mean ms', 'min ms', 'max ms'],
      ['nodelet', ...[nodelet.p50, nodelet.p99, nodelet.mean, nodelet.min, nodelet.max].map(String)],
      ['floor', ...[floor.p50, floor.p99, floor.mean, floor.min, floor.max].map(String)],
      ['ratio', ratioP50.toFixed(2), ratioP99.toFixed(2), (nodelet.mean / floor.mean).toFixed(2), '', ''],
    ];
    const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
    console.log('');
    for (const r of rows) console.log(r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  '));
    const pass = ratioP50 <= TARGET_RATIO;
    console.log(`\nratio nodelet/floor (p50) ${ratioP50.toFixed(2)}, target <= ${TARGET_RATIO}: ${pass ? 'PASS' : 'FAIL'}`);
    console.log(
      `concurrent: ${concurrent.ok}/${CONCURRENT} ok, ${concurrent.errors} errors, ${running} running after, ` +
        `wall ${concurrent.wallMs} ms, per-pod p50 ${concurrent.perPod.p50} ms p99 ${concurrent.perPod.p99} ms`,
    );
    for (const m of concurrent.errorMessages) console.log(`  error: ${m}`);

    const timestamp = new Date().toISOString();
    const result = {
      benchmark: 'cri-pod-start',
      timestamp,
      profile: p.name,
      node: n.netns,
      host: { cpus: os.cpus().length, kernel: os.release(), node: process.version, docker: dockerVersion },
      pods: PODS,
      warmup: WARMUP,
      command: APP_CMD,
      percentiles: 'nearest-rank',
      nodelet,
      floor,
      ratio: { p50: Number(ratioP50.toFixed(3)), p99: Number(ratioP99.toFixed(3)), mean: Number((nodelet.mean / floor.mean).toFixed(3)) },
      target: { ratioP50: TARGET_RATIO, pass },
      concurrent,
      totalMs: 0,
    };
    result.totalMs = round(performance.now() - t0);
    const dir = path.join(path.dirname(new URL(import.meta.url).pathname), 'results');
    mkdirSync(dir, { recursive: true });
    const json = JSON.stringify(result, null, 2) + '\n';
    const file = path.join(dir, `cri-${timestamp.replace(/:/g, '-')}.json`);
    writeFileSync(file, json);
    writeFileSync(path.join(dir, 'cri-latest.json'), json);
    console.log(`wrote ${path.relative(process.cwd(), file)} and cri-latest.json`);
    return 0;
  } catch (err) {
    console.error(`cri bench failed: ${describeError(err)}`);
    return 1;
  } finally {
    await rt?.close().catch(() => undefined);
    await destroyNode(p, NODE).catch((err) => console.error(`destroyNode ${NODE}: ${describeError(err)}`));
    rmSync(logRoot, { recursive: true, force: true });
    console.log(`total ${((performance.now() - t0) / 1000).toFixed(1)} s (node ${NODE} destroyed)`);
  }
}

process.exitCode = await main();
