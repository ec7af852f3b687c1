// The e2e suite's web app, since no registry is reachable: the node's own
// busybox image plus an entrypoint that serves / (its version and the pod's
// hostname) and /health (OK) with busybox httpd, committed as local images.
//   nodelet.local/webapp:1.0, :2.0, :3.0  the app in three versions
//   nodelet.local/webapp:slow             answers only after START_DELAY (15 s)
//   nodelet.local/webapp:exiting          its web server exits after STOP_AFTER (8 s);
//                                         the container stays up, so a liveness probe
//                                         (not the restart policy) has to notice it
// Each is also tagged with a hash of its inputs (<repo>:h-<hash>), so a repeated
// call finds it and only re-tags, as cri/images/build.ts does.
import { createHash } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type Dockerode from 'dockerode';
import { describeError, NodeletError } from '../../lib/errors.ts';
import { exec as realExec, type Exec } from '../../lib/exec.ts';
import { BUSYBOX_IMAGE } from './build.ts';

export const WEBAPP_REPO = 'nodelet.local/webapp';
export const webappImage = (tag: string): string => `${WEBAPP_REPO}:${tag}`;
export const WEBAPP_PORT = 8080;

/** Bump when the script or layout below changes, so cached images are rebuilt. */
const LAYOUT_VERSION = '1';

/**
 * The entrypoint. sh is PID 1, so it traps TERM itself (PID 1 ignores signals it
 * has no handler for) and waits on background sleeps so the trap runs at once.
 */
export const WEBAPP_SCRIPT = `#!/bin/sh
trap 'echo "webapp $VERSION: stopping"; [ -n "$pid" ] && kill $pid 2>/dev/null; exit 0' TERM INT
echo "webapp $VERSION on $(hostname)" > /www/index.html
echo "webapp $VERSION: starting on :$PORT"
if [ "\${START_DELAY:-0}" -gt 0 ]; then
  echo "webapp $VERSION: waiting \${START_DELAY} s before serving"
  sleep "$START_DELAY" & wait $!
fi
httpd -f -p "$PORT" -h /www & pid=$!
echo "webapp $VERSION: serving"
if [ "\${STOP_AFTER:-0}" -gt 0 ]; then
  sleep "$STOP_AFTER" & wait $!
  kill $pid 2>/dev/null
  echo "webapp $VERSION: web server exited"
  pid=
  while :; do sleep 3600 & wait $!; done
fi
wait $pid
`;

export interface WebappVariant {
  tag: string;
  env: Record<string, string>;
}

const variants: WebappVariant[] = [
  { tag: '1.0', env: { VERSION: '1.0' } },
  { tag: '2.0', env: { VERSION: '2.0' } },
  { tag: '3.0', env: { VERSION: '3.0' } },
  { tag: 'slow', env: { VERSION: '1.0-slow', START_DELAY: '15' } },
  { tag: 'exiting', env: { VERSION: '1.0-exiting', STOP_AFTER: '8' } },
];
export const WEBAPP_VARIANTS: readonly WebappVariant[] = Object.freeze(variants);

export type WebappDocker = Pick<Dockerode, 'getImage' | 'createContainer'>;

const statusCode = (err: unknown): number | undefined => (err as { statusCode?: number } | undefined)?.statusCode;

async function imageId(docker: WebappDocker, ref: string): Promise<string | undefined> {
  try {
    return (await docker.getImage(ref).inspect()).Id;
  } catch (err) {
    if (statusCode(err) === 404) return undefined;
    throw err;
  }
}

/** The Dockerfile-style changes that make the committed image run the app. */
export function webappChanges(v: WebappVariant): string[] {
  const env = { PORT: String(WEBAPP_PORT), ...v.env };
  return [
    ...Object.entries(env).map(([k, val]) => `ENV ${k}=${val}`),
    'ENTRYPOINT ["/app/start.sh"]',
    'CMD []',
    `EXPOSE ${WEBAPP_PORT}/tcp`,
    `LABEL io.nodelet.image=webapp-${v.tag}`,
  ];
}

/** A tar with /app/start.sh and /www/health, the files the app adds to busybox. */
async function appTar(exec: Exec): Promise<{ tar: Buffer; cleanup: () => void }> {
  const work = mkdtempSync(path.join(tmpdir(), 'nodelet-webapp-'));
  const root = path.join(work, 'root');
  mkdirSync(path.join(root, 'app'), { recursive: true });
  mkdirSync(path.join(root, 'www'), { recursive: true });
  writeFileSync(path.join(root, 'app', 'start.sh'), WEBAPP_SCRIPT);
  chmodSync(path.join(root, 'app', 'start.sh'), 0o755);
  writeFileSync(path.join(root, 'www', 'health'), 'OK\n');
  const tarFile = path.join(work, 'app.tar');
  await exec('tar', ['--numeric-owner', '--owner=0', '--group=0', '-C', root, '-cf', tarFile, '.']);
  return { tar: readFileSync(tarFile), cleanup: () => rmSync(work, { recursive: true, force: true }) };
}

/**
 * Makes every variant present in `docker` (once): a container of the busybox
 * image gets the app's files and is committed with the variant's config.
 * The busybox image must already be there (ensureBusyboxImage). Returns the
 * image names.
 */
export async function ensureWebappImages(docker: WebappDocker, opts: { exec?: Exec } = {}): Promise<string[]> {
  const exec = opts.exec ?? realExec;
  const base = await imageId(docker, BUSYBOX_IMAGE);
  if (!base) throw new NodeletError('CRI_IMAGE_BUILD_FAILED', `webapp: base image ${BUSYBOX_IMAGE} is not present`);
  let files: { tar: Buffer; cleanup: () => void } | undefined;
  const names: string[] = [];
  try {
    for (const v of WEBAPP_VARIANTS) {
      const changes = webappChanges(v);
      const hash = createHash('sha256').update(`webapp/${LAYOUT_VERSION}\0${base}\0${WEBAPP_SCRIPT}\0${changes.join('\n')}`).digest('hex');
      const hashTag = `h-${hash.slice(0, 16)}`;
      const name = webappImage(v.tag);
      names.push(name);
      const cached = await imageId(docker, `${WEBAPP_REPO}:${hashTag}`);
      if (cached) {
        if ((await imageId(docker, name)) !== cached) await docker.getImage(cached).tag({ repo: WEBAPP_REPO, tag: v.tag });
        continue;
      }
      files ??= await appTar(exec);
      const c = await docker.createContainer({ Image: BUSYBOX_IMAGE, Cmd: ['true'], Labels: { 'io.nodelet.build': 'webapp' } });
      try {
        await c.putArchive(files.tar, { path: '/' });
        await c.commit({ repo: WEBAPP_REPO, tag: hashTag, changes });
      } finally {
        await c.remove({ force: true }).catch(() => {});
      }
      const id = await imageId(docker, `${WEBAPP_REPO}:${hashTag}`);
      if (!id) throw new NodeletError('CRI_IMAGE_BUILD_FAILED', `webapp ${name}: image not present after commit`);
      await docker.getImage(id).tag({ repo: WEBAPP_REPO, tag: v.tag });
    }
  } catch (err) {
    if (err instanceof NodeletError) throw err;
    throw new NodeletError('CRI_IMAGE_BUILD_FAILED', `webapp images: ${describeError(err)}`, { cause: err });
  } finally {
    files?.cleanup();
  }
  return names;
}
