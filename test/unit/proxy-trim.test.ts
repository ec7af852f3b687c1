import { expect } from 'chai';
import type { V1EndpointSlice, V1Node, V1Service } from '@kubernetes/client-node';
import { healthCheckTargets } from '../../proxy/healthcheck.ts';
import { trimEndpointSlice, trimNode, trimService } from '../../proxy/trim.ts';
import { endpointsFromSlices, servicePortsFromService } from '../../proxy/types.ts';

// Objects as the API server sends them, with what the proxy never reads.
const meta = (name: string, extra: Record<string, unknown> = {}) => ({
  name,
  namespace: 'ns1',
  uid: `uid-${name}`,
  resourceVersion: '42',
  generation: 3,
  creationTimestamp: new Date('2026-11-24T00:00:00Z'),
  labels: { app: name },
  annotations: { 'kubectl.kubernetes.io/last-applied-configuration': 'x'.repeat(2000) },
  managedFields: [{ manager: 'kubectl', operation: 'Apply', fieldsV1: { 'f:spec': {} } }],
  ...extra,
});

const services: V1Service[] = [
  { metadata: meta('plain'), spec: { type: 'ClusterIP', clusterIP: '10.96.0.10', clusterIPs: ['10.96.0.10'], selector: { app: 'plain' }, ports: [{ name: 'http', port: 80, protocol: 'TCP', targetPort: 8080 }, { name: 'dns', port: 53, protocol: 'UDP' }] } },
  {
    metadata: meta('lb'),
    spec: {
      type: 'LoadBalancer', clusterIP: '10.96.0.11', clusterIPs: ['10.96.0.11'], externalTrafficPolicy: 'Local', healthCheckNodePort: 32000, externalIPs: ['192.0.2.7'],
      sessionAffinity: 'ClientIP', sessionAffinityConfig: { clientIP: { timeoutSeconds: 60 } }, internalTrafficPolicy: 'Local', selector: { app: 'lb' },
      ports: [{ name: 'web', port: 443, nodePort: 31443, protocol: 'TCP' }],
    },
    status: { loadBalancer: { ingress: [{ ip: '198.51.100.1' }, { ip: '198.51.100.2', ipMode: 'Proxy' }] }, conditions: [{ type: 'x', status: 'True', lastTransitionTime: new Date(0), reason: 'r', message: 'm' }] },
  },
  { metadata: meta('ext'), spec: { type: 'ExternalName', externalName: 'db.example' } },
  { metadata: meta('headless'), spec: { clusterIP: 'None', ports: [{ port: 80 }] } },
];

const endpoint = (ip: string, node: string, ready = true) => ({
  addresses: [ip],
  conditions: { ready, serving: ready, terminating: !ready },
  nodeName: node,
  zone: 'z1',
  targetRef: { kind: 'Pod', name: `pod-${ip}`, namespace: 'ns1', uid: `uid-${ip}` },
  deprecatedTopology: { 'kubernetes.io/hostname': node },
  hints: { forZones: [{ name: 'z1' }] },
});

const slices: V1EndpointSlice[] = [
  {
    metadata: meta('plain-abc', { labels: { 'kubernetes.io/service-name': 'plain', 'endpointslice.kubernetes.io/managed-by': 'endpointslice-controller.k8s.io' }, ownerReferences: [{ apiVersion: 'v1', kind: 'Service', name: 'plain', uid: 'u' }] }),
    addressType: 'IPv4',
    ports: [{ name: 'http', port: 8080, protocol: 'TCP' }, { name: 'dns', port: 53, protocol: 'UDP' }],
    endpoints: [endpoint('10.244.0.5', 'n1'), endpoint('10.244.1.5', 'n2', false)],
  },
  { metadata: meta('lb-1', { labels: { 'kubernetes.io/service-name': 'lb' } }), addressType: 'IPv4', ports: [{ name: 'web', port: 8443 }], endpoints: [endpoint('10.244.0.9', 'n1'), endpoint('10.244.1.9', 'n2')] },
];

