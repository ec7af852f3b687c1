// Fixture addresses: service IPs in 10.96.0.0/16 and pod IPs in 10.244.0.0/16 (RFC 1918).
import { expect } from 'chai';
import type { V1EndpointSlice, V1Service } from '@kubernetes/client-node';
import {
  EndpointsChangeTracker,
  flattenEndpoints,
  flattenServices,
  ServiceChangeTracker,
  type EndpointsMap,
  type ServiceMap,
} from '../../proxy/changetracker.ts';

const service = (port: number, resourceVersion = '1'): V1Service => ({
  metadata: { namespace: 'ns1', name: 'web', resourceVersion },
  spec: { clusterIP: '10.96.0.10', ports: [{ name: 'http', port }] },
});

const slice = (name: string, ips: string[], resourceVersion = '1'): V1EndpointSlice => ({
  addressType: 'IPv4',
  metadata: { namespace: 'ns1', name, resourceVersion, labels: { 'kubernetes.io/service-name': 'web' } },
  ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
  endpoints: ips.map((ip) => ({ addresses: [ip] })),
});

describe('proxy change trackers', () => {
  describe('ServiceChangeTracker', () => {
    it('adds, updates and deletes', () => {
      const t = new ServiceChangeTracker();
      const map: ServiceMap = new Map();
      expect(t.pending()).to.equal(false);

      expect(t.update(undefined, service(80))).to.equal(true);
      expect([...t.drain(map)]).to.deep.equal(['ns1/web']);
      expect(flattenServices(map).map((p) => p.port)).to.deep.equal([80]);
      expect(t.pending()).to.equal(false);

      t.update(service(80), service(81));
      expect([...t.drain(map)]).to.deep.equal(['ns1/web']);
      expect(flattenServices(map).map((p) => p.port)).to.deep.equal([81]);

      t.update(service(81), undefined);
      expect([...t.drain(map)]).to.deep.equal(['ns1/web']);
      expect(map.size).to.equal(0);
    });

    it('ignores an update that changes nothing the proxy uses', () => {
      const t = new ServiceChangeTracker();
      expect(t.update(service(80, '1'), service(80, '2'))).to.equal(false);
    });

    it('cancels a change that comes back to where it started', () => {
      const t = new ServiceChangeTracker();
      t.update(service(80), service(81));
      t.update(service(81), service(82));
      expect(t.pending()).to.equal(true);
      expect(t.update(service(82), service(80))).to.equal(false);
      // Created and deleted within one batch: nothing to do either.
      t.update(undefined, service(80));
      expect(t.update(service(80), undefined)).to.equal(false);
    });

    it('has nothing to track for a headless service', () => {
      const t = new ServiceChangeTracker();
      const headless: V1Service = { metadata: { namespace: 'ns1', name: 'h' }, spec: { clusterIP: 'None', ports: [{ port: 80 }] } };
      expect(t.update(undefined, headless)).to.equal(false);
    });
  });

  describe('EndpointsChangeTracker', () => {
    it('merges the slices of a service and tracks them per service', () => {
      const t = new EndpointsChangeTracker('node1');
      const map: EndpointsMap = new Map();
      t.update(undefined, slice('web-a', ['10.244.1.1']));
      t.update(undefined, slice('web-b', ['10.244.2.1']));
      expect([...t.drain(map)]).to.deep.equal(['ns1/web']);
      expect(flattenEndpoints(map).get('ns1/web:http')?.map((e) => e.ip)).to.deep.equal(['10.244.1.1', '10.244.2.1']);

      t.update(slice('web-a', ['10.244.1.1']), undefined);
      expect([...t.drain(map)]).to.deep.equal(['ns1/web']);
      expect(flattenEndpoints(map).get('ns1/web:http')?.map((e) => e.ip)).to.deep.equal(['10.244.2.1']);

      t.update(slice('web-b', ['10.244.2.1']), undefined);
      t.drain(map);
      expect(map.size).to.equal(0);
    });

    it('keeps the trigger times of endpoint changes made after it started, until taken', () => {
      const start = Date.parse('2026-11-24T09:00:00Z');
      const at = (iso: string, s: V1EndpointSlice): V1EndpointSlice => ({ ...s, metadata: { ...s.metadata, annotations: { 'endpoints.kubernetes.io/last-change-trigger-time': iso } } });
      const t = new EndpointsChangeTracker('node1', start);
      // Before the start (the initial list): not a latency of ours.
      t.update(undefined, at('2026-11-24T08:59:59Z', slice('web-a', ['10.244.1.1'])));
      expect(t.takeTriggerTimes()).to.deep.equal([]);
      t.update(slice('web-a', ['10.244.1.1']), at('2026-11-24T09:00:01.250000Z', slice('web-a', ['10.244.1.2'])));
      t.update(slice('web-a', ['10.244.1.2']), at('2026-11-24T09:00:02Z', slice('web-a', ['10.244.1.2', '10.244.1.3'])));
      // No endpoint change, a bad time, no annotation: nothing.
      t.update(slice('web-a', ['10.244.1.2', '10.244.1.3']), at('2026-11-24T09:00:03Z', slice('web-a', ['10.244.1.2', '10.244.1.3'], '2')));
      t.update(undefined, at('yesterday', slice('web-b', ['10.244.2.1'])));
      t.update(undefined, slice('web-c', ['10.244.3.1']));
      expect(t.takeTriggerTimes()).to.deep.equal([start + 1250, start + 2000]);
      expect(t.takeTriggerTimes(), 'taken once').to.deep.equal([]);
      // A removed slice's time is not a change time, and drops the service's pending ones.
      t.update(slice('web-b', ['10.244.2.1']), at('2026-11-24T09:00:04Z', slice('web-b', ['10.244.2.9'])));
      t.update(at('2026-11-24T09:00:05Z', slice('web-a', ['10.244.1.2', '10.244.1.3'])), undefined);
      expect(t.takeTriggerTimes()).to.deep.equal([]);
      // Without a start time none are kept.
      const plain = new EndpointsChangeTracker('node1');
      plain.update(undefined, at('2026-11-24T09:00:01Z', slice('web-a', ['10.244.1.1'])));
      expect(plain.takeTriggerTimes()).to.deep.equal([]);
    });

    it('ignores no-op updates and cancels changes that are undone', () => {
      const t = new EndpointsChangeTracker('node1');
      const map: EndpointsMap = new Map();
      t.update(undefined, slice('web-a', ['10.244.1.1']));
      t.drain(map);
      expect(t.update(slice('web-a', ['10.244.1.1'], '1'), slice('web-a', ['10.244.1.1'], '2'))).to.equal(false);
      expect(t.update(slice('web-a', ['10.244.1.1']), slice('web-a', ['10.244.1.2']))).to.equal(true);
      expect(t.update(slice('web-a', ['10.244.1.2']), slice('web-a', ['10.244.1.1']))).to.equal(false);
      // An endpoint moving between two slices of the same service changes nothing either.
      t.update(slice('web-a', ['10.244.1.1']), slice('web-a', []));
      expect(t.update(undefined, slice('web-b', ['10.244.1.1']))).to.equal(false);
    });
  });
});
