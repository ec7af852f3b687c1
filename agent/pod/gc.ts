// Garbage collection, as upstream's container GC (every minute) and image GC
// (every five minutes). Containers: per pod and container name the newest
// dead instance stays (its status is lastState and feeds the back-off); older
// dead ones go, as do dead sandboxes that are not a pod's newest and hold no
// containers. Images: when the image filesystem is above the high threshold
// (85%), unused images go, least recently used first, until it is under the
// low one (80%). Pods the API no longer has are cleaned up by the pod workers.
import type { Image, ImageService, RuntimeService } from '../../cri/runtime.ts';
import { CONTAINER_EXITED, CONTAINER_UNKNOWN, SANDBOX_READY } from '../../cri/api.ts';
import type { Clock } from '../../lib/clock.ts';
import { describeError } from '../../lib/errors.ts';
import type { Logger } from '../../lib/log.ts';
import type { RuntimePodStatus } from './types.ts';

export const CONTAINER_GC_PERIOD_MS = 60_000;
export const IMAGE_GC_PERIOD_MS = 5 * 60_000;
export const IMAGE_GC_HIGH_PERCENT = 85;
export const IMAGE_GC_LOW_PERCENT = 80;

/** Dead containers to remove: all but the newest `keep` per pod and container name. */
export function deadContainersToRemove(pods: readonly RuntimePodStatus[], keep = 1): string[] {
  const out: string[] = [];
  for (const p of pods) {
    const seen = new Map<string, number>();
    // Lists are newest first.
    for (const c of p.containers) {
      if (c.state !== CONTAINER_EXITED && c.state !== CONTAINER_UNKNOWN) continue;
      const n = (seen.get(c.name) ?? 0) + 1;
      seen.set(c.name, n);
      if (n > keep) out.push(c.id);
    }
  }
  return out;
}

/** Dead sandboxes that are not their pod's newest and that no container uses any more. */
export function deadSandboxesToRemove(pods: readonly RuntimePodStatus[], removedContainers: ReadonlySet<string>): string[] {
  const out: string[] = [];
  for (const p of pods) {
    p.sandboxes.forEach((s, i) => {
      if (i === 0 || s.state === SANDBOX_READY) return;
      const used = p.containers.some((c) => c.sandboxId === s.id && !removedContainers.has(c.id));
      if (!used) out.push(s.id);
    });
  }
  return out;
}

export interface ImageUse {
  image: Image;
  /** When it was last seen in use, or first seen (ms). */
  lastUsedMs: number;
}

/**
 * Images to remove to bring usage from above `highPercent` to `lowPercent` of
 * `capacityBytes`: unused and unpinned ones, least recently used first.
 */
export function imagesToRemove(
  images: readonly ImageUse[],
  inUse: ReadonlySet<string>,
  usedBytes: number,
  capacityBytes: number,
  highPercent = IMAGE_GC_HIGH_PERCENT,
  lowPercent = IMAGE_GC_LOW_PERCENT,
): Image[] {
  if (capacityBytes <= 0 || (usedBytes * 100) / capacityBytes < highPercent) return [];
  let toFree = usedBytes - Math.floor((capacityBytes * lowPercent) / 100);
  const candidates = images.filter((u) => !inUse.has(u.image.id) && !u.image.pinned).sort((a, b) => a.lastUsedMs - b.lastUsedMs);
  const out: Image[] = [];
  for (const c of candidates) {
    if (toFree <= 0) break;
    out.push(c.image);
    toFree -= c.image.size;
  }
  return out;
}

export interface GcDeps {
  runtime: RuntimeService & ImageService;
  clock: Clock;
  log: Logger;
  /** The runtime's pods as of the last relist. */
  pods: () => RuntimePodStatus[];
  /** Bytes used and capacity of the image filesystem; undefined when unknown. */
  imageFs: () => Promise<{ usedBytes: number; capacityBytes: number } | undefined>;
  /** Images never removed (the pause image). */
  pinned: readonly string[];
  /** Removes what is left on disk of pods that are gone (volume dirs); runs with the container GC. */
  cleanupVolumes?: () => Promise<void>;
}

export class GarbageCollector {
  private readonly d: GcDeps;
  private readonly lastUsed = new Map<string, number>();

  constructor(deps: GcDeps) {
    this.d = deps;
  }

  start(signal: AbortSignal): void {
    void this.loop(signal, CONTAINER_GC_PERIOD_MS, async () => {
      await this.collectContainers();
      await this.d.cleanupVolumes?.();
    });
    void this.loop(signal, IMAGE_GC_PERIOD_MS, () => this.collectImages());
  }

  private async loop(signal: AbortSignal, periodMs: number, fn: () => Promise<unknown>): Promise<void> {
    while (!signal.aborted) {
      await this.d.clock.sleep(periodMs, signal);
      if (signal.aborted) return;
      try {
        await fn();
      } catch (err) {
        this.d.log.warn('garbage collection failed', { err: describeError(err) });
      }
    }
  }

  /** Removes dead containers and sandboxes beyond what is kept; returns how many went. */
  async collectContainers(): Promise<{ containers: number; sandboxes: number }> {
    const pods = this.d.pods();
    const containers = deadContainersToRemove(pods);
    for (const id of containers) await this.d.runtime.removeContainer(id);
    const sandboxes = deadSandboxesToRemove(pods, new Set(containers));
    for (const id of sandboxes) await this.d.runtime.removePodSandbox(id);
    if (containers.length || sandboxes.length) this.d.log.info('removed dead containers', { containers: containers.length, sandboxes: sandboxes.length });
    return { containers: containers.length, sandboxes: sandboxes.length };
  }

  /** Removes unused images when the image filesystem is above the high threshold; returns their IDs. */
  async collectImages(): Promise<string[]> {
    const now = this.d.clock.now();
    const images = await this.d.runtime.listImages();
    const containers = await this.d.runtime.listContainers();
    const inUse = new Set(containers.map((c) => c.imageRef));
    for (const img of images) {
      const pinned = img.repoTags.some((t) => this.d.pinned.includes(t));
      if (pinned) inUse.add(img.id);
      if (inUse.has(img.id) || !this.lastUsed.has(img.id)) this.lastUsed.set(img.id, now);
    }
    for (const id of [...this.lastUsed.keys()]) if (!images.some((i) => i.id === id)) this.lastUsed.delete(id);
    const fs = await this.d.imageFs();
    if (!fs) return [];
    const victims = imagesToRemove(images.map((image) => ({ image, lastUsedMs: this.lastUsed.get(image.id) ?? now })), inUse, fs.usedBytes, fs.capacityBytes);
    for (const img of victims) {
      await this.d.runtime.removeImage({ image: img.id });
      this.lastUsed.delete(img.id);
    }
    if (victims.length) this.d.log.info('removed unused images', { images: victims.map((i) => i.repoTags[0] ?? i.id) });
    return victims.map((i) => i.id);
  }
}
