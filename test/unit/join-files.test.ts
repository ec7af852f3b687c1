// What join writes and reads: the credential files (layout, modes, atomic
// failure), `nodelet join` flag parsing, and the cluster-side objects kubeadm
// init would create (cluster/bootstrap.ts). TEST-NET-1 addresses only.
import { expect } from 'chai';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parse } from 'yaml';
import { clusterInfoKubeconfig, generateToken, joinCommand, joinPrepManifests, NODE_TOKEN_GROUP } from '../../cluster/bootstrap.ts';
import { ensureCA } from '../../cluster/pki.ts';
import { generateNodeKey } from '../../agent/join/csr.ts';
import { credentialPaths, credentialsUsable, readCredentials, writeCredentials } from '../../agent/join/credentials.ts';
import { parseJoinFlags } from '../../agent/join/flags.ts';
import { parseBootstrapToken } from '../../agent/join/discovery.ts';
import { errorCode } from '../../lib/errors.ts';
import { exec } from '../../lib/exec.ts';
import { loadKubeconfig } from '../../lib/kube/kubeconfig.ts';

const host = { hostname: () => 'Host-A', networkInterfaces: () => ({ eth0: [{ address: '192.0.2.10', family: 'IPv4', internal: false } as any] }) };
const HASH = `sha256:${'ab'.repeat(32)}`;

