import { expect } from 'chai';
import {
  ANNOTATION_CONTAINER_HASH,
  ANNOTATION_RESTART_COUNT,
  containerName,
  decodeContainerIdentity,
  decodeLabels,
  encodeContainerIdentity,
  encodeLabels,
  isSandboxName,
  LABEL_CONTAINER_NAME,
  LABEL_CRI_KEYS,
  LABEL_MANAGED,
  LABEL_POD_NAME,
  LABEL_POD_UID,
  LABEL_TYPE,
  matchesSelector,
  parseName,
  sandboxName,
} from '../../cri/labels.ts';

const pod = { name: 'web-0', namespace: 'kube-system', uid: '6b1c0b2e-58a1-4c3e-9c1e-1f0d2c3b4a59', attempt: 2 };

describe('cri/labels', () => {
  it('names sandboxes and containers as upstream and parses them back', () => {
    expect(sandboxName(pod)).to.equal('k8s_POD_web-0_kube-system_6b1c0b2e-58a1-4c3e-9c1e-1f0d2c3b4a59_2');
    expect(containerName(pod, { name: 'nginx', attempt: 5 })).to.equal(
      'k8s_nginx_web-0_kube-system_6b1c0b2e-58a1-4c3e-9c1e-1f0d2c3b4a59_5',
    );
    expect(parseName('/' + sandboxName(pod))).to.deep.equal({
      container: 'POD', pod: 'web-0', namespace: 'kube-system', uid: pod.uid, attempt: 2,
    });
    expect(parseName(containerName(pod, { name: 'nginx', attempt: 5 }))).to.include({ container: 'nginx', attempt: 5 });
    expect(isSandboxName(sandboxName(pod))).to.equal(true);
    expect(isSandboxName(containerName(pod, { name: 'nginx', attempt: 0 }))).to.equal(false);
  });

  const notOurs: [string, string][] = [
    ['someone else\'s container', 'elated_turing'],
    ['wrong prefix', 'k9s_POD_a_b_c_0'],
    ['attempt not a number', 'k8s_POD_a_b_c_x'],
    ['too few parts', 'k8s_POD_a_b_0'],
    ['too many parts', 'k8s_c_a_b_c_d_0'],
    ['empty part', 'k8s__a_b_c_0'],
  ];
  for (const [why, name] of notOurs) {
    it(`does not parse a name that is not ours: ${why}`, () => expect(parseName(name)).to.equal(undefined));
  }

  it('round-trips CRI labels and annotations through Docker labels, dropping image and internal ones', () => {
    const docker = encodeLabels({ app: 'web', [LABEL_POD_NAME]: 'web-0' }, { 'kubectl.kubernetes.io/last-applied': '{}' }, {
      [LABEL_TYPE]: 'container',
      [LABEL_POD_NAME]: 'ignored-internal',
      [LABEL_POD_UID]: 'u1',
    });
    expect(docker[LABEL_MANAGED]).to.equal('true');
    expect(docker[LABEL_POD_NAME]).to.equal('web-0'); // the caller's value wins
    expect(docker['annotation.kubectl.kubernetes.io/last-applied']).to.equal('{}');
    expect(JSON.parse(docker[LABEL_CRI_KEYS]!)).to.deep.equal(['app', LABEL_POD_NAME]);
    const fromDocker = { ...docker, 'org.opencontainers.image.title': 'from the image' };
    expect(decodeLabels(fromDocker)).to.deep.equal({
      labels: { app: 'web', [LABEL_POD_NAME]: 'web-0' },
      annotations: { 'kubectl.kubernetes.io/last-applied': '{}' },
    });
  });

  it('encodes and decodes the kubelet\'s container identity (pod, container, hash, restart count)', () => {
    const id = { podName: 'web-0', podNamespace: 'default', podUID: 'u1', containerName: 'nginx', hash: 'deadbeef', restartCount: 3 };
    const enc = encodeContainerIdentity(id);
    expect(enc.labels[LABEL_CONTAINER_NAME]).to.equal('nginx');
    expect(enc.annotations).to.deep.equal({ [ANNOTATION_CONTAINER_HASH]: 'deadbeef', [ANNOTATION_RESTART_COUNT]: '3' });
    expect(decodeContainerIdentity(enc.labels, enc.annotations)).to.deep.equal(id);
    expect(decodeContainerIdentity({ ...enc.labels, [LABEL_CONTAINER_NAME]: undefined as unknown as string }, {})).to.equal(undefined);
    expect(decodeContainerIdentity(enc.labels, { [ANNOTATION_RESTART_COUNT]: 'x' })?.restartCount).to.equal(0);
  });

  it('matches label selectors as AND of equalities', () => {
    expect(matchesSelector({ a: '1', b: '2' }, { a: '1' })).to.equal(true);
    expect(matchesSelector({ a: '1', b: '2' }, { a: '1', b: '3' })).to.equal(false);
    expect(matchesSelector({ a: '1' }, { c: '' })).to.equal(false);
    expect(matchesSelector({ a: '1' }, undefined)).to.equal(true);
  });
});
