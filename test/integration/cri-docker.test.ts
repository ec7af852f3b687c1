// Issue 3: the CRI runtime against a real dockerd, in its own sandbox node (7)
// so it never touches the suite cluster's node. Addresses are the profile's own
// (node network and pod CIDR made by cluster/sandbox.ts); nothing leaves the machine.
import { expect } from 'chai';
import Dockerode from 'dockerode';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { destroyNode, ensureNode, inNode, type NodeSandbox, startDockerd } from '../../cluster/sandbox.ts';
import type { ClusterProfile } from '../../cluster/profile.ts';
import { DockerRuntime } from '../../cri/docker/runtime.ts';
import { BUSYBOX_IMAGE, ensureBusyboxImage, ensurePauseImage, PAUSE_IMAGE } from '../../cri/images/build.ts';
import { containerLogPath, joinRecords, parseLogLine, podLogDirectory } from '../../cri/logformat.ts';
import type { ContainerConfig, PodSandboxConfig, StreamSession } from '../../cri/runtime.ts';
import { errorCode } from '../../lib/errors.ts';
import { testProfile } from './cluster.ts';

const NODE = 7;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Everything a session prints and its exit code (both streams read at once). */
async function drain(s: StreamSession): Promise<{ out: string; err: string; code: number }> {
  const read = async (r: NodeJS.ReadableStream | undefined) => {
    let text = '';
    if (r) for await (const c of r) text += c.toString();
    return text;
  };
  const [out, err, code] = await Promise.all([read(s.stdout), read(s.stderr), s.exitCode]);
  return { out, err, code };
}

async function rejects(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error('expected a rejection');
}

