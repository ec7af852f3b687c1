// Addresses: endpoints in 192.0.2.0/24 (RFC 5737), cluster IPs in 10.96.0.0/12;
// IPv6 ones all in 2001:db8::/32 (RFC 3849).
import { expect } from 'chai';
import type { V1EndpointSlice, V1Service } from '@kubernetes/client-node';
import type { Exec } from '../../lib/exec.ts';
import type { IPFamily } from '../../lib/ip.ts';
import { nullLogger } from '../../lib/log.ts';
import { Registry } from 'prom-client';
import { ConntrackReconciler, parseConntrackList, staleFlowDeletions, type SyncingProxier, type UdpFlow } from '../../proxy/conntrack.ts';
import type { LocalDetector } from '../../proxy/localdetect.ts';
import type { SyncedState } from '../../proxy/proxier.ts';
import { endpointsFromSlices, serviceKey, servicePortsFromService } from '../../proxy/types.ts';
import { FakeClock } from '../fakes/clock.ts';
import { labeledMetricValue, metricValue } from '../fakes/proxyobjects.ts';

const svc = (name: string, protocol: 'UDP' | 'TCP' = 'UDP', nodePort?: number): V1Service => ({
  metadata: { name, namespace: 'ns', resourceVersion: '1' },
  spec: {
    type: nodePort ? 'NodePort' : 'ClusterIP',
    clusterIP: name === 'dns' ? '10.96.0.10' : '10.96.0.20',
    ports: [{ name: 'p', port: 53, protocol, ...(nodePort ? { nodePort } : {}) }],
  },
});

const slice = (service: string, ips: string[], notReady: string[] = [], zones: Record<string, string> = {}, terminating: string[] = []): V1EndpointSlice => ({
  metadata: { name: `${service}-abc`, namespace: 'ns', labels: { 'kubernetes.io/service-name': service } },
  addressType: 'IPv4',
  ports: [{ name: 'p', port: 5353, protocol: 'UDP' }],
  endpoints: [
    ...ips.map((ip) => ({ addresses: [ip], conditions: { ready: true }, ...(zones[ip] ? { hints: { forZones: [{ name: zones[ip] }] } } : {}) })),
    ...notReady.map((ip) => ({ addresses: [ip], conditions: { ready: false } })),
    ...terminating.map((ip) => ({ addresses: [ip], conditions: { ready: false, serving: true, terminating: true } })),
  ],
});

function state(services: V1Service[], slices: V1EndpointSlice[], zone?: string, family: IPFamily = 'IPv4'): SyncedState {
  const s: SyncedState = { services: new Map(), endpoints: new Map(), ...(zone !== undefined ? { topology: { nodeName: 'n1', zone } } : {}) };
  for (const v of services) s.services.set(serviceKey('ns', v.metadata!.name!), servicePortsFromService(v, family));
  for (const sl of slices) {
    const name = sl.metadata!.labels!['kubernetes.io/service-name']!;
    s.endpoints.set(serviceKey('ns', name), endpointsFromSlices([sl], 'n1', family));
  }
  return s;
}

/** A dual-stack dns service (UDP 53, node port 30053) and its IPv6 slice; `externalIP` as the API may spell it. */
const svc6 = (externalIP?: string): V1Service => {
  const s = svc('dns', 'UDP', 30053);
  s.spec = { ...s.spec, ipFamilies: ['IPv4', 'IPv6'], clusterIPs: ['10.96.0.10', '2001:db8::10'], ...(externalIP ? { externalIPs: [externalIP] } : {}) };
  return s;
};
const slice6 = (ips: string[]): V1EndpointSlice => ({ ...slice('dns', ips), metadata: { name: 'dns-v6', namespace: 'ns', labels: { 'kubernetes.io/service-name': 'dns' } }, addressType: 'IPv6' });
const state6 = (ips: string[], externalIP?: string) => state([svc6(externalIP)], [slice6(ips)], undefined, 'IPv6');

