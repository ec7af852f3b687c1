// `nodelet join` flags: its own (kubeadm join's names), and the rest, which go
// to the agent unchanged. --node-name is both: it names the certificate and the
// Node. The agent's flags are validated before anything touches the network,
// so a typo fails before a token is spent.
import path from 'node:path';
import { parseAgentFlags, parseDuration, type AgentConfig, type HostProbe, realHost } from '../config.ts';
import { NodeletError } from '../../lib/errors.ts';
import { type BootstrapToken, parseBootstrapToken, parseCAHashes } from './discovery.ts';
import { normalizeServer } from './http.ts';

/** How to join; absent when the node runs on credentials an earlier join wrote (the systemd unit). */
export interface JoinTarget {
  readonly server: string;
  readonly token: BootstrapToken;
  readonly caHashes: readonly string[];
}

export interface JoinConfig {
  readonly target?: JoinTarget;
  /** Where the kubeconfig and the client certificate go. */
  readonly dir: string;
  readonly discoveryTimeoutMs: number;
  /** Write the credentials and exit, leaving the agent to systemd. */
  readonly bootstrapOnly: boolean;
  readonly rotateCertificates: boolean;
  /** Arguments for `nodelet agent`, including --kubeconfig <dir>/kubeconfig. */
  readonly agentArgs: readonly string[];
  readonly agent: AgentConfig;
}

export const JOIN_DEFAULTS = Object.freeze({ dir: '/etc/nodelet', discoveryTimeoutMs: 5 * 60_000 });

const OWN = new Set(['server', 'token', 'discovery-token-ca-cert-hash', 'dir', 'discovery-timeout', 'bootstrap-only', 'rotate-certificates']);
const BOOLEAN = new Set(['bootstrap-only', 'rotate-certificates']);

const bad = (flag: string, why: string) => new NodeletError('JOIN_INVALID_FLAG', `--${flag}: ${why}`);

function parseBool(flag: string, v: string): boolean {
  if (v === 'true') return true;
  if (v === 'false') return false;
  throw bad(flag, `'${v}' is not true or false`);
}

export function parseJoinFlags(argv: readonly string[], host: HostProbe = realHost): JoinConfig {
  const own = new Map<string, string>();
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const m = /^--?([^=]+)(?:=(.*))?$/s.exec(a);
    const name = m?.[1];
    if (!m || name === undefined || !OWN.has(name)) {
      rest.push(a);
      // The agent parser checks the rest; keep a value that follows its flag.
      if (m && m[2] === undefined && argv[i + 1] !== undefined && !argv[i + 1]!.startsWith('--')) rest.push(argv[++i]!);
      continue;
    }
    let v = m[2];
    if (v === undefined) {
      if (BOOLEAN.has(name)) v = 'true';
      else {
        const next = argv[i + 1];
        if (next === undefined || next.startsWith('--')) throw bad(name, 'needs a value');
        v = next;
        i++;
      }
    }
    own.set(name, v);
  }
  const server = own.get('server');
  const token = own.get('token');
  const hashes = own.get('discovery-token-ca-cert-hash');
  // All three or none: none runs on the credentials already under --dir.
  const anyTarget = server !== undefined || token !== undefined || hashes !== undefined;
  if (anyTarget && server === undefined) throw bad('server', 'is required (HOST:PORT of the API server)');
  if (anyTarget && token === undefined) throw bad('token', 'is required (ID.SECRET of a bootstrap token)');
  if (anyTarget && hashes === undefined) throw bad('discovery-token-ca-cert-hash', 'is required (sha256:<hex>; `nodelet up` prints it)');
  const dir = own.get('dir') ?? JOIN_DEFAULTS.dir;
  if (!path.isAbsolute(dir)) throw bad('dir', `'${dir}' is not an absolute path`);
  let discoveryTimeoutMs = JOIN_DEFAULTS.discoveryTimeoutMs;
  const dt = own.get('discovery-timeout');
  if (dt !== undefined) {
    try {
      discoveryTimeoutMs = parseDuration(dt);
    } catch (err) {
      throw bad('discovery-timeout', (err as Error).message);
    }
  }
  if (rest.some((a) => /^--?kubeconfig(=|$)/.test(a))) {
    throw bad('kubeconfig', `join writes the kubeconfig itself (${path.join(dir, 'kubeconfig')}); leave it out`);
  }
  const agentArgs = [...rest, '--kubeconfig', path.join(path.resolve(dir), 'kubeconfig')];
  return Object.freeze({
    ...(server !== undefined && token !== undefined && hashes !== undefined
      ? { target: Object.freeze({ server: normalizeServer(server), token: parseBootstrapToken(token), caHashes: Object.freeze(parseCAHashes(hashes)) }) }
      : {}),
    dir: path.resolve(dir),
    discoveryTimeoutMs,
    bootstrapOnly: parseBool('bootstrap-only', own.get('bootstrap-only') ?? 'false'),
    rotateCertificates: parseBool('rotate-certificates', own.get('rotate-certificates') ?? 'true'),
    agentArgs: Object.freeze(agentArgs),
    agent: parseAgentFlags(agentArgs, host),
  });
}
