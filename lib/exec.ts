// Runs external commands (ip, iptables-restore, openssl, ...). One place, so
// errors carry the command, exit code and stderr, and tests can fake it.
import { spawn } from 'node:child_process';
import type { Writable } from 'node:stream';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { NodeletError } from './errors.ts';
import { drained } from './streams.ts';

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface ExecOptions {
  /**
   * stdin. Pieces (an iterable of strings) are written as they are made,
   * with the event loop let run between them, so the command reads the first
   * while the next are still being made.
   */
  input?: string | Buffer | Iterable<string>;
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
    const input = opts.input ?? '';
    if (typeof input === 'string' || Buffer.isBuffer(input)) child.stdin.end(input);
    else feed(child.stdin, input).catch((e: unknown) => child.stdin.destroy(e as Error));
  });

/** Bytes queued in our stdin buffer before a piece waits for the command to read. */
const FEED_AHEAD = 4 * 1024 * 1024;

async function feed(stdin: Writable, pieces: Iterable<string>): Promise<void> {
  for (const piece of pieces) {
    if (stdin.destroyed) return; // the command went away: the rest would go nowhere
    stdin.write(piece);
    // Let libuv hand what is queued to the pipe; wait only when far ahead of the reader.
    if (stdin.writableLength > FEED_AHEAD) await drained(stdin);
    else await yieldToLoop();
  }
  stdin.end();
}

/** The whole of an ExecOptions.input as text (for fakes that record what a command was fed). */
export function inputText(input: ExecOptions['input']): string {
  if (input === undefined) return '';
  if (typeof input === 'string' || Buffer.isBuffer(input)) return input.toString();
  return [...input].join('');
}
