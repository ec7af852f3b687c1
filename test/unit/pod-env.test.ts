// Addresses: cluster IPs from the project's service CIDR 10.96.0.0/12 and
// fd00:96::/64 (ULA), pod IPs from 10.244.0.0/16 and fd00:244::/64, node IPs
// from 192.0.2.0/24 (TEST-NET-1) and 2001:db8::/32 (documentation).
import type { V1Container, V1EnvVar, V1Pod, V1Service, V1ServicePort } from '@kubernetes/client-node';
import { expect } from 'chai';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { NodeletError } from '../../lib/errors.ts';
import {
  allocatableFor,
  containerResourceValue,
  decodeSecretData,
  isRelaxedEnvVarName,
  makeEnvironment,
  podFieldValue,
  serviceEnvVars,
  servicesForPod,
  skippedKeysMessage,
  type EnvContext,
  type EnvVar,
} from '../../agent/pod/env.ts';
import { parseEnvFile, readEnvFileKey } from '../../agent/pod/envfile.ts';
import { sortPodIPs } from '../../agent/pod/podips.ts';
import { FakeClock } from '../fakes/clock.ts';
import { FakePodObjects } from '../fakes/podobjects.ts';

function svc(namespace: string, name: string, clusterIP: string, ports: V1ServicePort[] = [{ port: 80 }]): V1Service {
  return { metadata: { namespace, name }, spec: { clusterIP, ports } };
}

const KUBERNETES = svc('default', 'kubernetes', '10.96.0.1', [{ name: 'https', port: 443, protocol: 'TCP' }]);
const KUBERNETES_ENV: EnvVar[] = [
  { key: 'KUBERNETES_SERVICE_HOST', value: '10.96.0.1' },
  { key: 'KUBERNETES_SERVICE_PORT', value: '443' },
  { key: 'KUBERNETES_SERVICE_PORT_HTTPS', value: '443' },
  { key: 'KUBERNETES_PORT', value: 'tcp://10.96.0.1:443' },
  { key: 'KUBERNETES_PORT_443_TCP', value: 'tcp://10.96.0.1:443' },
  { key: 'KUBERNETES_PORT_443_TCP_PROTO', value: 'tcp' },
  { key: 'KUBERNETES_PORT_443_TCP_PORT', value: '443' },
  { key: 'KUBERNETES_PORT_443_TCP_ADDR', value: '10.96.0.1' },
];

function keys(env: EnvVar[]): string[] {
  return env.map((e) => e.key);
}

function asRecord(env: EnvVar[]): Record<string, string> {
  return Object.fromEntries(env.map((e) => [e.key, e.value]));
}

async function rejection(p: Promise<unknown>): Promise<NodeletError> {
  try {
    await p;
  } catch (err) {
    expect(err).to.be.instanceOf(NodeletError);
    return err as NodeletError;
  }
  throw new Error('expected a rejection');
}

function thrown(fn: () => unknown): NodeletError {
  try {
    fn();
  } catch (err) {
    expect(err).to.be.instanceOf(NodeletError);
    return err as NodeletError;
  }
  throw new Error('expected a throw');
}

describe('pod/env: service link variables (envvars.FromServices)', () => {
  const cases: { name: string; services: V1Service[]; want: EnvVar[] }[] = [
    { name: 'no services', services: [], want: [] },
    { name: 'the kubernetes service', services: [KUBERNETES], want: KUBERNETES_ENV },
    {
      name: 'one unnamed port, protocol defaults to TCP, dashes become underscores',
      services: [svc('ns1', 'my-web', '10.96.3.4', [{ port: 8080 }])],
      want: [
        { key: 'MY_WEB_SERVICE_HOST', value: '10.96.3.4' },
        { key: 'MY_WEB_SERVICE_PORT', value: '8080' },
        { key: 'MY_WEB_PORT', value: 'tcp://10.96.3.4:8080' },
        { key: 'MY_WEB_PORT_8080_TCP', value: 'tcp://10.96.3.4:8080' },
        { key: 'MY_WEB_PORT_8080_TCP_PROTO', value: 'tcp' },
        { key: 'MY_WEB_PORT_8080_TCP_PORT', value: '8080' },
        { key: 'MY_WEB_PORT_8080_TCP_ADDR', value: '10.96.3.4' },
      ],
    },
    {
      name: 'named ports, UDP, only the first gets <SVC>_PORT',
      services: [
        svc('ns1', 'dns', '10.96.0.10', [
          { name: 'dns', port: 53, protocol: 'UDP' },
          { name: 'dns-tcp', port: 53, protocol: 'TCP' },
        ]),
      ],
      want: [
        { key: 'DNS_SERVICE_HOST', value: '10.96.0.10' },
        { key: 'DNS_SERVICE_PORT', value: '53' },
        { key: 'DNS_SERVICE_PORT_DNS', value: '53' },
        { key: 'DNS_SERVICE_PORT_DNS_TCP', value: '53' },
        { key: 'DNS_PORT', value: 'udp://10.96.0.10:53' },
        { key: 'DNS_PORT_53_UDP', value: 'udp://10.96.0.10:53' },
        { key: 'DNS_PORT_53_UDP_PROTO', value: 'udp' },
        { key: 'DNS_PORT_53_UDP_PORT', value: '53' },
        { key: 'DNS_PORT_53_UDP_ADDR', value: '10.96.0.10' },
        { key: 'DNS_PORT_53_TCP', value: 'tcp://10.96.0.10:53' },
        { key: 'DNS_PORT_53_TCP_PROTO', value: 'tcp' },
        { key: 'DNS_PORT_53_TCP_PORT', value: '53' },
        { key: 'DNS_PORT_53_TCP_ADDR', value: '10.96.0.10' },
      ],
    },
    {
      name: 'IPv6 cluster IP is bracketed in URLs only',
      services: [svc('ns1', 'v6', 'fd00:96::5', [{ port: 80, protocol: 'SCTP' }])],
      want: [
        { key: 'V6_SERVICE_HOST', value: 'fd00:96::5' },
        { key: 'V6_SERVICE_PORT', value: '80' },
        { key: 'V6_PORT', value: 'sctp://[fd00:96::5]:80' },
        { key: 'V6_PORT_80_SCTP', value: 'sctp://[fd00:96::5]:80' },
        { key: 'V6_PORT_80_SCTP_PROTO', value: 'sctp' },
        { key: 'V6_PORT_80_SCTP_PORT', value: '80' },
        { key: 'V6_PORT_80_SCTP_ADDR', value: 'fd00:96::5' },
      ],
    },
    {
      name: 'headless, empty cluster IP and port-less services are left out',
      services: [svc('ns1', 'headless', 'None'), svc('ns1', 'external', ''), svc('ns1', 'noports', '10.96.0.9', [])],
      want: [],
    },
  ];
  for (const c of cases) {
    it(c.name, () => expect(serviceEnvVars(c.services)).to.deep.equal(c.want));
  }
});

