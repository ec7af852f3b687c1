// Authentication and authorization decisions of the kubelet API: upstream's
// path -> nodes/<subresource> mapping, x509 before tokens, and the caches.
import { expect } from 'chai';
import {
  AUTHORIZED_CACHE_TTL_MS,
  forbiddenMessage,
  isSubpath,
  requestAttributes,
  RequestAuthenticator,
  RequestAuthorizer,
  TOKEN_CACHE_TTL_MS,
  UNAUTHORIZED_CACHE_TTL_MS,
  type AuthApi,
  type RequestAttributes,
  type UserInfo,
} from '../../agent/server/auth.ts';
import { FakeClock } from '../fakes/clock.ts';

class CountingApi implements AuthApi {
  tokenCalls = 0;
  sarCalls: string[] = [];
  allow = new Set<string>();
  users = new Map<string, UserInfo>();
  failTokens = false;
  async tokenReview(token: string) {
    this.tokenCalls++;
    if (this.failTokens) throw new Error('apiserver unreachable');
    const user = this.users.get(token);
    return user ? { authenticated: true, user } : { authenticated: false };
  }
  async subjectAccessReview(user: UserInfo, a: RequestAttributes) {
    this.sarCalls.push(`${user.name}:${a.verb}:${a.subresource}`);
    return { allowed: this.allow.has(`${user.name}:${a.subresource}`) };
  }
}

