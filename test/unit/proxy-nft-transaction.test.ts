// Incremental nftables transactions (proxy/nftables/transaction.ts): a change
// touches only the elements and chains that changed, and applying the diff
// leaves the (fake) kernel exactly where a full load of the new model would.
// Fixture addresses: service IPs in 10.96.0.0/16, pod IPs in 10.244.0.0/16
// (RFC 1918), external addresses in 192.0.2.0/24 (TEST-NET-1, RFC 5737).
import { expect } from 'chai';
import { serviceFragment, type NftRulesInput, type Ruleset } from '../../proxy/nftables/rules.ts';
import { buildRuleset, NftState } from '../../proxy/nftables/state.ts';
import { diffTransaction, fullTransaction, journalTransaction } from '../../proxy/nftables/transaction.ts';
import type { Endpoint, ServicePortInfo } from '../../proxy/types.ts';
import { FakeNft } from '../fakes/nft.ts';
import { endpoint, servicePort } from '../fakes/proxyobjects.ts';

const svc = (i: number, over: Partial<ServicePortInfo> = {}): ServicePortInfo =>
  servicePort({ name: `s${String(i).padStart(3, '0')}`, clusterIPs: [`10.96.0.${i}`], ...over });

const ep = (ip: string, isLocal = false): Endpoint => endpoint(ip, { isLocal });

function input(services: ServicePortInfo[], endpoints: Map<string, Endpoint[]>): NftRulesInput {
  return { services, endpoints, nodeIPs: [], localhostNodePorts: true, clusterCIDR: '10.244.0.0/16' };
}

const key = (s: ServicePortInfo) => `${s.namespace}/${s.name}:${s.portName}`;

/** A comparable picture of what the fake kernel holds. */
function snapshot(nft: FakeNft): unknown {
  return {
    maps: [...nft.maps].sort(([a], [b]) => a.localeCompare(b)).map(([n, m]) => [n, m.decl, [...m.elements].sort()]),
    chains: [...nft.chains].sort(([a], [b]) => a.localeCompare(b)).map(([n, c]) => [n, c.hook, c.rules]),
  };
}

function loaded(rs: Ruleset): FakeNft {
  const nft = new FakeNft();
  nft.applyNow(fullTransaction(rs));
  return nft;
}

