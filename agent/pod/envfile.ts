// Env files for env[].valueFrom.fileKeyRef (EnvFiles, beta and on by default
// since 1.35), read as upstream's pkg/kubelet/util/env ParseEnv: a strict
// subset of shell syntax where every value is in single quotes.
import { readFile, realpath } from 'node:fs/promises';
import path from 'node:path';

/**
 * The value of `key` in env-file text; undefined when the key is absent.
 * Throws on malformed text (the first problem, with its line number).
 * Format: NAME='value' (may span lines, no escapes), an optional "# comment"
 * after the closing quote, blank lines and "#" lines ignored, leading
 * whitespace ignored, no whitespace before "="; whitespace right after "="
 * makes the value empty (as a shell would).
 */
export function parseEnvFile(text: string, key: string): string | undefined {
  // Lines as Go's bufio.ScanLines: split on \n, drop one trailing \r, no
  // empty last line after a final newline.
  const lines = text.split('\n').map((l) => (l.endsWith('\r') ? l.slice(0, -1) : l));
  if (text.endsWith('\n')) lines.pop();
  for (let i = 0; i < lines.length; i++) {
    const lineNum = i + 1;
    const line = lines[i]!.replace(/^[ \t]+/, '');
    if (line === '' || line.startsWith('#')) continue;
    const eq = line.indexOf('=');
    if (eq < 0) throw new Error(`invalid environment variable format at line ${lineNum}: missing '='`);
    const namePart = line.slice(0, eq);
    const name = namePart.replace(/[ \t]+$/, '');
    if (name === '') throw new Error(`invalid environment variable format at line ${lineNum}: empty variable name`);
    if (name !== namePart) throw new Error(`invalid environment variable format at line ${lineNum}: whitespace before '=' is not allowed`);
    const valuePart = line.slice(eq + 1);
    const trimmed = valuePart.replace(/^[ \t]+/, '');
    if (trimmed !== valuePart) {
      if (name === key) return '';
      continue;
    }
    if (!trimmed.startsWith("'")) throw new Error(`invalid environment variable format at line ${lineNum}: value must be enclosed in single quotes`);
    let rest = trimmed.slice(1);
    let value = '';
    const start = lineNum;
    for (;;) {
      const close = rest.indexOf("'");
      if (close >= 0) {
        value += rest.slice(0, close);
        const after = rest.slice(close + 1).replace(/^[ \t]+/, '');
        if (after !== '' && !after.startsWith('#')) {
          throw new Error(`invalid environment variable format at line ${i + 1}: unexpected content after closing quote`);
        }
        if (name === key) return value;
        break;
      }
      value += rest + '\n';
      i++;
      if (i >= lines.length) throw new Error(`invalid environment variable format starting at line ${start}: unclosed single quote`);
      rest = lines[i]!;
    }
  }
  return undefined;
}

/**
 * `rel` inside `root`, refusing anything whose real path (symlinks resolved)
 * leaves the root: a pod could otherwise point a symlink in its own volume at
 * a node file. Both must exist.
 */
export async function resolveInside(root: string, rel: string): Promise<string> {
  const realRoot = await realpath(root);
  const real = await realpath(path.join(realRoot, rel));
  if (real !== realRoot && !real.startsWith(realRoot + path.sep)) throw new Error(`${rel} is outside the volume`);
  return real;
}

/** Reads `key` from the env file at `rel` inside the volume directory `root`. */
export async function readEnvFileKey(root: string, rel: string, key: string): Promise<string | undefined> {
  const file = await resolveInside(root, rel);
  return parseEnvFile(await readFile(file, 'utf8'), key);
}
