// KubePodObjects against a tiny API server stub on loopback: request paths and
// bodies, 404 as undefined, error mapping, and the Service list cache.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { KubeClient } from '../../lib/kube/client.ts';
import { expect } from 'chai';
import { apiStatus, ApiError } from '../../lib/kube/errors.ts';
import { KubePodObjects, versionAtLeast } from '../../agent/pod/kubeobjects.ts';
import { FakeClock } from '../fakes/clock.ts';

interface Seen {
  method: string;
  path: string;
  body: unknown;
}

type Handler = (req: Seen) => { status: number; body: unknown } | undefined;

describe('pod/kubeobjects: KubePodObjects', () => {
  let server: http.Server;
  let seen: Seen[];
  let handler: Handler;
  let clock: FakeClock;
  let objects: KubePodObjects;

  before(async () => {
    server = http.createServer((req, res) => {
      let data = '';
      req.on('data', (c: Buffer) => (data += c.toString()));
      req.on('end', () => {
        const s: Seen = { method: req.method ?? '', path: req.url ?? '', body: data ? JSON.parse(data) : undefined };
        seen.push(s);
        const r = handler(s) ?? { status: 404, body: { kind: 'Status', reason: 'NotFound', message: 'not found', code: 404 } };
        res.writeHead(r.status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(r.body));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  });

  after(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  /** A client of the stub server. */
  const stubClient = () => new KubeClient({ server: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, token: { data: 'test-token' } }, { timeoutMs: 5_000 });

  beforeEach(() => {
    seen = [];
    handler = () => undefined;
    clock = new FakeClock();
    objects = new KubePodObjects(stubClient(), { clock, monotonicNow: () => clock.now(), serviceCacheMs: 1_000 });
  });

  it('gets a configmap, and a missing one is undefined', async () => {
    handler = (r) =>
      r.path === '/api/v1/namespaces/ns1/configmaps/cfg'
        ? { status: 200, body: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'cfg', namespace: 'ns1' }, data: { A: '1' } } }
        : undefined;
    expect((await objects.getConfigMap('ns1', 'cfg'))?.data).to.deep.equal({ A: '1' });
    expect(await objects.getConfigMap('ns1', 'nope')).to.equal(undefined);
    expect(seen.map((s) => `${s.method} ${s.path}`)).to.deep.equal(['GET /api/v1/namespaces/ns1/configmaps/cfg', 'GET /api/v1/namespaces/ns1/configmaps/nope']);
  });

  it('gets a secret with its data still base64-encoded', async () => {
    handler = (r) =>
      r.path === '/api/v1/namespaces/ns1/secrets/creds'
        ? { status: 200, body: { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'creds', namespace: 'ns1' }, data: { U: 'YWRtaW4=' } } }
        : undefined;
    expect((await objects.getSecret('ns1', 'creds'))?.data).to.deep.equal({ U: 'YWRtaW4=' });
    expect(await objects.getSecret('ns1', 'nope')).to.equal(undefined);
  });

  it('maps other HTTP failures to ApiError with the status', async () => {
    handler = () => ({ status: 403, body: { kind: 'Status', reason: 'Forbidden', message: 'no access', code: 403 } });
    let err: unknown;
    try {
      await objects.getSecret('ns1', 'creds');
    } catch (e) {
      err = e;
    }
    expect(err).to.be.instanceOf(ApiError);
    expect(apiStatus(err)).to.equal(403);
    expect((err as ApiError).message).to.equal('get secret ns1/creds: HTTP 403: Forbidden: no access');
  });

  it('lists services once per namespace within the cache time, then again', async () => {
    let n = 0;
    handler = (r) => {
      if (r.path !== '/api/v1/namespaces/ns1/services') return undefined;
      n++;
      return {
        status: 200,
        body: { apiVersion: 'v1', kind: 'ServiceList', metadata: {}, items: [{ metadata: { name: `web${n}` }, spec: { clusterIP: '10.96.1.1', ports: [{ port: 80 }] } }] },
      };
    };
    const [a, b] = await Promise.all([objects.listServices('ns1'), objects.listServices('ns1')]);
    expect(n).to.equal(1); // concurrent callers share the request
    expect(a.map((s) => s.metadata?.name)).to.deep.equal(['web1']);
    expect(b[0]?.metadata?.namespace).to.equal('ns1'); // filled in for callers that filter on it
    a[0]!.metadata!.name = 'changed'; // callers get copies
    await clock.advance(999);
    expect((await objects.listServices('ns1')).map((s) => s.metadata?.name)).to.deep.equal(['web1']);
    expect(n).to.equal(1);
    await clock.advance(1);
    expect((await objects.listServices('ns1')).map((s) => s.metadata?.name)).to.deep.equal(['web2']);
    expect(n).to.equal(2);
  });

  it('counts a list\'s age from when it was asked for, on the monotonic clock, not the wall clock', async () => {
    let mono = 0;
    // A wall clock that cannot be read: stepping it (NTP, a resumed VM) cannot matter.
    const wall = { now: (): number => expect.fail('the wall clock was read'), sleep: () => Promise.resolve() };
    const objs = new KubePodObjects(stubClient(), { clock: wall, monotonicNow: () => mono, serviceCacheMs: 1_000 });
    let n = 0;
    handler = (r) => {
      if (r.path !== '/api/v1/namespaces/ns1/services') return undefined;
      n++;
      mono += 900; // a slow answer: 900 ms pass while the request is out
      return { status: 200, body: { apiVersion: 'v1', kind: 'ServiceList', metadata: {}, items: [{ metadata: { name: `web${n}` }, spec: { clusterIP: '10.96.1.1', ports: [{ port: 80 }] } }] } };
    };
    expect((await objs.listServices('ns1')).map((s) => s.metadata?.name)).to.deep.equal(['web1']);
    mono = 999;
    expect((await objs.listServices('ns1')).map((s) => s.metadata?.name)).to.deep.equal(['web1']);
    mono = 1_000; // 1 s after it was asked for, though only 100 ms after it came back
    expect((await objs.listServices('ns1')).map((s) => s.metadata?.name)).to.deep.equal(['web2']);
    expect(n).to.equal(2);
  });

  it('asks again when the cached list is older than the pod, whatever its age', async () => {
    let n = 0;
    handler = (r) => {
      if (r.path !== '/api/v1/namespaces/ns1/services') return undefined;
      n++;
      return { status: 200, body: { apiVersion: 'v1', kind: 'ServiceList', metadata: { resourceVersion: String(100 * n) }, items: [{ metadata: { name: `web${n}` }, spec: { clusterIP: '10.96.1.1', ports: [{ port: 80 }] } }] } };
    };
    expect((await objects.listServices('ns1', '50')).map((s) => s.metadata?.name)).to.deep.equal(['web1']); // list at 100
    expect((await objects.listServices('ns1', '100')).map((s) => s.metadata?.name)).to.deep.equal(['web1']); // cached, new enough
    expect(n).to.equal(1);
    // A pod made after the list (its version 150): its Services may be missing from it.
    expect((await objects.listServices('ns1', '150')).map((s) => s.metadata?.name)).to.deep.equal(['web2']);
    expect(n).to.equal(2);
    // The new list (200) serves the next pods within the cache time.
    expect((await objects.listServices('ns1', '180')).map((s) => s.metadata?.name)).to.deep.equal(['web2']);
    expect(n).to.equal(2);
  });

  it('compares resourceVersions as etcd\'s integers; anything else counts as older', () => {
    expect(versionAtLeast('100', '99')).to.equal(true);
    expect(versionAtLeast('100', '100')).to.equal(true);
    expect(versionAtLeast('99', '100')).to.equal(false); // not as text ('99' > '100')
    expect(versionAtLeast('18446744073709551616', '18446744073709551615')).to.equal(true);
    expect(versionAtLeast(undefined, '1')).to.equal(false);
    expect(versionAtLeast('abc', '1')).to.equal(false);
    expect(versionAtLeast('5', 'abc')).to.equal(false);
  });

  it('does not cache a failed list', async () => {
    let fail = true;
    handler = (r) => {
      if (r.path !== '/api/v1/namespaces/ns1/services') return undefined;
      if (fail) return { status: 500, body: { kind: 'Status', message: 'boom', code: 500 } };
      return { status: 200, body: { apiVersion: 'v1', kind: 'ServiceList', metadata: {}, items: [] } };
    };
    let err: unknown;
    try {
      await objects.listServices('ns1');
    } catch (e) {
      err = e;
    }
    expect(apiStatus(err)).to.equal(500);
    fail = false;
    expect(await objects.listServices('ns1')).to.deep.equal([]);
  });

  it('requests a token bound to the pod', async () => {
    handler = (r) =>
      r.method === 'POST' && r.path === '/api/v1/namespaces/ns1/serviceaccounts/builder/token'
        ? {
            status: 201,
            body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: {}, status: { token: 'tok', expirationTimestamp: '2025-01-01T01:00:00Z' } },
          }
        : undefined;
    const got = await objects.requestToken({
      namespace: 'ns1',
      serviceAccountName: 'builder',
      audiences: [],
      expirationSeconds: 3607,
      boundPod: { name: 'web-0', uid: 'uid-1' },
    });
    expect(got).to.deep.equal({ token: 'tok', expiresAtMs: Date.UTC(2025, 0, 1, 1, 0, 0) });
    expect(seen[0]?.body).to.deep.equal({
      apiVersion: 'authentication.k8s.io/v1',
      kind: 'TokenRequest',
      spec: { expirationSeconds: 3607, boundObjectRef: { apiVersion: 'v1', kind: 'Pod', name: 'web-0', uid: 'uid-1' } },
    });
  });

  it('sends audiences when given, and fails when no token comes back', async () => {
    handler = () => ({ status: 201, body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: {}, status: {} } });
    let err: unknown;
    try {
      await objects.requestToken({ namespace: 'ns1', serviceAccountName: 'sa', audiences: ['vault'], expirationSeconds: 600, boundPod: { name: 'p', uid: 'u' } });
    } catch (e) {
      err = e;
    }
    expect((seen[0]?.body as { spec: { audiences: string[] } }).spec.audiences).to.deep.equal(['vault']);
    expect(err).to.be.instanceOf(ApiError);
    expect((err as Error).message).to.match(/no token/);
  });
});