describe('cri: DockerRuntime against a real dockerd', function () {
  this.timeout(120_000);
  let p: ClusterProfile;
  let n: NodeSandbox;
  let docker: Dockerode;
  let rt: DockerRuntime;
  let logRoot: string;
  let seq = 0;

  const sandboxConfig = (over: Partial<PodSandboxConfig> = {}): PodSandboxConfig => {
    const name = `pod${++seq}`;
    const uid = `uid-${seq}-${Date.now()}`;
    return {
      metadata: { name, namespace: 'default', uid, attempt: 0 },
      hostname: name,
      logDirectory: podLogDirectory(logRoot, 'default', name, uid),
      dnsConfig: { servers: ['10.96.0.10'], searches: ['default.svc.cluster.local', 'svc.cluster.local'], options: ['ndots:5'] },
      labels: { app: 'cri-test', 'io.kubernetes.pod.name': name },
      annotations: { 'test/note': 'hello' },
      ...over,
    };
  };
  const containerConfig = (name: string, command: string[], over: Partial<ContainerConfig> = {}): ContainerConfig => ({
    metadata: { name, attempt: 0 },
    image: { image: BUSYBOX_IMAGE },
    command,
    logPath: containerLogPath(name, 0),
    labels: { 'io.kubernetes.container.name': name },
    annotations: { 'io.kubernetes.container.hash': 'abc123', 'io.kubernetes.container.restartCount': '0' },
    ...over,
  });
  async function runPod(cmd: string[] = ['sleep', '1000'], over: Partial<ContainerConfig> = {}, sbOver: Partial<PodSandboxConfig> = {}) {
    const sb = sandboxConfig(sbOver);
    const sid = await rt.runPodSandbox(sb);
    const cfg = containerConfig('app', cmd, over);
    const cid = await rt.createContainer(sid, cfg, sb);
    await rt.startContainer(cid);
    return { sb, sid, cfg, cid };
  }
  async function waitExited(id: string, ms = 30_000) {
    const until = Date.now() + ms;
    for (;;) {
      const s = (await rt.containerStatus(id)).status;
      if (s.state === 'CONTAINER_EXITED') return s;
      if (Date.now() > until) throw new Error(`container ${id} still ${s.state}`);
      await sleep(200);
    }
  }

  before(async function () {
    this.timeout(240_000);
    p = testProfile();
    n = await ensureNode(p, NODE, [NODE]);
    await startDockerd(n);
    docker = new Dockerode({ socketPath: n.dockerSocket });
    await ensurePauseImage(docker);
    await ensureBusyboxImage(docker);
    logRoot = path.join(p.stateDir, 'cri-test-logs');
    rmSync(logRoot, { recursive: true, force: true });
    rt = new DockerRuntime(docker);
  });

  after(async function () {
    this.timeout(120_000);
    await rt?.close();
    if (p) await destroyNode(p, NODE);
    if (logRoot) rmSync(logRoot, { recursive: true, force: true });
  });

  it('reports version and a ready status', async () => {
    const v = await rt.version();
    expect(v).to.include({ version: '0.1.0', runtimeName: 'docker', runtimeApiVersion: 'v1' });
    expect(v.runtimeVersion).to.match(/^\d+\.\d+/);
    const st = await rt.status();
    expect(st.conditions.map((c) => `${c.type}=${c.status}`)).to.deep.equal(['RuntimeReady=true', 'NetworkReady=true']);
  });

  it('builds the local images once and finds them again by their content hash', async () => {
    const t0 = Date.now();
    const id1 = await ensurePauseImage(docker);
    const id2 = await ensureBusyboxImage(docker);
    expect(Date.now() - t0).to.be.below(3000);
    expect((await rt.imageStatus({ image: PAUSE_IMAGE }))?.id).to.equal(id1);
    expect((await rt.imageStatus({ image: BUSYBOX_IMAGE }))?.id).to.equal(id2);
    const tags = (await rt.listImages()).flatMap((i) => i.repoTags);
    expect(tags).to.include.members([PAUSE_IMAGE, BUSYBOX_IMAGE]);
  });

  it('runs a sandbox with hostname, IP, resolv.conf and /etc/hosts, and lists it', async () => {
    const { sb, sid, cid } = await runPod();
    const st = (await rt.podSandboxStatus(sid)).status;
    expect(st.state).to.equal('SANDBOX_READY');
    expect(st.metadata).to.deep.equal(sb.metadata);
    const prefix = n.podCIDR.replace(/\.0\/24$/, '.');
    expect(st.network?.ip.startsWith(prefix), `${st.network?.ip} in ${n.podCIDR}`).to.equal(true);
    // The sandbox's dockerd runs --ipv6: the pod's IPv6 address is the additional one.
    const v6 = st.network?.additionalIps.map((a) => a.ip) ?? [];
    expect(v6.length === 1 && v6[0]!.startsWith(n.podCIDRv6.replace(/::\/64$/, ':')), `${v6.join(',')} in ${n.podCIDRv6}`).to.equal(true);
    expect(st.labels).to.deep.equal(sb.labels);
    expect(st.annotations).to.deep.equal(sb.annotations);
    const resolv = (await rt.execSync(cid, ['cat', '/etc/resolv.conf'], 10)).stdout.toString();
    expect(resolv).to.match(/^nameserver 10\.96\.0\.10$/m);
    expect(resolv).to.match(/^search default\.svc\.cluster\.local svc\.cluster\.local$/m);
    expect(resolv).to.match(/^options ndots:5$/m);
    const hosts = (await rt.execSync(cid, ['cat', '/etc/hosts'], 10)).stdout.toString();
    expect(hosts).to.match(new RegExp(`^${st.network!.ip.replace(/\./g, '\\.')}\\s+${sb.hostname}`, 'm'));
    expect((await rt.execSync(cid, ['hostname'], 10)).stdout.toString().trim()).to.equal(sb.hostname);
    const listed = await rt.listPodSandbox({ labelSelector: { 'io.kubernetes.pod.name': sb.metadata.name } });
    expect(listed.map((s) => s.id)).to.deep.equal([sid]);
    expect(listed[0]!.state).to.equal('SANDBOX_READY');
    expect(await rt.listPodSandbox({ id: sid.slice(0, 12), state: 'SANDBOX_NOTREADY' })).to.deep.equal([]);
    await rt.removePodSandbox(sid);
  });

  it('stops a container that ignores SIGTERM after the timeout, with exit 137 and reason Error', async () => {
    const { sid, cid } = await runPod(['sleep', '1000']); // PID 1 ignores SIGTERM
    expect((await rt.containerStatus(cid)).status.state).to.equal('CONTAINER_RUNNING');
    const t0 = Date.now();
    await rt.stopContainer(cid, 2);
    const took = Date.now() - t0;
    expect(took).to.be.within(1800, 10_000);
    const s = (await rt.containerStatus(cid)).status;
    expect(s).to.include({ state: 'CONTAINER_EXITED', exitCode: 137, reason: 'Error' });
    expect(s.finishedAt).to.be.greaterThan(s.startedAt);
    expect(s.startedAt).to.be.greaterThan(0);
    await rt.removeContainer(cid);
    await rt.removePodSandbox(sid);
  });

  it('a container that exits 0 is Completed; a failing one is Error with its exit code', async () => {
    const { sid, cid } = await runPod(['sh', '-c', 'exit 0']);
    expect(await waitExited(cid)).to.include({ exitCode: 0, reason: 'Completed' });
    const sb = (await rt.podSandboxStatus(sid)).status;
    const cfg = containerConfig('bad', ['sh', '-c', 'exit 3']);
    const sbCfg: PodSandboxConfig = { metadata: sb.metadata, logDirectory: path.join(logRoot, 'x') };
    const bad = await rt.createContainer(sid, cfg, sbCfg);
    await rt.startContainer(bad);
    expect(await waitExited(bad)).to.include({ exitCode: 3, reason: 'Error' });
    await rt.removePodSandbox(sid);
  });

  it('a container whose command does not exist fails to start: CRI_START_FAILED, then ContainerCannotRun', async () => {
    const sb = sandboxConfig();
    const sid = await rt.runPodSandbox(sb);
    const cid = await rt.createContainer(sid, containerConfig('app', ['/no/such/binary']), sb);
    const err = await rejects(rt.startContainer(cid));
    expect(errorCode(err)).to.equal('CRI_START_FAILED');
    expect((err as Error).message).to.include('/no/such/binary');
    const s = (await rt.containerStatus(cid)).status;
    expect(s).to.include({ state: 'CONTAINER_EXITED', reason: 'ContainerCannotRun' });
    expect(s.exitCode).to.not.equal(0);
    expect(s.message).to.include('/no/such/binary');
    await rt.removePodSandbox(sid);
  });

  it('containers of a pod share the network: one serves on :8080, the other reaches it on localhost', async () => {
    const { sb, sid } = await runPod(['sh', '-c', 'echo hello-from-a > /var/www/index.html; exec httpd -f -p 8080 -h /var/www']);
    const b = await rt.createContainer(sid, containerConfig('client', ['sleep', '1000']), sb);
    await rt.startContainer(b);
    let got = '';
    for (let i = 0; i < 30 && !got.includes('hello-from-a'); i++) {
      const r = await rt.execSync(b, ['timeout', '5', 'wget', '-q', '-O', '-', 'http://127.0.0.1:8080/'], 10);
      got = r.stdout.toString();
      if (!got) await sleep(200);
    }
    expect(got.trim()).to.equal('hello-from-a');
    await rt.removePodSandbox(sid);
    expect(await rt.listContainers({ podSandboxId: sid })).to.deep.equal([]);
  });

  it('a hostNetwork pod sees the node address and reports no pod IP', async () => {
    const { sid, cid } = await runPod(['sleep', '1000'], {}, {
      hostname: '',
      linux: { securityContext: { namespaceOptions: { network: 'NODE', pid: 'CONTAINER', ipc: 'POD' } } },
    });
    const st = (await rt.podSandboxStatus(sid)).status;
    expect(st.network?.ip).to.equal('');
    expect(st.linux?.namespaces.options.network).to.equal('NODE');
    const addrs = (await rt.execSync(cid, ['ip', '-4', 'addr'], 10)).stdout.toString();
    expect(addrs).to.include(n.nodeIP);
    await rt.removePodSandbox(sid);
  });

  it('publishes a hostPort mapping of the sandbox on the node address', async () => {
    const { sid } = await runPod(['sh', '-c', 'echo via-hostport > /var/www/index.html; exec httpd -f -p 8080 -h /var/www'], {}, {
      portMappings: [{ protocol: 'TCP', containerPort: 8080, hostPort: 18080 }],
    });
    let got = '';
    for (let i = 0; i < 30 && !got.includes('via-hostport'); i++) {
      const r = await inNode(n, 'busybox', ['timeout', '5', 'wget', '-q', '-O', '-', `http://${n.nodeIP}:18080/`], { allowFail: true });
      got = r.stdout;
      if (!got) await sleep(200);
    }
    expect(got.trim()).to.equal('via-hostport');
    await rt.removePodSandbox(sid);
  });

  it('is idempotent: stop and remove twice succeed, a duplicate create is CRI_ALREADY_EXISTS', async () => {
    const { sb, sid, cfg, cid } = await runPod();
    expect(errorCode(await rejects(rt.createContainer(sid, cfg, sb)))).to.equal('CRI_ALREADY_EXISTS');
    expect(errorCode(await rejects(rt.runPodSandbox(sb)))).to.equal('CRI_ALREADY_EXISTS');
    await rt.stopContainer(cid, 0);
    await rt.stopContainer(cid, 0);
    await rt.removeContainer(cid);
    await rt.removeContainer(cid);
    expect(errorCode(await rejects(rt.containerStatus(cid)))).to.equal('CRI_NOT_FOUND');
    await rt.stopPodSandbox(sid);
    expect((await rt.podSandboxStatus(sid)).status.state).to.equal('SANDBOX_NOTREADY');
    await rt.stopPodSandbox(sid);
    await rt.removePodSandbox(sid);
    await rt.removePodSandbox(sid);
    await rt.stopPodSandbox(sid);
    expect(errorCode(await rejects(rt.podSandboxStatus(sid)))).to.equal('CRI_NOT_FOUND');
  });

  it('recovers: a new DockerRuntime over the same dockerd lists the same sandboxes and containers', async () => {
    const { sb, sid, cfg, cid } = await runPod();
    const before = { sandboxes: await rt.listPodSandbox({ id: sid }), containers: await rt.listContainers({ podSandboxId: sid }) };
    const fresh = new DockerRuntime(new Dockerode({ socketPath: n.dockerSocket }));
    const after = { sandboxes: await fresh.listPodSandbox({ id: sid }), containers: await fresh.listContainers({ podSandboxId: sid }) };
    expect(after).to.deep.equal(before);
    expect(after.sandboxes[0]!.metadata).to.deep.equal(sb.metadata);
    expect(after.containers[0]).to.deep.include({ id: cid, podSandboxId: sid, metadata: cfg.metadata, state: 'CONTAINER_RUNNING' });
    expect(after.containers[0]!.labels).to.deep.equal(cfg.labels);
    expect(after.containers[0]!.annotations).to.deep.equal(cfg.annotations);
    await fresh.close();
    await rt.removePodSandbox(sid);
  });

  it('ExecSync returns output and exit codes, and times out', async () => {
    const { sid, cid } = await runPod();
    const r = await rt.execSync(cid, ['sh', '-c', 'echo out; echo err >&2; exit 3'], 10);
    expect(r.stdout.toString()).to.equal('out\n');
    expect(r.stderr.toString()).to.equal('err\n');
    expect(r.exitCode).to.equal(3);
    expect((await rt.execSync(cid, ['true'], 0)).exitCode).to.equal(0);
    const t0 = Date.now();
    const err = await rejects(rt.execSync(cid, ['sleep', '30'], 1));
    expect(errorCode(err)).to.equal('CRI_EXEC_TIMEOUT');
    expect(Date.now() - t0).to.be.below(5000);
    await sleep(300);
    const ps = (await rt.execSync(cid, ['ps'], 10)).stdout.toString();
    expect(ps).to.not.match(/sleep 30/); // the timed-out process was killed
    await rt.stopContainer(cid, 0);
    expect(errorCode(await rejects(rt.execSync(cid, ['true'], 5)))).to.equal('CRI_NOT_RUNNING');
    await rt.removePodSandbox(sid);
  });

  it('Exec streams stdout and stderr apart and reports the exit code', async () => {
    const { sid, cid } = await runPod();
    const s = await rt.exec(cid, ['sh', '-c', 'echo out; echo err >&2; exit 3']);
    expect(s.stdin).to.equal(undefined);
    expect(await drain(s)).to.deep.equal({ out: 'out\n', err: 'err\n', code: 3 });
    await rt.stopContainer(cid, 0);
    expect(errorCode(await rejects(rt.exec(cid, ['true'])))).to.equal('CRI_NOT_RUNNING');
    await rt.removePodSandbox(sid);
  });

  it('Exec passes stdin through (cat echoes it, ends with it); with a tty it resizes and merges output', async () => {
    const { sid, cid } = await runPod();
    const s = await rt.exec(cid, ['cat'], { stdin: true });
    const got = drain(s);
    s.stdin!.write('hello\n');
    s.stdin!.end('world\n');
    expect(await got).to.deep.equal({ out: 'hello\nworld\n', err: '', code: 0 });

    const t = await rt.exec(cid, ['sh', '-c', 'sleep 0.3; stty size; echo to-stderr >&2; exit 5'], { tty: true });
    expect(t.stderr).to.equal(undefined);
    await t.resize(100, 30);
    const r = await drain(t);
    expect(r.code).to.equal(5);
    expect(r.out).to.match(/^30 100\r?\n/m);
    expect(r.out).to.include('to-stderr');
    await rt.removePodSandbox(sid);
  });

  it('Attach reads and writes a running container; the exit code is the container\'s', async () => {
    const { sid, cid } = await runPod(['sh', '-c', 'read line; echo got:$line; echo bye >&2; exit 4'], { stdin: true, stdinOnce: true });
    const s = await rt.attach(cid, { stdin: true, tty: false });
    const got = drain(s);
    s.stdin!.write('hi\n');
    expect(await got).to.deep.equal({ out: 'got:hi\n', err: 'bye\n', code: 4 });
    expect((await waitExited(cid)).exitCode).to.equal(4);
    expect(errorCode(await rejects(rt.attach(cid)))).to.equal('CRI_NOT_RUNNING');
    const other = await runPod();
    expect(errorCode(await rejects(rt.attach(other.cid, { stdin: true })))).to.equal('CRI_INVALID_ARGUMENT');
    const detached = await rt.attach(other.cid);
    detached.close(); // detaching leaves the container running
    expect(errorCode(await rejects(detached.exitCode))).to.equal('CRI_STREAM_CLOSED');
    expect((await rt.containerStatus(other.cid)).status.state).to.equal('CONTAINER_RUNNING');
    await rt.removePodSandbox(other.sid);
    await rt.removePodSandbox(sid);
  });

  it('PortForward reaches a listener bound to the pod\'s own 127.0.0.1', async () => {
    const { sid } = await runPod(['sh', '-c', 'mkdir -p /www && echo hello-pf > /www/index.html && exec httpd -f -p 127.0.0.1:8080 -h /www']);
    let body = '';
    for (let i = 0; i < 30 && !body.includes('hello-pf'); i++) {
      const s = await rt.portForward(sid, 8080);
      const chunks: Buffer[] = [];
      s.on('data', (b: Buffer) => chunks.push(b));
      const ended = new Promise<void>((resolve) => { s.on('end', resolve); s.on('error', () => resolve()); s.on('close', resolve); });
      s.end('GET / HTTP/1.0\r\nHost: pod\r\n\r\n');
      await ended;
      body = Buffer.concat(chunks).toString();
      if (!body.includes('hello-pf')) await sleep(200); // httpd may not be listening yet
    }
    expect(body).to.match(/^HTTP\/1\.[01] 200/);
    expect(body).to.include('hello-pf');
    await rt.removePodSandbox(sid);
  });

  it('PortForward to a port nobody listens on fails with CRI_PORT_FORWARD_FAILED; a stopped sandbox is refused up front', async () => {
    const { sid } = await runPod(['sleep', '1000']);
    const s = await rt.portForward(sid, 9);
    const err = await new Promise<unknown>((resolve) => {
      s.on('error', resolve);
      s.on('close', () => resolve(undefined));
      s.resume();
      s.end();
    });
    expect(errorCode(err)).to.equal('CRI_PORT_FORWARD_FAILED');
    await rt.stopPodSandbox(sid);
    const refused = await rt.portForward(sid, 80).then(() => undefined, (e: unknown) => e);
    expect(errorCode(refused)).to.equal('CRI_SANDBOX_NOT_READY');
    expect(errorCode(await rt.portForward(sid, 0).then(() => undefined, (e: unknown) => e))).to.equal('CRI_INVALID_ARGUMENT');
    await rt.removePodSandbox(sid);
  });

  it('sets resources visibly in docker inspect and updates them', async () => {
    const { sid, cid } = await runPod(['sleep', '1000'], {
      linux: {
        resources: { cpuShares: 512, cpuQuota: 50_000, cpuPeriod: 100_000, memoryLimitInBytes: 64 * 1024 * 1024, oomScoreAdj: 500 },
        securityContext: { runAsUser: 65534, runAsGroup: 65534, capabilities: { dropCapabilities: ['NET_RAW'] }, readonlyRootfs: true },
      },
    });
    const hc = (await docker.getContainer(cid).inspect()).HostConfig;
    expect(hc).to.include({ CpuShares: 512, CpuQuota: 50_000, CpuPeriod: 100_000, Memory: 64 * 1024 * 1024, OomScoreAdj: 500, ReadonlyRootfs: true });
    expect(hc.NetworkMode).to.equal(`container:${sid}`);
    expect((await rt.execSync(cid, ['id', '-u'], 10)).stdout.toString().trim()).to.equal('65534');
    expect((await rt.execSync(cid, ['sh', '-c', 'echo x > /x'], 10)).exitCode).to.not.equal(0);
    await rt.updateContainerResources(cid, { memoryLimitInBytes: 128 * 1024 * 1024, cpuShares: 256 });
    const hc2 = (await docker.getContainer(cid).inspect()).HostConfig;
    expect(hc2).to.include({ Memory: 128 * 1024 * 1024, CpuShares: 256 });
    expect((await rt.containerStatus(cid)).status.resources?.linux).to.include({ memoryLimitInBytes: 128 * 1024 * 1024, cpuShares: 256 });
    const stats = await rt.containerStats(cid);
    expect(stats.attributes.id).to.equal(cid);
    expect(stats.memory!.usageBytes).to.be.greaterThan(0);
    expect((await rt.listContainerStats({ podSandboxId: sid })).map((s) => s.attributes.id)).to.deep.equal([cid]);
    await rt.removePodSandbox(sid);
  });

  it('detects OOMKilled for a memory hog under a 16Mi limit', async () => {
    const { sid, cid } = await runPod(['sh', '-c', 'x=a; while :; do x=$x$x; done'], {
      linux: { resources: { memoryLimitInBytes: 16 * 1024 * 1024 } },
    });
    const s = await waitExited(cid, 60_000);
    expect(s).to.include({ reason: 'OOMKilled', exitCode: 137 });
    await rt.removePodSandbox(sid);
  });

  it('writes the container log in CRI format at <logDirectory>/<container>/<restart>.log', async () => {
    const { sb, sid, cid } = await runPod(['sh', '-c', 'echo one; echo two >&2; echo three; printf tail']);
    const s = await waitExited(cid);
    expect(s.logPath).to.equal(path.join(sb.logDirectory!, 'app', '0.log'));
    let lines: string[] = [];
    // Up to 15 s: under a loaded CI machine the copier can take its exit grace and a last read.
    for (let i = 0; i < 150; i++) {
      lines = existsSync(s.logPath) ? readFileSync(s.logPath, 'utf8').split('\n').filter(Boolean) : [];
      if (lines.length >= 4) break;
      await sleep(100);
    }
    const recs = lines.map((l) => parseLogLine(l));
    expect(recs.every((r) => r !== undefined), lines.join('\n')).to.equal(true);
    // Docker copies stdout and stderr separately: order holds within a stream only.
    expect(lines.find((l) => l.includes(' stdout '))).to.match(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z stdout F one$/);
    expect(lines.find((l) => l.includes(' stderr '))).to.match(/^\S+ stderr F two$/);
    const joined = joinRecords(recs.map((r) => r!));
    expect(joined.filter((j) => j.stream === 'stdout').map((j) => j.line)).to.deep.equal(['one', 'three', 'tail']);
    expect(joined.filter((j) => j.stream === 'stderr').map((j) => j.line)).to.deep.equal(['two']);
    await rt.removePodSandbox(sid);
  });

  it('a new runtime resumes copying logs after a restart, without losing or repeating lines', async () => {
    const { sid, cid } = await runPod(['sh', '-c', 'i=0; while [ $i -lt 30 ]; do echo line$i; i=$((i+1)); sleep 0.05; done']);
    await sleep(400);
    await rt.close(); // nodelet goes away mid-output
    await sleep(400);
    rt = new DockerRuntime(new Dockerode({ socketPath: n.dockerSocket }));
    await rt.recoverLogs();
    const s = await waitExited(cid);
    let got: string[] = [];
    for (let i = 0; i < 50; i++) {
      got = readFileSync(s.logPath, 'utf8').split('\n').filter(Boolean).map((l) => parseLogLine(l)!.message);
      if (got.length >= 30) break;
      await sleep(100);
    }
    expect(got).to.deep.equal(Array.from({ length: 30 }, (_, i) => `line${i}`));
    await rt.removePodSandbox(sid);
  });

  it('reports container events as hints (start, die) while watching', async () => {
    const events: string[] = [];
    const ac = new AbortController();
    let relists = 0;
    const watching = rt.watchEvents((e) => events.push(`${e.type}:${e.action}`), { signal: ac.signal, onRelist: () => relists++ });
    await sleep(300);
    const { sid, cid } = await runPod(['sh', '-c', 'exit 2']);
    await waitExited(cid);
    for (let i = 0; i < 30 && !events.includes('container:die'); i++) await sleep(100);
    ac.abort();
    await watching;
    expect(relists).to.equal(1);
    expect(events).to.include.members(['podsandbox:start', 'container:create', 'container:start', 'container:die']);
    await rt.removePodSandbox(sid);
  });

  it('a nonexistent image yields a clear error, fast', async () => {
    const t0 = Date.now();
    const err = await rejects(rt.pullImage({ image: 'nodelet.invalid/does-not-exist:1' }));
    expect(errorCode(err)).to.equal('CRI_PULL_FAILED');
    expect((err as Error).message).to.not.include('HTTP code');
    expect((err as Error).message).to.include('nodelet.invalid/does-not-exist:1');
    expect((err as Error).message).to.match(/nodelet\.invalid\/v2|lookup|unreachable|not found|denied/); // says why
    expect(Date.now() - t0).to.be.below(30_000);
    expect(await rt.imageStatus({ image: 'nodelet.invalid/does-not-exist:1' })).to.equal(undefined);
    const sb = sandboxConfig();
    const sid = await rt.runPodSandbox(sb);
    const cerr = await rejects(rt.createContainer(sid, containerConfig('x', ['true'], { image: { image: 'nodelet.invalid/nope:2' } }), sb));
    expect(errorCode(cerr)).to.equal('CRI_IMAGE_NOT_FOUND');
    await rt.removePodSandbox(sid);
  });
});
