// ProxyTrafficGate against a fake fetch and a FakeClock.
import { expect } from 'chai';
import { nullLogger } from '../../lib/log.ts';
import { ProxyTrafficGate } from '../../agent/pod/trafficgate.ts';
import { FakeClock } from '../fakes/clock.ts';

function gate(answer: (ip: string, n: number) => Response | Error) {
  const clock = new FakeClock();
  const asked: string[] = [];
  const f = (async (url: string | URL | Request) => {
    const ip = new URL(String(url)).searchParams.get('ip') ?? '';
    asked.push(ip);
    const a = answer(ip, asked.length);
    if (a instanceof Error) throw a;
    return a;
  }) as typeof fetch;
  // Time moves while the gate sleeps: every sleep is taken in full at once.
  const realSleep = clock.sleep.bind(clock);
  clock.sleep = (ms: number, signal?: AbortSignal) => {
    const p = realSleep(ms, signal);
    void clock.advance(ms);
    return p;
  };
  return { g: new ProxyTrafficGate({ baseURL: 'http://127.0.0.1:10256', clock, log: nullLogger(), fetch: f, pollMs: 100 }), asked, clock };
}

const json = (body: unknown, status = 200) => new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } });

describe('agent ProxyTrafficGate', () => {
  it('asks until every IP is unrouted', async () => {
    const { g, asked } = gate((ip, n) => json({ ip, synced: true, routed: n < 4 }));
    expect(await g.waitUnrouted(['10.244.1.5'], 5000)).to.equal('unrouted');
    expect(asked).to.deep.equal(['10.244.1.5', '10.244.1.5', '10.244.1.5', '10.244.1.5']);
  });

  it('gives up at the bound while still routed', async () => {
    const { g, clock } = gate((ip) => json({ ip, synced: true, routed: true }));
    const t0 = clock.now();
    expect(await g.waitUnrouted(['10.244.1.5'], 1000)).to.equal('timeout');
    expect(clock.now() - t0).to.equal(1000);
  });

  it('is unknown at once when no nodelet proxy answers, or it has not synced (503)', async () => {
    expect(await gate(() => new TypeError('fetch failed')).g.waitUnrouted(['10.244.1.5'], 5000)).to.equal('unknown');
    expect(await gate((ip) => json({ ip, synced: false }, 503)).g.waitUnrouted(['10.244.1.5'], 5000)).to.equal('unknown');
    expect(await gate(() => new Response('404 page not found', { status: 404 })).g.waitUnrouted(['10.244.1.5'], 5000)).to.equal('unknown');
  });

  it('waits for each of a dual-stack pod\'s IPs, asking again only for those still routed', async () => {
    const { g, asked } = gate((ip, n) => json({ ip, synced: true, routed: ip === 'fd00::5' && n < 4 }));
    expect(await g.waitUnrouted(['10.244.1.5', 'fd00::5'], 5000)).to.equal('unrouted');
    expect(asked).to.deep.equal(['10.244.1.5', 'fd00::5', 'fd00::5', 'fd00::5']);
  });
});
