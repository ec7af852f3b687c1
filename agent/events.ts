// Kubernetes Events the kubelet reports about pods and its node (Scheduled is
// the scheduler's; Pulling, Created, Started, Killing, BackOff, ... are ours).
// Recording is fire-and-forget: event() queues and returns; one background
// writer posts core/v1 Events. As upstream's EventCorrelator (simplified), the
// same (object, type, reason, message) seen again within 10 minutes bumps
// `count` and `lastTimestamp` of the Event already written instead of
// creating another. The queue is bounded: with a slow or unreachable API
// server events are dropped (and repeats of a queued one are merged into it),
// never piled up in memory or waited for.
import type { CoreV1Event, V1ObjectReference, V1Pod } from '@kubernetes/client-node';
import type { Clock } from '../lib/clock.ts';
import { describeError } from '../lib/errors.ts';
import type { Logger } from '../lib/log.ts';
import { enc, type KubeClient, MERGE_PATCH } from '../lib/kube/client.ts';
import { apiStatus } from '../lib/kube/errors.ts';

export type EventType = 'Normal' | 'Warning';

export interface EventRecorder {
  /** Records an event about `obj` (see podRef, containerRef, nodeRef). Never throws, never waits. */
  event(obj: V1ObjectReference, type: EventType, reason: string, message: string): void;
}

// ---- references -------------------------------------------------------------

/** The reference to a pod, as upstream's ref.GetReference. */
export function podRef(pod: V1Pod): V1ObjectReference {
  const m = pod.metadata ?? {};
  const ref: V1ObjectReference = { kind: 'Pod', apiVersion: 'v1', name: m.name ?? '', namespace: m.namespace ?? 'default' };
  if (m.uid) ref.uid = m.uid;
  if (m.resourceVersion) ref.resourceVersion = m.resourceVersion;
  return ref;
}

/**
 * The reference to one container of a pod (upstream's GenerateContainerRef):
 * the pod's, with fieldPath spec.containers{name}, spec.initContainers{name}
 * or spec.ephemeralContainers{name}. A name the spec does not have is taken
 * as a regular container.
 */
export function containerRef(pod: V1Pod, containerName: string): V1ObjectReference {
  const spec = pod.spec;
  let field = 'spec.containers';
  if (!spec?.containers?.some((c) => c.name === containerName)) {
    if (spec?.initContainers?.some((c) => c.name === containerName)) field = 'spec.initContainers';
    else if (spec?.ephemeralContainers?.some((c) => c.name === containerName)) field = 'spec.ephemeralContainers';
  }
  return { ...podRef(pod), fieldPath: `${field}{${containerName}}` };
}

/**
 * The reference to the node. Upstream's kubelet uses the node name as the UID
 * (and kubectl describe node looks its events up that way).
 */
export function nodeRef(nodeName: string): V1ObjectReference {
  return { kind: 'Node', apiVersion: 'v1', name: nodeName, uid: nodeName, namespace: '' };
}

// ---- the API boundary ---------------------------------------------------------

/** The two Event calls the recorder makes. Errors are ApiErrors (nodeapi.ts) carrying the HTTP status. */
export interface EventsApi {
  create(namespace: string, event: CoreV1Event): Promise<void>;
  /** JSON merge patch of an existing Event. */
  patch(namespace: string, name: string, patch: object): Promise<void>;
}

export class KubeEventsApi implements EventsApi {
  private readonly c: KubeClient;

  constructor(client: KubeClient) {
    this.c = client;
  }

  async create(namespace: string, event: CoreV1Event): Promise<void> {
    await this.c.request(`create event ${namespace}/${event.metadata.name ?? ''}`, 'POST', `/api/v1/namespaces/${enc(namespace)}/events`, { body: event });
  }

  async patch(namespace: string, name: string, patch: object): Promise<void> {
    const path = `/api/v1/namespaces/${enc(namespace)}/events/${enc(name)}`;
    await this.c.request(`patch event ${namespace}/${name}`, 'PATCH', path, { body: patch, contentType: MERGE_PATCH });
  }
}

