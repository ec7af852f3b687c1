// Pure CRI configs from a pod: DNS by policy, hostname, ports, resources and
// OOM scores by QoS, the default pull policy.
import type { V1Pod } from '@kubernetes/client-node';
import { expect } from 'chai';
import { containerResources, parseResolvConf, podDNS, podHostname, portMappings, pullPolicy, sandboxConfig } from '../../agent/pod/podconfig.ts';

const host = parseResolvConf('# c\nnameserver 192.0.2.53\nsearch example.test corp.test\noptions ndots:2 timeout:1\n');
const settings = { clusterDNS: ['10.96.0.10'], clusterDomain: 'cluster.local', host };
const pod = (spec: Partial<NonNullable<V1Pod['spec']>> = {}): V1Pod => ({ metadata: { name: 'web', namespace: 'shop', uid: 'u' }, spec: { containers: [{ name: 'c' }], ...spec } });

describe('podconfig', () => {
  it('parses resolv.conf', () => {
    expect(host).to.deep.equal({ servers: ['192.0.2.53'], searches: ['example.test', 'corp.test'], options: ['ndots:2', 'timeout:1'] });
  });
  it('ClusterFirst: cluster nameserver, namespace search paths first, ndots:5', () => {
    expect(podDNS(pod(), settings).config).to.deep.equal({
      servers: ['10.96.0.10'],
      searches: ['shop.svc.cluster.local', 'svc.cluster.local', 'cluster.local', 'example.test', 'corp.test'],
      options: ['ndots:5'],
    });
  });
  it('ClusterFirst with host networking and Default use the host resolver', () => {
    expect(podDNS(pod({ hostNetwork: true }), settings).config.servers).to.deep.equal(['192.0.2.53']);
    expect(podDNS(pod({ dnsPolicy: 'Default' }), settings).config.options).to.deep.equal(['ndots:2', 'timeout:1']);
    expect(podDNS(pod({ hostNetwork: true, dnsPolicy: 'ClusterFirstWithHostNet' }), settings).config.servers).to.deep.equal(['10.96.0.10']);
  });
  it('None takes only the pod dnsConfig; options merge by name with the pod winning', () => {
    expect(podDNS(pod({ dnsPolicy: 'None', dnsConfig: { nameservers: ['192.0.2.1'], searches: ['a.test'], options: [{ name: 'ndots', value: '1' }] } }), settings).config)
      .to.deep.equal({ servers: ['192.0.2.1'], searches: ['a.test'], options: ['ndots:1'] });
    expect(podDNS(pod({ dnsConfig: { options: [{ name: 'ndots', value: '2' }, { name: 'edns0' }] } }), settings).config.options).to.deep.equal(['ndots:2', 'edns0']);
  });
  it('falls back to the host resolver with a warning when no cluster DNS is configured', () => {
    const d = podDNS(pod(), { ...settings, clusterDNS: [] });
    expect(d.config.servers).to.deep.equal(['192.0.2.53']);
    expect(d.warning).to.match(/Falling back to "Default" policy/);
  });
  it('hostname is spec.hostname or the pod name, at most 63 characters', () => {
    expect(podHostname(pod({ hostname: 'h1' }))).to.equal('h1');
    expect(podHostname({ metadata: { name: 'x'.repeat(70) } })).to.have.length(63);
  });
  it('maps only ports with a hostPort', () => {
    expect(portMappings(pod({ containers: [{ name: 'c', ports: [{ containerPort: 80 }, { containerPort: 53, hostPort: 5353, protocol: 'UDP' }] }] })))
      .to.deep.equal([{ protocol: 'UDP', containerPort: 53, hostPort: 5353 }]);
  });
  it('sandbox namespaces follow hostNetwork, hostPID and shareProcessNamespace', () => {
    const c = sandboxConfig(pod({ hostNetwork: true, shareProcessNamespace: true }), 2, { dns: { servers: [], searches: [], options: [] }, podLogsDir: '/var/log/pods' });
    expect(c.linux?.securityContext?.namespaceOptions).to.deep.equal({ network: 'NODE', pid: 'POD', ipc: 'POD' });
    expect(c.metadata).to.deep.equal({ name: 'web', namespace: 'shop', uid: 'u', attempt: 2 });
    expect(c.logDirectory).to.equal('/var/log/pods/shop_web_u');
  });
  it('cpu shares, quota and memory limit; OOM score by QoS', () => {
    const guaranteed = pod({ containers: [{ name: 'c', resources: { requests: { cpu: '500m', memory: '1Gi' }, limits: { cpu: '500m', memory: '1Gi' } } }] });
    expect(containerResources(guaranteed, guaranteed.spec!.containers[0]!, 8 * 2 ** 30)).to.deep.equal({
      cpuShares: 512, cpuPeriod: 100000, cpuQuota: 50000, memoryLimitInBytes: 1 << 30, oomScoreAdj: -997,
    });
    const best = pod();
    expect(containerResources(best, best.spec!.containers[0]!, 8 * 2 ** 30)).to.deep.equal({ cpuShares: 2, oomScoreAdj: 1000 });
    const burst = pod({ containers: [{ name: 'c', resources: { requests: { memory: '4Gi' } } }] });
    expect(containerResources(burst, burst.spec!.containers[0]!, 8 * 2 ** 30).oomScoreAdj).to.equal(500);
  });
  it('defaults the pull policy by tag', () => {
    expect(pullPolicy({ name: 'c', image: 'busybox' })).to.equal('Always');
    expect(pullPolicy({ name: 'c', image: 'busybox:latest' })).to.equal('Always');
    expect(pullPolicy({ name: 'c', image: 'localhost:5000/busybox' })).to.equal('Always');
    expect(pullPolicy({ name: 'c', image: 'busybox:1.35' })).to.equal('IfNotPresent');
    expect(pullPolicy({ name: 'c', image: 'busybox:1.35', imagePullPolicy: 'Never' })).to.equal('Never');
  });
});
