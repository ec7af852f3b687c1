// Errors of API-server calls, mapped once: a 409 is API_CONFLICT, everything
// else (HTTP or network) is API_ERROR with the HTTP status when there was one.
// Messages are one line: the operation, the status, the Status reason and message.
import { describeError, NodeletError } from '../errors.ts';

export type ApiErrorCode = 'API_CONFLICT' | 'API_ERROR';

export class ApiError extends NodeletError {
  /** HTTP status, undefined when the server was not reached. */
  readonly status: number | undefined;
  constructor(code: ApiErrorCode, message: string, status: number | undefined, options?: { cause?: unknown }) {
    super(code, message, options);
    this.name = 'ApiError';
    this.status = status;
  }
}

/** HTTP status of a failed API call, if the server answered. */
export function apiStatus(err: unknown): number | undefined {
  return err instanceof ApiError ? err.status : undefined;
}

/** Builds the error for a failed call `op` (e.g. "create node n1"). */
export function apiError(op: string, status: number | undefined, detail: string, cause?: unknown): ApiError {
  const code: ApiErrorCode = status === 409 ? 'API_CONFLICT' : 'API_ERROR';
  const head = status === undefined ? op : `${op}: HTTP ${status}`;
  return new ApiError(code, `${head}: ${oneLine(detail)}`, status, cause === undefined ? undefined : { cause });
}

function oneLine(s: string): string {
  return s.replace(/\s*\n\s*/g, ' ').trim();
}

/** The reason and message of a Kubernetes Status body (JSON text), or the text itself. */
export function statusText(body: string, status: number): string {
  try {
    const s = JSON.parse(body) as { message?: unknown; reason?: unknown };
    const parts = [s.reason, s.message].filter((x): x is string => typeof x === 'string' && x !== '');
    if (parts.length) return parts.join(': ');
  } catch {
    /* not JSON */
  }
  if (body.trim() !== '') return body.trim().slice(0, 500);
  return status === 401 ? 'Unauthorized (check the kubeconfig credentials)' : 'no details';
}

/** Why a request did not reach the server, in one line (causes joined, repeats dropped). */
export function networkText(err: unknown): string {
  const parts: string[] = [];
  let cur: unknown = err;
  for (let depth = 0; cur && depth < 5; depth++) {
    if (cur instanceof AggregateError && cur.message === '') {
      cur = cur.errors[0];
      continue;
    }
    const msg = cur instanceof Error ? cur.message : String(cur);
    if (msg && !parts.some((p) => p.includes(msg))) parts.push(msg);
    cur = cur instanceof Error ? cur.cause : undefined;
  }
  return parts.length ? parts.join(': ') : describeError(err);
}

/** A get that answers undefined for 404. */
export async function getOrUndefined<T>(p: Promise<T>): Promise<T | undefined> {
  try {
    return await p;
  } catch (err) {
    if (apiStatus(err) === 404) return undefined;
    throw err;
  }
}
