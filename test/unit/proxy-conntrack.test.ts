// Addresses: endpoints in 192.0.2.0/24 (RFC 5737), cluster IPs in 10.96.0.0/12.
import { expect } from 'chai';
import type { V1EndpointSlice, V1Service } from '@kubernetes/client-node';
import type { Exec } from '../../lib/exec.ts';
import { nullLogger } from '../../lib/log.ts';
import { ConntrackCleaner, conntrackDeletions, type ProxyState } from '../../proxy/conntrack.ts';
import type { LocalDetector } from '../../proxy/localdetect.ts';
import type { Proxier } from '../../proxy/proxier.ts';
import { endpointsFromSlices, serviceKey, servicePortsFromService } from '../../proxy/types.ts';
import { FakeClock, settle } from '../fakes/clock.ts';

const svc = (name: string, protocol: 'UDP' | 'TCP' = 'UDP', nodePort?: number): V1Service => ({
  metadata: { name, namespace: 'ns', resourceVersion: '1' },
  spec: {
    type: nodePort ? 'NodePort' : 'ClusterIP',
    clusterIP: name === 'dns' ? '10.96.0.10' : '10.96.0.20',
    ports: [{ name: 'p', port: 53, protocol, ...(nodePort ? { nodePort } : {}) }],
  },
});

const slice = (service: string, ips: string[], notReady: string[] = [], zones: Record<string, string> = {}): V1EndpointSlice => ({
  metadata: { name: `${service}-abc`, namespace: 'ns', labels: { 'kubernetes.io/service-name': service } },
  addressType: 'IPv4',
  ports: [{ name: 'p', port: 5353, protocol: 'UDP' }],
  endpoints: [
    ...ips.map((ip) => ({ addresses: [ip], conditions: { ready: true }, ...(zones[ip] ? { hints: { forZones: [{ name: zones[ip] }] } } : {}) })),
    ...notReady.map((ip) => ({ addresses: [ip], conditions: { ready: false } })),
  ],
});

function state(services: V1Service[], slices: V1EndpointSlice[], zone?: string): ProxyState {
  const s: ProxyState = { services: new Map(), endpoints: new Map(), ...(zone !== undefined ? { topology: { nodeName: 'n1', zone } } : {}) };
  for (const v of services) s.services.set(serviceKey('ns', v.metadata!.name!), servicePortsFromService(v));
  for (const sl of slices) {
    const name = sl.metadata!.labels!['kubernetes.io/service-name']!;
    s.endpoints.set(serviceKey('ns', name), endpointsFromSlices([sl], 'n1'));
  }
  return s;
}

const cmd = (argv: string[]) => argv.join(' ');

