// Runs external commands (ip, iptables-restore, openssl, ...). One place, so
// errors carry the command, exit code and stderr, and tests can fake it.
import { spawn } from 'node:child_process';
import { NodeletError } from './errors.ts';

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface ExecOptions {
  input?: string | Buffer;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  timeoutMs?: number;
  /** Do not throw on a non-zero exit; return the result. */
  allowFail?: boolean;
}

export type Exec = (cmd: string, args: readonly string[], opts?: ExecOptions) => Promise<ExecResult>;

export const exec: Exec = (cmd, args, opts = {}) =>
  new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      env: opts.env ?? process.env,
      cwd: opts.cwd,
      stdio: ['pipe', 'pipe', 'pipe'],
      timeout: opts.timeoutMs,
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', (e) =>
      reject(new NodeletError('EXEC_FAILED', `${cmd}: ${e.message}`, { cause: e })),
    );
    child.on('close', (code, signal) => {
      const res = {
        code: code ?? (signal ? 128 : 1),
        stdout: Buffer.concat(out).toString(),
        stderr: Buffer.concat(err).toString(),
      };
      if (res.code !== 0 && !opts.allowFail) {
        const why = res.stderr.trim().split('\n').slice(-3).join(' ') || `exit ${res.code}`;
        reject(new NodeletError('EXEC_FAILED', `${cmd} ${args.join(' ')}: ${why}`.slice(0, 2000)));
      } else resolve(res);
    });
    child.stdin.on('error', () => {}); // EPIPE when the command exits early
    child.stdin.end(opts.input ?? '');
  });
