// The integration suite's cluster: profile "test" (its own namespaces, ports and
// addresses), brought up once by fixture.ts and shared by the test files.
import type { Cluster } from '../../cluster/up.ts';
import { kubectl } from '../../cluster/controlplane.ts';

import { type ClusterProfile, profileByName } from '../../cluster/profile.ts';

/** The suite's profile: "test" unless NODELET_TEST_PROFILE names another (e.g. dev). */
export function testProfile(): ClusterProfile {
  return profileByName(process.env.NODELET_TEST_PROFILE ?? 'test');
}

let current: Cluster | undefined;

export function setCluster(c: Cluster | undefined): void {
  current = c;
}

export function cluster(): Cluster {
  if (!current) throw new Error('integration cluster is not up (fixture setup failed?)');
  return current;
}

export async function kubectlJson<T = any>(args: string[]): Promise<T> {
  const r = await kubectl(cluster().paths, [...args, '-o', 'json']);
  return JSON.parse(r.stdout) as T;
}

export function kubectlRun(args: string[], opts: { allowFail?: boolean; input?: string } = {}) {
  return kubectl(cluster().paths, args, opts);
}
