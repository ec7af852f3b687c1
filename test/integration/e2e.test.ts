// Issue 8: the Kubernetes tutorials' flows with plain kubectl against the
// suite's cluster (as `make up` makes it: nodelet agent plus its service proxy
// on the node), with locally built web app images (cri/images/webapp.ts).
// The flows build on each other in order (one deployment, test1, through all
// of them), as a user would type them. Each flow logs its duration; a failed
// wait prints `kubectl describe` and the events. Traffic goes only to sandbox
// addresses: the node IP, pod IPs and cluster IPs inside the node, loopback.
import { expect } from 'chai';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Dockerode from 'dockerode';
import { waitFor } from '../../cluster/daemon.ts';
import type { NodeSandbox } from '../../cluster/sandbox.ts';
import { inNode } from '../../cluster/sandbox.ts';
import type { Cluster } from '../../cluster/up.ts';
import { BUSYBOX_IMAGE, ensureBusyboxImage } from '../../cri/images/build.ts';
import { ensureWebappImages, WEBAPP_PORT, webappImage } from '../../cri/images/webapp.ts';
import { exec } from '../../lib/exec.ts';
import { answerPod, answerVersion, curlInNode, httpGet, kube, type Kube, requestLoop, waitOrDescribe } from '../e2e/kube.ts';
import { startProxy, stopProxy } from '../e2e/proxy.ts';
import { cluster } from './cluster.ts';

const NS = 'e2e';
/** A server inside the sandbox but outside the cluster (flow 8), on the node's address. */
const OUTSIDE_PORT = 18080;
const durations: Array<[string, number]> = [];

