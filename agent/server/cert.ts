// The kubelet API's serving certificate when none is configured: like
// upstream's self-signed fallback, a CA of this node's own and a serving
// certificate for the node name, host name and node IP, kept under
// <rootDir>/pki and reused across restarts. The API server does not verify
// kubelet certificates unless given --kubelet-certificate-authority.
import { isIP } from 'node:net';
import path from 'node:path';
import { ensureCA, ensureCert, type KeyCert } from '../../cluster/pki.ts';

export async function ensureServingCert(rootDir: string, node: { nodeName: string; hostname: string; nodeIP: string }): Promise<KeyCert> {
  const dir = path.join(rootDir, 'pki');
  const ca = await ensureCA(dir, `${node.nodeName}-ca`);
  const dns = [...new Set([node.nodeName, node.hostname].filter((n) => n && !isIP(n)))];
  return ensureCert(dir, ca, {
    name: 'kubelet',
    cn: node.nodeName,
    usage: 'server',
    dnsSANs: dns,
    ipSANs: node.nodeIP && isIP(node.nodeIP) ? [node.nodeIP] : [],
  });
}