describe('proxy nftables transactions', () => {
  const services = Array.from({ length: 50 }, (_, i) => svc(i + 1));
  const base = () => new Map(services.map((s, i) => [key(s), [ep(`10.244.1.${i + 1}`), ep(`10.244.2.${i + 1}`)]]));

  it('swapping one endpoint of one service among 50 deletes and adds just its elements', () => {
    const before = buildRuleset(input(services, base()));
    const eps = base();
    eps.set('ns1/s007:http', [ep('10.244.1.7'), ep('10.244.9.9')]);
    const after = buildRuleset(input(services, eps));
    const d = diffTransaction(before, after);
    expect(d.text.trim().split('\n')).to.deep.equal([
      'delete element ip nodelet dnat_tcp_2 { 10.96.0.7 . tcp . 80 . 1 }',
      'add element ip nodelet dnat_tcp_2 { 10.96.0.7 . tcp . 80 . 1 : 10.244.9.9 . 8080 }',
    ]);
    expect(d).to.deep.include({ needsFull: false, elementsAdded: 1, elementsDeleted: 1, chainsWritten: 0 });
    const nft = loaded(before);
    nft.applyNow(d.text);
    expect(snapshot(nft)).to.deep.equal(snapshot(loaded(after)));
  });

  it('a service moving to a new endpoint count brings its chain and map, and removes the old ones when unused', () => {
    const one = [svc(1)];
    const before = buildRuleset(input(one, new Map([['ns1/s001:http', [ep('10.244.1.1'), ep('10.244.1.2')]]])));
    const after = buildRuleset(input(one, new Map([['ns1/s001:http', [ep('10.244.1.1'), ep('10.244.1.2'), ep('10.244.1.3')]]])));
    const d = diffTransaction(before, after);
    expect(d.text.trim().split('\n')).to.deep.equal([
      'add map ip nodelet dnat_tcp_3 { typeof ip daddr . meta l4proto . tcp dport . numgen random mod 1 : ip daddr . tcp dport; }',
      'add chain ip nodelet svc_tcp_3',
      'add rule ip nodelet svc_tcp_3 ip saddr != 10.244.0.0/16 meta mark set meta mark | 0x4000',
      'add rule ip nodelet svc_tcp_3 dnat ip to ip daddr . meta l4proto . th dport . numgen random mod 3 map @dnat_tcp_3',
      'delete element ip nodelet service_ips { 10.96.0.1 . tcp . 80 }',
      'add element ip nodelet dnat_tcp_3 { 10.96.0.1 . tcp . 80 . 0 : 10.244.1.1 . 8080, 10.96.0.1 . tcp . 80 . 1 : 10.244.1.2 . 8080, 10.96.0.1 . tcp . 80 . 2 : 10.244.1.3 . 8080 }',
      'add element ip nodelet service_ips { 10.96.0.1 . tcp . 80 : goto svc_tcp_3 }',
      'flush chain ip nodelet svc_tcp_2',
      'delete chain ip nodelet svc_tcp_2',
      'delete map ip nodelet dnat_tcp_2',
    ]);
    const nft = loaded(before);
    nft.applyNow(d.text);
    expect(nft.checkInvariants()).to.deep.equal([]);
    expect(snapshot(nft)).to.deep.equal(snapshot(loaded(after)));
  });

  it('nothing changed: an empty transaction', () => {
    const rs = buildRuleset(input(services, base()));
    expect(diffTransaction(rs, buildRuleset(input(services, base()))).text).to.equal('');
  });

  it('changed rules of a base chain are flushed and rewritten in place; a changed hook needs a full transaction', () => {
    const a = buildRuleset(input([], new Map()));
    const b = buildRuleset({ ...input([], new Map()), localhostNodePorts: false });
    const d = diffTransaction(a, b);
    expect(d.needsFull).to.equal(false);
    expect(d.text.split('\n').filter((l) => l.startsWith('flush'))).to.deep.equal(['flush chain ip nodelet filter_input', 'flush chain ip nodelet services']);
    const nft = loaded(a);
    nft.applyNow(d.text);
    expect(snapshot(nft)).to.deep.equal(snapshot(loaded(b)));
    const c = buildRuleset(input([], new Map()));
    c.chains.set('filter_output', { hook: 'type filter hook output priority -5; policy accept;', rules: [] });
    expect(diffTransaction(a, c).needsFull).to.equal(true);
  });

  it('a random walk of 300 changes: every diff, and every journal of the kept state, lands where a full load would; invariants hold', () => {
    let seed = 42;
    const rnd = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const pool = Array.from({ length: 12 }, (_, i) => i + 1);
    // Every third service is UDP: its own per-protocol chains and maps.
    const svcAt = (i: number, over: Partial<ServicePortInfo> = {}) => svc(i, { protocol: i % 3 === 0 ? 'UDP' : 'TCP', ...over });
    let svcs = pool.map((i) => svcAt(i));
    const eps = new Map<string, Endpoint[]>();
    let prev = buildRuleset(input(svcs, eps));
    const nft = loaded(prev);
    // The proxier's way: one kept NftState, updated service by service, sending its journal.
    const { services: _s, endpoints: _e, ...opts } = input(svcs, eps);
    const live = new NftState(opts);
    for (const s of svcs) live.set(key(s), serviceFragment(s, eps.get(key(s)) ?? []));
    live.takeJournal();
    const nftLive = loaded(live.rs);
    for (let step = 0; step < 300; step++) {
      const i = pool[rnd(pool.length)] as number;
      const name = svcAt(i).name;
      switch (rnd(6)) {
        case 0: // endpoints: a fresh random set of 0..4, some local
          eps.set(`ns1/${name}:http`, Array.from({ length: rnd(5) }, (_, j) => ep(`10.244.${j}.${rnd(4) + 1}`, rnd(2) === 0)).filter((e, j, all) => all.findIndex((x) => x.ip === e.ip) === j));
          break;
        case 1: // service gone or back
          svcs = svcs.some((s) => s.name === name) ? svcs.filter((s) => s.name !== name) : [...svcs, svcAt(i)];
          break;
        case 2: // node port, external IP, Local policy
          svcs = svcs.map((s) => (s.name === name ? svcAt(i, { nodePort: 30000 + i, externalIPs: rnd(2) ? ['192.0.2.50'] : [], externalTrafficPolicy: rnd(2) ? 'Local' : 'Cluster' }) : s));
          break;
        case 3: // affinity
          svcs = svcs.map((s) => (s.name === name ? { ...s, sessionAffinity: s.sessionAffinity === 'None' ? 'ClientIP' : 'None' } : s));
          break;
        case 4: // internal Local
          svcs = svcs.map((s) => (s.name === name ? { ...s, internalTrafficPolicy: s.internalTrafficPolicy === 'Local' ? 'Cluster' : 'Local' } : s));
          break;
        default:
          eps.delete(`ns1/${name}:http`);
      }
      const next = buildRuleset(input(svcs, eps));
      const now = svcs.find((s) => s.name === name);
      live.set(`ns1/${name}:http`, now && serviceFragment(now, eps.get(key(now)) ?? []));
      const j = journalTransaction(live.takeJournal(), live.rs);
      expect(j.needsFull, `step ${step}`).to.equal(false);
      nftLive.applyNow(j.text);
      expect(snapshot(nftLive), `step ${step} (journal)`).to.deep.equal(snapshot(loaded(next)));
      expect(nftLive.checkInvariants(), `step ${step} (journal)`).to.deep.equal([]);
      const d = diffTransaction(prev, next);
      expect(d.needsFull, `step ${step}`).to.equal(false);
      nft.applyNow(d.text);
      expect(nft.checkInvariants(), `step ${step}`).to.deep.equal([]);
      expect(snapshot(nft), `step ${step}`).to.deep.equal(snapshot(loaded(next)));
      prev = next;
    }
  });
});

