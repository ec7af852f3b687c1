// Issue 5: liveness, readiness and startup probes run by nodelet against real
// containers on the sandboxed node's dockerd, seen through the real API
// server: Ready and ContainersReady follow readiness (and the EndpointSlice
// controller's ready endpoints follow them), liveness failures restart
// containers with Unhealthy and Killing events, a startup probe protects a
// slow start, and a probe that hangs past timeoutSeconds fails. The gRPC
// health server runs inside the node's network namespace. Periods are 1 s so
// runs stay short. Nothing leaves the sandbox.
import { expect } from 'chai';
import { spawn, type ChildProcess } from 'node:child_process';
import { waitFor } from '../../cluster/daemon.ts';
import { BUSYBOX_IMAGE } from '../../cri/images/build.ts';
import { cluster, kubectlJson, kubectlRun } from './cluster.ts';

const NS = 'probes-it';

async function apply(obj: object): Promise<void> {
  await kubectlRun(['apply', '-f', '-'], { input: JSON.stringify(obj) });
}

async function getPod(name: string): Promise<any> {
  return kubectlJson(['-n', NS, 'get', 'pod', name]);
}

async function waitPod(name: string, what: string, ok: (p: any) => boolean, ms = 60_000): Promise<any> {
  let last: any;
  try {
    await waitFor(`pod ${name}: ${what}`, async () => {
      last = await getPod(name);
      return ok(last);
    }, ms, 250);
  } catch (err) {
    console.log(JSON.stringify(last?.status, null, 1));
    console.log((await events(name).catch(() => [])).join('\n'));
    throw err;
  }
  return last;
}

function pod(name: string, spec: object, labels: Record<string, string> = {}): object {
  return { apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: NS, labels }, spec: { terminationGracePeriodSeconds: 2, ...spec } };
}

const sh = (script: string, extra: object = {}) => ({ name: 'main', image: BUSYBOX_IMAGE, command: ['sh', '-c', script], ...extra });

async function events(name: string): Promise<string[]> {
  const list = await kubectlJson(['-n', NS, 'get', 'events', '--field-selector', `involvedObject.name=${name}`]);
  return list.items.map((e: any) => `${e.reason}: ${e.message}`);
}

const condition = (p: any, type: string) => p?.status?.conditions?.find((c: any) => c.type === type)?.status;
const main = (p: any) => p?.status?.containerStatuses?.find((c: any) => c.name === 'main');
const running = (p: any) => p?.status?.phase === 'Running' && !!main(p)?.state?.running;

/** Serves /www over HTTP on 8080 once `delay` seconds have passed. */
const httpAfter = (delay: number) => `mkdir -p /www && echo ok > /www/healthz && sleep ${delay} && exec httpd -f -p 8080 -h /www`;

