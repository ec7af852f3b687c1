// Addresses: documentation ranges (RFC 5737) and private ranges only.
import { expect } from 'chai';
import type os from 'node:os';
import type { HostProbe } from '../../agent/config.ts';
import { errorCode } from '../../lib/errors.ts';
import { ipInCIDR } from '../../lib/ip.ts';
import { nodePortIPs, parseBindAddress, parseProxyFlags } from '../../proxy/config.ts';

const host: HostProbe = { hostname: () => 'Node-A', networkInterfaces: () => ({}) };
const parse = (...argv: string[]) => parseProxyFlags(['--kubeconfig', '/k', ...argv], host);

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return errorCode(err);
  }
  return undefined;
}
function messageOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    return (err as Error).message;
  }
  return '';
}

describe('proxy flags (parseProxyFlags)', () => {
  it('has kube-proxy defaults', () => {
    const c = parse();
    expect(c).to.deep.equal({
      kubeconfig: '/k',
      nodeName: 'node-a',
      mode: 'iptables',
      nodePortAddresses: [],
      nodePortPrimary: false,
      bindAddress: '0.0.0.0',
      minSyncPeriodMs: 1000,
      syncPeriodMs: 30_000,
      healthzBindAddress: { host: '0.0.0.0', port: 10256 },
      metricsBindAddress: { host: '127.0.0.1', port: 10249 },
      iptablesBackend: 'auto',
      localhostNodePorts: true,
      logLevel: 'info',
      cleanup: false,
      initOnly: false,
      detectLocalMode: 'ClusterCIDR',
      masqueradeAll: false,
      masqueradeBit: 14,
      oomScoreAdj: -999,
      conntrack: { maxPerCore: 32768, min: 131072, tcpEstablishedTimeoutS: 86400, tcpCloseWaitTimeoutS: 3600, tcpBeLiberal: false, udpTimeoutS: 0, udpStreamTimeoutS: 0 },
      ignoredFlags: [],
    });
    expect(Object.isFrozen(c)).to.equal(true);
  });

  it('takes every flag in both --f=v and --f v forms', () => {
    const c = parse(
      '--hostname-override=node-b',
      '--proxy-mode', 'userspace',
      '--cluster-cidr=10.244.0.0/16',
      '--bind-address', 'fd00:2::9',
      '--nodeport-addresses', '192.0.2.0/24,198.51.100.7/32',
      '--iptables-min-sync-period=2s',
      '--iptables-sync-period', '1m',
      '--healthz-bind-address=127.0.0.1:20256',
      '--metrics-bind-address', '0.0.0.0:20249',
      '--iptables-backend=legacy',
      '--iptables-localhost-nodeports=false',
      '--v=4',
    );
    expect(c).to.include({ nodeName: 'node-b', mode: 'userspace', clusterCIDR: '10.244.0.0/16', bindAddress: 'fd00:2::9', minSyncPeriodMs: 2000, syncPeriodMs: 60_000, iptablesBackend: 'legacy', localhostNodePorts: false, logLevel: 'debug' });
    expect(c.nodePortAddresses).to.deep.equal(['192.0.2.0/24', '198.51.100.7/32']);
    expect(c.healthzBindAddress).to.deep.equal({ host: '127.0.0.1', port: 20256 });
    expect(c.metricsBindAddress).to.deep.equal({ host: '0.0.0.0', port: 20249 });
  });

  it('disables a server with an empty bind address or port 0', () => {
    const c = parse('--healthz-bind-address=', '--metrics-bind-address=0.0.0.0:0');
    expect(c.healthzBindAddress).to.equal(undefined);
    expect(c.metricsBindAddress).to.equal(undefined);
    expect(parseBindAddress('x', '192.0.2.1', 10256)).to.deep.equal({ host: '192.0.2.1', port: 10256 });
  });

  it('rejects bad input with CONFIG_INVALID and says which flag', () => {
    const cases: Array<[string[], RegExp]> = [
      [['--proxy-mode=ipvs'], /--proxy-mode: 'ipvs' is not one of iptables, userspace/],
      [['--proxy-mode=nft'], /--proxy-mode: 'nft' is not one of iptables, userspace, nftables/],
      [['--cluster-cidr=10.244.0.1/16'], /--cluster-cidr: .*host bits set/],
      [['--nodeport-addresses=192.0.2.0/33'], /--nodeport-addresses/],
      [['--iptables-sync-period=soon'], /--iptables-sync-period: 'soon' is not a duration/],
      [['--iptables-min-sync-period=1m', '--iptables-sync-period=30s'], /--iptables-min-sync-period: .*longer than --iptables-sync-period/],
      [['--healthz-bind-address=nowhere:1'], /--healthz-bind-address: 'nowhere:1' is not an ip:port address/],
      [['--iptables-backend=ebpf'], /--iptables-backend: 'ebpf' is not one of auto, nft, legacy/],
      [['--iptables-localhost-nodeports=maybe'], /--iptables-localhost-nodeports/],
      [['--hostname-override=Bad_Name'], /--hostname-override: 'bad_name' is not a valid node name/],
      [['--frobnicate=1'], /unknown flag --frobnicate/],
      [['stray'], /unexpected argument 'stray'/],
      [['--cluster-cidr'], /--cluster-cidr: needs a value/],
      [['--bind-address=node-1'], /--bind-address: 'node-1' is not an IP address/],
      [['--cluster-cidr=10.244.0.0/16,fd00::/8,fd01::/16'], /--cluster-cidr: .*at most one CIDR per IP family/],
      [['--cluster-cidr=fd00::/8,fd01::/16'], /--cluster-cidr: .*needs one IPv4 and one IPv6 CIDR/],
      [['--cleanup=sometimes'], /--cleanup: 'sometimes' is not true or false/],
      [['--nodeport-addresses=primary,192.0.2.0/24'], /--nodeport-addresses: 'primary' cannot be combined with CIDRs/],
    ];
    for (const [argv, re] of cases) {
      expect(codeOf(() => parse(...argv)), argv.join(' ')).to.equal('CONFIG_INVALID');
      expect(messageOf(() => parse(...argv)), argv.join(' ')).to.match(re);
    }
    expect(messageOf(() => parseProxyFlags([], host))).to.match(/--kubeconfig: is required/);
  });

  it('accepts a bare --iptables-localhost-nodeports as true', () => {
    expect(parse('--iptables-localhost-nodeports').localhostNodePorts).to.equal(true);
  });

  it('takes --nodeport-addresses primary (kube-proxy 1.29+)', () => {
    expect(parse('--nodeport-addresses=primary')).to.deep.include({ nodePortPrimary: true, nodePortAddresses: [] });
  });

  it('takes --iptables-masquerade-bit 0..31 (default 14)', () => {
    expect(parse('--iptables-masquerade-bit=12').masqueradeBit).to.equal(12);
    expect(parse('--iptables-masquerade-bit', '0').masqueradeBit).to.equal(0);
    expect(messageOf(() => parse('--iptables-masquerade-bit=32'))).to.match(/--iptables-masquerade-bit: 32 is outside 0\.\.31/);
    expect(messageOf(() => parse('--iptables-masquerade-bit=-1'))).to.match(/--iptables-masquerade-bit: '-1' is not a whole number/);
  });

  it('takes --masquerade-all bare or with a value (default false)', () => {
    expect(parse('--masquerade-all').masqueradeAll).to.equal(true);
    expect(parse('--masquerade-all=false').masqueradeAll).to.equal(false);
    expect(messageOf(() => parse('--masquerade-all=sometimes'))).to.match(/--masquerade-all: 'sometimes' is not true or false/);
  });

  it('takes --init-only bare or with a value, and needs no kubeconfig for it', () => {
    expect(parseProxyFlags(['--init-only'], host)).to.include({ initOnly: true, kubeconfig: '' });
    expect(parse('--init-only=false').initOnly).to.equal(false);
    expect(messageOf(() => parseProxyFlags(['--init-only=false'], host))).to.match(/--kubeconfig: is required/);
  });

  it('takes --cleanup bare or with a value, and needs no kubeconfig for it (as kube-proxy)', () => {
    expect(parseProxyFlags(['--cleanup'], host)).to.include({ cleanup: true, kubeconfig: '' });
    expect(parseProxyFlags(['--cleanup', '--v=4'], host)).to.include({ cleanup: true, logLevel: 'debug' });
    expect(parse('--cleanup=false').cleanup).to.equal(false);
    expect(messageOf(() => parseProxyFlags(['--cleanup=false'], host))).to.match(/--kubeconfig: is required/);
  });

  it('accepts kube-proxy flags it has no use for (warned about by main), with or without their values; other unknown flags are errors', () => {
    const c = parse('--feature-gates=NFTablesProxyMode=true', '--profiling', '--kube-api-qps', '5', '--proxy-mode', 'nftables', '--bind-address-hard-fail');
    expect(c.ignoredFlags).to.deep.equal(['feature-gates', 'profiling', 'kube-api-qps', 'bind-address-hard-fail']);
    expect(c.mode, 'the flags after them are read as before').to.equal('nftables');
    expect(messageOf(() => parse('--no-such-flag=1'))).to.equal('unknown flag --no-such-flag');
  });

  it('takes --master (the API server over the kubeconfig\'s), also without a kubeconfig', () => {
    expect(parse('--master', 'https://192.0.2.1:6443').master).to.equal('https://192.0.2.1:6443');
    expect(parseProxyFlags(['--master=http://127.0.0.1:8080'], host)).to.include({ master: 'http://127.0.0.1:8080', kubeconfig: '' });
    expect(messageOf(() => parse('--master', 'apiserver:6443'))).to.match(/--master: 'apiserver:6443' is not an http\(s\) URL/);
  });
});