describe('pod/env: which services a pod sees', () => {
  const all = [
    KUBERNETES,
    svc('default', 'other-default', '10.96.0.20'),
    svc('ns1', 'b-svc', '10.96.1.2'),
    svc('ns1', 'a-svc', '10.96.1.1'),
    svc('ns1', 'headless', 'None'),
    svc('ns2', 'c-svc', '10.96.2.1'),
  ];
  const names = (l: V1Service[]) => l.map((s) => `${s.metadata?.namespace}/${s.metadata?.name}`);
  const cases: { name: string; ns: string; links: boolean; services: V1Service[]; want: string[] }[] = [
    { name: 'own namespace plus kubernetes, sorted', ns: 'ns1', links: true, services: all, want: ['ns1/a-svc', 'ns1/b-svc', 'default/kubernetes'] },
    { name: 'service links off: only kubernetes', ns: 'ns1', links: false, services: all, want: ['default/kubernetes'] },
    { name: 'pod in default sees all of default', ns: 'default', links: true, services: all, want: ['default/kubernetes', 'default/other-default'] },
    { name: 'pod in default, links off', ns: 'default', links: false, services: all, want: ['default/kubernetes'] },
    {
      name: 'a local service named kubernetes wins (either order)',
      ns: 'ns1',
      links: true,
      services: [svc('ns1', 'kubernetes', '10.96.1.9'), KUBERNETES],
      want: ['ns1/kubernetes'],
    },
    {
      name: 'a local service named kubernetes wins (master listed first)',
      ns: 'ns1',
      links: true,
      services: [KUBERNETES, svc('ns1', 'kubernetes', '10.96.1.9')],
      want: ['ns1/kubernetes'],
    },
    { name: 'no kubernetes service yet', ns: 'ns2', links: true, services: all.slice(1), want: ['ns2/c-svc'] },
  ];
  for (const c of cases) {
    it(c.name, () => expect(names(servicesForPod(c.ns, c.links, c.services))).to.deep.equal(c.want));
  }
});

