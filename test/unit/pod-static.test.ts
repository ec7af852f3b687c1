// Static pod manifests: upstream's defaults, content-hash UIDs, errors per
// file, and the mirror pod shape.
import { expect } from 'chai';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { isMirrorPod, isStaticPod, mirrorPodFor, readStaticPods, staticPodFromManifest } from '../../agent/pod/static.ts';

const manifest = 'apiVersion: v1\nkind: Pod\nmetadata:\n  name: etcd\n  labels: {tier: cp}\nspec:\n  containers:\n  - name: main\n    image: nodelet.local/busybox:1.35\n';

describe('static pods', () => {
  it('names the pod <name>-<node>, binds it to the node and annotates source and hash', () => {
    const p = staticPodFromManifest(manifest, '/m/etcd.yaml', 'n1');
    expect(p.metadata?.name).to.equal('etcd-n1');
    expect(p.metadata?.namespace).to.equal('default');
    expect(p.spec?.nodeName).to.equal('n1');
    expect(p.spec?.restartPolicy).to.equal('Always');
    expect(p.metadata?.uid).to.match(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    expect(p.metadata?.annotations).to.include({ 'kubernetes.io/config.source': 'file', 'kubernetes.io/config.hash': p.metadata?.uid });
    expect(isStaticPod(p)).to.equal(true);
  });

  it('gives an edited manifest a new UID and the same manifest the same UID', () => {
    const a = staticPodFromManifest(manifest, '/m/etcd.yaml', 'n1').metadata?.uid;
    expect(staticPodFromManifest(manifest, '/m/etcd.yaml', 'n1').metadata?.uid).to.equal(a);
    expect(staticPodFromManifest(manifest.replace('1.35', '1.36'), '/m/etcd.yaml', 'n1').metadata?.uid).to.not.equal(a);
  });

  it('reads a directory, skipping dotfiles, and reports bad manifests one line each', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'static-'));
    try {
      writeFileSync(path.join(dir, 'etcd.yaml'), manifest);
      writeFileSync(path.join(dir, '.swp'), 'garbage');
      writeFileSync(path.join(dir, 'svc.yaml'), 'kind: Service\nmetadata: {name: x}\n');
      writeFileSync(path.join(dir, 'nocont.json'), '{"metadata":{"name":"x"},"spec":{"containers":[]}}');
      const r = readStaticPods(dir, 'n1');
      expect(r.pods.map((p) => p.metadata?.name)).to.deep.equal(['etcd-n1']);
      expect(r.errors).to.have.length(2);
      expect(r.errors.find((e) => e.includes('svc.yaml'))).to.match(/kind Service is not Pod/);
      expect(r.errors.find((e) => e.includes('nocont.json'))).to.match(/at least one container/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    expect(readStaticPods('/nonexistent/dir', 'n1')).to.deep.equal({ pods: [], errors: [] });
  });

  it('mirrors with the same name, labels and spec, marked and owned by the node', () => {
    const p = staticPodFromManifest(manifest, '/m/etcd.yaml', 'n1');
    const m = mirrorPodFor(p, { name: 'n1', uid: 'node-uid' });
    expect(m.metadata?.name).to.equal('etcd-n1');
    expect(m.metadata?.labels).to.deep.equal({ tier: 'cp' });
    expect(m.metadata?.annotations?.['kubernetes.io/config.mirror']).to.equal(p.metadata?.uid);
    expect(m.metadata?.ownerReferences).to.deep.equal([{ apiVersion: 'v1', kind: 'Node', name: 'n1', uid: 'node-uid', controller: true }]);
    expect(m.spec).to.deep.equal(p.spec);
    expect(isMirrorPod(m)).to.equal(true);
    expect(m.metadata?.uid).to.equal(undefined);
  });
});
