// The network half of join: discovery (fetch cluster-info anonymously, verify
// it, fetch it again over the pinned CA) and the TLS bootstrap (a CSR for the
// kube-apiserver-client-kubelet signer, then wait for the certificate).
import { X509Certificate, type KeyObject } from 'node:crypto';
import type { Clock } from '../../lib/clock.ts';
import { errorCode, NodeletError } from '../../lib/errors.ts';
import type { Logger } from '../../lib/log.ts';
import { buildCsrPem, nodeClientSubject } from './csr.ts';
import { type BootstrapToken, type ClusterInfo, validateClusterInfo } from './discovery.ts';
import { type Endpoint, type JsonRequester, statusMessage } from './http.ts';

export const CLUSTER_INFO_PATH = '/api/v1/namespaces/kube-public/configmaps/cluster-info';
export const CSR_PATH = '/apis/certificates.k8s.io/v1/certificatesigningrequests';
export const KUBELET_CLIENT_SIGNER = 'kubernetes.io/kube-apiserver-client-kubelet';
/** What the node client auto-approver accepts for an ECDSA key. */
export const CLIENT_USAGES = ['digital signature', 'client auth'];

export interface BootstrapDeps {
  request: JsonRequester;
  clock: Clock;
  log: Logger;
}

const RETRY_MS = 1000;

/**
 * Finds and verifies the cluster: retries while the signature for this token
 * id is missing (the bootstrapsigner adds it moments after a token is made)
 * until `timeoutMs`; fails at once on a bad signature, a CA hash mismatch or an
 * unreachable server.
 */
export async function discover(d: BootstrapDeps, server: string, token: BootstrapToken, pins: readonly string[], timeoutMs: number): Promise<ClusterInfo> {
  const deadline = d.clock.now() + timeoutMs;
  let info: ClusterInfo | undefined;
  let kubeconfigText = '';
  for (;;) {
    const r = await d.request({ server, insecure: true }, 'GET', CLUSTER_INFO_PATH);
    if (r.status === 404) throw new NodeletError('JOIN_DISCOVERY_INVALID', `${server} has no cluster-info ConfigMap in kube-public: the control plane is not prepared for join`);
    if (r.status === 401 || r.status === 403) {
      throw new NodeletError('JOIN_DISCOVERY_FORBIDDEN', `${server} does not let anonymous users read kube-public/cluster-info (${statusMessage(r)})`);
    }
    if (r.status !== 200) throw new NodeletError('JOIN_DISCOVERY_INVALID', `reading cluster-info from ${server}: ${statusMessage(r)}`);
    const data = ((r.body as { data?: Record<string, string> } | undefined)?.data ?? {});
    try {
      info = validateClusterInfo(data, token, pins);
      kubeconfigText = data['kubeconfig'] ?? '';
      break;
    } catch (err) {
      if (errorCode(err) !== 'JOIN_NO_SIGNATURE' || d.clock.now() + RETRY_MS > deadline) throw err;
      d.log.info('cluster-info has no signature for this token yet; retrying', { tokenId: token.id });
      await d.clock.sleep(RETRY_MS);
    }
  }
  // Now that the CA is trusted, read cluster-info again over verified TLS from
  // the server it names, and insist on the same content (as kubeadm does).
  const again = await d.request({ server: info.server, caPem: info.caPem }, 'GET', CLUSTER_INFO_PATH);
  const text = (again.body as { data?: Record<string, string> } | undefined)?.data?.['kubeconfig'];
  if (again.status !== 200 || text !== kubeconfigText) {
    throw new NodeletError('JOIN_DISCOVERY_INVALID', `cluster-info read over the pinned CA from ${info.server} differs from the first read (${statusMessage(again)})`);
  }
  d.log.info('cluster-info verified', { server: info.server });
  return info;
}

interface CsrObject {
  metadata?: { name?: string };
  status?: { certificate?: string; conditions?: Array<{ type?: string; status?: string; reason?: string; message?: string }> };
}