describe('pod/env: fieldRef', () => {
  const pod: V1Pod = {
    metadata: {
      name: 'web-0',
      namespace: 'ns1',
      uid: '11111111-2222-3333-4444-555555555555',
      labels: { app: 'web', 'example.com/tier': 'front' },
      annotations: { note: 'say "hi"\n', 'example.com/Owner': 'ops' },
    },
    spec: { nodeName: 'node-a', serviceAccountName: 'builder', containers: [{ name: 'c' }] },
  };
  const ips = { podIPs: ['fd00:244::7', '10.244.1.7'], hostIPs: ['192.0.2.10', '2001:db8::10'], nodeName: 'node-a' };
  const cases: [fieldPath: string, want: string][] = [
    ['metadata.name', 'web-0'],
    ['metadata.namespace', 'ns1'],
    ['metadata.uid', '11111111-2222-3333-4444-555555555555'],
    ["metadata.labels['app']", 'web'],
    ["metadata.labels['example.com/tier']", 'front'],
    ["metadata.labels['missing']", ''],
    ["metadata.annotations['note']", 'say "hi"\n'],
    // annotation keys are validated lowercased but looked up as written
    ["metadata.annotations['example.com/Owner']", 'ops'],
    ['metadata.labels', 'app="web"\nexample.com/tier="front"'],
    ['metadata.annotations', 'example.com/Owner="ops"\nnote="say \\"hi\\"\\n"'],
    ['spec.nodeName', 'node-a'],
    ['spec.host', 'node-a'],
    ['spec.serviceAccountName', 'builder'],
    ['status.hostIP', '192.0.2.10'],
    ['status.hostIPs', '192.0.2.10,2001:db8::10'],
    // the node's primary family (IPv4 here) comes first
    ['status.podIP', '10.244.1.7'],
    ['status.podIPs', '10.244.1.7,fd00:244::7'],
  ];
  for (const [fieldPath, want] of cases) {
    it(`${fieldPath} -> ${JSON.stringify(want)}`, () => expect(podFieldValue(pod, { fieldPath }, ips)).to.equal(want));
  }

  const errors: [sel: { fieldPath: string; apiVersion?: string }, msg: RegExp][] = [
    [{ fieldPath: 'metadata.name', apiVersion: 'v2' }, /^unsupported pod version: v2$/],
    [{ fieldPath: 'spec.containers' }, /^field label not supported: spec.containers$/],
    [{ fieldPath: "metadata.name['x']" }, /^field label does not support subscript: metadata.name\['x'\]$/],
    [{ fieldPath: "metadata.labels['bad key']" }, /^invalid key subscript in metadata.labels\['bad key'\]: name part must consist of/],
    // accepted by upstream's label conversion but not extractable there either
    [{ fieldPath: 'spec.restartPolicy' }, /^unsupported fieldPath: spec.restartPolicy$/],
    [{ fieldPath: 'status.phase' }, /^unsupported fieldPath: status.phase$/],
  ];
  for (const [sel, msg] of errors) {
    it(`${sel.fieldPath}${sel.apiVersion ? ` (${sel.apiVersion})` : ''} fails`, () => {
      const err = thrown(() => podFieldValue(pod, sel, ips));
      expect(err.code).to.equal('CreateContainerConfigError');
      expect(err.message).to.match(msg);
    });
  }

  it('status.hostIP without any host IP fails', () => {
    const err = thrown(() => podFieldValue(pod, { fieldPath: 'status.hostIP' }, { podIPs: [], hostIPs: [] }));
    expect(err.message).to.equal('host IP unknown; known addresses: []');
  });

  it('status.podIP is empty before the sandbox has an IP', () => {
    expect(podFieldValue(pod, { fieldPath: 'status.podIP' }, { podIPs: [], hostIPs: ['192.0.2.10'] })).to.equal('');
  });

  it('spec.nodeName falls back to the node for a pod without one (static pods)', () => {
    const p: V1Pod = { metadata: { name: 's' }, spec: { containers: [] } };
    expect(podFieldValue(p, { fieldPath: 'spec.nodeName' }, { ...ips, nodeName: 'node-b' })).to.equal('node-b');
  });
});

describe('pod/env: pod IP order, env names', () => {
  const sortCases: [podIPs: string[], hostIPs: string[], want: string[]][] = [
    [['10.244.0.5'], ['192.0.2.1'], ['10.244.0.5']],
    [['fd00:244::5', '10.244.0.5'], ['192.0.2.1'], ['10.244.0.5', 'fd00:244::5']],
    [['10.244.0.5', 'fd00:244::5'], ['2001:db8::1', '192.0.2.1'], ['fd00:244::5', '10.244.0.5']],
    [['10.244.0.5', '10.244.0.6'], [], ['10.244.0.5']],
    [[], ['192.0.2.1'], []],
  ];
  for (const [podIPs, hostIPs, want] of sortCases) {
    it(`sortPodIPs(${podIPs.join(',')}; host ${hostIPs[0] ?? 'none'}) -> ${want.join(',')}`, () => expect(sortPodIPs(podIPs, hostIPs)).to.deep.equal(want));
  }

  const nameCases: [string, boolean][] = [
    ['FOO', true],
    ['1badkey', true], // relaxed validation (GA): digits first are fine
    ['my.dotted-name', true],
    ['with space', true],
    ['a=b', false],
    ['', false],
    ['tab\there', false],
    ['ünicode', false],
  ];
  for (const [n, ok] of nameCases) {
    it(`env name ${JSON.stringify(n)} is ${ok ? 'accepted' : 'skipped'}`, () => expect(isRelaxedEnvVarName(n)).to.equal(ok));
  }

  it('secret data is base64-decoded', () => {
    expect(decodeSecretData({ data: { a: Buffer.from('pässword\n').toString('base64') } })).to.deep.equal({ a: 'pässword\n' });
    expect(decodeSecretData({})).to.deep.equal({});
  });
});

