import type { V1DownwardAPIVolumeFile, V1Pod } from '@kubernetes/client-node';
import { expect } from 'chai';
import { cleanPayload, timestampPrefix, validatePayloadPath } from '../../agent/volumes/atomicwriter.ts';
import { configMapPayload } from '../../agent/volumes/configmap.ts';
import { aggregate, allocatableResources, downwardAPIPayload } from '../../agent/volumes/downwardapi.ts';
import { emptyDirMemorySize, podMemoryLimitBytes } from '../../agent/volumes/emptydir.ts';
import { parseMountInfo } from '../../agent/volumes/mounter.ts';
import { fsUserFrom, serviceAccountName } from '../../agent/volumes/projected.ts';
import { secretPayload } from '../../agent/volumes/secret.ts';
import type { NodeAllocatable } from '../../agent/volumes/types.ts';
import { translatePropagation, validateSubPath } from '../../agent/volumes/subpath.ts';

const Mi = 1024 * 1024;

function pod(over: Partial<V1Pod['spec']> = {}, meta: V1Pod['metadata'] = {}): V1Pod {
  return {
    metadata: { name: 'web', namespace: 'ns1', uid: 'uid-1', ...meta },
    spec: { containers: [{ name: 'app', image: 'img' }], ...over },
  };
}

describe('volumes: atomic writer paths', () => {
  const cases: [string, string | undefined][] = [
    ['a', undefined],
    ['a/b/c', undefined],
    ['..a', 'invalid path: must not start with \'..\': ..a'],
    ['..', "invalid path: must not contain '..': .."],
    ['a/../b', "invalid path: must not contain '..': a/../b"],
    ['/etc/passwd', 'invalid path: must be relative path: /etc/passwd'],
    ['', 'invalid path: must not be empty: ""'],
    ['x'.repeat(256), 'invalid path: filenames must be less than or equal to 255 characters'],
    ['a/..b', undefined],
  ];
  for (const [p, want] of cases) it(`${JSON.stringify(p.slice(0, 20))} -> ${want ?? 'ok'}`, () => expect(validatePayloadPath(p)).to.equal(want));

  it('cleans paths and rejects a bad one', () => {
    const f = { data: Buffer.from('x'), mode: 0o644 };
    expect([...cleanPayload(new Map([['a//b/', f]])).keys()]).to.deep.equal(['a/b']);
    expect(() => cleanPayload(new Map([['../x', f]]))).to.throw("must not contain '..'");
  });

  it('names data dirs like upstream (Go layout ..2006_01_02_15_04_05.)', () => {
    expect(timestampPrefix(Date.UTC(2025, 0, 2, 3, 4, 5))).to.equal('..2025_01_02_03_04_05.');
  });
});

describe('volumes: configMap and secret payloads', () => {
  const cm = { data: { a: 'A', b: 'B' }, binaryData: { bin: Buffer.from([0, 1, 2]).toString('base64') } };
  it('every key with the default mode, binaryData decoded', () => {
    const p = configMapPayload(undefined, cm, 0o644, false);
    expect([...p.keys()].sort()).to.deep.equal(['a', 'b', 'bin']);
    expect(p.get('bin')!.data).to.deep.equal(Buffer.from([0, 1, 2]));
    expect(p.get('a')!.mode).to.equal(0o644);
  });
  it('items pick keys, paths and modes', () => {
    const p = configMapPayload([{ key: 'a', path: 'dir/x.conf', mode: 0o400 }, { key: 'bin', path: 'y' }], cm, 0o600, false);
    expect([...p.keys()]).to.deep.equal(['dir/x.conf', 'y']);
    expect(p.get('dir/x.conf')).to.deep.equal({ data: Buffer.from('A'), mode: 0o400 });
    expect(p.get('y')!.mode).to.equal(0o600);
  });
  it('a missing key fails unless optional', () => {
    expect(() => configMapPayload([{ key: 'zz', path: 'z' }], cm, 0o644, false)).to.throw('configmap references non-existent config key: zz');
    expect(configMapPayload([{ key: 'zz', path: 'z' }], cm, 0o644, true).size).to.equal(0);
  });
  it('secret data is base64-decoded; a missing key has upstream text', () => {
    const s = { data: { pw: Buffer.from('hunter2').toString('base64') } };
    expect(secretPayload(undefined, s, 0o644, false).get('pw')!.data.toString()).to.equal('hunter2');
    expect(() => secretPayload([{ key: 'nope', path: 'n' }], s, 0o644, false)).to.throw('references non-existent secret key: nope');
  });
});

