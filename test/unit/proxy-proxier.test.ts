// IptablesProxier against FakeIptables and a FakeClock.
// Fixture addresses: service IPs in 10.96.0.0/16, pod IPs in 10.244.0.0/16 (RFC 1918),
// the node in 192.0.2.0/24 (TEST-NET-1, RFC 5737).
import { expect } from 'chai';
import type { V1EndpointSlice, V1Service } from '@kubernetes/client-node';
import { Registry, register as globalRegistry } from 'prom-client';
import { nullLogger } from '../../lib/log.ts';
import { IptablesProxier, ROUTE_LOCALNET, type IptablesProxierOptions } from '../../proxy/iptables/proxier.ts';
import { endpointChainName, serviceChainName } from '../../proxy/iptables/rules.ts';
import { FakeClock } from '../fakes/clock.ts';
import { FakeIptables } from '../fakes/iptables.ts';
import { metricValue, NO_LOCAL_SERVICES, NO_LOCAL_SLICES, noLocalEndpoints } from '../fakes/proxyobjects.ts';

const service = (name: string, ip: string, port = 80): V1Service => ({
  metadata: { namespace: 'ns1', name, resourceVersion: '1' },
  spec: { clusterIP: ip, ports: [{ name: 'http', port, protocol: 'TCP' }] },
});

const slice = (svc: string, ips: string[]): V1EndpointSlice => ({
  addressType: 'IPv4',
  metadata: { namespace: 'ns1', name: `${svc}-abc`, labels: { 'kubernetes.io/service-name': svc } },
  ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
  endpoints: ips.map((ip) => ({ addresses: [ip], conditions: { ready: true } })),
});

const svcChain = (svc: string) => serviceChainName(`ns1/${svc}:http`, 'tcp');
const sepChain = (svc: string, ip: string) => endpointChainName(`ns1/${svc}:http`, 'tcp', `${ip}:8080`);

/** Chains declared (`:NAME`) in a restore text. */
/** The tables a restore input writes, in order. */
const tablesOf = (text: string) => text.split('\n').filter((l) => l.startsWith('*'));
const declared = (text: string | undefined) =>
  (text ?? '').split('\n').filter((l) => l.startsWith(':')).map((l) => l.slice(1).split(' ')[0]);

