// The userspace proxy's pure rule generator, against literal restore text.
// Fixture addresses: cluster IPs in 10.96.0.0/16 (RFC 1918), the host in
// 192.0.2.0/24 (TEST-NET-1), external and load-balancer IPs in 203.0.113.0/24
// (TEST-NET-3), all RFC 5737 documentation ranges.
import { expect } from 'chai';
import { portalJumps, portalRules, type PortalService } from '../../proxy/userspace/rules.ts';
import { FakeIptables } from '../fakes/iptables.ts';

const base: PortalService = {
  name: 'ns1/web:http',
  protocol: 'TCP',
  clusterIPs: ['10.96.0.10'],
  port: 80,
  nodePort: 0,
  externalIPs: [],
  loadBalancerIPs: [],
  proxyPort: 40001,
};

const empty = [
  '*nat',
  ':KUBE-PORTALS-CONTAINER - [0:0]',
  ':KUBE-PORTALS-HOST - [0:0]',
  ':KUBE-NODEPORT-CONTAINER - [0:0]',
  ':KUBE-NODEPORT-HOST - [0:0]',
];

describe('proxy userspace rules', () => {
  const cases: { name: string; services: PortalService[]; listenIP: string; want: string[] }[] = [
    {
      name: 'no services: the chains are declared (so flushed) and left empty',
      services: [],
      listenIP: '0.0.0.0',
      want: [...empty, 'COMMIT', '*filter', ':KUBE-NODEPORT-NON-LOCAL - [0:0]', 'COMMIT', ''],
    },
    {
      name: 'cluster IP, listening on 0.0.0.0: REDIRECT from containers, DNAT to the host IP from the host',
      services: [base],
      listenIP: '0.0.0.0',
      want: [
        ...empty,
        '-A KUBE-PORTALS-CONTAINER -d 10.96.0.10/32 -p tcp -m comment --comment "ns1/web:http" -m tcp --dport 80 -j REDIRECT --to-ports 40001',
        '-A KUBE-PORTALS-HOST -d 10.96.0.10/32 -p tcp -m comment --comment "ns1/web:http" -m tcp --dport 80 -j DNAT --to-destination 192.0.2.10:40001',
        'COMMIT',
        '*filter',
        ':KUBE-NODEPORT-NON-LOCAL - [0:0]',
        'COMMIT',
        '',
      ],
    },
    {
      name: 'cluster IP, listening on one address: DNAT to it both ways',
      services: [base],
      listenIP: '192.0.2.20',
      want: [
        ...empty,
        '-A KUBE-PORTALS-CONTAINER -d 10.96.0.10/32 -p tcp -m comment --comment "ns1/web:http" -m tcp --dport 80 -j DNAT --to-destination 192.0.2.20:40001',
        '-A KUBE-PORTALS-HOST -d 10.96.0.10/32 -p tcp -m comment --comment "ns1/web:http" -m tcp --dport 80 -j DNAT --to-destination 192.0.2.20:40001',
        'COMMIT',
        '*filter',
        ':KUBE-NODEPORT-NON-LOCAL - [0:0]',
        'COMMIT',
        '',
      ],
    },
    {
      name: 'UDP node port with external and load-balancer IPs; services sorted by name',
      services: [
        {
          ...base,
          name: 'ns1/dns:dns',
          protocol: 'UDP',
          port: 53,
          nodePort: 30053,
          externalIPs: ['203.0.113.5'],
          loadBalancerIPs: ['203.0.113.9'],
          proxyPort: 40002,
        },
        base,
      ],
      listenIP: '0.0.0.0',
      want: [
        ...empty,
        '-A KUBE-PORTALS-CONTAINER -d 10.96.0.10/32 -p udp -m comment --comment "ns1/dns:dns" -m udp --dport 53 -j REDIRECT --to-ports 40002',
        '-A KUBE-PORTALS-CONTAINER -d 203.0.113.5/32 -p udp -m comment --comment "ns1/dns:dns" -m udp --dport 53 -j REDIRECT --to-ports 40002',
        '-A KUBE-PORTALS-CONTAINER -d 203.0.113.9/32 -p udp -m comment --comment "ns1/dns:dns" -m udp --dport 53 -j REDIRECT --to-ports 40002',
        '-A KUBE-PORTALS-CONTAINER -d 10.96.0.10/32 -p tcp -m comment --comment "ns1/web:http" -m tcp --dport 80 -j REDIRECT --to-ports 40001',
        '-A KUBE-PORTALS-HOST -d 10.96.0.10/32 -p udp -m comment --comment "ns1/dns:dns" -m udp --dport 53 -j DNAT --to-destination 192.0.2.10:40002',
        '-A KUBE-PORTALS-HOST -d 203.0.113.5/32 -p udp -m comment --comment "ns1/dns:dns" -m udp --dport 53 -m addrtype --dst-type LOCAL -j DNAT --to-destination 192.0.2.10:40002',
        '-A KUBE-PORTALS-HOST -d 203.0.113.9/32 -p udp -m comment --comment "ns1/dns:dns" -m udp --dport 53 -j DNAT --to-destination 192.0.2.10:40002',
        '-A KUBE-PORTALS-HOST -d 10.96.0.10/32 -p tcp -m comment --comment "ns1/web:http" -m tcp --dport 80 -j DNAT --to-destination 192.0.2.10:40001',
        '-A KUBE-NODEPORT-CONTAINER -p udp -m comment --comment "ns1/dns:dns" -m udp --dport 30053 -j REDIRECT --to-ports 40002',
        '-A KUBE-NODEPORT-HOST -p udp -m comment --comment "ns1/dns:dns" -m udp --dport 30053 -j DNAT --to-destination 192.0.2.10:40002',
        'COMMIT',
        '*filter',
        ':KUBE-NODEPORT-NON-LOCAL - [0:0]',
        '-A KUBE-NODEPORT-NON-LOCAL -p udp -m comment --comment "ns1/dns:dns" -m udp --dport 40002 -m state --state NEW -j ACCEPT',
        'COMMIT',
        '',
      ],
    },
  ];

  for (const c of cases) {
    it(c.name, () => {
      const out = portalRules({ services: c.services, listenIP: c.listenIP, hostIP: '192.0.2.10' });
      expect(out.text.split('\n')).to.deep.equal(c.want);
    });
  }

  it('jumps: portals first in PREROUTING and OUTPUT, node ports last and only for local destinations', () => {
    const got = portalJumps().map((j) => `${j.position} ${j.table} ${j.chain} ${j.rule.join(' ')}`);
    expect(got).to.deep.equal([
      'prepend nat PREROUTING -m comment --comment handle ClusterIPs; NOTE: this must be before the NodePort rules -j KUBE-PORTALS-CONTAINER',
      'prepend nat OUTPUT -m comment --comment handle ClusterIPs; NOTE: this must be before the NodePort rules -j KUBE-PORTALS-HOST',
      'append nat PREROUTING -m addrtype --dst-type LOCAL -m comment --comment handle service NodePorts; NOTE: this must be the last rule in the chain -j KUBE-NODEPORT-CONTAINER',
      'append nat OUTPUT -m addrtype --dst-type LOCAL -m comment --comment handle service NodePorts; NOTE: this must be the last rule in the chain -j KUBE-NODEPORT-HOST',
      'prepend filter INPUT -m comment --comment Ensure that non-local NodePort traffic can flow -j KUBE-NODEPORT-NON-LOCAL',
    ]);
  });

  it('the text restores into the fake iptables, and a second restore replaces the first', async () => {
    const ipt = new FakeIptables();
    const np = { ...base, nodePort: 30080 };
    const first = portalRules({ services: [np], listenIP: '192.0.2.20', hostIP: '192.0.2.10' });
    await ipt.restore(first.text, { noflush: true });
    expect(ipt.rules('nat', 'KUBE-PORTALS-CONTAINER')).to.have.length(1);
    expect(ipt.rules('nat', 'KUBE-NODEPORT-HOST')).to.deep.equal([
      '-p tcp -m comment --comment "ns1/web:http" -m tcp --dport 30080 -j DNAT --to-destination 192.0.2.20:40001',
    ]);
    expect(ipt.rules('filter', 'KUBE-NODEPORT-NON-LOCAL')).to.have.length(1);

    await ipt.restore(portalRules({ services: [], listenIP: '192.0.2.20', hostIP: '192.0.2.10' }).text, { noflush: true });
    for (const c of ['KUBE-PORTALS-CONTAINER', 'KUBE-PORTALS-HOST', 'KUBE-NODEPORT-CONTAINER', 'KUBE-NODEPORT-HOST']) {
      expect(ipt.rules('nat', c), c).to.deep.equal([]);
    }
    expect(ipt.rules('filter', 'KUBE-NODEPORT-NON-LOCAL')).to.deep.equal([]);
  });
});
