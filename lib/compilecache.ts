// Node's on-disk compile cache for nodelet's long-running processes.
//
// Node 24 runs our .ts files by stripping their types with a WebAssembly
// parser (amaro) that it loads into the process on the first file it strips,
// and keeps for the life of the process. With NODE_COMPILE_CACHE set, Node
// keeps the stripped source (and V8's code cache) on disk, keyed by file name
// and checked against the file's content, so a process whose files are all
// cached never loads the parser: the service proxy idles at 78 MB RSS instead
// of 109 MB. A changed file is stripped again (and cached again), so the
// cache cannot run stale code. bin/nodelet and systemd/*.service set the
// variable too, which cannot import this.
import { spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ownRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** The modules a daemon loads: warming these means a daemon strips nothing. */
export const DAEMON_ENTRY_MODULES: readonly string[] = ['cmd/nodelet.ts', 'agent/main.ts', 'agent/join/main.ts', 'proxy/main.ts'];

/** NODE_COMPILE_CACHE when set, else .nodelet/compile-cache in this tree (ignored by git). */
export function compileCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.NODE_COMPILE_CACHE || path.join(ownRoot, '.nodelet', 'compile-cache');
}

/** The environment for a nodelet daemon: env with NODE_COMPILE_CACHE set. */
export function daemonEnv(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  return { ...env, NODE_COMPILE_CACHE: compileCacheDir(env) };
}

/**
 * Fills the cache for the daemons of the tree at root (this one by default) by
 * importing their entry modules in a child process, which writes the cache as
 * it exits. Returns an error message, or undefined when the cache is warm.
 */
export function warmCompileCache(root = ownRoot, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const dir = compileCacheDir(env);
  try {
    mkdirSync(dir, { recursive: true });
  } catch (err) {
    return `cannot create ${dir}: ${(err as Error).message}`;
  }
  const urls = DAEMON_ENTRY_MODULES.map((m) => pathToFileURL(path.join(root, m)).href);
  const script = `for (const u of ${JSON.stringify(urls)}) await import(u);`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
    env: { ...env, NODE_COMPILE_CACHE: dir },
    encoding: 'utf8',
    timeout: 60_000,
  });
  if (r.error) return `warming ${dir}: ${r.error.message}`;
  if (r.status !== 0) {
    // Node's error line, not the end of its stack.
    const lines = r.stderr.trim().split('\n');
    return `warming ${dir}: exit ${r.status ?? r.signal}: ${(lines.find((l) => /Error\b/.test(l)) ?? lines.at(-1) ?? '').slice(0, 500)}`;
  }
  return undefined;
}

// `node lib/compilecache.ts`: warms the cache named by NODE_COMPILE_CACHE (make install).
if (import.meta.main) {
  const cold = warmCompileCache();
  process.stdout.write(cold ? `compile cache: ${cold}\n` : `compile cache: ${compileCacheDir()} warm\n`);
  process.exitCode = cold ? 1 : 0;
}
