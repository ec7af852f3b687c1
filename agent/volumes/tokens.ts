// Service-account tokens for projected volumes, cached and refreshed as
// upstream's token manager (pkg/kubelet/token) does: a token is re-requested
// once 80% of its lifetime has passed or it is older than 24 h (minus a
// jitter of up to 10 s so pods do not refresh in lockstep); a failed refresh
// keeps serving the old token until it actually expires.
import type { Clock } from '../../lib/clock.ts';
import type { IssuedToken, PodObjects, TokenRequest } from '../pod/objects.ts';

const MAX_TTL_MS = 24 * 60 * 60 * 1000;
const MAX_JITTER_MS = 10_000;

interface Cached {
  req: TokenRequest;
  token: IssuedToken;
}

export function tokenKey(req: TokenRequest): string {
  return JSON.stringify([req.namespace, req.serviceAccountName, [...req.audiences].sort(), req.expirationSeconds, req.boundPod.name, req.boundPod.uid]);
}

/** Upstream's requiresRefresh: past 80% of the lifetime or past 24 h since issue. */
export function requiresRefresh(req: TokenRequest, token: IssuedToken, nowMs: number, jitterMs: number): boolean {
  const exp = token.expiresAtMs;
  const iat = exp - req.expirationSeconds * 1000;
  if (nowMs > iat + MAX_TTL_MS - jitterMs) return true;
  return nowMs > exp - (req.expirationSeconds * 1000 * 20) / 100 - jitterMs;
}

export class TokenManager {
  private readonly objects: PodObjects;
  private readonly clock: Clock;
  private readonly random: () => number;
  private readonly cache = new Map<string, Cached>();

  constructor(objects: PodObjects, clock: Clock, random: () => number = Math.random) {
    this.objects = objects;
    this.clock = clock;
    this.random = random;
  }

  async get(req: TokenRequest): Promise<IssuedToken> {
    const key = tokenKey(req);
    const cached = this.cache.get(key);
    const now = this.clock.now();
    if (cached && !requiresRefresh(req, cached.token, now, Math.floor(this.random() * MAX_JITTER_MS))) return cached.token;
    try {
      const token = await this.objects.requestToken(req);
      this.cache.set(key, { req, token });
      return token;
    } catch (err) {
      if (cached && now < cached.token.expiresAtMs) return cached.token;
      throw err;
    }
  }

  /** Drops the tokens bound to a pod that is gone. */
  forgetPod(uid: string): void {
    for (const [k, c] of this.cache) if (c.req.boundPod.uid === uid) this.cache.delete(k);
  }

  /** Drops expired tokens (upstream's periodic cleanup). */
  cleanupExpired(): void {
    const now = this.clock.now();
    for (const [k, c] of this.cache) if (now >= c.token.expiresAtMs) this.cache.delete(k);
  }

  get size(): number {
    return this.cache.size;
  }
}
