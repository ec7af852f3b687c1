// Who may call the kubelet API, as upstream decides it: x509 client
// certificates verified against the cluster CA (user = CN, groups = O), else a
// bearer token checked by TokenReview; nobody else (anonymous is off: 401).
// Authorization asks the API server with a SubjectAccessReview on
// nodes/<subresource> of this node, with upstream's path -> subresource
// mapping; decisions are cached as the kubelet's webhook caches them
// (token 2 min; allowed 5 min, denied 30 s).
import { createHash } from 'node:crypto';
import type { V1SubjectAccessReview, V1TokenReview } from '@kubernetes/client-node';
import type { Clock } from '../../lib/clock.ts';
import type { KubeClient } from '../../lib/kube/client.ts';

export interface UserInfo {
  name: string;
  uid?: string;
  groups: string[];
  extra?: Record<string, string[]>;
}

export interface RequestAttributes {
  verb: string;
  resource: 'nodes';
  subresource: string;
  name: string;
  path: string;
}

export const TOKEN_CACHE_TTL_MS = 2 * 60_000;
export const AUTHORIZED_CACHE_TTL_MS = 5 * 60_000;
export const UNAUTHORIZED_CACHE_TTL_MS = 30_000;

const VERBS: Record<string, string> = { POST: 'create', GET: 'get', HEAD: 'get', PUT: 'update', PATCH: 'patch', DELETE: 'delete' };

/** path is prefix itself or below it ("/stats" and "/stats/summary", not "/statsfoo"). */
export function isSubpath(path: string, prefix: string): boolean {
  const p = prefix.replace(/\/+$/, '');
  return path === p || path.startsWith(p + '/');
}

/**
 * Upstream nodeAuthorizerAttributesGetter with KubeletFineGrainedAuthz (GA,
 * locked on in 1.36+): the attributes to try in order; any allowed one admits.
 */
export function requestAttributes(method: string, path: string, nodeName: string): RequestAttributes[] {
  const verb = VERBS[method.toUpperCase()] ?? '';
  const subs: string[] = [];
  if (isSubpath(path, '/pods') || isSubpath(path, '/runningpods') || isSubpath(path, '/allocatedPods')) subs.push('pods');
  else if (isSubpath(path, '/healthz')) subs.push('healthz');
  else if (isSubpath(path, '/configz')) subs.push('configz');
  if (isSubpath(path, '/stats')) subs.push('stats');
  else if (isSubpath(path, '/metrics')) subs.push('metrics');
  else if (isSubpath(path, '/logs')) subs.push('log');
  else if (isSubpath(path, '/checkpoint')) subs.push('checkpoint');
  else if (isSubpath(path, '/statusz')) subs.push('statusz');
  else if (isSubpath(path, '/flagz')) subs.push('configz');
  else subs.push('proxy');
  return subs.map((subresource) => ({ verb, resource: 'nodes', subresource, name: nodeName, path }));
}

/** A verified client certificate's subject, as the TLS layer reports it. */
export interface PeerCertificate {
  /** The chain verified against the client CA. */
  authorized: boolean;
  cn?: string;
  /** O entries (one string or several). */
  o?: string | string[];
}

export interface TokenReviewResult {
  authenticated: boolean;
  user?: UserInfo;
}

/** The two API calls authn/authz make, behind an interface for tests. */
export interface AuthApi {
  tokenReview(token: string): Promise<TokenReviewResult>;
  subjectAccessReview(user: UserInfo, attrs: RequestAttributes): Promise<{ allowed: boolean; reason?: string }>;
}

export type AuthnResult = { user: UserInfo } | { user?: undefined; error?: string };

export class RequestAuthenticator {
  private readonly api: AuthApi;
  private readonly clock: Clock;
  private readonly cache = new Map<string, { until: number; result: TokenReviewResult }>();

  constructor(api: AuthApi, clock: Clock) {
    this.api = api;
    this.clock = clock;
  }

