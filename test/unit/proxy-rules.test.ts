// Fixture addresses: service IPs in 10.96.0.0/16 and pod IPs in 10.244.0.0/16
// (RFC 1918 private ranges), node address 192.0.2.10 (TEST-NET-1, RFC 5737).
import { expect } from 'chai';
import type { V1Service } from '@kubernetes/client-node';
import { chainsFromSave } from '../../proxy/iptables/iptables.ts';
import {
  generateRulesChunked,
  beforeCommit,
  endpointChainName,
  externalChainName,
  firewallChainName,
  generateRules,
  jumpInsertLine,
  jumpRules,
  LARGE_CLUSTER_ENDPOINTS,
  localChainName,
  missingJumps,
  probability,
  serviceChainName,
  type RulesInput,
  type RulesOptions,
  type RulesOutput,
} from '../../proxy/iptables/rules.ts';
import { servicePortsFromService, type Endpoint, type ServicePortInfo } from '../../proxy/types.ts';
import { FakeIptables } from '../fakes/iptables.ts';
import { endpoint as ep, servicePort as svc } from '../fakes/proxyobjects.ts';

const input = (services: ServicePortInfo[], endpoints: Record<string, Endpoint[]>, over: Partial<RulesInput> = {}): RulesInput => ({
  services,
  endpoints: new Map(Object.entries(endpoints)),
  nodeIPs: [],
  localhostNodePorts: false,
  clusterCIDR: '10.244.0.0/16',
  ...over,
});

// Chain names of ns1/svc1:http and its endpoints.
const SVC = serviceChainName('ns1/svc1:http', 'tcp');
const SVL = localChainName('ns1/svc1:http', 'tcp');
const EXT = externalChainName('ns1/svc1:http', 'tcp');
const FW = firewallChainName('ns1/svc1:http', 'tcp');
const SEP1 = endpointChainName('ns1/svc1:http', 'tcp', '10.244.1.1:8080');
const SEP2 = endpointChainName('ns1/svc1:http', 'tcp', '10.244.2.1:8080');
const SEP3 = endpointChainName('ns1/svc1:http', 'tcp', '10.244.3.1:8080');

const NAT_HEAD_CHAINS = [':KUBE-SERVICES - [0:0]', ':KUBE-NODEPORTS - [0:0]', ':KUBE-POSTROUTING - [0:0]', ':KUBE-MARK-MASQ - [0:0]'];
const NAT_HEAD_RULES = [
  '-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN',
  '-A KUBE-POSTROUTING -j MARK --xor-mark 0x4000',
  '-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE',
  '-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000',
];
const NAT_TAIL =
  '-A KUBE-SERVICES ! -d 127.0.0.0/8 -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS';

/**
 * The whole nat table text of one service: every chain declared first, in
 * descending name order (the fixed ones among them), then the fixed head
 * rules, the service's rules, the fixed tail.
 */
function nat(chains: string[], rules: string[]): string {
  const declared = [...NAT_HEAD_CHAINS, ...chains.map((c) => `:${c} - [0:0]`)].sort().reverse();
  return ['*nat', ...declared, ...NAT_HEAD_RULES, ...rules, NAT_TAIL, 'COMMIT', ''].join('\n');
}

function filter(rules: string[]): string {
  return [
    '*filter',
    ':KUBE-SERVICES - [0:0]',
    ':KUBE-EXTERNAL-SERVICES - [0:0]',
    ':KUBE-FORWARD - [0:0]',
    ':KUBE-NODEPORTS - [0:0]',
    ':KUBE-PROXY-FIREWALL - [0:0]',
    ...rules,
    '-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP',
    '-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark 0x4000/0x4000 -j ACCEPT',
    '-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT',
    'COMMIT',
    '',
  ].join('\n');
}

/** Applies a result as the adapter will (restore --noflush, then the jumps) and returns the problems found. */
function apply(fake: FakeIptables, out: RulesOutput): string[] {
  fake.applyRestore(out.filter, { noflush: true });
  if (out.nat) fake.applyRestore(out.nat, { noflush: true });
  for (const j of out.jumps) void fake.ensureRule('prepend', j.table, j.chain, j.rule);
  return fake.checkInvariants();
}

const CLUSTER_IP_RULE = `-A KUBE-SERVICES -d 10.96.0.10/32 -p tcp -m comment --comment "ns1/svc1:http cluster IP" -m tcp --dport 80 -j ${SVC}`;
const MASQ_RULE = `-A ${SVC} ! -s 10.244.0.0/16 -d 10.96.0.10/32 -p tcp -m comment --comment "ns1/svc1:http cluster IP" -m tcp --dport 80 -j KUBE-MARK-MASQ`;
/** The -A lines of a restore text. */
const appends = (text: string) => text.split('\n').filter((l) => l.startsWith('-A ')).length;

const sepRules = (chain: string, ip: string, affinity = '') => [
  `-A ${chain} -s ${ip}/32 -m comment --comment "ns1/svc1:http" -j KUBE-MARK-MASQ`,
  `-A ${chain} -p tcp -m comment --comment "ns1/svc1:http"${affinity} -m tcp -j DNAT --to-destination ${ip}:8080`,
];
const NODEPORT_RULE = `-A KUBE-NODEPORTS -p tcp -m comment --comment "ns1/svc1:http" -m tcp --dport 30080 -j ${EXT}`;

interface Case {
  name: string;
  input: RulesInput;
  nat: string;
  filter: string;
}

const headless: V1Service = {
  metadata: { namespace: 'ns1', name: 'headless' },
  spec: { clusterIP: 'None', clusterIPs: ['None'], ports: [{ name: 'http', port: 80, protocol: 'TCP' }] },
};

