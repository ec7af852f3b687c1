// Issue 2: the walking skeleton against a real kube-apiserver and a real dockerd.
import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { stopDaemon, waitFor } from '../../cluster/daemon.ts';
import { nodeReady, startNodelet } from '../../cluster/up.ts';
import { exec } from '../../lib/exec.ts';
import { hostIP } from '../../cluster/profile.ts';
import { bridgeMac, destroyNode, ensureNode, inNode, startDockerd, stopDockerd } from '../../cluster/sandbox.ts';
import { cluster, kubectlJson, kubectlRun } from './cluster.ts';

const readyStatus = async (name: string) => {
  const n = await kubectlJson(['get', 'node', name]);
  return n.status.conditions.find((c: any) => c.type === 'Ready');
};

describe('node registration, status and lease (real apiserver, real dockerd)', function () {
  it('registers the node Ready with labels, capacity, addresses and nodeInfo', async () => {
    const { nodes } = cluster();
    const n0 = nodes[0]!;
    const node = await kubectlJson(['get', 'node', n0.name]);
    expect(node.metadata.labels).to.include({
      'kubernetes.io/hostname': n0.name,
      'kubernetes.io/os': 'linux',
      'kubernetes.io/arch': 'amd64',
    });
    expect(node.status.capacity.pods).to.equal('110');
    expect(Number(node.status.capacity.cpu)).to.be.greaterThan(0);
    expect(node.status.capacity.memory).to.match(/^\d+Ki$/);
    expect(node.status.capacity['ephemeral-storage']).to.match(/^\d+(Ki)?$/);
    expect(node.status.allocatable.pods).to.equal('110');
    expect(node.status.addresses).to.deep.include({ type: 'InternalIP', address: n0.sandbox.nodeIP });
    expect(node.status.nodeInfo.containerRuntimeVersion).to.match(/^docker:\/\/\d+\.\d+/);
    expect(node.status.nodeInfo.kubeletVersion).to.equal('v1.37.2');
    expect(node.status.nodeInfo.kernelVersion).to.equal(readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim());
    expect(node.status.daemonEndpoints.kubeletEndpoint.Port).to.equal(10250);
    expect(node.spec.podCIDR).to.equal(n0.sandbox.podCIDR);
    const types = node.status.conditions.map((c: any) => `${c.type}=${c.status}`).sort();
    expect(types).to.deep.equal(['DiskPressure=False', 'MemoryPressure=False', 'PIDPressure=False', 'Ready=True']);
  });

  it('keeps a Lease in kube-node-lease and renews it', async function () {
    this.timeout(90_000);
    const name = cluster().nodes[0]!.name;
    const first = await kubectlJson(['-n', 'kube-node-lease', 'get', 'lease', name]);
    expect(first.spec.holderIdentity).to.equal(name);
    expect(first.spec.leaseDurationSeconds).to.equal(40);
    expect(first.metadata.ownerReferences?.[0]).to.include({ kind: 'Node', name });
    const t0 = Date.parse(first.spec.renewTime);
    let t1 = t0;
    expect(Number.isNaN(t0), `renewTime ${first.spec.renewTime}`).to.equal(false);
    try {
      // The contract: renewed within the lease duration (40 s); nodelet renews every 10 s.
      await waitFor('the lease to be renewed', async () => {
        const l = await kubectlJson(['-n', 'kube-node-lease', 'get', 'lease', name]);
        t1 = Date.parse(l.spec.renewTime);
        return t1 > t0;
      }, 41_000, 1000);
    } catch (err) {
      const lines = readFileSync(cluster().nodes[0]!.logFile, 'utf8').split('\n');
      const leaseLines = lines.filter((l) => /lease/i.test(l)).slice(-10);
      throw new Error(`${(err as Error).message}\nnodelet lease log:\n${leaseLines.join('\n')}\nlast lines:\n${lines.slice(-6).join('\n')}`);
    }
    expect(t1).to.be.greaterThan(t0);
  });

  it('turns NotReady when its dockerd stops and Ready again when it is back', async function () {
    this.timeout(180_000);
    const { nodes, paths } = cluster();
    const n0 = nodes[0]!;
    await stopDockerd(n0.sandbox);
    await waitFor('node NotReady after dockerd stopped', async () => (await readyStatus(n0.name)).status === 'False', 40_000, 1000);
    const notReady = await readyStatus(n0.name);
    expect(notReady.reason).to.equal('KubeletNotReady');
    expect(notReady.message).to.match(/runtime/i);
    await startDockerd(n0.sandbox, paths.logs);
    await waitFor('node Ready after dockerd restarted', () => nodeReady(paths, n0.name), 60_000, 1000);
    expect((await readyStatus(n0.name)).reason).to.equal('KubeletReady');
  });

  it('stops cleanly on SIGTERM and re-registers when started again', async function () {
    this.timeout(120_000);
    const { nodes, paths, profile } = cluster();
    const n0 = nodes[0]!;
    const before = await kubectlJson(['get', 'node', n0.name]);
    await stopDaemon(n0.pidFile, 15_000);
    const log = readFileSync(n0.logFile, 'utf8');
    expect(log).to.include('"message":"stopping"');
    expect(log).to.include('"message":"stopped"');
    // With the Node object gone, only a fresh registration can bring it back.
    await kubectlRun(['delete', 'node', n0.name, '--wait=true']);
    expect((await kubectlRun(['get', 'node', n0.name], { allowFail: true })).code).to.not.equal(0);
    startNodelet(profile, n0.name, n0.sandbox);
    await waitFor('node Ready after nodelet restart', () => nodeReady(paths, n0.name), 60_000, 1000);
    const after = await kubectlJson(['get', 'node', n0.name]);
    expect(after.metadata.uid).to.not.equal(before.metadata.uid);
    expect(after.spec.podCIDR).to.equal(n0.sandbox.podCIDR);
  });

  it('keeps the host bridge MAC while another node joins and leaves, so this node still reaches the apiserver', async function () {
    this.timeout(60_000);
    const { profile: p, nodes } = cluster();
    const n0 = nodes[0]!;
    const mac = async () => JSON.parse((await exec('ip', ['-j', 'link', 'show', p.bridge])).stdout)[0].address as string;
    expect(await mac()).to.equal(bridgeMac(p));
    const extra = 9; // an index no other test uses
    try {
      await ensureNode(p, extra, [extra]);
      expect(await mac()).to.equal(bridgeMac(p));
    } finally {
      await destroyNode(p, extra);
    }
    expect(await mac()).to.equal(bridgeMac(p));
    // The node's neighbour entry for the host still names the bridge's MAC.
    const apiserver = `${p.apiserverPort}`;
    const r = await inNode(n0.sandbox, 'timeout', ['5', 'bash', '-c', `exec 3<>/dev/tcp/${hostIP(p)}/${apiserver}`], { allowFail: true });
    expect(r.code, r.stderr).to.equal(0);
    const neigh = (await inNode(n0.sandbox, 'ip', ['neigh', 'show', hostIP(p)])).stdout;
    expect(neigh).to.include(`lladdr ${bridgeMac(p)}`);
  });
});