const cmd = (argv: string[]) => argv.join(' ');
/** A flow from a client on the node (192.0.2.100) to dst:dport, answered by replySrc. */
const flow = (origDst: string, origDport: number, replySrc: string): UdpFlow => ({ origDst, origDport, replySrc });
const del = (dst: string, port: number, replySrc: string) => `-D -p udp --orig-dst ${dst} --orig-port-dst ${port} --reply-src ${replySrc}`;
const LOCAL = new Set(['127.0.0.1', '192.0.2.100']);
const del6 = (dst: string, port: number, replySrc: string) => `-D -p udp -f ipv6 --orig-dst ${dst} --orig-port-dst ${port} --reply-src ${replySrc}`;
const LOCAL6 = new Set(['::1', '2001:db8::100']);

// What `conntrack -L -p udp -f ipv4` prints (conntrack-tools 1.4.7): the original tuple, then the reply's.
const LIST = [
  'udp      17 28 src=192.0.2.100 dst=10.96.0.10 sport=40001 dport=53 src=192.0.2.1 dst=192.0.2.100 sport=5353 dport=40001 mark=0 use=1',
  'udp      17 29 src=192.0.2.100 dst=10.96.0.10 sport=40002 dport=53 [UNREPLIED] src=10.96.0.10 dst=192.0.2.100 sport=53 dport=40002 mark=0 use=1',
  'udp      17 179 src=198.51.100.7 dst=192.0.2.100 sport=5000 dport=30053 src=192.0.2.2 dst=198.51.100.7 sport=5353 dport=5000 [ASSURED] mark=0 zone=3 use=2',
  'tcp      6 431999 ESTABLISHED src=192.0.2.100 dst=10.96.0.20 sport=1 dport=2 src=192.0.2.1 dst=192.0.2.100 sport=2 dport=1 [ASSURED] mark=0 use=1',
  'garbage line',
  '',
].join('\n');

describe('proxy conntrack: parseConntrackList', () => {
  it('reads the original destination and port and the reply source of each UDP entry', () => {
    expect(parseConntrackList(LIST)).to.deep.equal([
      flow('10.96.0.10', 53, '192.0.2.1'),
      flow('10.96.0.10', 53, '10.96.0.10'),
      flow('192.0.2.100', 30053, '192.0.2.2'),
    ]);
  });
});

// What `conntrack -L -p udp -f ipv6` printed (conntrack-tools 1.4.7) in a scratch network namespace: a flow
// DNATed from [2001:db8::10]:53 to [2001:db8::1]:5353, one unreplied, one not DNATed.
const LIST6 = [
  'udp      17 29 src=::1 dst=2001:db8::10 sport=49164 dport=53 src=2001:db8::1 dst=::1 sport=5353 dport=49164 mark=0 use=1',
  'udp      17 29 src=::1 dst=::1 sport=53468 dport=9999 [UNREPLIED] src=::1 dst=::1 sport=9999 dport=53468 mark=0 use=1',
  'udp      17 29 src=2001:db8::2 dst=2001:db8::1 sport=42633 dport=5353 src=2001:db8::1 dst=2001:db8::2 sport=5353 dport=42633 mark=0 use=1',
  '',
].join('\n');

describe('proxy conntrack: parseConntrackList, IPv6', () => {
  it('reads IPv6 entries alike', () => {
    expect(parseConntrackList(LIST6)).to.deep.equal([flow('2001:db8::10', 53, '2001:db8::1'), flow('::1', 9999, '::1'), flow('2001:db8::1', 5353, '2001:db8::1')]);
  });
});