const cases: Case[] = [
  {
    name: 'one ClusterIP service with one endpoint',
    input: input([svc()], { 'ns1/svc1:http': [ep('10.244.1.1')] }),
    nat: nat(
      [SVC, SEP1],
      [
        CLUSTER_IP_RULE,
        MASQ_RULE,
        `-A ${SVC} -m comment --comment "ns1/svc1:http -> 10.244.1.1:8080" -j ${SEP1}`,
        ...sepRules(SEP1, '10.244.1.1'),
      ],
    ),
    filter: filter([]),
  },
  {
    name: 'three endpoints share the traffic with 1/3, 1/2, the rest',
    input: input([svc()], { 'ns1/svc1:http': [ep('10.244.3.1'), ep('10.244.1.1'), ep('10.244.2.1')] }),
    nat: nat(
      [SVC, SEP1, SEP2, SEP3],
      [
        CLUSTER_IP_RULE,
        MASQ_RULE,
        // Sorted by address whatever the input order.
        `-A ${SVC} -m comment --comment "ns1/svc1:http -> 10.244.1.1:8080" -m statistic --mode random --probability 0.3333333333 -j ${SEP1}`,
        `-A ${SVC} -m comment --comment "ns1/svc1:http -> 10.244.2.1:8080" -m statistic --mode random --probability 0.5000000000 -j ${SEP2}`,
        `-A ${SVC} -m comment --comment "ns1/svc1:http -> 10.244.3.1:8080" -j ${SEP3}`,
        ...sepRules(SEP1, '10.244.1.1'),
        ...sepRules(SEP2, '10.244.2.1'),
        ...sepRules(SEP3, '10.244.3.1'),
      ],
    ),
    filter: filter([]),
  },
  {
    name: 'no endpoints: REJECT in filter, nothing in nat',
    input: input([svc()], { 'ns1/svc1:http': [ep('10.244.1.1', { ready: false, serving: false })] }),
    nat: nat([], []),
    filter: filter([
      '-A KUBE-SERVICES -d 10.96.0.10/32 -p tcp -m comment --comment "ns1/svc1:http has no endpoints" -m tcp --dport 80 -j REJECT',
    ]),
  },
  {
    name: 'no ready endpoint: falls back to the serving, terminating one',
    input: input([svc()], {
      'ns1/svc1:http': [ep('10.244.1.1', { ready: false, terminating: true }), ep('10.244.2.1', { ready: false, serving: false })],
    }),
    nat: nat(
      [SVC, SEP1],
      [
        CLUSTER_IP_RULE,
        MASQ_RULE,
        `-A ${SVC} -m comment --comment "ns1/svc1:http -> 10.244.1.1:8080" -j ${SEP1}`,
        ...sepRules(SEP1, '10.244.1.1'),
      ],
    ),
    filter: filter([]),
  },
  {
    name: 'NodePort',
    input: input([svc({ nodePort: 30080 })], { 'ns1/svc1:http': [ep('10.244.1.1')] }),
    nat: nat(
      [EXT, SVC, SEP1],
      [
        CLUSTER_IP_RULE,
        NODEPORT_RULE,
        MASQ_RULE,
        `-A ${EXT} -m comment --comment "masquerade traffic for ns1/svc1:http external destinations" -j KUBE-MARK-MASQ`,
        `-A ${EXT} -j ${SVC}`,
        `-A ${SVC} -m comment --comment "ns1/svc1:http -> 10.244.1.1:8080" -j ${SEP1}`,
        ...sepRules(SEP1, '10.244.1.1'),
      ],
    ),
    filter: filter([]),
  },
  {
    name: 'NodePort without endpoints: REJECT for the cluster IP and the node port',
    input: input([svc({ nodePort: 30080 })], {}),
    nat: nat([], []),
    filter: filter([
      '-A KUBE-SERVICES -d 10.96.0.10/32 -p tcp -m comment --comment "ns1/svc1:http has no endpoints" -m tcp --dport 80 -j REJECT',
      '-A KUBE-EXTERNAL-SERVICES -p tcp -m comment --comment "ns1/svc1:http has no endpoints" -m addrtype --dst-type LOCAL -m tcp --dport 30080 -j REJECT',
    ]),
  },
  {
    name: 'sessionAffinity ClientIP',
    input: input([svc({ sessionAffinity: 'ClientIP', stickySeconds: 10800 })], {
      'ns1/svc1:http': [ep('10.244.1.1'), ep('10.244.2.1')],
    }),
    nat: nat(
      [SVC, SEP1, SEP2],
      [
        CLUSTER_IP_RULE,
        MASQ_RULE,
        `-A ${SVC} -m comment --comment "ns1/svc1:http -> 10.244.1.1:8080" -m recent --name ${SEP1} --rcheck --seconds 10800 --reap -j ${SEP1}`,
        `-A ${SVC} -m comment --comment "ns1/svc1:http -> 10.244.2.1:8080" -m recent --name ${SEP2} --rcheck --seconds 10800 --reap -j ${SEP2}`,
        `-A ${SVC} -m comment --comment "ns1/svc1:http -> 10.244.1.1:8080" -m statistic --mode random --probability 0.5000000000 -j ${SEP1}`,
        `-A ${SVC} -m comment --comment "ns1/svc1:http -> 10.244.2.1:8080" -j ${SEP2}`,
        ...sepRules(SEP1, '10.244.1.1', ` -m recent --name ${SEP1} --set`),
        ...sepRules(SEP2, '10.244.2.1', ` -m recent --name ${SEP2} --set`),
      ],
    ),
    filter: filter([]),
  },
  {
    name: 'externalTrafficPolicy Local with a local endpoint',
    input: input([svc({ nodePort: 30080, externalTrafficPolicy: 'Local' })], {
      'ns1/svc1:http': [ep('10.244.1.1', { isLocal: true, nodeName: 'node1' }), ep('10.244.2.1', { nodeName: 'node2' })],
    }),
    nat: nat(
      [EXT, SVC, SVL, SEP1, SEP2],
      [
        CLUSTER_IP_RULE,
        NODEPORT_RULE,
        MASQ_RULE,
        `-A ${EXT} -s 10.244.0.0/16 -m comment --comment "pod traffic for ns1/svc1:http external destinations" -j ${SVC}`,
        `-A ${EXT} -m comment --comment "masquerade LOCAL traffic for ns1/svc1:http external destinations" -m addrtype --src-type LOCAL -j KUBE-MARK-MASQ`,
        `-A ${EXT} -m comment --comment "route LOCAL traffic for ns1/svc1:http external destinations" -m addrtype --src-type LOCAL -j ${SVC}`,
        `-A ${EXT} -j ${SVL}`,
        `-A ${SVC} -m comment --comment "ns1/svc1:http -> 10.244.1.1:8080" -m statistic --mode random --probability 0.5000000000 -j ${SEP1}`,
        `-A ${SVC} -m comment --comment "ns1/svc1:http -> 10.244.2.1:8080" -j ${SEP2}`,
        `-A ${SVL} -m comment --comment "ns1/svc1:http -> 10.244.1.1:8080" -j ${SEP1}`,
        ...sepRules(SEP1, '10.244.1.1'),
        ...sepRules(SEP2, '10.244.2.1'),
      ],
    ),
    filter: filter([]),
  },
  {
    name: 'externalTrafficPolicy Local without a local endpoint: DROP outside traffic, short-circuit ours',
    input: input([svc({ nodePort: 30080, externalTrafficPolicy: 'Local' })], {
      'ns1/svc1:http': [ep('10.244.2.1', { nodeName: 'node2' })],
    }),
    nat: nat(
      [EXT, SVC, SEP2],
      [
        CLUSTER_IP_RULE,
        NODEPORT_RULE,
        MASQ_RULE,
        `-A ${EXT} -s 10.244.0.0/16 -m comment --comment "pod traffic for ns1/svc1:http external destinations" -j ${SVC}`,
        `-A ${EXT} -m comment --comment "masquerade LOCAL traffic for ns1/svc1:http external destinations" -m addrtype --src-type LOCAL -j KUBE-MARK-MASQ`,
        `-A ${EXT} -m comment --comment "route LOCAL traffic for ns1/svc1:http external destinations" -m addrtype --src-type LOCAL -j ${SVC}`,
        `-A ${SVC} -m comment --comment "ns1/svc1:http -> 10.244.2.1:8080" -j ${SEP2}`,
        ...sepRules(SEP2, '10.244.2.1'),
      ],
    ),
    filter: filter([
      '-A KUBE-EXTERNAL-SERVICES -p tcp -m comment --comment "ns1/svc1:http has no local endpoints" -m addrtype --dst-type LOCAL -m tcp --dport 30080 -j DROP',
    ]),
  },
  {
    name: 'internalTrafficPolicy Local: the cluster IP goes to KUBE-SVL, local endpoints only',
    input: input([svc({ internalTrafficPolicy: 'Local' })], {
      'ns1/svc1:http': [ep('10.244.1.1', { isLocal: true }), ep('10.244.2.1')],
    }),
    nat: nat(
      [SVL, SEP1],
      [
        `-A KUBE-SERVICES -d 10.96.0.10/32 -p tcp -m comment --comment "ns1/svc1:http cluster IP" -m tcp --dport 80 -j ${SVL}`,
        `-A ${SVL} ! -s 10.244.0.0/16 -d 10.96.0.10/32 -p tcp -m comment --comment "ns1/svc1:http cluster IP" -m tcp --dport 80 -j KUBE-MARK-MASQ`,
        `-A ${SVL} -m comment --comment "ns1/svc1:http -> 10.244.1.1:8080" -j ${SEP1}`,
        ...sepRules(SEP1, '10.244.1.1'),
      ],
    ),
    filter: filter([]),
  },
  {
    name: 'loadBalancerSourceRanges: the load-balancer IP goes through KUBE-FW, which lets the ranges on; KUBE-PROXY-FIREWALL drops the rest',
    input: input([svc({ loadBalancerIPs: ['203.0.113.10'], loadBalancerSourceRanges: ['198.51.100.0/24', '192.0.2.7/32'] })], { 'ns1/svc1:http': [ep('10.244.1.1')] }),
    nat: nat(
      [EXT, FW, SVC, SEP1],
      [
        CLUSTER_IP_RULE,
        `-A KUBE-SERVICES -d 203.0.113.10/32 -p tcp -m comment --comment "ns1/svc1:http loadbalancer IP" -m tcp --dport 80 -j ${FW}`,
        `-A ${FW} -s 198.51.100.0/24 -m comment --comment "ns1/svc1:http loadbalancer IP" -j ${EXT}`,
        `-A ${FW} -s 192.0.2.7/32 -m comment --comment "ns1/svc1:http loadbalancer IP" -j ${EXT}`,
        `-A ${FW} -m comment --comment "other traffic to ns1/svc1:http will be dropped by KUBE-PROXY-FIREWALL"`,
        MASQ_RULE,
        `-A ${EXT} -m comment --comment "masquerade traffic for ns1/svc1:http external destinations" -j KUBE-MARK-MASQ`,
        `-A ${EXT} -j ${SVC}`,
        `-A ${SVC} -m comment --comment "ns1/svc1:http -> 10.244.1.1:8080" -j ${SEP1}`,
        ...sepRules(SEP1, '10.244.1.1'),
      ],
    ),
    filter: filter([
      `-A KUBE-PROXY-FIREWALL -d 203.0.113.10/32 -p tcp -m comment --comment "ns1/svc1:http traffic not accepted by ${FW}" -m tcp --dport 80 -j DROP`,
    ]),
  },
  {
    name: 'loadBalancerSourceRanges that take this node: its own requests, which come from the load-balancer IP when that is local, are let on too',
    input: input([svc({ loadBalancerIPs: ['203.0.113.10'], loadBalancerSourceRanges: ['198.51.100.0/24'] })], { 'ns1/svc1:http': [ep('10.244.1.1')] }, { nodeIPs: ['198.51.100.5'] }),
    nat: nat(
      [EXT, FW, SVC, SEP1],
      [
        CLUSTER_IP_RULE,
        `-A KUBE-SERVICES -d 203.0.113.10/32 -p tcp -m comment --comment "ns1/svc1:http loadbalancer IP" -m tcp --dport 80 -j ${FW}`,
        `-A ${FW} -s 198.51.100.0/24 -m comment --comment "ns1/svc1:http loadbalancer IP" -j ${EXT}`,
        `-A ${FW} -s 203.0.113.10/32 -m comment --comment "ns1/svc1:http loadbalancer IP" -j ${EXT}`,
        `-A ${FW} -m comment --comment "other traffic to ns1/svc1:http will be dropped by KUBE-PROXY-FIREWALL"`,
        MASQ_RULE,
        `-A ${EXT} -m comment --comment "masquerade traffic for ns1/svc1:http external destinations" -j KUBE-MARK-MASQ`,
        `-A ${EXT} -j ${SVC}`,
        `-A ${SVC} -m comment --comment "ns1/svc1:http -> 10.244.1.1:8080" -j ${SEP1}`,
        ...sepRules(SEP1, '10.244.1.1'),
      ],
    ).replace(NAT_TAIL, '-A KUBE-SERVICES -d 198.51.100.5/32 -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -j KUBE-NODEPORTS'),
    filter: filter([
      `-A KUBE-PROXY-FIREWALL -d 203.0.113.10/32 -p tcp -m comment --comment "ns1/svc1:http traffic not accepted by ${FW}" -m tcp --dport 80 -j DROP`,
    ]),
  },
  {
    name: 'loadBalancerSourceRanges without endpoints: no firewall chain, the load-balancer IP is rejected as before',
    input: input([svc({ loadBalancerIPs: ['203.0.113.10'], loadBalancerSourceRanges: ['198.51.100.0/24'] })], {}),
    nat: nat([], []),
    filter: filter([
      '-A KUBE-SERVICES -d 10.96.0.10/32 -p tcp -m comment --comment "ns1/svc1:http has no endpoints" -m tcp --dport 80 -j REJECT',
      '-A KUBE-EXTERNAL-SERVICES -d 203.0.113.10/32 -p tcp -m comment --comment "ns1/svc1:http has no endpoints" -m tcp --dport 80 -j REJECT',
    ]),
  },
  {
    name: 'headless service is skipped',
    input: input(servicePortsFromService(headless), { 'ns1/headless:http': [ep('10.244.1.1')] }),
    nat: nat([], []),
    filter: filter([]),
  },
];