describe('proxy IptablesProxier', () => {
  let ipt: FakeIptables;
  let clock: FakeClock;
  let registry: Registry;
  let sysctls: string[];
  let proxier: IptablesProxier;
  let afterFull: number;

  function make(opts: Partial<IptablesProxierOptions> = {}): IptablesProxier {
    return new IptablesProxier(
      {
        iptables: ipt,
        clock,
        log: nullLogger(),
        registry,
        sysctl: async (k, v) => {
          sysctls.push(`${k}=${v}`);
        },
        afterFullSync: () => afterFull++,
      },
      { nodeName: 'node-a', nodeIPs: ['192.0.2.10'], localhostNodePorts: false, backend: 'nft', ...opts },
    );
  }

  const metric = (name: string) => metricValue(registry, name);

  beforeEach(() => {
    ipt = new FakeIptables();
    clock = new FakeClock();
    registry = new Registry();
    sysctls = [];
    afterFull = 0;
    proxier = make();
  });

  it('a service and its slice give KUBE-SVC and KUBE-SEP rules after one full sync; invariants hold', async () => {
    proxier.onServiceAdd(service('web', '10.96.0.10'));
    proxier.onSliceAdd(slice('web', ['10.244.1.5', '10.244.2.6']));
    expect(await proxier.syncProxyRules()).to.deep.equal({ full: true, ok: true });

    const nat = ipt.table('nat');
    expect(nat.has(svcChain('web'))).to.equal(true);
    expect(ipt.rules('nat', svcChain('web'))).to.have.length.greaterThan(0);
    expect(nat.has(sepChain('web', '10.244.1.5'))).to.equal(true);
    expect(ipt.rules('nat', 'KUBE-SERVICES').some((r) => r.includes('-d 10.96.0.10/32') && r.includes(svcChain('web')))).to.equal(true);
    expect(ipt.rules('nat', 'OUTPUT').some((r) => r.endsWith('-j KUBE-SERVICES'))).to.equal(true);
    expect(ipt.rules('filter', 'FORWARD').some((r) => r.endsWith('-j KUBE-FORWARD'))).to.equal(true);
    expect(ipt.checkInvariants()).to.deep.equal([]);
    // One restore for both tables, as upstream: nat first, then filter.
    expect(ipt.restores.map(tablesOf)).to.deep.equal([['*nat', '*filter']]);
    expect(sysctls).to.deep.equal([]);
  });

  it('counts Service and EndpointSlice changes, and observes the network programming latency once the sync went through', async () => {
    // The EndpointSlice controller stamped the change 1.5 s before the sync (on the control plane's clock).
    const stamped = { ...slice('web', ['10.244.1.5']), metadata: { ...slice('web', []).metadata, annotations: { 'endpoints.kubernetes.io/last-change-trigger-time': new Date(clock.now() + 500).toISOString() } } };
    proxier.onServiceAdd(service('web', '10.96.0.10'));
    proxier.onSliceAdd(stamped);
    expect(await metric('kubeproxy_sync_proxy_rules_service_changes_total')).to.equal(1);
    expect(await metric('kubeproxy_sync_proxy_rules_endpoint_changes_total')).to.equal(1);
    expect(await metric('kubeproxy_sync_proxy_rules_service_changes_pending')).to.equal(1);
    expect(await metric('kubeproxy_sync_proxy_rules_endpoint_changes_pending')).to.equal(1);
    await clock.advance(2000);
    ipt.failRestores = 1;
    expect((await proxier.syncProxyRules()).ok).to.equal(false);
    expect(await metric('kubeproxy_sync_proxy_rules_service_changes_pending'), 'drained').to.equal(0);
    expect(await metric('kubeproxy_network_programming_duration_seconds'), 'not programmed yet: no series').to.be.NaN;
    expect((await proxier.syncProxyRules()).ok).to.equal(true);
    const h = (await registry.getMetricsAsJSON()).find((m) => m.name === 'kubeproxy_network_programming_duration_seconds')!;
    const values = h.values as { value: number; metricName?: string; labels: { le?: number | string } }[];
    expect(values.find((v) => v.metricName?.endsWith('_count'))?.value).to.equal(1);
    expect(values.find((v) => v.metricName?.endsWith('_sum'))?.value).to.equal(1.5);
    expect(values.find((v) => v.labels.le === 1)?.value, 'not in the 1 s bucket').to.equal(0);
    expect(values.find((v) => v.labels.le === 2)?.value).to.equal(1);
    // Observed once.
    await proxier.syncProxyRules();
    expect(await metric('kubeproxy_network_programming_duration_seconds')).to.equal(1);
  });

  it('counts the service ports whose Local policy finds no endpoint here (kubeproxy_sync_proxy_rules_no_local_endpoints_total)', async () => {
    for (const s of NO_LOCAL_SERVICES) proxier.onServiceAdd(s);
    for (const s of NO_LOCAL_SLICES) proxier.onSliceAdd(s);
    await proxier.syncProxyRules();
    const noLocal = (policy: 'internal' | 'external') => noLocalEndpoints(registry, policy);
    expect(await noLocal('internal')).to.equal(1);
    expect(await noLocal('external')).to.equal(1);
    // A partial sync counts every service too, not only the changed one.
    proxier.onSliceDelete(NO_LOCAL_SLICES[0]!);
    expect((await proxier.syncProxyRules()).full).to.equal(false);
    expect(await noLocal('internal')).to.equal(0);
    expect(await noLocal('external')).to.equal(1);
  });

  it('masquerades cluster-IP traffic from pods only, or from everyone with masqueradeAll', async () => {
    const masqRules = async (p: IptablesProxier, f: FakeIptables) => {
      p.onServiceAdd(service('web', '10.96.0.10'));
      p.onSliceAdd(slice('web', ['10.244.1.5']));
      await p.syncProxyRules();
      return f.rules('nat', svcChain('web')).filter((r) => r.endsWith('-j KUBE-MARK-MASQ'));
    };
    registry = new Registry(); // beforeEach's proxier holds the first one's metrics
    const cidr = await masqRules(make({ clusterCIDR: '10.244.0.0/16' }), ipt);
    expect(cidr).to.have.length(1);
    expect(cidr[0]).to.include('! -s 10.244.0.0/16').and.include('-d 10.96.0.10/32');
    ipt = new FakeIptables();
    registry = new Registry();
    const all = await masqRules(make({ clusterCIDR: '10.244.0.0/16', masqueradeAll: true }), ipt);
    expect(all).to.have.length(1);
    expect(all[0]).to.include('-d 10.96.0.10/32').and.not.include('-s ');
  });

  it('follows topology hints for the node\'s zone; a zone change makes the next sync full, with its endpoints only', async () => {
    const hinted = (ips: Record<string, string>): V1EndpointSlice => ({
      ...slice('web', Object.keys(ips)),
      endpoints: Object.entries(ips).map(([ip, zone]) => ({ addresses: [ip], conditions: { ready: true }, hints: { forZones: [{ name: zone }] } })),
    });
    const sepJumps = () => ipt.rules('nat', svcChain('web')).map((r) => /-j (KUBE-SEP-\S+)/.exec(r)?.[1]).filter(Boolean);
    proxier.onTopologyChange({ 'topology.kubernetes.io/zone': 'zone-a' });
    proxier.onServiceAdd(service('web', '10.96.0.10'));
    proxier.onSliceAdd(hinted({ '10.244.1.5': 'zone-a', '10.244.2.6': 'zone-b', '10.244.1.7': 'zone-a' }));
    proxier.onServiceAdd(service('db', '10.96.0.20', 5432));
    proxier.onSliceAdd(slice('db', ['10.244.3.7']));
    expect(await proxier.syncProxyRules()).to.deep.equal({ full: true, ok: true });
    expect(sepJumps()).to.deep.equal([sepChain('web', '10.244.1.5'), sepChain('web', '10.244.1.7')]);

    proxier.onTopologyChange({ 'topology.kubernetes.io/zone': 'zone-a', 'kubernetes.io/hostname': 'node-a' });
    expect(await proxier.syncProxyRules()).to.deep.include({ full: false }); // the zone did not change
    proxier.onTopologyChange({ 'topology.kubernetes.io/zone': 'zone-b' });
    expect(await proxier.syncProxyRules()).to.deep.equal({ full: true, ok: true });
    expect(sepJumps()).to.deep.equal([sepChain('web', '10.244.2.6')]);
    expect(ipt.table('nat').has(sepChain('web', '10.244.1.5')), 'the other zone\'s endpoint chain is gone').to.equal(false);
    // No zone label: hints are ignored, every endpoint is used.
    proxier.onTopologyChange({});
    await proxier.syncProxyRules();
    expect(sepJumps()).to.have.length(3);
    expect(ipt.checkInvariants()).to.deep.equal([]);
  });

  it('a change to one service gives a partial sync that rewrites only its chains', async () => {
    proxier.onServiceAdd(service('web', '10.96.0.10'));
    proxier.onSliceAdd(slice('web', ['10.244.1.5']));
    proxier.onServiceAdd(service('db', '10.96.0.20', 5432));
    proxier.onSliceAdd(slice('db', ['10.244.3.7']));
    await proxier.syncProxyRules();
    ipt.restores.length = 0;

    proxier.onSliceUpdate(slice('db', ['10.244.3.7']), slice('db', ['10.244.3.7', '10.244.3.8']));
    expect(await proxier.syncProxyRules()).to.deep.equal({ full: false, ok: true });
    const nat = ipt.restores[0];
    const chains = declared(nat).filter((c) => c?.startsWith('KUBE-S'));
    expect(chains).to.include.members([svcChain('db'), sepChain('db', '10.244.3.7'), sepChain('db', '10.244.3.8')]);
    expect(chains).not.to.include(svcChain('web'));
    expect(chains).not.to.include(sepChain('web', '10.244.1.5'));
    expect(nat).not.to.contain(`-A ${svcChain('web')} `);
    // KUBE-SERVICES holds what it held (a jump to db's chain): left out, as are the fixed chains.
    for (const c of ['KUBE-SERVICES', 'KUBE-NODEPORTS', 'KUBE-POSTROUTING', 'KUBE-MARK-MASQ', 'KUBE-PROXY-CANARY']) expect(declared(nat)).not.to.include(c);
    // web's chains are still there, untouched.
    expect(ipt.rules('nat', svcChain('web'))).to.have.length.greaterThan(0);
    expect(ipt.checkInvariants()).to.deep.equal([]);
    expect(await metric('kubeproxy_sync_partial_proxy_rules_duration_seconds')).to.equal(1);
    expect(await metric('kubeproxy_sync_full_proxy_rules_duration_seconds')).to.equal(1);

    // A new service changes KUBE-SERVICES: written whole.
    ipt.restores.length = 0;
    proxier.onServiceAdd(service('cache', '10.96.0.30'));
    proxier.onSliceAdd(slice('cache', ['10.244.4.1']));
    expect(await proxier.syncProxyRules()).to.deep.equal({ full: false, ok: true });
    expect(declared(ipt.restores[0])).to.include('KUBE-SERVICES');
    expect(ipt.rules('nat', 'KUBE-SERVICES').filter((r) => r.includes('cluster IP'))).to.have.length(3);
    // Nothing changed: no restore.
    ipt.restores.length = 0;
    expect(await proxier.syncProxyRules()).to.deep.equal({ full: false, ok: true });
    expect(ipt.restores).to.deep.equal([]);
    // The table is what a full sync makes.
    const partialNat = ipt.saveText('nat');
    await clock.advance(3_600_000); // fullSyncPeriod: the next sync rewrites everything
    expect(await proxier.syncProxyRules()).to.deep.equal({ full: true, ok: true });
    expect(ipt.saveText('nat')).to.equal(partialNat);
    expect(ipt.checkInvariants()).to.deep.equal([]);
  });

  it('reports the rules each sync wrote (kubeproxy_sync_proxy_rules_iptables_last) and, after a full one, all of them (…_iptables_total)', async () => {
    const rules = async (name: string, table: string) =>
      Number(new RegExp(`^${name}\\{table="${table}",ip_family="IPv4"\\} (\\d+)$`, 'm').exec(await registry.metrics())?.[1]);
    for (const [name, ip] of [['web', '10.96.0.10'], ['db', '10.96.0.20'], ['cache', '10.96.0.30']] as const) {
      proxier.onServiceAdd(service(name, ip));
      proxier.onSliceAdd(slice(name, ['10.244.1.5', '10.244.1.6']));
    }
    await proxier.syncProxyRules();
    const total = await rules('kubeproxy_sync_proxy_rules_iptables_total', 'nat');
    expect(total).to.be.greaterThan(20);
    expect(await rules('kubeproxy_sync_proxy_rules_iptables_last', 'nat'), 'a full sync writes all').to.equal(total);
    expect(await rules('kubeproxy_sync_proxy_rules_iptables_last', 'filter')).to.equal(await rules('kubeproxy_sync_proxy_rules_iptables_total', 'filter'));
    proxier.onSliceUpdate(slice('db', ['10.244.1.5', '10.244.1.6']), slice('db', ['10.244.1.5', '10.244.1.7']));
    expect(await proxier.syncProxyRules()).to.deep.equal({ full: false, ok: true });
    const last = await rules('kubeproxy_sync_proxy_rules_iptables_last', 'nat');
    expect(last, 'a partial sync writes the changed service\'s chains').to.be.greaterThan(0).and.lessThan(total);
    expect(await rules('kubeproxy_sync_proxy_rules_iptables_last', 'filter'), 'filter unchanged: not written').to.equal(0);
    expect(await rules('kubeproxy_sync_proxy_rules_iptables_total', 'nat')).to.equal(total);
  });

  it('a partial sync writes the filter table only when its rules changed; a full one always does', async () => {
    proxier.onServiceAdd(service('web', '10.96.0.10'));
    proxier.onSliceAdd(slice('web', ['10.244.1.5']));
    await proxier.syncProxyRules();
    ipt.restores.length = 0;
    // Another endpoint: nat only.
    proxier.onSliceUpdate(slice('web', ['10.244.1.5']), slice('web', ['10.244.1.5', '10.244.1.6']));
    expect(await proxier.syncProxyRules()).to.deep.equal({ full: false, ok: true });
    expect(ipt.restores.map(tablesOf)).to.deep.equal([['*nat']]);
    // No endpoints left: the service's REJECT goes into filter.
    ipt.restores.length = 0;
    proxier.onSliceUpdate(slice('web', ['10.244.1.5', '10.244.1.6']), slice('web', []));
    await proxier.syncProxyRules();
    expect(ipt.restores.map(tablesOf)).to.deep.equal([['*nat', '*filter']]);
    expect(ipt.rules('filter', 'KUBE-SERVICES').some((r) => r.includes('-d 10.96.0.10/32') && r.includes('REJECT'))).to.equal(true);
    // A filter restore that fails is tried again by the next (full) sync, even with the same text.
    ipt.restores.length = 0;
    proxier.onSliceUpdate(slice('web', []), slice('web', ['10.244.1.5']));
    ipt.failRestores = 1;
    ipt.failTable = 'filter';
    expect(afterFull).to.equal(1); // the first (full) sync's, none for the partial ones
    expect((await proxier.syncProxyRules()).ok).to.equal(false);
    expect(ipt.restores.map(tablesOf)).to.deep.equal([['*nat', '*filter']]);
    expect(ipt.table('nat').has(sepChain('web', '10.244.1.5')), 'nat committed before filter failed').to.equal(true);
    expect(afterFull).to.equal(1); // not for one that failed
    expect(await proxier.syncProxyRules()).to.deep.equal({ full: true, ok: true });
    expect(afterFull).to.equal(2);
    expect(ipt.rules('filter', 'KUBE-SERVICES').some((r) => r.includes('REJECT'))).to.equal(false);
    expect(ipt.checkInvariants()).to.deep.equal([]);
  });

  it('removing an endpoint deletes its SEP chain', async () => {
    proxier.onServiceAdd(service('web', '10.96.0.10'));
    proxier.onSliceAdd(slice('web', ['10.244.1.5', '10.244.2.6']));
    await proxier.syncProxyRules();
    const gone = sepChain('web', '10.244.2.6');
    expect(ipt.table('nat').has(gone)).to.equal(true);

    proxier.onSliceUpdate(slice('web', ['10.244.1.5', '10.244.2.6']), slice('web', ['10.244.1.5']));
    expect(await proxier.syncProxyRules()).to.deep.equal({ full: false, ok: true });
    expect(ipt.table('nat').has(gone)).to.equal(false);
    expect(ipt.table('nat').has(sepChain('web', '10.244.1.5'))).to.equal(true);
    expect(ipt.checkInvariants()).to.deep.equal([]);
  });

  it('over 1000 endpoints, partial syncs leave stale chains for the next cleanup, once per sync period (as upstream)', async () => {
    registry = new Registry();
    proxier = make({ syncPeriodMs: 30_000 });
    const many = Array.from({ length: 1001 }, (_, i) => `10.244.${i >> 7}.${(i & 127) + 1}`);
    proxier.onServiceAdd(service('big', '10.96.0.11'));
    proxier.onSliceAdd(slice('big', many));
    proxier.onServiceAdd(service('web', '10.96.0.10'));
    proxier.onSliceAdd(slice('web', ['10.244.9.5', '10.244.9.6']));
    expect(await proxier.syncProxyRules()).to.deep.equal({ full: true, ok: true });
    const gone = sepChain('web', '10.244.9.6');

    await clock.advance(1000);
    proxier.onSliceUpdate(slice('web', ['10.244.9.5', '10.244.9.6']), slice('web', ['10.244.9.5']));
    expect(await proxier.syncProxyRules()).to.deep.equal({ full: false, ok: true });
    expect(ipt.rules('nat', svcChain('web')).some((r) => r.includes(gone)), 'no longer used').to.equal(false);
    expect(ipt.table('nat').has(gone), 'left for the cleanup').to.equal(true);
    expect(ipt.checkInvariants()).to.deep.equal([`nat ${gone}: not used by any rule`]);

    // A sync period after the last cleanup, a partial sync deletes it.
    await clock.advance(30_000);
    proxier.onSliceUpdate(slice('web', ['10.244.9.5']), slice('web', ['10.244.9.5', '10.244.9.7']));
    expect(await proxier.syncProxyRules()).to.deep.equal({ full: false, ok: true });
    expect(ipt.table('nat').has(gone)).to.equal(false);
    expect(ipt.table('nat').has(sepChain('web', '10.244.9.7'))).to.equal(true);
    expect(ipt.checkInvariants()).to.deep.equal([]);
  });

  it('deleting a service removes all its chains', async () => {
    proxier.onServiceAdd(service('web', '10.96.0.10'));
    proxier.onSliceAdd(slice('web', ['10.244.1.5']));
    await proxier.syncProxyRules();
    proxier.onServiceDelete(service('web', '10.96.0.10'));
    proxier.onSliceDelete(slice('web', ['10.244.1.5']));
    await proxier.syncProxyRules();
    expect([...ipt.chains('nat')].filter((c) => /^KUBE-(SVC|SEP)-/.test(c))).to.deep.equal([]);
    expect(ipt.checkInvariants()).to.deep.equal([]);
  });

  it('the first (full) sync deletes service chains left behind by an earlier run', async () => {
    const stale = svcChain('old');
    ipt.applyRestore(`*nat\n:${stale} - [0:0]\n-A ${stale} -j RETURN\nCOMMIT\n`, { noflush: true });
    proxier.onServiceAdd(service('web', '10.96.0.10'));
    proxier.onSliceAdd(slice('web', ['10.244.1.5']));
    await proxier.syncProxyRules();
    expect(ipt.table('nat').has(stale)).to.equal(false);
    expect(ipt.checkInvariants()).to.deep.equal([]);
  });

  it('a failed restore is counted and makes the next sync full', async () => {
    proxier.onServiceAdd(service('web', '10.96.0.10'));
    proxier.onSliceAdd(slice('web', ['10.244.1.5']));
    await proxier.syncProxyRules();

    ipt.failRestores = 1;
    proxier.onSliceUpdate(slice('web', ['10.244.1.5']), slice('web', ['10.244.1.5', '10.244.1.6']));
    expect(await proxier.syncProxyRules()).to.deep.equal({ full: false, ok: false });
    expect(await metric('kubeproxy_sync_proxy_rules_iptables_restore_failures_total')).to.equal(1);
    expect(await metric('kubeproxy_sync_proxy_rules_iptables_partial_restore_failures_total'), 'it was a partial sync').to.equal(1);

    proxier.onServiceAdd(service('db', '10.96.0.20'));
    expect(await proxier.syncProxyRules()).to.deep.equal({ full: true, ok: true });
    expect(ipt.table('nat').has(sepChain('web', '10.244.1.6'))).to.equal(true);
    expect(ipt.checkInvariants()).to.deep.equal([]);
    // ...and the one after that is partial again.
    proxier.onServiceDelete(service('db', '10.96.0.20'));
    expect((await proxier.syncProxyRules()).full).to.equal(false);
  });

  it('a no-op update triggers no restore', async () => {
    proxier.start();
    const svc = service('web', '10.96.0.10');
    proxier.onServiceAdd(svc);
    proxier.onSliceAdd(slice('web', ['10.244.1.5']));
    await clock.advance(10);
    const after = ipt.restores.length;
    expect(after).to.equal(1);

    proxier.onServiceUpdate(svc, { ...svc, metadata: { ...svc.metadata, resourceVersion: '2' } });
    proxier.onServiceUpdate(svc, svc);
    await clock.advance(5000);
    expect(ipt.restores.length).to.equal(after);
    await proxier.stop();
    await clock.advance(0);
  });

  it('the runner coalesces changes; the periodic run is partial, and full once per fullSyncPeriod', async () => {
    registry = new Registry();
    proxier = make({ minSyncPeriodMs: 1000, syncPeriodMs: 30000, fullSyncPeriodMs: 60000 });
    proxier.start();
    await clock.advance(10);
    expect(ipt.restores.length).to.equal(1); // the first sync, with nothing yet

    proxier.onServiceAdd(service('web', '10.96.0.10'));
    proxier.onSliceAdd(slice('web', ['10.244.1.5']));
    await clock.advance(500);
    expect(ipt.restores.length).to.equal(1); // held back by minSyncPeriod
    await clock.advance(600);
    expect(ipt.restores.length).to.equal(2);
    expect(tablesOf(ipt.restores[1]!), 'filter is as it was').to.deep.equal(['*nat']);
    expect(ipt.table('nat').has(svcChain('web'))).to.equal(true);
    expect(await metric('kubeproxy_sync_partial_proxy_rules_duration_seconds')).to.equal(1);

    await clock.advance(30000);
    // The periodic partial sync: nothing changed, so nothing to restore.
    expect(ipt.restores.length).to.equal(2);
    expect(await metric('kubeproxy_sync_partial_proxy_rules_duration_seconds')).to.equal(2);
    expect(await metric('kubeproxy_sync_full_proxy_rules_duration_seconds')).to.equal(1);
    await clock.advance(31000);
    expect(await metric('kubeproxy_sync_full_proxy_rules_duration_seconds')).to.equal(2);
    expect(await metric('kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds')).to.equal(Date.UTC(2025, 0, 1, 0, 0, 0, 10) / 1000);
    await proxier.stop();
    await clock.advance(0);
  });

  it('tells onSynced listeners what each successful sync programmed, not what a failed one meant to', async () => {
    const seen: string[][] = [];
    proxier.onSynced((s) => seen.push([...s.endpoints.get('ns1/web')?.get('ns1/web:http') ?? []].map((e) => e.ip)));
    proxier.onServiceAdd(service('web', '10.96.0.10'));
    proxier.onSliceAdd(slice('web', ['10.244.1.5']));
    await proxier.syncProxyRules();
    expect(seen).to.deep.equal([['10.244.1.5']]);
    proxier.onSliceUpdate(slice('web', ['10.244.1.5']), slice('web', ['10.244.1.6']));
    ipt.failRestores = 1;
    expect((await proxier.syncProxyRules()).ok).to.equal(false);
    expect(seen).to.have.length(1);
    await proxier.syncProxyRules();
    expect(seen).to.deep.equal([['10.244.1.5'], ['10.244.1.6']]);
  });

  it('a flush of the tables (the canary gone) makes the next sync full, which puts everything back', async () => {
    registry = new Registry();
    proxier = make({ minSyncPeriodMs: 1000, syncPeriodMs: 30000 });
    proxier.onServiceAdd(service('web', '10.96.0.10'));
    proxier.onSliceAdd(slice('web', ['10.244.1.5']));
    proxier.start();
    await clock.advance(10);
    const before = ipt.saveText('nat');
    for (const t of ['mangle', 'nat', 'filter'] as const) expect(ipt.chains(t).has('KUBE-PROXY-CANARY'), t).to.equal(true);
    // A firewall reload: every table emptied.
    for (const t of ['mangle', 'nat', 'filter'] as const) ipt.tables.set(t, new FakeIptables().table(t));
    await clock.advance(31000); // past the periodic sync that looks for the canary
    expect(await metric('kubeproxy_sync_full_proxy_rules_duration_seconds')).to.equal(2);
    expect(ipt.saveText('nat')).to.equal(before);
    expect(ipt.rules('nat', 'PREROUTING').some((r) => r.endsWith('-j KUBE-SERVICES'))).to.equal(true);
    expect(ipt.checkInvariants()).to.deep.equal([]);
    await proxier.stop();
    await clock.advance(0);
  });

  it('full syncs put missing jumps from the built-in chains into the restores, once, and put back one removed by hand', async () => {
    registry = new Registry();
    proxier = make({ fullSyncPeriodMs: 0 });
    proxier.onServiceAdd(service('web', '10.96.0.10'));
    proxier.onSliceAdd(slice('web', ['10.244.1.5']));
    expect(await proxier.syncProxyRules()).to.deep.equal({ full: true, ok: true });
    expect(ipt.restores[0]).to.include('-I OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES');
    // Nothing changed and the period is 0: the next sync is full and finds every jump in place.
    expect(await proxier.syncProxyRules()).to.deep.equal({ full: true, ok: true });
    expect(ipt.restores.slice(1).join('\n')).not.to.include('-I ');
    const jumpsTo = (table: 'nat' | 'filter', chain: string, target: string) => ipt.rules(table, chain).filter((r) => r.endsWith(`-j ${target}`)).length;
    expect(jumpsTo('nat', 'OUTPUT', 'KUBE-SERVICES')).to.equal(1);
    expect(jumpsTo('nat', 'POSTROUTING', 'KUBE-POSTROUTING')).to.equal(1);
    expect(jumpsTo('filter', 'FORWARD', 'KUBE-FORWARD')).to.equal(1);
    // Someone flushes nat OUTPUT: the next full sync puts that jump back, and only that one.
    ipt.table('nat').set('OUTPUT', []);
    await proxier.syncProxyRules();
    const inserted = ipt.restores.slice(2).join('\n').split('\n').filter((l) => l.startsWith('-I '));
    expect(inserted).to.deep.equal(['-I OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES']);
    expect(jumpsTo('nat', 'OUTPUT', 'KUBE-SERVICES')).to.equal(1);
    expect(ipt.checkInvariants()).to.deep.equal([]);
  });

  it('sets route_localnet once when localhost NodePorts are on', async () => {
    registry = new Registry();
    proxier = make({ localhostNodePorts: true });
    await proxier.syncProxyRules();
    await proxier.syncProxyRules();
    expect(sysctls).to.deep.equal([`${ROUTE_LOCALNET}=1`]);
    expect(ipt.rules('filter', 'INPUT').some((r) => r.endsWith('-j KUBE-FIREWALL'))).to.equal(true);
    expect(ipt.checkInvariants()).to.deep.equal([]);
  });

  it('registers its metrics on the injected registry only, and observes them', async () => {
    proxier.onServiceAdd(service('web', '10.96.0.10'));
    await clock.advance(0);
    await proxier.syncProxyRules();
    const names = (await registry.getMetricsAsJSON()).map((m) => m.name);
    for (const n of [
      'kubeproxy_sync_proxy_rules_duration_seconds',
      'kubeproxy_sync_full_proxy_rules_duration_seconds',
      'kubeproxy_sync_partial_proxy_rules_duration_seconds',
      'kubeproxy_sync_proxy_rules_last_timestamp_seconds',
      'kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds',
      'kubeproxy_sync_proxy_rules_iptables_restore_failures_total',
      'kubeproxy_sync_proxy_rules_iptables_total',
      'nodelet_proxy_iptables_backend_info',
    ]) {
      expect(names).to.include(n);
      expect(globalRegistry.getSingleMetric(n)).to.equal(undefined);
    }
    expect(await metric('kubeproxy_sync_proxy_rules_duration_seconds')).to.equal(1);
    expect(await metric('kubeproxy_sync_proxy_rules_last_timestamp_seconds')).to.equal(clock.now() / 1000);
    expect(await metric('kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds')).to.equal(clock.now() / 1000);
    const text = await registry.metrics();
    expect(text).to.contain('nodelet_proxy_iptables_backend_info{backend="nft",ip_family="IPv4"} 1');
    expect(text).to.match(/kubeproxy_sync_proxy_rules_iptables_total\{table="nat",ip_family="IPv4"\} [1-9]/);
    // A second proxier on its own registry does not clash.
    registry = new Registry();
    make();
  });
});
