// The fake runtime keeps the contract the Docker runtime keeps (states,
// idempotency, error codes), so agent tests against it mean something.
import { expect } from 'chai';
import { FakeRuntime } from '../fakes/runtime.ts';
import type { PodSandboxConfig } from '../../cri/runtime.ts';
import { errorCode } from '../../lib/errors.ts';

const sbCfg: PodSandboxConfig = { metadata: { name: 'web', namespace: 'default', uid: 'u1', attempt: 0 }, logDirectory: '/var/log/pods/default_web_u1', labels: { app: 'web' } };
const cCfg = { metadata: { name: 'app', attempt: 0 }, image: { image: 'busybox' }, logPath: 'app/0.log' };

async function code(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
  } catch (e) {
    return errorCode(e);
  }
  return 'resolved';
}

describe('FakeRuntime', () => {
  it('walks a pod through the CRI states and records the calls', async () => {
    const rt = new FakeRuntime();
    rt.addImage('busybox');
    const sid = await rt.runPodSandbox(sbCfg);
    const cid = await rt.createContainer(sid, cCfg, sbCfg);
    expect((await rt.containerStatus(cid)).status).to.include({ state: 'CONTAINER_CREATED', logPath: '/var/log/pods/default_web_u1/app/0.log' });
    await rt.startContainer(cid);
    expect((await rt.listContainers({ state: 'CONTAINER_RUNNING' })).map((c) => c.id)).to.deep.equal([cid]);
    rt.exitContainer(cid, 0);
    expect((await rt.containerStatus(cid)).status).to.include({ state: 'CONTAINER_EXITED', reason: 'Completed' });
    await rt.stopPodSandbox(sid);
    expect((await rt.listPodSandbox({ state: 'SANDBOX_NOTREADY' })).map((s) => s.id)).to.deep.equal([sid]);
    expect(rt.calls.slice(0, 2)).to.deep.equal(['runPodSandbox k8s_POD_web_default_u1_0', 'createContainer k8s_app_web_default_u1_0']);
  });

  it('is idempotent and reports duplicates, unknowns and missing images by code', async () => {
    const rt = new FakeRuntime();
    rt.addImage('docker.io/library/busybox:latest');
    const sid = await rt.runPodSandbox(sbCfg);
    expect(await code(rt.runPodSandbox(sbCfg))).to.equal('CRI_ALREADY_EXISTS');
    const cid = await rt.createContainer(sid, cCfg, sbCfg);
    expect(await code(rt.createContainer(sid, cCfg, sbCfg))).to.equal('CRI_ALREADY_EXISTS');
    expect(await code(rt.createContainer(sid, { ...cCfg, metadata: { name: 'b', attempt: 0 }, image: { image: 'nginx' } }, sbCfg))).to.equal('CRI_IMAGE_NOT_FOUND');
    await rt.stopContainer(cid, 1);
    await rt.stopContainer(cid, 1);
    await rt.removeContainer(cid);
    await rt.removeContainer(cid);
    expect(await code(rt.containerStatus(cid))).to.equal('CRI_NOT_FOUND');
    await rt.removePodSandbox(sid);
    await rt.removePodSandbox(sid);
    await rt.stopPodSandbox(sid);
    expect(await code(rt.podSandboxStatus(sid))).to.equal('CRI_NOT_FOUND');
  });

  it('answers execSync from a table, fails pulls it cannot do, injects errors once', async () => {
    const rt = new FakeRuntime();
    rt.pullable.add('docker.io/library/busybox:latest');
    expect(await code(rt.pullImage({ image: 'nginx' }))).to.equal('CRI_PULL_FAILED');
    const ref = await rt.pullImage({ image: 'busybox' });
    expect((await rt.imageStatus({ image: 'busybox:latest' }))?.id).to.equal(ref);
    const sid = await rt.runPodSandbox(sbCfg);
    const cid = await rt.createContainer(sid, cCfg, sbCfg);
    await rt.startContainer(cid);
    rt.execResults.set('cat /ready', { stdout: Buffer.from('ok'), stderr: Buffer.alloc(0), exitCode: 1 });
    rt.execResults.set('sleep 9', 'timeout');
    expect((await rt.execSync(cid, ['cat', '/ready'], 1)).exitCode).to.equal(1);
    expect(await code(rt.execSync(cid, ['sleep', '9'], 1))).to.equal('CRI_EXEC_TIMEOUT');
    rt.injectErrors.set('startContainer', new Error('boom'));
    expect(await code(rt.startContainer(cid))).to.equal(undefined);
    expect(await code(rt.startContainer(cid))).to.equal('CRI_INVALID_STATE'); // already running
  });
});
