import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { appendFileSync, cpSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { compileCacheDir, DAEMON_ENTRY_MODULES, daemonEnv, warmCompileCache } from '../../lib/compilecache.ts';

const root = path.resolve(import.meta.dirname, '../..');

/** Imports the daemons' modules in a fresh Node with this cache; says whether it loaded the TypeScript stripper. */
function loadsStripper(cacheDir: string, tree = root): boolean {
  const urls = DAEMON_ENTRY_MODULES.map((m) => pathToFileURL(path.join(tree, m)).href);
  const script = `for (const u of ${JSON.stringify(urls)}) await import(u);
    process.stdout.write(String(process.moduleLoadList.some((m) => m.includes('internal/deps/amaro'))));`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { env: { ...process.env, NODE_COMPILE_CACHE: cacheDir }, encoding: 'utf8' });
  expect(r.status, r.stderr).to.equal(0);
  expect(r.stdout).to.be.oneOf(['true', 'false']);
  return r.stdout === 'true';
}

describe('compile cache (lib/compilecache.ts)', function () {
  this.timeout(60_000);
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'nodelet-cc-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('a daemon started after warming loads no TypeScript stripper; without it, it does', () => {
    const cache = path.join(dir, 'cache');
    expect(loadsStripper(path.join(dir, 'cold'))).to.equal(true);
    expect(warmCompileCache(root, { ...process.env, NODE_COMPILE_CACHE: cache })).to.equal(undefined);
    expect(loadsStripper(cache)).to.equal(false);
  });

  it('a changed file is stripped again, not run from the cache', () => {
    const tree = path.join(dir, 'tree');
    for (const d of ['cmd', 'agent', 'cri', 'proxy', 'lib', 'cluster']) cpSync(path.join(root, d), path.join(tree, d), { recursive: true });
    cpSync(path.join(root, 'package.json'), path.join(tree, 'package.json'));
    symlinkSync(path.join(root, 'node_modules'), path.join(tree, 'node_modules'));
    const cache = path.join(dir, 'cache');
    expect(warmCompileCache(tree, { ...process.env, NODE_COMPILE_CACHE: cache })).to.equal(undefined);
    expect(loadsStripper(cache, tree)).to.equal(false);
    // lib/errors.ts: imported by cmd/nodelet.ts itself.
    appendFileSync(path.join(tree, 'lib', 'errors.ts'), "export const CHANGED: string = 'changed';\n");
    expect(loadsStripper(cache, tree)).to.equal(true);
    const r = spawnSync(process.execPath, ['--input-type=module', '-e',
      `const m = await import(${JSON.stringify(pathToFileURL(path.join(tree, 'lib', 'errors.ts')).href)}); process.stdout.write(m.CHANGED);`],
    { env: { ...process.env, NODE_COMPILE_CACHE: cache }, encoding: 'utf8' });
    expect(r.stdout).to.equal('changed');
  });

  it('says why when the cache cannot be made, and the daemon env keeps an explicit directory', () => {
    const file = path.join(dir, 'file');
    writeFileSync(file, 'x');
    expect(warmCompileCache(root, { ...process.env, NODE_COMPILE_CACHE: path.join(file, 'sub') })).to.match(/cannot create .*file\/sub/);
    expect(daemonEnv({ NODE_COMPILE_CACHE: '/var/cache/nodelet/compile-cache', PATH: '/bin' })).to.deep.equal({ NODE_COMPILE_CACHE: '/var/cache/nodelet/compile-cache', PATH: '/bin' });
    expect(compileCacheDir({})).to.equal(path.join(root, '.nodelet', 'compile-cache'));
  });
});
