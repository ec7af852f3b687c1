// Wires the node agent from flags: KubeConfig (loaded explicitly; client-node's
// loadFromDefault would silently fall back to localhost:8080), the Docker client,
// the node controller, and a healthz endpoint. Runs until SIGTERM/SIGINT.
import * as k8s from '@kubernetes/client-node';
import Docker from 'dockerode';
import { existsSync } from 'node:fs';
import http from 'node:http';
import { DockerRuntime } from '../cri/docker/runtime.ts';
import { realClock } from '../lib/clock.ts';
import { NodeletError, describeError } from '../lib/errors.ts';
import { createLogger } from '../lib/log.ts';
import { parseAgentFlags } from './config.ts';
import { readMachineInfo } from './machine.ts';
import { NodeController } from './node.ts';
import { KubeNodeApi } from './nodeapi.ts';

/** The Kubernetes release whose API nodelet speaks (cluster/versions.env). */
export const KUBELET_VERSION = 'v1.37.2';

function loadKubeconfig(path: string): k8s.KubeConfig {
  if (!existsSync(path)) throw new NodeletError('CONFIG_INVALID', `--kubeconfig ${path}: file does not exist`);
  const kc = new k8s.KubeConfig();
  try {
    kc.loadFromFile(path);
  } catch (err) {
    throw new NodeletError('CONFIG_INVALID', `--kubeconfig ${path}: ${describeError(err)}`, { cause: err });
  }
  if (!kc.getCurrentCluster()?.server) {
    throw new NodeletError('CONFIG_INVALID', `--kubeconfig ${path}: no server in the current context`);
  }
  return kc;
}

export async function runAgent(argv: string[], _env: NodeJS.ProcessEnv): Promise<number> {
  const cfg = parseAgentFlags(argv);
  const kc = loadKubeconfig(cfg.kubeconfig);
  const log = createLogger(cfg.logLevel).child({ node: cfg.nodeName });
  const docker = new Docker({ socketPath: cfg.runtimeSocketPath, timeout: 10_000 });
  const runtime = new DockerRuntime(docker);
  const controller = new NodeController({
    api: new KubeNodeApi(kc),
    runtime,
    clock: realClock,
    log: log.child({ component: 'node' }),
    config: cfg,
    machine: readMachineInfo(cfg.rootDir),
    kubeletVersion: KUBELET_VERSION,
  });
  const abort = new AbortController();
  let healthz: http.Server | undefined;
  if (cfg.healthzPort > 0) {
    healthz = http.createServer((req, res) => {
      const ok = req.url === '/healthz';
      res.writeHead(ok ? 200 : 404, { 'content-type': 'text/plain' }).end(ok ? 'ok' : 'not found');
    });
    healthz.on('error', (err) => log.warn('healthz server failed', { err: describeError(err), port: cfg.healthzPort }));
    healthz.listen(cfg.healthzPort, '127.0.0.1');
  }
  log.info('starting', { version: KUBELET_VERSION, apiServer: kc.getCurrentCluster()?.server, runtime: cfg.containerRuntimeEndpoint });
  controller.start(abort.signal);
  await new Promise<void>((resolve) => {
    const onSignal = (sig: string) => {
      log.info('stopping', { signal: sig });
      resolve();
    };
    process.once('SIGTERM', () => onSignal('SIGTERM'));
    process.once('SIGINT', () => onSignal('SIGINT'));
  });
  abort.abort();
  await controller.stop();
  healthz?.close();
  log.info('stopped');
  return 0;
}
