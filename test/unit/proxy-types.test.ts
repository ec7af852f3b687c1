// Fixture addresses: service IPs in 10.96.0.0/16 and pod IPs in 10.244.0.0/16
// (RFC 1918 private ranges), external IP 203.0.113.5 (TEST-NET-3) and
// load-balancer IP 198.51.100.7 (TEST-NET-2), RFC 5737.
import { expect } from 'chai';
import type { V1EndpointSlice, V1Service } from '@kubernetes/client-node';
import { endpointsFromSlices, servicePortsFromService } from '../../proxy/types.ts';

const webService: V1Service = {
  metadata: { namespace: 'ns1', name: 'web' },
  spec: {
    type: 'LoadBalancer',
    clusterIP: '10.96.0.10',
    clusterIPs: ['10.96.0.10', 'fd00::10'],
    externalIPs: ['203.0.113.5'],
    externalTrafficPolicy: 'Local',
    healthCheckNodePort: 32000,
    sessionAffinity: 'ClientIP',
    ports: [
      { name: 'http', port: 80, nodePort: 30080, protocol: 'TCP' },
      { name: 'dns', port: 53, nodePort: 30053, protocol: 'UDP' },
    ],
  },
  status: { loadBalancer: { ingress: [{ ip: '198.51.100.7' }, { hostname: 'lb.example' }, { ip: '198.51.100.8', ipMode: 'Proxy' }] } },
};

function slice(name: string, over: Partial<V1EndpointSlice> = {}): V1EndpointSlice {
  return {
    addressType: 'IPv4',
    metadata: { namespace: 'ns1', name, labels: { 'kubernetes.io/service-name': 'web' } },
    ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
    endpoints: [],
    ...over,
  };
}

