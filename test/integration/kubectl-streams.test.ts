// Issue 7: the kubelet HTTPS API through the real API server with real kubectl:
// logs (follow, previous, tail, since), exec (exit codes, stdin), port-forward,
// the API's own authentication (401) and authorization (403) when called
// directly at the node's address (a sandbox address), its serving certificate
// (issued through a kubelet-serving CSR) and /stats/summary.
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import http from 'node:http';
import https from 'node:https';
import tls from 'node:tls';
import path from 'node:path';
import { waitFor } from '../../cluster/daemon.ts';
import { BUSYBOX_IMAGE } from '../../cri/images/build.ts';
import { exec } from '../../lib/exec.ts';
import { cluster, kubectlJson, kubectlRun } from './cluster.ts';

const NS = 'streams-it';

function kubectlBin(): string {
  return path.join(cluster().paths.bin, 'kubectl');
}

/** kubectl with the admin kubeconfig; never throws on a non-zero exit. */
function kubectl(args: string[], input?: string, timeoutMs = 60_000) {
  return exec(kubectlBin(), ['--kubeconfig', cluster().paths.adminKubeconfig, '-n', NS, ...args], { allowFail: true, input, timeoutMs });
}

async function apply(obj: object): Promise<void> {
  await kubectlRun(['apply', '-f', '-'], { input: JSON.stringify(obj) });
}

function pod(name: string, containers: object[], extra: object = {}): object {
  return { apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: NS }, spec: { terminationGracePeriodSeconds: 1, containers, ...extra } };
}

const sh = (script: string, extra: object = {}) => ({ name: 'main', image: BUSYBOX_IMAGE, command: ['sh', '-c', script], ...extra });

async function waitPod(name: string, what: string, ok: (p: any) => boolean, ms = 90_000): Promise<any> {
  let last: any;
  await waitFor(`pod ${name}: ${what}`, async () => {
    last = await kubectlJson(['-n', NS, 'get', 'pod', name]);
    return ok(last);
  }, ms, 500);
  return last;
}

const running = (p: any) => p.status?.containerStatuses?.[0]?.state?.running !== undefined;

