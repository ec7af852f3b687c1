// Brings up the sandboxed test cluster (profile "test") around the suite and
// removes it afterwards, whatever an earlier killed run left behind.
import { clusterDown, clusterUp } from '../../cluster/up.ts';
import { setCluster, testProfile } from './cluster.ts';

const log = (m: string) => console.log(`  [fixture] ${m}`);

export async function setup(): Promise<void> {
  const started = Date.now();
  await clusterDown(testProfile(), { log });
  // The proxy suite runs its own `nodelet proxy` (in both modes), so none here.
  setCluster(await clusterUp(testProfile(), { nodes: 1, log, proxy: false }));
  log(`cluster up in ${Math.round((Date.now() - started) / 1000)} s`);
}

export async function teardown(): Promise<void> {
  setCluster(undefined);
  await clusterDown(testProfile(), { log });
}