describe('pod/env: resourceFieldRef', () => {
  function ctr(name: string, requests?: Record<string, string>, limits?: Record<string, string>): V1Container {
    return { name, resources: { ...(requests ? { requests } : {}), ...(limits ? { limits } : {}) } };
  }
  const main = ctr('main', { cpu: '250m', memory: '64Mi', 'ephemeral-storage': '1Gi', 'hugepages-2Mi': '4Mi' }, { cpu: '1500m', memory: '128Mi', 'hugepages-2Mi': '4Mi' });
  const bare = ctr('bare');
  const init = ctr('setup', { cpu: '100m' }, { cpu: '200m', memory: '32Mi' });
  const pod: V1Pod = { metadata: { name: 'p' }, spec: { containers: [main, bare], initContainers: [init] } };
  const node = { cpu: '4', memory: '8Gi', 'ephemeral-storage': '100Gi' };

  const cases: { name: string; resource: string; divisor?: string; container?: V1Container; containerName?: string; want: string; p?: V1Pod }[] = [
    { name: 'cpu limit rounds up to whole cores', resource: 'limits.cpu', want: '2' },
    { name: 'cpu limit in millicores', resource: 'limits.cpu', divisor: '1m', want: '1500' },
    { name: 'cpu request rounds up', resource: 'requests.cpu', want: '1' },
    { name: 'cpu request in millicores', resource: 'requests.cpu', divisor: '1m', want: '250' },
    { name: 'cpu with a zero divisor counts as 1', resource: 'requests.cpu', divisor: '0', want: '1' },
    { name: 'memory limit in bytes', resource: 'limits.memory', want: String(128 * 1024 * 1024) },
    { name: 'memory limit in Mi', resource: 'limits.memory', divisor: '1Mi', want: '128' },
    { name: 'memory request in M rounds up', resource: 'requests.memory', divisor: '1M', want: '68' },
    { name: 'ephemeral-storage request in Gi', resource: 'requests.ephemeral-storage', divisor: '1Gi', want: '1' },
    { name: 'missing ephemeral-storage limit defaults to allocatable', resource: 'limits.ephemeral-storage', divisor: '1Gi', want: '100' },
    { name: 'hugepages request', resource: 'requests.hugepages-2Mi', divisor: '1Mi', want: '4' },
    { name: 'hugepages limit is never defaulted', resource: 'limits.hugepages-2Mi', container: bare, want: '0' },
    { name: 'missing cpu limit defaults to node allocatable', resource: 'limits.cpu', container: bare, want: '4' },
    { name: 'missing memory limit defaults to node allocatable', resource: 'limits.memory', divisor: '1Gi', container: bare, want: '8' },
    { name: 'missing request is zero', resource: 'requests.memory', container: bare, want: '0' },
    {
      name: 'a zero limit is defaulted like a missing one',
      resource: 'limits.cpu',
      container: ctr('z', undefined, { cpu: '0' }),
      want: '4',
    },
    { name: 'another container by name', resource: 'limits.memory', divisor: '1Mi', container: bare, containerName: 'main', want: '128' },
    { name: 'an init container by name', resource: 'requests.cpu', divisor: '1m', containerName: 'setup', want: '100' },
    { name: 'a named container without a limit is defaulted too', resource: 'limits.cpu', containerName: 'bare', want: '4' },
    {
      name: 'pod-level limits replace allocatable as the default',
      resource: 'limits.cpu',
      divisor: '1m',
      container: bare,
      p: { ...pod, spec: { ...pod.spec!, resources: { limits: { cpu: '2500m', memory: '0' } } } },
      want: '2500',
    },
    {
      name: 'a zero pod-level limit leaves allocatable',
      resource: 'limits.memory',
      divisor: '1Gi',
      container: bare,
      p: { ...pod, spec: { ...pod.spec!, resources: { limits: { cpu: '2500m', memory: '0' } } } },
      want: '8',
    },
  ];
  for (const c of cases) {
    it(`${c.name}: ${c.resource}${c.divisor ? ` / ${c.divisor}` : ''} = ${c.want}`, () => {
      const p = c.p ?? pod;
      const sel = { resource: c.resource, ...(c.divisor ? { divisor: c.divisor } : {}), ...(c.containerName ? { containerName: c.containerName } : {}) };
      expect(containerResourceValue(sel, p, c.container ?? main, allocatableFor(p, node))).to.equal(c.want);
    });
  }

  it('without node allocatable a missing limit is zero', () => {
    expect(containerResourceValue({ resource: 'limits.cpu' }, pod, bare, allocatableFor(pod, undefined))).to.equal('0');
  });

  const errors: [resource: string, containerName: string | undefined, msg: string][] = [
    ['limits.nvidia.com/gpu', undefined, 'unsupported container resource : limits.nvidia.com/gpu'],
    ['cpu', undefined, 'unsupported container resource : cpu'],
    ['claims.cpu', undefined, 'unsupported container resource : claims.cpu'],
    ['limits.cpu', 'ghost', 'container ghost not found'],
  ];
  for (const [resource, containerName, msg] of errors) {
    it(`${resource}${containerName ? ` of ${containerName}` : ''} fails: ${msg}`, () => {
      const err = thrown(() => containerResourceValue({ resource, ...(containerName ? { containerName } : {}) }, pod, main, node));
      expect(err.code).to.equal('CreateContainerConfigError');
      expect(err.message).to.equal(msg);
    });
  }
});

/** Counts object fetches, to check each is fetched once per build. */
class CountingObjects extends FakePodObjects {
  readonly calls: string[] = [];
  override async getConfigMap(namespace: string, name: string) {
    this.calls.push(`cm ${namespace}/${name}`);
    return super.getConfigMap(namespace, name);
  }
  override async getSecret(namespace: string, name: string) {
    this.calls.push(`secret ${namespace}/${name}`);
    return super.getSecret(namespace, name);
  }
  override async listServices(namespace: string, notOlderThan?: string) {
    this.calls.push(`services ${namespace}${notOlderThan !== undefined ? ` @${notOlderThan}` : ''}`);
    return super.listServices(namespace);
  }
}

