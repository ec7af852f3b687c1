// Loads a kubeconfig from an explicit path (client-node's loadFromDefault would
// silently fall back to localhost:8080), with one clear CONFIG_INVALID error
// for a missing file, a malformed one, or one without a server.
import * as k8s from '@kubernetes/client-node';
import { existsSync } from 'node:fs';
import { describeError, NodeletError } from './errors.ts';

export function loadKubeconfig(path: string): k8s.KubeConfig {
  if (!existsSync(path)) throw new NodeletError('CONFIG_INVALID', `--kubeconfig ${path}: file does not exist`);
  const kc = new k8s.KubeConfig();
  try {
    kc.loadFromFile(path);
  } catch (err) {
    throw new NodeletError('CONFIG_INVALID', `--kubeconfig ${path}: ${describeError(err)}`, { cause: err });
  }
  if (!kc.getCurrentCluster()?.server) throw new NodeletError('CONFIG_INVALID', `--kubeconfig ${path}: no server in the current context`);
  return kc;
}
