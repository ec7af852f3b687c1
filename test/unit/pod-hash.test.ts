import type { V1Container } from '@kubernetes/client-node';
import { expect } from 'chai';
import { canonicalJSON, containerHash, fnv1a32 } from '../../agent/pod/hash.ts';

describe('pod/hash', () => {
  it('fnv1a32 matches the published FNV-1a test vectors', () => {
    expect(fnv1a32('')).to.equal(0x811c9dc5);
    expect(fnv1a32('a')).to.equal(0xe40c292c);
    expect(fnv1a32('foobar')).to.equal(0xbf9cf968);
  });

  it('canonicalJSON sorts keys at every level and drops undefined members', () => {
    expect(canonicalJSON({ b: 1, a: { d: [3, { z: 1, y: 2 }], c: undefined } })).to.equal('{"a":{"d":[3,{"y":2,"z":1}]},"b":1}');
    expect(canonicalJSON({ t: new Date(Date.UTC(2025, 0, 1)) })).to.equal('{"t":"2025-01-01T00:00:00.000Z"}');
  });

  const base: V1Container = { name: 'app', image: 'nodelet.local/busybox:1.35', command: ['sleep', '3600'] };

  it('is pinned: the same spec gives the same hash in every nodelet version (running containers must not restart on upgrade)', () => {
    expect(containerHash(base)).to.equal('8e17fe02');
  });

  it('does not depend on key order', () => {
    const reordered = { command: ['sleep', '3600'], image: 'nodelet.local/busybox:1.35', name: 'app' } as V1Container;
    expect(containerHash(reordered)).to.equal(containerHash(base));
  });

  it('changes with the image and the name', () => {
    expect(containerHash({ ...base, image: 'nodelet.local/busybox:1.36' })).to.not.equal(containerHash(base));
    expect(containerHash({ ...base, name: 'other' })).to.not.equal(containerHash(base));
  });

  it('ignores fields that cannot change on a running pod or that the API server defaults (as upstream 1.31+)', () => {
    const defaulted: V1Container = {
      ...base,
      imagePullPolicy: 'IfNotPresent',
      terminationMessagePath: '/dev/termination-log',
      terminationMessagePolicy: 'File',
      resources: {},
      env: [{ name: 'A', value: '1' }],
    };
    expect(containerHash(defaulted)).to.equal(containerHash(base));
  });

  it('is lowercase hex without padding, like upstream labels', () => {
    for (const img of ['a', 'b', 'c:1', 'registry.example/x/y:z']) {
      expect(containerHash({ name: 'c', image: img })).to.match(/^[0-9a-f]{1,8}$/);
    }
  });
});
