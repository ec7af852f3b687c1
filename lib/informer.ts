// A list/watch informer with one owner loop, as client-go's reflector + store:
// list, then watch from the list's resourceVersion; a watch that ends normally
// is resumed from the last seen resourceVersion; an expired one (410) or any
// error relists with backoff, and the relist is diffed against the store so
// handlers see the adds, updates and deletes they missed. A watchdog restarts
// a watch that has been silent too long (client-node 1.x watches could stall
// without an error; we do not trust any stream to end itself).
import type { KubernetesObject } from '@kubernetes/client-node';
import { Backoff } from './backoff.ts';
import type { Clock } from './clock.ts';
import { describeError, errorCode, NodeletError } from './errors.ts';
import type { KubeClient } from './kube/client.ts';
import { apiStatus } from './kube/errors.ts';
import type { Logger } from './log.ts';

export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK';
export interface WatchEvent<T> {
  type: WatchEventType;
  object: T;
}

export interface ListWatch<T> {
  list(signal: AbortSignal): Promise<{ items: T[]; resourceVersion: string }>;
  /** Streams events after resourceVersion until the server ends the watch (resolves) or signal aborts; a 410 Gone (expired RV, also an ERROR event with code 410) throws NodeletError('WATCH_EXPIRED'). */
  watch(resourceVersion: string, onEvent: (e: WatchEvent<T>) => void, signal: AbortSignal): Promise<void>;
}

export interface InformerHandler<T> {
  onAdd?(obj: T): void;
  onUpdate?(oldObj: T, obj: T): void;
  onDelete?(obj: T): void;
}

export interface InformerOptions<T> {
  name: string;
  listWatch: ListWatch<T>;
  clock: Clock;
  log: Logger;
  /** restart a watch that delivered nothing (not even a bookmark) for this long; default 5 min */
  watchdogMs?: number;
  /** Applied to every object before it is stored or handed on (client-go's SetTransform), e.g. stripManagedFields. */
  transform?: (obj: T) => T;
}

/**
 * Drops metadata.managedFields, which no node component reads and which is
 * often a third of an object (upstream kube-proxy strips them too).
 */
export function stripManagedFields<T extends KubernetesObject>(obj: T): T {
  if (obj.metadata?.managedFields !== undefined) delete obj.metadata.managedFields;
  return obj;
}

const DEFAULT_WATCHDOG_MS = 5 * 60_000;

/** The store key: "ns/name", or "name" for cluster-scoped objects. */
export function objectKey(obj: KubernetesObject): string {
  const ns = obj.metadata?.namespace;
  const name = obj.metadata?.name ?? '';
  return ns ? `${ns}/${name}` : name;
}

export class Informer<T extends KubernetesObject> {
  private readonly name: string;
  private readonly lw: ListWatch<T>;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly watchdogMs: number;
  private readonly transform: ((obj: T) => T) | undefined;
  private readonly handlers: InformerHandler<T>[] = [];
  private readonly store = new Map<string, T>();
  private synced = false;
  private started = false;
  private syncWaiters: Array<() => void> = [];

  constructor(opts: InformerOptions<T>) {
    this.name = opts.name;
    this.lw = opts.listWatch;
    this.clock = opts.clock;
    this.log = opts.log;
    this.watchdogMs = opts.watchdogMs ?? DEFAULT_WATCHDOG_MS;
    this.transform = opts.transform;
  }

  /** Handlers added before start(); later ones miss the initial adds. */
  addHandler(h: InformerHandler<T>): void {
    this.handlers.push(h);
  }

  start(signal: AbortSignal): void {
    if (this.started) throw new NodeletError('INFORMER_STARTED', `informer ${this.name}: already started`);
    this.started = true;
    void this.run(signal);
  }

  hasSynced(): boolean {
    return this.synced;
  }

