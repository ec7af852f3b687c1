// Docker's events stream as a hint for reacting quickly (an early PLEG
// relist), never as the source of truth: JSON objects are split on newlines
// (one may span chunks), a broken stream is reopened with `since` = the last
// event seen, with backoff, and every (re)connect asks the caller to relist,
// because events may have been missed in between.
import type Dockerode from 'dockerode';
import { Backoff } from '../../lib/backoff.ts';
import { type Clock, realClock } from '../../lib/clock.ts';
import { describeError } from '../../lib/errors.ts';
import { nullLogger, type Logger } from '../../lib/log.ts';
import { LABEL_MANAGED, LABEL_SANDBOX_ID, LABEL_TYPE } from '../labels.ts';

export type EventsDocker = Pick<Dockerode, 'getEvents'>;

export interface ContainerEvent {
  /** Docker action: create, start, die, oom, destroy, ... */
  action: string;
  containerId: string;
  /** 'podsandbox' or 'container'. */
  type: string;
  /** The sandbox of an app container ('' for a sandbox). */
  podSandboxId: string;
  /** Nanoseconds since the epoch. */
  timeNano: number;
}

export interface WatchOptions {
  signal: AbortSignal;
  /** Called after each (re)connect: events may have been missed, relist now. */
  onRelist: () => void;
  log?: Logger;
  clock?: Clock;
  backoff?: Backoff;
}

interface RawEvent {
  Type?: string;
  Action?: string;
  status?: string;
  id?: string;
  Actor?: { ID?: string; Attributes?: Record<string, string> };
  time?: number;
  timeNano?: number;
}

/** Parses one event line; undefined for lines that are not a managed container's event. */
export function parseEvent(line: string): ContainerEvent | undefined {
  let e: RawEvent;
  try {
    e = JSON.parse(line) as RawEvent;
  } catch {
    return undefined;
  }
  const attrs = e.Actor?.Attributes ?? {};
  if ((e.Type ?? 'container') !== 'container' || attrs[LABEL_MANAGED] !== 'true') return undefined;
  return {
    action: (e.Action ?? e.status ?? '').split(':')[0]!,
    containerId: e.Actor?.ID ?? e.id ?? '',
    type: attrs[LABEL_TYPE] ?? '',
    podSandboxId: attrs[LABEL_SANDBOX_ID] ?? '',
    timeNano: e.timeNano ?? (e.time ?? 0) * 1e9,
  };
}

/** Follows managed containers' events until signal aborts. Resolves then. */
export async function watchContainerEvents(
  docker: EventsDocker,
  onEvent: (e: ContainerEvent) => void,
  opts: WatchOptions,
): Promise<void> {
  const log = opts.log ?? nullLogger();
  const clock = opts.clock ?? realClock;
  const backoff = opts.backoff ?? new Backoff(500, 30_000);
  let since: number | undefined;
  while (!opts.signal.aborted) {
    try {
      const query: Record<string, unknown> = { filters: { type: ['container'], label: [`${LABEL_MANAGED}=true`] } };
      if (since !== undefined) query.since = `${Math.floor(since / 1e9)}.${String(since % 1e9).padStart(9, '0')}`;
      const stream = (await docker.getEvents(query)) as NodeJS.ReadableStream;
      opts.onRelist();
      await new Promise<void>((resolve) => {
        let buf = '';
        const abort = () => (stream as unknown as { destroy?: () => void }).destroy?.();
        opts.signal.addEventListener('abort', abort, { once: true });
        stream.on('data', (b: Buffer) => {
          backoff.reset();
          buf += b.toString();
          let i;
          while ((i = buf.indexOf('\n')) >= 0) {
            const ev = parseEvent(buf.slice(0, i));
            buf = buf.slice(i + 1);
            if (ev) {
              since = ev.timeNano;
              onEvent(ev);
            }
          }
        });
        const done = () => {
          opts.signal.removeEventListener('abort', abort);
          resolve();
        };
        stream.on('end', done);
        stream.on('close', done);
        stream.on('error', (err: Error) => {
          log.debug('docker events stream failed', { err: describeError(err) });
          done();
        });
      });
    } catch (err) {
      log.warn('cannot open docker events', { err: describeError(err) });
    }
    if (!opts.signal.aborted) await clock.sleep(backoff.next(), opts.signal);
  }
}