  /** The caller, or no user (401). A failing TokenReview is an error (also 401, as upstream). */
  async authenticate(req: { cert?: PeerCertificate; authorization?: string }): Promise<AuthnResult> {
    const c = req.cert;
    if (c?.authorized && c.cn) {
      const groups = c.o === undefined ? [] : Array.isArray(c.o) ? c.o : [c.o];
      return { user: { name: c.cn, groups } };
    }
    const m = /^Bearer\s+(\S+)\s*$/i.exec(req.authorization ?? '');
    if (!m) return {};
    const token = m[1]!;
    const key = createHash('sha256').update(token).digest('hex');
    const now = this.clock.now();
    const hit = this.cache.get(key);
    let result: TokenReviewResult;
    if (hit && hit.until > now) result = hit.result;
    else {
      try {
        result = await this.api.tokenReview(token);
      } catch (err) {
        return { error: err instanceof Error ? err.message : String(err) };
      }
      this.cache.set(key, { until: now + TOKEN_CACHE_TTL_MS, result });
      this.prune(now);
    }
    return result.authenticated && result.user ? { user: result.user } : {};
  }

  private prune(now: number): void {
    if (this.cache.size < 1000) return;
    for (const [k, v] of this.cache) if (v.until <= now) this.cache.delete(k);
  }
}

export type AuthzResult = { allowed: true } | { allowed: false; error?: string; subresources: string[] };

export class RequestAuthorizer {
  private readonly api: AuthApi;
  private readonly clock: Clock;
  private readonly cache = new Map<string, { until: number; allowed: boolean }>();

  constructor(api: AuthApi, clock: Clock) {
    this.api = api;
    this.clock = clock;
  }

  async authorize(user: UserInfo, attrs: RequestAttributes[]): Promise<AuthzResult> {
    for (const a of attrs) {
      const key = JSON.stringify([user.name, user.uid ?? '', [...user.groups].sort(), user.extra ?? {}, a.verb, a.subresource, a.name]);
      const now = this.clock.now();
      const hit = this.cache.get(key);
      let allowed: boolean;
      if (hit && hit.until > now) allowed = hit.allowed;
      else {
        try {
          allowed = (await this.api.subjectAccessReview(user, a)).allowed;
        } catch (err) {
          return { allowed: false, error: err instanceof Error ? err.message : String(err), subresources: attrs.map((x) => x.subresource) };
        }
        this.cache.set(key, { until: now + (allowed ? AUTHORIZED_CACHE_TTL_MS : UNAUTHORIZED_CACHE_TTL_MS), allowed });
        if (this.cache.size > 5000) for (const [k, v] of this.cache) if (v.until <= now) this.cache.delete(k);
      }
      if (allowed) return { allowed: true };
    }
    return { allowed: false, subresources: attrs.map((x) => x.subresource) };
  }
}

/** Upstream's 403 body: "Forbidden (user=..., verb=..., resource=..., subresource(s)=[...])". */
export function forbiddenMessage(user: UserInfo, attrs: RequestAttributes[]): string {
  const a = attrs[0];
  return `Forbidden (user=${user.name}, verb=${a?.verb ?? ''}, resource=nodes, subresource(s)=[${attrs.map((x) => x.subresource).join(' ')}])\n`;
}

/** TokenReview and SubjectAccessReview through the node's own credentials. */
export class KubeAuthApi implements AuthApi {
  private readonly c: KubeClient;

  constructor(client: KubeClient) {
    this.c = client;
  }

  async tokenReview(token: string): Promise<TokenReviewResult> {
    const body: V1TokenReview = { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token } };
    const r = await this.c.request<V1TokenReview>('create tokenreview', 'POST', '/apis/authentication.k8s.io/v1/tokenreviews', { body });
    const st = r.status;
    if (!st?.authenticated || !st.user?.username) return { authenticated: false };
    return {
      authenticated: true,
      user: { name: st.user.username, uid: st.user.uid, groups: st.user.groups ?? [], extra: st.user.extra },
    };
  }

  async subjectAccessReview(user: UserInfo, a: RequestAttributes): Promise<{ allowed: boolean; reason?: string }> {
    const body: V1SubjectAccessReview = {
      apiVersion: 'authorization.k8s.io/v1',
      kind: 'SubjectAccessReview',
      spec: {
        user: user.name,
        uid: user.uid,
        groups: user.groups,
        extra: user.extra,
        resourceAttributes: { verb: a.verb, resource: a.resource, subresource: a.subresource, name: a.name, group: '', version: 'v1' },
      },
    };
    const r = await this.c.request<V1SubjectAccessReview>('create subjectaccessreview', 'POST', '/apis/authorization.k8s.io/v1/subjectaccessreviews', { body });
    return { allowed: r.status?.allowed === true, reason: r.status?.reason };
  }
}