describe('proxy conntrack: staleFlowDeletions', () => {
  const dns = (...ips: string[]) => state([svc('dns', 'UDP', 30053)], [slice('dns', ips)]);
  const cases: Array<{ name: string; state: SyncedState; removed?: SyncedState; flows: UdpFlow[]; want: string[] }> = [
    {
      name: 'flows to a ready endpoint stay',
      state: dns('192.0.2.1'),
      flows: [flow('10.96.0.10', 53, '192.0.2.1'), flow('192.0.2.100', 30053, '192.0.2.1')],
      want: [],
    },
    {
      name: 'a flow DNATed to an endpoint that is gone goes, by cluster IP and by node port (one delete for two flows alike)',
      state: dns('192.0.2.2'),
      flows: [flow('10.96.0.10', 53, '192.0.2.1'), flow('10.96.0.10', 53, '192.0.2.1'), flow('192.0.2.100', 30053, '192.0.2.1'), flow('10.96.0.10', 53, '192.0.2.2')],
      want: [del('10.96.0.10', 53, '192.0.2.1'), del('192.0.2.100', 30053, '192.0.2.1')],
    },
    {
      name: 'a flow that met no DNAT (the service had no endpoint then) goes once it has one',
      state: dns('192.0.2.1'),
      flows: [flow('10.96.0.10', 53, '10.96.0.10'), flow('127.0.0.1', 30053, '127.0.0.1')],
      want: [del('10.96.0.10', 53, '10.96.0.10'), del('127.0.0.1', 30053, '127.0.0.1')],
    },
    {
      name: 'an endpoint turning not-ready counts as gone; a terminating one that still serves keeps its flows',
      state: state([svc('dns')], [slice('dns', ['192.0.2.2'], ['192.0.2.1'], {}, ['192.0.2.3'])]),
      flows: [flow('10.96.0.10', 53, '192.0.2.1'), flow('10.96.0.10', 53, '192.0.2.3')],
      want: [del('10.96.0.10', 53, '192.0.2.1')],
    },
    {
      name: 'no endpoint left: DNATed flows go (the next packet is rejected), un-DNATed ones stay',
      state: state([svc('dns')], []),
      flows: [flow('10.96.0.10', 53, '192.0.2.1'), flow('10.96.0.10', 53, '10.96.0.10')],
      want: [del('10.96.0.10', 53, '192.0.2.1')],
    },
    {
      name: 'a deleted service: its DNATed flows go',
      state: state([], []),
      removed: dns('192.0.2.1'),
      flows: [flow('10.96.0.10', 53, '192.0.2.1'), flow('192.0.2.100', 30053, '192.0.2.1'), flow('10.96.0.10', 53, '10.96.0.10')],
      want: [del('10.96.0.10', 53, '192.0.2.1'), del('192.0.2.100', 30053, '192.0.2.1')],
    },
    {
      name: 'the node\'s zone: flows to an endpoint hinted for another zone go',
      state: state([svc('dns')], [slice('dns', ['192.0.2.1', '192.0.2.2'], [], { '192.0.2.1': 'z1', '192.0.2.2': 'z2' })], 'z2'),
      flows: [flow('10.96.0.10', 53, '192.0.2.1'), flow('10.96.0.10', 53, '192.0.2.2')],
      want: [del('10.96.0.10', 53, '192.0.2.1')],
    },
    {
      name: 'flows that are not to a UDP service stay: another port, another address, a node port to a remote host, TCP services',
      state: state([svc('dns', 'UDP', 30053), svc('web', 'TCP')], [slice('dns', ['192.0.2.1']), slice('web', ['192.0.2.5'])]),
      flows: [flow('10.96.0.10', 54, '192.0.2.9'), flow('10.96.0.11', 53, '192.0.2.9'), flow('198.51.100.7', 30053, '198.51.100.7'), flow('10.96.0.20', 53, '192.0.2.9')],
      want: [],
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const removed = c.removed ? [...c.removed.services.values()].flat() : [];
      expect(staleFlowDeletions(c.state, removed, c.flows, LOCAL).map(cmd)).to.deep.equal(c.want);
    });
  }
});

describe('proxy conntrack: staleFlowDeletions, IPv6', () => {
  const cases: Array<{ name: string; state: SyncedState; flows: UdpFlow[]; want: string[] }> = [
    {
      name: 'a flow DNATed to an endpoint that is gone goes (deleted with -f ipv6), by cluster IP and node port; the kept endpoint\'s stay',
      state: state6(['2001:db8::2']),
      flows: [flow('2001:db8::10', 53, '2001:db8::1'), flow('2001:db8::10', 53, '2001:db8::2'), flow('::1', 30053, '2001:db8::1'), flow('2001:db8::100', 30053, '2001:db8::2')],
      want: [del6('2001:db8::10', 53, '2001:db8::1'), del6('::1', 30053, '2001:db8::1')],
    },
    {
      name: 'an un-DNATed flow goes once there is an endpoint; flows to the IPv4 cluster IP are not this family\'s',
      state: state6(['2001:db8::1']),
      flows: [flow('2001:db8::10', 53, '2001:db8::10'), flow('10.96.0.10', 53, '192.0.2.9')],
      want: [del6('2001:db8::10', 53, '2001:db8::10')],
    },
    {
      name: 'addresses compare whatever their spelling in the API or in conntrack; the delete keeps conntrack\'s',
      state: state6(['2001:db8::2'], '2001:DB8:0:0::20'),
      flows: [flow('2001:db8::20', 53, '2001:db8::1'), flow('2001:db8::20', 53, '2001:db8:0::2')],
      want: [del6('2001:db8::20', 53, '2001:db8::1')],
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      expect(staleFlowDeletions(c.state, [], c.flows, LOCAL6, 'IPv6').map(cmd)).to.deep.equal(c.want);
    });
  }

  it('the flows conntrack listed: the one DNATed to a gone endpoint goes', () => {
    expect(staleFlowDeletions(state6(['2001:db8::2']), [], parseConntrackList(LIST6), LOCAL6, 'IPv6').map(cmd)).to.deep.equal([del6('2001:db8::10', 53, '2001:db8::1')]);
  });
});

