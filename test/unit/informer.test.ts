import { expect } from 'chai';
import type { KubernetesObject } from '@kubernetes/client-node';
import { NodeletError } from '../../lib/errors.ts';
import { Informer, objectKey, stripManagedFields, type ListWatch, type WatchEvent } from '../../lib/informer.ts';
import { nullLogger } from '../../lib/log.ts';
import { FakeClock, settle } from '../fakes/clock.ts';
import { collectGarbage } from '../../lib/gc.ts';

type Obj = KubernetesObject;

const obj = (name: string, rv: string, namespace = 'default'): Obj => ({ metadata: { name, namespace, resourceVersion: rv } });

interface ActiveWatch {
  rv: string;
  emit(type: WatchEvent<Obj>['type'], o: Obj): void;
  end(): void;
  fail(err: unknown): void;
  signal: AbortSignal;
  done: boolean;
}

/** A ListWatch whose "server" the test drives: list() returns `items`, watches are handed out to the test. */
class FakeListWatch implements ListWatch<Obj> {
  items: Obj[] = [];
  rv = '1';
  listCalls = 0;
  listErrors: unknown[] = [];
  watches: ActiveWatch[] = [];

  async list(_signal: AbortSignal) {
    this.listCalls++;
    const err = this.listErrors.shift();
    if (err) throw err;
    return { items: this.items.map((o) => structuredClone(o)), resourceVersion: this.rv };
  }

  watch(rv: string, onEvent: (e: WatchEvent<Obj>) => void, signal: AbortSignal): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const w: ActiveWatch = {
        rv,
        signal,
        done: false,
        emit: (type, o) => onEvent({ type, object: o }),
        end: () => { w.done = true; resolve(); },
        fail: (err) => { w.done = true; reject(err); },
      };
      // As the real one: an abort ends the stream (here with an error, the harsher case).
      signal.addEventListener('abort', () => { w.done = true; reject(new Error('aborted')); }, { once: true });
      this.watches.push(w);
    });
  }

  get current(): ActiveWatch {
    const w = this.watches[this.watches.length - 1];
    if (!w) throw new Error('no watch started');
    return w;
  }
}

