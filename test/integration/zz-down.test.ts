// Runs last: `down` leaves nothing of the cluster on the machine.
import { expect } from 'chai';
import { existsSync } from 'node:fs';
import { leftovers } from '../../cluster/sandbox.ts';
import { clusterDown } from '../../cluster/up.ts';
import { exec } from '../../lib/exec.ts';
import { cluster, setCluster, testProfile } from './cluster.ts';

describe('down', () => {
  it('leaves no processes, namespaces, mounts, links, routes or state behind', async function () {
    this.timeout(180_000);
    const c = cluster();
    const p = testProfile();
    expect(await leftovers(p)).to.not.be.empty; // it is up right now
    await clusterDown(p, { log: () => {} });
    setCluster(undefined);
    expect(await leftovers(p)).to.deep.equal([]);
    expect(existsSync(p.stateDir)).to.equal(false);
    expect(existsSync(p.runDir)).to.equal(false);
    const routes = (await exec('ip', ['route'])).stdout;
    expect(routes).to.not.include(c.nodes[0]!.sandbox.podCIDR.split('/')[0]);
  });
});
