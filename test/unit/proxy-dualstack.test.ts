// Dual-stack: a proxier per IP family (upstream's MetaProxier), each fed the
// same Services and its own family's EndpointSlices; which families a host
// supports; the address helpers both families go through.
// Fixture addresses: 10.96.0.0/16 and 10.244.0.0/16 (RFC 1918), fd00::/8 (ULA, RFC 4193).
import { expect } from 'chai';
import type { V1EndpointSlice, V1Service } from '@kubernetes/client-node';
import { Registry } from 'prom-client';
import { nullLogger } from '../../lib/log.ts';
import { canonicalIP, ipFamilyOf, ipInCIDR, joinHostPort, normalizeCIDR } from '../../lib/ip.ts';
import { IptablesProxier } from '../../proxy/iptables/proxier.ts';
import { endpointChainName, serviceChainName } from '../../proxy/iptables/rules.ts';
import { MetaProxier } from '../../proxy/metaproxier.ts';
import { DISABLE_IPV6, familySupport, primaryFamily, proxyFamilies } from '../../proxy/families.ts';
import type { LocalDetector } from '../../proxy/localdetect.ts';
import type { Proxier } from '../../proxy/proxier.ts';
import { compareEndpoints, endpointsFromSlices, servicePortsFromService, type IPFamily } from '../../proxy/types.ts';
import { FakeClock } from '../fakes/clock.ts';
import { FakeIptables } from '../fakes/iptables.ts';
import { endpoint, labeledMetricValue } from '../fakes/proxyobjects.ts';

/** A RequireDualStack service: cluster IPs of both families, external IPs and source ranges of both. */
const dual: V1Service = {
  metadata: { namespace: 'ns1', name: 'web', resourceVersion: '1' },
  spec: {
    type: 'LoadBalancer',
    clusterIP: '10.96.0.10',
    clusterIPs: ['10.96.0.10', 'fd00:10:96::a'],
    ipFamilies: ['IPv4', 'IPv6'],
    ipFamilyPolicy: 'RequireDualStack',
    externalIPs: ['192.0.2.50', 'fd00:9::50'],
    loadBalancerSourceRanges: ['198.51.100.0/24', 'FD00:77:0:0:1::/48'],
    ports: [{ name: 'http', port: 80, nodePort: 30080, protocol: 'TCP' }],
  },
  status: { loadBalancer: { ingress: [{ ip: '203.0.113.5' }, { ip: 'fd00:5::1' }] } },
};

const slice = (family: IPFamily, ips: string[]): V1EndpointSlice => ({
  addressType: family,
  metadata: { namespace: 'ns1', name: `web-${family.toLowerCase()}`, labels: { 'kubernetes.io/service-name': 'web' } },
  ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
  endpoints: ips.map((ip) => ({ addresses: [ip], conditions: { ready: true }, nodeName: 'node-a' })),
});
const slice4 = slice('IPv4', ['10.244.1.5']);
const slice6 = slice('IPv6', ['fd00:10:244::5']);

