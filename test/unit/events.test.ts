// KubeEventRecorder against an in-memory Events API and a manual clock:
// the Event it writes, counting repeats on the Event already written, the
// bounded queue, retries; the object references; and KubeEventsApi's
// requests against an API server stub on loopback.
import { KubeClient } from '../../lib/kube/client.ts';
import type { V1Pod } from '@kubernetes/client-node';
import { expect } from 'chai';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { containerRef, eventKey, KubeEventRecorder, KubeEventsApi, nodeRef, podRef } from '../../agent/events.ts';
import { apiError, apiStatus } from '../../lib/kube/errors.ts';
import { nullLogger } from '../../lib/log.ts';
import { FakeClock } from '../fakes/clock.ts';
import { FakeEventRecorder, FakeEventsApi } from '../fakes/events.ts';

const NODE = 'worker-1';
const T0 = Date.UTC(2025, 0, 1, 0, 0, 0);

const pod: V1Pod = {
  metadata: { name: 'web', namespace: 'shop', uid: 'aaaaaaaa-0000-4000-8000-00000000000a', resourceVersion: '42' },
  spec: {
    initContainers: [{ name: 'setup', image: 'nodelet.local/busybox:1.35' }],
    containers: [{ name: 'app', image: 'nodelet.local/busybox:1.35' }],
    ephemeralContainers: [{ name: 'debug', image: 'nodelet.local/busybox:1.35' }],
  },
};

describe('event references', () => {
  it('refers to a pod, its containers and the node as upstream', () => {
    expect(podRef(pod)).to.deep.equal({
      kind: 'Pod',
      apiVersion: 'v1',
      name: 'web',
      namespace: 'shop',
      uid: 'aaaaaaaa-0000-4000-8000-00000000000a',
      resourceVersion: '42',
    });
    expect(containerRef(pod, 'app').fieldPath).to.equal('spec.containers{app}');
    expect(containerRef(pod, 'setup').fieldPath).to.equal('spec.initContainers{setup}');
    expect(containerRef(pod, 'debug').fieldPath).to.equal('spec.ephemeralContainers{debug}');
    expect(containerRef(pod, 'gone').fieldPath).to.equal('spec.containers{gone}');
    expect(containerRef(pod, 'app')).to.include({ kind: 'Pod', name: 'web', uid: pod.metadata!.uid });
    expect(nodeRef(NODE)).to.deep.equal({ kind: 'Node', apiVersion: 'v1', name: NODE, uid: NODE, namespace: '' });
  });

  it('keys events by object, field, type, reason and message (not resourceVersion)', () => {
    const a = eventKey(podRef(pod), 'Normal', 'Pulled', 'm');
    expect(eventKey({ ...podRef(pod), resourceVersion: '43' }, 'Normal', 'Pulled', 'm')).to.equal(a);
    expect(eventKey(containerRef(pod, 'app'), 'Normal', 'Pulled', 'm')).to.not.equal(a);
    expect(eventKey(podRef(pod), 'Warning', 'Pulled', 'm')).to.not.equal(a);
    expect(eventKey(podRef(pod), 'Normal', 'Pulled', 'n')).to.not.equal(a);
  });
});

