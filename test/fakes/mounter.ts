// In-memory Mounter: records tmpfs mounts (with their size) and refuses to
// mount twice at one place, as the kernel would stack mounts silently and the
// manager must never do that.
import type { Mounter } from '../../agent/volumes/mounter.ts';
import path from 'node:path';

export class FakeMounter implements Mounter {
  /** Mount point -> size option (undefined = none). */
  readonly mounts = new Map<string, number | undefined>();
  readonly log: string[] = [];
  /** Set to make every unmount fail (a busy mount). */
  failUnmount: Error | undefined;

  async mountTmpfs(dir: string, sizeBytes?: number): Promise<void> {
    const p = path.resolve(dir);
    if (this.mounts.has(p)) throw new Error(`fake mounter: ${p} is already mounted`);
    this.mounts.set(p, sizeBytes);
    this.log.push(`mount ${p}${sizeBytes !== undefined ? ` size=${sizeBytes}` : ''}`);
  }

  async unmount(dir: string): Promise<void> {
    const p = path.resolve(dir);
    if (this.failUnmount) throw this.failUnmount;
    if (!this.mounts.delete(p)) throw new Error(`fake mounter: ${p} is not mounted`);
    this.log.push(`umount ${p}`);
  }

  async isMountPoint(dir: string): Promise<boolean> {
    return this.mounts.has(path.resolve(dir));
  }
}

const _: Mounter = new FakeMounter();
void _;