  /** Resolves once the first list has been delivered; rejects if signal aborts first. */
  waitForSync(signal?: AbortSignal): Promise<void> {
    if (this.synced) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const onAbort = () => {
        this.syncWaiters = this.syncWaiters.filter((w) => w !== done);
        reject(new NodeletError('ABORTED', `informer ${this.name}: stopped before it synced`));
      };
      const done = () => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      };
      if (signal?.aborted) return onAbort();
      signal?.addEventListener('abort', onAbort, { once: true });
      this.syncWaiters.push(done);
    });
  }

  list(): T[] {
    return [...this.store.values()];
  }

  get(namespace: string, name: string): T | undefined {
    return this.store.get(namespace ? `${namespace}/${name}` : name);
  }

  /** The owner loop: the only writer of the store. */
  private async run(signal: AbortSignal): Promise<void> {
    const backoff = new Backoff(1000, 30_000);
    let rv: string | undefined;
    while (!signal.aborted) {
      try {
        if (rv === undefined) {
          rv = await this.relist(signal);
          if (rv === undefined) break;
        }
        const started = this.clock.now();
        const w = await this.watchOnce(rv, signal);
        rv = w.rv;
        if (w.events === 0 && this.clock.now() - started < 1000) {
          // Ended at once with nothing: do not spin on a server (or proxy) that closes every watch.
          await this.clock.sleep(backoff.next(), signal);
        } else {
          backoff.reset();
        }
      } catch (err) {
        if (signal.aborted) break;
        rv = undefined;
        const delay = backoff.next();
        if (errorCode(err) === 'WATCH_EXPIRED') {
          this.log.info('informer watch expired; relisting', { informer: this.name, delayMs: delay });
        } else {
          this.log.warn('informer list/watch failed; relisting', { informer: this.name, error: describeError(err), delayMs: delay });
        }
        await this.clock.sleep(delay, signal);
      }
    }
    this.log.debug('informer stopped', { informer: this.name });
  }

  /**
   * Lists and replaces the store; the resourceVersion to watch from, or
   * undefined when stopped meanwhile. Its own call, so that the list (as
   * received, before the transform) is garbage once it returns: a local of
   * run() stays in its suspended frame for the whole watch that follows.
   */
  private async relist(signal: AbortSignal): Promise<string | undefined> {
    const res = await this.lw.list(signal);
    if (signal.aborted) return undefined;
    this.replace(this.transform ? res.items.map(this.transform) : res.items);
    this.log.debug('informer listed', { informer: this.name, items: res.items.length, resourceVersion: res.resourceVersion });
    if (!this.synced) this.markSynced();
    return res.resourceVersion;
  }

  /** One watch from rv with a watchdog; returns the last resourceVersion seen and how many events came. */
  private async watchOnce(from: string, signal: AbortSignal): Promise<{ rv: string; events: number }> {
    let rv = from;
    let events = 0;
    let lastActivity = this.clock.now();
    const ctl = new AbortController();
    const onParentAbort = () => ctl.abort();
    signal.addEventListener('abort', onParentAbort, { once: true });
    let silent = false;
    const watchdog = (async () => {
      while (!ctl.signal.aborted) {
        const wait = lastActivity + this.watchdogMs - this.clock.now();
        if (wait <= 0) {
          silent = true;
          this.log.warn('informer watch silent; restarting it', { informer: this.name, silentMs: this.watchdogMs });
          ctl.abort();
          return;
        }
        await this.clock.sleep(wait, ctl.signal);
      }
    })();
    try {
      await this.lw.watch(
        from,
        (e) => {
          if (ctl.signal.aborted) return; // late events of a watch we gave up on
          lastActivity = this.clock.now();
          events++;
          const next = e.object?.metadata?.resourceVersion;
          this.apply(this.transform && e.type !== 'BOOKMARK' && e.object ? { type: e.type, object: this.transform(e.object) } : e);
          if (next) rv = next;
        },
        ctl.signal,
      );
    } catch (err) {
      // A watchdog abort is a restart, not an error; anything else goes up.
      if (!silent || signal.aborted) throw err;
    } finally {
      signal.removeEventListener('abort', onParentAbort);
      ctl.abort();
      await watchdog;
    }
    return { rv, events };
  }

  private apply(e: WatchEvent<T>): void {
    if (e.type === 'BOOKMARK') return;
    const key = objectKey(e.object);
    const old = this.store.get(key);
    if (e.type === 'DELETED') {
      this.store.delete(key);
      this.call('onDelete', (h) => h.onDelete?.(e.object));
      return;
    }
    this.store.set(key, e.object);
    if (old) this.call('onUpdate', (h) => h.onUpdate?.(old, e.object));
    else this.call('onAdd', (h) => h.onAdd?.(e.object));
  }

  /** A relist: the store becomes `items`; handlers see only what changed. */
  private replace(items: T[]): void {
    const seen = new Set<string>();
    for (const obj of items) {
      const key = objectKey(obj);
      seen.add(key);
      const old = this.store.get(key);
      this.store.set(key, obj);
      if (!old) this.call('onAdd', (h) => h.onAdd?.(obj));
      else if (old.metadata?.resourceVersion !== obj.metadata?.resourceVersion) this.call('onUpdate', (h) => h.onUpdate?.(old, obj));
    }
    for (const [key, old] of [...this.store]) {
      if (seen.has(key)) continue;
      this.store.delete(key);
      this.call('onDelete', (h) => h.onDelete?.(old));
    }
  }

  private markSynced(): void {
    this.synced = true;
    const waiters = this.syncWaiters;
    this.syncWaiters = [];
    for (const w of waiters) w();
    this.log.info('informer synced', { informer: this.name, items: this.store.size });
  }

  private call(what: string, fn: (h: InformerHandler<T>) => void): void {
    for (const h of this.handlers) {
      try {
        fn(h);
      } catch (err) {
        this.log.error('informer handler failed', { informer: this.name, handler: what, error: describeError(err) });
      }
    }
  }
}