describe('probes (real apiserver, real dockerd)', function () {
  this.timeout(180_000);

  before(async () => {
    await kubectlRun(['create', 'namespace', NS], { allowFail: true });
    await waitFor('the default service account', async () => (await kubectlRun(['-n', NS, 'get', 'sa', 'default'], { allowFail: true })).code === 0, 60_000, 500);
  });

  after(async () => {
    await kubectlRun(['delete', 'namespace', NS, '--wait=false'], { allowFail: true });
  });

  it('readiness: Running but not Ready until the app answers; only then its endpoint is ready', async () => {
    await kubectlRun(['-n', NS, 'create', 'service', 'clusterip', 'late', '--tcp=80:8080']);
    await apply(pod('late', {
      containers: [sh(httpAfter(10), {
        ports: [{ name: 'http', containerPort: 8080 }],
        readinessProbe: { httpGet: { path: '/healthz', port: 'http' }, periodSeconds: 1, failureThreshold: 1 },
      })],
    }, { app: 'late' }));
    const early = await waitPod('late', 'Running', running);
    expect(condition(early, 'Ready')).to.equal('False');
    expect(condition(early, 'ContainersReady')).to.equal('False');
    expect(main(early)).to.include({ ready: false, started: true });
    const ip = early.status.podIP as string;
    const endpoint = async () => {
      const slices = await kubectlJson(['-n', NS, 'get', 'endpointslices', '-l', 'kubernetes.io/service-name=late']);
      return slices.items.flatMap((s: any) => s.endpoints ?? []).find((e: any) => e.addresses?.includes(ip));
    };
    // The endpoint controller lists the pod, not ready, while the app is silent.
    let notReadySeen = false;
    await waitFor('a not-ready endpoint or a Ready pod', async () => {
      const e = await endpoint();
      if (e && e.conditions?.ready === false) notReadySeen = true;
      return notReadySeen || condition(await getPod('late'), 'Ready') === 'True';
    }, 30_000, 250);
    expect(notReadySeen, 'endpoint seen with ready=false before the app answered').to.equal(true);
    const ready = await waitPod('late', 'Ready', (p) => condition(p, 'Ready') === 'True', 60_000);
    expect(main(ready)).to.include({ ready: true, restartCount: 0 });
    expect(condition(ready, 'ContainersReady')).to.equal('True');
    await waitFor('a ready endpoint', async () => (await endpoint())?.conditions?.ready === true, 30_000, 250);
    const refused = `Unhealthy: Readiness probe failed: Get "http://${ip}:8080/healthz": dial tcp ${ip}:8080: connect: connection refused`;
    await waitFor('a readiness failure event', async () => (await events('late')).includes(refused), 30_000, 500);
  });

  it('liveness: an app that stops answering is killed and restarted, with Unhealthy and Killing events', async () => {
    // httpd backgrounds itself; after 4 s the health file goes away (404).
    await apply(pod('dying', {
      containers: [sh('mkdir -p /www && echo ok > /www/healthz && httpd -p 8080 -h /www && sleep 4 && rm /www/healthz && sleep 3600', {
        livenessProbe: { httpGet: { path: '/healthz', port: 8080 }, periodSeconds: 1, failureThreshold: 2 },
      })],
    }));
    const p = await waitPod('dying', 'restarted', (x) => (main(x)?.restartCount ?? 0) >= 1, 90_000);
    expect(main(p).lastState.terminated).to.be.an('object');
    await waitFor('Unhealthy and Killing events', async () => {
      const ev = await events('dying');
      return ev.includes('Unhealthy: Liveness probe failed: HTTP probe failed with statuscode: 404')
        && ev.includes('Killing: Container main failed liveness probe, will be restarted');
    }, 30_000, 500);
  });

  it('exec and tcpSocket probes: ready when the command succeeds, alive while the port is open; a closed port is never ready', async () => {
    await apply(pod('exectcp', {
      // busybox httpd is only the TCP listener here (nc serves one connection).
      containers: [sh('(sleep 8; touch /tmp/ready) & exec httpd -f -p 9000 -h /tmp', {
        readinessProbe: { exec: { command: ['cat', '/tmp/ready'] }, periodSeconds: 1, failureThreshold: 1 },
        livenessProbe: { tcpSocket: { port: 9000 }, periodSeconds: 1, failureThreshold: 3 },
      })],
    }));
    await apply(pod('tcpclosed', {
      containers: [sh('sleep 3600', { readinessProbe: { tcpSocket: { port: 9999 }, periodSeconds: 1, failureThreshold: 1 } })],
    }));
    await waitPod('exectcp', 'Running', running);
    const ready = await waitPod('exectcp', 'Ready', (x) => condition(x, 'Ready') === 'True', 60_000);
    expect(main(ready).restartCount).to.equal(0);
    // The command's output is the message (a busy dockerd may also time the exec out).
    const failed = /^Unhealthy: Readiness probe failed: (cat: can't open '\/tmp\/ready'|command timed out: "cat \/tmp\/ready")/;
    await waitFor('an exec readiness failure event', async () => (await events('exectcp')).some((e) => failed.test(e)), 30_000, 500);
    // Several liveness periods later it still runs the same container.
    await new Promise((r) => setTimeout(r, 5_000));
    const later = await getPod('exectcp');
    expect(main(later).restartCount).to.equal(0);
    expect(main(later).containerID).to.equal(main(ready).containerID);

    const closed = await waitPod('tcpclosed', 'Running', running);
    const ip = closed.status.podIP as string;
    await waitFor('a tcp readiness failure event', async () => (await events('tcpclosed')).some((e) => e === `Unhealthy: Readiness probe failed: dial tcp ${ip}:9999: connect: connection refused`), 30_000, 500);
    expect(condition(await getPod('tcpclosed'), 'Ready')).to.equal('False');
  });

  it('a startup probe protects a slow start from its liveness probe', async () => {
    await apply(pod('slowstart', {
      containers: [sh(httpAfter(8), {
        startupProbe: { httpGet: { path: '/healthz', port: 8080 }, periodSeconds: 1, failureThreshold: 30 },
        livenessProbe: { httpGet: { path: '/healthz', port: 8080 }, periodSeconds: 1, failureThreshold: 1 },
      })],
    }));
    const early = await waitPod('slowstart', 'Running', running);
    expect(main(early).started).to.equal(false);
    expect(condition(early, 'Ready')).to.equal('False');
    const p = await waitPod('slowstart', 'started and Ready', (x) => main(x)?.started === true && condition(x, 'Ready') === 'True', 60_000);
    expect(main(p).restartCount).to.equal(0);
    // Liveness now runs against the started app and keeps passing.
    await new Promise((r) => setTimeout(r, 3_000));
    expect(main(await getPod('slowstart')).restartCount).to.equal(0);
    await waitFor('a startup failure event', async () => (await events('slowstart')).some((e) => e.startsWith('Unhealthy: Startup probe failed: ')), 30_000, 500);
    const ev = await events('slowstart');
    expect(ev.some((e) => e.startsWith('Killing:')), ev.join('\n')).to.equal(false);
  });

  it('a probe endpoint that hangs longer than timeoutSeconds counts as a failure', async () => {
    // nc accepts and never answers (its stdin never ends).
    await apply(pod('hang', {
      containers: [sh('while true; do sleep 3600 | nc -l -p 8080; done', {
        readinessProbe: { httpGet: { path: '/', port: 8080 }, periodSeconds: 2, timeoutSeconds: 1, failureThreshold: 1 },
      })],
    }));
    const p = await waitPod('hang', 'Running', running);
    const ip = p.status.podIP as string;
    const want = `Unhealthy: Readiness probe failed: Get "http://${ip}:8080/": context deadline exceeded (Client.Timeout exceeded while awaiting headers)`;
    await waitFor('a timeout event', async () => (await events('hang')).includes(want), 30_000, 500);
    expect(condition(await getPod('hang'), 'Ready')).to.equal('False');
  });

  describe('grpc', () => {
    let server: ChildProcess | undefined;
    const port = 50_000 + Math.floor(Math.random() * 1000);

    before(async () => {
      // A grpc.health.v1 server in the node's network namespace: host-network pods' IP is the node's.
      const script = `
        const http2 = await import('node:http2');
        const s = http2.createServer();
        s.on('stream', (stream) => {
          const chunks = [];
          stream.on('data', (b) => chunks.push(b));
          stream.on('end', () => {
            const msg = Buffer.concat(chunks).subarray(5);
            const service = msg.length > 2 && msg[0] === 0x0a ? msg.subarray(2, 2 + msg[1]).toString() : '';
            stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
            stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
            stream.end(Buffer.from([0, 0, 0, 0, 2, 0x08, service === 'down' ? 2 : 1]));
          });
        });
        s.listen(Number(process.argv[1]), '0.0.0.0', () => console.log('listening'));
      `;
      const n = cluster().nodes[0]!.sandbox;
      const child = spawn('nsenter', [`--net=/run/netns/${n.netns}`, '--', process.execPath, '--input-type=module', '-e', script, String(port)], { stdio: ['ignore', 'pipe', 'inherit'] });
      server = child;
      await new Promise<void>((resolve, reject) => {
        child.stdout!.on('data', (b: Buffer) => {
          if (b.toString().includes('listening')) resolve();
        });
        child.once('exit', (code) => reject(new Error(`grpc health server exited with ${code}`)));
      });
    });

    after(() => {
      server?.kill();
    });

    it('a grpc probe asks grpc.health.v1.Health/Check (with the service name)', async () => {
      const grpcPod = (name: string, service?: string) => pod(name, {
        hostNetwork: true,
        containers: [sh('sleep 3600', { readinessProbe: { grpc: { port, ...(service ? { service } : {}) }, periodSeconds: 1, failureThreshold: 1 } })],
      });
      await apply(grpcPod('grpc-ok'));
      await apply(grpcPod('grpc-down', 'down'));
      const ok = await waitPod('grpc-ok', 'Ready', (x) => condition(x, 'Ready') === 'True', 60_000);
      expect(ok.status.podIP).to.equal(cluster().nodes[0]!.sandbox.nodeIP);
      await waitPod('grpc-down', 'Running', running);
      await waitFor('a NOT_SERVING event', async () => (await events('grpc-down')).includes('Unhealthy: Readiness probe failed: service unhealthy (responded with "NOT_SERVING")'), 30_000, 500);
      expect(condition(await getPod('grpc-down'), 'Ready')).to.equal('False');
    });
  });
});