describe('proxy iptables rules', () => {
  describe('generateRules (full sync)', () => {
    for (const c of cases) {
      it(c.name, () => {
        const out = generateRules(c.input, { full: true });
        expect(out.nat).to.equal(c.nat);
        expect(out.filter).to.equal(c.filter);
        expect(out.ruleCounts).to.deep.equal({ nat: appends(out.nat), filter: appends(out.filter) });
        expect(apply(new FakeIptables(), out)).to.deep.equal([]);
      });
    }
  });

  it('names chains exactly as upstream kube-proxy does', () => {
    // Names seen on every real cluster.
    expect(serviceChainName('default/kubernetes:https', 'TCP')).to.equal('KUBE-SVC-NPX46M4PTMTKRN6Y');
    expect(serviceChainName('kube-system/kube-dns:dns', 'UDP')).to.equal('KUBE-SVC-TCOU7JCQXEZGVUNU');
    expect(serviceChainName('kube-system/kube-dns:dns-tcp', 'TCP')).to.equal('KUBE-SVC-ERIFXISQEP7F7OF4');
    expect(localChainName('default/kubernetes:https', 'tcp')).to.equal('KUBE-SVL-NPX46M4PTMTKRN6Y');
    expect(SEP1).to.match(/^KUBE-SEP-[A-Z2-7]{16}$/);
    expect([probability(3), probability(2), probability(7)]).to.deep.equal(['0.3333333333', '0.5000000000', '0.1428571429']);
  });

  it('adds localhost NodePorts, node addresses and masqueradeAll when asked', () => {
    const out = generateRules(
      input([svc()], { 'ns1/svc1:http': [ep('10.244.1.1')] }, {
        nodeIPs: ['192.0.2.10', '127.0.0.1'],
        localhostNodePorts: true,
        masqueradeAll: true,
      }),
      { full: true },
    );
    const natLines = out.nat.split('\n');
    expect(natLines).to.include(
      `-A ${SVC} -d 10.96.0.10/32 -p tcp -m comment --comment "ns1/svc1:http cluster IP" -m tcp --dport 80 -j KUBE-MARK-MASQ`,
    );
    expect(natLines.slice(-4, -2)).to.deep.equal([
      '-A KUBE-SERVICES -d 192.0.2.10/32 -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -j KUBE-NODEPORTS',
      '-A KUBE-SERVICES -d 127.0.0.1/32 -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -j KUBE-NODEPORTS',
    ]);
    expect(out.filter).to.include(
      ':KUBE-FIREWALL - [0:0]\n-A KUBE-FIREWALL ! -s 127.0.0.0/8 -d 127.0.0.0/8 -m comment --comment "block incoming localnet connections" -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP\n',
    );
    expect(out.jumps.filter((j) => j.rule.at(-1) === 'KUBE-FIREWALL').map((j) => j.chain)).to.deep.equal(['INPUT', 'OUTPUT']);
    expect(apply(new FakeIptables(), out)).to.deep.equal([]);
  });

  describe('partial sync', () => {
    // svc1 (ns1/svc1:http) and svc2 (ns1/svc2:http), one endpoint each.
    const svc2 = svc({ name: 'svc2', clusterIPs: ['10.96.0.20'] });
    const SVC2 = serviceChainName('ns1/svc2:http', 'tcp');
    const OLD = endpointChainName('ns1/svc2:http', 'tcp', '10.244.2.1:8080');
    const NEW = endpointChainName('ns1/svc2:http', 'tcp', '10.244.2.2:8080');
    const before = input([svc(), svc2], { 'ns1/svc1:http': [ep('10.244.1.1')], 'ns1/svc2:http': [ep('10.244.2.1')] });
    const after = input([svc(), svc2], { 'ns1/svc1:http': [ep('10.244.1.1')], 'ns1/svc2:http': [ep('10.244.2.2')] });

    it('rewrites only the changed service chains, keeps the others, deletes the stale one', () => {
      const fake = new FakeIptables();
      expect(apply(fake, generateRules(before, { full: true }))).to.deep.equal([]);
      const svc1Rules = fake.rules('nat', SVC);
      expect(svc1Rules).to.have.length(2);

      const existingChains = chainsFromSave(fake.saveText('nat'));
      const opts: RulesOptions = { full: false, changedServices: new Set(['ns1/svc2']), existingChains };
      const out = generateRules(after, opts);
      // svc1 keeps its chains (only its jump in KUBE-SERVICES is written); svc2's and the stale one are declared
      // with the fixed chains, in descending name order; the stale one is deleted at the end.
      expect(out.nat).to.equal([
        '*nat',
        ...[...NAT_HEAD_CHAINS, `:${SVC2} - [0:0]`, `:${NEW} - [0:0]`, `:${OLD} - [0:0]`].sort().reverse(),
        ...NAT_HEAD_RULES,
        CLUSTER_IP_RULE,
        `-A KUBE-SERVICES -d 10.96.0.20/32 -p tcp -m comment --comment "ns1/svc2:http cluster IP" -m tcp --dport 80 -j ${SVC2}`,
        `-A ${SVC2} ! -s 10.244.0.0/16 -d 10.96.0.20/32 -p tcp -m comment --comment "ns1/svc2:http cluster IP" -m tcp --dport 80 -j KUBE-MARK-MASQ`,
        `-A ${SVC2} -m comment --comment "ns1/svc2:http -> 10.244.2.2:8080" -j ${NEW}`,
        `-A ${NEW} -s 10.244.2.2/32 -m comment --comment "ns1/svc2:http" -j KUBE-MARK-MASQ`,
        `-A ${NEW} -p tcp -m comment --comment "ns1/svc2:http" -m tcp -j DNAT --to-destination 10.244.2.2:8080`,
        `-X ${OLD}`,
        NAT_TAIL,
        'COMMIT',
        '',
      ].join('\n'));
      expect([...(out.chainsInUse ?? [])].sort()).to.deep.equal([SVC, SEP1, SVC2, NEW].sort());

      expect(apply(fake, out)).to.deep.equal([]);
      expect(fake.rules('nat', SVC)).to.deep.equal(svc1Rules);
      expect(fake.chains('nat').has(OLD)).to.equal(false);
      // The result is what a full sync would have made.
      const full = new FakeIptables();
      apply(full, generateRules(after, { full: true }));
      expect(fake.saveText('nat')).to.equal(full.saveText('nat'));
    });

    it('deletes all chains of a removed service', () => {
      const fake = new FakeIptables();
      apply(fake, generateRules(before, { full: true }));
      const out = generateRules(input([svc()], { 'ns1/svc1:http': [ep('10.244.1.1')] }), {
        full: false,
        changedServices: new Set(['ns1/svc2']),
        existingChains: fake.chains('nat'),
      });
      expect(out.nat.split('\n').filter((l) => l.startsWith('-X')).sort()).to.deep.equal([`-X ${SVC2}`, `-X ${OLD}`].sort());
      expect(apply(fake, out)).to.deep.equal([]);
      expect([...fake.chains('nat')].filter((c) => c.startsWith('KUBE-S') && c !== 'KUBE-SERVICES').sort()).to.deep.equal([SVC, SEP1].sort());
    });

    it('with skipStaleCleanup: leaves the stale chain, works out no chainsInUse, rewrites an unchanged service only if its first chain is gone', () => {
      const fake = new FakeIptables();
      apply(fake, generateRules(before, { full: true }));
      const out = generateRules(after, { full: false, changedServices: new Set(['ns1/svc2']), existingChains: chainsFromSave(fake.saveText('nat')), skipStaleCleanup: true });
      expect(out.nat).not.to.include(`-X ${OLD}`);
      expect(out.chainsInUse).to.equal(undefined);
      // The one invariant it gives up until the cleanup: the stale chain is unreferenced.
      expect(apply(fake, out)).to.deep.equal([`nat ${OLD}: not used by any rule`]);
      expect(fake.chains('nat').has(OLD)).to.equal(true);
      expect(fake.rules('nat', SVC2).some((r) => r.includes(OLD))).to.equal(false);
      // First chain gone: written; only a later chain gone: left for the next full sync.
      const noSvc = generateRules(before, { full: false, changedServices: new Set(), existingChains: new Set([SEP1, SVC2, OLD]), skipStaleCleanup: true });
      expect(noSvc.nat).to.include(`:${SVC} - [0:0]`);
      const noSep = generateRules(before, { full: false, changedServices: new Set(), existingChains: new Set([SVC, SVC2, OLD]), skipStaleCleanup: true });
      expect(noSep.nat).not.to.include(`:${SEP1} - [0:0]`);
    });

    it('with previousTop: an endpoint change leaves KUBE-SERVICES and the fixed chains out, and gives the same table', () => {
      const fake = new FakeIptables();
      const first = generateRules(before, { full: true });
      apply(fake, first);
      const existingChains = chainsFromSave(fake.saveText('nat'));
      const out = generateRules(after, { full: false, changedServices: new Set(['ns1/svc2']), existingChains, previousTop: first.top });
      expect(out.topKept).to.equal(true);
      expect(out.nat).to.equal([
        '*nat',
        ...[`:${SVC2} - [0:0]`, `:${NEW} - [0:0]`, `:${OLD} - [0:0]`].sort().reverse(),
        `-A ${SVC2} ! -s 10.244.0.0/16 -d 10.96.0.20/32 -p tcp -m comment --comment "ns1/svc2:http cluster IP" -m tcp --dport 80 -j KUBE-MARK-MASQ`,
        `-A ${SVC2} -m comment --comment "ns1/svc2:http -> 10.244.2.2:8080" -j ${NEW}`,
        `-A ${NEW} -s 10.244.2.2/32 -m comment --comment "ns1/svc2:http" -j KUBE-MARK-MASQ`,
        `-A ${NEW} -p tcp -m comment --comment "ns1/svc2:http" -m tcp -j DNAT --to-destination 10.244.2.2:8080`,
        `-X ${OLD}`,
        'COMMIT',
        '',
      ].join('\n'));
      expect(out.ruleCounts.nat).to.equal(4);
      expect(out.top).to.deep.equal(first.top);
      expect(apply(fake, out)).to.deep.equal([]);
      const full = new FakeIptables();
      apply(full, generateRules(after, { full: true }));
      expect(fake.saveText('nat')).to.equal(full.saveText('nat'));
      // Nothing changed since: no text at all (the proxier then runs no restore); filter as before.
      const none = generateRules(after, { full: false, changedServices: new Set(), existingChains: fake.chains('nat'), previousTop: out.top });
      expect(none.nat).to.equal('');
      expect(none.ruleCounts.nat).to.equal(0);
      expect(none.filter).to.equal(out.filter);
      // A named service that has no rules (headless, say): the table line went out before that was known,
      // so the text is an empty transaction, which iptables-restore commits nothing for.
      const empty = generateRules(after, { full: false, changedServices: new Set(['ns1/headless']), existingChains: fake.chains('nat'), previousTop: out.top });
      expect(empty.nat).to.equal('*nat\nCOMMIT\n');
      expect(empty.ruleCounts.nat).to.equal(0);
      const kept = fake.saveText('nat');
      expect(apply(fake, empty)).to.deep.equal([]);
      expect(fake.saveText('nat')).to.equal(kept);
      // With a changed service the table line is the first piece, before any service is worked out.
      const pieces = generateRulesChunked(after, { full: false, changedServices: new Set(['ns1/svc2']), existingChains, previousTop: first.top });
      expect(pieces.next().value).to.equal('*nat\n');
      // Without previousTop (the first partial sync after a start) the top-level chains are written, as before.
      expect(generateRules(after, { full: false, changedServices: new Set(['ns1/svc2']), existingChains }).nat).to.include(CLUSTER_IP_RULE);
    });

    it('with previousTop: a change to what KUBE-SERVICES holds (service added, removed, out of endpoints) writes it whole', () => {
      const first = generateRules(before, { full: true });
      const existingChains = new Set(first.natChains);
      const svc3 = svc({ name: 'svc3', clusterIPs: ['10.96.0.30'] });
      const eps = { 'ns1/svc1:http': [ep('10.244.1.1')], 'ns1/svc2:http': [ep('10.244.2.1')] };
      const cases: [string, RulesInput, string][] = [
        ['added', input([svc(), svc2, svc3], { ...eps, 'ns1/svc3:http': [ep('10.244.3.1')] }), 'ns1/svc3'],
        ['removed', input([svc()], { 'ns1/svc1:http': [ep('10.244.1.1')] }), 'ns1/svc2'],
        ['no endpoints', input([svc(), svc2], { 'ns1/svc1:http': [ep('10.244.1.1')] }), 'ns1/svc2'],
        ['new port', input([svc(), svc({ name: 'svc2', clusterIPs: ['10.96.0.20'], port: 81 })], eps), 'ns1/svc2'],
      ];
      for (const [what, next, key] of cases) {
        const fake = new FakeIptables();
        apply(fake, first);
        const out = generateRules(next, { full: false, changedServices: new Set([key]), existingChains, previousTop: first.top });
        expect(out.topKept, what).to.equal(false);
        expect(out.nat, what).to.include(':KUBE-SERVICES - [0:0]').and.include(CLUSTER_IP_RULE).and.include(NAT_TAIL);
        expect(apply(fake, out), what).to.deep.equal([]);
        const full = new FakeIptables();
        apply(full, generateRules(next, { full: true }));
        expect(fake.saveText('nat'), what).to.equal(full.saveText('nat'));
      }
    });

    it('writes an unchanged service whose chain has gone missing', () => {
      const out = generateRules(before, { full: false, changedServices: new Set(), existingChains: new Set([SVC, SEP1]) });
      expect(out.nat).to.include(`:${SVC2} - [0:0]`);
      expect(out.nat).not.to.include(`:${SVC} - [0:0]`);
    });
  });
});

