// --nodeport-addresses primary: the Node object's primary IPv4 address,
// asked for until the node is registered (30 s), else 127.0.0.1.
// Addresses: TEST-NET ranges (RFC 5737) and documentation IPv6 (RFC 3849).
import { expect } from 'chai';
import type { V1Node } from '@kubernetes/client-node';
import { nullLogger } from '../../lib/log.ts';
import { detectPrimaryFamily, LOOPBACK, nodeHostIPs, primaryIP, primaryNodeIPs, type NodeGetter } from '../../proxy/nodeip.ts';
import { FakeClock, settle } from '../fakes/clock.ts';

const node = (...addresses: Array<[string, string]>): V1Node => ({ metadata: { name: 'n1' }, status: { addresses: addresses.map(([type, address]) => ({ type, address })) } });

describe('proxy --nodeport-addresses primary', () => {
  it('takes the first IPv4 InternalIP, else the first IPv4 ExternalIP', () => {
    expect(primaryIP(node(['Hostname', 'n1'], ['ExternalIP', '198.51.100.7'], ['InternalIP', '2001:db8::5'], ['InternalIP', '192.0.2.5'], ['InternalIP', '192.0.2.6']))).to.equal('192.0.2.5');
    expect(primaryIP(node(['ExternalIP', '198.51.100.7']))).to.equal('198.51.100.7');
    expect(primaryIP(node(['Hostname', 'n1'], ['InternalIP', '2001:db8::5']))).to.equal(undefined);
    expect(primaryIP(node(['Hostname', 'n1'], ['InternalIP', '2001:db8::5'], ['InternalIP', '192.0.2.5']), 'IPv6')).to.equal('2001:db8::5');
    expect(primaryIP(undefined)).to.equal(undefined);
  });

  it('asks again until the node is registered with an address', async () => {
    const clock = new FakeClock();
    const answers: Array<V1Node | undefined | Error> = [undefined, new Error('connection refused'), node(['Hostname', 'n1']), node(['InternalIP', '192.0.2.5'])];
    let asked = 0;
    const get: NodeGetter = async (name) => {
      expect(name).to.equal('n1');
      const a = answers[asked++];
      if (a instanceof Error) throw a;
      return a;
    };
    const got = primaryNodeIPs(get, 'n1', ['IPv4'], clock, nullLogger()).then((m) => m.get('IPv4'));
    for (let i = 0; i < 3; i++) {
      await settle(5);
      await clock.advance(1000);
    }
    expect(await got).to.equal('192.0.2.5');
    expect(asked).to.equal(4);
  });

  it('falls back to 127.0.0.1 after 30 s without one (as upstream)', async () => {
    const clock = new FakeClock();
    let asked = 0;
    const got = primaryNodeIPs(async () => (asked++, undefined), 'n1', ['IPv4'], clock, nullLogger()).then((m) => m.get('IPv4'));
    for (let i = 0; i < 31; i++) {
      await settle(5);
      await clock.advance(1000);
    }
    expect(await got).to.equal(LOOPBACK);
    expect(asked).to.equal(31);
  });

  it('dual-stack: waits for the primary family only; the other comes from the same Node, else its loopback', async () => {
    const clock = new FakeClock();
    const both = await primaryNodeIPs(async () => node(['InternalIP', '2001:db8::5'], ['InternalIP', '192.0.2.5']), 'n1', ['IPv6', 'IPv4'], clock, nullLogger());
    expect([...both]).to.deep.equal([['IPv6', '2001:db8::5'], ['IPv4', '192.0.2.5']]);
    let asked = 0;
    const v4only = await primaryNodeIPs(async () => (asked++, node(['InternalIP', '192.0.2.5'])), 'n1', ['IPv4', 'IPv6'], clock, nullLogger());
    expect([...v4only]).to.deep.equal([['IPv4', '192.0.2.5'], ['IPv6', '::1']]);
    expect(asked, 'no wait for the IPv6 address').to.equal(1);
  });
});

describe('proxy primary IP family (upstream detectNodeIPs)', () => {
  const node = (addresses: [string, string][]): V1Node => ({ metadata: { name: 'n1' }, status: { addresses: addresses.map(([type, address]) => ({ type, address })) } });

  it('orders the node IPs as GetNodeHostIPs: InternalIPs, then ExternalIPs; host names and junk left out', () => {
    expect(nodeHostIPs(node([['ExternalIP', '203.0.113.7'], ['Hostname', 'n1'], ['InternalIP', 'fd00:2::44'], ['InternalIP', 'nope'], ['InternalIP', '192.0.2.44']])))
      .to.deep.equal(['fd00:2::44', '192.0.2.44', '203.0.113.7']);
    expect(nodeHostIPs(undefined)).to.deep.equal([]);
  });

  it('decides: a named --bind-address, else the first node IP, else IPv4', () => {
    const cases: [string[], string | undefined, ReturnType<typeof detectPrimaryFamily>][] = [
      [['fd00:2::44', '192.0.2.44'], undefined, { family: 'IPv6', from: 'node' }],
      [['192.0.2.44', 'fd00:2::44'], undefined, { family: 'IPv4', from: 'node' }],
      [['fd00:2::44'], '192.0.2.9', { family: 'IPv4', from: 'bind-address' }],
      [['192.0.2.44'], 'fd00:2::9', { family: 'IPv6', from: 'bind-address' }],
      [['fd00:2::44'], '0.0.0.0', { family: 'IPv6', from: 'node' }],
      [['192.0.2.44'], '::', { family: 'IPv4', from: 'node' }],
      [['192.0.2.44'], '0:0::0', { family: 'IPv4', from: 'node' }],
      [[], undefined, { family: 'IPv4', from: 'default' }],
      [[], '::', { family: 'IPv4', from: 'default' }],
    ];
    for (const [ips, bind, want] of cases) expect(detectPrimaryFamily(ips, bind), `${ips.join(',')} bind ${bind}`).to.deep.equal(want);
  });
});
