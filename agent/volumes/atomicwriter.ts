// Upstream's AtomicWriter (pkg/volume/util/atomic_writer.go): the files of a
// configMap, secret, downwardAPI or projected volume live in a timestamped
// directory `..<ts>`; the `..data` symlink points at the current one and is
// swapped with one rename(2), so a reader sees the whole old set or the whole
// new set, never a mix. What the user sees are symlinks `name -> ..data/name`.
// Nothing is rewritten when contents and modes are unchanged.
import { chmod, chown, lstat, mkdir, mkdtemp, readdir, readFile, readlink, rename, rm, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Clock } from '../../lib/clock.ts';

export const DATA_DIR_NAME = '..data';
const DATA_DIR_TMP_NAME = '..data_tmp';
const MAX_PATH_LENGTH = 4096;
const MAX_FILE_NAME_LENGTH = 255;

export interface FileProjection {
  data: Buffer;
  /** Permission bits, e.g. 0o644. */
  mode: number;
  /** Owner to chown the file to (a projected token for a pod with runAsUser). */
  fsUser?: number;
  /** Group to chown the file to (the pod's fsGroup). */
  fsGroup?: number;
}

/** Relative path inside the volume -> file. */
export type Payload = Map<string, FileProjection>;

/** Upstream's validatePath; returns the error text or undefined. */
export function validatePayloadPath(p: string): string | undefined {
  if (p === '') return `invalid path: must not be empty: ${JSON.stringify(p)}`;
  if (p.startsWith('/')) return `invalid path: must be relative path: ${p}`;
  if (p.length > MAX_PATH_LENGTH) return `invalid path: must be less than or equal to ${MAX_PATH_LENGTH} characters`;
  const items = p.split('/');
  for (const item of items) {
    if (item === '..') return `invalid path: must not contain '..': ${p}`;
    if (item.length > MAX_FILE_NAME_LENGTH) return `invalid path: filenames must be less than or equal to ${MAX_FILE_NAME_LENGTH} characters`;
  }
  const first = items[0] ?? '';
  if (first.startsWith('..') && first.length > 2) return `invalid path: must not start with '..': ${p}`;
  return undefined;
}

/** Validated payload with cleaned paths ("a//b/" -> "a/b"). Throws on a bad path. */
export function cleanPayload(payload: Payload): Payload {
  const out: Payload = new Map();
  for (const [p, f] of payload) {
    const bad = validatePayloadPath(p);
    if (bad) throw new Error(bad);
    out.set(path.posix.normalize(p).replace(/\/+$/, ''), f);
  }
  return out;
}

/** "..2006_01_02_15_04_05." in UTC, Go's layout as upstream names the dirs. */
export function timestampPrefix(ms: number): string {
  const d = new Date(ms);
  const p = (n: number) => String(n).padStart(2, '0');
  return `..${d.getUTCFullYear()}_${p(d.getUTCMonth() + 1)}_${p(d.getUTCDate())}_${p(d.getUTCHours())}_${p(d.getUTCMinutes())}_${p(d.getUTCSeconds())}.`;
}

