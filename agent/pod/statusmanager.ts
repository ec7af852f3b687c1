// The status manager: sends a pod's status to the API server only when it
// differs from both what the API last showed and what we last sent (the
// informer may lag behind our own patch). One JSON merge patch per change,
// with the pod's UID as a precondition; keys that disappeared are sent as
// null (a merge patch otherwise keeps them). Times are compared and sent as
// the API stores them: RFC 3339, whole seconds.
import type { V1Pod, V1PodStatus } from '@kubernetes/client-node';
import { errorCode } from '../../lib/errors.ts';
import type { Logger } from '../../lib/log.ts';
import type { PodApi } from './podapi.ts';

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

/** The status as the API would return it: Dates as whole-second RFC 3339, no undefined members. */
export function toApiJson(value: unknown): Json {
  return JSON.parse(
    JSON.stringify(value, function (this: Record<string, unknown>, key: string, v: unknown) {
      const raw = this[key];
      if (raw instanceof Date) return raw.toISOString().replace(/\.\d+Z$/, 'Z');
      if (typeof v === 'string' && /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z$/.test(v)) return v.replace(/\.\d+Z$/, 'Z');
      return v;
    }),
  ) as Json;
}

/** A JSON merge patch turning `from` into `to` at the top level (lists and nested values are replaced whole). */
export function statusPatch(from: Record<string, Json>, to: Record<string, Json>): Record<string, Json> {
  const patch: Record<string, Json> = {};
  for (const k of Object.keys(to)) {
    if (JSON.stringify(from[k]) !== JSON.stringify(to[k])) patch[k] = to[k] ?? null;
  }
  for (const k of Object.keys(from)) if (!(k in to)) patch[k] = null;
  return patch;
}

export class StatusManager {
  private readonly api: PodApi;
  private readonly log: Logger;
  /** What we last sent, by pod UID (canonical JSON text). */
  private readonly sent = new Map<string, string>();

  constructor(deps: { api: PodApi; log: Logger }) {
    this.api = deps.api;
    this.log = deps.log;
  }

  /** Sends `status` for `pod` when it changed. Returns whether a patch went out. */
  async setStatus(pod: V1Pod, status: V1PodStatus): Promise<boolean> {
    const uid = pod.metadata?.uid ?? '';
    const next = toApiJson(status) as Record<string, Json>;
    const text = JSON.stringify(next);
    if (this.sent.get(uid) === text) return false;
    const current = (toApiJson(pod.status ?? {}) ?? {}) as Record<string, Json>;
    const patch = statusPatch(current, next);
    if (Object.keys(patch).length === 0) {
      this.sent.set(uid, text);
      return false;
    }
    const ns = pod.metadata?.namespace ?? 'default';
    const name = pod.metadata?.name ?? '';
    try {
      const found = await this.api.patchPodStatus(ns, name, { metadata: { uid }, status: patch });
      if (found) this.sent.set(uid, text);
      return found;
    } catch (err) {
      // A UID mismatch (the name now belongs to a new pod) is not ours to fix.
      if (errorCode(err) === 'API_CONFLICT') {
        this.log.debug('pod status patch conflict', { pod: `${ns}/${name}`, uid });
        return false;
      }
      throw err;
    }
  }

  /** Forgets a pod (it is gone). */
  forget(uid: string): void {
    this.sent.delete(uid);
  }
}
