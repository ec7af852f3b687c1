// --detect-local-mode: the matches each mode puts in the rules (iptables and
// nft), the flags and config fields, and NodeCIDR read from the Node.
import { expect } from 'chai';
import { detectorOf, iptablesLocalMatches, nftLocalMatches } from '../../proxy/localdetect.ts';
import { parseProxyFlags } from '../../proxy/config.ts';
import { generateRules } from '../../proxy/iptables/rules.ts';
import { buildRuleset } from '../../proxy/nftables/state.ts';
import { fullTransaction } from '../../proxy/nftables/transaction.ts';
import { podCIDROf } from '../../proxy/nodeip.ts';
import { endpoint as ep, servicePort as svc } from '../fakes/proxyobjects.ts';

const host = { hostname: () => 'node-a', networkInterfaces: () => ({}) };
const parse = (...argv: string[]) => parseProxyFlags(['--kubeconfig=/k', ...argv], host);

describe('proxy --detect-local-mode', () => {
  it('matches the source address (ClusterCIDR, NodeCIDR) or the input interface (BridgeInterface, InterfaceNamePrefix)', () => {
    expect(iptablesLocalMatches({ mode: 'ClusterCIDR', cidr: '10.244.0.0/16' })).to.deep.equal({ ifLocal: '-s 10.244.0.0/16', ifNotLocal: '! -s 10.244.0.0/16' });
    expect(iptablesLocalMatches({ mode: 'NodeCIDR', cidr: '10.244.7.0/24' })).to.deep.equal({ ifLocal: '-s 10.244.7.0/24', ifNotLocal: '! -s 10.244.7.0/24' });
    expect(iptablesLocalMatches({ mode: 'BridgeInterface', iface: 'cbr0' })).to.deep.equal({ ifLocal: '-i cbr0', ifNotLocal: '! -i cbr0' });
    expect(iptablesLocalMatches({ mode: 'InterfaceNamePrefix', prefix: 'veth' })).to.deep.equal({ ifLocal: '-i veth+', ifNotLocal: '! -i veth+' });
    expect(nftLocalMatches({ mode: 'ClusterCIDR', cidr: '10.244.0.0/16' })).to.deep.equal({ local: 'ip saddr 10.244.0.0/16', notLocal: 'ip saddr != 10.244.0.0/16' });
    // An IPv6 CIDR (an IPv6 proxier's) is matched in the IPv6 header.
    expect(nftLocalMatches({ mode: 'NodeCIDR', cidr: 'fd00:244:7::/64' })).to.deep.equal({ local: 'ip6 saddr fd00:244:7::/64', notLocal: 'ip6 saddr != fd00:244:7::/64' });
    expect(nftLocalMatches({ mode: 'BridgeInterface', iface: 'cbr0' })).to.deep.equal({ local: 'iifname "cbr0"', notLocal: 'iifname != "cbr0"' });
    expect(nftLocalMatches({ mode: 'InterfaceNamePrefix', prefix: 'veth' })).to.deep.equal({ local: 'iifname "veth*"', notLocal: 'iifname != "veth*"' });
    expect(detectorOf({ clusterCIDR: '10.244.0.0/16' })).to.deep.equal({ mode: 'ClusterCIDR', cidr: '10.244.0.0/16' });
    expect(detectorOf({ clusterCIDR: '10.244.0.0/16', localDetector: { mode: 'BridgeInterface', iface: 'cbr0' } })).to.deep.equal({ mode: 'BridgeInterface', iface: 'cbr0' });
    expect(detectorOf({})).to.equal(undefined);
  });

  it('iptables mode: the cluster-IP masquerade and the Local-policy short-circuit use the detector', () => {
    const input = {
      services: [svc({ nodePort: 30080, externalTrafficPolicy: 'Local' as const })],
      endpoints: new Map([['ns1/svc1:http', [ep('10.244.1.1', { isLocal: true })]]]),
      nodeIPs: [],
      localhostNodePorts: false,
      clusterCIDR: '10.244.0.0/16',
      localDetector: { mode: 'BridgeInterface' as const, iface: 'cbr0' },
    };
    const { nat } = generateRules(input, { full: true });
    expect(nat).to.match(/^-A KUBE-SVC-\S+ ! -i cbr0 -d 10\.96\.0\.10\/32 .*-j KUBE-MARK-MASQ$/m);
    expect(nat).to.match(/^-A KUBE-EXT-\S+ -i cbr0 -m comment --comment "pod traffic for ns1\/svc1:http external destinations" -j KUBE-SVC-/m);
    expect(nat).to.not.include('10.244.0.0/16');
  });

  it('nftables mode: the same in the shared chains', () => {
    const text = fullTransaction(
      buildRuleset({
        services: [svc({ nodePort: 30080, externalTrafficPolicy: 'Local' })],
        endpoints: new Map([['ns1/svc1:http', [ep('10.244.1.1', { isLocal: true })]]]),
        nodeIPs: [],
        localhostNodePorts: false,
        clusterCIDR: '10.244.0.0/16',
        localDetector: { mode: 'InterfaceNamePrefix', prefix: 'veth' },
      }),
    );
    expect(text).to.match(/^add rule ip nodelet svc_tcp_1 iifname != "veth\*" meta mark set meta mark \| 0x4000$/m);
    expect(text).to.match(/^add rule ip nodelet external_policy_local iifname "veth\*" ip daddr/m);
    expect(text).to.not.include('10.244.0.0/16');
  });

  it('nftables mode, IPv6: a NodeCIDR detector matches `ip6 saddr` in table ip6 nodelet', () => {
    const text = fullTransaction(
      buildRuleset({
        family: 'IPv6',
        services: [svc({ clusterIPs: ['fd00:10:96::a'] })],
        endpoints: new Map([['ns1/svc1:http', [ep('fd00:244:7::5', { isLocal: true })]]]),
        nodeIPs: [],
        localhostNodePorts: false,
        localDetector: { mode: 'NodeCIDR', cidr: 'fd00:244:7::/64' },
      }),
    );
    expect(text).to.match(/^add rule ip6 nodelet svc_tcp_1 ip6 saddr != fd00:244:7::\/64 meta mark set meta mark \| 0x4000$/m);
    expect(text).to.match(/^add rule ip6 nodelet external_policy_local ip6 saddr fd00:244:7::\/64 ip6 daddr/m);
  });

  it('takes the flags and KubeProxyConfiguration fields, with ClusterCIDR by default', () => {
    expect(parse()).to.include({ detectLocalMode: 'ClusterCIDR' });
    expect(parse('--detect-local-mode=BridgeInterface', '--pod-bridge-interface=cbr0')).to.include({ detectLocalMode: 'BridgeInterface', podBridgeInterface: 'cbr0' });
    expect(parse('--detect-local-mode', 'InterfaceNamePrefix', '--pod-interface-name-prefix', 'veth')).to.include({ podInterfaceNamePrefix: 'veth' });
    expect(parse('--detect-local-mode=NodeCIDR')).to.include({ detectLocalMode: 'NodeCIDR' });
    expect(() => parse('--detect-local-mode=Magic')).to.throw(/--detect-local-mode: 'Magic' is not one of ClusterCIDR, NodeCIDR, BridgeInterface, InterfaceNamePrefix/);
    expect(() => parse('--detect-local-mode=BridgeInterface')).to.throw(/--pod-bridge-interface: is required with --detect-local-mode=BridgeInterface/);
    expect(() => parse('--detect-local-mode=InterfaceNamePrefix')).to.throw(/--pod-interface-name-prefix: is required/);
    expect(() => parse('--detect-local-mode=BridgeInterface', '--pod-bridge-interface=br0;x')).to.throw(/'br0;x' is not an interface name/);
  });

  it('reads the IPv4 pod CIDR of the Node for NodeCIDR', () => {
    expect(podCIDROf({ spec: { podCIDR: '10.244.7.0/24', podCIDRs: ['fd00:244::/64', '10.244.7.0/24'] } })).to.equal('10.244.7.0/24');
    expect(podCIDROf({ spec: { podCIDR: '10.244.8.0/24' } })).to.equal('10.244.8.0/24');
    expect(podCIDROf({ spec: {} })).to.equal(undefined);
    expect(podCIDROf(undefined)).to.equal(undefined);
  });
});
