// Issue 4: KubePodObjects and the container environment against the real
// kube-apiserver of the fixture cluster. Objects are made with kubectl in a
// namespace of this test's own; the pod is pinned to a node that does not
// exist, so it stays Pending and only serves as the token's bound object.
import * as k8s from '@kubernetes/client-node';
import { KubeClient } from '../../lib/kube/client.ts';
import { apiStatus } from '../../lib/kube/errors.ts';
import { expect } from 'chai';
import { waitFor } from '../../cluster/daemon.ts';
import { makeEnvironment } from '../../agent/pod/env.ts';
import { KubePodObjects } from '../../agent/pod/kubeobjects.ts';
import { cluster, kubectlJson, kubectlRun } from './cluster.ts';

const NS = 'podobjects-it';

function adminConfig(): KubeClient {
  return KubeClient.fromFile(cluster().paths.adminKubeconfig);
}

/** A client for the same server and CA that authenticates with `token` only. */
function tokenConfig(admin: KubeClient, token: string): KubeClient {
  const { server, ca } = admin.credentials;
  return new KubeClient({ server, ...(ca ? { ca } : {}), token: { data: token } });
}

describe('pod objects and environment (real apiserver)', function () {
  let objects: KubePodObjects;
  let admin: KubeClient;

  before(async function () {
    this.timeout(120_000);
    admin = adminConfig();
    objects = new KubePodObjects(admin);
    await kubectlRun(['delete', 'namespace', NS, '--ignore-not-found', '--wait=true'], { allowFail: true });
    await kubectlRun(['create', 'namespace', NS]);
    await kubectlRun(['-n', NS, 'create', 'configmap', 'cfg', '--from-literal=MODE=fast', '--from-literal=1badkey=kept']);
    await kubectlRun(['-n', NS, 'create', 'secret', 'generic', 'creds', '--from-literal=USER=admin', '--from-literal=PASSWORD=s3cr=t']);
    await kubectlRun(['-n', NS, 'create', 'service', 'clusterip', 'web-svc', '--tcp=8080:80']);
    await kubectlRun(['-n', NS, 'create', 'service', 'clusterip', 'headless', '--clusterip=None', '--tcp=80:80']);
    // The token controller's "default" service account appears shortly after the namespace.
    await waitFor('the default service account', async () => (await kubectlRun(['-n', NS, 'get', 'serviceaccount', 'default'], { allowFail: true })).code === 0, 60_000, 500);
  });

  after(async function () {
    this.timeout(60_000);
    await kubectlRun(['delete', 'namespace', NS, '--ignore-not-found', '--wait=false'], { allowFail: true });
  });

  it('reads a configmap and a secret, and missing ones are undefined', async () => {
    const cm = await objects.getConfigMap(NS, 'cfg');
    expect(cm?.data).to.deep.equal({ MODE: 'fast', '1badkey': 'kept' });
    const secret = await objects.getSecret(NS, 'creds');
    expect(Buffer.from(secret?.data?.PASSWORD ?? '', 'base64').toString()).to.equal('s3cr=t');
    expect(await objects.getConfigMap(NS, 'nope')).to.equal(undefined);
    expect(await objects.getSecret(NS, 'nope')).to.equal(undefined);
  });

  it('lists the namespace services', async () => {
    const names = (await objects.listServices(NS)).map((s) => s.metadata?.name).sort();
    expect(names).to.deep.equal(['headless', 'web-svc']);
    const defaults = (await objects.listServices('default')).map((s) => s.metadata?.name);
    expect(defaults).to.include('kubernetes');
  });

  it('builds a container environment from the real objects', async () => {
    const kubernetes = await kubectlJson(['-n', 'default', 'get', 'service', 'kubernetes']);
    const web = await kubectlJson(['-n', NS, 'get', 'service', 'web-svc']);
    const container: k8s.V1Container = {
      name: 'c',
      envFrom: [{ configMapRef: { name: 'cfg' } }, { prefix: 'S_', secretRef: { name: 'creds' } }],
      env: [
        { name: 'POD', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
        { name: 'URL', value: 'http://$(WEB_SVC_SERVICE_HOST):$(WEB_SVC_SERVICE_PORT)/$(MODE)' },
      ],
    };
    const pod: k8s.V1Pod = { metadata: { name: 'envpod', namespace: NS, uid: 'u' }, spec: { containers: [container] } };
    const { env } = await makeEnvironment(pod, container, { objects, podIPs: [], hostIPs: [cluster().nodes[0]!.sandbox.nodeIP], nodeName: 'n' });
    const r = Object.fromEntries(env.map((e) => [e.key, e.value]));
    expect(r).to.include({
      KUBERNETES_SERVICE_HOST: kubernetes.spec.clusterIP,
      KUBERNETES_SERVICE_PORT: '443',
      KUBERNETES_SERVICE_PORT_HTTPS: '443',
      WEB_SVC_SERVICE_HOST: web.spec.clusterIP,
      WEB_SVC_SERVICE_PORT: '8080',
      WEB_SVC_SERVICE_PORT_8080_80: '8080',
      MODE: 'fast',
      '1badkey': 'kept',
      S_USER: 'admin',
      S_PASSWORD: 's3cr=t',
      POD: 'envpod',
      URL: `http://${web.spec.clusterIP}:8080/fast`,
    });
    expect(Object.keys(r).some((k) => k.startsWith('HEADLESS_'))).to.equal(false);
  });

  it('issues a pod-bound token for the default service account that the API server accepts', async function () {
    this.timeout(60_000);
    const podSpec = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'tokenpod', namespace: NS },
      // No such node: the pod stays Pending and no kubelet touches it.
      spec: { nodeSelector: { 'podobjects-it/none': 'true' }, containers: [{ name: 'c', image: 'nodelet.local/busybox:1.35' }] },
    };
    await kubectlRun(['apply', '-f', '-'], { input: JSON.stringify(podSpec) });
    const pod = await kubectlJson(['-n', NS, 'get', 'pod', 'tokenpod']);
    const issued = await objects.requestToken({
      namespace: NS,
      serviceAccountName: 'default',
      audiences: [],
      expirationSeconds: 3600,
      boundPod: { name: 'tokenpod', uid: pod.metadata.uid },
    });
    expect(issued.token).to.match(/^ey/);
    const lifetime = issued.expiresAtMs - Date.now();
    expect(lifetime).to.be.greaterThan(3000_000).and.lessThan(3700_000);

    // The token alone (no client certificate) authenticates as the service account, bound to the pod.
    const client = tokenConfig(admin, issued.token);
    const selfReview = () =>
      client.request<k8s.V1SelfSubjectReview>('self subject review', 'POST', '/apis/authentication.k8s.io/v1/selfsubjectreviews', {
        body: { apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' },
      });
    const review = await selfReview();
    expect(review.status?.userInfo?.username).to.equal(`system:serviceaccount:${NS}:default`);
    expect(review.status?.userInfo?.extra?.['authentication.kubernetes.io/pod-name']).to.deep.equal(['tokenpod']);
    expect(review.status?.userInfo?.extra?.['authentication.kubernetes.io/pod-uid']).to.deep.equal([pod.metadata.uid]);

    // Bound to the pod: once the pod is gone the token stops working.
    await kubectlRun(['-n', NS, 'delete', 'pod', 'tokenpod', '--grace-period=0', '--force', '--wait=true'], { allowFail: true });
    await waitFor('the bound token to be rejected', async () => {
      try {
        await selfReview();
        return false;
      } catch (err) {
        return apiStatus(err) === 401;
      }
    }, 30_000, 500);
  });

  it('maps a token request for a missing service account to an API error', async () => {
    let err: unknown;
    try {
      await objects.requestToken({ namespace: NS, serviceAccountName: 'nope', audiences: [], expirationSeconds: 600, boundPod: { name: 'x', uid: 'y' } });
    } catch (e) {
      err = e;
    }
    expect((err as { code?: string }).code).to.equal('API_ERROR');
    expect((err as Error).message).to.match(/^request token for serviceaccount podobjects-it\/nope: HTTP 404/);
  });
});
