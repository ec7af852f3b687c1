// The plain-Docker floor of starting pods: for each of `count` pods at once,
// the two containers a pod needs, made directly through the Engine API (the
// pause container, then the app in its network namespace), no agent and no
// API server involved. Per pod: ms from the batch start to the app started.
// Everything made is removed afterwards.
import type Dockerode from 'dockerode';
import { performance } from 'node:perf_hooks';
import { describeError } from '../../lib/errors.ts';

export interface FloorResult {
  startMs: number[];
  errors: string[];
  wallMs: number;
}

export async function dockerFloor(docker: Dockerode, o: { count: number; pauseImage: string; image: string; command: string[] }): Promise<FloorResult> {
  const tag = `floor-${Date.now()}`;
  const made: Dockerode.Container[] = [];
  const errors: string[] = [];
  const t0 = performance.now();
  const one = async (i: number): Promise<number | undefined> => {
    try {
      const pause = await docker.createContainer({ name: `${tag}-p${i}`, Image: o.pauseImage });
      made.push(pause);
      await pause.start();
      const app = await docker.createContainer({ name: `${tag}-c${i}`, Image: o.image, Cmd: o.command, HostConfig: { NetworkMode: `container:${pause.id}` } });
      made.push(app);
      await app.start();
      return performance.now() - t0;
    } catch (err) {
      errors.push(describeError(err));
      return undefined;
    }
  };
  const times = await Promise.all(Array.from({ length: o.count }, (_, i) => one(i)));
  const wallMs = performance.now() - t0;
  await Promise.all(made.map((c) => c.remove({ force: true }).catch(() => undefined)));
  return { startMs: times.filter((t): t is number => t !== undefined), errors, wallMs };
}
