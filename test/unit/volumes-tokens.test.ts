import { expect } from 'chai';
import type { TokenRequest } from '../../agent/pod/objects.ts';
import { requiresRefresh, TokenManager } from '../../agent/volumes/tokens.ts';
import { FakeClock } from '../fakes/clock.ts';
import { FakePodObjects } from '../fakes/podobjects.ts';

const req = (expirationSeconds: number, uid = 'u1'): TokenRequest => ({
  namespace: 'ns1',
  serviceAccountName: 'default',
  audiences: [],
  expirationSeconds,
  boundPod: { name: 'web', uid },
});

describe('volumes: token refresh rule (upstream requiresRefresh)', () => {
  const issued = 1_000_000;
  const hour = req(3600);
  const tok = { token: 't', expiresAtMs: issued + 3600_000 };
  const cases: [string, number, number, boolean][] = [
    ['fresh', issued, 0, false],
    ['just before 80% of the lifetime', issued + 2880_000, 0, false],
    ['past 80% of the lifetime', issued + 2880_001, 0, true],
    ['jitter brings the refresh earlier', issued + 2875_000, 10_000, true],
  ];
  for (const [name, now, jitter, want] of cases) it(name, () => expect(requiresRefresh(hour, tok, now, jitter)).to.equal(want));
  it('a long-lived token is refreshed after 24 h', () => {
    const week = req(7 * 24 * 3600);
    const t = { token: 't', expiresAtMs: issued + 7 * 24 * 3600_000 };
    expect(requiresRefresh(week, t, issued + 24 * 3600_000 - 1, 0)).to.equal(false);
    expect(requiresRefresh(week, t, issued + 24 * 3600_000 + 1, 0)).to.equal(true);
  });
});

describe('volumes: TokenManager', () => {
  let clock: FakeClock;
  let objects: FakePodObjects;
  let tm: TokenManager;
  beforeEach(() => {
    clock = new FakeClock();
    objects = new FakePodObjects(clock);
    tm = new TokenManager(objects, clock, () => 0);
  });

  it('serves the cached token until 80% of its lifetime, then requests a new one', async () => {
    const a = await tm.get(req(3600));
    expect((await tm.get(req(3600))).token).to.equal(a.token);
    expect(objects.tokenRequests).to.have.length(1);
    await clock.advance(2880_000 + 1);
    const b = await tm.get(req(3600));
    expect(b.token).to.not.equal(a.token);
    expect(objects.tokenRequests).to.have.length(2);
  });

  it('keys tokens by request: another pod or audience gets its own', async () => {
    await tm.get(req(3600, 'u1'));
    await tm.get(req(3600, 'u2'));
    await tm.get({ ...req(3600, 'u1'), audiences: ['vault'] });
    expect(objects.tokenRequests).to.have.length(3);
    expect(tm.size).to.equal(3);
  });

  it('a failed refresh keeps the old token until it expires', async () => {
    const a = await tm.get(req(3600));
    await clock.advance(3000_000);
    objects.failWith = new Error('apiserver down');
    expect((await tm.get(req(3600))).token).to.equal(a.token);
    await clock.advance(700_000);
    let err: unknown;
    try {
      await tm.get(req(3600));
    } catch (e) {
      err = e;
    }
    expect((err as Error).message).to.equal('apiserver down');
  });

  it('forgets the tokens of a removed pod, and expired ones', async () => {
    await tm.get(req(3600, 'u1'));
    await tm.get(req(600, 'u2'));
    tm.forgetPod('u1');
    expect(tm.size).to.equal(1);
    await clock.advance(600_000);
    tm.cleanupExpired();
    expect(tm.size).to.equal(0);
  });
});
