import { expect } from 'chai';
import { asImageID, familiarName, normalizeImage, parseImageReference } from '../../cri/reference.ts';
import { errorCode } from '../../lib/errors.ts';

const digest = 'sha256:' + 'a'.repeat(64);

describe('cri/reference', () => {
  const cases: [string, string, string][] = [
    ['busybox', 'docker.io/library/busybox:latest', 'busybox:latest'],
    ['busybox:1.35', 'docker.io/library/busybox:1.35', 'busybox:1.35'],
    ['library/busybox', 'docker.io/library/busybox:latest', 'busybox:latest'],
    ['docker.io/busybox', 'docker.io/library/busybox:latest', 'busybox:latest'],
    ['index.docker.io/library/busybox', 'docker.io/library/busybox:latest', 'busybox:latest'],
    ['bitnami/nginx:1.25', 'docker.io/bitnami/nginx:1.25', 'bitnami/nginx:1.25'],
    ['registry.k8s.io/pause:3.10', 'registry.k8s.io/pause:3.10', 'registry.k8s.io/pause:3.10'],
    ['localhost:5000/app', 'localhost:5000/app:latest', 'localhost:5000/app:latest'],
    ['localhost/app', 'localhost/app:latest', 'localhost/app:latest'],
    ['nodelet.local/busybox:1.35', 'nodelet.local/busybox:1.35', 'nodelet.local/busybox:1.35'],
    [`busybox@${digest}`, `docker.io/library/busybox@${digest}`, `busybox@${digest}`],
    [`busybox:1.35@${digest}`, `docker.io/library/busybox:1.35@${digest}`, `busybox:1.35@${digest}`],
    ['quay.io/a/b/c:v1', 'quay.io/a/b/c:v1', 'quay.io/a/b/c:v1'],
  ];
  for (const [input, full, familiar] of cases) {
    it(`normalises ${input}`, () => {
      expect(normalizeImage(input)).to.equal(full);
      expect(familiarName(input)).to.equal(familiar);
    });
  }

  it('splits domain, path, tag and digest', () => {
    expect(parseImageReference('localhost:5000/team/app:v2')).to.deep.equal({ domain: 'localhost:5000', path: 'team/app', tag: 'v2' });
    expect(parseImageReference(`nginx@${digest}`)).to.deep.equal({ domain: 'docker.io', path: 'library/nginx', digest });
  });

  const invalid: [string, string][] = [
    ['empty', ''],
    ['uppercase repository', 'BusyBox'],
    ['bad tag', 'busybox:-x'],
    ['short digest', 'busybox@sha256:abc'],
    ['64-hex name', 'a'.repeat(64)],
    ['double slash', 'docker.io//busybox'],
    ['trailing separator', 'busy-'],
  ];
  for (const [why, ref] of invalid) {
    it(`rejects ${why} with CRI_INVALID_IMAGE`, () => {
      let err: unknown;
      try {
        parseImageReference(ref);
      } catch (e) {
        err = e;
      }
      expect(errorCode(err)).to.equal('CRI_INVALID_IMAGE');
    });
  }

  it('recognises image IDs', () => {
    expect(asImageID('a'.repeat(64))).to.equal('sha256:' + 'a'.repeat(64));
    expect(asImageID(digest)).to.equal(digest);
    expect(asImageID('busybox')).to.equal(undefined);
  });
});
