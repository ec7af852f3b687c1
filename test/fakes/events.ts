// Fakes for events: a recorder that keeps what it was told (for tests of the
// code that records events), and an in-memory Events API (for the recorder's
// own tests) whose calls can be made to fail.
import type { CoreV1Event, V1ObjectReference } from '@kubernetes/client-node';
import type { EventRecorder, EventsApi, EventType } from '../../agent/events.ts';
import { ApiError, apiError } from '../../lib/kube/errors.ts';
import { mergePatch } from './nodeapi.ts';

export interface RecordedEvent {
  object: V1ObjectReference;
  type: EventType;
  reason: string;
  message: string;
}

export class FakeEventRecorder implements EventRecorder {
  readonly events: RecordedEvent[] = [];

  event(obj: V1ObjectReference, type: EventType, reason: string, message: string): void {
    this.events.push({ object: { ...obj }, type, reason, message });
  }

  /** The reasons in order, e.g. ['Pulled', 'Created', 'Started']. */
  reasons(): string[] {
    return this.events.map((e) => e.reason);
  }

  /** Events with this reason. */
  withReason(reason: string): RecordedEvent[] {
    return this.events.filter((e) => e.reason === reason);
  }

  clear(): void {
    this.events.length = 0;
  }
}

const _check: EventRecorder = new FakeEventRecorder();

type Method = 'create' | 'patch';

/** Events by "namespace/name"; create of an existing name is a 409, patch of a missing one a 404. */
export class FakeEventsApi implements EventsApi {
  readonly stored = new Map<string, CoreV1Event>();
  /** Every call as "method namespace/name", failed ones too. */
  readonly calls: string[] = [];
  readonly patches: Array<{ namespace: string; name: string; patch: object }> = [];
  /** Every call fails as if the API server were down (no HTTP status). */
  unreachable = false;
  /** While set, calls wait on it (a slow API server). */
  gate: Promise<void> | undefined;
  private readonly failures = new Map<Method, ApiError[]>();

  failNext(method: Method, err: ApiError = apiError(method, 500, 'injected failure')): void {
    const q = this.failures.get(method) ?? [];
    q.push(err);
    this.failures.set(method, q);
  }

  /** Events as stored, in creation order. */
  list(): CoreV1Event[] {
    return [...this.stored.values()].map((e) => structuredClone(e));
  }

  private async enter(method: Method, namespace: string, name: string): Promise<void> {
    this.calls.push(`${method} ${namespace}/${name}`);
    if (this.gate) await this.gate;
    if (this.unreachable) throw apiError(`${method} event`, undefined, 'connect ECONNREFUSED 127.0.0.1:6443');
    const err = this.failures.get(method)?.shift();
    if (err) throw err;
  }

  async create(namespace: string, event: CoreV1Event): Promise<void> {
    const name = event.metadata.name ?? '';
    await this.enter('create', namespace, name);
    const key = `${namespace}/${name}`;
    if (this.stored.has(key)) throw apiError(`create event ${key}`, 409, 'AlreadyExists');
    this.stored.set(key, structuredClone({ ...event, metadata: { ...event.metadata, namespace } }));
  }

  async patch(namespace: string, name: string, patch: object): Promise<void> {
    await this.enter('patch', namespace, name);
    const key = `${namespace}/${name}`;
    const cur = this.stored.get(key);
    if (!cur) throw apiError(`patch event ${key}`, 404, 'NotFound');
    this.patches.push({ namespace, name, patch: structuredClone(patch) });
    const merged = mergePatch(cur, patch) as CoreV1Event;
    const last = (patch as { lastTimestamp?: unknown }).lastTimestamp;
    if (typeof last === 'string') merged.lastTimestamp = new Date(last); // as the API would read it back
    this.stored.set(key, merged);
  }
}

const _checkApi: EventsApi = new FakeEventsApi();