describe('generateRulesChunked', () => {
  it('gives the nat text in pieces, each service whole, that restore to the same table; extra lines go before COMMIT', () => {
    const services = Array.from({ length: 100 }, (_, i) => svc({ name: `s${i}`, clusterIPs: [`10.96.1.${i + 1}`] }));
    const endpoints = Object.fromEntries(services.map((sp, i) => [`ns1/${sp.name}:http`, [ep(`10.244.5.${i + 1}`), ep(`10.244.6.${i + 1}`)]]));
    const inp = input(services, endpoints);
    const gen = generateRulesChunked(inp, { full: true });
    const chunks: string[] = [];
    let r = gen.next();
    for (; !r.done; r = gen.next()) chunks.push(r.value);
    expect(chunks.length).to.be.greaterThan(2);
    // Every piece but the last ends a line.
    for (const c of chunks.slice(0, -1)) expect(c.endsWith('\n')).to.equal(true);
    const text = chunks.join('');
    const extra = generateRules(inp, { full: true, natExtra: ['-I OUTPUT -j KUBE-SERVICES'] });
    expect(extra.nat.split('\n').slice(-3)).to.deep.equal(['-I OUTPUT -j KUBE-SERVICES', 'COMMIT', '']);
    const whole = generateRules(inp, { full: true });
    expect(r.value.natChains).to.deep.equal(whole.natChains);
    expect(r.value.ruleCounts).to.deep.equal(whole.ruleCounts);
    // The same table either way.
    const a = new FakeIptables();
    a.applyRestore(text, { noflush: true });
    const b = new FakeIptables();
    b.applyRestore(whole.nat, { noflush: true });
    expect(a.saveText('nat')).to.equal(b.saveText('nat'));
    expect(apply(new FakeIptables(), whole)).to.deep.equal([]);
  });
});