describe('proxy node port addresses', () => {
  it('matches IPv4 addresses against CIDRs', () => {
    expect(ipInCIDR('192.0.2.77', '192.0.2.0/24')).to.equal(true);
    expect(ipInCIDR('192.0.3.1', '192.0.2.0/24')).to.equal(false);
    expect(ipInCIDR('203.0.113.9', '0.0.0.0/0')).to.equal(true);
    expect(ipInCIDR('255.255.255.255', '255.255.255.254/31')).to.equal(true);
    expect(ipInCIDR('198.51.100.7', '198.51.100.7/32')).to.equal(true);
    expect(ipInCIDR('198.51.100.8', '198.51.100.7/32')).to.equal(false);
  });

  it('picks the local addresses inside --nodeport-addresses; none given means all ([])', () => {
    const a = (address: string, family: 'IPv4' | 'IPv6' = 'IPv4') => ({ address, family, internal: false }) as os.NetworkInterfaceInfo;
    const ifaces = { lo: [a('127.0.0.1')], eth0: [a('192.0.2.10'), a('2001:db8::1', 'IPv6')], eth1: [a('198.51.100.3')] };
    expect(nodePortIPs([], ifaces)).to.deep.equal([]);
    expect(nodePortIPs(['192.0.2.0/24'], ifaces)).to.deep.equal(['192.0.2.10']);
    expect(nodePortIPs(['192.0.2.0/24', '127.0.0.0/8'], ifaces)).to.deep.equal(['127.0.0.1', '192.0.2.10']);
    expect(nodePortIPs(['203.0.113.0/24'], ifaces)).to.deep.equal([]);
  });

  it('dual-stack: each family takes its own CIDRs; a family with none of its own answers on all its addresses', () => {
    const a = (address: string, family: 'IPv4' | 'IPv6' = 'IPv4') => ({ address, family, internal: false }) as os.NetworkInterfaceInfo;
    const ifaces = { eth0: [a('192.0.2.10'), a('2001:db8::1', 'IPv6'), a('fd00:10::10', 'IPv6')] };
    expect(nodePortIPs(['192.0.2.0/24', 'fd00:10::/64'], ifaces, 'IPv6')).to.deep.equal(['fd00:10::10']);
    expect(nodePortIPs(['192.0.2.0/24', 'fd00:10::/64'], ifaces, 'IPv4')).to.deep.equal(['192.0.2.10']);
    expect(nodePortIPs(['192.0.2.0/24'], ifaces, 'IPv6'), 'no IPv6 CIDR: all').to.deep.equal([]);
    expect(parseProxyFlags(['--kubeconfig=/k', '--hostname-override=n1', '--cluster-cidr=10.244.0.0/16,fd00:10:244::/56', '--nodeport-addresses=fd00:10::/64']))
      .to.include({ clusterCIDR: '10.244.0.0/16,fd00:10:244::/56' });
  });
});
