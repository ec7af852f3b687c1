// NftablesProxier against FakeNft and a FakeClock; the nft adapter and the
// mode's setup against a recording Exec.
// Fixture addresses: service IPs in 10.96.0.0/16, pod IPs in 10.244.0.0/16 (RFC 1918),
// the node in 192.0.2.0/24 (TEST-NET-1, RFC 5737); IPv6 service and pod IPs in
// fd00::/8 (RFC 4193), the node in 2001:db8::/32 (RFC 3849).
import { expect } from 'chai';
import type { V1EndpointSlice, V1Service } from '@kubernetes/client-node';
import { Registry, register as globalRegistry } from 'prom-client';
import { NodeletError } from '../../lib/errors.ts';
import { inputText, type Exec, type ExecOptions } from '../../lib/exec.ts';
import type { IPFamily } from '../../lib/ip.ts';
import { nullLogger } from '../../lib/log.ts';
import { FULL_SYNC_PERIOD_MS } from '../../proxy/iptables/proxier.ts';
import { parseProxyFlags } from '../../proxy/config.ts';
import { ROUTE_LOCALNET } from '../../proxy/iptables/proxier.ts';
import { detectNft, ExecNft } from '../../proxy/nftables/nft.ts';
import { NftablesProxier, type NftablesProxierOptions } from '../../proxy/nftables/proxier.ts';
import { newNftablesProxier } from '../../proxy/nftables/setup.ts';
import { FakeClock } from '../fakes/clock.ts';
import { FakeNft } from '../fakes/nft.ts';
import { NO_LOCAL_SERVICES, NO_LOCAL_SLICES, noLocalEndpoints } from '../fakes/proxyobjects.ts';

const service = (name: string, ip: string, port = 80): V1Service => ({
  metadata: { namespace: 'ns1', name, resourceVersion: '1' },
  spec: { clusterIP: ip, ports: [{ name: 'http', port, protocol: 'TCP' }] },
});

const slice = (svc: string, ips: string[], addressType: IPFamily = 'IPv4'): V1EndpointSlice => ({
  addressType,
  metadata: { namespace: 'ns1', name: `${svc}-${addressType === 'IPv4' ? 'abc' : 'v6'}`, labels: { 'kubernetes.io/service-name': svc } },
  ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
  endpoints: ips.map((ip) => ({ addresses: [ip], conditions: { ready: true } })),
});

/** A dual-stack service (IPv4 primary), as the API server gives it; each family's proxier takes its half. */
const dualStack: V1Service = {
  metadata: { namespace: 'ns1', name: 'web', resourceVersion: '1' },
  spec: {
    clusterIP: '10.96.0.10',
    clusterIPs: ['10.96.0.10', 'fd00:10:96::a'],
    ipFamilies: ['IPv4', 'IPv6'],
    ipFamilyPolicy: 'RequireDualStack',
    ports: [{ name: 'http', port: 80, protocol: 'TCP' }],
  },
};
const slice4 = slice('web', ['10.244.1.5']);
const slice6 = slice('web', ['fd00:244:1::5', 'fd00:244:2::6'], 'IPv6');

