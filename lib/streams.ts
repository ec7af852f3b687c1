// Small helpers for Node streams.
import type { Writable } from 'node:stream';

/** Resolves when the stream can take more ('drain'), or will never take more ('close'). */
export function drained(stream: Writable): Promise<void> {
  return new Promise<void>((resolve) => {
    const done = () => {
      stream.off('drain', done);
      stream.off('close', done);
      resolve();
    };
    stream.on('drain', done);
    stream.on('close', done);
  });
}
