// Addresses: documentation range 192.0.2.0/24 (RFC 5737) for endpoints, a
// 10.96.0.0/12 cluster IP; servers listen on loopback only.
import { expect } from 'chai';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { V1EndpointSlice, V1Node, V1Service } from '@kubernetes/client-node';
import { Gauge, Registry } from 'prom-client';
import { nullLogger } from '../../lib/log.ts';
import {
  closeServer,
  healthCheckTargets,
  lastSyncFromRegistry,
  listen,
  nodeEligible,
  ProxyHealth,
  proxyHealth,
  proxyHttpHandler,
  ServiceHealthServer,
} from '../../proxy/healthcheck.ts';
import { LAST_SYNC_METRIC } from '../../proxy/syncmetrics.ts';
import { FakeClock } from '../fakes/clock.ts';
import { freePort } from '../fakes/net.ts';

async function get(port: number, path: string): Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders }> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`);
  return { status: res.status, body: await res.text(), headers: Object.fromEntries(res.headers) };
}

const lbLocal = (name: string, hcPort: number, over: Partial<V1Service['spec']> = {}): V1Service => ({
  metadata: { name, namespace: 'web' },
  spec: {
    type: 'LoadBalancer',
    clusterIP: '10.96.0.50',
    externalTrafficPolicy: 'Local',
    healthCheckNodePort: hcPort,
    ports: [{ name: 'http', port: 80, protocol: 'TCP', nodePort: 30080 }],
    ...over,
  },
});

const slice = (svc: string, name: string, eps: Array<{ ip: string; node?: string; ready?: boolean }>): V1EndpointSlice => ({
  metadata: { name, namespace: 'web', labels: { 'kubernetes.io/service-name': svc } },
  addressType: 'IPv4',
  ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
  endpoints: eps.map((e) => ({ addresses: [e.ip], conditions: { ready: e.ready ?? true }, ...(e.node ? { nodeName: e.node } : {}) })),
});

describe('proxy health (healthz, livez, metrics)', () => {
  it('is healthy only after a sync and while the last one is recent', () => {
    expect(proxyHealth(undefined, 1000, 60_000).healthy).to.equal(false);
    expect(proxyHealth(1000, 60_999, 60_000).healthy).to.equal(true);
    expect(proxyHealth(1000, 61_000, 60_000).healthy).to.equal(false);
  });

  it('reads the last sync from the proxier gauge', async () => {
    const reg = new Registry();
    const read = lastSyncFromRegistry(reg);
    expect(await read()).to.equal(undefined);
    const g = new Gauge({ name: LAST_SYNC_METRIC, help: 'x', registers: [reg] });
    expect(await read()).to.equal(undefined);
    g.set(1700000000.5);
    expect(await read()).to.equal(1700000000500);
  });

  it('a node being deleted or tainted ToBeDeletedByClusterAutoscaler is not eligible; an unknown one is', () => {
    const node = (over: Partial<V1Node> = {}): V1Node => ({ metadata: { name: 'n1' }, ...over });
    const cases: Array<[string, V1Node | undefined, boolean]> = [
      ['unknown', undefined, true],
      ['plain', node(), true],
      ['being deleted', node({ metadata: { name: 'n1', deletionTimestamp: new Date(0) } }), false],
      ['autoscaler taint', node({ spec: { taints: [{ key: 'ToBeDeletedByClusterAutoscaler', value: '1700000000', effect: 'NoSchedule' }] } }), false],
      ['other taints', node({ spec: { taints: [{ key: 'node.kubernetes.io/unschedulable', effect: 'NoSchedule' }, { key: 'DeletionCandidateOfClusterAutoscaler', effect: 'PreferNoSchedule' }] } }), true],
    ];
    for (const [what, n, want] of cases) expect(nodeEligible(n), what).to.equal(want);
  });

  describe('over HTTP', () => {
    let server: http.Server;
    let port: number;
    let reg: Registry;
    let gauge: Gauge;
    let clock: FakeClock;
    let health: ProxyHealth;

    beforeEach(async () => {
      reg = new Registry();
      gauge = new Gauge({ name: LAST_SYNC_METRIC, help: 'The last time proxy rules were successfully synced', registers: [reg] });
      clock = new FakeClock(Date.UTC(2025, 0, 1));
      health = new ProxyHealth({ clock, timeoutMs: 60_000, lastSynced: lastSyncFromRegistry(reg), registry: reg });
      server = http.createServer(proxyHttpHandler(health, { registry: reg }));
      await listen(server, '127.0.0.1', 0);
      port = (server.address() as AddressInfo).port;
    });
    afterEach(() => closeServer(server));

    it('answers 503 before the first sync, 200 after it, 503 when syncs stop', async () => {
      let r = await get(port, '/healthz');
      expect(r.status).to.equal(503);
      expect(JSON.parse(r.body)).to.deep.equal({ lastUpdated: '', currentTime: '2025-01-01T00:00:00.000Z', nodeEligible: true });
      gauge.set(clock.now() / 1000);
      await clock.advance(5000);
      r = await get(port, '/healthz');
      expect(r.status).to.equal(200);
      expect(r.headers['content-type']).to.equal('application/json');
      expect(JSON.parse(r.body)).to.deep.equal({ lastUpdated: '2025-01-01T00:00:00.000Z', currentTime: '2025-01-01T00:00:05.000Z', nodeEligible: true });
      r = await get(port, '/livez');
      expect(r.status).to.equal(200);
      expect(JSON.parse(r.body)).to.deep.equal({ lastUpdated: '2025-01-01T00:00:00.000Z', currentTime: '2025-01-01T00:00:05.000Z' });
      await clock.advance(60_000);
      expect((await get(port, '/healthz')).status).to.equal(503);
      expect((await get(port, '/livez')).status).to.equal(503);
    });

    it('/healthz answers 503 with nodeEligible false while the Node is tainted for deletion; /livez does not look at the Node', async () => {
      gauge.set(clock.now() / 1000);
      const tainted: V1Node = { metadata: { name: 'n1' }, spec: { taints: [{ key: 'ToBeDeletedByClusterAutoscaler', effect: 'NoSchedule' }] } };
      expect(health.syncNode(tainted), 'eligibility changed').to.equal(true);
      expect(health.syncNode(tainted), 'unchanged').to.equal(false);
      let r = await get(port, '/healthz');
      expect(r.status).to.equal(503);
      expect(JSON.parse(r.body)).to.deep.equal({ lastUpdated: '2025-01-01T00:00:00.000Z', currentTime: '2025-01-01T00:00:00.000Z', nodeEligible: false });
      r = await get(port, '/livez');
      expect(r.status).to.equal(200);
      expect(await health.healthy(), 'the proxier itself (service health-check ports) stays healthy').to.equal(true);
      health.syncNode({ metadata: { name: 'n1' } });
      r = await get(port, '/healthz');
      expect(r.status).to.equal(200);
      expect(JSON.parse(r.body).nodeEligible).to.equal(true);
      // kube-proxy's counters of the answers, by code.
      const metrics = await reg.metrics();
      expect(metrics).to.include('kubeproxy_proxy_healthz_total{code="503"} 1');
      expect(metrics).to.include('kubeproxy_proxy_healthz_total{code="200"} 1');
      expect(metrics).to.include('kubeproxy_proxy_livez_total{code="200"} 1');
    });

    it('serves the registry on /metrics and 404 elsewhere', async () => {
      gauge.set(12);
      const r = await get(port, '/metrics');
      expect(r.status).to.equal(200);
      expect(r.body).to.include(`${LAST_SYNC_METRIC} 12`);
      expect((await get(port, '/nope')).status).to.equal(404);
    });
  });
});

describe('proxy service health-check node ports', () => {
  it('targets LoadBalancer services with externalTrafficPolicy Local, counting ready local endpoints', () => {
    const services = [
      lbLocal('b', 32002),
      lbLocal('a', 32001),
      lbLocal('cluster-policy', 32003, { externalTrafficPolicy: 'Cluster' }),
      { metadata: { name: 'plain', namespace: 'web' }, spec: { clusterIP: '10.96.0.51', ports: [{ port: 80 }] } },
    ];
    const slices = [
      slice('a', 'a-1', [{ ip: '192.0.2.1', node: 'n1' }, { ip: '192.0.2.2', node: 'n2' }, { ip: '192.0.2.3', node: 'n1', ready: false }]),
      slice('a', 'a-2', [{ ip: '192.0.2.4', node: 'n1' }, { ip: '192.0.2.1', node: 'n1' }]),
      slice('b', 'b-1', [{ ip: '192.0.2.9', node: 'n2' }]),
    ];
    expect(healthCheckTargets(services, slices, 'n1')).to.deep.equal([
      { namespace: 'web', name: 'a', port: 32001, localEndpoints: 2 },
      { namespace: 'web', name: 'b', port: 32002, localEndpoints: 0 },
    ]);
  });

  it('serves each port: 200 with local endpoints and a healthy proxy, else 503; closes ports no longer wanted', async () => {
    let healthy = true;
    const hs = new ServiceHealthServer({ host: '127.0.0.1', log: nullLogger(), proxyHealthy: async () => healthy });
    const port = await freePort();
    try {
      await hs.sync([{ namespace: 'web', name: 'a', port, localEndpoints: 0 }]);
      expect(hs.ports()).to.deep.equal([port]);
      let r = await get(port, '/');
      expect(r.status).to.equal(503);
      expect(JSON.parse(r.body)).to.deep.equal({ service: { namespace: 'web', name: 'a' }, localEndpoints: 0, serviceProxyHealthy: true });

      await hs.sync([{ namespace: 'web', name: 'a', port, localEndpoints: 2 }]);
      r = await get(port, '/anything');
      expect(r.status).to.equal(200);
      expect(r.headers['x-load-balancing-endpoint-weight']).to.equal('2');
      expect(JSON.parse(r.body)).to.deep.equal({ service: { namespace: 'web', name: 'a' }, localEndpoints: 2, serviceProxyHealthy: true });

      healthy = false;
      r = await get(port, '/');
      expect(r.status).to.equal(503);
      expect(JSON.parse(r.body).serviceProxyHealthy).to.equal(false);

      await hs.sync([]);
      expect(hs.ports()).to.deep.equal([]);
      let refused = false;
      await get(port, '/').catch(() => { refused = true; });
      expect(refused).to.equal(true);
    } finally {
      await hs.close();
    }
  });

  it('retries a port it could not bind on the next sync', async () => {
    const blocker = http.createServer();
    await listen(blocker, '127.0.0.1', 0);
    const port = (blocker.address() as AddressInfo).port;
    const hs = new ServiceHealthServer({ host: '127.0.0.1', log: nullLogger(), proxyHealthy: async () => true });
    try {
      const t = [{ namespace: 'web', name: 'a', port, localEndpoints: 1 }];
      await hs.sync(t);
      expect(hs.ports()).to.deep.equal([]);
      await closeServer(blocker);
      await hs.sync(t);
      expect(hs.ports()).to.deep.equal([port]);
      expect((await get(port, '/')).status).to.equal(200);
    } finally {
      await closeServer(blocker).catch(() => {});
      await hs.close();
    }
  });
});