/**
 * POSTs a CSR for `nodeName`'s client certificate with whatever credentials
 * `ep` carries (the bootstrap token, or the current client certificate when
 * rotating), waits until it is issued, and checks the certificate: it belongs
 * to `key` and was signed by the cluster CA.
 */
export async function requestClientCertificate(d: BootstrapDeps, ep: Endpoint, key: KeyObject, nodeName: string, timeoutMs: number, expirationSeconds?: number): Promise<string> {
  const body = {
    apiVersion: 'certificates.k8s.io/v1',
    kind: 'CertificateSigningRequest',
    metadata: { generateName: 'node-csr-' },
    spec: {
      request: Buffer.from(buildCsrPem(key, nodeClientSubject(nodeName))).toString('base64'),
      signerName: KUBELET_CLIENT_SIGNER,
      usages: CLIENT_USAGES,
      ...(expirationSeconds !== undefined ? { expirationSeconds } : {}),
    },
  };
  const created = await d.request(ep, 'POST', CSR_PATH, body);
  if (created.status === 401) {
    throw new NodeletError('JOIN_TOKEN_REJECTED', `the API server rejected our credentials (${statusMessage(created)}): the token is unknown or expired`);
  }
  if (created.status === 403) {
    throw new NodeletError('JOIN_FORBIDDEN', `may not create a CertificateSigningRequest (${statusMessage(created)}): is the system:node-bootstrapper binding there?`);
  }
  const name = (created.body as CsrObject | undefined)?.metadata?.name;
  if (created.status !== 201 || !name) throw new NodeletError('JOIN_CSR_FAILED', `creating the CertificateSigningRequest: ${statusMessage(created)}`);
  d.log.info('certificate signing request created', { csr: name, signer: KUBELET_CLIENT_SIGNER });

  const deadline = d.clock.now() + timeoutMs;
  for (;;) {
    const r = await d.request(ep, 'GET', `${CSR_PATH}/${name}`);
    if (r.status !== 200) throw new NodeletError('JOIN_CSR_FAILED', `reading CertificateSigningRequest ${name}: ${statusMessage(r)}`);
    const csr = r.body as CsrObject;
    const bad = csr.status?.conditions?.find((c) => (c.type === 'Denied' || c.type === 'Failed') && c.status !== 'False');
    if (bad) throw new NodeletError('JOIN_CSR_DENIED', `CertificateSigningRequest ${name} ${bad.type?.toLowerCase()}: ${bad.reason ?? ''} ${bad.message ?? ''}`.trim());
    if (csr.status?.certificate) {
      const certPem = Buffer.from(csr.status.certificate, 'base64').toString('utf8');
      checkIssued(certPem, key, ep.caPem, name);
      d.log.info('client certificate issued', { csr: name });
      return certPem;
    }
    if (d.clock.now() + RETRY_MS > deadline) {
      throw new NodeletError('JOIN_CSR_TIMEOUT', `CertificateSigningRequest ${name} was not approved and signed within ${Math.round(timeoutMs / 1000)} s: are the auto-approval bindings and the controller-manager's csrapproving/csrsigning controllers there?`);
    }
    await d.clock.sleep(RETRY_MS);
  }
}

function checkIssued(certPem: string, key: KeyObject, caPem: string | undefined, csrName: string): void {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(certPem);
  } catch (err) {
    throw new NodeletError('JOIN_CSR_FAILED', `CertificateSigningRequest ${csrName}: the issued certificate does not parse`, { cause: err });
  }
  if (!cert.checkPrivateKey(key)) throw new NodeletError('JOIN_CSR_FAILED', `CertificateSigningRequest ${csrName}: the issued certificate is not for our key`);
  if (caPem && !cert.verify(new X509Certificate(caPem).publicKey)) {
    throw new NodeletError('JOIN_CSR_FAILED', `CertificateSigningRequest ${csrName}: the issued certificate is not signed by the cluster CA`);
  }
}
