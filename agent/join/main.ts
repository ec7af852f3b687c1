// `nodelet join`: discovery, TLS bootstrap, credentials on disk, then the agent
// (as `nodelet agent --kubeconfig <dir>/kubeconfig ...`) with client
// certificate rotation beside it. Credentials that are still good (a restart
// after a join) are kept, as kubelet keeps its kubeconfig over the bootstrap one;
// without --server/--token/--discovery-token-ca-cert-hash it only runs on them
// (what the systemd unit does).
import { realClock } from '../../lib/clock.ts';
import { NodeletError } from '../../lib/errors.ts';
import { createLogger } from '../../lib/log.ts';
import { logConfigWarnings } from '../configfile/document.ts';
import { discover, requestClientCertificate } from './bootstrap.ts';
import { generateNodeKey } from './csr.ts';
import { credentialPaths, credentialsUsable, readCredentials, writeCredentials } from './credentials.ts';
import { parseJoinFlags } from './flags.ts';
import { requestJson } from './http.ts';
import { ClientCertRotator } from './rotation.ts';

const CSR_TIMEOUT_MS = 2 * 60_000;

export const JOIN_USAGE = `usage: nodelet join --server HOST:PORT --token ID.SECRET --discovery-token-ca-cert-hash sha256:HEX
                    [--dir /etc/nodelet] [--node-name NAME] [--discovery-timeout 5m]
                    [--config FILE] [--bootstrap-only] [--rotate-certificates=false] [agent flags]
       nodelet join [--dir /etc/nodelet] [--config FILE] [agent flags]     (run on the credentials of an earlier join)

Joins the cluster as kubeadm join does (token discovery, TLS bootstrap), writes
<dir>/kubeconfig and <dir>/pki/, then runs the agent with the remaining flags
unless --bootstrap-only. --config FILE (a KubeletConfiguration) goes to the
agent and is checked before anything touches the network.
`;

export async function runJoin(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  if (argv.includes('-h') || argv.includes('--help')) {
    process.stdout.write(JOIN_USAGE);
    return 0;
  }
  const cfg = parseJoinFlags(argv);
  const nodeName = cfg.agent.nodeName;
  const log = createLogger(cfg.agent.logLevel).child({ node: nodeName, component: 'join' });
  const clock = realClock;
  const paths = credentialPaths(cfg.dir);
  const deps = { request: requestJson, clock, log };

  const existing = readCredentials(paths);
  const target = cfg.target;
  if (existing && credentialsUsable(existing, nodeName, clock.now())) {
    log.info('already joined: keeping the credentials', { kubeconfig: paths.kubeconfig, expires: existing.cert.validTo });
  } else if (!target) {
    throw new NodeletError('JOIN_NOT_JOINED', `no usable credentials for node ${nodeName} under ${cfg.dir}: join first (nodelet join --server HOST:PORT --token ID.SECRET --discovery-token-ca-cert-hash sha256:HEX)`);
  } else {
    log.info('discovering the cluster', { server: target.server, tokenId: target.token.id });
    const info = await discover(deps, target.server, target.token, target.caHashes, cfg.discoveryTimeoutMs);
    const key = generateNodeKey();
    const certPem = await requestClientCertificate(deps, { server: info.server, caPem: info.caPem, bearerToken: `${target.token.id}.${target.token.secret}` }, key, nodeName, CSR_TIMEOUT_MS);
    await writeCredentials(paths, { server: info.server, caPem: info.caPem, certPem, key });
    log.info('joined: credentials written', { kubeconfig: paths.kubeconfig });
  }
  if (cfg.bootstrapOnly) {
    // The agent (which logs them otherwise) does not run: say here what the file held in vain.
    logConfigWarnings(log, cfg.agent.configFile);
    return 0;
  }

  const abort = new AbortController();
  const rotator = cfg.rotateCertificates ? new ClientCertRotator({ ...deps, paths, nodeName }) : undefined;
  rotator?.start(abort.signal);
  try {
    // Loaded only now: a join that fails should fail fast, without the whole agent.
    const { runAgent } = await import('../main.ts');
    return await runAgent([...cfg.agentArgs], env);
  } finally {
    abort.abort();
    await rotator?.stop();
  }
}