describe('proxy conntrack cleanup decisions (conntrackDeletions)', () => {
  const cases: Array<{ name: string; prev: ProxyState; cur: ProxyState; want: string[] }> = [
    {
      name: 'nothing changed: nothing to delete',
      prev: state([svc('dns')], [slice('dns', ['192.0.2.1'])]),
      cur: state([svc('dns')], [slice('dns', ['192.0.2.1'])]),
      want: [],
    },
    {
      name: 'a UDP service gets its first ready endpoint: flush flows to its IP:port',
      prev: state([svc('dns')], [slice('dns', [], ['192.0.2.1'])]),
      cur: state([svc('dns')], [slice('dns', ['192.0.2.1'])]),
      want: ['-D -p udp --orig-dst 10.96.0.10 --dport 53'],
    },
    {
      name: 'a new UDP service with endpoints counts as newly active (node port too)',
      prev: state([], []),
      cur: state([svc('dns', 'UDP', 30053)], [slice('dns', ['192.0.2.1'])]),
      want: ['-D -p udp --orig-dst 10.96.0.10 --dport 53', '-D -p udp --dport 30053'],
    },
    {
      name: 'an endpoint goes away: flush flows DNATed to it, for the cluster IP and the node port',
      prev: state([svc('dns', 'UDP', 30053)], [slice('dns', ['192.0.2.1', '192.0.2.2'])]),
      cur: state([svc('dns', 'UDP', 30053)], [slice('dns', ['192.0.2.2'])]),
      want: ['-D -p udp --orig-dst 10.96.0.10 --dport 53 --dst-nat 192.0.2.1', '-D -p udp --dport 30053 --dst-nat 192.0.2.1'],
    },
    {
      name: 'an endpoint turning not-ready counts as gone',
      prev: state([svc('dns')], [slice('dns', ['192.0.2.1', '192.0.2.2'])]),
      cur: state([svc('dns')], [slice('dns', ['192.0.2.2'], ['192.0.2.1'])]),
      want: ['-D -p udp --orig-dst 10.96.0.10 --dport 53 --dst-nat 192.0.2.1'],
    },
    {
      name: 'the last endpoint goes away',
      prev: state([svc('dns')], [slice('dns', ['192.0.2.1'])]),
      cur: state([svc('dns')], []),
      want: ['-D -p udp --orig-dst 10.96.0.10 --dport 53 --dst-nat 192.0.2.1'],
    },
    {
      name: 'a UDP service is deleted',
      prev: state([svc('dns')], [slice('dns', ['192.0.2.1'])]),
      cur: state([], []),
      want: ['-D -p udp --orig-dst 10.96.0.10 --dport 53'],
    },
    {
      name: 'the node moves to another zone: flows to the endpoints hinted for the old one go',
      prev: state([svc('dns')], [slice('dns', ['192.0.2.1', '192.0.2.2'], [], { '192.0.2.1': 'z1', '192.0.2.2': 'z2' })], 'z1'),
      cur: state([svc('dns')], [slice('dns', ['192.0.2.1', '192.0.2.2'], [], { '192.0.2.1': 'z1', '192.0.2.2': 'z2' })], 'z2'),
      want: ['-D -p udp --orig-dst 10.96.0.10 --dport 53 --dst-nat 192.0.2.1'],
    },
    {
      name: 'TCP services never need it',
      prev: state([svc('web', 'TCP')], [slice('web', ['192.0.2.1'])]),
      cur: state([], [slice('web', ['192.0.2.2'])]),
      want: [],
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      expect(conntrackDeletions(c.prev, c.cur).map(cmd)).to.deep.equal(c.want);
    });
  }
});

class RecordingProxier implements Proxier {
  calls: string[] = [];
  routedEndpoints() { return undefined; }
  start() { this.calls.push('start'); }
  async stop() { this.calls.push('stop'); }
  onServiceAdd(s: V1Service) { this.calls.push(`svc+ ${s.metadata?.name}`); }
  onServiceUpdate(_p: V1Service, s: V1Service) { this.calls.push(`svc~ ${s.metadata?.name}`); }
  onServiceDelete(s: V1Service) { this.calls.push(`svc- ${s.metadata?.name}`); }
  onSliceAdd(s: V1EndpointSlice) { this.calls.push(`slice+ ${s.metadata?.name}`); }
  onSliceUpdate(_p: V1EndpointSlice, s: V1EndpointSlice) { this.calls.push(`slice~ ${s.metadata?.name}`); }
  onSliceDelete(s: V1EndpointSlice) { this.calls.push(`slice- ${s.metadata?.name}`); }
  onTopologyChange(labels: Readonly<Record<string, string>>) { this.calls.push(`topology ${JSON.stringify(labels)}`); }
  setLocalDetector(d: LocalDetector) { this.calls.push(`detector ${JSON.stringify(d)}`); }
  setServiceCIDRs(cidrs: readonly string[]) { this.calls.push(`cidrs ${cidrs.join(',')}`); }
}