describe('KubeEventRecorder', () => {
  let api: FakeEventsApi;
  let clock: FakeClock;
  let rec: KubeEventRecorder;

  function recorder(opts: { queueLimit?: number; attempts?: number } = {}): KubeEventRecorder {
    return new KubeEventRecorder({ api, nodeName: NODE, clock, log: nullLogger(), retryDelayMs: 1000, ...opts });
  }

  beforeEach(() => {
    api = new FakeEventsApi();
    clock = new FakeClock(T0);
    rec = recorder();
  });

  afterEach(async () => {
    api.gate = undefined;
    await rec.close();
  });

  it('posts a core/v1 Event about the object', async () => {
    rec.event(containerRef(pod, 'app'), 'Normal', 'Started', 'Started container app');
    await rec.flush();
    const [e, ...rest] = api.list();
    expect(rest).to.deep.equal([]);
    expect(e!.metadata.namespace).to.equal('shop');
    expect(e!.metadata.name).to.match(/^web\.[0-9a-f]+$/);
    expect(e).to.deep.include({
      involvedObject: containerRef(pod, 'app'),
      type: 'Normal',
      reason: 'Started',
      message: 'Started container app',
      count: 1,
      source: { component: 'kubelet', host: NODE },
      reportingComponent: 'kubelet',
      reportingInstance: NODE,
    });
    expect(e!.firstTimestamp).to.deep.equal(new Date(T0));
    expect(e!.lastTimestamp).to.deep.equal(new Date(T0));
  });

  it('reports another component when told (the proxy: kube-proxy)', async () => {
    const proxyRec = new KubeEventRecorder({ api, nodeName: NODE, component: 'kube-proxy', clock, log: nullLogger() });
    proxyRec.event(nodeRef(NODE), 'Normal', 'Starting', '');
    await proxyRec.flush();
    expect(api.list()[0]).to.deep.include({ reason: 'Starting', source: { component: 'kube-proxy', host: NODE }, reportingComponent: 'kube-proxy' });
    await proxyRec.close();
  });

  it('puts node events in the default namespace', async () => {
    rec.event(nodeRef(NODE), 'Normal', 'NodeReady', `Node ${NODE} status is now: NodeReady`);
    await rec.flush();
    const [e] = api.list();
    expect(e!.metadata.namespace).to.equal('default');
    expect(e!.involvedObject).to.include({ kind: 'Node', name: NODE, uid: NODE });
  });

  it('counts a repeat within 10 minutes on the Event already written', async () => {
    rec.event(podRef(pod), 'Warning', 'BackOff', 'Back-off restarting failed container');
    await rec.flush();
    await clock.advance(5 * 60 * 1000);
    rec.event(podRef(pod), 'Warning', 'BackOff', 'Back-off restarting failed container');
    await rec.flush();
    await clock.advance(9 * 60 * 1000); // 10 minutes counted from the last one
    rec.event(podRef(pod), 'Warning', 'BackOff', 'Back-off restarting failed container');
    await rec.flush();

    const events = api.list();
    expect(events).to.have.length(1);
    expect(events[0]).to.include({ count: 3 });
    expect(events[0]!.firstTimestamp).to.deep.equal(new Date(T0));
    expect(events[0]!.lastTimestamp).to.deep.equal(new Date(T0 + 14 * 60 * 1000));
    expect(api.calls.map((c) => c.split(' ')[0])).to.deep.equal(['create', 'patch', 'patch']);
    expect(api.patches[0]!.patch).to.deep.equal({ count: 2, lastTimestamp: '2025-01-01T00:05:00Z' });
  });

  it('writes a new Event after 10 quiet minutes, or when anything in the key differs', async () => {
    rec.event(podRef(pod), 'Normal', 'Pulled', 'image a');
    await rec.flush();
    await clock.advance(10 * 60 * 1000 + 1000);
    rec.event(podRef(pod), 'Normal', 'Pulled', 'image a');
    rec.event(podRef(pod), 'Normal', 'Pulled', 'image b');
    rec.event(containerRef(pod, 'app'), 'Normal', 'Pulled', 'image b');
    await rec.flush();
    const events = api.list();
    expect(events).to.have.length(4);
    expect(events.every((e) => e.count === 1)).to.equal(true);
    expect(new Set(events.map((e) => e.metadata.name)).size).to.equal(4);
  });

  it('writes the Event again when the one it would count on has expired', async () => {
    rec.event(podRef(pod), 'Normal', 'Killing', 'Stopping container app');
    await rec.flush();
    const name = api.list()[0]!.metadata.name!;
    api.stored.clear(); // the API server's TTL removed it
    rec.event(podRef(pod), 'Normal', 'Killing', 'Stopping container app');
    await rec.flush();
    const [e] = api.list();
    expect(e!.metadata.name).to.equal(name);
    expect(e!.count).to.equal(2);
  });

  it('never blocks the caller and bounds the queue while the API server is slow', async () => {
    rec = recorder({ queueLimit: 3 });
    let open: () => void = () => {};
    api.gate = new Promise<void>((r) => (open = r));
    for (let i = 0; i < 10; i++) rec.event(podRef(pod), 'Normal', 'Reason', `message ${i}`);
    // Repeats of a waiting event merge into it rather than taking a place.
    rec.event(podRef(pod), 'Normal', 'Reason', 'message 1');
    rec.event(podRef(pod), 'Normal', 'Reason', 'message 1');
    expect(rec.queued).to.equal(3);
    api.gate = undefined;
    open();
    await rec.flush();
    const events = api.list();
    // message 0 was already being written; 1-3 waited; 4-9 were dropped.
    expect(events.map((e) => e.message)).to.deep.equal(['message 0', 'message 1', 'message 2', 'message 3']);
    expect(events[1]!.count).to.equal(3);
    expect(rec.queued).to.equal(0);
  });

  it('retries a write the API server failed transiently', async () => {
    api.failNext('create', apiError('create event', 503, 'ServiceUnavailable'));
    rec.event(podRef(pod), 'Normal', 'Scheduled', 'x');
    await clock.advance(1000);
    await rec.flush();
    expect(api.calls.length).to.equal(2);
    expect(api.list()).to.have.length(1);
  });

  it('gives up after the set attempts, or at once on a request the server rejects, and carries on', async () => {
    api.unreachable = true;
    rec.event(podRef(pod), 'Normal', 'A', 'a');
    await clock.advance(10_000);
    await rec.flush();
    expect(api.calls).to.have.length(3);
    api.unreachable = false;

    api.failNext('create', apiError('create event', 422, 'Invalid'));
    rec.event(podRef(pod), 'Normal', 'B', 'b');
    rec.event(podRef(pod), 'Normal', 'C', 'c');
    await rec.flush();
    expect(api.list().map((e) => e.reason)).to.deep.equal(['C']);
    expect(api.calls).to.have.length(5);
  });

  it('drops what is queued when closed and records nothing after', async () => {
    let open: () => void = () => {};
    api.gate = new Promise<void>((r) => (open = r));
    rec.event(podRef(pod), 'Normal', 'A', 'a');
    rec.event(podRef(pod), 'Normal', 'B', 'b');
    const closing = rec.close();
    rec.event(podRef(pod), 'Normal', 'C', 'c');
    api.gate = undefined;
    open();
    await closing;
    expect(api.list().map((e) => e.reason)).to.deep.equal(['A']);
  });
});