// ---- the real ListWatch, over the API server ----

export interface KubeListWatchOptions {
  fieldSelector?: string;
  labelSelector?: string;
  /** Timeout of a list request (default 60 s). */
  requestTimeoutMs?: number;
}

/**
 * List and watch `path` (e.g. '/api/v1/services') through `client`. Watches
 * ask for bookmarks and a server-side timeout of 5..10 min (as client-go's
 * reflector), so they end normally and resume.
 */
export function kubeListWatch<T>(client: KubeClient, path: string, opts: KubeListWatchOptions = {}): ListWatch<T> {
  const requestTimeoutMs = opts.requestTimeoutMs ?? 60_000;
  const selectors = { fieldSelector: opts.fieldSelector || undefined, labelSelector: opts.labelSelector || undefined };

  return {
    async list(signal) {
      const body = await client.request<{ items?: T[] | null; metadata?: { resourceVersion?: string } }>(`list ${path}`, 'GET', path, {
        query: selectors,
        timeoutMs: requestTimeoutMs,
        signal,
      });
      return { items: body?.items ?? [], resourceVersion: body?.metadata?.resourceVersion ?? '' };
    },

    async watch(resourceVersion, onEvent, signal) {
      const timeoutSeconds = 300 + Math.floor(Math.random() * 300);
      let res;
      try {
        res = await client.stream(`watch ${path}`, path, {
          query: { ...selectors, watch: true, resourceVersion, allowWatchBookmarks: true, timeoutSeconds },
          signal,
        });
      } catch (err) {
        if (signal.aborted) return;
        if (apiStatus(err) === 410) throw new NodeletError('WATCH_EXPIRED', `watch ${path}: resourceVersion ${resourceVersion} is too old`);
        throw err;
      }
      const decoder = new TextDecoder();
      let buf = '';
      const line = (l: string) => {
        if (!l.trim()) return;
        const e = JSON.parse(l) as { type: string; object: unknown };
        if (e.type === 'ERROR') {
          const st = e.object as { code?: number; message?: string };
          if (st.code === 410) throw new NodeletError('WATCH_EXPIRED', `watch ${path}: ${st.message ?? 'expired'}`);
          throw new NodeletError('API_ERROR', `watch ${path}: error event ${st.code ?? ''}: ${st.message ?? ''}`);
        }
        if (e.type === 'ADDED' || e.type === 'MODIFIED' || e.type === 'DELETED' || e.type === 'BOOKMARK') {
          onEvent({ type: e.type, object: e.object as T });
        }
      };
      try {
        for await (const chunk of res) {
          buf += decoder.decode(chunk as Uint8Array, { stream: true });
          let i;
          while ((i = buf.indexOf('\n')) >= 0) {
            const l = buf.slice(0, i);
            buf = buf.slice(i + 1);
            line(l);
          }
        }
        line(buf);
      } catch (err) {
        if (signal.aborted) return;
        if (err instanceof NodeletError) throw err;
        throw new NodeletError('API_ERROR', `watch ${path}: ${describeError(err)}`, { cause: err });
      } finally {
        res.destroy();
      }
    },
  };
}
