// volumeMount details as upstream's makeMounts handles them: subPath checks,
// mountPropagation mapping, and making sure a subPath cannot lead out of its
// volume through a symlink. subPathExpr expansion is pod/expand.ts's.
import type { V1VolumeMount } from '@kubernetes/client-node';
import { chmod, mkdir, realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import type { MountPropagation } from '../../cri/api.ts';

/** Upstream's checks before a subPath is used; returns the error text or undefined. */
export function validateSubPath(subPath: string): string | undefined {
  if (path.isAbsolute(subPath)) return `error SubPath \`${subPath}\` must not be an absolute path`;
  if (subPath.split(/[/\\]/).includes('..')) return `unable to provision SubPath \`${subPath}\`: must not contain '..'`;
  return undefined;
}

export function translatePropagation(mode: string | undefined): MountPropagation {
  switch (mode ?? 'None') {
    case 'None':
      return 'PROPAGATION_PRIVATE';
    case 'HostToContainer':
      return 'PROPAGATION_HOST_TO_CONTAINER';
    case 'Bidirectional':
      return 'PROPAGATION_BIDIRECTIONAL';
    default:
      throw new Error(`invalid MountPropagation mode: ${JSON.stringify(mode)}`);
  }
}

function within(parent: string, child: string): boolean {
  return child === parent || child.startsWith(parent.endsWith('/') ? parent : parent + '/');
}

/**
 * The host path of `subPath` inside the volume, created as a directory (with
 * the volume root's mode) when missing. Resolves symlinks and refuses a path
 * that ends up outside the volume: a container could otherwise plant a
 * symlink in a shared volume and have the next container mount any host path.
 */
export async function prepareSubPath(volumePath: string, subPath: string, mount: V1VolumeMount, container: string): Promise<string> {
  const root = await realpath(volumePath);
  const joined = path.join(volumePath, subPath);
  let exists = true;
  try {
    await stat(joined);
  } catch {
    exists = false;
  }
  if (!exists) {
    // Create step by step, checking each level, so a symlink planted midway cannot steer mkdir outside.
    const parts = path.normalize(subPath).split('/').filter(Boolean);
    let cur = root;
    const mode = (await stat(root)).mode & 0o7777;
    for (const part of parts) {
      const next = path.join(cur, part);
      try {
        await mkdir(next, { mode });
        await chmod(next, mode); // mkdir's mode is filtered by the umask
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
          throw new Error(`failed to create subPath directory for volumeMount ${JSON.stringify(mount.name)} of container ${JSON.stringify(container)}`, { cause: err });
        }
      }
      cur = await realpath(next);
      if (!within(root, cur)) {
        throw new Error(`failed to create subPath directory for volumeMount ${JSON.stringify(mount.name)} of container ${JSON.stringify(container)}`);
      }
    }
  }
  const resolved = await realpath(joined);
  if (!within(root, resolved)) {
    throw new Error(`failed to prepare subPath for volumeMount ${JSON.stringify(mount.name)} of container ${JSON.stringify(container)}`);
  }
  return resolved;
}