describe('proxy types', () => {
  it('converts a Service into one ServicePortInfo per port', () => {
    const ports = servicePortsFromService(webService);
    expect(ports).to.have.length(2);
    expect(ports[0]).to.deep.equal({
      namespace: 'ns1',
      name: 'web',
      portName: 'http',
      protocol: 'TCP',
      clusterIPs: ['10.96.0.10'],
      port: 80,
      nodePort: 30080,
      externalIPs: ['203.0.113.5'],
      loadBalancerIPs: ['198.51.100.7'],
      sessionAffinity: 'ClientIP',
      stickySeconds: 10800,
      externalTrafficPolicy: 'Local',
      internalTrafficPolicy: 'Cluster',
      healthCheckNodePort: 32000,
    });
    expect(ports[1]?.protocol).to.equal('UDP');
  });

  it('ignores externalTrafficPolicy Local on a service that is not reachable from outside', () => {
    const [p] = servicePortsFromService({
      metadata: { namespace: 'ns1', name: 'a' },
      spec: { clusterIP: '10.96.0.11', externalTrafficPolicy: 'Local', ports: [{ port: 80 }] },
    });
    expect(p?.externalTrafficPolicy).to.equal('Cluster');
    expect(p?.portName).to.equal('');
    expect(p?.protocol).to.equal('TCP');
  });

  it('reads loadBalancerSourceRanges (IPv4, host bits cleared, once each), else the older annotation', () => {
    const ranges = (spec: string[] | undefined, annotation?: string) =>
      servicePortsFromService({
        ...webService,
        metadata: { ...webService.metadata, ...(annotation !== undefined ? { annotations: { 'service.beta.kubernetes.io/load-balancer-source-ranges': annotation } } : {}) },
        spec: { ...webService.spec, ...(spec ? { loadBalancerSourceRanges: spec } : {}) },
      })[0]!.loadBalancerSourceRanges;
    expect(ranges([' 198.51.100.77/24', '192.0.2.7/32', '2001:db8::/32', 'nonsense', '198.51.100.0/24', '0.0.0.0/0'])).to.deep.equal(['198.51.100.0/24', '192.0.2.7/32', '0.0.0.0/0']);
    expect(ranges(undefined, '203.0.113.0/25, 192.0.2.0/24')).to.deep.equal(['203.0.113.0/25', '192.0.2.0/24']);
    expect(ranges(['192.0.2.0/24'], '203.0.113.0/25'), 'the field wins').to.deep.equal(['192.0.2.0/24']);
    expect(ranges(undefined), 'none: left out').to.equal(undefined);
    expect(ranges([]), 'none: left out').to.equal(undefined);
  });

  it('skips headless and ExternalName services', () => {
    expect(servicePortsFromService({ metadata: { namespace: 'ns1', name: 'h' }, spec: { clusterIP: 'None', ports: [{ port: 80 }] } })).to.deep.equal([]);
    expect(servicePortsFromService({ metadata: { namespace: 'ns1', name: 'x' }, spec: { type: 'ExternalName', externalName: 'example.org' } })).to.deep.equal([]);
  });

  it('merges slices per service port, with conditions defaulted as upstream', () => {
    const a = slice('web-a', {
      endpoints: [
        { addresses: ['10.244.2.1'], nodeName: 'node2' },
        { addresses: ['10.244.1.1'], nodeName: 'node1', conditions: { ready: false, terminating: true, serving: true } },
      ],
    });
    const b = slice('web-b', {
      ports: [
        { name: 'http', port: 8080, protocol: 'TCP' },
        { name: 'metrics', port: 9090, protocol: 'TCP' },
      ],
      endpoints: [
        { addresses: ['10.244.2.1'], nodeName: 'node2' }, // the same endpoint again: kept once
        { addresses: ['10.244.10.1'], conditions: { ready: false } },
        { addresses: [] },
      ],
    });
    const got = endpointsFromSlices([b, a], 'node1');
    expect([...got.keys()]).to.deep.equal(['ns1/web:http', 'ns1/web:metrics']);
    expect(got.get('ns1/web:http')).to.deep.equal([
      { ip: '10.244.1.1', port: 8080, ready: false, serving: true, terminating: true, isLocal: true, nodeName: 'node1' },
      { ip: '10.244.2.1', port: 8080, ready: true, serving: true, terminating: false, isLocal: false, nodeName: 'node2' },
      { ip: '10.244.10.1', port: 8080, ready: false, serving: false, terminating: false, isLocal: false },
    ]);
    expect(got.get('ns1/web:metrics')?.map((e) => `${e.ip}:${e.port}`)).to.deep.equal(['10.244.2.1:9090', '10.244.10.1:9090']);
  });

  it('reads an endpoint\'s topology hints (zones and nodes, sorted; none left out)', () => {
    const got = endpointsFromSlices([slice('web-h', {
      endpoints: [
        { addresses: ['10.244.1.1'], nodeName: 'node1', hints: { forZones: [{ name: 'z2' }, { name: 'z1' }], forNodes: [{ name: 'node1' }] } },
        { addresses: ['10.244.1.2'], hints: { forZones: [] } },
        { addresses: ['10.244.1.3'] },
      ],
    })], 'node1').get('ns1/web:http')!;
    expect(got[0]).to.deep.include({ zoneHints: ['z1', 'z2'], nodeHints: ['node1'] });
    expect(got[1]).to.not.have.any.keys('zoneHints', 'nodeHints');
    expect(got[2]).to.not.have.any.keys('zoneHints', 'nodeHints');
  });

  it('ignores slices that are IPv6, FQDN or not tied to a service', () => {
    const eps = [{ addresses: ['10.244.1.1'] }];
    expect(endpointsFromSlices([slice('v6', { addressType: 'IPv6', endpoints: [{ addresses: ['fd00::1'] }] })], 'n').size).to.equal(0);
    expect(endpointsFromSlices([slice('f', { addressType: 'FQDN', endpoints: eps })], 'n').size).to.equal(0);
    expect(endpointsFromSlices([slice('x', { metadata: { namespace: 'ns1', name: 'x' }, endpoints: eps })], 'n').size).to.equal(0);
  });
});
