// hostPath: a node path used as is, after upstream's type check
// (pkg/volume/hostpath checkType), whose texts this keeps.
import type { V1Volume } from '@kubernetes/client-node';
import { mkdir, open, stat } from 'node:fs/promises';
import type { PodVolume } from './types.ts';
import { mountFailed } from './types.ts';

async function statOrUndefined(p: string) {
  try {
    return await stat(p);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** Throws an Error with upstream's text when `p` is not of `type`; creates it for the *OrCreate types. */
export async function checkHostPathType(p: string, type: string): Promise<void> {
  const st = await statOrUndefined(p);
  const fail = (what: string) => new Error(`hostPath type check failed: ${p} is not ${what}`);
  switch (type) {
    case '':
      return;
    case 'DirectoryOrCreate':
    case 'Directory':
      if (!st && type === 'DirectoryOrCreate') {
        await mkdir(p, { recursive: true, mode: 0o755 });
        return;
      }
      if (!st?.isDirectory()) throw fail('a directory');
      return;
    case 'FileOrCreate':
    case 'File':
      if (!st && type === 'FileOrCreate') {
        // Like upstream, the parent must exist: O_CREAT only.
        const fh = await open(p, 'a', 0o644);
        await fh.close();
        return;
      }
      if (!st?.isFile()) throw fail('a file');
      return;
    case 'Socket':
      if (!st?.isSocket()) throw fail('a socket file');
      return;
    case 'CharDevice':
      if (!st?.isCharacterDevice()) throw fail('a character device');
      return;
    case 'BlockDevice':
      if (!st?.isBlockDevice()) throw fail('a block device');
      return;
    default:
      throw new Error(`${type} is an invalid volume type`);
  }
}

export async function setUpHostPathAt(name: string, p: string, type: string | undefined, readOnly: boolean): Promise<PodVolume> {
  try {
    await checkHostPathType(p, type ?? '');
  } catch (err) {
    throw mountFailed(name, err);
  }
  return { hostPath: p, readOnly };
}

export function setUpHostPath(volume: V1Volume): Promise<PodVolume> {
  const src = volume.hostPath!;
  return setUpHostPathAt(volume.name, src.path, src.type, false);
}
