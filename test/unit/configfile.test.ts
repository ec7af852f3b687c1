// The --config file (KubeletConfiguration / KubeProxyConfiguration): documents,
// field mapping, flags over the file, warnings and errors with field paths.
// Addresses are from the documentation ranges (RFC 5737) and private ranges.
import { expect } from 'chai';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { type HostProbe, parseAgentFlags } from '../../agent/config.ts';
import { parseConfigDocuments } from '../../agent/configfile/document.ts';
import { evictionThresholdError, kubeletFileFlags } from '../../agent/configfile/kubelet.ts';
import { bindAddressError } from '../../agent/configfile/proxy.ts';
import { parseJoinFlags } from '../../agent/join/flags.ts';
import { errorCode } from '../../lib/errors.ts';
import { parseProxyFlags } from '../../proxy/config.ts';

const host: HostProbe = {
  hostname: () => 'worker-1',
  networkInterfaces: () => ({ eth0: [{ address: '192.0.2.10', netmask: '255.255.255.0', family: 'IPv4', mac: '02:00:00:00:00:01', internal: false, cidr: '192.0.2.10/24' }] }),
};

const KUBELET = 'apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n';
const PROXY = 'apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\n';

let dir: string;
let n = 0;
/** Writes `text` to a fresh file and returns its path. */
function file(text: string): string {
  const p = path.join(dir, `config-${++n}.yaml`);
  fs.writeFileSync(p, text);
  return p;
}
const agent = (text: string, ...flags: string[]) => parseAgentFlags(['--kubeconfig=/k', '--config', file(text), ...flags], host);
const proxy = (text: string, ...flags: string[]) => parseProxyFlags(['--kubeconfig=/k', `--config=${file(text)}`, ...flags], host);

function failure(fn: () => unknown): Error & { code?: string } {
  try {
    fn();
  } catch (err) {
    return err as Error & { code?: string };
  }
  throw new Error('expected a CONFIG_INVALID error');
}

