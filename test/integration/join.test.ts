// Issue 9: a second node joins the running control plane with `nodelet join`
// and a bootstrap token (kubeadm join's discovery and TLS bootstrap), not a
// pre-made kubeconfig; pods spread over both nodes and reach each other across
// them. Only sandbox addresses are used (node IPs, pod IPs, the host bridge).
import { expect } from 'chai';
import { X509Certificate, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { stopDaemon, waitFor } from '../../cluster/daemon.ts';
import { hostIP, nodeName, podCIDR } from '../../cluster/profile.ts';
import { destroyNode, ensureNode, inNode, type NodeSandbox } from '../../cluster/sandbox.ts';
import { ensureNodeRuntime, joinDir, nodeReady, nodeletPidFile, startNodelet } from '../../cluster/up.ts';
import { BUSYBOX_IMAGE } from '../../cri/images/build.ts';
import { requestClientCertificate } from '../../agent/join/bootstrap.ts';
import { credentialPaths, readCredentials, replaceClientPem } from '../../agent/join/credentials.ts';
import { buildCsrPem, generateNodeKey, nodeClientSubject } from '../../agent/join/csr.ts';
import { requestJson } from '../../agent/join/http.ts';
import { realClock } from '../../lib/clock.ts';
import { exec } from '../../lib/exec.ts';
import { nullLogger } from '../../lib/log.ts';
import { startProxy, stopProxy } from '../e2e/proxy.ts';
import { cluster, kubectlJson, kubectlRun } from './cluster.ts';

const NODE = 2;
const NS = 'join-it';
/**
 * A client certificate for `csrPem` from the cluster CA that lives `seconds`
 * (the cluster signer will not issue under 10 minutes: made here with
 * `openssl ca`, which takes exact start and end times).
 */
async function signShortLived(ca: { certPath: string; keyPath: string }, csrPem: string, seconds: number): Promise<string> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'nodelet-shortcert-'));
  try {
    writeFileSync(path.join(dir, 'index.txt'), '');
    writeFileSync(path.join(dir, 'serial'), `${randomBytes(8).toString('hex')}\n`);
    writeFileSync(path.join(dir, 'req.csr'), csrPem);
    writeFileSync(path.join(dir, 'ca.cnf'), [
      '[ca]', 'default_ca = d',
      '[d]', `database = ${dir}/index.txt`, `new_certs_dir = ${dir}`, `serial = ${dir}/serial`,
      'default_md = sha256', 'policy = p', 'unique_subject = no', 'preserve = yes', 'x509_extensions = leaf',
      '[p]', 'organizationName = optional', 'commonName = supplied',
      '[leaf]', 'basicConstraints = critical,CA:FALSE', 'keyUsage = critical,digitalSignature', 'extendedKeyUsage = clientAuth', '',
    ].join('\n'));
    const stamp = (ms: number) => `${new Date(ms).toISOString().replace(/[-:T]/g, '').slice(2, 14)}Z`;
    const now = Date.now();
    await exec('openssl', [
      'ca', '-batch', '-notext', '-config', path.join(dir, 'ca.cnf'), '-cert', ca.certPath, '-keyfile', ca.keyPath,
      '-in', path.join(dir, 'req.csr'), '-out', path.join(dir, 'short.crt'),
      '-startdate', stamp(now - 5000), '-enddate', stamp(now + seconds * 1000),
    ]);
    return readFileSync(path.join(dir, 'short.crt'), 'utf8');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const repoRoot = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..', '..');

describe('join: a second node with a bootstrap token (real control plane)', function () {
  this.timeout(180_000);
  let n2: NodeSandbox;
  let name2: string;

  /** One `nodelet join --bootstrap-only` in node 2's namespace, credentials to `dir`. */
  function joinOnce(dir: string, over: { server?: string; token?: string; hash?: string }, extra: string[] = []) {
    const j = cluster().join;
    return inNode(n2, process.execPath, [
      path.join(repoRoot, 'cmd', 'nodelet.ts'), 'join',
      '--server', over.server ?? j.server,
      '--token', over.token ?? j.token,
      '--discovery-token-ca-cert-hash', over.hash ?? j.caCertHash,
      '--dir', dir, '--bootstrap-only',
      '--node-name', name2, '--node-ip', n2.nodeIP, '--container-runtime-endpoint', `unix://${n2.dockerSocket}`,
      ...extra,
    ], { allowFail: true, timeoutMs: 90_000 });
  }

  before(async () => {
    const { profile: p, paths } = cluster();
    name2 = nodeName(p, NODE);
    n2 = await ensureNodeRuntime(p, NODE, [1, NODE], paths.logs);
    await ensureNode(p, 1, [1, NODE]); // node 1's route to node 2's pod CIDR
    await kubectlRun(['create', 'namespace', NS], { allowFail: true });
    await waitFor('the default service account', async () => (await kubectlRun(['-n', NS, 'get', 'sa', 'default'], { allowFail: true })).code === 0, 60_000, 500);
  });

  after(async () => {
    const { profile: p, nodes } = cluster();
    await kubectlRun(['delete', 'namespace', NS, '--wait=false'], { allowFail: true });
    if (n2) await stopDaemon(nodeletPidFile(p, n2), 15_000);
    await kubectlRun(['delete', 'node', name2, '--wait=false'], { allowFail: true });
    await destroyNode(p, NODE);
    await inNode(nodes[0]!.sandbox, 'ip', ['route', 'del', podCIDR(p, NODE)], { allowFail: true });
  });

  describe('refuses, with one clear line and nothing written', () => {
    const scratch = () => path.join(path.dirname(n2.dockerDataRoot), `join-fail-${Date.now()}`);
    const expectCleanFailure = (r: { code: number; stderr: string }, dir: string, msg: RegExp) => {
      expect(r.code, r.stderr).to.not.equal(0);
      const lines = r.stderr.trim().split('\n').filter(Boolean);
      expect(lines, r.stderr).to.have.length(1);
      expect(lines[0]).to.match(/^nodelet: /).and.match(msg);
      expect(existsSync(dir), `${dir} must not exist`).to.equal(false);
    };

    it('a wrong token secret (the cluster-info signature does not verify)', async () => {
      const dir = scratch();
      const id = cluster().join.token.split('.')[0]!;
      const secret = cluster().join.token.split('.')[1] === 'a'.repeat(16) ? 'b'.repeat(16) : 'a'.repeat(16);
      expectCleanFailure(await joinOnce(dir, { token: `${id}.${secret}` }), dir, /signature check failed.*wrong token/);
    });

    it('a token the cluster does not know (no signature for its id)', async () => {
      const dir = scratch();
      expectCleanFailure(await joinOnce(dir, { token: 'zzzzzz.0123456789abcdef' }, ['--discovery-timeout', '3s']), dir, /no signature for token id "zzzzzz"/);
    });

    it('a wrong CA hash', async () => {
      const dir = scratch();
      expectCleanFailure(await joinOnce(dir, { hash: `sha256:${'0'.repeat(64)}` }), dir, /matches no --discovery-token-ca-cert-hash/);
    });

    it('an unreachable server', async () => {
      const dir = scratch();
      // The host's bridge address, a port nothing listens on: refused at once.
      expectCleanFailure(await joinOnce(dir, { server: `${hostIP(cluster().profile)}:1` }), dir, /cannot reach the API server/);
    });
  });

  it('joins with the token: node 2 turns Ready with a certificate the control plane issued', async () => {
    const { profile: p, paths } = cluster();
    startNodelet(p, name2, n2, [], cluster().join);
    await waitFor(`node ${name2} Ready`, () => nodeReady(paths, name2), 150_000, 1000);

    const dir = joinDir(n2);
    expect(statSync(path.join(dir, 'kubeconfig')).mode & 0o777).to.equal(0o600);
    const pemFile = path.join(dir, 'pki', 'nodelet-client-current.pem');
    expect(statSync(pemFile).mode & 0o777).to.equal(0o600);
    const cert = new X509Certificate(readFileSync(pemFile));
    expect(cert.subject.split('\n').sort()).to.deep.equal([`CN=system:node:${name2}`, 'O=system:nodes']);
    expect(cert.checkIssued(new X509Certificate(readFileSync(paths.ca.certPath)))).to.equal(true);

    // The bootstrap CSR: made with the token, auto-approved through kubeadm's bindings.
    const id = cluster().join.token.split('.')[0]!;
    const csrs = await kubectlJson(['get', 'csr']);
    const boot = csrs.items.find((c: any) => c.spec.username === `system:bootstrap:${id}`);
    expect(boot, 'a CSR from the bootstrap token').to.not.equal(undefined);
    expect(boot.spec.signerName).to.equal('kubernetes.io/kube-apiserver-client-kubelet');
    expect(boot.status.conditions.map((c: any) => `${c.type}/${c.reason}`)).to.include('Approved/AutoApproved');

    const node = await kubectlJson(['get', 'node', name2]);
    expect(node.status.addresses).to.deep.include({ type: 'InternalIP', address: n2.nodeIP });
  });

  it('renews the client certificate with the current one (selfnodeclient auto-approval); the agent carries on', async function () {
    const { paths } = cluster();
    if (!(await nodeReady(paths, name2))) this.skip();
    const creds = credentialPaths(joinDir(n2));
    const cur = readCredentials(creds)!;
    const key = generateNodeKey();
    const certPem = await requestClientCertificate(
      { request: requestJson, clock: realClock, log: nullLogger() },
      { server: cur.server, caPem: cur.caPem, clientCertPem: cur.certPem, clientKeyPem: cur.keyPem },
      key, name2, 60_000,
    );
    await replaceClientPem(creds, certPem, key);
    const renewed = (await kubectlJson(['get', 'csr'])).items.filter((c: any) => c.spec.username === `system:node:${name2}`);
    expect(renewed.map((c: any) => c.status.conditions?.[0]?.message)).to.include('Auto approving self kubelet client certificate after SubjectAccessReview.');
    expect(readCredentials(creds)!.cert.fingerprint256).to.not.equal(cur.cert.fingerprint256);
    // The agent reads the PEM per connection: its lease keeps being renewed.
    const t0 = Date.parse((await kubectlJson(['-n', 'kube-node-lease', 'get', 'lease', name2])).spec.renewTime);
    await waitFor('the lease renewed after the swap', async () => Date.parse((await kubectlJson(['-n', 'kube-node-lease', 'get', 'lease', name2])).spec.renewTime) > t0, 41_000, 1000);
  });

  it('rotates a short-lived client certificate by itself before it expires; the node stays Ready', async function () {
    this.timeout(240_000);
    const { paths } = cluster();
    if (!(await nodeReady(paths, name2))) this.skip();
    const creds = credentialPaths(joinDir(n2));
    const key = generateNodeKey();
    const shortPem = await signShortLived(paths.ca, buildCsrPem(key, nodeClientSubject(name2)), 75);
    const short = new X509Certificate(shortPem);
    expect(short.subject.split('\n').sort()).to.deep.equal([`CN=system:node:${name2}`, 'O=system:nodes']);
    await replaceClientPem(creds, shortPem, key);
    // Rotation is due at 70-90% of the 80 s life; the agent re-reads its files every 30 s.
    await waitFor('the agent to replace the short-lived certificate', async () => {
      const cur = readCredentials(creds);
      return cur !== undefined && cur.cert.fingerprint256 !== short.fingerprint256;
    }, 150_000, 1000);
    const now = readCredentials(creds)!.cert;
    expect(now.checkIssued(new X509Certificate(readFileSync(paths.ca.certPath)))).to.equal(true);
    expect(Date.parse(now.validTo), 'issued before the short one ran out').to.be.greaterThan(Date.parse(short.validTo));
    expect(Date.parse(now.validFrom)).to.be.lessThan(Date.parse(short.validTo));
    expect(now.subject.split('\n').sort()).to.deep.equal([`CN=system:node:${name2}`, 'O=system:nodes']);
    // Past the short one's end, the agent still talks to the API server with the new one.
    await waitFor('the short certificate to run out', async () => Date.now() > Date.parse(short.validTo) + 2000, 90_000, 1000);
    const t0 = Date.parse((await kubectlJson(['-n', 'kube-node-lease', 'get', 'lease', name2])).spec.renewTime);
    await waitFor('the lease renewed after the short certificate expired', async () => Date.parse((await kubectlJson(['-n', 'kube-node-lease', 'get', 'lease', name2])).spec.renewTime) > t0, 41_000, 1000);
    expect(await nodeReady(paths, name2)).to.equal(true);
  });

  describe('with both nodes', () => {
    let pods: any[] = [];

    before(async function () {
      if (!(await nodeReady(cluster().paths, name2))) this.skip();
    });

    it('a 4-replica deployment spreads over both nodes', async () => {
      await kubectlRun(['apply', '-f', '-'], {
        input: JSON.stringify({
          apiVersion: 'apps/v1',
          kind: 'Deployment',
          metadata: { name: 'spread', namespace: NS },
          spec: {
            replicas: 4,
            selector: { matchLabels: { app: 'spread' } },
            template: {
              metadata: { labels: { app: 'spread' } },
              spec: {
                terminationGracePeriodSeconds: 2,
                // Without it the scheduler may pack them; this makes the spread a requirement.
                // nodeTaintsPolicy Honor: a cordoned node leaves the count, so a drain can move pods.
                topologySpreadConstraints: [{ maxSkew: 1, topologyKey: 'kubernetes.io/hostname', whenUnsatisfiable: 'DoNotSchedule', nodeTaintsPolicy: 'Honor', labelSelector: { matchLabels: { app: 'spread' } } }],
                containers: [{
                  name: 'web',
                  image: BUSYBOX_IMAGE,
                  imagePullPolicy: 'Never',
                  command: ['sh', '-c', 'mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 8080 -h /www'],
                }],
              },
            },
          },
        }),
      });
      await waitFor('4 pods Running with IPs', async () => {
        pods = (await kubectlJson(['-n', NS, 'get', 'pods', '-l', 'app=spread'])).items;
        return pods.length === 4 && pods.every((x) => x.status.phase === 'Running' && x.status.podIP);
      }, 150_000, 1000);
      const perNode = new Map<string, number>();
      for (const x of pods) perNode.set(x.spec.nodeName, (perNode.get(x.spec.nodeName) ?? 0) + 1);
      const n1 = cluster().nodes[0]!;
      expect(Object.fromEntries(perNode)).to.deep.equal({ [n1.name]: 2, [name2]: 2 });
      const prefix = (cidr: string) => cidr.replace(/0\/24$/, '');
      for (const x of pods) {
        const cidr = x.spec.nodeName === name2 ? n2.podCIDR : n1.sandbox.podCIDR;
        expect(x.status.podIP.startsWith(prefix(cidr)), `${x.status.podIP} in ${cidr}`).to.equal(true);
      }
    });

    it('a pod on node 1 reaches a pod on node 2 by IP, and back', async function () {
      if (pods.length !== 4) this.skip();
      const n1 = cluster().nodes[0]!;
      const on1 = pods.find((x) => x.spec.nodeName === n1.name);
      const on2 = pods.find((x) => x.spec.nodeName === name2);
      const fetchFrom = async (from: any, sandbox: NodeSandbox, to: any) => {
        const id = String(from.status.containerStatuses[0].containerID).replace(/^docker:\/\//, '');
        const r = await inNode(sandbox, 'docker', ['-H', `unix://${sandbox.dockerSocket}`, 'exec', id, 'timeout', '5', 'wget', '-q', '-O', '-', `http://${to.status.podIP}:8080/`], { allowFail: true, timeoutMs: 20_000 });
        return r.stdout.trim();
      };
      expect(await fetchFrom(on1, n1.sandbox, on2)).to.equal(on2.metadata.name);
      expect(await fetchFrom(on2, n2, on1)).to.equal(on1.metadata.name);
    });

    describe('through the service proxy on both nodes', () => {
      const n1 = () => cluster().nodes[0]!;
      before(async function () {
        this.timeout(180_000);
        if (pods.length !== 4) this.skip();
        await startProxy(cluster().profile, n1().name, n1().sandbox);
        await startProxy(cluster().profile, name2, n2);
      });

      after(async function () {
        this.timeout(180_000);
        await stopProxy(cluster().profile, n2).catch(() => undefined);
        await stopProxy(cluster().profile, n1().sandbox).catch(() => undefined);
      });

      it('a pod on node 1 reaches the pods on node 2 through a ClusterIP Service', async () => {
        await kubectlRun(['apply', '-f', '-'], {
          input: JSON.stringify({
            apiVersion: 'v1', kind: 'Service', metadata: { name: 'spread', namespace: NS },
            spec: { selector: { app: 'spread' }, ports: [{ port: 80, targetPort: 8080 }] },
          }),
        });
        const svc = await kubectlJson(['-n', NS, 'get', 'service', 'spread']);
        const ip: string = svc.spec.clusterIP;
        // Mocha runs this after the drain test: the pods as they are now.
        const live: any[] = (await kubectlJson(['-n', NS, 'get', 'pods', '-l', 'app=spread'])).items
          .filter((x: any) => !x.metadata.deletionTimestamp && x.status.phase === 'Running' && x.status.podIP);
        const on1 = live.find((x) => x.spec.nodeName === n1().name);
        const names2 = live.filter((x) => x.spec.nodeName === name2).map((x) => x.metadata.name);
        const all = live.map((x) => x.metadata.name);
        expect(on1, 'a spread pod on node 1').to.not.equal(undefined);
        expect(names2, 'spread pods on node 2').to.not.be.empty;
        const id = String(on1.status.containerStatuses[0].containerID).replace(/^docker:\/\//, '');
        let answers: string[] = [];
        let errors = '';
        // 30 requests: with a third or more of the endpoints on node 2, missing them all has odds under 1e-5.
        await waitFor('answers from node 2 through the cluster IP', async () => {
          const r = await inNode(n1().sandbox, 'docker', ['-H', `unix://${n1().sandbox.dockerSocket}`, 'exec', id, 'sh', '-c',
            `for i in $(seq 30); do timeout 5 wget -q -O - http://${ip}/; done`], { allowFail: true, timeoutMs: 120_000 });
          answers = r.stdout.split('\n').map((l) => l.trim()).filter(Boolean);
          errors = r.stderr.trim().split('\n').slice(-3).join(' | ');
          return answers.some((a) => names2.includes(a));
        }, 90_000, 2000).catch((err: unknown) => {
          throw new Error(`${String(err)}; answers ${JSON.stringify(answers)}, node 2 pods ${JSON.stringify(names2)}, wget: ${errors}`);
        });
        expect(answers.every((a) => all.includes(a)), answers.join(',')).to.equal(true);
      });

      it('a NodePort on node 2 reaches a pod that runs only on node 1', async () => {
        await kubectlRun(['apply', '-f', '-'], {
          input: [
            {
              apiVersion: 'v1', kind: 'Pod', metadata: { name: 'only1', namespace: NS, labels: { app: 'only1' } },
              spec: {
                nodeName: n1().name,
                terminationGracePeriodSeconds: 1,
                containers: [{ name: 'web', image: BUSYBOX_IMAGE, imagePullPolicy: 'Never', command: ['sh', '-c', 'mkdir -p /www && echo only1 > /www/index.html && exec httpd -f -p 8080 -h /www'] }],
              },
            },
            {
              apiVersion: 'v1', kind: 'Service', metadata: { name: 'only1', namespace: NS },
              spec: { type: 'NodePort', selector: { app: 'only1' }, ports: [{ port: 80, targetPort: 8080 }] },
            },
          ].map((o) => JSON.stringify(o)).join('\n'),
        });
        const nodePort: number = (await kubectlJson(['-n', NS, 'get', 'service', 'only1'])).spec.ports[0].nodePort;
        expect(nodePort).to.be.within(30000, 32767);
        let body = '';
        await waitFor(`http://${n2.nodeIP}:${nodePort}/ to answer`, async () => {
          const r = await fetch(`http://${n2.nodeIP}:${nodePort}/`, { signal: AbortSignal.timeout(3000) }).catch(() => undefined);
          body = r?.ok ? (await r.text()).trim() : '';
          return body !== '';
        }, 120_000, 1000);
        expect(body).to.equal('only1');
        const pod = await kubectlJson(['-n', NS, 'get', 'pod', 'only1']);
        expect(pod.spec.nodeName).to.equal(n1().name);
        const ps = await inNode(n2, 'docker', ['-H', `unix://${n2.dockerSocket}`, 'ps', '-q', '--filter', `label=io.kubernetes.pod.name=only1`]);
        expect(ps.stdout.trim(), 'no only1 container on node 2').to.equal('');
        await kubectlRun(['-n', NS, 'delete', 'pod', 'only1', '--wait=false'], { allowFail: true });
      });
    });

    it('kubectl drain of node 2 moves its pods to node 1; uncordon lets new ones back', async function () {
      if (pods.length !== 4) this.skip();
      const n1 = cluster().nodes[0]!;
      const runningOn = async () => {
        const items: any[] = (await kubectlJson(['-n', NS, 'get', 'pods', '-l', 'app=spread'])).items;
        const live = items.filter((x) => !x.metadata.deletionTimestamp && x.status.phase === 'Running');
        return { n1: live.filter((x) => x.spec.nodeName === n1.name).length, n2: live.filter((x) => x.spec.nodeName === name2).length, total: items.length };
      };
      const r = await kubectlRun(['drain', name2, '--ignore-daemonsets', '--delete-emptydir-data', '--grace-period', '5', '--timeout', '120s'], { allowFail: true });
      expect(r.code, r.stderr).to.equal(0);
      await waitFor('all 4 pods Running on node 1', async () => {
        const c = await runningOn();
        return c.n1 === 4 && c.n2 === 0 && c.total === 4;
      }, 120_000, 1000);
      // Gracefully gone from node 2's runtime too, not just from the API.
      await waitFor('no spread containers left on node 2', async () => {
        const ps = await inNode(n2, 'docker', ['-H', `unix://${n2.dockerSocket}`, 'ps', '-q', '--filter', `label=io.kubernetes.pod.namespace=${NS}`], { allowFail: true });
        return ps.code === 0 && ps.stdout.trim() === '';
      }, 60_000, 1000);
      const node = await kubectlJson(['get', 'node', name2]);
      expect(node.spec.unschedulable).to.equal(true);

      await kubectlRun(['uncordon', name2]);
      await kubectlRun(['-n', NS, 'scale', 'deployment', 'spread', '--replicas', '6']);
      await waitFor('the new pods on node 2', async () => {
        const c = await runningOn();
        return c.n1 === 4 && c.n2 === 2;
      }, 120_000, 1000);
    });
  });
});
