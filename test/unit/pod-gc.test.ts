// Garbage collection decisions and the collector over the fake runtime.
import { expect } from 'chai';
import type { Image } from '../../cri/api.ts';
import { nullLogger } from '../../lib/log.ts';
import { deadContainersToRemove, deadSandboxesToRemove, GarbageCollector, imagesToRemove } from '../../agent/pod/gc.ts';
import { RuntimePodCache } from '../../agent/pod/runtimepods.ts';
import type { RuntimeContainer, RuntimePodStatus } from '../../agent/pod/types.ts';
import { FakeClock } from '../fakes/clock.ts';
import { FakeRuntime } from '../fakes/runtime.ts';

const c = (id: string, name: string, state: RuntimeContainer['state'], sandboxId = 'sb1'): RuntimeContainer => ({
  id, sandboxId, name, hash: 'h', restartCount: 0, state, createdAt: 0, startedAt: 0, finishedAt: 0, exitCode: 0, reason: '', message: '', image: 'i', imageRef: 'sha256:i',
});

const img = (id: string, size: number, pinned = false): Image => ({ id, repoTags: [`r/${id}:1`], repoDigests: [], size, username: '', pinned });

describe('garbage collection', () => {
  it('keeps the newest dead instance per container name, removes older ones, never running ones', () => {
    const pod: RuntimePodStatus = {
      uid: 'u', name: 'p', namespace: 'ns', sandboxes: [],
      containers: [c('a3', 'a', 'CONTAINER_RUNNING'), c('a2', 'a', 'CONTAINER_EXITED'), c('a1', 'a', 'CONTAINER_EXITED'), c('b2', 'b', 'CONTAINER_EXITED'), c('b1', 'b', 'CONTAINER_EXITED')],
    };
    expect(deadContainersToRemove([pod])).to.deep.equal(['a1', 'b1']);
  });

  it('removes dead sandboxes that are not the newest and hold no kept container', () => {
    const pod: RuntimePodStatus = {
      uid: 'u', name: 'p', namespace: 'ns',
      sandboxes: [
        { id: 'sb3', state: 'SANDBOX_READY', attempt: 2, createdAt: 3, ip: '' },
        { id: 'sb2', state: 'SANDBOX_NOTREADY', attempt: 1, createdAt: 2, ip: '' },
        { id: 'sb1', state: 'SANDBOX_NOTREADY', attempt: 0, createdAt: 1, ip: '' },
      ],
      containers: [c('x2', 'x', 'CONTAINER_EXITED', 'sb2'), c('x1', 'x', 'CONTAINER_EXITED', 'sb1')],
    };
    expect(deadSandboxesToRemove([pod], new Set(['x1']))).to.deep.equal(['sb1']);
  });

  it('frees images only above the high threshold, least recently used first, down to the low one', () => {
    const images = [{ image: img('old', 30), lastUsedMs: 1 }, { image: img('newer', 30), lastUsedMs: 2 }, { image: img('used', 30), lastUsedMs: 0 }, { image: img('pin', 30, true), lastUsedMs: 0 }];
    expect(imagesToRemove(images, new Set(['used']), 84, 100)).to.deep.equal([]);
    expect(imagesToRemove(images, new Set(['used']), 90, 100).map((i) => i.id)).to.deep.equal(['old']);
    expect(imagesToRemove(images, new Set(['used']), 99, 100).map((i) => i.id)).to.deep.equal(['old']);
    expect(imagesToRemove(images, new Set(['used']), 100, 100).map((i) => i.id)).to.deep.equal(['old']);
    expect(imagesToRemove(images, new Set(['used']), 120, 100).map((i) => i.id)).to.deep.equal(['old', 'newer']);
  });

  it('collects dead containers through the runtime, and unused images when the disk is full, never the pinned pause image', async () => {
    const rt = new FakeRuntime();
    const clock = new FakeClock();
    const busy = rt.addImage('nodelet.local/busybox:1.35');
    const spare = rt.addImage('nodelet.local/spare:1');
    rt.addImage('nodelet.local/pause:3.10');
    const sb = await rt.runPodSandbox({ metadata: { name: 'p', namespace: 'ns', uid: 'u', attempt: 0 }, labels: { 'io.kubernetes.pod.uid': 'u' } });
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const id = await rt.createContainer(sb, { metadata: { name: 'app', attempt: i }, image: { image: 'nodelet.local/busybox:1.35' }, labels: { 'io.kubernetes.pod.uid': 'u', 'io.kubernetes.container.name': 'app' } }, { metadata: { name: 'p', namespace: 'ns', uid: 'u', attempt: 0 } });
      await rt.startContainer(id);
      if (i < 2) rt.exitContainer(id, 1);
      ids.push(id);
    }
    const cache = new RuntimePodCache(rt, nullLogger());
    await cache.relist();
    const gc = new GarbageCollector({ runtime: rt, clock, log: nullLogger(), pods: () => cache.pods(), imageFs: async () => ({ usedBytes: 95, capacityBytes: 100 }), pinned: ['nodelet.local/pause:3.10'] });
    expect(await gc.collectContainers()).to.deep.equal({ containers: 1, sandboxes: 0 });
    expect(rt.containers.has(ids[0]!)).to.equal(false);
    expect(rt.containers.has(ids[1]!)).to.equal(true);
    const removed = await gc.collectImages();
    expect(removed).to.deep.equal([spare]);
    expect([...rt.images.values()]).to.include(busy);
    expect(rt.images.size).to.equal(2);
  });
});