describe('generateRules: rule counts', () => {
  it('counts the -A lines, not the -X of stale chains', () => {
    const stale = 'KUBE-SVC-AAAAAAAAAAAAAAAA';
    const out = generateRules(input([svc()], { 'ns1/svc1:http': [ep('10.244.1.1')] }), { full: true, existingChains: new Set([stale]) });
    expect(out.nat).to.include(`-X ${stale}`);
    expect(out.ruleCounts).to.deep.equal({ nat: appends(out.nat), filter: appends(out.filter) });
  });
});

describe('generateRules: remembered per-service rules', () => {
  it('gives the same text for the same objects, and new rules when a service\'s endpoints are replaced', () => {
    const sp = svc();
    const eps1 = [ep('10.244.1.1'), ep('10.244.2.1')];
    const a = generateRules(input([sp], { 'ns1/svc1:http': eps1 }), { full: true });
    const again = generateRules(input([sp], { 'ns1/svc1:http': eps1 }), { full: true });
    expect(again.nat).to.equal(a.nat);
    const eps2 = [ep('10.244.1.1'), ep('10.244.3.1')];
    const b = generateRules(input([sp], { 'ns1/svc1:http': eps2 }), { full: true });
    expect(b.nat).to.include(SEP3).and.not.include(SEP2);
    // A different setting for the same objects is not served from memory.
    const c = generateRules(input([sp], { 'ns1/svc1:http': eps2 }, { masqueradeAll: true }), { full: true });
    expect(c.nat).to.not.equal(b.nat);
  });
});

