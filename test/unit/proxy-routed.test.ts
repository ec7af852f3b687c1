// What the proxy tells the agent about a pod IP (/nodelet/routed): from the
// state of its last successful sync, with the same endpoint choice as the rules.
import { expect } from 'chai';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { V1EndpointSlice, V1Service } from '@kubernetes/client-node';
import { Registry } from 'prom-client';
import { nullLogger } from '../../lib/log.ts';
import { closeServer, listen, ProxyHealth, proxyHttpHandler, ROUTED_PATH } from '../../proxy/healthcheck.ts';
import { IptablesProxier } from '../../proxy/iptables/proxier.ts';
import { RoutedSnapshot } from '../../proxy/routed.ts';
import { FakeClock } from '../fakes/clock.ts';
import { FakeIptables } from '../fakes/iptables.ts';
import { endpoint, servicePort } from '../fakes/proxyobjects.ts';

const service = (name: string, ip: string, over: Record<string, unknown> = {}): V1Service => ({
  metadata: { namespace: 'ns1', name, resourceVersion: '1' },
  spec: { clusterIP: ip, ports: [{ name: 'http', port: 80, protocol: 'TCP' }], ...over },
});

type Ep = { ip: string; ready: boolean; terminating?: boolean; node?: string; zone?: string };
const slice = (svc: string, eps: Ep[], rv = '1'): V1EndpointSlice => ({
  addressType: 'IPv4',
  metadata: { namespace: 'ns1', name: `${svc}-abc`, resourceVersion: rv, labels: { 'kubernetes.io/service-name': svc } },
  ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
  endpoints: eps.map((e) => ({
    addresses: [e.ip],
    nodeName: e.node ?? 'node-b',
    conditions: { ready: e.ready, serving: e.ready || !!e.terminating, terminating: !!e.terminating },
    ...(e.zone ? { hints: { forZones: [{ name: e.zone }] } } : {}),
  })),
});

describe('proxy: routed endpoints for the agent', () => {
  let proxier: IptablesProxier;
  beforeEach(() => {
    proxier = new IptablesProxier(
      { iptables: new FakeIptables(), clock: new FakeClock(), log: nullLogger(), registry: new Registry(), sysctl: async () => {} },
      { nodeName: 'node-a', nodeIPs: ['192.0.2.10'], localhostNodePorts: false },
    );
  });

  it('is unknown before the first sync, then follows what the last sync programmed', async () => {
    expect(proxier.routedEndpoints()).to.equal(undefined);
    proxier.onServiceAdd(service('web', '10.96.0.10'));
    proxier.onSliceAdd(slice('web', [{ ip: '10.244.1.5', ready: true }, { ip: '10.244.1.6', ready: true }]));
    await proxier.syncProxyRules();
    expect([...proxier.routedEndpoints()!].sort()).to.deep.equal(['10.244.1.5', '10.244.1.6']);

    // A deleted pod: not ready and terminating while others are ready. Not routed once synced, not before.
    const prev = slice('web', [{ ip: '10.244.1.5', ready: true }, { ip: '10.244.1.6', ready: true }]);
    proxier.onSliceUpdate(prev, slice('web', [{ ip: '10.244.1.5', ready: true }, { ip: '10.244.1.6', ready: false, terminating: true }], '2'));
    expect(proxier.routedEndpoints()!.has('10.244.1.6')).to.equal(true);
    await proxier.syncProxyRules();
    expect([...proxier.routedEndpoints()!]).to.deep.equal(['10.244.1.5']);
  });

  it('leaves out endpoints that topology hints give to other zones (they get no traffic from here)', async () => {
    proxier.onTopologyChange({ 'topology.kubernetes.io/zone': 'zone-a' });
    proxier.onServiceAdd(service('web', '10.96.0.10'));
    proxier.onSliceAdd(slice('web', [{ ip: '10.244.1.5', ready: true, zone: 'zone-a' }, { ip: '10.244.1.6', ready: true, zone: 'zone-b' }]));
    await proxier.syncProxyRules();
    expect([...proxier.routedEndpoints()!]).to.deep.equal(['10.244.1.5']);
    proxier.onTopologyChange({ 'topology.kubernetes.io/zone': 'zone-b' });
    await proxier.syncProxyRules();
    expect([...proxier.routedEndpoints()!]).to.deep.equal(['10.244.1.6']);
  });

  it('leaves out serving terminating endpoints that the rules use only because nothing is ready, and services without a cluster IP', async () => {
    proxier.onServiceAdd(service('web', '10.96.0.10'));
    proxier.onSliceAdd(slice('web', [{ ip: '10.244.1.6', ready: false, terminating: true }]));
    proxier.onServiceAdd(service('headless', 'None'));
    proxier.onSliceAdd(slice('headless', [{ ip: '10.244.1.9', ready: true }]));
    proxier.onServiceAdd(service('api', '10.96.0.11'));
    proxier.onSliceAdd(slice('api', [{ ip: '10.244.1.7', ready: true }]));
    await proxier.syncProxyRules();
    expect([...proxier.routedEndpoints()!]).to.deep.equal(['10.244.1.7']);
  });

  it('with internalTrafficPolicy Local, only this node\'s endpoints', async () => {
    proxier.onServiceAdd(service('web', '10.96.0.10', { internalTrafficPolicy: 'Local' }));
    proxier.onSliceAdd(slice('web', [{ ip: '10.244.1.5', ready: true, node: 'node-a' }, { ip: '10.244.2.5', ready: true, node: 'node-b' }]));
    await proxier.syncProxyRules();
    expect([...proxier.routedEndpoints()!]).to.deep.equal(['10.244.1.5']);
  });

  it('the health server answers /nodelet/routed?ip= on loopback: 503 before a sync, then routed true/false; 400 for a bad address', async () => {
    const snap = new RoutedSnapshot();
    const health = new ProxyHealth({ clock: new FakeClock(), timeoutMs: 60_000, lastSynced: async () => undefined });
    const server = http.createServer(proxyHttpHandler(health, { routed: snap }));
    await listen(server, '127.0.0.1', 0);
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}${ROUTED_PATH}`;
    try {
      const get = async (q: string) => {
        const r = await fetch(`${base}?${q}`);
        return { status: r.status, body: await r.json() };
      };
      expect((await get('ip=10.244.1.5')).status).to.equal(503);
      snap.synced(new Map([['ns1/web', [servicePort({ name: 'web' })]]]), new Map([['ns1/web', new Map([['ns1/web:http', [endpoint('10.244.1.5')]]])]]));
      expect(await get('ip=10.244.1.5')).to.deep.equal({ status: 200, body: { ip: '10.244.1.5', synced: true, routed: true } });
      expect(await get('ip=10.244.1.6')).to.deep.equal({ status: 200, body: { ip: '10.244.1.6', synced: true, routed: false } });
      expect((await get('ip=nope')).status).to.equal(400);
    } finally {
      await closeServer(server);
    }
  });
});

