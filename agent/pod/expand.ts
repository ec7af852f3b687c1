// $(VAR) expansion as upstream's third_party/forked/golang/expansion: "$$" is
// an escaped "$", "$(NAME)" is replaced when NAME is known and kept literally
// otherwise, an unterminated "$(" and a "$" before anything else stay as they
// are. Used for env values, command, args and volume subPathExpr.
import type { V1Container } from '@kubernetes/client-node';
import { NodeletError } from '../../lib/errors.ts';

/** The waiting reason for a container whose config cannot be built (env, command, mounts); the message is upstream's. */
export const CREATE_CONTAINER_CONFIG_ERROR = 'CreateContainerConfigError';

export interface EnvVar {
  key: string;
  value: string;
}

/** Expands every $(NAME) in `input`; `mapping` returns undefined for an unknown name. */
export function expand(input: string, mapping: (name: string) => string | undefined): string {
  let out = '';
  let checkpoint = 0;
  for (let cursor = 0; cursor < input.length; cursor++) {
    if (input[cursor] !== '$' || cursor + 1 >= input.length) continue;
    out += input.slice(checkpoint, cursor);
    const next = input[cursor + 1];
    if (next === '$') {
      // Escaped operator: one "$", both characters consumed.
      out += '$';
      cursor += 1;
    } else if (next === '(') {
      const close = input.indexOf(')', cursor + 2);
      if (close < 0) {
        // Unterminated: keep "$(" and go on scanning after it.
        out += '$(';
        cursor += 1;
      } else {
        const name = input.slice(cursor + 2, close);
        out += mapping(name) ?? `$(${name})`;
        cursor = close;
      }
    } else {
      // "$" before anything else is literal; the next character is copied
      // as is (so "$$(" after it is not re-read as an escape).
      const cp = input.codePointAt(cursor + 1)!;
      const ch = String.fromCodePoint(cp);
      out += '$' + ch;
      cursor += ch.length;
    }
    checkpoint = cursor + 1;
  }
  return out + input.slice(checkpoint);
}

/** A mapping over `env` where a later duplicate key wins (as a Go map built in order). */
export function envMapping(env: readonly EnvVar[]): (name: string) => string | undefined {
  const m = new Map<string, string>();
  for (const e of env) m.set(e.key, e.value);
  return (name) => m.get(name);
}

/** The container's command and args with $(VAR) expanded against its final environment. */
export function expandContainerCommandAndArgs(
  container: V1Container,
  env: readonly EnvVar[],
): { command: string[]; args: string[] } {
  const mapping = envMapping(env);
  return {
    command: (container.command ?? []).map((c) => expand(c, mapping)),
    args: (container.args ?? []).map((a) => expand(a, mapping)),
  };
}

/**
 * A volume mount's subPathExpr expanded as upstream's ExpandContainerVolumeMounts:
 * a reference to an unknown or empty variable is an error naming every such
 * variable (sorted), since a silently wrong subpath would mount the wrong data.
 */
export function expandSubPathExpr(subPathExpr: string, env: readonly EnvVar[]): string {
  const mapping = envMapping(env);
  const missing = new Set<string>();
  const out = expand(subPathExpr, (name) => {
    const v = mapping(name);
    if (v === undefined || v === '') missing.add(name);
    return v ?? '';
  });
  if (missing.size > 0) {
    throw new NodeletError(CREATE_CONTAINER_CONFIG_ERROR, `missing value for ${[...missing].sort().join(', ')}`);
  }
  return out;
}
