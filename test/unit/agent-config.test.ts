// Fixture addresses are from the documentation ranges (RFC 5737 192.0.2.0/24,
// 198.51.100.0/24; RFC 3849 2001:db8::/32).
import { expect } from 'chai';
import type { AgentConfig, HostProbe } from '../../agent/config.ts';
import { parseAgentFlags, parseDuration } from '../../agent/config.ts';
import { NodeletError } from '../../lib/errors.ts';

const host: HostProbe = {
  hostname: () => 'Worker-1',
  networkInterfaces: () => ({
    lo: [{ address: '127.0.0.1', netmask: '255.0.0.0', family: 'IPv4', mac: '00:00:00:00:00:00', internal: true, cidr: '127.0.0.1/8' }],
    eth0: [
      { address: 'fe80::1', netmask: 'ffff:ffff:ffff:ffff::', family: 'IPv6', mac: '02:00:00:00:00:01', internal: false, cidr: 'fe80::1/64', scopeid: 2 },
      { address: '192.0.2.10', netmask: '255.255.255.0', family: 'IPv4', mac: '02:00:00:00:00:01', internal: false, cidr: '192.0.2.10/24' },
    ],
    eth1: [{ address: '198.51.100.7', netmask: '255.255.255.0', family: 'IPv4', mac: '02:00:00:00:00:02', internal: false, cidr: '198.51.100.7/24' }],
  }),
};

const KC = '--kubeconfig=/etc/nodelet/kubeconfig';
const parse = (...argv: string[]) => parseAgentFlags(argv, host);

function failure(argv: string[], probe: HostProbe = host): NodeletError {
  try {
    parseAgentFlags(argv, probe);
  } catch (err) {
    expect(err).to.be.instanceOf(NodeletError);
    return err as NodeletError;
  }
  throw new Error(`expected ${argv.join(' ')} to be rejected`);
}

describe('agent config: defaults', () => {
  const cfg = parse(KC);
  const want: Partial<AgentConfig> = {
    kubeconfig: '/etc/nodelet/kubeconfig',
    nodeName: 'worker-1', // host name, lowercased
    hostname: 'worker-1',
    nodeIP: '192.0.2.10', // first non-loopback IPv4
    containerRuntimeEndpoint: 'unix:///var/run/docker.sock',
    runtimeSocketPath: '/var/run/docker.sock',
    nodeLabels: {},
    maxPods: 110,
    nodeLeaseDurationSeconds: 40,
    nodeStatusUpdateFrequencyMs: 10_000,
    nodeStatusReportFrequencyMs: 300_000,
    port: 10250,
    healthzPort: 10248,
    rootDir: '/var/lib/nodelet',
    logLevel: 'info',
  };
  for (const [k, v] of Object.entries(want)) {
    it(`${k} = ${JSON.stringify(v)}`, () => expect(cfg[k as keyof AgentConfig]).to.deep.equal(v));
  }
  it('no pod CIDR', () => expect(cfg.podCIDR).to.equal(undefined));
  it('is frozen, labels too', () => {
    expect(Object.isFrozen(cfg)).to.equal(true);
    expect(Object.isFrozen(cfg.nodeLabels)).to.equal(true);
  });
});