describe('proxy dual-stack', () => {
  describe('lib/ip', () => {
    it('spells addresses and CIDRs as Go does, and matches them within their family only', () => {
      expect(canonicalIP('FD00:0:0:0:0:0:0:A')).to.equal('fd00::a');
      expect(canonicalIP('2001:db8:0:0:1:0:0:1')).to.equal('2001:db8::1:0:0:1');
      expect(canonicalIP('10.0.0.1')).to.equal('10.0.0.1');
      expect(canonicalIP('nope')).to.equal(undefined);
      expect(normalizeCIDR('fd00:10:244::5/64')).to.equal('fd00:10:244::/64');
      expect(normalizeCIDR('10.244.7.9/16')).to.equal('10.244.0.0/16');
      expect(normalizeCIDR('fd00::/129')).to.equal(undefined);
      expect(normalizeCIDR('10.0.0.0')).to.equal(undefined);
      expect(ipInCIDR('fd00:10:244::5', 'fd00:10:244::/64')).to.equal(true);
      expect(ipInCIDR('fd00:10:245::5', 'fd00:10:244::/64')).to.equal(false);
      expect(ipInCIDR('10.0.0.1', '::/0'), 'never across families').to.equal(false);
      expect(ipInCIDR('255.255.255.255', '255.255.255.254/31')).to.equal(true);
      expect(joinHostPort('fd00::1', 80)).to.equal('[fd00::1]:80');
      expect([ipFamilyOf('fd00::/8'), ipFamilyOf('10.0.0.1'), ipFamilyOf('x')]).to.deep.equal(['IPv6', 'IPv4', undefined]);
    });
  });

  describe('one family of a service and of its slices', () => {
    it('gives each family its cluster IP, external and load-balancer IPs and source ranges', () => {
      const [v4] = servicePortsFromService(dual, 'IPv4');
      const [v6] = servicePortsFromService(dual, 'IPv6');
      expect(v4).to.include({ nodePort: 30080 });
      expect([v4!.clusterIPs, v4!.externalIPs, v4!.loadBalancerIPs, v4!.loadBalancerSourceRanges]).to.deep.equal([
        ['10.96.0.10'], ['192.0.2.50'], ['203.0.113.5'], ['198.51.100.0/24'],
      ]);
      expect([v6!.clusterIPs, v6!.externalIPs, v6!.loadBalancerIPs, v6!.loadBalancerSourceRanges]).to.deep.equal([
        ['fd00:10:96::a'], ['fd00:9::50'], ['fd00:5::1'], ['fd00:77::/48'],
      ]);
      // A single-stack IPv4 service has nothing for the IPv6 proxier.
      expect(servicePortsFromService({ ...dual, spec: { ...dual.spec, clusterIPs: ['10.96.0.10'] } }, 'IPv6')).to.deep.equal([]);
    });

    it('reads only the family\'s slices, and sorts IPv6 endpoints by address', () => {
      const six = slice('IPv6', ['fd00:10:244::1b', 'fd00:10:244::5']);
      expect(endpointsFromSlices([slice4, six], 'node-a', 'IPv6').get('ns1/web:http')!.map((e) => e.ip)).to.deep.equal(['fd00:10:244::5', 'fd00:10:244::1b']);
      expect(endpointsFromSlices([slice4, six], 'node-a', 'IPv4').get('ns1/web:http')!.map((e) => e.ip)).to.deep.equal(['10.244.1.5']);
      expect(compareEndpoints(endpoint('fd00::2', { port: 80 }), endpoint('fd00::2', { port: 81 }))).to.be.below(0);
    });
  });

  describe('families', () => {
    it('serves the primary family first, both when both are supported, and refuses an unsupported primary', () => {
      expect(primaryFamily(undefined)).to.equal('IPv4');
      expect(primaryFamily('fd00:10:244::/56,10.244.0.0/16')).to.equal('IPv6');
      expect(proxyFamilies('IPv4', { IPv4: true, IPv6: true })).to.deep.equal(['IPv4', 'IPv6']);
      expect(proxyFamilies('IPv6', { IPv4: true, IPv6: true })).to.deep.equal(['IPv6', 'IPv4']);
      expect(proxyFamilies('IPv4', { IPv4: true, IPv6: false })).to.deep.equal(['IPv4']);
      expect(() => proxyFamilies('IPv6', { IPv4: true, IPv6: false })).to.throw(/no support for the primary IP family IPv6/);
    });

    it('supports IPv6 only when the kernel has it on and its tools work', async () => {
      const files = (disable: string | undefined) => ({
        read: async (f: string) => {
          if (f !== DISABLE_IPV6 || disable === undefined) throw new Error('ENOENT');
          return disable;
        },
        write: async () => {},
      });
      const asked: IPFamily[] = [];
      const present = async (f: IPFamily) => (asked.push(f), true);
      expect(await familySupport(files('0\n'), present)).to.deep.equal({ IPv4: true, IPv6: true });
      expect(await familySupport(files('1\n'), present)).to.deep.equal({ IPv4: true, IPv6: false });
      expect(await familySupport(files(undefined), present), 'no IPv6 in the kernel at all').to.deep.equal({ IPv4: true, IPv6: false });
      expect(await familySupport(files('0\n'), async (f) => f === 'IPv4'), 'no ip6tables').to.deep.equal({ IPv4: true, IPv6: false });
      expect(asked).to.deep.equal(['IPv4', 'IPv6', 'IPv4', 'IPv4']);
    });
  });

  describe('IptablesProxier per family, behind a MetaProxier', () => {
    const clock = new FakeClock();
    let registry: Registry;
    let ipt: Record<IPFamily, FakeIptables>;
    let proxiers: Record<IPFamily, IptablesProxier>;
    let meta: MetaProxier;

    beforeEach(() => {
      registry = new Registry();
      ipt = { IPv4: new FakeIptables(), IPv6: new FakeIptables() };
      const make = (family: IPFamily, nodeIPs: string[], clusterCIDR: string) =>
        new IptablesProxier(
          { iptables: ipt[family], clock, log: nullLogger(), registry, sysctl: async () => {} },
          { family, nodeName: 'node-a', nodeIPs, clusterCIDR, localhostNodePorts: true, backend: 'nft' },
        );
      // Both on one registry: the shared metrics are made once and told apart by ip_family.
      proxiers = { IPv4: make('IPv4', ['192.0.2.10'], '10.244.0.0/16'), IPv6: make('IPv6', ['fd00:10::10'], 'fd00:10:244::/64') };
      meta = new MetaProxier(new Map<IPFamily, Proxier>([['IPv4', proxiers.IPv4], ['IPv6', proxiers.IPv6]]));
    });

    it('programs each family\'s tables from the same Service and its own slices', async () => {
      meta.onServiceAdd(dual);
      meta.onSliceAdd(slice4);
      meta.onSliceAdd(slice6);
      expect(meta.routedEndpoints(), 'nothing synced yet').to.equal(undefined);
      await proxiers.IPv4.syncProxyRules();
      expect(meta.routedEndpoints(), 'one family synced').to.equal(undefined);
      await proxiers.IPv6.syncProxyRules();

      const svc = serviceChainName('ns1/web:http', 'tcp');
      const nat6 = ipt.IPv6.rules('nat', svc).join('\n');
      expect(ipt.IPv6.rules('nat', endpointChainName('ns1/web:http', 'tcp', '[fd00:10:244::5]:8080'))).to.include(
        '-p tcp -m comment --comment "ns1/web:http" -m tcp -j DNAT --to-destination [fd00:10:244::5]:8080',
      );
      expect(nat6).to.not.include('10.244.1.5');
      expect(ipt.IPv4.rules('nat', svc).join('\n')).to.not.include('fd00');
      expect(ipt.IPv6.rules('nat', 'KUBE-SERVICES').some((r) => r.startsWith('-d fd00:10:96::a/128 '))).to.equal(true);
      expect(ipt.IPv6.rules('nat', 'KUBE-SERVICES').some((r) => r.startsWith('-d fd00:9::50/128 '))).to.equal(true);
      // localhost node ports: IPv4 only (KUBE-FIREWALL guards 127.0.0.0/8), never in the IPv6 tables.
      expect(ipt.IPv4.rules('filter', 'INPUT').some((r) => r.endsWith('-j KUBE-FIREWALL'))).to.equal(true);
      expect(ipt.IPv6.rules('filter', 'INPUT').some((r) => r.endsWith('-j KUBE-FIREWALL'))).to.equal(false);
      expect(ipt.IPv4.checkInvariants()).to.deep.equal([]);
      expect(ipt.IPv6.checkInvariants()).to.deep.equal([]);
      expect([...(meta.routedEndpoints() ?? [])].sort()).to.deep.equal(['10.244.1.5', 'fd00:10:244::5']);

      for (const f of ['IPv4', 'IPv6'] as const) {
        expect(await labeledMetricValue(registry, 'kubeproxy_sync_full_proxy_rules_duration_seconds', { ip_family: f }), f).to.equal(1);
        expect(await labeledMetricValue(registry, 'kubeproxy_sync_proxy_rules_iptables_total', { ip_family: f, table: 'nat' }), f).to.be.above(5);
      }
    });

    it('sends a slice to its family only: an IPv6 endpoint change is a partial sync of the IPv6 tables alone', async () => {
      meta.onServiceAdd(dual);
      meta.onSliceAdd(slice4);
      meta.onSliceAdd(slice6);
      await proxiers.IPv4.syncProxyRules();
      await proxiers.IPv6.syncProxyRules();
      const restores = { IPv4: ipt.IPv4.restores.length, IPv6: ipt.IPv6.restores.length };
      meta.onSliceUpdate(slice6, slice('IPv6', ['fd00:10:244::6']));
      await proxiers.IPv4.syncProxyRules();
      await proxiers.IPv6.syncProxyRules();
      expect(ipt.IPv4.restores.length, 'IPv4: nothing to write').to.equal(restores.IPv4);
      expect(ipt.IPv6.restores.length).to.be.above(restores.IPv6);
      expect(ipt.IPv6.rules('nat', endpointChainName('ns1/web:http', 'tcp', '[fd00:10:244::6]:8080'))).to.have.length(2);
      expect(await labeledMetricValue(registry, 'kubeproxy_sync_proxy_rules_endpoint_changes_total', {}), 'counted once, by the IPv6 proxier').to.equal(3);
    });

    it('routes a pod-CIDR detector to its family and an interface detector to both', () => {
      const seen: Record<IPFamily, LocalDetector[]> = { IPv4: [], IPv6: [] };
      const spy = (f: IPFamily) => ({ ...proxiers[f], setLocalDetector: (d: LocalDetector) => void seen[f].push(d) }) as unknown as Proxier;
      const m = new MetaProxier(new Map<IPFamily, Proxier>([['IPv4', spy('IPv4')], ['IPv6', spy('IPv6')]]));
      m.setLocalDetector({ mode: 'NodeCIDR', cidr: 'fd00:10:244:1::/64' });
      m.setLocalDetector({ mode: 'BridgeInterface', iface: 'cbr0' });
      expect(seen.IPv4.map((d) => d.mode)).to.deep.equal(['BridgeInterface']);
      expect(seen.IPv6.map((d) => d.mode)).to.deep.equal(['NodeCIDR', 'BridgeInterface']);
    });
  });
});
