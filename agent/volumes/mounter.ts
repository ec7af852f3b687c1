// The mounts the volume plugins need (tmpfs for memory-backed emptyDirs,
// secrets and projected volumes) behind an interface we own: the real one runs
// mount(8)/umount(8); test/fakes/mounter.ts keeps a set in memory.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Exec } from '../../lib/exec.ts';
import { NodeletError } from '../../lib/errors.ts';

export interface Mounter {
  /** Mounts a tmpfs at `dir` (which exists), with size=<bytes> when given. */
  mountTmpfs(dir: string, sizeBytes?: number): Promise<void>;
  unmount(dir: string): Promise<void>;
  isMountPoint(dir: string): Promise<boolean>;
}

/** Mount points from /proc/self/mountinfo text (field 5, octal escapes decoded). */
export function parseMountInfo(text: string): string[] {
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const fields = line.split(' ');
    const mp = fields[4];
    if (mp === undefined) continue;
    out.push(mp.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))));
  }
  return out;
}

export class SystemMounter implements Mounter {
  private readonly exec: Exec;
  private readonly mountInfoPath: string;

  constructor(exec: Exec, mountInfoPath = '/proc/self/mountinfo') {
    this.exec = exec;
    this.mountInfoPath = mountInfoPath;
  }

  async mountTmpfs(dir: string, sizeBytes?: number): Promise<void> {
    const opts = sizeBytes !== undefined && sizeBytes > 0 ? ['-o', `size=${Math.floor(sizeBytes)}`] : [];
    try {
      await this.exec('mount', ['-t', 'tmpfs', ...opts, 'tmpfs', dir], { timeoutMs: 30_000 });
    } catch (err) {
      throw new NodeletError('MOUNT_FAILED', `mount tmpfs at ${dir} failed`, { cause: err });
    }
  }

  async unmount(dir: string): Promise<void> {
    try {
      await this.exec('umount', [dir], { timeoutMs: 30_000 });
    } catch (err) {
      throw new NodeletError('UNMOUNT_FAILED', `umount ${dir} failed`, { cause: err });
    }
  }

  async isMountPoint(dir: string): Promise<boolean> {
    const want = path.resolve(dir);
    const mounts = parseMountInfo(await readFile(this.mountInfoPath, 'utf8'));
    return mounts.includes(want);
  }
}