// ---- the recorder -------------------------------------------------------------

export const EVENT_DEDUPE_WINDOW_MS = 10 * 60 * 1000;
/** Upstream's queue length (the broadcaster's channel) and correlator cache size. */
export const EVENT_QUEUE_LIMIT = 1000;
export const EVENT_CACHE_LIMIT = 4096;

export interface KubeEventRecorderOptions {
  api: EventsApi;
  /** Source host and reporting instance. */
  nodeName: string;
  /** Source and reporting component (default kubelet; the proxy's are kube-proxy). */
  component?: string;
  clock: Clock;
  log: Logger;
  /** Distinct events waiting to be written; more are dropped. */
  queueLimit?: number;
  dedupeWindowMs?: number;
  cacheLimit?: number;
  /** Tries per write when the API server is unreachable or answers 429/5xx. */
  attempts?: number;
  retryDelayMs?: number;
}

interface Pending {
  key: string;
  ref: V1ObjectReference;
  type: EventType;
  reason: string;
  message: string;
  firstMs: number;
  lastMs: number;
  /** Occurrences merged into this entry while it waited. */
  times: number;
}

/** What was last written for a key (upstream's eventLog). */
interface Written {
  namespace: string;
  name: string;
  count: number;
  firstMs: number;
  lastMs: number;
}

/** The correlation key: everything but the timestamps and count (upstream's getEventKey). */
export function eventKey(ref: V1ObjectReference, type: string, reason: string, message: string): string {
  return JSON.stringify([ref.kind, ref.namespace, ref.name, ref.uid, ref.apiVersion, ref.fieldPath, type, reason, message]);
}

/** Upstream names an Event "<object>.<unix nanoseconds in hex>". */
function eventName(objName: string, ms: number, seq: number): string {
  const ns = BigInt(Math.floor(ms)) * 1_000_000n + BigInt(seq % 1_000_000);
  return `${objName}.${ns.toString(16)}`;
}