describe('proxy NftablesProxier', () => {
  let nft: FakeNft;
  let clock: FakeClock;
  let registry: Registry;
  let sysctls: string[];
  let proxier: NftablesProxier;
  let afterFull: number;

  function make(opts: Partial<NftablesProxierOptions> = {}): NftablesProxier {
    return new NftablesProxier(
      { nft, clock, log: nullLogger(), registry, sysctl: async (k, v) => void sysctls.push(`${k}=${v}`), afterFullSync: () => afterFull++ },
      { nodeName: 'node-a', nodeIPs: ['192.0.2.10'], localhostNodePorts: false, clusterCIDR: '10.244.0.0/16', ...opts },
    );
  }

  /** One family's series (ip_family label) of a metric: a gauge's or counter's value, or a histogram's count; NaN when absent. */
  async function metric(name: string, family: IPFamily = 'IPv4'): Promise<number> {
    const m = (await registry.getMetricsAsJSON()).find((x) => x.name === name);
    const values = (m?.values ?? []) as { value: number; labels: Record<string, string | number>; metricName?: string }[];
    return values.find((v) => v.labels.ip_family === family && (v.metricName === undefined || v.metricName === `${name}_count`))?.value ?? NaN;
  }

  beforeEach(() => {
    nft = new FakeNft();
    clock = new FakeClock();
    registry = new Registry();
    sysctls = [];
    afterFull = 0;
    proxier = make();
  });

  it('the first sync loads the whole table: the service is routed to its endpoints; invariants hold', async () => {
    proxier.onServiceAdd(service('web', '10.96.0.10'));
    proxier.onSliceAdd(slice('web', ['10.244.1.5', '10.244.2.6']));
    expect(await proxier.syncProxyRules()).to.deep.equal({ full: true, ok: true, applied: true });
    expect(nft.transactions).to.have.length(1);
    expect(nft.transactions[0]?.split('\n').slice(0, 2)).to.deep.equal(['add table ip nodelet', 'delete table ip nodelet']);
    expect(nft.elements('service_ips').get('10.96.0.10 . tcp . 80')).to.equal('goto svc_tcp_2');
    expect([...nft.elements('dnat_tcp_2')]).to.deep.equal([
      ['10.96.0.10 . tcp . 80 . 0', '10.244.1.5 . 8080'],
      ['10.96.0.10 . tcp . 80 . 1', '10.244.2.6 . 8080'],
    ]);
    expect(nft.chains.get('nat_prerouting')?.hook).to.match(/hook prerouting/);
    expect(nft.checkInvariants()).to.deep.equal([]);
    expect(sysctls).to.deep.equal([]);
    expect(await metric('nodelet_proxy_nftables_elements')).to.equal(4); // 1 verdict, 2 dnat, 1 cluster IP; no hairpin pairs for endpoints on other nodes
  });

  it('counts the service ports whose Local policy finds no endpoint here (kubeproxy_sync_proxy_rules_no_local_endpoints_total)', async () => {
    for (const s of NO_LOCAL_SERVICES) proxier.onServiceAdd(s);
    for (const s of NO_LOCAL_SLICES) proxier.onSliceAdd(s);
    await proxier.syncProxyRules();
    const noLocal = (policy: 'internal' | 'external') => noLocalEndpoints(registry, policy);
    expect(await noLocal('internal')).to.equal(1);
    expect(await noLocal('external')).to.equal(1);
    proxier.onSliceDelete(NO_LOCAL_SLICES[1]!);
    expect((await proxier.syncProxyRules()).full).to.equal(false);
    expect(await noLocal('internal')).to.equal(1);
    expect(await noLocal('external')).to.equal(0);
  });

  it('routes to the endpoints hinted for the node\'s zone; a zone change reloads the table (a full sync)', async () => {
    const hinted: V1EndpointSlice = {
      ...slice('web', []),
      endpoints: [['10.244.1.5', 'zone-a'], ['10.244.2.6', 'zone-b'], ['10.244.1.7', 'zone-a']].map(([ip, zone]) => ({ addresses: [ip!], conditions: { ready: true }, hints: { forZones: [{ name: zone! }] } })),
    };
    const targets = () => [...nft.elements('dnat_tcp_2'), ...nft.elements('dnat_tcp_1'), ...nft.elements('dnat_tcp_3')].map(([, v]) => v).sort();
    proxier.onTopologyChange({ 'topology.kubernetes.io/zone': 'zone-a' });
    proxier.onServiceAdd(service('web', '10.96.0.10'));
    proxier.onSliceAdd(hinted);
    await proxier.syncProxyRules();
    expect(targets()).to.deep.equal(['10.244.1.5 . 8080', '10.244.1.7 . 8080']);
    proxier.onTopologyChange({ 'topology.kubernetes.io/zone': 'zone-b' });
    expect(await proxier.syncProxyRules()).to.deep.equal({ full: true, ok: true, applied: true });
    expect(targets()).to.deep.equal(['10.244.2.6 . 8080']);
    proxier.onTopologyChange({});
    await proxier.syncProxyRules();
    expect(targets()).to.have.length(3);
    expect(nft.checkInvariants()).to.deep.equal([]);
  });

  it('a change is an incremental transaction with only the changed elements', async () => {
    proxier.onServiceAdd(service('web', '10.96.0.10'));
    proxier.onSliceAdd(slice('web', ['10.244.1.5', '10.244.2.6']));
    proxier.onServiceAdd(service('db', '10.96.0.20', 5432));
    proxier.onSliceAdd(slice('db', ['10.244.3.7', '10.244.3.8']));
    await proxier.syncProxyRules();

    proxier.onSliceUpdate(slice('db', ['10.244.3.7', '10.244.3.8']), slice('db', ['10.244.3.7', '10.244.3.9']));
    expect(await proxier.syncProxyRules()).to.deep.equal({ full: false, ok: true, applied: true });
    expect(nft.transactions[1]?.trim().split('\n')).to.deep.equal([
      'delete element ip nodelet dnat_tcp_2 { 10.96.0.20 . tcp . 5432 . 1 }',
      'add element ip nodelet dnat_tcp_2 { 10.96.0.20 . tcp . 5432 . 1 : 10.244.3.9 . 8080 }',
    ]);
    expect(nft.checkInvariants()).to.deep.equal([]);
    expect(await metric('kubeproxy_sync_partial_proxy_rules_duration_seconds')).to.equal(1);
    expect(await metric('kubeproxy_sync_full_proxy_rules_duration_seconds')).to.equal(1);
  });

  it('deleting a service removes its elements and its now unused chain and map', async () => {
    proxier.onServiceAdd(service('web', '10.96.0.10'));
    proxier.onSliceAdd(slice('web', ['10.244.1.5']));
    await proxier.syncProxyRules();
    expect(nft.chains.has('svc_tcp_1')).to.equal(true);
    proxier.onServiceDelete(service('web', '10.96.0.10'));
    proxier.onSliceDelete(slice('web', ['10.244.1.5']));
    expect((await proxier.syncProxyRules()).full).to.equal(false);
    expect(nft.chains.has('svc_tcp_1')).to.equal(false);
    expect(nft.maps.has('dnat_tcp_1')).to.equal(false);
    expect(nft.elements('service_ips').size).to.equal(0);
    expect(nft.elements('cluster_ips').size, 'its cluster IP is not active any more').to.equal(0);
    expect(nft.checkInvariants()).to.deep.equal([]);
  });

  it('a port taken off a service takes its elements along; the other port stays', async () => {
    const two: V1Service = { ...service('web', '10.96.0.10'), spec: { clusterIP: '10.96.0.10', ports: [{ name: 'http', port: 80, protocol: 'TCP' }, { name: 'dns', port: 53, protocol: 'UDP' }] } };
    const sl: V1EndpointSlice = { ...slice('web', ['10.244.1.5']), ports: [{ name: 'http', port: 8080, protocol: 'TCP' }, { name: 'dns', port: 5353, protocol: 'UDP' }] };
    proxier.onServiceAdd(two);
    proxier.onSliceAdd(sl);
    await proxier.syncProxyRules();
    expect([...nft.elements('service_ips').keys()]).to.have.members(['10.96.0.10 . tcp . 80', '10.96.0.10 . udp . 53']);
    expect(nft.chains.has('svc_udp_1')).to.equal(true);
    expect([...nft.elements('cluster_ips').keys()], 'one element for both ports').to.deep.equal(['10.96.0.10']);
    proxier.onServiceUpdate(two, service('web', '10.96.0.10'));
    expect((await proxier.syncProxyRules()).full).to.equal(false);
    expect([...nft.elements('service_ips')]).to.deep.equal([['10.96.0.10 . tcp . 80', 'goto svc_tcp_1']]);
    expect([...nft.elements('cluster_ips').keys()], 'the remaining port keeps it').to.deep.equal(['10.96.0.10']);
    expect(nft.chains.has('svc_udp_1')).to.equal(false);
    expect(nft.maps.has('dnat_udp_1')).to.equal(false);
    expect(nft.checkInvariants()).to.deep.equal([]);
  });

  it('drops new connections to unallocated addresses of the ServiceCIDRs from the next sync (a full one); the same CIDRs again change nothing', async () => {
    proxier.onServiceAdd(service('web', '10.96.0.10'));
    proxier.onSliceAdd(slice('web', ['10.244.1.5']));
    await proxier.syncProxyRules();
    expect(nft.chains.get('cluster_ips_check')?.rules).to.deep.equal(['ip daddr @cluster_ips reject']);
    proxier.setServiceCIDRs(['10.96.0.0/16', 'fd00:10:96::/112', '10.97.0.0/16']);
    expect(await proxier.syncProxyRules()).to.deep.equal({ full: true, ok: true, applied: true });
    expect(nft.chains.get('cluster_ips_check')?.rules).to.deep.equal(['ip daddr @cluster_ips reject', 'ip daddr { 10.96.0.0/16, 10.97.0.0/16 } drop']);
    expect([...nft.elements('cluster_ips').keys()]).to.deep.equal(['10.96.0.10']);
    proxier.setServiceCIDRs(['10.97.0.0/16', '10.96.0.0/16', 'fd00:10:96::/112']);
    expect(await proxier.syncProxyRules()).to.deep.equal({ full: false, ok: true, applied: false });
    expect(nft.checkInvariants()).to.deep.equal([]);
  });

  it('a service without endpoints is rejected; gaining one moves it to the service map', async () => {
    proxier.onServiceAdd(service('web', '10.96.0.10'));
    await proxier.syncProxyRules();
    expect(nft.elements('no_endpoint_services').get('10.96.0.10 . tcp . 80')).to.equal('goto reject_packet');
    proxier.onSliceAdd(slice('web', ['10.244.1.5']));
    await proxier.syncProxyRules();
    expect(nft.elements('no_endpoint_services').size).to.equal(0);
    expect(nft.elements('service_ips').get('10.96.0.10 . tcp . 80')).to.equal('goto svc_tcp_1');
  });

  it('a failed transaction makes the next sync full, and counts the failure', async () => {
    proxier.onServiceAdd(service('web', '10.96.0.10'));
    proxier.onSliceAdd(slice('web', ['10.244.1.5']));
    await proxier.syncProxyRules();
    nft.failApplies = 1;
    proxier.onSliceUpdate(slice('web', ['10.244.1.5']), slice('web', ['10.244.1.5', '10.244.1.6']));
    expect(await proxier.syncProxyRules()).to.deep.equal({ full: false, ok: false, applied: false });
    expect(await metric('kubeproxy_sync_proxy_rules_nftables_sync_failures_total')).to.equal(1);
    expect(afterFull).to.equal(1); // the first sync's only
    // Nothing new queued, but the table is unknown now: full, with the change in it.
    expect(await proxier.syncProxyRules()).to.deep.equal({ full: true, ok: true, applied: true });
    expect(afterFull).to.equal(2);
    expect(nft.elements('service_ips').get('10.96.0.10 . tcp . 80')).to.equal('goto svc_tcp_2');
    expect(nft.checkInvariants()).to.deep.equal([]);
  });

  it('the periodic full sync repairs drift (a table changed or deleted behind its back)', async () => {
    proxier.onServiceAdd(service('web', '10.96.0.10'));
    proxier.onSliceAdd(slice('web', ['10.244.1.5']));
    await proxier.syncProxyRules();
    nft.applyNow('delete element ip nodelet service_ips { 10.96.0.10 . tcp . 80 }');
    // Within the full sync period a resync sends nothing; past it, the table is rebuilt.
    expect(await proxier.syncProxyRules()).to.deep.equal({ full: false, ok: true, applied: false });
    await clock.advance(FULL_SYNC_PERIOD_MS);
    expect(await proxier.syncProxyRules()).to.deep.equal({ full: true, ok: true, applied: true });
    expect(nft.elements('service_ips').get('10.96.0.10 . tcp . 80')).to.equal('goto svc_tcp_1');
    nft.applyNow('delete table ip nodelet');
    await clock.advance(FULL_SYNC_PERIOD_MS);
    await proxier.syncProxyRules();
    expect(nft.exists).to.equal(true);
    expect(nft.checkInvariants()).to.deep.equal([]);
  });

  it('a no-op update runs no transaction; the runner coalesces; the periodic run is full once per fullSyncPeriod only', async () => {
    registry = new Registry();
    proxier = make({ minSyncPeriodMs: 1000, syncPeriodMs: 30000, fullSyncPeriodMs: 60000 });
    proxier.start();
    await clock.advance(10);
    expect(nft.transactions).to.have.length(1); // the first sync, with nothing yet
    const svc = service('web', '10.96.0.10');
    proxier.onServiceAdd(svc);
    proxier.onSliceAdd(slice('web', ['10.244.1.5']));
    await clock.advance(500);
    expect(nft.transactions).to.have.length(1); // held back by minSyncPeriod
    await clock.advance(600);
    expect(nft.transactions).to.have.length(2);
    expect(nft.transactions[1]).not.to.contain('delete table');
    proxier.onServiceUpdate(svc, { ...svc, metadata: { ...svc.metadata, resourceVersion: '2' } });
    await clock.advance(5000);
    expect(nft.transactions).to.have.length(2);
    // The resync at 30 s is within the full sync period: nothing to send.
    await clock.advance(30000);
    expect(nft.transactions).to.have.length(2);
    // The one at 60 s reconciles in full (the table replaced: drift repaired).
    await clock.advance(30000);
    expect(nft.transactions).to.have.length(3);
    expect(nft.transactions[2]).to.contain('delete table ip nodelet');
    expect(await metric('kubeproxy_sync_full_proxy_rules_duration_seconds')).to.equal(2);
    expect(await metric('kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds')).to.equal(Date.UTC(2025, 0, 1, 0, 0, 0, 10) / 1000);
    await proxier.stop();
    await clock.advance(0);
  });

  it('sets route_localnet once when localhost node ports are on, and guards 127/8', async () => {
    registry = new Registry();
    proxier = make({ localhostNodePorts: true });
    await proxier.syncProxyRules();
    await proxier.syncProxyRules();
    expect(sysctls).to.deep.equal([`${ROUTE_LOCALNET}=1`]);
    expect(nft.chains.get('filter_input')?.rules[0]).to.contain('ip daddr 127.0.0.0/8');
  });

  it('IPv6: programs table ip6 nodelet from the IPv6 half of a dual-stack service and the IPv6 slice; the IPv4 slice is not its', async () => {
    nft = new FakeNft('IPv6');
    // Localhost node ports asked for: an IPv6 proxier never has them, and never sets route_localnet.
    proxier = make({ family: 'IPv6', nodeIPs: ['2001:db8::10'], clusterCIDR: 'fd00:244::/56', localhostNodePorts: true });
    expect(proxier.family).to.equal('IPv6');
    proxier.onServiceAdd(dualStack);
    proxier.onSliceAdd(slice4);
    proxier.onSliceAdd(slice6);
    proxier.setServiceCIDRs(['10.96.0.0/16', 'fd00:10:96::/112']);
    expect(await proxier.syncProxyRules()).to.deep.equal({ full: true, ok: true, applied: true });
    expect(nft.transactions[0]?.split('\n').slice(0, 2)).to.deep.equal(['add table ip6 nodelet', 'delete table ip6 nodelet']);
    expect([...nft.elements('service_ips')]).to.deep.equal([['fd00:10:96::a . tcp . 80', 'goto svc_tcp_2']]);
    expect([...nft.elements('dnat_tcp_2')]).to.deep.equal([
      ['fd00:10:96::a . tcp . 80 . 0', 'fd00:244:1::5 . 8080'],
      ['fd00:10:96::a . tcp . 80 . 1', 'fd00:244:2::6 . 8080'],
    ]);
    expect([...nft.elements('cluster_ips').keys()]).to.deep.equal(['fd00:10:96::a']);
    expect(nft.chains.get('svc_tcp_2')?.rules).to.deep.equal([
      'ip6 saddr != fd00:244::/56 meta mark set meta mark | 0x4000',
      'dnat ip6 to ip6 daddr . meta l4proto . th dport . numgen random mod 2 map @dnat_tcp_2',
    ]);
    expect(nft.chains.get('services')?.rules[1]).to.equal('ip6 daddr 2001:db8::10 meta l4proto . th dport vmap @service_nodeports');
    expect(nft.chains.get('cluster_ips_check')?.rules).to.deep.equal(['ip6 daddr @cluster_ips reject', 'ip6 daddr { fd00:10:96::/112 } drop']);
    expect(nft.transactions[0]).to.not.match(/\b10\.(96|244)\.|127\.0\.0\.0|\bip [sd]addr/);
    expect(sysctls).to.deep.equal([]);
    expect(nft.checkInvariants()).to.deep.equal([]);
    expect(await metric('nodelet_proxy_nftables_elements', 'IPv6')).to.equal(4);
    expect(await metric('kubeproxy_sync_full_proxy_rules_duration_seconds', 'IPv6')).to.equal(1);
    expect(await metric('kubeproxy_sync_full_proxy_rules_duration_seconds', 'IPv4')).to.be.NaN;

    // An IPv4 slice change is the other proxier's: nothing to do. An IPv6 one is an incremental transaction.
    proxier.onSliceUpdate(slice4, slice('web', ['10.244.1.6']));
    expect(await proxier.syncProxyRules()).to.deep.equal({ full: false, ok: true, applied: false });
    proxier.onSliceUpdate(slice6, slice('web', ['fd00:244:1::5', 'fd00:244:3::7'], 'IPv6'));
    expect(await proxier.syncProxyRules()).to.deep.equal({ full: false, ok: true, applied: true });
    expect(nft.transactions.at(-1)?.trim().split('\n')).to.deep.equal([
      'delete element ip6 nodelet dnat_tcp_2 { fd00:10:96::a . tcp . 80 . 1 }',
      'add element ip6 nodelet dnat_tcp_2 { fd00:10:96::a . tcp . 80 . 1 : fd00:244:3::7 . 8080 }',
    ]);
    expect(nft.checkInvariants()).to.deep.equal([]);
  });

  it('IPv4 beside IPv6 in one registry: each takes its half of the same objects, and reports under its ip_family', async () => {
    const nft6 = new FakeNft('IPv6');
    const v6 = new NftablesProxier(
      { nft: nft6, clock, log: nullLogger(), registry, sysctl: async () => {} },
      { family: 'IPv6', nodeName: 'node-a', nodeIPs: [], localhostNodePorts: false, clusterCIDR: 'fd00:244::/56' },
    );
    for (const p of [proxier, v6]) {
      p.onServiceAdd(dualStack);
      p.onSliceAdd(slice4);
      p.onSliceAdd(slice6);
      expect((await p.syncProxyRules()).ok).to.equal(true);
    }
    expect([...nft.elements('service_ips')]).to.deep.equal([['10.96.0.10 . tcp . 80', 'goto svc_tcp_1']]);
    expect([...nft.elements('dnat_tcp_1')]).to.deep.equal([['10.96.0.10 . tcp . 80 . 0', '10.244.1.5 . 8080']]);
    expect([...nft.elements('cluster_ips').keys()]).to.deep.equal(['10.96.0.10']);
    expect(nft.transactions.join('\n')).to.not.include('fd00:');
    expect(nft.checkInvariants()).to.deep.equal([]);
    expect([...nft6.elements('service_ips')]).to.deep.equal([['fd00:10:96::a . tcp . 80', 'goto svc_tcp_2']]);
    expect(nft6.checkInvariants()).to.deep.equal([]);
    expect(await metric('nodelet_proxy_nftables_elements', 'IPv4')).to.equal(3);
    expect(await metric('nodelet_proxy_nftables_elements', 'IPv6')).to.equal(4);
    expect(await metric('kubeproxy_sync_proxy_rules_last_timestamp_seconds', 'IPv4')).to.equal(clock.now() / 1000);
    expect(await metric('kubeproxy_sync_proxy_rules_last_timestamp_seconds', 'IPv6')).to.equal(clock.now() / 1000);
    nft6.failApplies = 1;
    v6.onSliceDelete(slice6);
    await v6.syncProxyRules();
    expect(await metric('kubeproxy_sync_proxy_rules_nftables_sync_failures_total', 'IPv6')).to.equal(1);
    expect(await metric('kubeproxy_sync_proxy_rules_nftables_sync_failures_total', 'IPv4')).to.be.NaN;
  });

  it('registers its metrics on the injected registry only', async () => {
    await proxier.syncProxyRules();
    const names = (await registry.getMetricsAsJSON()).map((m) => m.name);
    for (const n of [
      'kubeproxy_sync_proxy_rules_duration_seconds',
      'kubeproxy_sync_full_proxy_rules_duration_seconds',
      'kubeproxy_sync_partial_proxy_rules_duration_seconds',
      'kubeproxy_sync_proxy_rules_last_timestamp_seconds',
      'kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds',
      'kubeproxy_sync_proxy_rules_nftables_sync_failures_total',
      'nodelet_proxy_nftables_elements',
      'nodelet_proxy_nftables_chains',
    ]) {
      expect(names).to.include(n);
      expect(globalRegistry.getSingleMetric(n)).to.equal(undefined);
    }
    expect(await metric('kubeproxy_sync_proxy_rules_last_timestamp_seconds')).to.equal(clock.now() / 1000);
  });
});