describe('lib Informer', () => {
  let clock: FakeClock;
  let lw: FakeListWatch;
  let abort: AbortController;
  let events: string[];

  function informer(watchdogMs?: number): Informer<Obj> {
    const inf = new Informer<Obj>({ name: 'test', listWatch: lw, clock, log: nullLogger(), ...(watchdogMs ? { watchdogMs } : {}) });
    inf.addHandler({
      onAdd: (o) => events.push(`add ${objectKey(o)}@${o.metadata?.resourceVersion}`),
      onUpdate: (a, b) => events.push(`update ${objectKey(b)} ${a.metadata?.resourceVersion}->${b.metadata?.resourceVersion}`),
      onDelete: (o) => events.push(`delete ${objectKey(o)}`),
    });
    return inf;
  }

  beforeEach(() => {
    clock = new FakeClock();
    lw = new FakeListWatch();
    abort = new AbortController();
    events = [];
  });
  afterEach(async () => {
    abort.abort();
    await clock.advance(0);
  });

  it('lists, delivers the adds, reports synced, then watches from the list resourceVersion', async () => {
    lw.items = [obj('a', '5'), obj('b', '6', 'kube-system')];
    lw.rv = '7';
    const inf = informer();
    expect(inf.hasSynced()).to.equal(false);
    inf.start(abort.signal);
    await inf.waitForSync();
    await settle();
    expect(inf.hasSynced()).to.equal(true);
    expect(events).to.deep.equal(['add default/a@5', 'add kube-system/b@6']);
    expect(inf.get('kube-system', 'b')?.metadata?.resourceVersion).to.equal('6');
    expect(inf.get('default', 'b')).to.equal(undefined);
    expect(inf.list().map(objectKey).sort()).to.deep.equal(['default/a', 'kube-system/b']);
    expect(lw.watches.map((w) => w.rv)).to.deep.equal(['7']);
  });

  it('a transform applies to listed and watched objects before the store and the handlers see them', async () => {
    const mf = [{ manager: 'kubectl', operation: 'Update' }];
    lw.items = [{ metadata: { name: 'a', namespace: 'default', resourceVersion: '1', managedFields: mf } }];
    const seen: Obj[] = [];
    const inf = new Informer<Obj>({ name: 'test', listWatch: lw, clock, log: nullLogger(), transform: stripManagedFields });
    inf.addHandler({ onAdd: (o) => seen.push(o), onUpdate: (_a, o) => seen.push(o) });
    inf.start(abort.signal);
    await inf.waitForSync();
    await settle();
    lw.current.emit('MODIFIED', { metadata: { name: 'a', namespace: 'default', resourceVersion: '2', managedFields: mf } });
    lw.current.emit('BOOKMARK', { metadata: { resourceVersion: '3' } });
    expect(seen.map((o) => o.metadata?.resourceVersion)).to.deep.equal(['1', '2']);
    expect(seen.every((o) => o.metadata?.managedFields === undefined)).to.equal(true);
    expect(inf.get('default', 'a')?.metadata).to.deep.equal({ name: 'a', namespace: 'default', resourceVersion: '2' });
  });

  it('with a transform that copies, the list as received is garbage while the watch runs', async () => {
    // Only the transformed copies may stay: the list (and what the transform dropped) must not,
    // for a watch lasts minutes and a list can be tens of MB.
    const received: WeakRef<object>[] = [];
    lw.list = async () => {
      const res = { items: [obj('a', '1'), obj('b', '1')], resourceVersion: '1' };
      received.push(new WeakRef(res), ...res.items.map((o) => new WeakRef(o)));
      return res;
    };
    const inf = new Informer<Obj>({ name: 'test', listWatch: lw, clock, log: nullLogger(), transform: (o) => ({ metadata: { ...o.metadata } }) });
    inf.start(abort.signal);
    await inf.waitForSync();
    await settle();
    expect(lw.watches.length).to.equal(1); // watching now, with run() suspended
    // A WeakRef holds its target until the current job ends: collect in a later one.
    await new Promise((r) => setImmediate(r));
    expect(collectGarbage()).to.equal(true);
    expect(received.length).to.equal(3);
    expect(received.map((r) => r.deref())).to.deep.equal([undefined, undefined, undefined]);
    expect(inf.list().map(objectKey).sort()).to.deep.equal(['default/a', 'default/b']);
  });

  it('keys cluster-scoped objects by name alone', async () => {
    lw.items = [{ metadata: { name: 'node1', resourceVersion: '1' } }];
    const inf = informer();
    inf.start(abort.signal);
    await inf.waitForSync();
    expect(inf.get('', 'node1')).to.not.equal(undefined);
  });

  it('applies watch events to the store and the handlers; bookmarks move only the resourceVersion', async () => {
    lw.items = [obj('a', '1')];
    const inf = informer();
    inf.start(abort.signal);
    await inf.waitForSync();
    await settle();
    const w = lw.current;
    w.emit('ADDED', obj('b', '2'));
    w.emit('MODIFIED', obj('a', '3'));
    w.emit('DELETED', obj('b', '4'));
    w.emit('BOOKMARK', { metadata: { resourceVersion: '9' } });
    expect(events).to.deep.equal(['add default/a@1', 'add default/b@2', 'update default/a 1->3', 'delete default/b']);
    expect(inf.list().map((o) => `${objectKey(o)}@${o.metadata?.resourceVersion}`)).to.deep.equal(['default/a@3']);
    w.end();
    await settle();
    // Resumed from the bookmark, without a relist.
    expect(lw.watches.map((x) => x.rv)).to.deep.equal(['1', '9']);
    expect(lw.listCalls).to.equal(1);
  });

  it('re-watches from the last resourceVersion when the server ends a watch normally', async () => {
    const inf = informer();
    inf.start(abort.signal);
    await inf.waitForSync();
    await settle();
    lw.current.emit('ADDED', obj('x', '12'));
    lw.current.end();
    await settle();
    await clock.advance(60_000);
    lw.current.end();
    await settle();
    expect(lw.watches.map((w) => w.rv)).to.deep.equal(['1', '12', '12']);
    expect(lw.listCalls).to.equal(1);
  });

  it('waits with backoff before re-watching when watches end at once with nothing', async () => {
    const inf = informer();
    inf.start(abort.signal);
    await inf.waitForSync();
    await settle();
    lw.current.end();
    await settle();
    expect(lw.watches.length).to.equal(1);
    await clock.advance(1000);
    expect(lw.watches.length).to.equal(2);
    lw.current.end();
    await clock.advance(1999);
    expect(lw.watches.length).to.equal(2);
    await clock.advance(1);
    expect(lw.watches.length).to.equal(3);
    expect(lw.listCalls).to.equal(1);
  });

  it('relists after a 410 with backoff and turns the difference into adds, updates and deletes', async () => {
    lw.items = [obj('same', '1'), obj('changed', '1'), obj('gone', '1')];
    lw.rv = '1';
    const inf = informer();
    inf.start(abort.signal);
    await inf.waitForSync();
    await settle();
    events = [];
    lw.items = [obj('same', '1'), obj('changed', '8'), obj('new', '9')];
    lw.rv = '10';
    lw.current.fail(new NodeletError('WATCH_EXPIRED', 'too old'));
    await settle();
    expect(lw.listCalls).to.equal(1); // waits the backoff first
    await clock.advance(1000);
    expect(lw.listCalls).to.equal(2);
    expect(events.sort()).to.deep.equal(['add default/new@9', 'delete default/gone', 'update default/changed 1->8']);
    expect(inf.list().map(objectKey).sort()).to.deep.equal(['default/changed', 'default/new', 'default/same']);
    expect(lw.current.rv).to.equal('10');
  });

  it('backs off on repeated list errors (1 s, 2 s, ...) and syncs once the list works', async () => {
    lw.listErrors = [new Error('connection refused'), new Error('connection refused')];
    const inf = informer();
    inf.start(abort.signal);
    await settle();
    expect(lw.listCalls).to.equal(1);
    await clock.advance(1000);
    expect(lw.listCalls).to.equal(2);
    expect(inf.hasSynced()).to.equal(false);
    await clock.advance(1999);
    expect(lw.listCalls).to.equal(2);
    await clock.advance(1);
    expect(lw.listCalls).to.equal(3);
    expect(inf.hasSynced()).to.equal(true);
  });

  it('relists after any other watch error', async () => {
    const inf = informer();
    inf.start(abort.signal);
    await inf.waitForSync();
    await settle();
    lw.current.fail(new Error('stream reset'));
    await clock.advance(1000);
    expect(lw.listCalls).to.equal(2);
    expect(lw.watches.length).to.equal(2);
  });

  it('restarts a watch that stays silent for the watchdog period, from the same resourceVersion', async () => {
    const inf = informer(60_000);
    inf.start(abort.signal);
    await inf.waitForSync();
    await settle();
    const first = lw.current;
    await clock.advance(30_000);
    first.emit('BOOKMARK', { metadata: { resourceVersion: '4' } }); // activity resets the watchdog
    await clock.advance(59_000);
    expect(first.signal.aborted).to.equal(false);
    await clock.advance(1000);
    expect(first.signal.aborted).to.equal(true);
    await settle();
    expect(lw.watches.map((w) => w.rv)).to.deep.equal(['1', '4']);
    expect(lw.listCalls).to.equal(1);
    // Late events from the abandoned watch are dropped.
    first.emit('ADDED', obj('late', '5'));
    expect(inf.get('default', 'late')).to.equal(undefined);
  });

  it('keeps going when a handler throws', async () => {
    const inf = informer();
    inf.addHandler({ onAdd: () => { throw new Error('boom'); } });
    const seen: string[] = [];
    inf.addHandler({ onAdd: (o) => seen.push(objectKey(o)) });
    lw.items = [obj('a', '1')];
    inf.start(abort.signal);
    await inf.waitForSync();
    await settle();
    lw.current.emit('ADDED', obj('b', '2'));
    expect(seen).to.deep.equal(['default/a', 'default/b']);
    expect(events).to.deep.equal(['add default/a@1', 'add default/b@2']);
    expect(lw.watches.length).to.equal(1);
  });

  it('stops on abort: the watch is cancelled and nothing is listed or watched again', async () => {
    const inf = informer();
    inf.start(abort.signal);
    await inf.waitForSync();
    await settle();
    const w = lw.current;
    abort.abort();
    await settle();
    expect(w.signal.aborted).to.equal(true);
    await clock.advance(120_000);
    expect(lw.listCalls).to.equal(1);
    expect(lw.watches.length).to.equal(1);
    expect(clock.pending).to.equal(0);
  });

  it('waitForSync rejects when its signal aborts before the first list', async () => {
    lw.listErrors = [new Error('down')];
    const inf = informer();
    inf.start(abort.signal);
    const waiter = new AbortController();
    const p = inf.waitForSync(waiter.signal);
    waiter.abort();
    let code: string | undefined;
    await p.catch((e: NodeletError) => { code = e.code; });
    expect(code).to.equal('ABORTED');
  });
});
