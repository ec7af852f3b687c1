// DockerRuntime's handling of Docker answers that a healthy daemon rarely
// gives on demand: 304/404/409 as outcomes, pull error lines, registry auth.
// The fake answers only what each test needs; the real daemon is covered by
// test/integration/cri-docker.test.ts.
import { expect } from 'chai';
import type Dockerode from 'dockerode';
import { PassThrough } from 'node:stream';
import { DockerRuntime } from '../../cri/docker/runtime.ts';
import { errorCode } from '../../lib/errors.ts';

const httpError = (statusCode: number, message: string) =>
  Object.assign(new Error(`(HTTP code ${statusCode}) unexpected - ${message}`), { statusCode, json: { message } });

async function code(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
  } catch (e) {
    return errorCode(e) ?? 'no code';
  }
  return 'resolved';
}

function fakeDocker(over: Record<string, unknown>): Dockerode {
  return { listContainers: async () => [], ...over } as unknown as Dockerode;
}

describe('DockerRuntime (fake dockerode)', () => {
  it('treats 304 and 404 on stop, 404 and removal-in-progress 409 on remove as success', async () => {
    const calls: string[] = [];
    const answers: Record<string, Error> = {
      'stop a': httpError(304, 'container already stopped'),
      'stop b': httpError(404, 'No such container: b'),
      'remove a': httpError(404, 'No such container: a'),
      'remove b': httpError(409, 'removal of container b is already in progress'),
    };
    const rt = new DockerRuntime(fakeDocker({
      getContainer: (id: string) => ({
        stop: async () => { calls.push(`stop ${id}`); if (answers[`stop ${id}`]) throw answers[`stop ${id}`]; },
        remove: async () => { calls.push(`remove ${id}`); if (answers[`remove ${id}`]) throw answers[`remove ${id}`]; },
      }),
    }));
    await rt.stopContainer('a', 1);
    await rt.stopContainer('b', 1);
    await rt.removeContainer('a');
    await rt.removeContainer('b');
    expect(calls).to.deep.equal(['stop a', 'stop b', 'remove a', 'remove b']);
  });

  it('still fails on a real conflict or a server error, with Docker\'s own message', async () => {
    const rt = new DockerRuntime(fakeDocker({
      getContainer: () => ({
        remove: async () => { throw httpError(409, 'You cannot remove a running container'); },
        stop: async () => { throw httpError(500, 'cannot kill'); },
        inspect: async () => { throw httpError(404, 'No such container: z'); },
      }),
    }));
    let err: unknown;
    try { await rt.removeContainer('x'); } catch (e) { err = e; }
    expect(errorCode(err)).to.equal('CRI_RUNTIME_FAILED');
    expect((err as Error).message).to.equal('remove container x: You cannot remove a running container');
    expect(await code(rt.stopContainer('x', 1))).to.equal('CRI_RUNTIME_FAILED');
    expect(await code(rt.containerStatus('z'))).to.equal('CRI_NOT_FOUND');
    expect(await code(rt.podSandboxStatus('z'))).to.equal('CRI_NOT_FOUND');
  });

  it('maps a name conflict on create to CRI_ALREADY_EXISTS', async () => {
    const rt = new DockerRuntime(fakeDocker({
      getImage: () => ({ inspect: async () => ({ Id: 'sha256:p', RepoTags: [], RepoDigests: [], Size: 1, Config: {} }) }),
      createContainer: async () => { throw httpError(409, 'Conflict. The container name "/k8s_POD_a_b_c_0" is already in use'); },
    }), { sandboxOomScoreAdj: 0 });
    expect(await code(rt.runPodSandbox({ metadata: { name: 'a', namespace: 'b', uid: 'c', attempt: 0 } }))).to.equal('CRI_ALREADY_EXISTS');
  });

  it('refuses to run a sandbox without the pause image, saying how to get it', async () => {
    const rt = new DockerRuntime(fakeDocker({ getImage: () => ({ inspect: async () => { throw httpError(404, 'No such image'); } }) }), { sandboxOomScoreAdj: 0 });
    let err: unknown;
    try { await rt.runPodSandbox({ metadata: { name: 'a', namespace: 'b', uid: 'c', attempt: 0 } }); } catch (e) { err = e; }
    expect(errorCode(err)).to.equal('CRI_IMAGE_NOT_FOUND');
    expect((err as Error).message).to.include('ensurePauseImage');
  });

  it('pulls the normalised reference with registry auth, reports progress, returns the image ID', async () => {
    const pulls: { ref: string; opts: Record<string, unknown> }[] = [];
    const rt = new DockerRuntime(fakeDocker({
      pull: async (ref: string, opts: Record<string, unknown>) => {
        pulls.push({ ref, opts });
        const s = new PassThrough();
        s.end('{"status":"Pulling from library/nginx","id":"1.25"}\n{"status":"Download complete","id":"abc"}\n');
        return s;
      },
      getImage: (ref: string) => ({ inspect: async () => ({ Id: 'sha256:' + 'b'.repeat(64), RepoTags: [ref], RepoDigests: [], Size: 5, Config: { User: '101' } }) }),
    }));
    const progress: string[] = [];
    const id = await rt.pullImage({ image: 'nginx:1.25' }, { username: 'u', password: 'p', serverAddress: 'docker.io' }, (p) => progress.push(p.status));
    expect(id).to.equal('sha256:' + 'b'.repeat(64));
    expect(pulls[0]!.ref).to.equal('docker.io/library/nginx:1.25');
    expect(pulls[0]!.opts.authconfig).to.deep.include({ username: 'u', password: 'p', serveraddress: 'docker.io' });
    expect(progress).to.deep.equal(['Pulling from library/nginx', 'Download complete']);
    expect((await rt.imageStatus({ image: 'nginx:1.25' }))?.uid).to.equal(101);
  });

  it('fails a pull whose stream carries an error line, with the reason', async () => {
    const rt = new DockerRuntime(fakeDocker({
      pull: async () => {
        const s = new PassThrough();
        s.end('{"status":"Pulling"}\n{"errorDetail":{"message":"pull access denied for nope, repository does not exist"},"error":"x"}\n');
        return s;
      },
    }));
    let err: unknown;
    try { await rt.pullImage({ image: 'nope' }); } catch (e) { err = e; }
    expect(errorCode(err)).to.equal('CRI_PULL_FAILED');
    expect((err as Error).message).to.equal('pull nope: pull access denied for nope, repository does not exist');
    expect(await code(rt.pullImage({ image: 'Bad:Ref' }))).to.equal('CRI_PULL_FAILED');
  });

  it('reports an unreachable daemon in status() instead of throwing', async () => {
    const rt = new DockerRuntime(fakeDocker({ ping: async () => { throw new Error('connect ENOENT /run/x.sock'); } }));
    const st = await rt.status();
    expect(st.conditions.map((c) => [c.type, c.status, c.reason])).to.deep.equal([
      ['RuntimeReady', false, 'DockerDaemonNotAvailable'],
      ['NetworkReady', false, 'DockerDaemonNotAvailable'],
    ]);
  });
});