describe('volumes: downward API payload (the values are pod/fieldpath.ts\'s)', () => {
  const p = pod({}, { labels: { app: 'web', tier: 'fe' }, annotations: { 'a.io/x': 'y' } });
  const value = (items: V1DownwardAPIVolumeFile[], alloc?: NodeAllocatable, of: V1Pod = p) => {
    const { payload, errors } = downwardAPIPayload(of, items, 0o644, alloc);
    expect(errors).to.deep.equal([]);
    return payload.get(items[0]!.path)!.data.toString();
  };
  it('metadata fields, quoted maps', () => {
    expect(value([{ path: 'labels', fieldRef: { fieldPath: 'metadata.labels' } }])).to.equal('app="web"\ntier="fe"');
    expect(value([{ path: 'tier', fieldRef: { fieldPath: "metadata.labels['tier']" } }])).to.equal('fe');
  });
  it('item modes, else the default mode', () => {
    const { payload } = downwardAPIPayload(p, [{ path: 'a', mode: 0o400, fieldRef: { fieldPath: 'metadata.name' } }, { path: 'b', fieldRef: { fieldPath: 'metadata.uid' } }], 0o640, undefined);
    expect(payload.get('a')).to.deep.equal({ data: Buffer.from('web'), mode: 0o400 });
    expect(payload.get('b')).to.deep.equal({ data: Buffer.from('uid-1'), mode: 0o640 });
  });

  it('node allocatable as a ResourceList', () => {
    expect(allocatableResources(undefined)).to.deep.equal({});
    expect(allocatableResources({ cpuMillis: 4000, memoryBytes: 8 * 1024 * Mi, ephemeralStorageBytes: 1e12 })).to.deep.equal({
      cpu: '4000m',
      memory: String(8 * 1024 * Mi),
      'ephemeral-storage': '1000000000000',
    });
    expect(allocatableResources({ cpuMillis: 1500.7 })).to.deep.equal({ cpu: '1500m' });
  });

  const rp = pod({
    containers: [
      { name: 'app', image: 'i', resources: { limits: { cpu: '1500m', memory: '256Mi' }, requests: { cpu: '250m', memory: '64Mi' } } },
      { name: 'side', image: 'i' },
    ],
  });
  const alloc = { cpuMillis: 4000, memoryBytes: 8 * 1024 * Mi, ephemeralStorageBytes: 100 * 1024 * Mi };
  const rcases: [string, string, string | undefined, string][] = [
    ['app', 'limits.cpu', undefined, '2'], // rounds up
    ['app', 'limits.cpu', '1m', '1500'],
    ['app', 'requests.cpu', '1m', '250'],
    ['app', 'limits.memory', undefined, String(256 * Mi)],
    ['app', 'limits.memory', '1Mi', '256'],
    ['app', 'requests.memory', '1Mi', '64'],
    ['side', 'limits.cpu', undefined, '4'], // unset limit = node allocatable
    ['side', 'limits.cpu', '1m', '4000'],
    ['side', 'limits.memory', '1Gi', '8'],
    ['side', 'limits.ephemeral-storage', '1Gi', '100'],
    ['side', 'requests.cpu', undefined, '0'],
  ];
  for (const [c, r, d, want] of rcases) {
    it(`${c} ${r} / ${d ?? '1'} -> ${want}`, () =>
      expect(value([{ path: 'v', resourceFieldRef: { containerName: c, resource: r, ...(d ? { divisor: d } : {}) } }], alloc, rp)).to.equal(want));
  }
  it('pod-level limits are not a default for volumes (env vars only)', () => {
    const withPodLimits = { ...rp, spec: { ...rp.spec!, resources: { limits: { cpu: '2' } } } };
    expect(value([{ path: 'v', resourceFieldRef: { containerName: 'side', resource: 'limits.cpu' } }], alloc, withPodLimits)).to.equal('4');
  });
  it('collects every item error and still computes the rest', () => {
    const { payload, errors } = downwardAPIPayload(
      p,
      [
        { path: 'name', fieldRef: { fieldPath: 'metadata.name' } },
        { path: 'bad', fieldRef: { fieldPath: 'status.podIP' } },
        { path: 'bad2', resourceFieldRef: { containerName: 'x', resource: 'limits.cpu' } },
        { path: 'bad3', resourceFieldRef: { containerName: 'app', resource: 'limits.gpu' } },
        { path: 'bad4', resourceFieldRef: { resource: 'limits.cpu' } },
      ],
      0o644,
      undefined,
    );
    expect([...payload.keys()]).to.deep.equal(['name']);
    expect(errors).to.deep.equal([
      'unsupported fieldPath: status.podIP',
      'container x not found',
      'unsupported container resource : limits.gpu',
      'container  not found',
    ]);
    expect(aggregate(errors.slice(0, 2))).to.equal('[unsupported fieldPath: status.podIP, container x not found]');
    expect(aggregate(['one'])).to.equal('one');
  });
});