describe('generateRules: --iptables-masquerade-bit', () => {
  it('uses the mark of the given bit (12: 0x1000) in KUBE-MARK-MASQ, KUBE-POSTROUTING and KUBE-FORWARD', () => {
    const out = generateRules(input([svc()], { 'ns1/svc1:http': [ep('10.244.1.1')] }, { masqueradeBit: 12 }), { full: true });
    expect(out.nat + out.filter).to.not.include('0x4000');
    expect(out.nat.split('\n')).to.include.members([
      '-A KUBE-POSTROUTING -m mark ! --mark 0x1000/0x1000 -j RETURN',
      '-A KUBE-POSTROUTING -j MARK --xor-mark 0x1000',
      '-A KUBE-MARK-MASQ -j MARK --or-mark 0x1000',
    ]);
    expect(out.filter).to.include('-m mark --mark 0x1000/0x1000 -j ACCEPT');
    // Bit 31 is a valid mark too (beyond a signed 32-bit shift).
    expect(generateRules(input([], {}, { masqueradeBit: 31 }), { full: true }).nat).to.include('--or-mark 0x80000000');
  });
});

describe('generateRules: large cluster mode (upstream largeClusterEndpointsThreshold)', () => {
  const many = (n: number) => Array.from({ length: n }, (_, i) => ep(`10.244.${1 + Math.floor(i / 250)}.${1 + (i % 250)}`));
  const sepLines = (text: string) => text.split('\n').filter((l) => l.startsWith('-A KUBE-SEP-'));
  const svcToSep = (text: string) => text.split('\n').filter((l) => l.startsWith(`-A ${SVC} `) && l.includes('-j KUBE-SEP-'));

  it(`keeps comments on per-endpoint rules at ${LARGE_CLUSTER_ENDPOINTS} endpoints and drops them above`, () => {
    const at = generateRules(input([svc()], { 'ns1/svc1:http': many(LARGE_CLUSTER_ENDPOINTS) }), { full: true });
    expect(sepLines(at.nat).every((l) => l.includes('--comment "ns1/svc1:http"'))).to.equal(true);
    expect(svcToSep(at.nat).every((l) => l.includes('-m comment --comment "ns1/svc1:http -> '))).to.equal(true);

    const above = generateRules(input([svc()], { 'ns1/svc1:http': many(LARGE_CLUSTER_ENDPOINTS + 1) }), { full: true });
    expect(sepLines(above.nat)).to.have.length(2 * (LARGE_CLUSTER_ENDPOINTS + 1));
    expect(sepLines(above.nat).some((l) => l.includes('-m comment'))).to.equal(false);
    expect(svcToSep(above.nat).some((l) => l.includes('-m comment'))).to.equal(false);
    const first = sepChainOf(above.nat, '10.244.1.1:8080');
    expect(above.nat).to.include(`-A ${first} -s 10.244.1.1/32 -j KUBE-MARK-MASQ`);
    expect(above.nat).to.include(`-A ${first} -p tcp -m tcp -j DNAT --to-destination 10.244.1.1:8080`);
    // Rules outside the per-endpoint ones keep theirs.
    expect(above.nat).to.include(CLUSTER_IP_RULE);
  });

  function sepChainOf(text: string, dest: string): string {
    const l = text.split('\n').find((x) => x.endsWith(`--to-destination ${dest}`));
    return (l ?? '').split(' ')[1] ?? '';
  }
});

