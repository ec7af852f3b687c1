import { expect } from 'chai';
import { cmdlineHas } from '../../cluster/daemon.ts';
import { apiserverURL, cidrAddr, hostIP, netnsName, nodeIP, nodeName, podCIDR, profileByName, profiles } from '../../cluster/profile.ts';

describe('cluster profiles', () => {
  it('derives addresses, names and URLs per node', () => {
    const up = profiles.up!;
    expect(hostIP(up)).to.equal('10.213.0.1');
    expect(nodeIP(up, 2)).to.equal('10.213.0.12');
    expect(podCIDR(up, 2)).to.equal('10.244.2.0/24');
    expect(nodeName(up, 1)).to.equal('node1');
    expect(netnsName(up, 1)).to.equal('nl-node1');
    expect(apiserverURL(up)).to.equal('https://10.213.0.1:6443');
    expect(cidrAddr('10.96.0.0/12', 1)).to.equal('10.96.0.1');
    expect(cidrAddr('10.96.0.0/12', 256)).to.equal('10.96.1.0');
  });

  it('keeps the up and test profiles apart in every name, address, port and directory', () => {
    const a = profiles.up!;
    const b = profiles.test!;
    for (const key of ['prefix', 'stateDir', 'runDir', 'bridge', 'nodeNet', 'clusterCIDR', 'apiserverPort', 'etcdClientPort', 'etcdPeerPort', 'controllerManagerPort', 'schedulerPort'] as const) {
      expect(a[key], key).to.not.equal(b[key]);
    }
    expect(`${b.prefix}v9`.length).to.be.at.most(15); // Linux link names
  });

  it('rejects an unknown profile with the known ones in the message', () => {
    expect(() => profileByName('prod')).to.throw(/unknown cluster profile "prod".*up, test/);
  });

  it('finds a profile\'s processes by whole path, never another profile\'s (dev vs dev2)', () => {
    const argv = (...a: string[]) => a.join('\0') + '\0';
    expect(cmdlineHas(argv('etcd', '--data-dir', '/var/lib/nodelet/dev2/etcd'), '/var/lib/nodelet/dev')).to.equal(false);
    expect(cmdlineHas(argv('etcd', '--data-dir', '/var/lib/nodelet/dev/etcd'), '/var/lib/nodelet/dev')).to.equal(true);
    expect(cmdlineHas(argv('x', '--kubeconfig=/var/lib/nodelet/dev'), '/var/lib/nodelet/dev')).to.equal(true);
    expect(cmdlineHas(argv('x', '/var/lib/nodelet/dev.old/a', '/var/lib/nodelet/dev/b'), '/var/lib/nodelet/dev')).to.equal(true);
    expect(cmdlineHas(argv('x', '/var/lib/nodelet/dev_b'), '/var/lib/nodelet/dev')).to.equal(false);
  });
});
