// The running configuration as a KubeProxyConfiguration: --write-config-to
// writes it (and --config reads it back to the same settings), /configz and
// /proxyMode serve it. Files go to a temporary directory.
import { expect } from 'chai';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { parse } from 'yaml';
import { errorCode } from '../../lib/errors.ts';
import { type ProxyConfig, parseProxyFlags } from '../../proxy/config.ts';
import { configzBody, kubeProxyConfiguration } from '../../proxy/configz.ts';
import { closeServer, listen, ProxyHealth, proxyHttpHandler } from '../../proxy/healthcheck.ts';
import { proxyClient, writeConfigFile } from '../../proxy/main.ts';
import { FakeClock } from '../fakes/clock.ts';

const host = { hostname: () => 'host-1', networkInterfaces: () => ({}) };
const flags = (...args: string[]) => parseProxyFlags(args, host);

/** What a configuration sets, without where it came from. */
const settings = (c: ProxyConfig) => {
  const { configFile: _f, writeConfigTo: _w, kubeconfig: _k, ...rest } = c;
  return rest;
};

describe('proxy configuration as a KubeProxyConfiguration (--write-config-to, /configz, /proxyMode)', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'nodelet-configz-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('writes the defaults with upstream\'s field names and Go durations', () => {
    expect(kubeProxyConfiguration(flags('--kubeconfig', '/etc/k.conf'))).to.deep.equal({
      apiVersion: 'kubeproxy.config.k8s.io/v1alpha1',
      kind: 'KubeProxyConfiguration',
      clientConnection: { kubeconfig: '/etc/k.conf' },
      hostnameOverride: 'host-1',
      mode: 'iptables',
      bindAddress: '0.0.0.0',
      clusterCIDR: '',
      nodePortAddresses: [],
      healthzBindAddress: '0.0.0.0:10256',
      metricsBindAddress: '127.0.0.1:10249',
      detectLocalMode: 'ClusterCIDR',
      detectLocal: { bridgeInterface: '', interfaceNamePrefix: '' },
      oomScoreAdj: -999,
      iptables: { masqueradeAll: false, masqueradeBit: 14, minSyncPeriod: '1s', syncPeriod: '30s', localhostNodePorts: true },
      nftables: { masqueradeAll: false, masqueradeBit: 14, minSyncPeriod: '1s', syncPeriod: '30s' },
      conntrack: {
        maxPerCore: 32768, min: 131072, tcpEstablishedTimeout: '24h0m0s', tcpCloseWaitTimeout: '1h0m0s', tcpBeLiberal: false, udpTimeout: '0s', udpStreamTimeout: '0s',
      },
      logging: { verbosity: 0 },
    });
  });

  it('--write-config-to writes a file that --config reads back to the same settings (defaults and others), then the run ends', async () => {
    const cases: string[][] = [
      [],
      [
        '--hostname-override', 'node-7', '--proxy-mode', 'nftables', '--cluster-cidr', '10.244.0.0/16', '--nodeport-addresses', '192.0.2.0/24,198.51.100.0/24',
        '--iptables-min-sync-period', '500ms', '--iptables-sync-period', '1m30s', '--healthz-bind-address', '127.0.0.1:20256', '--metrics-bind-address', '0.0.0.0:20249',
        '--iptables-localhost-nodeports=false', '--masquerade-all', '--iptables-masquerade-bit', '12', '--detect-local-mode', 'InterfaceNamePrefix',
        '--pod-interface-name-prefix', 'veth', '--oom-score-adj', '-500', '--conntrack-max-per-core', '0', '--conntrack-tcp-timeout-established', '2h',
        '--conntrack-tcp-be-liberal', '--conntrack-udp-timeout', '30s', '--v', '4',
      ],
      ['--proxy-mode', 'userspace', '--nodeport-addresses', 'primary', '--detect-local-mode', 'BridgeInterface', '--pod-bridge-interface', 'cbr0'],
    ];
    for (const [i, args] of cases.entries()) {
      const file = path.join(dir, `kube-proxy-${i}.yaml`);
      const cfg = flags('--kubeconfig', '/etc/k.conf', ...args, '--write-config-to', file);
      expect(cfg.writeConfigTo).to.equal(file);
      expect(await writeConfigFile(cfg, file)).to.equal(0);
      expect(parse(readFileSync(file, 'utf8')).kind).to.equal('KubeProxyConfiguration');
      const back = flags('--config', file);
      expect(back.configFile?.warnings, `case ${i}: no field the reader ignores`).to.deep.equal([]);
      expect(back.kubeconfig).to.equal('/etc/k.conf');
      expect(settings(back), `case ${i}`).to.deep.equal(settings(cfg));
    }
  });

  it('--write-config-to needs no kubeconfig; an unwritable path is PROXY_CONFIG_WRITE_FAILED', async () => {
    const cfg = flags('--write-config-to', path.join(dir, 'k.yaml'));
    expect(cfg.kubeconfig).to.equal('');
    const err = await writeConfigFile(cfg, path.join(dir, 'missing', 'k.yaml')).catch((e: unknown) => e);
    expect(errorCode(err)).to.equal('PROXY_CONFIG_WRITE_FAILED');
  });

  it('--master takes the API server\'s address over the kubeconfig\'s (its credentials stay); alone, it is the whole client', () => {
    const kubeconfig = path.join(dir, 'kubeconfig');
    writeFileSync(kubeconfig, [
      'apiVersion: v1', 'kind: Config', 'current-context: c',
      'clusters: [{name: k, cluster: {server: "https://192.0.2.1:6443", insecure-skip-tls-verify: true}}]',
      'users: [{name: u, user: {token: secret}}]', 'contexts: [{name: c, context: {cluster: k, user: u}}]', '',
    ].join('\n'));
    expect(proxyClient({ kubeconfig }).server).to.equal('https://192.0.2.1:6443');
    const over = proxyClient({ kubeconfig, master: 'https://192.0.2.9:6443/' });
    expect(over.server).to.equal('https://192.0.2.9:6443');
    expect(over.credentials).to.deep.include({ token: { data: 'secret' } });
    expect(proxyClient({ kubeconfig: '', master: 'http://127.0.0.1:8080' }).server).to.equal('http://127.0.0.1:8080');
  });

  it('the metrics server answers /proxyMode and /configz (the configuration under its API group)', async () => {
    const cfg = flags('--kubeconfig', '/k', '--proxy-mode', 'nftables');
    const health = new ProxyHealth({ clock: new FakeClock(), timeoutMs: 60_000, lastSynced: async () => undefined });
    const server = http.createServer(proxyHttpHandler(health, { mode: 'nftables', configz: configzBody(cfg) }));
    await listen(server, '127.0.0.1', 0);
    try {
      const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      expect(await (await fetch(`${base}/proxyMode`)).text()).to.equal('nftables');
      const body = (await (await fetch(`${base}/configz`)).json()) as Record<string, Record<string, unknown>>;
      expect(Object.keys(body)).to.deep.equal(['kubeproxy.config.k8s.io']);
      const { apiVersion: _a, kind: _k, ...fields } = kubeProxyConfiguration(cfg);
      expect(body['kubeproxy.config.k8s.io']).to.deep.equal(fields);
      expect((await fetch(`${base}/metrics`)).status, 'no registry given').to.equal(404);
    } finally {
      await closeServer(server);
    }
  });
});