describe('missingJumps / beforeCommit', () => {
  const jumps = jumpRules(true);
  it('finds none missing in a save that holds them all, and all in an empty one', () => {
    const fake = new FakeIptables();
    const out = generateRules(input([svc()], { 'ns1/svc1:http': [ep('10.244.1.1')] }, { localhostNodePorts: true }), { full: true });
    const saved = { nat: fake.saveText('nat'), filter: fake.saveText('filter') };
    expect(missingJumps(jumps, saved)).to.deep.equal(jumps);
    fake.applyRestore(beforeCommit(out.nat, jumps.filter((j) => j.table === 'nat').map(jumpInsertLine)), { noflush: true });
    fake.applyRestore(beforeCommit(out.filter, jumps.filter((j) => j.table === 'filter').map(jumpInsertLine)), { noflush: true });
    expect(missingJumps(jumps, { nat: fake.saveText('nat'), filter: fake.saveText('filter') })).to.deep.equal([]);
    // One removed by hand (iptables -D) is the only one found missing.
    const forward = fake.table('filter').get('FORWARD') ?? [];
    forward.splice(forward.findIndex((r) => r.endsWith('-j KUBE-FORWARD')), 1);
    const missing = missingJumps(jumps, { nat: fake.saveText('nat'), filter: fake.saveText('filter') });
    expect(missing.map((j) => `${j.table}/${j.chain}/${j.rule.at(-1)}`)).to.deep.equal(['filter/FORWARD/KUBE-FORWARD']);
  });

  it('matches iptables-save\'s spacing and quoting, and puts extra lines before COMMIT', () => {
    const save = '*nat\n:OUTPUT ACCEPT [0:0]\n-A OUTPUT  -m comment --comment "kubernetes service portals" -j KUBE-SERVICES\nCOMMIT\n';
    expect(missingJumps(jumps.filter((j) => j.table === 'nat' && j.chain === 'OUTPUT'), { nat: save })).to.deep.equal([]);
    expect(beforeCommit('*nat\n:A - [0:0]\nCOMMIT\n', ['-I OUTPUT -j A'])).to.equal('*nat\n:A - [0:0]\n-I OUTPUT -j A\nCOMMIT\n');
    expect(beforeCommit('*nat\nCOMMIT\n', [])).to.equal('*nat\nCOMMIT\n');
  });
});

