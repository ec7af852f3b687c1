// Local images, since no registry is reachable: a rootfs tar built here and
// `docker import`ed through dockerode. Each image is also tagged with a hash of
// its inputs (<repo>:h-<hash>), so a repeated call finds it and only re-tags.
//   nodelet.local/pause:3.10     our pause (cri/images/pause.c, gcc -static -Os)
//   nodelet.local/busybox:1.35   Debian's busybox-static with applet symlinks
import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import type Dockerode from 'dockerode';
import { describeError, NodeletError } from '../../lib/errors.ts';
import { exec as realExec, type Exec } from '../../lib/exec.ts';
import { followProgress } from '../docker/progress.ts';

export const PAUSE_IMAGE = 'nodelet.local/pause:3.10';
export const BUSYBOX_IMAGE = 'nodelet.local/busybox:1.35';
const PAUSE_SOURCE = path.join(path.dirname(new URL(import.meta.url).pathname), 'pause.c');
const BUSYBOX_BINARY = '/bin/busybox';
/** Bump when the rootfs layout below changes, so cached images are rebuilt. */
const LAYOUT_VERSION = '1';

export type ImageDocker = Pick<Dockerode, 'getImage' | 'importImage'>;

export interface BuildOptions {
  exec?: Exec;
}

const statusCode = (err: unknown): number | undefined => (err as { statusCode?: number } | undefined)?.statusCode;

function splitName(name: string): { repo: string; tag: string } {
  const i = name.lastIndexOf(':');
  if (i < 0 || name.slice(i).includes('/')) return { repo: name, tag: 'latest' };
  return { repo: name.slice(0, i), tag: name.slice(i + 1) };
}

async function imageId(docker: ImageDocker, ref: string): Promise<string | undefined> {
  try {
    return (await docker.getImage(ref).inspect()).Id;
  } catch (err) {
    if (statusCode(err) === 404) return undefined;
    throw err;
  }
}

/**
 * Makes `name` point at an image built from `hash`'s inputs: reuses the hash tag
 * when present, else builds a rootfs dir with `populate`, tars and imports it.
 * Returns the image ID.
 */
export async function ensureImportedImage(
  docker: ImageDocker,
  name: string,
  hash: string,
  changes: string[],
  populate: (rootfs: string) => Promise<void>,
  opts: BuildOptions = {},
): Promise<string> {
  const exec = opts.exec ?? realExec;
  const { repo, tag } = splitName(name);
  const hashTag = `h-${hash.slice(0, 16)}`;
  const cached = await imageId(docker, `${repo}:${hashTag}`);
  if (cached) {
    if ((await imageId(docker, name)) !== cached) await docker.getImage(cached).tag({ repo, tag });
    return cached;
  }
  const work = mkdtempSync(path.join(tmpdir(), 'nodelet-image-'));
  try {
    const rootfs = path.join(work, 'rootfs');
    mkdirSync(rootfs);
    await populate(rootfs);
    const tarFile = path.join(work, 'rootfs.tar');
    await exec('tar', ['--numeric-owner', '--owner=0', '--group=0', '-C', rootfs, '-cf', tarFile, '.']);
    const stream = (await docker.importImage(Readable.from(readFileSync(tarFile)) as unknown as string, {
      repo,
      tag: hashTag,
      changes,
    })) as NodeJS.ReadableStream;
    const failure = await followProgress(stream);
    if (failure) throw new NodeletError('CRI_IMAGE_BUILD_FAILED', `import ${name}: ${failure}`);
    const id = await imageId(docker, `${repo}:${hashTag}`);
    if (!id) throw new NodeletError('CRI_IMAGE_BUILD_FAILED', `import ${name}: image not present after import`);
    await docker.getImage(id).tag({ repo, tag });
    return id;
  } catch (err) {
    if (err instanceof NodeletError) throw err;
    throw new NodeletError('CRI_IMAGE_BUILD_FAILED', `build ${name}: ${describeError(err)}`, { cause: err });
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** Builds (once) the pause image from cri/images/pause.c. Needs gcc with static libc. */
export async function ensurePauseImage(docker: ImageDocker, name = PAUSE_IMAGE, opts: BuildOptions = {}): Promise<string> {
  const exec = opts.exec ?? realExec;
  const source = readFileSync(PAUSE_SOURCE);
  const hash = createHash('sha256').update(`pause/${LAYOUT_VERSION}\0`).update(source).digest('hex');
  return ensureImportedImage(
    docker,
    name,
    hash,
    ['ENTRYPOINT ["/pause"]', 'LABEL io.nodelet.image=pause'],
    async (rootfs) => {
      await exec('gcc', ['-static', '-Os', '-s', '-o', path.join(rootfs, 'pause'), PAUSE_SOURCE]);
      chmodSync(path.join(rootfs, 'pause'), 0o755);
    },
    opts,
  );
}

/** Builds (once) a busybox image from the host's static busybox, every applet symlinked in /bin. */
export async function ensureBusyboxImage(docker: ImageDocker, name = BUSYBOX_IMAGE, opts: BuildOptions = {}): Promise<string> {
  const exec = opts.exec ?? realExec;
  const binary = readFileSync(BUSYBOX_BINARY);
  const hash = createHash('sha256').update(`busybox/${LAYOUT_VERSION}\0`).update(binary).digest('hex');
  return ensureImportedImage(
    docker,
    name,
    hash,
    [
      'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
      'CMD ["sh"]',
      'LABEL io.nodelet.image=busybox',
    ],
    async (rootfs) => {
      for (const d of ['bin', 'etc', 'proc', 'sys', 'dev', 'root', 'var/www', 'var/log', 'usr', 'home']) {
        mkdirSync(path.join(rootfs, d), { recursive: true });
      }
      mkdirSync(path.join(rootfs, 'tmp'), { mode: 0o1777 });
      chmodSync(path.join(rootfs, 'tmp'), 0o1777);
      copyFileSync(BUSYBOX_BINARY, path.join(rootfs, 'bin', 'busybox'));
      chmodSync(path.join(rootfs, 'bin', 'busybox'), 0o755);
      const applets = (await exec(BUSYBOX_BINARY, ['--list'])).stdout.split('\n').map((s) => s.trim()).filter(Boolean);
      for (const a of applets) if (a !== 'busybox') symlinkSync('busybox', path.join(rootfs, 'bin', a));
      symlinkSync('bin', path.join(rootfs, 'sbin'));
      symlinkSync('../bin', path.join(rootfs, 'usr', 'bin'));
      symlinkSync('../bin', path.join(rootfs, 'usr', 'sbin'));
      writeFileSync(path.join(rootfs, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n');
      writeFileSync(path.join(rootfs, 'etc', 'group'), 'root:x:0:\nnogroup:x:65534:\n');
    },
    opts,
  );
}