/** Runs kubectl in the background, collecting stdout, until `until` holds for it or the timeout. */
function kubectlUntil(args: string[], until: (out: string) => boolean, timeoutMs = 30_000): Promise<{ out: string; exited: boolean; code: number | null }> {
  return new Promise((resolve) => {
    const child = spawn(kubectlBin(), ['--kubeconfig', cluster().paths.adminKubeconfig, '-n', NS, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let done = false;
    const finish = (exited: boolean, code: number | null) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (!exited) child.kill('SIGTERM');
      resolve({ out, exited, code });
    };
    const timer = setTimeout(() => finish(false, null), timeoutMs);
    child.stdout.on('data', (b: Buffer) => {
      out += b.toString();
      if (until(out)) finish(false, null);
    });
    child.on('exit', (code) => finish(true, code));
  });
}

/** A request to the node's kubelet API directly (not through the API server). */
function kubeletGet(pathname: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  const node = cluster().nodes[0]!.sandbox;
  return new Promise((resolve, reject) => {
    const req = https.request({ host: node.nodeIP, port: 10250, path: pathname, method: 'GET', headers, rejectUnauthorized: false, timeout: 10_000 }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

function httpGet(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/', timeout: 10_000 }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve(body));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

describe('kubectl logs/exec/port-forward through the kubelet API (real apiserver)', function () {
  this.timeout(180_000);

  before(async () => {
    await kubectlRun(['create', 'namespace', NS], { allowFail: true });
    await waitFor('the default service account', async () => (await kubectlRun(['-n', NS, 'get', 'sa', 'default'], { allowFail: true })).code === 0, 60_000, 500);
    await apply(pod('logs', [sh('for i in 1 2 3 4 5; do echo line$i; done; sleep 1; echo to-stderr >&2; sleep 3; echo late; sleep 3600')]));
    await apply(pod('shell', [sh('mkdir -p /www && echo hello-through-port-forward > /www/index.html && exec httpd -f -p 8080 -h /www')]));
  });

  after(async () => {
    await kubectlRun(['delete', 'namespace', NS, '--wait=false'], { allowFail: true });
  });

  it('kubectl logs shows the container output, with --tail, --timestamps and --since-time', async () => {
    await waitPod('logs', 'running', running);
    let all = '';
    await waitFor('"late" in the logs', async () => {
      all = (await kubectl(['logs', 'logs'])).stdout;
      return all.includes('late');
    }, 30_000, 500);
    expect(all).to.equal('line1\nline2\nline3\nline4\nline5\nto-stderr\nlate\n');
    expect((await kubectl(['logs', 'logs', '--tail=2'])).stdout).to.equal('to-stderr\nlate\n');
    expect((await kubectl(['logs', 'logs', '--tail=0'])).stdout).to.equal('');
    expect((await kubectl(['logs', 'logs', '--limit-bytes=8'])).stdout).to.equal('line1\nli');
    const stamped = (await kubectl(['logs', 'logs', '--timestamps'])).stdout.trim().split('\n');
    expect(stamped).to.have.length(7);
    for (const l of stamped) expect(l).to.match(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z /);
    // --since-time: the "late" line was written about 3 s after the others.
    const lateTs = stamped[6]!.split(' ')[0]!;
    const sinceSecond = lateTs.replace(/\.\d+Z$/, 'Z'); // the API carries whole seconds
    const since = (await kubectl(['logs', 'logs', `--since-time=${sinceSecond}`])).stdout;
    expect(since).to.equal('late\n');
    expect((await kubectl(['logs', 'logs', '--since=1h'])).stdout).to.equal(all);
  });

  it('kubectl logs -f streams new lines and ends when the container exits', async () => {
    await apply(pod('follow', [sh('echo first; sleep 2; echo second; sleep 1; echo third')], { restartPolicy: 'Never' }));
    await waitPod('follow', 'started', (p) => p.status?.containerStatuses?.[0]?.state?.waiting === undefined && p.status?.containerStatuses?.[0] !== undefined);
    const r = await kubectlUntil(['logs', '-f', 'follow'], () => false, 60_000);
    expect(r.exited, 'kubectl logs -f returned by itself').to.equal(true);
    expect(r.code).to.equal(0);
    expect(r.out).to.equal('first\nsecond\nthird\n');
  });

  it('kubectl logs -f on a running container delivers lines as they are written', async () => {
    await apply(pod('ticker', [sh('i=0; while true; do i=$((i+1)); echo tick$i; sleep 0.3; done')]));
    await waitPod('ticker', 'running', running);
    const r = await kubectlUntil(['logs', '-f', '--tail=1', 'ticker'], (out) => out.split('\n').length > 4, 30_000);
    const lines = r.out.split('\n').filter((l) => l !== '');
    expect(lines.length).to.be.greaterThan(3);
    const nums = lines.map((l) => Number(l.replace('tick', '')));
    for (let i = 1; i < nums.length; i++) expect(nums[i]).to.equal(nums[i - 1]! + 1);
  });

  it('kubectl logs --previous shows the last terminated container', async () => {
    const script = 'n=$(cat /d/n 2>/dev/null || echo 0); n=$((n+1)); echo $n > /d/n; echo attempt-$n; sleep 1; exit 1';
    await apply(pod('crashy', [sh(script, { volumeMounts: [{ name: 'd', mountPath: '/d' }] })], { volumes: [{ name: 'd', emptyDir: {} }] }));
    await waitPod('crashy', 'restarted once', (p) => (p.status?.containerStatuses?.[0]?.restartCount ?? 0) >= 1, 120_000);
    const prev = await kubectl(['logs', 'crashy', '--previous']);
    expect(prev.code).to.equal(0);
    expect(prev.stdout).to.match(/^attempt-\d+\n$/);
    const p = await kubectlJson(['-n', NS, 'get', 'pod', 'crashy']);
    const rc = p.status.containerStatuses[0].restartCount as number;
    // The previous attempt is the one before the current; the current one says its own number.
    const cur = await kubectl(['logs', 'crashy']);
    if (cur.stdout !== '') expect(Number(cur.stdout.trim().replace('attempt-', ''))).to.be.greaterThan(Number(prev.stdout.trim().replace('attempt-', '')));
    expect(rc).to.be.greaterThan(0);
    const none = await kubectl(['logs', 'logs', '--previous']);
    expect(none.code).to.not.equal(0);
    expect(none.stderr).to.include('previous terminated container "main" in pod "logs" not found');
  });

  it('kubectl exec returns output and the exit code', async () => {
    await waitPod('shell', 'running', running);
    const ok = await kubectl(['exec', 'shell', '--', 'sh', '-c', 'echo out; echo err >&2']);
    expect(ok.code).to.equal(0);
    expect(ok.stdout).to.equal('out\n');
    expect(ok.stderr).to.include('err\n');
    const three = await kubectl(['exec', 'shell', '--', 'sh', '-c', 'exit 3']);
    expect(three.code).to.equal(3);
    const missing = await kubectl(['exec', 'shell', '--', 'no-such-command']);
    expect(missing.code).to.not.equal(0);
  });

  it('kubectl exec -i passes stdin and closes it at EOF', async () => {
    const r = await kubectl(['exec', '-i', 'shell', '--', 'sh', '-c', 'wc -l; cat /www/index.html'], 'a\nb\nc\n');
    expect(r.code).to.equal(0);
    expect(r.stdout.replace(/^\s+/, '')).to.equal('3\nhello-through-port-forward\n');
  });

  it('kubectl exec -it gets a terminal of the client\'s size', async function () {
    // kubectl wants a terminal on its stdin: script(1) gives it one. The size is
    // set right after the process starts (Docker exec takes no initial size here),
    // so the command waits for it.
    if ((await exec('sh', ['-c', 'command -v script'], { allowFail: true })).code !== 0) this.skip();
    const cmd = `stty cols 100 rows 30; ${kubectlBin()} --kubeconfig ${cluster().paths.adminKubeconfig} -n ${NS} exec -it shell -- sh -c 'tty; for i in $(seq 50); do s=$(stty size 2>/dev/null); [ -n "$s" ] && [ "$s" != "0 0" ] && break; sleep 0.1; done; echo $s; exit 4'`;
    const r = await exec('script', ['-qec', cmd, '/dev/null'], { allowFail: true, timeoutMs: 30_000 });
    expect(r.code).to.equal(4);
    // The client side sends one NUL byte on stdin when it starts (seen on the
    // SPDY stdin stream from the API server); the terminal echoes it as ^@.
    expect(r.stdout.replace(/\^@/g, '')).to.match(/\/dev\/pts\/\d+\r\n30 100\r\n/);
  });

  it('kubectl attach -i talks to the container\'s own stdin and stdout', async () => {
    await apply(pod('attach', [{ ...sh('echo ready; while read l; do echo got:$l; done; echo bye'), stdin: true, stdinOnce: true }], { restartPolicy: 'Never' }));
    await waitPod('attach', 'running', running);
    const r = await kubectl(['attach', '-i', 'attach'], 'one\ntwo\n');
    expect(r.code).to.equal(0);
    expect(r.stdout).to.equal('got:one\ngot:two\nbye\n');
  });

  it('kubectl cp copies files into and out of the container (tar over exec)', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'streams-cp-'));
    try {
      const content = Array.from({ length: 2000 }, (_, i) => `row ${i}`).join('\n') + '\n';
      writeFileSync(path.join(dir, 'in.txt'), content);
      const up = await kubectl(['cp', path.join(dir, 'in.txt'), 'shell:/tmp/in.txt']);
      expect(up.code, up.stderr).to.equal(0);
      expect((await kubectl(['exec', 'shell', '--', 'md5sum', '/tmp/in.txt'])).stdout.split(' ')[0]).to.equal(createHash('md5').update(content).digest('hex'));
      const down = await kubectl(['cp', 'shell:/tmp/in.txt', path.join(dir, 'out.txt')]);
      expect(down.code, down.stderr).to.equal(0);
      expect(readFileSync(path.join(dir, 'out.txt'), 'utf8')).to.equal(content);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('kubectl port-forward carries an HTTP request to the pod', async () => {
    const child = spawn(kubectlBin(), ['--kubeconfig', cluster().paths.adminKubeconfig, '-n', NS, 'port-forward', 'pod/shell', ':8080'], { stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      const port = await new Promise<number>((resolve, reject) => {
        let out = '';
        const t = setTimeout(() => reject(new Error(`no forwarding line: ${out}`)), 30_000);
        child.stdout.on('data', (b: Buffer) => {
          out += b.toString();
          const m = /Forwarding from 127\.0\.0\.1:(\d+)/.exec(out);
          if (m) {
            clearTimeout(t);
            resolve(Number(m[1]));
          }
        });
        child.on('exit', () => reject(new Error(`kubectl port-forward exited: ${out}`)));
      });
      expect(await httpGet(port)).to.equal('hello-through-port-forward\n');
      // A second connection over the same forward.
      expect(await httpGet(port)).to.equal('hello-through-port-forward\n');
    } finally {
      child.kill('SIGTERM');
    }
  });

  it('the kubelet API answers 401 without credentials and 403 for a user without rights', async () => {
    expect((await kubeletGet('/healthz')).status).to.equal(401);
    expect((await kubeletGet('/pods', { authorization: 'Bearer not-a-token' })).status).to.equal(401);
    await kubectlRun(['-n', NS, 'create', 'serviceaccount', 'nobody'], { allowFail: true });
    const token = (await kubectlRun(['-n', NS, 'create', 'token', 'nobody'])).stdout.trim();
    const denied = await kubeletGet('/pods', { authorization: `Bearer ${token}` });
    expect(denied.status).to.equal(403);
    expect(denied.body).to.include(`user=system:serviceaccount:${NS}:nobody`);
    expect(denied.body).to.include('subresource(s)=[pods proxy]');
    // Another account, granted nodes/proxy, passes (TokenReview, then SubjectAccessReview allows).
    await kubectlRun(['-n', NS, 'create', 'serviceaccount', 'reader'], { allowFail: true });
    await kubectlRun(['create', 'clusterrole', 'streams-it-node-proxy', '--verb=get', '--resource=nodes/proxy'], { allowFail: true });
    await kubectlRun(['create', 'clusterrolebinding', 'streams-it-node-proxy', '--clusterrole=streams-it-node-proxy', `--serviceaccount=${NS}:reader`], { allowFail: true });
    const readerToken = (await kubectlRun(['-n', NS, 'create', 'token', 'reader'])).stdout.trim();
    // The RBAC authorizer sees the binding a moment later; a denial would be cached for 30 s.
    await waitFor('the binding to take effect', async () => (await kubectlRun(['auth', 'can-i', 'get', 'nodes', '--subresource=proxy', `--as=system:serviceaccount:${NS}:reader`], { allowFail: true })).stdout.trim() === 'yes', 30_000, 500);
    const allowed = await kubeletGet('/pods', { authorization: `Bearer ${readerToken}` });
    expect(allowed.status).to.equal(200);
    const list = JSON.parse(allowed.body);
    expect(list.kind).to.equal('PodList');
    expect(list.items.map((p: any) => p.metadata.name)).to.include('shell');
    await kubectlRun(['delete', 'clusterrolebinding', 'streams-it-node-proxy'], { allowFail: true });
    await kubectlRun(['delete', 'clusterrole', 'streams-it-node-proxy'], { allowFail: true });
  });

  it('/healthz, /pods, /metrics and /metrics/resource through the API server node proxy', async () => {
    const node = cluster().nodes[0]!.name;
    expect((await kubectlRun(['get', '--raw', `/api/v1/nodes/${node}/proxy/healthz`])).stdout).to.equal('ok');
    const pods = JSON.parse((await kubectlRun(['get', '--raw', `/api/v1/nodes/${node}/proxy/pods`])).stdout);
    expect(pods.items.some((p: any) => p.metadata.name === 'logs')).to.equal(true);
    const metrics = (await kubectlRun(['get', '--raw', `/api/v1/nodes/${node}/proxy/metrics`])).stdout;
    expect(metrics).to.include('kubelet_http_requests_total');
    const resource = (await kubectlRun(['get', '--raw', `/api/v1/nodes/${node}/proxy/metrics/resource`])).stdout;
    expect(resource).to.match(new RegExp(`^container_cpu_usage_seconds_total\\{container="main",namespace="${NS}",pod="logs"\\} [0-9.e-]+ \\d+$`, 'm'));
    expect(resource).to.match(new RegExp(`^pod_memory_working_set_bytes\\{namespace="${NS}",pod="logs"\\} \\d+ \\d+$`, 'm'));
    expect(resource).to.match(/^node_cpu_usage_seconds_total [0-9.e+]+ \d+$/m);
    expect(resource).to.include('scrape_error 0\n');
  });

  it('serves the certificate issued through a kubelet-serving CSR (approved by the cluster tooling)', async () => {
    const c = cluster();
    const node = c.nodes[0]!;
    const ca = new X509Certificate(readFileSync(c.paths.ca.certPath));
    const csrs = JSON.parse((await kubectlRun(['get', 'csr', '-o', 'json'])).stdout).items as any[];
    const mine = csrs.filter((x) => x.spec.signerName === 'kubernetes.io/kubelet-serving' && x.spec.username === `system:node:${node.name}`);
    expect(mine.some((x) => (x.status?.conditions ?? []).some((k: any) => k.type === 'Approved')), 'an approved serving CSR').to.equal(true);
    expect(mine[0].spec.usages).to.have.members(['digital signature', 'key encipherment', 'server auth']);
    let peer: X509Certificate | undefined;
    // The node swaps the issued certificate in when it arrives (it may start with the self-signed one).
    await waitFor('the issued serving certificate', async () => {
      peer = await new Promise<X509Certificate>((resolve, reject) => {
        const s = tls.connect({ host: node.sandbox.nodeIP, port: 10250, rejectUnauthorized: false, servername: node.name }, () => {
          resolve(new X509Certificate(s.getPeerX509Certificate()!.raw));
          s.end();
        });
        s.on('error', reject);
      });
      return peer.verify(ca.publicKey);
    }, 30_000, 1000);
    expect(peer!.subject.split('\n')).to.include.members(['O=system:nodes', `CN=system:node:${node.name}`]);
    expect(peer!.subjectAltName).to.include(`DNS:${node.name}`).and.include(`IP Address:${node.sandbox.nodeIP}`);
    expect(peer!.checkHost(node.name)).to.equal(node.name);
  });

  it('kubectl get --raw .../proxy/stats/summary gives node, pod and container usage', async () => {
    const node = cluster().nodes[0]!.name;
    const get = async () => JSON.parse((await kubectlRun(['get', '--raw', `/api/v1/nodes/${node}/proxy/stats/summary`])).stdout);
    await get(); // the first scrape only seeds the CPU rates
    let s: any;
    await waitFor('a CPU rate for the node', async () => {
      s = await get();
      return s.node.cpu?.usageNanoCores !== undefined;
    }, 30_000, 1000);
    expect(s.node.nodeName).to.equal(node);
    expect(s.node.memory.workingSetBytes).to.be.greaterThan(0);
    expect(s.node.fs.capacityBytes).to.be.greaterThan(0);
    expect(s.node.runtime.imageFs.usedBytes).to.be.greaterThan(0);
    expect(s.node.network.interfaces.length).to.be.greaterThan(0);
    const pod = s.pods.find((p: any) => p.podRef.name === 'shell' && p.podRef.namespace === NS);
    expect(pod, 'the shell pod').to.not.equal(undefined);
    expect(pod.containers.map((c: any) => c.name)).to.deep.equal(['main']);
    expect(pod.containers[0].memory.workingSetBytes).to.be.greaterThan(0);
    expect(pod.containers[0].cpu.usageCoreNanoSeconds).to.be.greaterThan(0);
    expect(pod.containers[0].logs.usedBytes).to.be.a('number');
    // The pod network is its own namespace's eth0 (port-forward traffic went through lo, so only check it is there).
    expect(pod.network.name).to.equal('eth0');
    expect(pod.network.rxBytes).to.be.a('number');
  });
});