before(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nodelet-configfile-'));
});
after(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('config file: documents', () => {
  it('finds one document of each kind in a multi-document file, skipping empty ones', () => {
    const docs = parseConfigDocuments(`---\n${KUBELET}maxPods: 7\n---\n---\n${PROXY}mode: nftables\n`, 'f');
    expect(docs.kubelet?.['maxPods']).to.equal(7);
    expect(docs.proxy?.['mode']).to.equal('nftables');
  });

  it('takes either document alone, and an empty file', () => {
    expect(parseConfigDocuments(KUBELET, 'f').proxy).to.equal(undefined);
    expect(parseConfigDocuments(PROXY, 'f').kubelet).to.equal(undefined);
    expect(parseConfigDocuments('', 'f')).to.deep.equal({});
    expect(parseConfigDocuments('# only a comment\n', 'f')).to.deep.equal({});
  });

  const bad: Array<[string, string, RegExp]> = [
    ['wrong kubelet apiVersion', 'apiVersion: kubelet.config.k8s.io/v1\nkind: KubeletConfiguration\n', /^f: KubeletConfiguration\.apiVersion: 'kubelet\.config\.k8s\.io\/v1'; nodelet reads KubeletConfiguration as kubelet\.config\.k8s\.io\/v1beta1$/],
    ['wrong proxy apiVersion', 'apiVersion: kubeproxy.config.k8s.io/v1alpha2\nkind: KubeProxyConfiguration\n', /KubeProxyConfiguration\.apiVersion: 'kubeproxy\.config\.k8s\.io\/v1alpha2'; nodelet reads .* as kubeproxy\.config\.k8s\.io\/v1alpha1/],
    ['missing apiVersion', 'kind: KubeletConfiguration\n', /KubeletConfiguration\.apiVersion: missing/],
    ['unknown kind', 'apiVersion: v1\nkind: Pod\n', /^f: document\.kind: 'Pod' is not KubeletConfiguration or KubeProxyConfiguration$/],
    ['missing kind', 'apiVersion: kubelet.config.k8s.io/v1beta1\nmaxPods: 3\n', /document\.kind: is required/],
    ['a list, not a mapping', '- a\n- b\n', /document: is a list, not a mapping/],
    ['two of one kind', `${KUBELET}---\n${KUBELET}`, /document 2: a second KubeletConfiguration/],
    ['not YAML', `${KUBELET}maxPods: [1\n`, /^f: document: not valid YAML: /],
    ['a duplicate key', `${KUBELET}maxPods: 1\nmaxPods: 2\n`, /not valid YAML: Map keys must be unique/],
  ];
  for (const [name, text, want] of bad) {
    it(`rejects ${name}`, () => {
      const err = failure(() => parseConfigDocuments(text, 'f'));
      expect(err.code).to.equal('CONFIG_INVALID');
      expect(err.message).to.match(want);
      expect(err.message).to.not.include('\n');
    });
  }

  it('rejects an unreadable --config file for both components', () => {
    const missing = path.join(os.tmpdir(), 'nodelet-no-such-dir', 'config.yaml');
    for (const fn of [() => parseAgentFlags(['--kubeconfig=/k', `--config=${missing}`], host), () => parseProxyFlags(['--kubeconfig=/k', `--config=${missing}`], host)]) {
      const err = failure(fn);
      expect(err.code).to.equal('CONFIG_INVALID');
      expect(err.message).to.equal(`--config: cannot read ${missing}: ENOENT`);
    }
  });
});

describe('config file: KubeletConfiguration', () => {
  const full = `${KUBELET}
staticPodPath: /etc/nodelet/manifests
podLogsDir: /srv/pod-logs
syncFrequency: 30s
port: 11250
healthzPort: 0
clusterDomain: cluster.local.
clusterDNS: [10.96.0.10, 10.96.0.11]
nodeStatusUpdateFrequency: 20s
nodeStatusReportFrequency: 2m
nodeLeaseDurationSeconds: 60
runtimeRequestTimeout: 5m
maxPods: 42
podCIDR: 10.244.3.0/24
resolvConf: /run/systemd/resolve/resolv.conf
containerRuntimeEndpoint: unix:///run/docker-2.sock
logging:
  verbosity: 4
  format: json
`;

  it('file only: every supported field reaches the agent config, with no warnings', () => {
    const c = agent(full);
    expect(c).to.include({
      staticPodPath: '/etc/nodelet/manifests',
      podLogsDir: '/srv/pod-logs',
      syncFrequencyMs: 30_000,
      port: 11250,
      healthzPort: 0,
      clusterDomain: 'cluster.local',
      nodeStatusUpdateFrequencyMs: 20_000,
      nodeStatusReportFrequencyMs: 120_000,
      nodeLeaseDurationSeconds: 60,
      runtimeRequestTimeoutMs: 300_000,
      maxPods: 42,
      podCIDR: '10.244.3.0/24',
      resolvConf: '/run/systemd/resolve/resolv.conf',
      containerRuntimeEndpoint: 'unix:///run/docker-2.sock',
      runtimeSocketPath: '/run/docker-2.sock',
      logLevel: 'debug',
    });
    expect(c.clusterDNS).to.deep.equal(['10.96.0.10', '10.96.0.11']);
    expect(c.configFile?.warnings).to.deep.equal([]);
    expect(c.configFile?.path).to.match(/config-\d+\.yaml$/);
  });

  it('flags only: no configFile and the defaults', () => {
    const c = parseAgentFlags(['--kubeconfig=/k', '--max-pods=9'], host);
    expect(c.configFile).to.equal(undefined);
    expect(c.maxPods).to.equal(9);
    expect(c.syncFrequencyMs).to.equal(60_000);
  });

  const overrides: Array<[string, string, string[], Record<string, unknown>]> = [
    ['maxPods', 'maxPods: 42', ['--max-pods=7'], { maxPods: 7 }],
    ['clusterDNS', 'clusterDNS: [10.96.0.10]', ['--cluster-dns=10.0.0.53'], { clusterDNS: ['10.0.0.53'] }],
    ['syncFrequency', 'syncFrequency: 30s', ['--sync-frequency', '2m'], { syncFrequencyMs: 120_000 }],
    ['staticPodPath', 'staticPodPath: /a', ['--pod-manifest-path=/b'], { staticPodPath: '/b' }],
    ['logging.verbosity', 'logging: {verbosity: 4}', ['--log-level=warn'], { logLevel: 'warn' }],
    ['only the flagged field', 'maxPods: 42\nport: 11250', ['--max-pods=7'], { maxPods: 7, port: 11250 }],
  ];
  for (const [name, body, flags, want] of overrides) {
    it(`a flag overrides the file: ${name}`, () => {
      const c = agent(`${KUBELET}${body}\n`, ...flags);
      for (const [k, v] of Object.entries(want)) expect(c[k as keyof typeof c], k).to.deep.equal(v);
    });
  }

  it('nodeStatusReportFrequency follows a nodeStatusUpdateFrequency set in the file (upstream defaulting)', () => {
    expect(agent(`${KUBELET}nodeStatusUpdateFrequency: 20s\n`).nodeStatusReportFrequencyMs).to.equal(20_000);
  });

  it('zero values mean the default, as upstream defaulting; healthzPort 0 and resolvConf "" are set values', () => {
    const c = agent(`${KUBELET}maxPods: 0\nport: 0\nsyncFrequency: 0s\nnodeLeaseDurationSeconds: 0\nresolvConf: ""\nhealthzPort: 0\nstaticPodPath: ""\n`);
    expect(c).to.include({ maxPods: 110, port: 10250, syncFrequencyMs: 60_000, nodeLeaseDurationSeconds: 40, resolvConf: '', healthzPort: 0, staticPodPath: '' });
    expect(c.configFile?.warnings).to.deep.equal([]);
  });

  it('warns about unknown fields with their path, and keeps going', () => {
    const c = agent(`${KUBELET}maxPods: 12\nmaxPod: 13\nlogging:\n  verbosity: 2\n  colour: true\n`);
    expect(c.maxPods).to.equal(12);
    expect(c.configFile?.warnings).to.deep.equal([
      { field: 'KubeletConfiguration.logging.colour', message: 'unknown field; ignored' },
      { field: 'KubeletConfiguration.maxPod', message: 'unknown field; ignored' },
    ]);
  });

  it('warns about upstream fields nodelet does not support, unless empty or what nodelet does anyway', () => {
    const c = agent(`${KUBELET}cgroupDriver: systemd\nregisterNode: false\nauthentication:\n  webhook:\n    enabled: true\nfeatureGates: {}\ntlsCipherSuites: []\nenableServer: true\nlogging: {format: text}\n`);
    expect(c.configFile?.warnings.map((w) => `${w.field}: ${w.message}`)).to.deep.equal([
      'KubeletConfiguration.logging.format: nodelet always logs JSON; ignored',
      'KubeletConfiguration.authentication: not supported by nodelet; ignored',
      'KubeletConfiguration.cgroupDriver: not supported by nodelet; ignored',
      'KubeletConfiguration.registerNode: not supported by nodelet; ignored',
    ]);
  });

  it('accepts and validates evictionHard, and warns that it is not enforced', () => {
    const c = agent(`${KUBELET}evictionHard:\n  memory.available: 100Mi\n  nodefs.available: "10%"\n  imagefs.inodesFree: 5%\n  pid.available: "1e3"\n`);
    expect(c.configFile?.warnings).to.deep.equal([
      { field: 'KubeletConfiguration.evictionHard', message: 'accepted but not enforced: nodelet does not evict pods under node pressure yet' },
    ]);
  });

  const invalid: Array<[string, string, string]> = [
    ['maxPods as a string', 'maxPods: "ten"', "KubeletConfiguration.maxPods: must be a whole number, not the string 'ten'"],
    ['maxPods negative', 'maxPods: -1', 'KubeletConfiguration.maxPods: -1 is out of range 1..1000000'],
    ['maxPods fractional', 'maxPods: 1.5', 'KubeletConfiguration.maxPods: must be a whole number, not number 1.5'],
    ['port too big', 'port: 70000', 'KubeletConfiguration.port: 70000 is out of range 1..65535'],
    ['healthzPort negative', 'healthzPort: -5', 'KubeletConfiguration.healthzPort: -5 is out of range 0..65535'],
    ['a duration as a number', 'syncFrequency: 10', "KubeletConfiguration.syncFrequency: must be a duration string like '10s' or '1m30s', not number 10"],
    ['a malformed duration', 'syncFrequency: 10 seconds', "KubeletConfiguration.syncFrequency: '10 seconds' is not a duration (use Go form like 10s, 5m, 1m30s)"],
    ['a too short duration', 'nodeStatusUpdateFrequency: 500ms', "KubeletConfiguration.nodeStatusUpdateFrequency: '500ms' is too short (at least 1s)"],
    ['clusterDNS not a list', 'clusterDNS: 10.96.0.10', "KubeletConfiguration.clusterDNS: must be a list of strings, not the string '10.96.0.10'"],
    ['clusterDNS entry not an IP', 'clusterDNS: [10.96.0.10, dns.local]', "KubeletConfiguration.clusterDNS[1]: 'dns.local' is not an IP address"],
    ['clusterDomain not DNS', 'clusterDomain: Cluster_Local', "KubeletConfiguration.clusterDomain: 'Cluster_Local' must be lowercase alphanumerics, '-' and '.', starting and ending alphanumeric"],
    ['relative staticPodPath', 'staticPodPath: manifests', "KubeletConfiguration.staticPodPath: 'manifests' is not an absolute path"],
    ['relative podLogsDir', 'podLogsDir: logs', "KubeletConfiguration.podLogsDir: 'logs' is not an absolute path"],
    ['podCIDR with host bits', 'podCIDR: 10.244.3.1/24', "KubeletConfiguration.podCIDR: '10.244.3.1/24' has host bits set (did you mean 10.244.3.0/24?)"],
    ['a tcp runtime endpoint', 'containerRuntimeEndpoint: tcp://127.0.0.1:2375', "KubeletConfiguration.containerRuntimeEndpoint: 'tcp://127.0.0.1:2375': only unix sockets are supported (unix:///path)"],
    ['nodeLeaseDurationSeconds too long', 'nodeLeaseDurationSeconds: 7200', 'KubeletConfiguration.nodeLeaseDurationSeconds: 7200 is out of range 1..3600'],
    ['an unknown eviction signal', 'evictionHard: {memory.free: 1Gi}', 'KubeletConfiguration.evictionHard[memory.free]: \'memory.free\' is not an eviction signal'],
    ['an eviction quantity that is not one', 'evictionHard: {memory.available: lots}', "KubeletConfiguration.evictionHard[memory.available]: 'lots' is not a quantity (like 100Mi) or a percentage (like 10%)"],
    ['an eviction percentage over 100', 'evictionHard: {nodefs.available: 150%}', "KubeletConfiguration.evictionHard[nodefs.available]: '150%' must be between 0% and 100%"],
    ['an eviction threshold as a number', 'evictionHard: {memory.available: 100}', 'KubeletConfiguration.evictionHard[memory.available]: must be a string, not number 100'],
    ['logging.verbosity negative', 'logging: {verbosity: -1}', 'KubeletConfiguration.logging.verbosity: -1 is negative'],
    ['logging.format unknown', 'logging: {format: xml}', "KubeletConfiguration.logging.format: 'xml' is not text or json"],
    ['logging not a mapping', 'logging: debug', "KubeletConfiguration.logging: must be a mapping, not the string 'debug'"],
  ];
  for (const [name, body, want] of invalid) {
    it(`rejects ${name}, naming the field and why`, () => {
      const p = file(`${KUBELET}${body}\n`);
      const err = failure(() => parseAgentFlags(['--kubeconfig=/k', `--config=${p}`], host));
      expect(err.code).to.equal('CONFIG_INVALID');
      expect(err.message.startsWith(`${p}: ${want}`), err.message).to.equal(true);
      expect(err.message).to.not.include('\n');
    });
  }

  it('a flag does not rescue an invalid file value (the file is validated as a whole)', () => {
    const err = failure(() => agent(`${KUBELET}maxPods: -3\n`, '--max-pods=5'));
    expect(errorCode(err)).to.equal('CONFIG_INVALID');
    expect(err.message).to.include('KubeletConfiguration.maxPods');
  });

  it('every value the file accepts is one the flag parser accepts (edges)', () => {
    const edges = `${KUBELET}maxPods: 1000000\nport: 65535\nhealthzPort: 65535\nnodeLeaseDurationSeconds: 3600\nsyncFrequency: 1s\nnodeStatusUpdateFrequency: 1s\nnodeStatusReportFrequency: 1s\nruntimeRequestTimeout: 1s\nclusterDNS: ["2001:db8::53"]\n`;
    const flags = kubeletFileFlags(parseConfigDocuments(edges, 'f').kubelet!, 'f').flags;
    expect(Object.fromEntries(flags)).to.deep.equal({
      'max-pods': '1000000', port: '65535', 'healthz-port': '65535', 'node-lease-duration-seconds': '3600', 'sync-frequency': '1000ms',
      'node-status-update-frequency': '1000ms', 'node-status-report-frequency': '1000ms', 'runtime-request-timeout': '1000ms', 'cluster-dns': '2001:db8::53',
    });
    const c = agent(edges);
    expect(c).to.include({ maxPods: 1_000_000, port: 65535, healthzPort: 65535, syncFrequencyMs: 1000 });
  });

  it('the agent ignores the proxy document, even an invalid one', () => {
    const c = agent(`${KUBELET}maxPods: 5\n---\n${PROXY}mode: ipvs\n`);
    expect(c.maxPods).to.equal(5);
    expect(c.configFile?.warnings).to.deep.equal([]);
  });

  it('join passes --config through to the agent', () => {
    const p = file(`${KUBELET}maxPods: 21\nclusterDNS: [10.96.0.10]\n`);
    const j = parseJoinFlags(['--config', p, '--node-name=node-a'], host);
    expect(j.agentArgs).to.include.members(['--config', p]);
    expect(j.agent.maxPods).to.equal(21);
    expect(j.agent.clusterDNS).to.deep.equal(['10.96.0.10']);
    expect(j.agent.configFile?.path).to.equal(p);
  });
});

describe('config file: KubeProxyConfiguration', () => {
  const full = `${PROXY}
clientConnection:
  kubeconfig: /etc/nodelet/proxy.kubeconfig
hostnameOverride: Node-B
mode: nftables
clusterCIDR: 10.244.0.0/16
bindAddress: 192.0.2.9
nodePortAddresses: [192.0.2.0/24, localhost]
iptables:
  minSyncPeriod: 2s
  syncPeriod: 1m
  localhostNodePorts: false
healthzBindAddress: 127.0.0.1:20256
metricsBindAddress: 0.0.0.0:20249
logging: {verbosity: 5}
`;

  it('file only: every supported field reaches the proxy config (kubeconfig from clientConnection)', () => {
    const c = parseProxyFlags([`--config=${file(full)}`], host);
    expect(c).to.include({ kubeconfig: '/etc/nodelet/proxy.kubeconfig', nodeName: 'node-b', mode: 'nftables', clusterCIDR: '10.244.0.0/16', bindAddress: '192.0.2.9', minSyncPeriodMs: 2000, syncPeriodMs: 60_000, localhostNodePorts: false, logLevel: 'debug' });
    expect(c.nodePortAddresses).to.deep.equal(['192.0.2.0/24', '127.0.0.0/8']);
    expect(c.healthzBindAddress).to.deep.equal({ host: '127.0.0.1', port: 20256 });
    expect(c.metricsBindAddress).to.deep.equal({ host: '0.0.0.0', port: 20249 });
    expect(c.configFile?.warnings).to.deep.equal([]);
  });

  it('flags only: no configFile', () => {
    expect(parseProxyFlags(['--kubeconfig=/k'], host).configFile).to.equal(undefined);
  });

  const overrides: Array<[string, string, string[], Record<string, unknown>]> = [
    ['mode', 'mode: nftables', ['--proxy-mode=iptables'], { mode: 'iptables' }],
    ['clusterCIDR', 'clusterCIDR: 10.244.0.0/16', ['--cluster-cidr', '10.32.0.0/12'], { clusterCIDR: '10.32.0.0/12' }],
    ['bindAddress', 'bindAddress: fd00:2::9', ['--bind-address=192.0.2.9'], { bindAddress: '192.0.2.9' }],
    ['a dual-stack clusterCIDR', 'clusterCIDR: 10.244.0.0/16,2001:db8::/64', ['--cluster-cidr', '10.32.0.0/12,fd00:32::/56'], { clusterCIDR: '10.32.0.0/12,fd00:32::/56' }],
    ['iptables.minSyncPeriod', 'iptables: {minSyncPeriod: 5s}', ['--iptables-min-sync-period=0'], { minSyncPeriodMs: 0 }],
    ['iptables.localhostNodePorts', 'iptables: {localhostNodePorts: false}', ['--iptables-localhost-nodeports'], { localhostNodePorts: true }],
    ['clientConnection.kubeconfig', 'clientConnection: {kubeconfig: /from/file}', [], { kubeconfig: '/k' }],
  ];
  for (const [name, body, flags, want] of overrides) {
    it(`a flag overrides the file: ${name}`, () => {
      const c = proxy(`${PROXY}${body}\n`, ...flags);
      for (const [k, v] of Object.entries(want)) expect(c[k as keyof typeof c], k).to.deep.equal(v);
    });
  }

  it('conntrack: set fields reach the config, 0 is a value (leave the kernel\'s), absent or "" the default; flags win', () => {
    const c = proxy(`${PROXY}conntrack: {maxPerCore: 0, min: 1000, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: "", tcpBeLiberal: true, udpTimeout: 30s, udpStreamTimeout: 2m}\n`);
    expect(c.conntrack).to.deep.equal({ maxPerCore: 0, min: 1000, tcpEstablishedTimeoutS: 0, tcpCloseWaitTimeoutS: 3600, tcpBeLiberal: true, udpTimeoutS: 30, udpStreamTimeoutS: 120 });
    expect(c.configFile?.warnings).to.deep.equal([]);
    expect(proxy(`${PROXY}conntrack: {maxPerCore: 0}\n`, '--conntrack-max-per-core=16').conntrack.maxPerCore).to.equal(16);
    expect(() => proxy(`${PROXY}conntrack: {min: -5}\n`)).to.throw(/KubeProxyConfiguration\.conntrack\.min: -5 is negative/);
    expect(() => proxy(`${PROXY}conntrack: {udpTimeout: soon}\n`)).to.throw(/KubeProxyConfiguration\.conntrack\.udpTimeout/);
    expect(() => proxy(`${PROXY}conntrack: {maxPerCore: many}\n`)).to.throw(/KubeProxyConfiguration\.conntrack\.maxPerCore: must be a whole number/);
  });

  it('detectLocalMode and detectLocal reach the flags; a bad mode names the field', () => {
    expect(proxy(`${PROXY}detectLocalMode: BridgeInterface\ndetectLocal: {bridgeInterface: cbr0, interfaceNamePrefix: ""}\n`)).to.include({ detectLocalMode: 'BridgeInterface', podBridgeInterface: 'cbr0' });
    expect(proxy(`${PROXY}detectLocalMode: ""\n`)).to.include({ detectLocalMode: 'ClusterCIDR' });
    expect(() => proxy(`${PROXY}detectLocalMode: Magic\n`)).to.throw(/KubeProxyConfiguration\.detectLocalMode: 'Magic' is not one of/);
  });

  it('oomScoreAdj: a value in -1000..1000; null (kubeadm) is the default', () => {
    expect(proxy(`${PROXY}oomScoreAdj: -500\n`).oomScoreAdj).to.equal(-500);
    expect(proxy(`${PROXY}oomScoreAdj: null\n`).oomScoreAdj).to.equal(-999);
    expect(() => proxy(`${PROXY}oomScoreAdj: -2000\n`)).to.throw(/KubeProxyConfiguration\.oomScoreAdj: -2000 is outside -1000\.\.1000/);
  });

  it('masqueradeAll from iptables or nftables; a conflicting pair warns and iptables wins; the flag wins over both', () => {
    expect(proxy(`${PROXY}iptables: {masqueradeAll: true}\n`).masqueradeAll).to.equal(true);
    expect(proxy(`${PROXY}nftables: {masqueradeAll: true}\n`).masqueradeAll).to.equal(true);
    const c = proxy(`${PROXY}iptables: {masqueradeAll: false}\nnftables: {masqueradeAll: true}\n`);
    expect(c.masqueradeAll).to.equal(false);
    expect(c.configFile?.warnings.map((w) => w.field)).to.deep.equal(['KubeProxyConfiguration.nftables.masqueradeAll']);
    expect(proxy(`${PROXY}iptables: {masqueradeAll: true}\n`, '--masquerade-all=false').masqueradeAll).to.equal(false);
  });

  it('masqueradeBit from iptables or nftables (0..31); a conflicting pair warns and iptables wins; the flag wins over both', () => {
    expect(proxy(PROXY).masqueradeBit).to.equal(14);
    expect(proxy(`${PROXY}iptables: {masqueradeBit: 12}\n`).masqueradeBit).to.equal(12);
    expect(proxy(`${PROXY}nftables: {masqueradeBit: 0}\n`).masqueradeBit).to.equal(0);
    const c = proxy(`${PROXY}iptables: {masqueradeBit: 12}\nnftables: {masqueradeBit: 13}\n`);
    expect(c.masqueradeBit).to.equal(12);
    expect(c.configFile?.warnings.map((w) => w.field)).to.deep.equal(['KubeProxyConfiguration.nftables.masqueradeBit']);
    expect(proxy(`${PROXY}iptables: {masqueradeBit: 12}\n`, '--iptables-masquerade-bit=15').masqueradeBit).to.equal(15);
    expect(() => proxy(`${PROXY}iptables: {masqueradeBit: 32}\n`)).to.throw('KubeProxyConfiguration.iptables.masqueradeBit: 32 is outside 0..31');
  });

  it("nodePortAddresses [primary]: the node's primary IP", () => {
    expect(proxy(`${PROXY}nodePortAddresses: [primary]\n`)).to.deep.include({ nodePortPrimary: true, nodePortAddresses: [] });
  });

  it("nodePortAddresses 'all' means every local address (nodelet's default)", () => {
    expect(proxy(`${PROXY}nodePortAddresses: [all, 192.0.2.0/24]\n`).nodePortAddresses).to.deep.equal([]);
  });

  it('nftables sync periods apply when iptables gives none; a conflicting pair warns and iptables wins', () => {
    expect(proxy(`${PROXY}nftables: {syncPeriod: 45s, minSyncPeriod: 3s}\n`)).to.include({ syncPeriodMs: 45_000, minSyncPeriodMs: 3000 });
    const c = proxy(`${PROXY}iptables: {syncPeriod: 40s}\nnftables: {syncPeriod: 45s}\n`);
    expect(c.syncPeriodMs).to.equal(40_000);
    expect(c.configFile?.warnings).to.deep.equal([
      { field: 'KubeProxyConfiguration.nftables.syncPeriod', message: 'nodelet uses one syncPeriod for every mode and takes KubeProxyConfiguration.iptables.syncPeriod; ignored' },
    ]);
  });

  it('warns about unknown and unsupported fields with their path; kubeadm-style empty defaults stay quiet', () => {
    const c = proxy(`${PROXY}bindAddressHardFail: true\nconntrack: {maxPerCore: null, min: null, udpTimeout: ""}\nipvs: {excludeCIDRs: null, scheduler: ""}\niptables: {masqueradeBit: 14, minSyncPerod: 1s}\nnftables: {masqueradeBit: 14}\nfeatureGates: {}\n`);
    expect(c.configFile?.warnings.map((w) => `${w.field}: ${w.message}`)).to.deep.equal([
      'KubeProxyConfiguration.iptables.minSyncPerod: unknown field; ignored',
      'KubeProxyConfiguration.bindAddressHardFail: not supported by nodelet; ignored',
    ]);
  });

  const invalid: Array<[string, string, string]> = [
    ['an unsupported mode', 'mode: ipvs', "KubeProxyConfiguration.mode: 'ipvs' is not supported by nodelet (iptables, nftables, userspace)"],
    ['two IPv4 clusterCIDRs', 'clusterCIDR: 10.244.0.0/16,10.245.0.0/16', "KubeProxyConfiguration.clusterCIDR: '10.244.0.0/16,10.245.0.0/16': a dual-stack value needs one IPv4 and one IPv6 CIDR"],
    ['a bindAddress that is no address', 'bindAddress: node-1', "KubeProxyConfiguration.bindAddress: 'node-1' is not an IP address"],
    ['a bad half of a dual-stack clusterCIDR', 'clusterCIDR: 10.244.0.0/16,2001:db8::1/64', "KubeProxyConfiguration.clusterCIDR: '2001:db8::1/64' has host bits set (did you mean 2001:db8::/64?)"],
    ['a bad nodePortAddresses entry', 'nodePortAddresses: [192.0.2.0/24, 192.0.2.300/32]', "KubeProxyConfiguration.nodePortAddresses[1]: '192.0.2.300/32' is not a CIDR"],
    ["'primary' with a CIDR", 'nodePortAddresses: [primary, 192.0.2.0/24]', "KubeProxyConfiguration.nodePortAddresses[0]: 'primary' cannot be combined with other entries"],
    ['minSyncPeriod over syncPeriod', 'iptables: {minSyncPeriod: 2m, syncPeriod: 1m}', 'KubeProxyConfiguration.iptables.minSyncPeriod: 120000 ms is longer than KubeProxyConfiguration.iptables.syncPeriod (60000 ms)'],
    ['a bad sync period', 'iptables: {syncPeriod: soon}', "KubeProxyConfiguration.iptables.syncPeriod: 'soon' is not a duration"],
    ['localhostNodePorts as a string', 'iptables: {localhostNodePorts: "yes"}', "KubeProxyConfiguration.iptables.localhostNodePorts: must be true or false, not the string 'yes'"],
    ['a bad healthzBindAddress', 'healthzBindAddress: localhost:10256', "KubeProxyConfiguration.healthzBindAddress: 'localhost:10256' is not an ip:port address"],
    ['a metrics port out of range', 'metricsBindAddress: 127.0.0.1:99999', 'KubeProxyConfiguration.metricsBindAddress: port 99999 is out of range 0..65535'],
    ['a bad hostnameOverride', 'hostnameOverride: node_b', "KubeProxyConfiguration.hostnameOverride: 'node_b' is not a valid node name"],
    ['clientConnection not a mapping', 'clientConnection: /k', "KubeProxyConfiguration.clientConnection: must be a mapping, not the string '/k'"],
  ];
  for (const [name, body, want] of invalid) {
    it(`rejects ${name}, naming the field and why`, () => {
      const p = file(`${PROXY}${body}\n`);
      const err = failure(() => parseProxyFlags(['--kubeconfig=/k', `--config=${p}`], host));
      expect(err.code).to.equal('CONFIG_INVALID');
      expect(err.message.startsWith(`${p}: ${want}`), err.message).to.equal(true);
      expect(err.message).to.not.include('\n');
    });
  }

  it('both documents in one file: each component takes its own', () => {
    const p = file(`${KUBELET}maxPods: 33\nclusterDNS: [10.96.0.10]\n---\n${PROXY}mode: userspace\nclusterCIDR: 10.244.0.0/16\n`);
    expect(parseAgentFlags(['--kubeconfig=/k', '--config', p], host)).to.include({ maxPods: 33 });
    expect(parseProxyFlags(['--kubeconfig=/k', '--config', p], host)).to.include({ mode: 'userspace', clusterCIDR: '10.244.0.0/16' });
  });

  it('the systemd/config.yaml template is valid for both components and warns about nothing', () => {
    const template = path.join(import.meta.dirname, '../../systemd/config.yaml');
    expect(parseAgentFlags(['--kubeconfig=/k', `--config=${template}`], host).configFile?.warnings).to.deep.equal([]);
    expect(parseProxyFlags(['--kubeconfig=/k', `--config=${template}`], host).configFile?.warnings).to.deep.equal([]);
    // Its commented examples, uncommented, are valid too.
    const text = fs.readFileSync(template, 'utf8').replace(/^# ((?: {2})?[a-zA-Z.]+:)/gm, '$1').replace(/ +# .*$/gm, '');
    const p = file(text);
    expect(parseAgentFlags(['--kubeconfig=/k', `--config=${p}`], host)).to.include({ maxPods: 110, clusterDomain: 'cluster.local' });
    expect(parseProxyFlags(['--kubeconfig=/k', `--config=${p}`], host)).to.include({ clusterCIDR: '10.244.0.0/16', syncPeriodMs: 30_000 });
  });

  it('a kubelet-only file leaves the proxy at its defaults', () => {
    const c = proxy(`${KUBELET}maxPods: 5\n`);
    expect(c).to.include({ mode: 'iptables', syncPeriodMs: 30_000 });
    expect(c.configFile?.warnings).to.deep.equal([]);
  });
});

describe('config file: value checks', () => {
  const thresholds: Array<[string, string | undefined]> = [
    ['100Mi', undefined],
    ['1.5Gi', undefined],
    ['10%', undefined],
    ['0%', undefined],
    ['100%', undefined],
    ['2e9', undefined],
    ['0', "'0' must be positive"],
    ['-1Gi', "'-1Gi' must be positive"],
    ['101%', "'101%' must be between 0% and 100%"],
    ['%', "'%' is not a percentage"],
    ['10MB', "'10MB' is not a quantity (like 100Mi) or a percentage (like 10%)"],
  ];
  for (const [v, want] of thresholds) it(`eviction threshold ${v}`, () => expect(evictionThresholdError(v)).to.equal(want));

  const binds: Array<[string, string | undefined]> = [
    ['0.0.0.0:10256', undefined],
    ['127.0.0.1', undefined],
    ['[::1]:10249', undefined],
    ['host:1', "'host:1' is not an ip:port address"],
  ];
  for (const [v, want] of binds) it(`bind address ${v}`, () => expect(bindAddressError(v)).to.equal(want));
});