describe('proxy nftables: nft adapter, detection, --proxy-mode=nftables', () => {
  interface Call {
    cmd: string;
    args: readonly string[];
    input?: string | Buffer;
  }
  const recorder = (answer: (c: Call) => { code: number; stdout?: string; stderr?: string } | Error) => {
    const calls: Call[] = [];
    const exec: Exec = async (cmd, args, opts: ExecOptions = {}) => {
      const c: Call = { cmd, args, ...(opts.input !== undefined ? { input: inputText(opts.input) } : {}) };
      calls.push(c);
      const a = answer(c);
      if (a instanceof Error) throw a;
      return { code: a.code, stdout: a.stdout ?? '', stderr: a.stderr ?? '' };
    };
    return { calls, exec };
  };

  it('ExecNft pipes one transaction into `nft -f -`', async () => {
    const r = recorder(() => ({ code: 0 }));
    await new ExecNft(r.exec).apply('add table ip nodelet\n');
    expect(r.calls).to.deep.equal([{ cmd: 'nft', args: ['-f', '-'], input: 'add table ip nodelet\n' }]);
  });

  it('ExecNft turns a failure into PROXY_NFT_FAILED with nft\'s error line', async () => {
    const r = recorder(() => ({ code: 1, stderr: '/dev/stdin:3:1-5: Error: Could not process rule: No such file or directory\nadd element ...\n' }));
    const err = await new ExecNft(r.exec).apply('x').then(() => undefined, (e: unknown) => e);
    expect(err).to.be.instanceOf(NodeletError);
    expect((err as NodeletError).code).to.equal('PROXY_NFT_FAILED');
    expect((err as Error).message).to.contain('Could not process rule: No such file or directory');
  });

  it('detectNft: the version when nft runs and the kernel takes the family\'s table; why not otherwise', async () => {
    const ok = recorder((c) => (c.args[0] === '--version' ? { code: 0, stdout: 'nftables v1.0.6 (Lester Gooch #5)\n' } : { code: 0 }));
    expect(await detectNft(ok.exec)).to.deep.equal({ version: '1.0.6' });
    const missing = recorder(() => new NodeletError('EXEC_FAILED', 'nft: spawn nft ENOENT'));
    expect(await detectNft(missing.exec)).to.have.property('missing').that.matches(/not found.*ENOENT/);
    // The kernel is asked about the family's table in check mode (nothing is committed).
    expect(ok.calls[1]).to.deep.equal({ cmd: 'nft', args: ['--check', '-f', '-'], input: 'add table ip nodelet\n' });
    const ok6 = recorder((c) => (c.args[0] === '--version' ? { code: 0, stdout: 'nftables v1.0.6' } : { code: 0 }));
    expect(await detectNft(ok6.exec, 'IPv6')).to.deep.equal({ version: '1.0.6' });
    expect(ok6.calls[1]?.input).to.equal('add table ip6 nodelet\n');
    const noKernel = recorder((c) => (c.args[0] === '--version' ? { code: 0, stdout: 'nftables v1.0.6' } : { code: 1, stderr: 'Error: Operation not supported\n' }));
    expect(await detectNft(noKernel.exec, 'IPv6')).to.deep.equal({ missing: 'nft --check add table ip6 nodelet: Error: Operation not supported' });
  });

  it('newNftablesProxier falls back (undefined, with a warning) when nft is missing', async () => {
    const warnings: string[] = [];
    const log = nullLogger();
    log.warn = ((msg: string) => {
      warnings.push(msg);
      return log;
    }) as typeof log.warn;
    const missing = recorder(() => new NodeletError('EXEC_FAILED', 'nft: spawn nft ENOENT'));
    const deps = { exec: missing.exec, clock: new FakeClock(), log, registry: new Registry(), sysctl: async () => {} };
    const opts = { nodeName: 'n', nodeIPs: [], localhostNodePorts: false };
    expect(await newNftablesProxier(deps, opts)).to.equal(undefined);
    expect(warnings).to.deep.equal(['nftables unavailable for this IP family']);
    const ok = recorder((c) => (c.args[0] === '--version' ? { code: 0, stdout: 'nftables v1.0.6' } : { code: 0 }));
    expect(await newNftablesProxier({ ...deps, exec: ok.exec }, opts)).to.be.instanceOf(NftablesProxier);
    // A family's proxier probes that family's table.
    const v6 = await newNftablesProxier({ ...deps, exec: ok.exec, registry: new Registry() }, { ...opts, family: 'IPv6' });
    expect(v6?.family).to.equal('IPv6');
    expect(ok.calls.at(-1)?.input).to.equal('add table ip6 nodelet\n');
  });

  it('--proxy-mode=nftables is accepted', () => {
    const host = { hostname: () => 'node-a', networkInterfaces: () => ({}) };
    expect(parseProxyFlags(['--kubeconfig=/k', '--proxy-mode=nftables'], host).mode).to.equal('nftables');
  });
});