describe('generateRules: IPv6 (the ip6tables tables of a dual-stack node)', () => {
  // ns1/svc1:http on fd00:10:96::a (a ULA, RFC 4193), endpoints in fd00:10:244::/64, node fd00:10::10.
  const v6 = (over: Partial<ServicePortInfo> = {}) => svc({ clusterIPs: ['fd00:10:96::a'], ...over });
  const SEP6A = endpointChainName('ns1/svc1:http', 'tcp', '[fd00:10:244::5]:8080');
  const SEP6B = endpointChainName('ns1/svc1:http', 'tcp', '[fd00:10:244::1b]:8080');
  const v6input = (services: ServicePortInfo[], endpoints: Record<string, Endpoint[]>, over: Partial<RulesInput> = {}) =>
    input(services, endpoints, { family: 'IPv6', clusterCIDR: 'fd00:10:244::/64', ...over });
  const TAIL6 =
    '-A KUBE-SERVICES ! -d ::1/128 -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS';

  it('hashes endpoint chains over "[ip]:port" (upstream\'s JoinHostPort) and writes /128 hosts, bracketed DNAT targets, ::1 kept off node ports', () => {
    const out = generateRules(
      v6input([v6({ nodePort: 30080 })], { 'ns1/svc1:http': [ep('fd00:10:244::1b'), ep('fd00:10:244::5')] }, { localhostNodePorts: true }),
      { full: true },
    );
    const declared = [...NAT_HEAD_CHAINS, ...[SVC, EXT, SEP6A, SEP6B].map((c) => `:${c} - [0:0]`)].sort().reverse();
    expect(out.nat).to.equal(
      [
        '*nat',
        ...declared,
        ...NAT_HEAD_RULES,
        `-A KUBE-SERVICES -d fd00:10:96::a/128 -p tcp -m comment --comment "ns1/svc1:http cluster IP" -m tcp --dport 80 -j ${SVC}`,
        NODEPORT_RULE,
        `-A ${SVC} ! -s fd00:10:244::/64 -d fd00:10:96::a/128 -p tcp -m comment --comment "ns1/svc1:http cluster IP" -m tcp --dport 80 -j KUBE-MARK-MASQ`,
        `-A ${EXT} -m comment --comment "masquerade traffic for ns1/svc1:http external destinations" -j KUBE-MARK-MASQ`,
        `-A ${EXT} -j ${SVC}`,
        // Sorted by address as a number: ::5 before ::1b.
        `-A ${SVC} -m comment --comment "ns1/svc1:http -> [fd00:10:244::5]:8080" -m statistic --mode random --probability 0.5000000000 -j ${SEP6A}`,
        `-A ${SVC} -m comment --comment "ns1/svc1:http -> [fd00:10:244::1b]:8080" -j ${SEP6B}`,
        `-A ${SEP6A} -s fd00:10:244::5/128 -m comment --comment "ns1/svc1:http" -j KUBE-MARK-MASQ`,
        `-A ${SEP6A} -p tcp -m comment --comment "ns1/svc1:http" -m tcp -j DNAT --to-destination [fd00:10:244::5]:8080`,
        `-A ${SEP6B} -s fd00:10:244::1b/128 -m comment --comment "ns1/svc1:http" -j KUBE-MARK-MASQ`,
        `-A ${SEP6B} -p tcp -m comment --comment "ns1/svc1:http" -m tcp -j DNAT --to-destination [fd00:10:244::1b]:8080`,
        // localhostNodePorts asked for, but IPv6 has none: ::1 is left out, as upstream.
        TAIL6,
        'COMMIT',
        '',
      ].join('\n'),
    );
    // No KUBE-FIREWALL (the 127.0.0.0/8 guard) and no jumps to it.
    expect(out.filter).to.equal(filter([]));
    expect(out.jumps.some((j) => j.rule.at(-1) === 'KUBE-FIREWALL')).to.equal(false);
    expect(apply(new FakeIptables(), out)).to.deep.equal([]);
  });

  it('rejects a service without endpoints in filter, and node ports on given IPv6 node addresses skip ::1', () => {
    const out = generateRules(v6input([v6()], {}, { nodeIPs: ['fd00:10::10', '::1'] }), { full: true });
    expect(out.filter).to.equal(
      filter(['-A KUBE-SERVICES -d fd00:10:96::a/128 -p tcp -m comment --comment "ns1/svc1:http has no endpoints" -m tcp --dport 80 -j REJECT']),
    );
    expect(out.nat.split('\n').filter((l) => l.includes('KUBE-NODEPORTS') && l.startsWith('-A KUBE-SERVICES'))).to.deep.equal([
      '-A KUBE-SERVICES -d fd00:10::10/128 -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -j KUBE-NODEPORTS',
    ]);
  });

  it('lets IPv6 source ranges through the firewall chain, and the node itself when a range holds its address', () => {
    const sp = v6({ loadBalancerIPs: ['fd00:5::1'], loadBalancerSourceRanges: ['fd00:77::/48'], nodePort: 30080 });
    const out = generateRules(v6input([sp], { 'ns1/svc1:http': [ep('fd00:10:244::5')] }, { nodeIPs: ['fd00:77::10'] }), { full: true });
    const fw = out.nat.split('\n').filter((l) => l.startsWith(`-A ${FW} `));
    expect(fw).to.deep.equal([
      `-A ${FW} -s fd00:77::/48 -m comment --comment "ns1/svc1:http loadbalancer IP" -j ${EXT}`,
      `-A ${FW} -s fd00:5::1/128 -m comment --comment "ns1/svc1:http loadbalancer IP" -j ${EXT}`,
      `-A ${FW} -m comment --comment "other traffic to ns1/svc1:http will be dropped by KUBE-PROXY-FIREWALL"`,
    ]);
    expect(apply(new FakeIptables(), out)).to.deep.equal([]);
  });
});
