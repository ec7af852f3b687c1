// Which endpoints a node uses, as upstream's CategorizeEndpoints table
// (pkg/proxy/topology_test.go): traffic policies, serving-terminating
// fallback and topology hints. Pod IPs in 10.244.0.0/16 (RFC 1918).
import { expect } from 'chai';
import { categorizeEndpoints, clusterEndpoints, topologyMode, type Topology } from '../../proxy/categorize.ts';
import type { Endpoint, ServicePortInfo } from '../../proxy/types.ts';

const sp = (over: Partial<ServicePortInfo> = {}): ServicePortInfo => ({
  namespace: 'ns', name: 'svc', portName: '', protocol: 'TCP', clusterIPs: ['10.96.0.1'], port: 80, nodePort: 0,
  externalIPs: [], loadBalancerIPs: [], sessionAffinity: 'None', stickySeconds: 0,
  externalTrafficPolicy: 'Cluster', internalTrafficPolicy: 'Cluster', healthCheckNodePort: 0, ...over,
});

/** "10.244.0.N", ready unless said, with zone hints `z`, node hints `n`, on node1 when local. */
function ep(n: number, o: { z?: string[]; n?: string[]; ready?: boolean; terminating?: boolean; local?: boolean } = {}): Endpoint {
  const ready = o.ready ?? true;
  const e: Endpoint = { ip: `10.244.0.${n}`, port: 80, ready, serving: ready || (o.terminating ?? false), terminating: o.terminating ?? false, isLocal: o.local ?? false };
  if (o.z) e.zoneHints = o.z;
  if (o.n) e.nodeHints = o.n;
  return e;
}

const here: Topology = { nodeName: 'node1', zone: 'zone-a' };
const ips = (eps: readonly Endpoint[]) => eps.map((e) => e.ip.split('.')[3]).join(',');

describe('proxy/categorize: endpoints by policy and topology', () => {
  const cases: Array<{ name: string; eps: Endpoint[]; topo?: Topology; svc?: Partial<ServicePortInfo>; mode: string; cluster: string; local?: string; reachable?: string }> = [
    { name: 'no hints: every ready endpoint', eps: [ep(1), ep(2), ep(3)], topo: here, mode: '', cluster: '1,2,3' },
    { name: 'zone hints, one for this zone: only those', eps: [ep(1, { z: ['zone-a'] }), ep(2, { z: ['zone-b'] }), ep(3, { z: ['zone-a'] })], topo: here, mode: 'PreferSameZone', cluster: '1,3' },
    { name: 'an endpoint hinted for several zones', eps: [ep(1, { z: ['zone-b', 'zone-a'] }), ep(2, { z: ['zone-b'] })], topo: here, mode: 'PreferSameZone', cluster: '1' },
    { name: 'one ready endpoint without hints: hints ignored', eps: [ep(1, { z: ['zone-a'] }), ep(2)], topo: here, mode: '', cluster: '1,2' },
    { name: 'a not-ready endpoint without hints does not count', eps: [ep(1, { z: ['zone-a'] }), ep(2, { z: ['zone-b'] }), ep(3, { ready: false })], topo: here, mode: 'PreferSameZone', cluster: '1' },
    { name: 'no endpoint hinted for this zone: all of them', eps: [ep(1, { z: ['zone-b'] }), ep(2, { z: ['zone-c'] })], topo: here, mode: '', cluster: '1,2' },
    { name: 'the node has no zone label: hints ignored', eps: [ep(1, { z: ['zone-a'] }), ep(2, { z: ['zone-b'] })], topo: { nodeName: 'node1', zone: '' }, mode: '', cluster: '1,2' },
    { name: 'no topology known: hints ignored', eps: [ep(1, { z: ['zone-a'] }), ep(2, { z: ['zone-b'] })], mode: '', cluster: '1,2' },
    { name: 'node hints, one for this node: PreferSameNode', eps: [ep(1, { z: ['zone-a'], n: ['node1'] }), ep(2, { z: ['zone-a'], n: ['node2'] }), ep(3, { z: ['zone-b'], n: ['node3'] })], topo: here, mode: 'PreferSameNode', cluster: '1' },
    { name: 'node hints, none for this node: falls back to the zone', eps: [ep(1, { z: ['zone-a'], n: ['node2'] }), ep(2, { z: ['zone-a'], n: ['node2'] }), ep(3, { z: ['zone-b'], n: ['node3'] })], topo: here, mode: 'PreferSameZone', cluster: '1,2' },
    { name: 'node hints on some only: the zone decides', eps: [ep(1, { z: ['zone-a'], n: ['node1'] }), ep(2, { z: ['zone-a'] }), ep(3, { z: ['zone-b'] })], topo: here, mode: 'PreferSameZone', cluster: '1,2' },
    { name: 'nothing ready: serving terminating ones, whatever their hints', eps: [ep(1, { ready: false, terminating: true, z: ['zone-b'] }), ep(2, { ready: false, z: ['zone-a'] })], topo: here, mode: '', cluster: '1' },
    {
      name: 'internal Local policy: local endpoints, hints aside',
      svc: { internalTrafficPolicy: 'Local' },
      eps: [ep(1, { z: ['zone-b'], local: true }), ep(2, { z: ['zone-a'] })],
      topo: here, mode: 'PreferSameZone', cluster: '', local: '1', reachable: '1',
    },
    {
      name: 'external Local policy: cluster endpoints by hints, local ones besides; both reachable',
      svc: { nodePort: 30080, externalTrafficPolicy: 'Local' },
      eps: [ep(1, { z: ['zone-b'], local: true }), ep(2, { z: ['zone-a'] }), ep(3, { z: ['zone-b'] })],
      topo: here, mode: 'PreferSameZone', cluster: '2', local: '1', reachable: '1,2',
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      expect(topologyMode(c.eps, c.topo)).to.equal(c.mode);
      const got = categorizeEndpoints(c.eps, sp(c.svc), c.topo);
      expect(ips(got.cluster), 'cluster').to.equal(c.cluster);
      expect(ips(got.local), 'local').to.equal(c.local ?? '');
      expect(ips(got.reachable), 'reachable').to.equal(c.reachable ?? c.cluster);
      expect(got.hasAny).to.equal(true);
      if (c.svc === undefined) expect(ips(clusterEndpoints(c.eps, c.topo))).to.equal(c.cluster);
    });
  }

  it('no endpoints at all: nothing, and hasAny false', () => {
    expect(categorizeEndpoints([], sp(), here)).to.deep.equal({ cluster: [], local: [], reachable: [], hasAny: false });
  });
});
