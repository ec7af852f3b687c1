// Errors carry a stable `code` (callers and tests branch on it, never on the
// message) and the underlying `cause`. Log once, where the error is handled.
export class NodeletError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'NodeletError';
    this.code = code;
  }
}

export function errorCode(err: unknown): string | undefined {
  return err instanceof NodeletError ? err.code : (err as { code?: string } | undefined)?.code;
}

/** One line for humans: the first line of the message, then of each cause's. */
export function describeError(err: unknown): string {
  const parts: string[] = [];
  let cur: unknown = err;
  for (let depth = 0; cur !== undefined && cur !== null && depth < 5; depth++) {
    const msg = (cur instanceof Error ? cur.message : String(cur)).split('\n')[0]!.trim();
    if (msg && !parts.some((p) => p.includes(msg))) parts.push(msg);
    cur = cur instanceof Error ? cur.cause : undefined;
  }
  return parts.join(': ');
}