describe('agent config: overrides', () => {
  const cases: Array<{ argv: string[]; want: Partial<AgentConfig> }> = [
    { argv: ['--hostname-override=Node-A'], want: { nodeName: 'node-a', hostname: 'node-a' } },
    { argv: ['--node-name', 'node-b'], want: { nodeName: 'node-b' } },
    { argv: ['--node-ip=198.51.100.7'], want: { nodeIP: '198.51.100.7' } },
    { argv: ['--node-ip=2001:db8::10'], want: { nodeIP: '2001:db8::10' } },
    { argv: ['--pod-cidr=10.244.1.0/24'], want: { podCIDR: '10.244.1.0/24' } },
    { argv: ['--pod-cidr=fd00:10:244:1::/64'], want: { podCIDR: 'fd00:10:244:1::/64' } },
    {
      argv: ['--container-runtime-endpoint=/run/docker.sock'],
      want: { containerRuntimeEndpoint: 'unix:///run/docker.sock', runtimeSocketPath: '/run/docker.sock' },
    },
    { argv: ['--container-runtime-endpoint', 'unix:///run/sandbox/docker.sock'], want: { runtimeSocketPath: '/run/sandbox/docker.sock' } },
    {
      argv: ['--node-labels=example.com/pool=blue,tier=edge,node.kubernetes.io/exclude-from-external-load-balancers='],
      want: { nodeLabels: { 'example.com/pool': 'blue', tier: 'edge', 'node.kubernetes.io/exclude-from-external-load-balancers': '' } },
    },
    { argv: ['--max-pods=30'], want: { maxPods: 30 } },
    { argv: ['--node-lease-duration-seconds=20'], want: { nodeLeaseDurationSeconds: 20 } },
    // Upstream: an explicit update frequency also sets the report frequency unless that is given.
    { argv: ['--node-status-update-frequency=1m30s'], want: { nodeStatusUpdateFrequencyMs: 90_000, nodeStatusReportFrequencyMs: 90_000 } },
    {
      argv: ['--node-status-update-frequency=4s', '--node-status-report-frequency=1m'],
      want: { nodeStatusUpdateFrequencyMs: 4_000, nodeStatusReportFrequencyMs: 60_000 },
    },
    { argv: ['--node-status-report-frequency=2h'], want: { nodeStatusUpdateFrequencyMs: 10_000, nodeStatusReportFrequencyMs: 7_200_000 } },
    { argv: ['--port=11250', '--healthz-port=0'], want: { port: 11250, healthzPort: 0 } },
    { argv: ['--root-dir=/srv/nodelet/'], want: { rootDir: '/srv/nodelet' } },
    { argv: ['--v=4'], want: { logLevel: 'debug' } },
    { argv: ['--v=2'], want: { logLevel: 'info' } },
    { argv: ['--log-level=warn'], want: { logLevel: 'warn' } },
    { argv: ['--v=5', '--log-level=error'], want: { logLevel: 'error' } },
    { argv: ['--max-pods=10', '--max-pods=20'], want: { maxPods: 20 } }, // last one wins
  ];
  for (const c of cases) {
    it(c.argv.join(' '), () => {
      const cfg = parse(KC, ...c.argv);
      for (const [k, v] of Object.entries(c.want)) expect(cfg[k as keyof AgentConfig], k).to.deep.equal(v);
    });
  }
});