class RecordingProxier implements SyncingProxier {
  readonly family: IPFamily;
  calls: string[] = [];
  listeners: ((s: SyncedState) => void)[] = [];
  routedEndpoints() { return undefined; }
  onSynced(l: (s: SyncedState) => void) { this.listeners.push(l); }
  sync(s: SyncedState) { for (const l of this.listeners) l(s); }
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
  constructor(family: IPFamily = 'IPv4') { this.family = family; }
}

describe('proxy ConntrackReconciler', () => {
  let clock: FakeClock;
  let inner: RecordingProxier;
  let ran: string[];
  let table: string;
  let registry: Registry;
  let reconciler: ConntrackReconciler;

  beforeEach(() => {
    clock = new FakeClock();
    inner = new RecordingProxier();
    ran = [];
    table = '';
    registry = new Registry();
    const exec: Exec = async (c, args) => {
      ran.push(`${c} ${args.join(' ')}`);
      if (args[0] === '-L') return { code: 0, stdout: table, stderr: 'conntrack v1.4.7 (conntrack-tools): 3 flow entries have been shown.\n' };
      return { code: 0, stdout: '', stderr: 'conntrack v1.4.7 (conntrack-tools): 2 flow entries have been deleted.\n' };
    };
    reconciler = new ConntrackReconciler(inner, { exec, clock, log: nullLogger(), registry, localIPs: () => LOCAL });
  });
  afterEach(async () => {
    await reconciler.stop();
  });

  it('passes every event through to the proxier it wraps', async () => {
    reconciler.start();
    const s = svc('dns');
    const sl = slice('dns', ['192.0.2.1']);
    reconciler.onServiceAdd(s);
    reconciler.onServiceUpdate(s, s);
    reconciler.onSliceAdd(sl);
    reconciler.onSliceUpdate(sl, sl);
    reconciler.onSliceDelete(sl);
    reconciler.onServiceDelete(s);
    reconciler.onTopologyChange({ 'topology.kubernetes.io/zone': 'z1' });
    reconciler.setLocalDetector({ mode: 'NodeCIDR', cidr: '10.244.0.0/24' });
    reconciler.setServiceCIDRs(['10.96.0.0/12']);
    await reconciler.stop();
    expect(inner.calls).to.deep.equal([
      'start', 'svc+ dns', 'svc~ dns', 'slice+ dns-abc', 'slice~ dns-abc', 'slice- dns-abc', 'svc- dns',
      'topology {"topology.kubernetes.io/zone":"z1"}', 'detector {"mode":"NodeCIDR","cidr":"10.244.0.0/24"}', 'cidrs 10.96.0.0/12', 'stop',
    ]);
  });

  it('after each sync lists the UDP flows and deletes the stale ones; counts them and times it', async () => {
    reconciler.start();
    table = LIST;
    inner.sync(dns2());
    await clock.advance(0);
    expect(ran).to.deep.equal([
      'conntrack -L -p udp -f ipv4',
      `conntrack ${del('10.96.0.10', 53, '192.0.2.1')}`,
      `conntrack ${del('10.96.0.10', 53, '10.96.0.10')}`,
    ]);
    expect(await metricValue(registry, 'kubeproxy_conntrack_reconciler_deleted_entries_total')).to.equal(4);
    expect(await metricValue(registry, 'kubeproxy_conntrack_reconciler_sync_duration_seconds')).to.equal(1);
    // The next sync: the table is listed again (level-triggered), nothing stale now.
    table = 'udp      17 28 src=192.0.2.100 dst=10.96.0.10 sport=40001 dport=53 src=192.0.2.2 dst=192.0.2.100 sport=5353 dport=40001 mark=0 use=1\n';
    ran = [];
    inner.sync(dns2());
    await clock.advance(0);
    expect(ran).to.deep.equal(['conntrack -L -p udp -f ipv4']);
  });

  it('lists nothing while there is no UDP service; after one is deleted, removes its DNATed flows once', async () => {
    reconciler.start();
    inner.sync(state([svc('web', 'TCP')], [slice('web', ['192.0.2.1'])]));
    await clock.advance(0);
    expect(ran).to.deep.equal([]);
    inner.sync(dns2());
    await clock.advance(0);
    expect(ran).to.deep.equal(['conntrack -L -p udp -f ipv4']);
    table = LIST;
    ran = [];
    inner.sync(state([], []));
    await clock.advance(0);
    expect(ran).to.deep.equal([
      'conntrack -L -p udp -f ipv4',
      `conntrack ${del('10.96.0.10', 53, '192.0.2.1')}`,
      `conntrack ${del('192.0.2.100', 30053, '192.0.2.2')}`,
    ]);
    ran = [];
    inner.sync(state([], []));
    await clock.advance(0);
    expect(ran, 'forgotten after one reconcile').to.deep.equal([]);
  });

  it('syncs that end while a reconcile runs are folded into one more', async () => {
    let release: () => void = () => {};
    const slow: Exec = async (c, args) => {
      ran.push(`${c} ${args.join(' ')}`);
      await new Promise<void>((r) => (release = r));
      return { code: 0, stdout: '', stderr: '' };
    };
    await reconciler.stop();
    reconciler = new ConntrackReconciler(inner, { exec: slow, clock, log: nullLogger(), registry: new Registry(), localIPs: () => LOCAL });
    reconciler.start();
    inner.sync(dns2());
    await clock.advance(0);
    inner.sync(dns2());
    inner.sync(dns2());
    inner.sync(dns2());
    release();
    await clock.advance(0);
    release();
    await clock.advance(0);
    expect(ran).to.deep.equal(['conntrack -L -p udp -f ipv4', 'conntrack -L -p udp -f ipv4']);
  });

  it('wrapping an IPv6 proxier: lists and deletes IPv6 flows, labels its metrics IPv6, shares the registry with the IPv4 one', async () => {
    reconciler.start();
    const inner6 = new RecordingProxier('IPv6');
    const ran6: string[] = [];
    const exec6: Exec = async (c, args) => {
      ran6.push(`${c} ${args.join(' ')}`);
      if (args[0] === '-L') return { code: 0, stdout: LIST6, stderr: '' };
      return { code: 0, stdout: '', stderr: 'conntrack v1.4.7 (conntrack-tools): 1 flow entries have been deleted.\n' };
    };
    const reconciler6 = new ConntrackReconciler(inner6, { exec: exec6, clock, log: nullLogger(), registry, localIPs: () => LOCAL6 });
    reconciler6.start();
    table = LIST;
    inner.sync(dns2());
    inner6.sync(state6(['2001:db8::2']));
    await clock.advance(0);
    await reconciler6.stop();
    expect(ran6).to.deep.equal(['conntrack -L -p udp -f ipv6', `conntrack ${del6('2001:db8::10', 53, '2001:db8::1')}`]);
    expect(ran[0]).to.equal('conntrack -L -p udp -f ipv4');
    const deleted = 'kubeproxy_conntrack_reconciler_deleted_entries_total';
    expect(await labeledMetricValue(registry, deleted, { ip_family: 'IPv4' })).to.equal(4);
    expect(await labeledMetricValue(registry, deleted, { ip_family: 'IPv6' })).to.equal(1);
    const duration = 'kubeproxy_conntrack_reconciler_sync_duration_seconds';
    for (const family of ['IPv4', 'IPv6']) expect(await labeledMetricValue(registry, duration, { ip_family: family, le: '+Inf' }), family).to.equal(1);
  });

  /** dns (UDP 53, node port 30053) with 192.0.2.2 ready. */
  function dns2(): SyncedState {
    return state([svc('dns', 'UDP', 30053)], [slice('dns', ['192.0.2.2'])]);
  }
});
