// rm -rf that never crosses into another mount (upstream's
// RemoveAllOneFilesystem, made stricter): a mount left inside a pod dir, say a
// privileged container's Bidirectional bind mount of a host path, makes it
// fail instead of deleting what lies behind that mount. A bind mount from the
// same filesystem keeps the device number, so each directory is also checked
// against the mount table.
import { lstat, readdir, rmdir, unlink } from 'node:fs/promises';
import path from 'node:path';
import { NodeletError } from '../../lib/errors.ts';

export async function removeAllOneFilesystem(dir: string, isMountPoint: (dir: string) => Promise<boolean>): Promise<void> {
  let root;
  try {
    root = await lstat(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  await removeUnder(dir, root.dev, isMountPoint);
}

async function removeUnder(p: string, dev: number, isMountPoint: (dir: string) => Promise<boolean>): Promise<void> {
  const st = await lstat(p);
  if (!st.isDirectory()) {
    await unlink(p);
    return;
  }
  if (st.dev !== dev || (await isMountPoint(p))) {
    throw new NodeletError('VOLUME_TEARDOWN_FAILED', `cannot delete directory ${p}: it is a mount point`);
  }
  for (const name of await readdir(p)) await removeUnder(path.join(p, name), dev, isMountPoint);
  await rmdir(p);
}
