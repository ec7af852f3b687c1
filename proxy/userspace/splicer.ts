// The userspace proxy's zero-copy relay: splice/splice.c, built by
// `make deps` (splice/build.sh) into splice/splice.node. Without it
// (no compiler, a platform other than Linux) the proxy copies bytes in JS,
// at about half the throughput; the proxier logs which one it uses.
import { createRequire } from 'node:module';
import type net from 'node:net';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { describeError } from '../../lib/errors.ts';

/** The native relay's interface (see splice.c). */
export interface Splicer {
  /** Relays between the two sockets' fds until both directions end; returns an id for abort. */
  start(fdA: number, fdB: number, done: (errno: number, bytesAtoB: number, bytesBtoA: number) => void): number;
  /** Ends a relay at once (done then gets ECANCELED); an unknown or ended id is ignored. */
  abort(id: number): void;
}

export const SPLICER_PATH = fileURLToPath(new URL('./splice/splice.node', import.meta.url));

/** The errno the relay reports for a pair ended by abort(). */
export const ECANCELED = os.constants.errno.ECANCELED;

export type SplicerLoad = { splicer: Splicer; error?: undefined } | { splicer?: undefined; error: string };

const loaded = new Map<string, SplicerLoad>();

/** Loads the native relay once per path; says why when it cannot. */
export function loadSplicer(file = SPLICER_PATH): SplicerLoad {
  let r = loaded.get(file);
  if (!r) {
    try {
      const m = createRequire(import.meta.url)(file) as Partial<Splicer>;
      if (typeof m.start !== 'function' || typeof m.abort !== 'function') throw new Error('no start/abort exports');
      r = { splicer: m as Splicer };
    } catch (err) {
      r = { error: `${file}: ${describeError(err)}` };
    }
    loaded.set(file, r);
  }
  return r;
}

/**
 * A connected socket's file descriptor. net.Socket has no public accessor;
 * its libuv handle's fd has been stable since Node 0.x (as libraries that
 * pass sockets to native code use it). undefined when there is none.
 */
export function socketFd(s: net.Socket): number | undefined {
  const fd = (s as unknown as { _handle?: { fd?: unknown } })._handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : undefined;
}