describe('e2e: the tutorials\' flows with plain kubectl (nodelet agent + proxy)', function () {
  this.timeout(240_000);
  let c: Cluster;
  let n: NodeSandbox;
  let nodeName: string;
  let k: Kube;
  let docker: (args: string[]) => ReturnType<typeof exec>;
  let outside: ChildProcess | undefined;
  let outsideDir: string | undefined;
  let proxyStarted = false;

  /** An `it` that logs its duration and, on failure, the describe of `targets` and the events. */
  function flow(title: string, targets: string[], fn: () => Promise<void>) {
    it(title, async () => {
      const started = Date.now();
      try {
        await fn();
      } catch (err) {
        console.log(await k.diagnose(targets));
        throw err;
      } finally {
        const s = (Date.now() - started) / 1000;
        durations.push([title, s]);
        console.log(`      [e2e] ${title.split(':')[0]}: ${s.toFixed(1)} s`);
      }
    });
  }

  /** A pod of one webapp container (`version`: its image tag), as the flows apply it. */
  const webappPod = (name: string, version: string, grace: number, container: Record<string, unknown>, labels?: Record<string, string>) => ({
    apiVersion: 'v1', kind: 'Pod',
    metadata: { name, namespace: NS, ...(labels ? { labels } : {}) },
    spec: { terminationGracePeriodSeconds: grace, containers: [{ name: 'webapp', image: webappImage(version), ...container }] },
  });

  const nodePortOf = async (svc: string): Promise<number> => (await k.json(['get', 'service', svc])).spec.ports[0].nodePort as number;
  const clusterIPOf = async (svc: string): Promise<string> => (await k.json(['get', 'service', svc])).spec.clusterIP as string;

  /** The deployment's pods that are not being deleted. */
  async function livePods(app: string): Promise<any[]> {
    const list = await k.json(['get', 'pods', '-l', `app=${app}`]);
    return (list.items as any[]).filter((p) => !p.metadata.deletionTimestamp);
  }
  const isReady = (p: any) => p.status?.conditions?.some((x: any) => x.type === 'Ready' && x.status === 'True') === true;

  /** Waits until the deployment has exactly `count` live pods, all Ready, and as many ready endpoints. */
  async function waitReplicas(app: string, count: number, ms = 120_000): Promise<any[]> {
    return waitOrDescribe(k, `deployment ${app}: ${count} ready pods and endpoints`, async () => {
      const pods = await livePods(app);
      const all = (await k.run(['get', 'pods', '-l', `app=${app}`, '-o', 'name'])).stdout.trim().split('\n').filter(Boolean);
      const ready = await readyEndpoints(app).catch(() => [] as string[]);
      return { pods, all: all.length, ready };
    }, (v) => v.pods.length === count && v.all === count && v.pods.every(isReady) && v.ready.length === count, ms, [`deployment ${app}`, `pods -l app=${app}`]).then((v) => v.pods);
  }

  /** Ready endpoint addresses of a Service, from its EndpointSlices (what the proxy reads). */
  async function readyEndpoints(svc: string): Promise<string[]> {
    const list = await k.json(['get', 'endpointslices', '-l', `kubernetes.io/service-name=${svc}`]);
    return (list.items as any[]).flatMap((s) => (s.endpoints ?? []) as any[]).filter((e) => e.conditions?.ready !== false).flatMap((e) => e.addresses as string[]);
  }

  async function nodeRules(): Promise<string> {
    return (await inNode(n, 'iptables-save', [])).stdout;
  }

  async function rollout(what: string): Promise<void> {
    const r = await k.run(['rollout', 'status', what, '--timeout=150s'], { allowFail: true, timeoutMs: 160_000 });
    if (r.code !== 0) {
      console.log(await k.diagnose([what, 'pods']));
      throw new Error(`rollout status ${what}: ${r.stderr.trim() || r.stdout.trim()}`);
    }
    expect(r.stdout).to.include('successfully rolled out');
  }

  before(async function () {
    this.timeout(300_000);
    c = cluster();
    n = c.nodes[0]!.sandbox;
    nodeName = c.nodes[0]!.name;
    k = kube(c, NS);
    docker = (args) => exec('docker', ['-H', `unix://${n.dockerSocket}`, ...args], { timeoutMs: 60_000 });
    const started = Date.now();
    const dockerode = new Dockerode({ socketPath: n.dockerSocket, timeout: 120_000 });
    await ensureBusyboxImage(dockerode);
    await ensureWebappImages(dockerode);
    // Whatever an earlier killed run left.
    await k.run(['delete', 'namespace', NS, '--ignore-not-found', '--wait=false'], { allowFail: true });
    await waitFor(`namespace ${NS} of an earlier run to go`, async () => (await k.run(['get', 'namespace', NS], { allowFail: true })).code !== 0, 120_000, 1000);
    await startProxy(c.profile, nodeName, n);
    proxyStarted = true;
    await k.run(['create', 'namespace', NS]);
    await waitFor('the default service account', async () => (await k.run(['get', 'sa', 'default'], { allowFail: true })).code === 0, 60_000, 500);
    console.log(`      [e2e] setup (images, proxy, namespace): ${((Date.now() - started) / 1000).toFixed(1)} s`);
  });

  after(async function () {
    this.timeout(180_000);
    outside?.kill('SIGTERM');
    if (outsideDir) rmSync(outsideDir, { recursive: true, force: true });
    if (k) {
      await k.run(['delete', 'namespace', NS, '--wait=false'], { allowFail: true });
      // The proxy must see its Services go before it stops, or their rules stay behind (cleaned below anyway).
      await waitFor(`namespace ${NS} to go`, async () => (await k.run(['get', 'namespace', NS], { allowFail: true })).code !== 0, 120_000, 1000).catch((e: Error) => console.log(`      [e2e] ${e.message}`));
    }
    if (proxyStarted) await stopProxy(c.profile, n);
    const total = durations.reduce((s, [, d]) => s + d, 0);
    console.log(`      [e2e] flow durations: ${durations.map(([t, d]) => `${t.split(':')[0]} ${d.toFixed(1)} s`).join(', ')}; total ${total.toFixed(1)} s`);
  });

  flow('1: create deployment: get deployments shows 1/1 READY, get pods -o wide the pod IP and the node', ['deployment test1', 'pods'], async () => {
    await k.run(['create', 'deployment', 'test1', `--image=${webappImage('1.0')}`, `--port=${WEBAPP_PORT}`]);
    await rollout('deployment/test1');
    const row = (await k.run(['get', 'deployments', 'test1', '--no-headers'])).stdout.trim().split(/\s+/);
    expect(row[0]).to.equal('test1');
    expect(row[1], 'READY').to.equal('1/1');
    const pods = (await k.run(['get', 'pods', '-l', 'app=test1', '-o', 'wide', '--no-headers'])).stdout.trim().split('\n');
    expect(pods).to.have.length(1);
    // NAME READY STATUS RESTARTS AGE IP NODE ...
    const cols = pods[0]!.split(/\s+/);
    expect(cols[1]).to.equal('1/1');
    expect(cols[2]).to.equal('Running');
    expect(cols[5], 'pod IP').to.match(new RegExp(`^${n.podCIDR.replace(/\.0\/24$/, '').replace(/\./g, '\\.')}\\.\\d+$`));
    expect(cols[6], 'node').to.equal(nodeName);
  });

  flow('2: expose NodePort: the app answers at NODE:NODEPORT from the host, at CLUSTER-IP:80 from the node, and by the service env vars from a later pod', ['service test1', 'pod envcheck'], async () => {
    await k.run(['expose', 'deployment', 'test1', '--type=NodePort', '--port=80', `--target-port=${WEBAPP_PORT}`]);
    const nodePort = await nodePortOf('test1');
    const ip = await clusterIPOf('test1');
    const fromHost = await waitOrDescribe(k, `the app at ${n.nodeIP}:${nodePort} from the host`, () => httpGet(n.nodeIP, nodePort), (b) => answerVersion(b) === '1.0', 30_000, ['service test1']);
    expect(fromHost).to.match(/^webapp 1\.0 on test1-/);
    const fromNode = await curlInNode(n, `http://${ip}:80/`);
    expect(fromNode).to.have.length(1);
    expect(answerVersion(fromNode[0]!)).to.equal('1.0');
    // A pod created after the service gets TEST1_SERVICE_HOST/PORT.
    await k.run(['run', 'envcheck', `--image=${BUSYBOX_IMAGE}`, '--restart=Never', '--overrides={"spec":{"terminationGracePeriodSeconds":1}}', '--command', '--', 'sleep', '3600']);
    await waitOrDescribe(k, 'pod envcheck Ready', () => k.json(['get', 'pod', 'envcheck']), isReady, 60_000, ['pod envcheck']);
    // The marker tells a lost exec output ('') from missing variables ('env:').
    const printEnv = ['exec', 'envcheck', '--', 'sh', '-c', 'echo env: $TEST1_SERVICE_HOST $TEST1_SERVICE_PORT'];
    const env = (await k.run(printEnv)).stdout.trim();
    if (env !== `env: ${ip} 80`) {
      // Once in CI this came back empty; say what the container really has.
      const ps = await docker(['ps', '-q', '--filter', 'label=io.kubernetes.pod.name=envcheck', '--filter', 'label=io.kubernetes.container.name=envcheck']);
      const id = ps.stdout.trim().split('\n')[0] ?? '';
      const containerEnv = id ? (await docker(['inspect', '-f', '{{.Created}} {{json .Config.Env}}', id])).stdout.trim() : '(no container)';
      const again = (await k.run(printEnv, { allowFail: true })).stdout.trim();
      // When each was made (API server clock vs the container's), to tell a stale Service list apart.
      const created = async (what: string) => (await k.json(['get', what])).metadata.creationTimestamp as string;
      expect.fail(`exec printed ${JSON.stringify(env)}; a second exec printed ${JSON.stringify(again)}; service created ${await created('service/test1')}, pod ${await created('pod/envcheck')}; the container (created, env): ${containerEnv}`);
    }
    const viaEnv = (await k.run(['exec', 'envcheck', '--', 'sh', '-c', 'timeout 5 wget -qO- http://$TEST1_SERVICE_HOST:$TEST1_SERVICE_PORT/'], { allowFail: true })).stdout.trim();
    expect(answerVersion(viaEnv), `answer through the env vars: ${viaEnv}`).to.equal('1.0');
    // The only replica reaches itself through its own Service (hairpin: its bridge port has hairpin mode on).
    const [only] = await livePods('test1');
    const self = (await k.run(['exec', only.metadata.name, '--', 'sh', '-c', `timeout 5 wget -qO- http://${ip}/`], { allowFail: true })).stdout.trim();
    expect(self, 'a pod reaching itself through its Service').to.equal(`webapp 1.0 on ${only.metadata.name}`);
  });

  flow('3: scale to 3: 3/3 READY and 60 requests over the NodePort reach all three pods; then 1, 0 and back to 2', ['deployment test1', 'pods -l app=test1'], async () => {
    const nodePort = await nodePortOf('test1');
    await k.run(['scale', 'deployment', 'test1', '--replicas=3']);
    const pods = await waitReplicas('test1', 3);
    expect((await k.run(['get', 'deployments', 'test1', '--no-headers'])).stdout.trim().split(/\s+/)[1]).to.equal('3/3');
    const names = pods.map((p) => p.metadata.name as string).sort();
    // The proxy syncs after the endpoints change; within a few seconds all three are in its rules.
    const seen = await waitOrDescribe(k, '60 requests over the NodePort to reach all three pods', async () => {
      const bodies = await Promise.all(Array.from({ length: 60 }, () => httpGet(n.nodeIP, nodePort)));
      return { failed: bodies.filter((b) => !answerPod(b)).length, pods: [...new Set(bodies.map(answerPod).filter(Boolean))].sort() };
    }, (v) => v.failed === 0 && v.pods.length === 3, 30_000, ['service test1']);
    expect(seen.pods).to.deep.equal(names);
    // The EndpointSlice controller stamps each change; the proxy reports how long programming it took.
    const metrics = (await inNode(n, 'curl', ['-s', '--max-time', '3', 'http://127.0.0.1:10249/metrics'])).stdout;
    const programmed = Number(/^kubeproxy_network_programming_duration_seconds_count\{ip_family="IPv4"\} (\d+)/m.exec(metrics)?.[1] ?? 0);
    expect(programmed, 'network programming latencies observed').to.be.greaterThan(0);
    expect(Number(/^kubeproxy_sync_proxy_rules_endpoint_changes_total (\d+)/m.exec(metrics)?.[1] ?? 0)).to.be.greaterThan(0);
    for (const count of [1, 0, 2]) {
      await k.run(['scale', 'deployment', 'test1', `--replicas=${count}`]);
      await waitReplicas('test1', count);
      expect((await k.run(['get', 'deployments', 'test1', '--no-headers'])).stdout.trim().split(/\s+/)[1]).to.equal(`${count}/${count}`);
    }
  });

  flow('4: set image 2.0 with a readiness probe while a client loops through the NodePort; rollout history; rollout undo to 1.0', ['deployment test1', 'pods -l app=test1'], async () => {
    const nodePort = await nodePortOf('test1');
    const probe = { httpGet: { path: '/health', port: WEBAPP_PORT }, periodSeconds: 1, failureThreshold: 1 };
    await k.run(['patch', 'deployment', 'test1', '--type=strategic', '-p', JSON.stringify({ spec: { template: { spec: { containers: [{ name: 'webapp', readinessProbe: probe }] } } } })]);
    await rollout('deployment/test1');
    await waitReplicas('test1', 2);

    // Zero failed requests, with a readiness probe and no preStop sleep: the agent
    // holds a deleted pod's SIGTERM until this node's proxy sends it no new
    // connections (agent/pod/trafficgate.ts, /nodelet/routed on the proxy).
    const update = async (what: string, change: string[], version: string): Promise<void> => {
      const loop = requestLoop(n.nodeIP, nodePort);
      const started = Date.now();
      await k.run(change);
      await rollout('deployment/test1');
      const pods = await waitReplicas('test1', 2);
      const res = await loop.stop();
      console.log(`      [e2e] ${what}: rollout in ${((Date.now() - started) / 1000).toFixed(1)} s; ${res.total} requests, ${res.failed} failed; answers by version ${JSON.stringify(res.versions)}`
        + (res.failures.length ? `; first failures:\n        ${res.failures.join('\n        ')}` : ''));
      expect(res.total, 'requests sent during the rollout').to.be.greaterThan(0);
      expect(res.failed, `failed requests during ${what}: ${res.failures.join('; ')}`).to.equal(0);
      for (const p of pods) expect(p.spec.containers[0].image).to.equal(webappImage(version));
      const after = await waitOrDescribe(k, `every answer to be ${version}`, () => Promise.all(Array.from({ length: 20 }, () => httpGet(n.nodeIP, nodePort))),
        (bodies) => bodies.every((b) => answerVersion(b) === version), 30_000, ['service test1']);
      expect(after).to.have.length(20);
    };
    await update('set image 2.0', ['set', 'image', 'deployment/test1', `webapp=${webappImage('2.0')}`], '2.0');
    const history = (await k.run(['rollout', 'history', 'deployment/test1'])).stdout;
    // Revisions: 1.0, 1.0 + probe, 2.0.
    expect(history.trim().split('\n').filter((l) => /^\d+\s/.test(l)).map((l) => l.split(/\s+/)[0])).to.deep.equal(['1', '2', '3']);
    const rev3 = (await k.run(['rollout', 'history', 'deployment/test1', '--revision=3'])).stdout;
    expect(rev3).to.include(webappImage('2.0'));
    await update('rollout undo', ['rollout', 'undo', 'deployment/test1'], '1.0');
  });

  flow('5: self-healing: a deleted pod is replaced; a killed container restarts and RESTARTS increments', ['deployment test1', 'pods -l app=test1'], async () => {
    const before = await livePods('test1');
    const victim = before[0]!.metadata.name as string;
    await k.run(['delete', 'pod', victim, '--wait=false']);
    const after = await waitReplicas('test1', 2);
    expect(after.map((p) => p.metadata.name)).to.not.include(victim);

    const target = after[0]!.metadata.name as string;
    const restartsBefore = after[0]!.status.containerStatuses[0].restartCount as number;
    const ids = (await docker(['ps', '-q', '--filter', `label=io.kubernetes.pod.name=${target}`, '--filter', 'label=io.kubernetes.container.name=webapp'])).stdout.trim().split('\n').filter(Boolean);
    expect(ids, `running webapp container of ${target}`).to.have.length(1);
    await docker(['kill', ids[0]!]);
    const healed = await waitOrDescribe(k, `pod ${target} to restart its container and be Ready`, () => k.json(['get', 'pod', target]),
      (p) => p.status.containerStatuses[0].restartCount > restartsBefore && isReady(p), 90_000, [`pod ${target}`]);
    expect(healed.status.containerStatuses[0].restartCount).to.equal(restartsBefore + 1);
    const row = (await k.run(['get', 'pod', target, '--no-headers'])).stdout.trim().split(/\s+/);
    expect(Number(row[3]), 'RESTARTS').to.equal(restartsBefore + 1);
  });

  flow('6: readiness with initialDelaySeconds on the slow starter: Running but not Ready and not an endpoint until the probe passes', ['pod slow', 'service slow'], async () => {
    await k.run(['create', 'service', 'clusterip', 'slow', `--tcp=80:${WEBAPP_PORT}`]);
    await k.run(['apply', '-f', '-'], { input: JSON.stringify(webappPod('slow', 'slow', 2, {
      ports: [{ containerPort: WEBAPP_PORT }],
      readinessProbe: { httpGet: { path: '/health', port: WEBAPP_PORT }, initialDelaySeconds: 5, periodSeconds: 1, failureThreshold: 1 },
    }, { app: 'slow' })) });
    const running = await waitOrDescribe(k, 'pod slow Running', () => k.json(['get', 'pod', 'slow']),
      (p) => p.status?.phase === 'Running' && !!p.status.containerStatuses?.[0]?.state?.running, 60_000, ['pod slow']);
    const podIP = running.status.podIP as string;
    // The app serves only after 15 s: however soon after Running we look, not Ready.
    expect(isReady(running), 'Ready while the app is still starting').to.equal(false);
    const slice = await waitOrDescribe(k, 'the slow pod in the EndpointSlice (not ready)', () => k.json(['get', 'endpointslices', '-l', 'kubernetes.io/service-name=slow']),
      (l) => (l.items as any[]).some((s) => (s.endpoints ?? []).some((e: any) => e.addresses.includes(podIP))), 30_000, ['service slow']);
    const ep = (slice.items as any[]).flatMap((s) => s.endpoints ?? []).find((e: any) => e.addresses.includes(podIP));
    const ip = await clusterIPOf('slow');
    const early = await curlInNode(n, `http://${ip}:80/`);
    // Only meaningful while the pod is still not Ready (the app waits 15 s; a very slow machine may get there first).
    if (!isReady(await k.json(['get', 'pod', 'slow']))) {
      expect(ep.conditions.ready, 'endpoint ready while the pod is not').to.equal(false);
      expect(early[0], 'an answer through the service before Ready').to.match(/^ERR /);
    } else console.log('      [e2e] 6: the pod became Ready before the endpoint checks ran; they were skipped');
    await waitOrDescribe(k, 'pod slow Ready', () => k.json(['get', 'pod', 'slow']), isReady, 60_000, ['pod slow']);
    await waitOrDescribe(k, 'the slow pod a ready endpoint', () => readyEndpoints('slow'), (a) => a.includes(podIP), 30_000, ['service slow']);
    const answer = await waitOrDescribe(k, 'the slow app to answer through its service', async () => (await curlInNode(n, `http://${ip}:80/`))[0] ?? '',
      (b) => answerVersion(b) === '1.0-slow', 30_000, ['service slow']);
    expect(answerPod(answer)).to.equal('slow');
  });

  flow('7: liveness on the app whose server exits: restarted, RESTARTS increments, describe shows Unhealthy', ['pod exiting'], async () => {
    await k.run(['apply', '-f', '-'], { input: JSON.stringify(webappPod('exiting', 'exiting', 2, {
      livenessProbe: { httpGet: { path: '/health', port: WEBAPP_PORT }, periodSeconds: 1, failureThreshold: 2 },
    })) });
    const p = await waitOrDescribe(k, 'pod exiting restarted by its liveness probe', () => k.json(['get', 'pod', 'exiting']),
      (x) => (x.status?.containerStatuses?.[0]?.restartCount ?? 0) >= 1, 90_000, ['pod exiting']);
    expect(p.status.containerStatuses[0].restartCount).to.be.at.least(1);
    const row = (await k.run(['get', 'pod', 'exiting', '--no-headers'])).stdout.trim().split(/\s+/);
    expect(Number(row[3]), 'RESTARTS').to.be.at.least(1);
    const described = (await k.run(['describe', 'pod', 'exiting'])).stdout;
    expect(described).to.match(/Unhealthy\s.*Liveness probe failed/);
    expect(described).to.match(/Killing\s.*failed liveness probe/);
  });

  flow('8: a Service without selector and a manual Endpoints object: pods reach a server outside the cluster through its ClusterIP', ['service outside', 'endpoints outside'], async () => {
    outsideDir = mkdtempSync(path.join(os.tmpdir(), 'nodelet-e2e-outside-'));
    writeFileSync(path.join(outsideDir, 'index.html'), 'outside the cluster\n');
    // busybox httpd in the node's netns, on the node address: inside the sandbox, not a pod.
    outside = spawn('nsenter', [`--net=/run/netns/${n.netns}`, '--', '/bin/busybox', 'httpd', '-f', '-p', `${n.nodeIP}:${OUTSIDE_PORT}`, '-h', outsideDir], { stdio: 'ignore' });
    await waitFor('the outside server', async () => (await httpGet(n.nodeIP, OUTSIDE_PORT)) === 'outside the cluster', 10_000, 200);
    await k.run(['apply', '-f', '-'], { input: [
      `apiVersion: v1\nkind: Service\nmetadata: {name: outside, namespace: ${NS}}\nspec:\n  ports: [{port: 80, targetPort: ${OUTSIDE_PORT}, protocol: TCP}]`,
      `apiVersion: v1\nkind: Endpoints\nmetadata: {name: outside, namespace: ${NS}}\nsubsets:\n- addresses: [{ip: ${n.nodeIP}}]\n  ports: [{port: ${OUTSIDE_PORT}, protocol: TCP}]`,
    ].join('\n---\n') });
    // The EndpointSlice mirroring controller copies the Endpoints into a slice the proxy reads.
    await waitOrDescribe(k, 'the mirrored EndpointSlice', () => readyEndpoints('outside'), (a) => a.includes(n.nodeIP), 30_000, ['service outside']);
    // envcheck predates this service (no OUTSIDE_* variables): it goes by the ClusterIP.
    const ip = await clusterIPOf('outside');
    const answer = await waitOrDescribe(k, `pod envcheck to reach the outside server through ${ip}:80`, async () =>
      (await k.run(['exec', 'envcheck', '--', 'sh', '-c', `timeout 5 wget -qO- http://${ip}:80/`], { allowFail: true })).stdout.trim(),
      (b) => b === 'outside the cluster', 30_000, ['service outside']);
    expect(answer).to.equal('outside the cluster');
  });

  flow('9: sessionAffinity ClientIP: one client keeps reaching the same pod', ['service test1'], async () => {
    const nodePort = await nodePortOf('test1');
    const ip = await clusterIPOf('test1');
    const pods = (await livePods('test1')).map((p) => p.metadata.name as string);
    expect(pods).to.have.length(2);
    // Without affinity the two pods both answer (the precondition that makes the check below mean something).
    await waitOrDescribe(k, 'both pods to answer without affinity', async () => new Set((await curlInNode(n, `http://${ip}:80/`, 30)).map(answerPod)).size,
      (s) => s === 2, 30_000, ['service test1']);
    await k.run(['patch', 'service', 'test1', '-p', JSON.stringify({ spec: { sessionAffinity: 'ClientIP' } })]);
    const fromNode = await waitOrDescribe(k, '30 requests from the node to reach one pod', async () => (await curlInNode(n, `http://${ip}:80/`, 30)).map(answerPod),
      (a) => a.every((x) => x !== undefined) && new Set(a).size === 1, 30_000, ['service test1']);
    expect(pods).to.include(fromNode[0]);
    const fromHost = await Promise.all(Array.from({ length: 30 }, () => httpGet(n.nodeIP, nodePort)));
    expect(new Set(fromHost.map(answerPod)).size, `host answers ${JSON.stringify(fromHost.slice(0, 5))}`).to.equal(1);
    expect(pods).to.include(answerPod(fromHost[0]!));
  });

  flow('10: kubectl logs, exec and port-forward against a pod of the deployment', ['deployment test1'], async () => {
    const logs = (await k.run(['logs', 'deployment/test1'])).stdout;
    expect(logs).to.include('webapp 1.0: serving');
    const ex = await k.run(['exec', 'deployment/test1', '--', 'cat', '/www/health', '/www/index.html']);
    expect(ex.stdout).to.match(/^OK\nwebapp 1\.0 on test1-/);
    const code = await k.run(['exec', 'deployment/test1', '--', 'sh', '-c', 'exit 3'], { allowFail: true });
    expect(code.code).to.equal(3);
    const pf = k.background(['port-forward', 'deployment/test1', `:${WEBAPP_PORT}`], (o) => /Forwarding from 127\.0\.0\.1:\d+/.test(o), 30_000);
    try {
      const out = await pf.done;
      const port = Number(/Forwarding from 127\.0\.0\.1:(\d+)/.exec(out)?.[1]);
      expect(port, `port-forward output: ${out}`).to.be.greaterThan(0);
      expect(answerVersion(await httpGet('127.0.0.1', port, '/', 10_000))).to.equal('1.0');
      expect(await httpGet('127.0.0.1', port, '/health', 10_000)).to.equal('OK');
    } finally {
      pf.stop();
    }
  });

  flow('11: a two-container pod: the containers reach each other on localhost and share an emptyDir', ['pod pair'], async () => {
    const sh = (name: string, script: string) => ({ name, image: BUSYBOX_IMAGE, command: ['sh', '-c', script], volumeMounts: [{ name: 'shared', mountPath: '/shared' }] });
    await k.run(['apply', '-f', '-'], { input: JSON.stringify({
      apiVersion: 'v1', kind: 'Pod',
      metadata: { name: 'pair', namespace: NS },
      spec: {
        terminationGracePeriodSeconds: 1,
        volumes: [{ name: 'shared', emptyDir: {} }],
        containers: [
          sh('web', 'echo from-web > /shared/web.txt; exec httpd -f -p 8080 -h /shared'),
          sh('client', 'echo from-client > /shared/client.txt; exec sleep 3600'),
        ],
      },
    }) });
    await waitOrDescribe(k, 'pod pair Ready', () => k.json(['get', 'pod', 'pair']), isReady, 60_000, ['pod pair']);
    // The client's file, written into the emptyDir, served by the web container, fetched over localhost.
    const viaLocalhost = await k.run(['exec', 'pair', '-c', 'client', '--', 'sh', '-c', 'timeout 5 wget -qO- http://localhost:8080/client.txt']);
    expect(viaLocalhost.stdout.trim()).to.equal('from-client');
    expect((await k.run(['exec', 'pair', '-c', 'client', '--', 'cat', '/shared/web.txt'])).stdout.trim()).to.equal('from-web');
    expect((await k.run(['exec', 'pair', '-c', 'web', '--', 'cat', '/shared/client.txt'])).stdout.trim()).to.equal('from-client');
  });

  flow('12: dual-stack: a pod gets an IPv4 and an IPv6 address (status.podIPs, the downward API); a RequireDualStack Service reaches it on its IPv6 cluster IP', ['pod dual', 'service dual'], async () => {
    await k.run(['apply', '-f', '-'], { input: JSON.stringify({
      apiVersion: 'v1', kind: 'List',
      items: [
        webappPod('dual', '1.0', 1, {
          ports: [{ containerPort: WEBAPP_PORT }],
          env: [{ name: 'POD_IPS', valueFrom: { fieldRef: { fieldPath: 'status.podIPs' } } }],
        }, { app: 'dual' }),
        {
          apiVersion: 'v1', kind: 'Service',
          metadata: { name: 'dual', namespace: NS },
          spec: { selector: { app: 'dual' }, ipFamilyPolicy: 'RequireDualStack', ipFamilies: ['IPv4', 'IPv6'], ports: [{ port: 80, targetPort: WEBAPP_PORT }] },
        },
      ],
    }) });
    const pod = await waitOrDescribe(k, 'pod dual Ready', () => k.json(['get', 'pod', 'dual']), isReady, 60_000, ['pod dual']);
    const ips = (pod.status.podIPs as { ip: string }[]).map((p) => p.ip);
    const v6Prefix = n.podCIDRv6.replace(/::\/64$/, ':');
    expect(ips, 'status.podIPs: the node\'s primary family (IPv4) first').to.have.length(2);
    expect(ips[0]).to.equal(pod.status.podIP);
    expect(ips[0]!.startsWith(n.podCIDR.replace(/0\/24$/, '')), `${ips[0]} in ${n.podCIDR}`).to.equal(true);
    expect(ips[1]!.startsWith(v6Prefix), `${ips[1]} in ${n.podCIDRv6}`).to.equal(true);
    expect((await k.run(['exec', 'dual', '--', 'sh', '-c', 'echo "$POD_IPS"'])).stdout.trim()).to.equal(ips.join(','));
    // The EndpointSlice controller made the IPv6 slice from the pod's status; the IPv6 proxier programs it.
    const slices = await waitOrDescribe(k, 'an IPv6 EndpointSlice with the pod\'s IPv6 address', () => k.json(['get', 'endpointslices', '-l', 'kubernetes.io/service-name=dual']),
      (l: any) => (l.items as any[]).some((x) => x.addressType === 'IPv6' && (x.endpoints ?? []).some((e: any) => e.addresses.includes(ips[1]) && e.conditions?.ready)), 60_000, ['service dual']);
    expect((slices.items as any[]).map((x) => x.addressType).sort()).to.deep.equal(['IPv4', 'IPv6']);
    const svc = await k.json(['get', 'service', 'dual']);
    const ip6 = (svc.spec.clusterIPs as string[]).find((x) => x.includes(':'));
    expect(ip6, 'an IPv6 cluster IP').to.be.a('string');
    const answer = await waitOrDescribe(k, `the pod at [${ip6}]:80 from the node`, () => curlInNode(n, `-g 'http://[${ip6}]:80/'`), (a) => a.length === 1 && answerPod(a[0]!) === 'dual', 30_000, ['service dual']);
    expect(answerPod(answer[0]!)).to.equal('dual');
    expect((await inNode(n, 'ip6tables-save', ['-t', 'nat'])).stdout).to.include(`--to-destination [${ips[1]}]:${WEBAPP_PORT}`);
    await k.run(['delete', 'service,pod', 'dual', '--wait=false']);
  });

  flow('13: delete deployment: its containers and rules are gone from the node within the grace period', ['deployment test1', 'pods -l app=test1'], async () => {
    const pods = await livePods('test1');
    const names = pods.map((p) => p.metadata.name as string);
    const ips = pods.map((p) => p.status.podIP as string);
    const grace = (pods[0]!.spec.terminationGracePeriodSeconds as number | undefined) ?? 30;
    expect(names).to.have.length(2);
    const rulesBefore = await nodeRules();
    for (const ip of ips) expect(rulesBefore, `a DNAT rule to ${ip}`).to.include(`--to-destination ${ip}:${WEBAPP_PORT}`);
    const containersOf = async () => {
      const out = [];
      // -a: exited containers count too; the kubelet removes a deleted pod's containers.
      for (const name of names) out.push(...(await docker(['ps', '-aq', '--filter', `label=io.kubernetes.pod.name=${name}`])).stdout.trim().split('\n').filter(Boolean));
      return out;
    };
    expect((await containersOf()).length, 'containers before (app + sandbox per pod)').to.be.at.least(4);
    await k.run(['delete', 'deployment', 'test1']);
    // The grace period (plus a few seconds for the controllers and the proxy's next sync).
    await waitOrDescribe(k, 'no containers of test1 on the node', containersOf, (l) => l.length === 0, (grace + 10) * 1000, ['pods -l app=test1']);
    await waitOrDescribe(k, 'no rules to test1\'s pods on the node', nodeRules, (r) => ips.every((ip) => !r.includes(`${ip}:${WEBAPP_PORT}`)), (grace + 10) * 1000, ['service test1']);
    await waitOrDescribe(k, 'the pods gone from the API', () => k.run(['get', 'pods', '-l', 'app=test1', '-o', 'name']).then((r) => r.stdout.trim()), (s) => s === '', 30_000);
    // And the service's own rules once it goes too.
    await k.run(['delete', 'service', 'test1']);
    await waitOrDescribe(k, 'no rules for service e2e/test1', nodeRules, (r) => !r.includes(`${NS}/test1`), 30_000);
  });
});
