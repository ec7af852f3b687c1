// The parsing behind hairpin mode (cri/docker/hairpin.ts); the commands run in test/integration/proxy.test.ts and the e2e flows.
import { expect } from 'chai';
import { enableHairpin, interfaceName, peerIndex } from '../../cri/docker/hairpin.ts';
import type { Exec } from '../../lib/exec.ts';

describe('cri docker: hairpin mode of a sandbox\'s bridge port', () => {
  const inner = '2: eth0@if17: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue state UP mode DEFAULT group default \\    link/ether 02:42:ac:11:00:02 brd ff:ff:ff:ff:ff:ff link-netnsid 0\n';
  const outer = [
    '1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue state UNKNOWN mode DEFAULT group default qlen 1000\\    link/loopback 00:00:00:00:00:00 brd 00:00:00:00:00:00',
    '3: docker0: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue state UP mode DEFAULT group default \\    link/ether 02:42:5b:2a:00:01',
    '117: veth9a1b2c3@if2: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue master docker0 state UP',
    '17: vethd4e5f6a@if2: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue master docker0 state UP',
  ].join('\n');

  it('reads the peer index of eth0 and finds that interface by index (not by a prefix of another index)', () => {
    expect(peerIndex(inner)).to.equal(17);
    expect(peerIndex('2: eth0: <LOOPBACK>')).to.equal(undefined);
    expect(interfaceName(outer, 17)).to.equal('vethd4e5f6a');
    expect(interfaceName(outer, 117)).to.equal('veth9a1b2c3');
    expect(interfaceName(outer, 18)).to.equal(undefined);
  });

  it('runs ip in the sandbox\'s namespace for the peer, then sets hairpin on the host side', async () => {
    const calls: string[] = [];
    const fake: Exec = async (cmd, args) => {
      calls.push([cmd, ...args].join(' '));
      const stdout = cmd === 'nsenter' ? inner : args.includes('show') ? outer : '';
      return { code: 0, stdout, stderr: '' };
    };
    expect(await enableHairpin(fake, 4242)).to.equal('vethd4e5f6a');
    expect(calls).to.deep.equal([
      'nsenter --net=/proc/4242/ns/net -- ip -o link show eth0',
      'ip -o link show',
      'ip link set dev vethd4e5f6a type bridge_slave hairpin on',
    ]);
  });

  it('says why when the sandbox has no veth', async () => {
    const fake: Exec = async () => ({ code: 0, stdout: '2: eth0: <BROADCAST>', stderr: '' });
    let err: unknown;
    await enableHairpin(fake, 1).catch((e: unknown) => (err = e));
    expect(String(err)).to.match(/no veth behind eth0/);
  });
});