describe('proxy ConntrackCleaner', () => {
  let clock: FakeClock;
  let inner: RecordingProxier;
  let ran: string[];
  let lastSync: number | undefined;
  let cleaner: ConntrackCleaner;

  beforeEach(() => {
    clock = new FakeClock();
    inner = new RecordingProxier();
    ran = [];
    lastSync = undefined;
    const exec: Exec = async (c, args) => {
      ran.push(`${c} ${args.join(' ')}`);
      return { code: 1, stdout: '', stderr: 'conntrack v1.4.7 (conntrack-tools): 0 flow entries have been deleted.\n' };
    };
    cleaner = new ConntrackCleaner(inner, { exec, clock, log: nullLogger(), nodeName: 'n1', lastSynced: async () => lastSync, pollMs: 100 });
  });
  afterEach(async () => {
    const s = cleaner.stop();
    await clock.advance(1000);
    await s;
  });

  it('passes every event through to the proxier it wraps', async () => {
    cleaner.start();
    const s = svc('dns');
    const sl = slice('dns', ['192.0.2.1']);
    cleaner.onServiceAdd(s);
    cleaner.onServiceUpdate(s, s);
    cleaner.onSliceAdd(sl);
    cleaner.onSliceUpdate(sl, sl);
    cleaner.onSliceDelete(sl);
    cleaner.onServiceDelete(s);
    cleaner.onTopologyChange({ 'topology.kubernetes.io/zone': 'z1' });
    cleaner.setLocalDetector({ mode: 'NodeCIDR', cidr: '10.244.0.0/24' });
    cleaner.setServiceCIDRs(['10.96.0.0/12']);
    expect(inner.calls).to.deep.equal([
      'start', 'svc+ dns', 'svc~ dns', 'slice+ dns-abc', 'slice~ dns-abc', 'slice- dns-abc', 'svc- dns',
      'topology {"topology.kubernetes.io/zone":"z1"}', 'detector {"mode":"NodeCIDR","cidr":"10.244.0.0/24"}', 'cidrs 10.96.0.0/12',
    ]);
  });

  it('runs the deletes only after a sync that ended after the change, then once more after the next sync', async () => {
    lastSync = clock.now();
    cleaner.start();
    await clock.advance(10);
    cleaner.onServiceAdd(svc('dns'));
    cleaner.onSliceAdd(slice('dns', ['192.0.2.1']));
    await clock.advance(500);
    expect(ran).to.deep.equal([]); // no sync since the change
    lastSync = clock.now();
    await clock.advance(100);
    expect(ran).to.deep.equal(['conntrack -D -p udp --orig-dst 10.96.0.10 --dport 53']);
    await clock.advance(1000);
    expect(ran.length).to.equal(1);
    lastSync = clock.now();
    await clock.advance(100);
    expect(ran.length).to.equal(2);
    lastSync = clock.now();
    await clock.advance(100);
    expect(ran.length).to.equal(2);
  });

  it('after the node\'s zone changes, forgets the flows to endpoints hinted for the old zone only', async () => {
    cleaner.start();
    cleaner.onTopologyChange({ 'topology.kubernetes.io/zone': 'z1' });
    cleaner.onServiceAdd(svc('dns'));
    cleaner.onSliceAdd(slice('dns', ['192.0.2.1', '192.0.2.2'], [], { '192.0.2.1': 'z1', '192.0.2.2': 'z2' }));
    await clock.advance(200);
    lastSync = clock.now();
    await clock.advance(1000);
    lastSync = clock.now();
    await clock.advance(1000);
    ran = [];
    cleaner.onTopologyChange({ 'topology.kubernetes.io/zone': 'z1', other: 'label' }); // same zone: nothing
    await clock.advance(200);
    lastSync = clock.now();
    await clock.advance(1000);
    expect(ran).to.deep.equal([]);
    cleaner.onTopologyChange({ 'topology.kubernetes.io/zone': 'z2' });
    await clock.advance(200);
    lastSync = clock.now();
    await clock.advance(1000);
    expect(ran).to.deep.equal(['conntrack -D -p udp --orig-dst 10.96.0.10 --dport 53 --dst-nat 192.0.2.1']);
  });

  it('does nothing for TCP changes', async () => {
    cleaner.start();
    cleaner.onServiceAdd(svc('web', 'TCP'));
    cleaner.onSliceAdd(slice('web', ['192.0.2.1']));
    lastSync = clock.now() + 1;
    await clock.advance(1000);
    await settle();
    expect(ran).to.deep.equal([]);
  });
});
