// nodelet: one binary, subcommands. This file only wires: it alone reads
// process.env and argv, builds the Docker client and the KubeConfig.
import { flushCompileCache } from 'node:module';
import { describeError } from '../lib/errors.ts';

const usage = `usage: nodelet <command> [flags]

commands:
  agent    run the node agent (kubelet) for one node
  proxy    run the service proxy (kube-proxy) for one node
  join     join a cluster with a bootstrap token, then run the agent
           (--server HOST:PORT --token ID.SECRET --discovery-token-ca-cert-hash sha256:HEX
            [--dir /etc/nodelet] [--bootstrap-only] [agent flags])
  up       bring up a local single-node cluster (--nodes N, --profile up|test)
  down     stop the local cluster and remove everything it made (--profile)
  status   show whether the local cluster is up (--profile)
`;

function flag(argv: string[], name: string, dflt: string): string {
  const i = argv.findIndex((a) => a === `--${name}` || a.startsWith(`--${name}=`));
  if (i < 0) return dflt;
  const a = argv[i]!;
  return a.includes('=') ? a.slice(a.indexOf('=') + 1) : (argv[i + 1] ?? dflt);
}

const LOCAL_FLAGS: Record<string, string[]> = { up: ['nodes', 'profile'], down: ['profile'], status: ['profile'] };

/** For up/down/status: usage on --help, an error for a flag they do not take. Undefined = go on. */
function checkLocalFlags(cmd: string, rest: string[]): number | undefined {
  if (rest.includes('-h') || rest.includes('--help')) {
    process.stdout.write(usage);
    return 0;
  }
  const allowed = LOCAL_FLAGS[cmd] ?? [];
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i]!;
    const name = a.startsWith('--') ? a.slice(2).split('=')[0]! : undefined;
    if (name === undefined || !allowed.includes(name)) {
      process.stderr.write(`nodelet ${cmd}: unexpected argument "${a}" (flags: ${allowed.map((f) => `--${f}`).join(', ')})\n`);
      return 2;
    }
    if (!a.includes('=')) i++; // its value
  }
  return undefined;
}

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (cmd !== undefined && cmd in LOCAL_FLAGS) {
    const early = checkLocalFlags(cmd, rest);
    if (early !== undefined) return early;
  }
  const say = (m: string) => console.log(`[nodelet] ${m}`);
  switch (cmd) {
    case 'agent': {
      const { runAgent } = await import('../agent/main.ts');
      flushCompileCache(); // a killed daemon's next start finds its modules stripped (lib/compilecache.ts)
      // Exit explicitly: idle keep-alive sockets must not hold a stopped agent.
      process.exit(await runAgent(rest, process.env));
    }
    case 'join': {
      const { runJoin } = await import('../agent/join/main.ts');
      flushCompileCache();
      // As agent: exit explicitly once the agent has stopped.
      process.exit(await runJoin(rest, process.env));
    }
    case 'proxy': {
      const { runProxy } = await import('../proxy/main.ts');
      flushCompileCache();
      // Exit explicitly, as agent: open keep-alive sockets must not hold a stopped proxy.
      process.exit(await runProxy(rest, process.env));
    }
    case 'up': {
      const { profileByName } = await import('../cluster/profile.ts');
      const { clusterUp, clusterSummary } = await import('../cluster/up.ts');
      const nodes = Number(flag(rest, 'nodes', '1'));
      if (!Number.isInteger(nodes) || nodes < 1 || nodes > 9) throw new Error(`--nodes must be 1..9, got ${flag(rest, 'nodes', '1')}`);
      const c = await clusterUp(profileByName(flag(rest, 'profile', 'up')), { nodes, log: say });
      console.log(await clusterSummary(c));
      return 0;
    }
    case 'down': {
      const { profileByName } = await import('../cluster/profile.ts');
      const { clusterDown } = await import('../cluster/up.ts');
      await clusterDown(profileByName(flag(rest, 'profile', 'up')), { log: say });
      say('down: done');
      return 0;
    }
    case 'status': {
      const { profileByName } = await import('../cluster/profile.ts');
      const { controlPlaneRunning } = await import('../cluster/controlplane.ts');
      const { leftovers } = await import('../cluster/sandbox.ts');
      const p = profileByName(flag(rest, 'profile', 'up'));
      say(`control plane: ${controlPlaneRunning(p) ? 'running' : 'not running'}`);
      for (const l of await leftovers(p)) say(l);
      return 0;
    }
    case undefined:
    case '-h':
    case '--help':
    case 'help':
      process.stdout.write(usage);
      return cmd ? 0 : 2;
    default:
      process.stderr.write(`nodelet: unknown command "${cmd}"\n${usage}`);
      return 2;
  }
}

// Only as the entry point: lib/compilecache.ts imports this file to cache it.
if (import.meta.main) main(process.argv.slice(2)).then(
  (code) => {
    if (code !== undefined) process.exitCode = code;
  },
  (err: unknown) => {
    // One clear line, never a bare stack trace.
    process.stderr.write(`nodelet: ${describeError(err)}\n`);
    process.exitCode = 1;
  },
);