describe('agent config: invalid', () => {
  const cases: Array<{ name: string; argv: string[]; message: RegExp; probe?: HostProbe }> = [
    { name: 'kubeconfig missing', argv: [], message: /^--kubeconfig: is required/ },
    { name: 'unknown flag', argv: [KC, '--bogus=1'], message: /^unknown flag --bogus$/ },
    { name: 'positional argument', argv: [KC, 'extra'], message: /unexpected argument 'extra'/ },
    { name: 'flag without value', argv: [KC, '--max-pods'], message: /^--max-pods: needs a value/ },
    { name: 'node name not DNS-1123', argv: [KC, '--hostname-override=bad_name'], message: /^--hostname-override: 'bad_name' is not a valid node name/ },
    { name: 'node name alias reported as given', argv: [KC, '--node-name=-x'], message: /^--node-name: '-x' is not a valid node name/ },
    {
      name: 'host name unusable',
      argv: [KC],
      probe: { ...host, hostname: () => 'my_host' },
      message: /^--hostname-override: 'my_host' is not a valid node name.*set --hostname-override/,
    },
    { name: 'node ip not an IP', argv: [KC, '--node-ip=10.0.0'], message: /^--node-ip: '10.0.0' is not an IP address/ },
    { name: 'node ip loopback', argv: [KC, '--node-ip=127.0.0.1'], message: /^--node-ip: '127.0.0.1' is a loopback address/ },
    {
      name: 'no address to default to',
      argv: [KC],
      probe: { ...host, networkInterfaces: () => ({}) },
      message: /^--node-ip: not set and the host has no non-loopback IPv4 address/,
    },
    { name: 'pod cidr not a CIDR', argv: [KC, '--pod-cidr=10.244.1.0'], message: /^--pod-cidr: '10.244.1.0' is not a CIDR/ },
    { name: 'pod cidr prefix too long', argv: [KC, '--pod-cidr=10.244.1.0/33'], message: /prefix length 33, more than 32/ },
    { name: 'pod cidr host bits', argv: [KC, '--pod-cidr=10.244.1.5/24'], message: /host bits set \(did you mean 10\.244\.1\.0\/24\?\)/ },
    { name: 'runtime endpoint tcp', argv: [KC, '--container-runtime-endpoint=tcp://192.0.2.1:2375'], message: /^--container-runtime-endpoint: .*only unix sockets/ },
    { name: 'runtime endpoint relative', argv: [KC, '--container-runtime-endpoint=docker.sock'], message: /must be absolute/ },
    { name: 'label without =', argv: [KC, '--node-labels=pool'], message: /^--node-labels: 'pool' is not key=value/ },
    { name: 'label key invalid', argv: [KC, '--node-labels=-bad=x'], message: /^--node-labels: label key '-bad'/ },
    { name: 'label value invalid', argv: [KC, '--node-labels=pool=a b'], message: /^--node-labels: label 'pool' value 'a b'/ },
    {
      name: 'label in a reserved namespace',
      argv: [KC, '--node-labels=node-role.kubernetes.io/worker='],
      message: /label key 'node-role\.kubernetes\.io\/worker': is in a kubernetes\.io\/k8s\.io namespace/,
    },
    { name: 'max pods not a number', argv: [KC, '--max-pods=lots'], message: /^--max-pods: 'lots' is not a whole number/ },
    { name: 'max pods zero', argv: [KC, '--max-pods=0'], message: /^--max-pods: 0 is out of range/ },
    { name: 'port out of range', argv: [KC, '--port=70000'], message: /^--port: 70000 is out of range 1\.\.65535/ },
    { name: 'duration without unit', argv: [KC, '--node-status-update-frequency=10'], message: /^--node-status-update-frequency: '10' is not a duration/ },
    { name: 'duration too short', argv: [KC, '--node-status-report-frequency=500ms'], message: /^--node-status-report-frequency: '500ms' is too short/ },
    { name: 'root dir relative', argv: [KC, '--root-dir=var/lib'], message: /^--root-dir: 'var\/lib' is not an absolute path/ },
    { name: 'verbosity not a number', argv: [KC, '--v=high'], message: /^--v: 'high' is not a verbosity number/ },
    { name: 'log level unknown', argv: [KC, '--log-level=trace'], message: /^--log-level: 'trace' is not one of/ },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const err = failure(c.argv, c.probe);
      expect(err.code).to.equal('CONFIG_INVALID');
      expect(err.message).to.match(c.message);
    });
  }
});

describe('agent config: parseDuration (Go syntax)', () => {
  const ok: Array<[string, number]> = [
    ['10s', 10_000],
    ['5m', 300_000],
    ['1m30s', 90_000],
    ['1h', 3_600_000],
    ['1.5h', 5_400_000],
    ['250ms', 250],
    ['1s500ms', 1_500],
    ['0', 0],
  ];
  for (const [s, ms] of ok) it(`${s} = ${ms} ms`, () => expect(parseDuration(s)).to.equal(ms));
  for (const s of ['', '10', 's', '1x', '5m junk', '-5s']) {
    it(`rejects '${s}'`, () => expect(() => parseDuration(s)).to.throw(/is not a duration/));
  }
});