describe('join: credentials, flags and cluster preparation', function () {
  this.timeout(60_000);
  let dir: string;
  let caPem: string;
  let certPem: string;
  const key = generateNodeKey();

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'join-files-'));
    const ca = await ensureCA(path.join(dir, 'ca'), 'test-ca');
    caPem = fs.readFileSync(ca.certPath, 'utf8');
    // A node client certificate for `key`, signed by the CA, as the csrsigning controller would.
    const csr = (await import('../../agent/join/csr.ts')).buildCsrPem(key, { cn: 'system:node:node-a', orgs: ['system:nodes'] });
    fs.writeFileSync(path.join(dir, 'n.csr'), csr);
    certPem = (await exec('openssl', ['x509', '-req', '-in', path.join(dir, 'n.csr'), '-CA', ca.certPath, '-CAkey', ca.keyPath, '-days', '2', '-set_serial', '7'])).stdout;
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  describe('credentials on disk', () => {
    it('writes the PEM (0600), the CA and a kubeconfig that our client loads', async () => {
      const p = credentialPaths(path.join(dir, 'etc-a'));
      await writeCredentials(p, { server: 'https://192.0.2.1:6443', caPem, certPem, key });
      expect(fs.statSync(p.clientPem).mode & 0o777).to.equal(0o600);
      expect(fs.statSync(p.kubeconfig).mode & 0o777).to.equal(0o600);
      expect(fs.readFileSync(p.caCert, 'utf8')).to.equal(caPem);
      expect(fs.readdirSync(path.dirname(p.clientPem)).sort()).to.deep.equal(['ca.crt', 'nodelet-client-current.pem']);
      const kc = loadKubeconfig(p.kubeconfig);
      expect(kc).to.deep.equal({ server: 'https://192.0.2.1:6443', ca: { file: p.caCert }, clientCert: { file: p.clientPem }, clientKey: { file: p.clientPem } });
      const cur = readCredentials(p)!;
      expect(cur.server).to.equal('https://192.0.2.1:6443');
      expect(credentialsUsable(cur, 'node-a', Date.now())).to.equal(true);
      expect(credentialsUsable(cur, 'node-b', Date.now()), 'another node name').to.equal(false);
      expect(credentialsUsable(cur, 'node-a', Date.now() + 3 * 86_400_000), 'expired').to.equal(false);
    });

    it('a failed first write leaves no credentials and no temp files', async () => {
      const p = credentialPaths(path.join(dir, 'etc-b'));
      fs.mkdirSync(p.caCert, { recursive: true }); // renaming onto a directory fails
      let code: string | undefined;
      try {
        await writeCredentials(p, { server: 'https://192.0.2.1:6443', caPem, certPem, key });
      } catch (err) {
        code = errorCode(err);
      }
      expect(code).to.equal('JOIN_WRITE_FAILED');
      expect(fs.existsSync(p.kubeconfig)).to.equal(false);
      expect(fs.existsSync(p.clientPem)).to.equal(false);
      expect(fs.readdirSync(path.dirname(p.clientPem))).to.deep.equal(['ca.crt']); // only our obstacle
      expect(fs.readdirSync(p.dir)).to.deep.equal(['pki']);
      expect(readCredentials(p)).to.equal(undefined);
    });

    it('incomplete or mismatched files are not credentials', async () => {
      const p = credentialPaths(path.join(dir, 'etc-c'));
      expect(readCredentials(p)).to.equal(undefined);
      await writeCredentials(p, { server: 'https://192.0.2.1:6443', caPem, certPem, key: generateNodeKey() });
      expect(readCredentials(p), 'certificate for another key').to.equal(undefined);
    });

    it('a certificate from another CA is not usable', async () => {
      const other = await ensureCA(path.join(dir, 'other'), 'other-ca');
      const p = credentialPaths(path.join(dir, 'etc-d'));
      await writeCredentials(p, { server: 'https://192.0.2.1:6443', caPem: fs.readFileSync(other.certPath, 'utf8'), certPem, key });
      expect(credentialsUsable(readCredentials(p)!, 'node-a', Date.now())).to.equal(false);
    });
  });

  describe('parseJoinFlags', () => {
    const base = ['--server', '192.0.2.1:6443', '--token', 'abcdef.0123456789abcdef', '--discovery-token-ca-cert-hash', HASH];

    it('splits join flags from agent flags and points the agent at <dir>/kubeconfig', () => {
      const c = parseJoinFlags([...base, '--node-name', 'node-a', '--max-pods=20', '--dir=/var/tmp/nl'], host);
      expect(c.target).to.deep.equal({ server: 'https://192.0.2.1:6443', token: { id: 'abcdef', secret: '0123456789abcdef' }, caHashes: [HASH] });
      expect(c.dir).to.equal('/var/tmp/nl');
      expect(c.agentArgs).to.deep.equal(['--node-name', 'node-a', '--max-pods=20', '--kubeconfig', '/var/tmp/nl/kubeconfig']);
      expect(c.agent).to.include({ nodeName: 'node-a', maxPods: 20, kubeconfig: '/var/tmp/nl/kubeconfig' });
      expect(c).to.include({ bootstrapOnly: false, rotateCertificates: true, discoveryTimeoutMs: 300_000 });
    });

    it('defaults: /etc/nodelet, the host name as node name; booleans and durations', () => {
      const c = parseJoinFlags([...base, '--bootstrap-only', '--rotate-certificates=false', '--discovery-timeout', '30s'], host);
      expect(c.dir).to.equal('/etc/nodelet');
      expect(c.agent.nodeName).to.equal('host-a');
      expect(c).to.include({ bootstrapOnly: true, rotateCertificates: false, discoveryTimeoutMs: 30_000 });
      expect(parseJoinFlags(['--server=https://192.0.2.1:6443', '--token=abcdef.0123456789abcdef', `--discovery-token-ca-cert-hash=${HASH}`], host).target?.server).to.equal('https://192.0.2.1:6443');
      // No target at all: run on the credentials an earlier join wrote (the systemd unit).
      const again = parseJoinFlags(['--dir', '/etc/nodelet', '--node-ip', '192.0.2.10'], host);
      expect(again.target).to.equal(undefined);
      expect(again.agentArgs).to.deep.equal(['--node-ip', '192.0.2.10', '--kubeconfig', '/etc/nodelet/kubeconfig']);
    });

    it('rejects what kubeadm join would, before any network use', () => {
      const codeOf = (argv: string[]) => {
        try {
          parseJoinFlags(argv, host);
        } catch (err) {
          return `${errorCode(err)}: ${(err as Error).message}`;
        }
        return 'ok';
      };
      expect(codeOf(base.slice(2))).to.match(/JOIN_INVALID_FLAG: --server/);
      expect(codeOf([...base.slice(0, 2), ...base.slice(4)])).to.match(/--token: is required/);
      expect(codeOf(base.slice(0, 4))).to.match(/--discovery-token-ca-cert-hash: is required/);
      expect(codeOf([...base, '--kubeconfig', '/x'])).to.match(/--kubeconfig: join writes the kubeconfig/);
      expect(codeOf([...base, '--dir', 'rel'])).to.match(/--dir: 'rel' is not an absolute path/);
      expect(codeOf([...base, '--bootstrap-only=maybe'])).to.match(/not true or false/);
      expect(codeOf([...base, '--no-such-flag', 'x'])).to.match(/CONFIG_INVALID: unknown flag --no-such-flag/);
      expect(codeOf([...base.slice(0, 1), 'http://192.0.2.1:80', ...base.slice(2)])).to.match(/--server/);
    });
  });

  describe('cluster side (kubeadm init’s objects)', () => {
    it('tokens have the bootstrap token format', () => {
      for (let i = 0; i < 20; i++) expect(parseBootstrapToken(generateToken()).id).to.have.length(6);
    });

    it('a token Secret, cluster-info, and the bootstrapper and auto-approval bindings', () => {
      const info = clusterInfoKubeconfig('https://192.0.2.1:6443', caPem);
      const list = JSON.parse(joinPrepManifests('abcdef.0123456789abcdef', info, new Date(Date.UTC(2030, 0, 2, 3, 4, 5, 678))));
      const byKind = (k: string) => list.items.filter((o: any) => o.kind === k);
      const [secret] = byKind('Secret');
      expect(secret.metadata).to.deep.equal({ name: 'bootstrap-token-abcdef', namespace: 'kube-system' });
      expect(secret.type).to.equal('bootstrap.kubernetes.io/token');
      expect(secret.stringData).to.include({
        'token-id': 'abcdef',
        'token-secret': '0123456789abcdef',
        expiration: '2030-01-02T03:04:05Z',
        'usage-bootstrap-authentication': 'true',
        'usage-bootstrap-signing': 'true',
        'auth-extra-groups': NODE_TOKEN_GROUP,
      });
      const [cm] = byKind('ConfigMap');
      expect(cm.metadata).to.deep.equal({ name: 'cluster-info', namespace: 'kube-public' });
      const kc = parse(cm.data.kubeconfig);
      expect(kc.clusters[0].cluster.server).to.equal('https://192.0.2.1:6443');
      expect(Buffer.from(kc.clusters[0].cluster['certificate-authority-data'], 'base64').toString()).to.equal(caPem);
      expect(kc.users).to.equal(null);
      const [rb] = byKind('RoleBinding');
      expect(rb.subjects).to.deep.equal([{ apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: 'system:anonymous' }]);
      expect(byKind('Role')[0].rules[0]).to.deep.include({ resourceNames: ['cluster-info'], verbs: ['get'] });
      const crbs = Object.fromEntries(byKind('ClusterRoleBinding').map((b: any) => [b.roleRef.name, b.subjects[0].name]));
      expect(crbs).to.deep.equal({
        'system:node-bootstrapper': NODE_TOKEN_GROUP,
        'system:certificates.k8s.io:certificatesigningrequests:nodeclient': NODE_TOKEN_GROUP,
        'system:certificates.k8s.io:certificatesigningrequests:selfnodeclient': 'system:nodes',
        'system:node-proxier': 'system:nodes',
      });
    });

    it('prints the join command', () => {
      expect(joinCommand({ server: '192.0.2.1:6443', token: 'abcdef.0123456789abcdef', caCertHash: HASH }))
        .to.equal(`nodelet join --server 192.0.2.1:6443 --token abcdef.0123456789abcdef --discovery-token-ca-cert-hash ${HASH}`);
    });
  });
});