describe('volumes: memory emptyDir size (calculateEmptyDirMemorySize)', () => {
  const lim = (m: string) => ({ limits: { memory: m } });
  const cases: { name: string; pod: V1Pod; sizeLimit?: string; alloc?: number; want: number | undefined }[] = [
    { name: 'nothing known: no size option', pod: pod(), want: undefined },
    { name: 'allocatable only', pod: pod(), alloc: 1024 * Mi, want: 1024 * Mi },
    { name: 'sizeLimit below allocatable', pod: pod(), sizeLimit: '64Mi', alloc: 1024 * Mi, want: 64 * Mi },
    { name: 'sizeLimit above allocatable is capped', pod: pod(), sizeLimit: '4Gi', alloc: 1024 * Mi, want: 1024 * Mi },
    {
      name: 'pod limit (all containers declare) below allocatable',
      pod: pod({ containers: [{ name: 'a', image: 'i', resources: lim('100Mi') }, { name: 'b', image: 'i', resources: lim('28Mi') }] }),
      alloc: 1024 * Mi,
      want: 128 * Mi,
    },
    {
      name: 'sizeLimit above the pod limit is capped to it',
      pod: pod({ containers: [{ name: 'a', image: 'i', resources: lim('100Mi') }] }),
      sizeLimit: '1Gi',
      alloc: 1024 * Mi,
      want: 100 * Mi,
    },
    {
      name: 'one container without a limit: no pod limit',
      pod: pod({ containers: [{ name: 'a', image: 'i', resources: lim('100Mi') }, { name: 'b', image: 'i' }] }),
      alloc: 1024 * Mi,
      want: 1024 * Mi,
    },
  ];
  for (const c of cases) it(c.name, () => expect(emptyDirMemorySize(c.pod, c.sizeLimit, c.alloc)).to.equal(c.want));
  it('init containers: max(sum of app, largest init)', () => {
    const p = pod({ containers: [{ name: 'a', image: 'i', resources: lim('100Mi') }], initContainers: [{ name: 'i', image: 'i', resources: lim('300Mi') }] });
    expect(podMemoryLimitBytes(p)).to.equal(300 * Mi);
  });
});

describe('volumes: projected helpers', () => {
  it('fsUser only when every container runs as the same user', () => {
    expect(fsUserFrom(pod())).to.equal(undefined);
    expect(fsUserFrom(pod({ securityContext: { runAsUser: 1000 } }))).to.equal(1000);
    expect(
      fsUserFrom(pod({ securityContext: { runAsUser: 1000 }, containers: [{ name: 'a', image: 'i' }, { name: 'b', image: 'i', securityContext: { runAsUser: 2000 } }] })),
    ).to.equal(undefined);
  });
  it('service account defaults to "default"', () => {
    expect(serviceAccountName(pod())).to.equal('default');
    expect(serviceAccountName(pod({ serviceAccountName: 'robot' }))).to.equal('robot');
  });
});

describe('volumes: subPath and propagation (subPathExpr: pod/expand.ts)', () => {
  it('validates subPath like upstream', () => {
    expect(validateSubPath('a/b')).to.equal(undefined);
    expect(validateSubPath('/etc')).to.equal('error SubPath `/etc` must not be an absolute path');
    expect(validateSubPath('a/../../x')).to.equal("unable to provision SubPath `a/../../x`: must not contain '..'");
    expect(validateSubPath('a..b')).to.equal(undefined);
  });
  it('maps mountPropagation to CRI', () => {
    expect(translatePropagation(undefined)).to.equal('PROPAGATION_PRIVATE');
    expect(translatePropagation('None')).to.equal('PROPAGATION_PRIVATE');
    expect(translatePropagation('HostToContainer')).to.equal('PROPAGATION_HOST_TO_CONTAINER');
    expect(translatePropagation('Bidirectional')).to.equal('PROPAGATION_BIDIRECTIONAL');
    expect(() => translatePropagation('Sideways')).to.throw('invalid MountPropagation mode: "Sideways"');
  });
});

describe('volumes: mountinfo', () => {
  it('reads mount points and decodes octal escapes', () => {
    const text = [
      '22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw',
      '98 22 0:50 / /var/lib/nodelet/pods/u/volumes/kubernetes.io~secret/my\\040secret rw shared:50 - tmpfs tmpfs rw,size=1024k',
      '',
    ].join('\n');
    expect(parseMountInfo(text)).to.deep.equal(['/', '/var/lib/nodelet/pods/u/volumes/kubernetes.io~secret/my secret']);
  });
});