describe('proxy nftables fake (test/fakes/nft.ts)', () => {
  const T = 'ip nodelet';
  const setup = [
    `add table ${T}`,
    `add map ${T} service_ips { type ipv4_addr . inet_proto . inet_service : verdict; }`,
    `add map ${T} dnat_tcp_1 { typeof ip daddr . meta l4proto . tcp dport . numgen random mod 1 : ip daddr . tcp dport; }`,
    `add chain ${T} svc_tcp_1`,
    `add rule ${T} svc_tcp_1 dnat ip to ip daddr . meta l4proto . th dport . numgen random mod 1 map @dnat_tcp_1`,
  ].join('\n');

  const failures: Array<[string, string, RegExp]> = [
    ['a verdict to a missing chain', `add element ${T} service_ips { 10.96.0.1 . tcp . 80 : goto svc_tcp_9 }`, /verdict target svc_tcp_9/],
    ['a rule reading a missing map', `add chain ${T} x_1\nadd rule ${T} x_1 ip daddr @nope drop`, /map nope/],
    ['deleting a chain still in a map', `add element ${T} service_ips { 10.96.0.1 . tcp . 80 : goto svc_tcp_1 }\ndelete chain ${T} svc_tcp_1`, /busy/],
    ['deleting a map still read by a rule', `delete map ${T} dnat_tcp_1`, /busy/],
    ['deleting an element that is not there', `delete element ${T} service_ips { 10.96.0.9 . tcp . 80 }`, /No such file/],
    ['the same key with another value', `add element ${T} dnat_tcp_1 { 10.96.0.1 . tcp . 80 . 0 : 10.244.0.1 . 80, 10.96.0.1 . tcp . 80 . 0 : 10.244.0.2 . 80 }`, /File exists/],
    ['a key of the wrong width', `add element ${T} dnat_tcp_1 { 10.96.0.1 . tcp . 80 : 10.244.0.1 . 80 }`, /datatype mismatch/],
    ['a UDP key in a TCP DNAT map', `add element ${T} dnat_tcp_1 { 10.96.0.1 . udp . 53 . 0 : 10.244.0.1 . 53 }`, /protocol mismatch/],
    ['a DNAT map typed with th dport', `add map ${T} dnat_x { typeof ip daddr . meta l4proto . th dport . numgen random mod 1 : ip daddr . th dport; }`, /conflicting protocols/],
  ];
  for (const [what, text, why] of failures) {
    it(`rejects ${what}, and applies nothing of the transaction`, () => {
      const nft = new FakeNft();
      nft.applyNow(setup);
      const before = snapshot(nft);
      expect(() => nft.applyNow(`add chain ${T} svc_tcp_2\n${text}`)).to.throw(why);
      expect(snapshot(nft)).to.deep.equal(before);
    });
  }

  it('reports a verdict whose map lacks indices, unreachable DNAT elements and unused per-k chains', () => {
    const nft = new FakeNft();
    nft.applyNow(setup + `\nadd chain ${T} svc_tcp_2\nadd element ${T} service_ips { 10.96.0.1 . tcp . 80 : goto svc_tcp_1 }\nadd element ${T} dnat_tcp_1 { 10.96.0.2 . tcp . 80 . 0 : 10.244.0.1 . 80 }`);
    expect(nft.checkInvariants()).to.deep.equal([
      'element 10.96.0.1 . tcp . 80 of service_ips -> svc_tcp_1: dnat_tcp_1 has no index 0',
      'element 10.96.0.2 . tcp . 80 . 0 of dnat_tcp_1 is unreachable',
      'chain svc_tcp_2 is not used',
    ]);
  });
});