describe('server/auth', () => {
  describe('requestAttributes (upstream mapping, fine-grained authz)', () => {
    const cases: Array<[string, string, string, string[]]> = [
      ['GET', '/pods', 'get', ['pods', 'proxy']],
      ['GET', '/pods/', 'get', ['pods', 'proxy']],
      ['GET', '/runningpods/', 'get', ['pods', 'proxy']],
      ['GET', '/healthz', 'get', ['healthz', 'proxy']],
      ['GET', '/healthz/ping', 'get', ['healthz', 'proxy']],
      ['GET', '/configz', 'get', ['configz', 'proxy']],
      ['GET', '/stats/summary', 'get', ['stats']],
      ['GET', '/metrics', 'get', ['metrics']],
      ['GET', '/metrics/resource', 'get', ['metrics']],
      ['GET', '/logs/messages', 'get', ['log']],
      ['GET', '/containerLogs/ns/p/c', 'get', ['proxy']],
      ['POST', '/exec/ns/p/c', 'create', ['proxy']],
      ['GET', '/exec/ns/p/c', 'get', ['proxy']],
      ['POST', '/portForward/ns/p', 'create', ['proxy']],
      ['PUT', '/x', 'update', ['proxy']],
      ['PATCH', '/x', 'patch', ['proxy']],
      ['DELETE', '/x', 'delete', ['proxy']],
      ['GET', '/podsx', 'get', ['proxy']],
      ['GET', '/statsfoo', 'get', ['proxy']],
    ];
    for (const [method, path, verb, subs] of cases) {
      it(`${method} ${path} -> ${verb} nodes/${subs.join(',')}`, () => {
        const attrs = requestAttributes(method, path, 'n1');
        expect(attrs.map((a) => a.subresource)).to.deep.equal(subs);
        for (const a of attrs) expect(a).to.include({ verb, resource: 'nodes', name: 'n1', path });
      });
    }

    it('isSubpath needs a segment boundary', () => {
      expect(isSubpath('/stats', '/stats/')).to.equal(true);
      expect(isSubpath('/stats/summary', '/stats')).to.equal(true);
      expect(isSubpath('/statsx', '/stats')).to.equal(false);
    });
  });

  describe('RequestAuthenticator', () => {
    it('takes a verified client certificate: user = CN, groups = O', async () => {
      const api = new CountingApi();
      const a = new RequestAuthenticator(api, new FakeClock());
      expect(await a.authenticate({ cert: { authorized: true, cn: 'kube-apiserver-kubelet-client', o: 'system:masters' } })).to.deep.equal({
        user: { name: 'kube-apiserver-kubelet-client', groups: ['system:masters'] },
      });
      expect(await a.authenticate({ cert: { authorized: true, cn: 'x', o: ['a', 'b'] } })).to.deep.equal({ user: { name: 'x', groups: ['a', 'b'] } });
      expect(api.tokenCalls).to.equal(0);
    });

    it('falls back to the bearer token when the certificate did not verify', async () => {
      const api = new CountingApi();
      api.users.set('tok', { name: 'alice', groups: ['g'] });
      const a = new RequestAuthenticator(api, new FakeClock());
      const r = await a.authenticate({ cert: { authorized: false, cn: 'mallory' }, authorization: 'Bearer tok' });
      expect(r).to.deep.equal({ user: { name: 'alice', groups: ['g'] } });
    });

    it('has no user without credentials, with a malformed header, or a rejected token', async () => {
      const api = new CountingApi();
      const a = new RequestAuthenticator(api, new FakeClock());
      expect(await a.authenticate({})).to.deep.equal({});
      expect(await a.authenticate({ authorization: 'Basic abc' })).to.deep.equal({});
      expect(await a.authenticate({ authorization: 'Bearer bad' })).to.deep.equal({});
    });

    it('reports a TokenReview failure as an error (still no user) and does not cache it', async () => {
      const api = new CountingApi();
      api.failTokens = true;
      const a = new RequestAuthenticator(api, new FakeClock());
      const r = await a.authenticate({ authorization: 'Bearer t' });
      expect(r.user).to.equal(undefined);
      expect((r as { error?: string }).error).to.equal('apiserver unreachable');
      api.failTokens = false;
      await a.authenticate({ authorization: 'Bearer t' });
      expect(api.tokenCalls).to.equal(2);
    });

    it('caches token reviews for 2 minutes', async () => {
      const api = new CountingApi();
      api.users.set('tok', { name: 'alice', groups: [] });
      const clock = new FakeClock();
      const a = new RequestAuthenticator(api, clock);
      await a.authenticate({ authorization: 'Bearer tok' });
      await a.authenticate({ authorization: 'Bearer tok' });
      expect(api.tokenCalls).to.equal(1);
      await clock.advance(TOKEN_CACHE_TTL_MS);
      await a.authenticate({ authorization: 'Bearer tok' });
      expect(api.tokenCalls).to.equal(2);
    });
  });

  describe('RequestAuthorizer', () => {
    const alice: UserInfo = { name: 'alice', groups: ['devs'] };

    it('allows when any attribute is allowed, trying them in order', async () => {
      const api = new CountingApi();
      api.allow.add('alice:proxy');
      const z = new RequestAuthorizer(api, new FakeClock());
      expect(await z.authorize(alice, requestAttributes('GET', '/pods', 'n1'))).to.deep.equal({ allowed: true });
      expect(api.sarCalls).to.deep.equal(['alice:get:pods', 'alice:get:proxy']);
    });

    it('denies with the subresources tried', async () => {
      const z = new RequestAuthorizer(new CountingApi(), new FakeClock());
      const attrs = requestAttributes('GET', '/pods', 'n1');
      expect(await z.authorize(alice, attrs)).to.deep.equal({ allowed: false, subresources: ['pods', 'proxy'] });
      expect(forbiddenMessage(alice, attrs)).to.equal('Forbidden (user=alice, verb=get, resource=nodes, subresource(s)=[pods proxy])\n');
    });

    it('caches allowed decisions 5 minutes and denied ones 30 seconds', async () => {
      const api = new CountingApi();
      const clock = new FakeClock();
      const z = new RequestAuthorizer(api, clock);
      const stats = requestAttributes('GET', '/stats/summary', 'n1');
      await z.authorize(alice, stats);
      api.allow.add('alice:stats');
      expect((await z.authorize(alice, stats)).allowed).to.equal(false); // cached denial
      await clock.advance(UNAUTHORIZED_CACHE_TTL_MS);
      expect((await z.authorize(alice, stats)).allowed).to.equal(true);
      api.allow.delete('alice:stats');
      await clock.advance(AUTHORIZED_CACHE_TTL_MS - 1);
      expect((await z.authorize(alice, stats)).allowed).to.equal(true); // cached allow
      await clock.advance(1);
      expect((await z.authorize(alice, stats)).allowed).to.equal(false);
      expect(api.sarCalls).to.have.length(3);
    });

    it('keys the cache by user, groups and attributes', async () => {
      const api = new CountingApi();
      const z = new RequestAuthorizer(api, new FakeClock());
      const m = requestAttributes('GET', '/metrics', 'n1');
      await z.authorize(alice, m);
      await z.authorize({ name: 'alice', groups: ['admins'] }, m);
      await z.authorize(alice, requestAttributes('POST', '/metrics', 'n1'));
      expect(api.sarCalls).to.deep.equal(['alice:get:metrics', 'alice:get:metrics', 'alice:create:metrics']);
    });

    it('turns a failing review into an error result', async () => {
      const api = new CountingApi();
      api.subjectAccessReview = async () => {
        throw new Error('boom');
      };
      const z = new RequestAuthorizer(api, new FakeClock());
      expect(await z.authorize(alice, requestAttributes('GET', '/metrics', 'n1'))).to.deep.equal({ allowed: false, error: 'boom', subresources: ['metrics'] });
    });
  });
});