describe('FakeEventRecorder', () => {
  it('records events for tests of the code that emits them', () => {
    const f = new FakeEventRecorder();
    f.event(containerRef(pod, 'app'), 'Normal', 'Pulled', 'Successfully pulled image');
    f.event(containerRef(pod, 'app'), 'Warning', 'BackOff', 'Back-off restarting failed container');
    expect(f.reasons()).to.deep.equal(['Pulled', 'BackOff']);
    expect(f.withReason('BackOff')[0]).to.deep.include({ type: 'Warning', object: containerRef(pod, 'app') });
    f.clear();
    expect(f.events).to.deep.equal([]);
  });
});

describe('KubeEventsApi', () => {
  interface Seen {
    method: string;
    path: string;
    contentType: string;
    body: unknown;
  }
  let server: http.Server;
  let seen: Seen[];
  let status: number;
  let api: KubeEventsApi;

  before(async () => {
    server = http.createServer((req, res) => {
      let data = '';
      req.on('data', (c: Buffer) => (data += c.toString()));
      req.on('end', () => {
        const body = data ? (JSON.parse(data) as unknown) : undefined;
        seen.push({ method: req.method ?? '', path: req.url ?? '', contentType: req.headers['content-type'] ?? '', body });
        res.writeHead(status, { 'content-type': 'application/json' });
        const ok = status < 300;
        res.end(JSON.stringify(ok ? { apiVersion: 'v1', kind: 'Event', metadata: { name: 'web.1', namespace: 'shop' }, involvedObject: {} } : { kind: 'Status', reason: 'NotFound', message: 'events "web.1" not found', code: status }));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  });

  after(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  beforeEach(() => {
    seen = [];
    status = 200;
    api = new KubeEventsApi(new KubeClient({ server: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, token: { data: 'test-token' } }, { timeoutMs: 5_000 }));
  });

  it('creates with POST and counts with a JSON merge patch', async () => {
    await api.create('shop', {
      metadata: { name: 'web.1', namespace: 'shop' },
      involvedObject: podRef(pod),
      reason: 'Started',
      type: 'Normal',
      count: 1,
      firstTimestamp: new Date(T0),
      lastTimestamp: new Date(T0),
    });
    await api.patch('shop', 'web.1', { count: 2, lastTimestamp: '2025-01-01T00:05:00Z' });
    expect(seen.map((s) => `${s.method} ${s.path}`)).to.deep.equal([
      'POST /api/v1/namespaces/shop/events',
      'PATCH /api/v1/namespaces/shop/events/web.1',
    ]);
    expect(seen[0]!.body).to.deep.include({ reason: 'Started', count: 1, firstTimestamp: '2025-01-01T00:00:00.000Z' });
    expect(seen[1]!.contentType).to.equal('application/merge-patch+json');
    expect(seen[1]!.body).to.deep.equal({ count: 2, lastTimestamp: '2025-01-01T00:05:00Z' });
  });

  it('maps failures to ApiErrors with the HTTP status', async () => {
    status = 404;
    let err: unknown;
    await api.patch('shop', 'web.1', { count: 2 }).catch((e: unknown) => (err = e));
    expect(apiStatus(err)).to.equal(404);
    expect((err as Error).message).to.include('patch event shop/web.1');
  });
});