/** Whole seconds, as the API stores times. */
function rfc3339(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** Worth another try: no answer at all, throttled, or a server error. */
function retryable(err: unknown): boolean {
  const s = apiStatus(err);
  return s === undefined || s === 429 || s >= 500;
}

export class KubeEventRecorder implements EventRecorder {
  private readonly api: EventsApi;
  private readonly nodeName: string;
  private readonly component: string;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly queueLimit: number;
  private readonly windowMs: number;
  private readonly cacheLimit: number;
  private readonly attempts: number;
  private readonly retryDelayMs: number;
  /** Waiting events by key, oldest first. */
  private readonly queue = new Map<string, Pending>();
  private readonly written = new Map<string, Written>();
  private writer: Promise<void> | undefined;
  private readonly closed = new AbortController();
  private dropped = 0;
  private seq = 0;

  constructor(opts: KubeEventRecorderOptions) {
    this.api = opts.api;
    this.nodeName = opts.nodeName;
    this.component = opts.component ?? 'kubelet';
    this.clock = opts.clock;
    this.log = opts.log;
    this.queueLimit = opts.queueLimit ?? EVENT_QUEUE_LIMIT;
    this.windowMs = opts.dedupeWindowMs ?? EVENT_DEDUPE_WINDOW_MS;
    this.cacheLimit = opts.cacheLimit ?? EVENT_CACHE_LIMIT;
    this.attempts = Math.max(1, opts.attempts ?? 3);
    this.retryDelayMs = opts.retryDelayMs ?? 2000;
  }

  event(obj: V1ObjectReference, type: EventType, reason: string, message: string): void {
    if (this.closed.signal.aborted) return;
    const now = this.clock.now();
    const key = eventKey(obj, type, reason, message);
    const waiting = this.queue.get(key);
    if (waiting) {
      waiting.times++;
      waiting.lastMs = now;
    } else if (this.queue.size >= this.queueLimit) {
      if (this.dropped++ === 0) this.log.warn('event queue full; dropping events', { limit: this.queueLimit });
      return;
    } else {
      this.queue.set(key, { key, ref: { ...obj }, type, reason, message, firstMs: now, lastMs: now, times: 1 });
    }
    this.log.debug('event', { object: `${obj.kind}/${obj.namespace ? obj.namespace + '/' : ''}${obj.name}`, type, reason, message });
    this.startWriter();
  }

  /** One writer at a time; it restarts itself if something was queued while it was finishing. */
  private startWriter(): void {
    if (this.writer || this.queue.size === 0) return;
    this.writer = this.drain().finally(() => {
      this.writer = undefined;
      this.startWriter();
    });
  }

  /** Waits until every queued event has been written or given up on. */
  async flush(): Promise<void> {
    while (this.writer) await this.writer;
  }

  /** Stops recording: queued events are dropped, a retry wait ends, a write in flight finishes. */
  async close(): Promise<void> {
    this.closed.abort();
    this.queue.clear();
    await this.flush();
  }

  /** Events waiting to be written (distinct keys). */
  get queued(): number {
    return this.queue.size;
  }

  private async drain(): Promise<void> {
    for (;;) {
      const first = this.queue.values().next();
      if (first.done) break;
      const item = first.value;
      this.queue.delete(item.key);
      await this.write(item);
    }
    if (this.dropped > 0) {
      this.log.warn('events dropped while the queue was full', { dropped: this.dropped });
      this.dropped = 0;
    }
  }

  /** Creates the Event or bumps the one written before; retries transient failures; never throws. */
  private async write(item: Pending): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.writeOnce(item);
        return;
      } catch (err) {
        if (!retryable(err) || attempt >= this.attempts || this.closed.signal.aborted) {
          this.log.warn('could not record event', { reason: item.reason, object: item.ref.name, error: describeError(err) });
          return;
        }
        await this.clock.sleep(this.retryDelayMs * attempt, this.closed.signal);
      }
    }
  }

  private async writeOnce(item: Pending): Promise<void> {
    const prev = this.written.get(item.key);
    if (prev && item.firstMs - prev.lastMs <= this.windowMs) {
      const next: Written = { ...prev, count: prev.count + item.times, lastMs: item.lastMs };
      try {
        await this.api.patch(prev.namespace, prev.name, { count: next.count, lastTimestamp: rfc3339(next.lastMs) });
      } catch (err) {
        // Events expire (an hour by default): write it again under the same name.
        if (apiStatus(err) !== 404) throw err;
        await this.api.create(prev.namespace, this.build(item, next));
      }
      this.remember(item.key, next);
      return;
    }
    const namespace = item.ref.namespace || 'default';
    const w: Written = { namespace, name: eventName(item.ref.name ?? '', item.firstMs, this.seq++), count: item.times, firstMs: item.firstMs, lastMs: item.lastMs };
    await this.api.create(namespace, this.build(item, w));
    this.remember(item.key, w);
  }

  private build(item: Pending, w: Written): CoreV1Event {
    return {
      metadata: { name: w.name, namespace: w.namespace },
      involvedObject: item.ref,
      reason: item.reason,
      message: item.message,
      type: item.type,
      count: w.count,
      firstTimestamp: new Date(w.firstMs),
      lastTimestamp: new Date(w.lastMs),
      source: { component: this.component, host: this.nodeName },
      reportingComponent: this.component,
      reportingInstance: this.nodeName,
    };
  }

  /** Least recently written keys go first once the cache is full. */
  private remember(key: string, w: Written): void {
    this.written.delete(key);
    this.written.set(key, w);
    while (this.written.size > this.cacheLimit) {
      const oldest = this.written.keys().next();
      if (oldest.done) break;
      this.written.delete(oldest.value);
    }
  }
}