describe('proxy/trim: what the proxy keeps of each object', () => {
  it('keeps everything the proxy reads: the same service ports, endpoints and health-check targets', () => {
    const ts = services.map(trimService);
    const tl = slices.map(trimEndpointSlice);
    expect(ts.map((s) => servicePortsFromService(s))).to.deep.equal(services.map((s) => servicePortsFromService(s)));
    expect(servicePortsFromService(ts[1]!)[0]).to.include({ stickySeconds: 60, healthCheckNodePort: 32000, externalTrafficPolicy: 'Local', internalTrafficPolicy: 'Local' });
    for (const node of ['n1', 'n2']) expect(endpointsFromSlices(tl, node)).to.deep.equal(endpointsFromSlices(slices, node));
    expect(healthCheckTargets(ts, tl, 'n1')).to.deep.equal(healthCheckTargets(services, slices, 'n1'));
    expect(healthCheckTargets(ts, tl, 'n1')).to.deep.equal([{ namespace: 'ns1', name: 'lb', port: 32000, localEndpoints: 1 }]);
  });

  it('drops what it never reads: managed fields, annotations, selector, status conditions, pod references', () => {
    const s = trimService(services[1]!);
    expect(s.metadata).to.deep.equal({ name: 'lb', namespace: 'ns1', uid: 'uid-lb', resourceVersion: '42', labels: { app: 'lb' } });
    expect(s.spec).to.not.have.property('selector');
    expect(s.spec).to.include({ healthCheckNodePort: 32000, type: 'LoadBalancer' });
    expect(s.status).to.deep.equal({ loadBalancer: services[1]!.status!.loadBalancer });
    const l = trimEndpointSlice(slices[0]!);
    expect(l.metadata).to.not.have.any.keys('annotations', 'managedFields', 'ownerReferences', 'creationTimestamp', 'generation');
    expect(l.endpoints![0]).to.deep.equal({ addresses: ['10.244.0.5'], conditions: { ready: true, serving: true, terminating: false }, nodeName: 'n1', zone: 'z1', hints: { forZones: [{ name: 'z1' }] } });
    expect(JSON.stringify(l).length).to.be.lessThan(JSON.stringify(slices[0]).length / 4);
    // The input is left as it was (the informer hands on the trimmed copy).
    expect(slices[0]!.endpoints![0]).to.have.property('targetRef');
  });

  it('keeps a service\'s load-balancer source ranges annotation, and only it', () => {
    const annotated = { ...services[1]!, metadata: { ...services[1]!.metadata, annotations: { 'service.beta.kubernetes.io/load-balancer-source-ranges': '192.0.2.0/24', other: 'x' } } };
    expect(trimService(annotated).metadata?.annotations).to.deep.equal({ 'service.beta.kubernetes.io/load-balancer-source-ranges': '192.0.2.0/24' });
  });

  it('keeps a slice\'s last-change-trigger-time annotation, and only it (network programming latency)', () => {
    const annotated = { ...slices[0]!, metadata: { ...slices[0]!.metadata, annotations: { 'endpoints.kubernetes.io/last-change-trigger-time': '2026-11-24T09:40:01.123456Z', other: 'x'.repeat(500) } } };
    expect(trimEndpointSlice(annotated).metadata?.annotations).to.deep.equal({ 'endpoints.kubernetes.io/last-change-trigger-time': '2026-11-24T09:40:01.123456Z' });
  });

  it('keeps of the proxy\'s Node its identity, labels (the zone), pod CIDRs and taints (eligibility), not the rest of its spec or its status', () => {
    const node: V1Node = {
      apiVersion: 'v1',
      kind: 'Node',
      metadata: meta('n1', { labels: { 'topology.kubernetes.io/zone': 'z1' }, annotations: { big: 'x'.repeat(500) } }),
      spec: { podCIDR: '10.244.0.0/24', podCIDRs: ['10.244.0.0/24'], providerID: 'x', taints: [{ key: 'k', effect: 'NoSchedule' }] },
      status: { addresses: [{ type: 'InternalIP', address: '10.0.0.1' }], images: [{ names: ['img'], sizeBytes: 1 }] },
    };
    expect(trimNode(node)).to.deep.equal({ apiVersion: 'v1', kind: 'Node', metadata: { name: 'n1', namespace: 'ns1', uid: 'uid-n1', resourceVersion: '42', labels: { 'topology.kubernetes.io/zone': 'z1' } }, spec: { podCIDR: '10.244.0.0/24', podCIDRs: ['10.244.0.0/24'], taints: [{ key: 'k', effect: 'NoSchedule' }] } });
  });

  it('takes objects with fields missing', () => {
    expect(trimService({})).to.deep.equal({});
    expect(trimEndpointSlice({ addressType: 'IPv4', endpoints: [] })).to.deep.equal({ addressType: 'IPv4', endpoints: [] });
    expect(trimEndpointSlice({ addressType: 'IPv4' })).to.deep.equal({ addressType: 'IPv4', endpoints: [] });
  });
});