/** Every relative path (files and directories) under dir; empty when dir is missing. */
async function walk(dir: string, rel = ''): Promise<string[]> {
  let entries;
  try {
    entries = await readdir(path.join(dir, rel), { withFileTypes: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const out: string[] = [];
  for (const e of entries) {
    const r = rel ? `${rel}/${e.name}` : e.name;
    out.push(r);
    if (e.isDirectory()) out.push(...(await walk(dir, r)));
  }
  return out;
}

function parentsOf(p: string): string[] {
  const parts = p.split('/');
  const out: string[] = [];
  for (let i = 1; i < parts.length; i++) out.push(parts.slice(0, i).join('/'));
  return out;
}

export class AtomicWriter {
  private readonly targetDir: string;
  private readonly clock: Clock;

  constructor(targetDir: string, clock: Clock) {
    this.targetDir = targetDir;
    this.clock = clock;
  }

  /**
   * Makes the volume hold exactly `payload`. Returns whether a new data
   * directory was written. `dirGroup` (the pod's fsGroup) owns the new directories.
   */
  async write(payload: Payload, dirGroup?: number): Promise<boolean> {
    const clean = cleanPayload(payload);
    const dataLink = path.join(this.targetDir, DATA_DIR_NAME);
    let oldTsName = '';
    try {
      oldTsName = await readlink(dataLink);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    const oldTsPath = oldTsName ? path.join(this.targetDir, oldTsName) : '';

    const wanted = new Set<string>();
    for (const p of clean.keys()) {
      wanted.add(p);
      for (const d of parentsOf(p)) wanted.add(d);
    }
    const pathsToRemove = oldTsPath ? (await walk(oldTsPath)).filter((p) => !wanted.has(p)) : [];

    if (oldTsPath && pathsToRemove.length === 0 && !(await this.differs(clean, oldTsPath))) {
      // Up to date; the user-visible links may still have been removed by hand.
      await this.createUserVisibleFiles(clean);
      return false;
    }

    const tsDir = await mkdtemp(path.join(this.targetDir, timestampPrefix(this.clock.now())));
    // 0755 so group and other can traverse, whatever the umask.
    await chmod(tsDir, 0o755);
    try {
      await this.writePayload(clean, tsDir, dirGroup);
      const tmpLink = path.join(this.targetDir, DATA_DIR_TMP_NAME);
      await rm(tmpLink, { force: true });
      await symlink(path.basename(tsDir), tmpLink);
      await rename(tmpLink, dataLink);
    } catch (err) {
      await rm(tsDir, { recursive: true, force: true });
      throw err;
    }

    await this.createUserVisibleFiles(clean);
    const topLevel = new Set([...clean.keys()].map((p) => p.split('/')[0]!));
    for (const p of pathsToRemove) {
      if (p.includes('/') || topLevel.has(p)) continue;
      await rm(path.join(this.targetDir, p), { force: true });
    }
    // The old data dir, and any left behind by a write that crashed midway.
    const current = path.basename(tsDir);
    for (const name of await readdir(this.targetDir)) {
      if (name.startsWith('..') && name !== DATA_DIR_NAME && name !== current && /^\.\.\d{4}_/.test(name)) {
        await rm(path.join(this.targetDir, name), { recursive: true, force: true });
      }
    }
    return true;
  }

  private async differs(payload: Payload, oldTsPath: string): Promise<boolean> {
    for (const [p, f] of payload) {
      const file = path.join(oldTsPath, p);
      let st;
      try {
        st = await lstat(file);
      } catch {
        return true;
      }
      if (!st.isFile() || (st.mode & 0o7777) !== f.mode) return true;
      if (f.fsUser !== undefined && st.uid !== f.fsUser) return true;
      if (f.fsGroup !== undefined && st.gid !== f.fsGroup) return true;
      if (!(await readFile(file)).equals(f.data)) return true;
    }
    return false;
  }

  private async writePayload(payload: Payload, tsDir: string, dirGroup: number | undefined): Promise<void> {
    if (dirGroup !== undefined) await chown(tsDir, -1, dirGroup);
    for (const [p, f] of payload) {
      const file = path.join(tsDir, p);
      const parent = path.dirname(file);
      if (parent !== tsDir) {
        await mkdir(parent, { recursive: true, mode: 0o755 });
        for (const d of parentsOf(p)) {
          await chmod(path.join(tsDir, d), 0o755);
          if (dirGroup !== undefined) await chown(path.join(tsDir, d), -1, dirGroup);
        }
      }
      await writeFile(file, f.data, { mode: f.mode });
      // writeFile's mode is filtered by the umask; the projection's mode is not.
      await chmod(file, f.mode);
      if (f.fsUser !== undefined || f.fsGroup !== undefined) await chown(file, f.fsUser ?? -1, f.fsGroup ?? -1);
    }
  }

  private async createUserVisibleFiles(payload: Payload): Promise<void> {
    const topLevel = new Set([...payload.keys()].map((p) => p.split('/')[0]!));
    for (const name of topLevel) {
      const visible = path.join(this.targetDir, name);
      try {
        await lstat(visible);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
        await symlink(path.join(DATA_DIR_NAME, name), visible);
      }
    }
  }
}

/** The pod's fsGroup applied as upstream's SetVolumeOwnership would: group-owned and group-readable. */
export function withFsGroup(payload: Payload, fsGroup: number | undefined): Payload {
  if (fsGroup === undefined) return payload;
  return new Map([...payload].map(([p, f]) => [p, { ...f, mode: f.mode | 0o440, fsGroup }]));
}
