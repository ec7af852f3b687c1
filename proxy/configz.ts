// The proxy's running configuration as a KubeProxyConfiguration
// (kubeproxy.config.k8s.io/v1alpha1), as kube-proxy shows it: the file
// `--write-config-to` writes (and `--config` reads back to the same settings),
// and the metrics server's /configz. Pure.
import { stringify } from 'yaml';
import { goDuration } from '../lib/kube/time.ts';
import type { BindAddress, ProxyConfig } from './config.ts';

export const PROXY_CONFIG_GROUP = 'kubeproxy.config.k8s.io';
export const PROXY_CONFIG_API_VERSION = `${PROXY_CONFIG_GROUP}/v1alpha1`;

const address = (b: BindAddress | undefined) => (b ? `${b.host.includes(':') ? `[${b.host}]` : b.host}:${b.port}` : '');

/**
 * The fields nodelet reads, from `cfg`. Not expressible here: a disabled
 * healthz or metrics server (an empty address means the default in a file),
 * --iptables-backend (nodelet's own), and log levels other than info and
 * debug (verbosity 0 and 4).
 */
export function kubeProxyConfiguration(cfg: ProxyConfig): Record<string, unknown> {
  const sync = {
    masqueradeAll: cfg.masqueradeAll,
    masqueradeBit: cfg.masqueradeBit,
    minSyncPeriod: goDuration(cfg.minSyncPeriodMs),
    syncPeriod: goDuration(cfg.syncPeriodMs),
  };
  const ct = cfg.conntrack;
  const seconds = (s: number) => goDuration(s * 1000);
  return {
    apiVersion: PROXY_CONFIG_API_VERSION,
    kind: 'KubeProxyConfiguration',
    clientConnection: { kubeconfig: cfg.kubeconfig },
    hostnameOverride: cfg.nodeName,
    mode: cfg.mode,
    bindAddress: cfg.bindAddress,
    clusterCIDR: cfg.clusterCIDR ?? '',
    nodePortAddresses: cfg.nodePortPrimary ? ['primary'] : [...cfg.nodePortAddresses],
    healthzBindAddress: address(cfg.healthzBindAddress),
    metricsBindAddress: address(cfg.metricsBindAddress),
    detectLocalMode: cfg.detectLocalMode,
    detectLocal: { bridgeInterface: cfg.podBridgeInterface ?? '', interfaceNamePrefix: cfg.podInterfaceNamePrefix ?? '' },
    oomScoreAdj: cfg.oomScoreAdj,
    iptables: { ...sync, localhostNodePorts: cfg.localhostNodePorts },
    nftables: sync,
    conntrack: {
      maxPerCore: ct.maxPerCore,
      min: ct.min,
      tcpEstablishedTimeout: seconds(ct.tcpEstablishedTimeoutS),
      tcpCloseWaitTimeout: seconds(ct.tcpCloseWaitTimeoutS),
      tcpBeLiberal: ct.tcpBeLiberal,
      udpTimeout: seconds(ct.udpTimeoutS),
      udpStreamTimeout: seconds(ct.udpStreamTimeoutS),
    },
    logging: { verbosity: cfg.logLevel === 'debug' ? 4 : 0 },
  };
}

/** The YAML document --write-config-to writes. */
export function kubeProxyConfigurationYAML(cfg: ProxyConfig): string {
  return stringify(kubeProxyConfiguration(cfg));
}

/** /configz's body: the configuration under its API group, as upstream's configz. */
export function configzBody(cfg: ProxyConfig): string {
  const { apiVersion: _a, kind: _k, ...fields } = kubeProxyConfiguration(cfg);
  return JSON.stringify({ [PROXY_CONFIG_GROUP]: fields });
}