describe('pod/env: makeEnvironment', () => {
  let objects: CountingObjects;
  let ctx: EnvContext;

  beforeEach(() => {
    objects = new CountingObjects(new FakeClock());
    objects.addService(KUBERNETES);
    objects.addService(svc('default', 'other-default', '10.96.0.20'));
    objects.addService(svc('ns1', 'web', '10.96.1.1', [{ port: 80 }]));
    objects.addService(svc('ns2', 'elsewhere', '10.96.2.1'));
    objects.addConfigMap('ns1', 'cfg', { MODE: 'fast', LEVEL: '3', '1badkey': 'kept' });
    objects.addConfigMap('ns1', 'more', { MODE: 'slow', EXTRA: 'x' });
    objects.addConfigMap('ns1', 'weird', { 'a=b': 'no', GOOD: 'yes' });
    objects.addSecret('ns1', 'creds', { USER: 'admin', PASSWORD: 's3cr=t\n' });
    ctx = {
      objects,
      podIPs: ['10.244.1.7'],
      hostIPs: ['192.0.2.10'],
      nodeName: 'node-a',
      nodeAllocatable: { cpu: '4', memory: '8Gi' },
    };
  });

  function pod(container: V1Container, spec: Partial<NonNullable<V1Pod['spec']>> = {}): V1Pod {
    return {
      metadata: { name: 'web-0', namespace: 'ns1', uid: 'uid-1', resourceVersion: '42', labels: { app: 'web' } },
      spec: { nodeName: 'node-a', serviceAccountName: 'default', containers: [container], ...spec },
    };
  }
  const WEB_ENV: EnvVar[] = [
    { key: 'WEB_SERVICE_HOST', value: '10.96.1.1' },
    { key: 'WEB_SERVICE_PORT', value: '80' },
    { key: 'WEB_PORT', value: 'tcp://10.96.1.1:80' },
    { key: 'WEB_PORT_80_TCP', value: 'tcp://10.96.1.1:80' },
    { key: 'WEB_PORT_80_TCP_PROTO', value: 'tcp' },
    { key: 'WEB_PORT_80_TCP_PORT', value: '80' },
    { key: 'WEB_PORT_80_TCP_ADDR', value: '10.96.1.1' },
  ];

  it('a bare container gets the service variables of its namespace and kubernetes', async () => {
    const c: V1Container = { name: 'c' };
    const { env, skipped } = await makeEnvironment(pod(c), c, ctx);
    expect(env).to.deep.equal([...KUBERNETES_ENV, ...WEB_ENV]);
    expect(skipped).to.deep.equal([]);
  });

  it('enableServiceLinks false keeps only the kubernetes service', async () => {
    const c: V1Container = { name: 'c' };
    const { env } = await makeEnvironment(pod(c, { enableServiceLinks: false }), c, ctx);
    expect(env).to.deep.equal(KUBERNETES_ENV);
    expect(objects.calls).to.deep.equal(['services default @42']);
  });

  it('a pod in default lists services once', async () => {
    const c: V1Container = { name: 'c' };
    const p = pod(c);
    p.metadata!.namespace = 'default';
    const { env } = await makeEnvironment(p, c, ctx);
    expect(keys(env)).to.include('OTHER_DEFAULT_SERVICE_HOST');
    expect(keys(env)).to.not.include('WEB_SERVICE_HOST');
    expect(objects.calls).to.deep.equal(['services default @42']);
  });

  it('order: service variables, then envFrom, then env; later sources override', async () => {
    const c: V1Container = {
      name: 'c',
      envFrom: [{ configMapRef: { name: 'cfg' } }, { prefix: 'S_', secretRef: { name: 'creds' } }, { configMapRef: { name: 'more' } }],
      env: [
        { name: 'FIRST', value: 'one' },
        { name: 'MODE', value: 'env-wins' },
        { name: 'WEB_SERVICE_PORT', value: '8080' },
      ],
    };
    const { env } = await makeEnvironment(pod(c), c, ctx);
    const serviceKeys = keys([...KUBERNETES_ENV, ...WEB_ENV]);
    expect(keys(env)).to.deep.equal([...serviceKeys, 'MODE', 'LEVEL', '1badkey', 'S_USER', 'S_PASSWORD', 'EXTRA', 'FIRST']);
    const r = asRecord(env);
    expect(r.MODE).to.equal('env-wins');
    expect(r.WEB_SERVICE_PORT).to.equal('8080');
    expect(r.S_PASSWORD).to.equal('s3cr=t\n');
    expect(r['1badkey']).to.equal('kept');
  });

  it('a later envFrom overrides an earlier one', async () => {
    const c: V1Container = { name: 'c', envFrom: [{ configMapRef: { name: 'cfg' } }, { configMapRef: { name: 'more' } }] };
    const r = asRecord((await makeEnvironment(pod(c), c, ctx)).env);
    expect(r.MODE).to.equal('slow');
  });

  it('envFrom keys that cannot be names are skipped and reported', async () => {
    const c: V1Container = { name: 'c', envFrom: [{ prefix: 'P_', configMapRef: { name: 'weird' } }] };
    const { env, skipped } = await makeEnvironment(pod(c), c, ctx);
    expect(asRecord(env).P_GOOD).to.equal('yes');
    expect(keys(env)).to.not.include('P_a=b');
    expect(skipped).to.deep.equal([{ kind: 'ConfigMap', namespace: 'ns1', name: 'weird', keys: ['P_a=b'] }]);
    expect(skippedKeysMessage(skipped[0]!)).to.equal(
      'Keys [P_a=b] from the EnvFrom configMap ns1/weird were skipped since they are considered invalid environment variable names.',
    );
  });

  it('$(VAR) expands against envFrom, earlier env and services, never later env', async () => {
    const env: V1EnvVar[] = [
      { name: 'A', value: 'a' },
      { name: 'B', value: '$(A)-$(MODE)-$(WEB_SERVICE_HOST)' },
      { name: 'C', value: '$(D)' },
      { name: 'D', value: 'd' },
      { name: 'E', value: '$$(A) $(NOPE)' },
      { name: 'A', value: '$(A)$(A)' },
      { name: 'F', value: '$(A)' },
      { name: 'G', value: '$(WEB_SERVICE_HOST)' },
    ];
    const c: V1Container = { name: 'c', envFrom: [{ configMapRef: { name: 'cfg' } }], env };
    const r = asRecord((await makeEnvironment(pod(c, { enableServiceLinks: false }), c, ctx)).env);
    expect(r.B).to.equal('a-fast-$(WEB_SERVICE_HOST)'); // service links off: no WEB_ vars
    expect(r.C).to.equal('$(D)');
    expect(r.E).to.equal('$(A) $(NOPE)');
    expect(r.A).to.equal('aa');
    expect(r.F).to.equal('aa');
    const r2 = asRecord((await makeEnvironment(pod(c), c, ctx)).env);
    expect(r2.B).to.equal('a-fast-10.96.1.1');
    expect(r2.G).to.equal('10.96.1.1');
  });

  it('an env var with neither value nor source is empty', async () => {
    const c: V1Container = { name: 'c', env: [{ name: 'EMPTY' }, { name: 'ALSO', value: '' }] };
    const r = asRecord((await makeEnvironment(pod(c), c, ctx)).env);
    expect(r).to.include({ EMPTY: '', ALSO: '' });
  });

  it('resolves every kind of source', async () => {
    const c: V1Container = {
      name: 'c',
      resources: { requests: { cpu: '250m' }, limits: { memory: '64Mi' } },
      env: [
        { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
        { name: 'POD_NS', valueFrom: { fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.namespace' } } },
        { name: 'POD_UID', valueFrom: { fieldRef: { fieldPath: 'metadata.uid' } } },
        { name: 'APP', valueFrom: { fieldRef: { fieldPath: "metadata.labels['app']" } } },
        { name: 'NODE', valueFrom: { fieldRef: { fieldPath: 'spec.nodeName' } } },
        { name: 'SA', valueFrom: { fieldRef: { fieldPath: 'spec.serviceAccountName' } } },
        { name: 'HOST_IP', valueFrom: { fieldRef: { fieldPath: 'status.hostIP' } } },
        { name: 'POD_IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } },
        { name: 'POD_IPS', valueFrom: { fieldRef: { fieldPath: 'status.podIPs' } } },
        { name: 'CPU_REQ', valueFrom: { resourceFieldRef: { resource: 'requests.cpu', divisor: '1m' } } },
        { name: 'CPU_LIM', valueFrom: { resourceFieldRef: { resource: 'limits.cpu' } } },
        { name: 'MEM_LIM', valueFrom: { resourceFieldRef: { resource: 'limits.memory', divisor: '1Mi' } } },
        { name: 'LEVEL', valueFrom: { configMapKeyRef: { name: 'cfg', key: 'LEVEL' } } },
        { name: 'USER', valueFrom: { secretKeyRef: { name: 'creds', key: 'USER' } } },
        { name: 'GREETING', value: 'hi $(POD_NAME) on $(NODE)' },
      ],
    };
    const { env } = await makeEnvironment(pod(c), c, ctx);
    expect(asRecord(env)).to.include({
      POD_NAME: 'web-0',
      POD_NS: 'ns1',
      POD_UID: 'uid-1',
      APP: 'web',
      NODE: 'node-a',
      SA: 'default',
      HOST_IP: '192.0.2.10',
      POD_IP: '10.244.1.7',
      POD_IPS: '10.244.1.7',
      CPU_REQ: '250',
      CPU_LIM: '4',
      MEM_LIM: '64',
      LEVEL: '3',
      USER: 'admin',
      GREETING: 'hi web-0 on node-a',
    });
  });

  it('optional sources that are missing leave the variable out', async () => {
    const c: V1Container = {
      name: 'c',
      envFrom: [{ configMapRef: { name: 'nope', optional: true } }, { secretRef: { name: 'nope', optional: true } }],
      env: [
        { name: 'A', valueFrom: { configMapKeyRef: { name: 'nope', key: 'k', optional: true } } },
        { name: 'B', valueFrom: { configMapKeyRef: { name: 'cfg', key: 'nokey', optional: true } } },
        { name: 'C', valueFrom: { secretKeyRef: { name: 'nope', key: 'k', optional: true } } },
        { name: 'D', valueFrom: { secretKeyRef: { name: 'creds', key: 'nokey', optional: true } } },
        { name: 'E', value: 'present' },
      ],
    };
    const { env } = await makeEnvironment(pod(c), c, ctx);
    const k = keys(env);
    for (const name of ['A', 'B', 'C', 'D']) expect(k).to.not.include(name);
    expect(asRecord(env).E).to.equal('present');
  });

  const failures: { name: string; container: V1Container; msg: string }[] = [
    { name: 'envFrom configmap missing', container: { name: 'c', envFrom: [{ configMapRef: { name: 'nope' } }] }, msg: 'configmap "nope" not found' },
    { name: 'envFrom secret missing', container: { name: 'c', envFrom: [{ secretRef: { name: 'nope', optional: false } }] }, msg: 'secret "nope" not found' },
    {
      name: 'configMapKeyRef to a missing configmap',
      container: { name: 'c', env: [{ name: 'X', valueFrom: { configMapKeyRef: { name: 'nope', key: 'k' } } }] },
      msg: 'configmap "nope" not found',
    },
    {
      name: 'configMapKeyRef to a missing key',
      container: { name: 'c', env: [{ name: 'X', valueFrom: { configMapKeyRef: { name: 'cfg', key: 'nokey' } } }] },
      msg: "couldn't find key nokey in ConfigMap ns1/cfg",
    },
    {
      name: 'secretKeyRef to a missing secret',
      container: { name: 'c', env: [{ name: 'X', valueFrom: { secretKeyRef: { name: 'nope', key: 'k' } } }] },
      msg: 'secret "nope" not found',
    },
    {
      name: 'secretKeyRef to a missing key',
      container: { name: 'c', env: [{ name: 'X', valueFrom: { secretKeyRef: { name: 'creds', key: 'nokey' } } }] },
      msg: "couldn't find key nokey in Secret ns1/creds",
    },
    {
      name: 'an optional envFrom does not make a later required key ref optional',
      container: {
        name: 'c',
        envFrom: [{ configMapRef: { name: 'nope', optional: true } }],
        env: [{ name: 'X', valueFrom: { configMapKeyRef: { name: 'nope', key: 'k' } } }],
      },
      msg: 'configmap "nope" not found',
    },
    {
      name: 'a bad fieldRef',
      container: { name: 'c', env: [{ name: 'X', valueFrom: { fieldRef: { fieldPath: 'spec.nope' } } }] },
      msg: 'field label not supported: spec.nope',
    },
    {
      name: 'fileKeyRef without mounted volumes',
      container: { name: 'c', env: [{ name: 'X', valueFrom: { fileKeyRef: { volumeName: 'cfgvol', path: 'env', key: 'K' } } }] },
      msg: 'cannot find the volume "cfgvol" referenced by FileKeyRef',
    },
  ];
  for (const f of failures) {
    it(`fails with CreateContainerConfigError: ${f.name}`, async () => {
      const err = await rejection(makeEnvironment(pod(f.container), f.container, ctx));
      expect(err.code).to.equal('CreateContainerConfigError');
      expect(err.message).to.equal(f.msg);
    });
  }

  it('each configmap and secret is fetched once per build', async () => {
    const c: V1Container = {
      name: 'c',
      envFrom: [{ configMapRef: { name: 'cfg' } }, { secretRef: { name: 'creds' } }],
      env: [
        { name: 'A', valueFrom: { configMapKeyRef: { name: 'cfg', key: 'MODE' } } },
        { name: 'B', valueFrom: { configMapKeyRef: { name: 'cfg', key: 'LEVEL' } } },
        { name: 'C', valueFrom: { secretKeyRef: { name: 'creds', key: 'USER' } } },
      ],
    };
    await makeEnvironment(pod(c), c, ctx);
    // The Service lists are asked to be at least as new as the pod.
    expect(objects.calls).to.deep.equal(['services default @42', 'services ns1 @42', 'cm ns1/cfg', 'secret ns1/creds']);
  });

  it('an unreachable API server is a CreateContainerConfigError with the cause kept', async () => {
    const c: V1Container = { name: 'c' };
    const cause = new Error('connect ECONNREFUSED');
    objects.failWith = cause;
    const err = await rejection(makeEnvironment(pod(c), c, ctx));
    expect(err.code).to.equal('CreateContainerConfigError');
    expect(err.message).to.equal('failed to list services when setting up env vars');
    expect(err.cause).to.equal(cause);
  });

  it('a failed configmap fetch names the object and keeps the cause', async () => {
    const cause = new Error('HTTP 500');
    class Failing extends FakePodObjects {
      override async getConfigMap(): Promise<undefined> {
        throw cause;
      }
    }
    const failing = new Failing(new FakeClock());
    const c: V1Container = { name: 'c', envFrom: [{ configMapRef: { name: 'cfg', optional: true } }] };
    const err = await rejection(makeEnvironment(pod(c), c, { ...ctx, objects: failing }));
    expect(err.code).to.equal('CreateContainerConfigError');
    expect(err.message).to.equal("couldn't get configMap ns1/cfg: HTTP 500");
    expect(err.cause).to.equal(cause);
  });
});

// Every case was checked against upstream's ParseEnv (v1.37.2) on the same text.
const ENV_FILE_CASES: { name: string; text: string; key: string; want?: string; error?: string }[] = [
  { name: 'simple', text: "A='1'\nB='2'\n", key: 'B', want: '2' },
  { name: 'missing key', text: "A='1'\n", key: 'B' },
  { name: 'empty file', text: '', key: 'A' },
  { name: 'first match wins', text: "A='1'\nA='2'\n", key: 'A', want: '1' },
  { name: 'no escapes or expansion inside quotes', text: "A='$HOME \\n \"x\"'\n", key: 'A', want: '$HOME \\n "x"' },
  { name: 'multi-line value', text: "A='line1\nline2\n'\nB='b'", key: 'A', want: 'line1\nline2\n' },
  { name: 'comments and blank lines', text: "# c\n\n   \nA='1' # trailing\n", key: 'A', want: '1' },
  { name: 'leading whitespace is ignored', text: "  \tA='1'\n", key: 'A', want: '1' },
  { name: 'space after = makes it empty', text: "A= '1'\n", key: 'A', want: '' },
  { name: 'space after = on another key is skipped', text: "A= '1'\nB='2'\n", key: 'B', want: '2' },
  { name: 'empty quoted value', text: "A=''\n", key: 'A', want: '' },
  { name: 'CRLF line ends', text: "A='1'\r\nB='2'\r\n", key: 'B', want: '2' },
  { name: 'malformed line after the key is never read', text: "A='1'\nnonsense\n", key: 'A', want: '1' },
  { name: 'missing =', text: "nonsense\nA='1'\n", key: 'A', error: "invalid environment variable format at line 1: missing '='" },
  { name: 'empty name', text: "='1'\n", key: 'A', error: 'invalid environment variable format at line 1: empty variable name' },
  { name: 'space before =', text: "A ='1'\n", key: 'A', error: "invalid environment variable format at line 1: whitespace before '=' is not allowed" },
  { name: 'unquoted', text: 'A=1\n', key: 'A', error: 'invalid environment variable format at line 1: value must be enclosed in single quotes' },
  { name: 'double quotes', text: 'A="1"\n', key: 'A', error: 'invalid environment variable format at line 1: value must be enclosed in single quotes' },
  { name: 'content after the quote', text: "B='x\ny' z\n", key: 'A', error: 'invalid environment variable format at line 2: unexpected content after closing quote' },
  { name: 'unclosed quote', text: "X='1'\nA='open\nmore\n", key: 'A', error: 'invalid environment variable format starting at line 2: unclosed single quote' },
];

describe('pod/envfile: env file parsing (fileKeyRef)', () => {
  for (const c of ENV_FILE_CASES) {
    it(c.name, () => {
      if (c.error !== undefined) expect(() => parseEnvFile(c.text, c.key)).to.throw(c.error);
      else expect(parseEnvFile(c.text, c.key)).to.equal(c.want);
    });
  }
});

describe('pod/env: fileKeyRef', () => {
  let dir: string;
  let ctx: EnvContext;
  const pod: V1Pod = { metadata: { name: 'p', namespace: 'ns1' }, spec: { containers: [] } };

  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'nodelet-envfile-'));
    mkdirSync(path.join(dir, 'vol', 'sub'), { recursive: true });
    writeFileSync(path.join(dir, 'vol', 'sub', 'app.env'), "DB_HOST='db.internal'\nEMPTY=''\n");
    writeFileSync(path.join(dir, 'vol', 'bad.env'), 'DB_HOST=unquoted\n');
    writeFileSync(path.join(dir, 'node-secret.env'), "DB_HOST='stolen'\n");
    symlinkSync(path.join(dir, 'node-secret.env'), path.join(dir, 'vol', 'escape.env'));
    const objects = new FakePodObjects(new FakeClock());
    ctx = { objects, podIPs: [], hostIPs: ['192.0.2.10'], nodeName: 'n', volumePath: (name) => (name === 'cfg' ? path.join(dir, 'vol') : undefined) };
  });

  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  function ref(p: string, key: string, optional?: boolean, volumeName = 'cfg'): V1Container {
    return { name: 'c', env: [{ name: 'X', valueFrom: { fileKeyRef: { volumeName, path: p, key, ...(optional === undefined ? {} : { optional }) } } }] };
  }

  it('reads the key from the file in the volume', async () => {
    const c = ref('sub/app.env', 'DB_HOST');
    const { env } = await makeEnvironment(pod, c, ctx);
    expect(asRecord(env).X).to.equal('db.internal');
  });

  it('an optional missing (or empty) key leaves the variable out', async () => {
    for (const key of ['NOPE', 'EMPTY']) {
      const { env } = await makeEnvironment(pod, ref('sub/app.env', key, true), ctx);
      expect(keys(env)).to.not.include('X');
    }
  });

  const failures: [string, V1Container, string][] = [
    ['a required missing key', ref('sub/app.env', 'NOPE'), 'environment variable key "NOPE" not found in file "VOL/sub/app.env"'],
    ['an empty value counts as missing', ref('sub/app.env', 'EMPTY'), 'environment variable key "EMPTY" not found in file "VOL/sub/app.env"'],
    ['a volume that is not mounted', ref('app.env', 'A', false, 'other'), 'cannot find the volume "other" referenced by FileKeyRef'],
    ['a malformed file', ref('bad.env', 'DB_HOST'), "couldn't parse env file"],
    ['a missing file', ref('none.env', 'DB_HOST', true), "couldn't parse env file"],
    ['a symlink out of the volume', ref('escape.env', 'DB_HOST'), "couldn't parse env file"],
  ];
  for (const [name, c, msg] of failures) {
    it(`fails: ${name}`, async () => {
      const err = await rejection(makeEnvironment(pod, c, ctx));
      expect(err.code).to.equal('CreateContainerConfigError');
      expect(err.message).to.equal(msg.replace('VOL', path.join(dir, 'vol')));
    });
  }

  it('readEnvFileKey refuses a path that leaves the volume', async () => {
    let err: unknown;
    try {
      await readEnvFileKey(path.join(dir, 'vol'), '../node-secret.env', 'DB_HOST');
    } catch (e) {
      err = e;
    }
    expect((err as Error).message).to.match(/outside the volume/);
  });
});
