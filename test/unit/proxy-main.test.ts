// startProxy's wiring with fake list/watches and a fake exec that answers
// like iptables: informers feed the proxier, which syncs only after both have
// synced. Cluster IPs in 10.96.0.0/12, endpoints in 192.0.2.0/24 (RFC 5737).
import { expect } from 'chai';
import { KubeClient } from '../../lib/kube/client.ts';
import type { V1EndpointSlice, V1Node, V1Service } from '@kubernetes/client-node';
import { Registry } from 'prom-client';
import { errorCode } from '../../lib/errors.ts';
import { inputText, type Exec, type ExecResult } from '../../lib/exec.ts';
import type { ListWatch, WatchEvent } from '../../lib/informer.ts';
import { captureLogger } from '../fakes/log.ts';
import { nullLogger } from '../../lib/log.ts';
import { parseProxyFlags } from '../../proxy/config.ts';
import { type ProxyDeps, runInitOnly, startProxy, type RunningProxy } from '../../proxy/main.ts';
import { UserspaceProxier } from '../../proxy/userspace/proxier.ts';
import { CONNTRACK_HASHSIZE, CONNTRACK_MAX, type KernelFiles } from '../../proxy/conntracklimits.ts';
import { FakeClock, settle } from '../fakes/clock.ts';
import { FakeEventRecorder } from '../fakes/events.ts';
import { freePort } from '../fakes/net.ts';

class GatedListWatch<T> implements ListWatch<T> {
  private open!: () => void;
  private readonly gate = new Promise<void>((r) => (this.open = r));
  emit: ((e: WatchEvent<T>) => void) | undefined;
  private readonly items: T[];
  constructor(items: T[]) {
    this.items = items;
  }
  release(): void {
    this.open();
  }
  async list() {
    await this.gate;
    return { items: this.items, resourceVersion: '10' };
  }
  watch(_rv: string, onEvent: (e: WatchEvent<T>) => void, signal: AbortSignal): Promise<void> {
    this.emit = onEvent;
    return new Promise((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
  }
}

const web: V1Service = {
  metadata: { name: 'web', namespace: 'default', resourceVersion: '1' },
  spec: { clusterIP: '10.96.0.80', ports: [{ name: 'http', port: 80, protocol: 'TCP' }] },
};
const webSlice: V1EndpointSlice = {
  metadata: { name: 'web-1', namespace: 'default', resourceVersion: '2', labels: { 'kubernetes.io/service-name': 'web' } },
  addressType: 'IPv4',
  ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
  endpoints: [{ addresses: ['192.0.2.10'], conditions: { ready: true } }],
};

describe('proxy startProxy wiring', () => {
  let restores: string[];
  let kernel: Map<string, string>;
  // Never the real /proc/sys: these tests run as root in CI.
  const kernelFiles: KernelFiles = {
    read: async (f) => kernel.get(f) ?? '0\n',
    write: async (f, v) => void kernel.set(f, v),
  };
  let exec: Exec;
  let running: RunningProxy | undefined;
  let abort: AbortController;

  beforeEach(() => {
    restores = [];
    // IPv6 off unless a test turns it on: one proxier (IPv4), as on a host without IPv6.
    kernel = new Map([['/proc/sys/net/ipv6/conf/all/disable_ipv6', '1\n']]);
    abort = new AbortController();
    const ok = (stdout = ''): ExecResult => ({ code: 0, stdout, stderr: '' });
    exec = async (cmd, args, opts) => {
      if (cmd.endsWith('-restore')) {
        restores.push(inputText(opts?.input));
        return ok();
      }
      if (cmd.endsWith('-save')) return ok('');
      if (cmd === 'iptables-nft' && args.includes('-C')) return { code: 1, stdout: '', stderr: '' };
      return ok();
    };
  });
  afterEach(async () => {
    abort.abort();
    await running?.stop();
    running = undefined;
  });

  const kc = () => new KubeClient({ server: 'https://192.0.2.1:6443' });
  const cfg = (...extra: string[]) =>
    parseProxyFlags(['--kubeconfig', '/k', '--hostname-override', 'n1', '--healthz-bind-address=', '--metrics-bind-address=', '--iptables-localhost-nodeports=false', ...extra]);

  /** This proxy's Node as the fakes give it: an IPv4 InternalIP (the primary family comes from it). */
  const ipv4Node = async (name: string): Promise<V1Node> => ({ metadata: { name }, status: { addresses: [{ type: 'InternalIP', address: '192.0.2.44' }] } });

  /** The wiring's deps with fakes: no API server, exec and kernel files faked (`over` replaces any of them). */
  const fakeDeps = (over: Partial<ProxyDeps> = {}): ProxyDeps =>
    ({ kc: kc(), log: nullLogger(), registry: new Registry(), clock: new FakeClock(), signal: abort.signal, exec, sysctl: async () => {}, kernelFiles, getNode: ipv4Node, ...over });

  /** Starts the proxy on list/watches that answer at once (web and its slice unless `empty`), and lets its first sync run. */
  async function startListed(args: string[], deps: Partial<ProxyDeps> = {}, empty = false): Promise<RunningProxy> {
    const services = new GatedListWatch<V1Service>(empty ? [] : [web]);
    const slices = new GatedListWatch<V1EndpointSlice>(empty ? [] : [webSlice]);
    services.release();
    slices.release();
    running = await startProxy(
      fakeDeps({ listWatches: { services, slices }, ...deps }),
      cfg(...args),
    );
    await settle(10);
    return running;
  }

  /** Starts the proxy on web and `slice` (listed at once) and a Node list/watch of `nodeItems` (listed once released). */
  function startWithNode(nodeItems: V1Node[], opts: { slice?: V1EndpointSlice; deps?: Partial<ProxyDeps>; args?: string[] } = {}) {
    const services = new GatedListWatch<V1Service>([web]);
    const slices = new GatedListWatch<V1EndpointSlice>([opts.slice ?? webSlice]);
    const nodes = new GatedListWatch<V1Node>(nodeItems);
    services.release();
    slices.release();
    const starting = startProxy(fakeDeps({ ...opts.deps, listWatches: { services, slices, nodes } }), cfg(...(opts.args ?? [])));
    return { nodes, starting };
  }

  const firstNat = () => restores.find((t) => t.startsWith('*nat')) ?? '';

  it('starts the proxier only after both informers synced, then syncs the rules the objects call for', async () => {
    const clock = new FakeClock();
    const services = new GatedListWatch<V1Service>([web]);
    const slices = new GatedListWatch<V1EndpointSlice>([webSlice]);
    const events = new FakeEventRecorder();
    const starting = startProxy(
      fakeDeps({ clock, listWatches: { services, slices }, events }),
      cfg(),
    );
    services.release();
    await settle(10);
    expect(restores, 'no sync before the slices synced').to.deep.equal([]);
    expect(events.reasons()).to.deep.equal([]);
    slices.release();
    running = await starting;
    // As kube-proxy: "Starting" on its Node once it runs.
    expect(events.events).to.deep.equal([{ object: { kind: 'Node', apiVersion: 'v1', name: 'n1', uid: 'n1', namespace: '' }, type: 'Normal', reason: 'Starting', message: '' }]);
    await settle(10);
    const nat = restores.find((t) => t.startsWith('*nat')) ?? '';
    expect(nat).to.include('-d 10.96.0.80/32');
    expect(nat).to.include('--to-destination 192.0.2.10:8080');

    // A watch event reaches the proxier too.
    restores = [];
    services.emit?.({ type: 'DELETED', object: web });
    await clock.advance(1000);
    await settle(10);
    expect(restores.length, 'a sync after the delete').to.be.greaterThan(0);
    expect(restores.join('\n')).to.not.include('--to-destination 192.0.2.10:8080');
  });

  it('watches its Node: the first sync uses its zone for topology hints, and a label change resyncs', async () => {
    const clock = new FakeClock();
    const zoned: V1EndpointSlice = {
      ...webSlice,
      endpoints: [
        { addresses: ['192.0.2.10'], conditions: { ready: true }, hints: { forZones: [{ name: 'zone-a' }] } },
        { addresses: ['192.0.2.11'], conditions: { ready: true }, hints: { forZones: [{ name: 'zone-b' }] } },
      ],
    };
    const node = (zone: string, rv: string): V1Node => ({ metadata: { name: 'n1', resourceVersion: rv, labels: { 'topology.kubernetes.io/zone': zone } } });
    const { nodes, starting } = startWithNode([node('zone-a', '5')], { slice: zoned, deps: { clock } });
    await settle(10);
    expect(restores, 'no sync before the Node is listed (or the wait for it ends)').to.deep.equal([]);
    nodes.release();
    running = await starting;
    await settle(10);
    const dnats = () => [...(restores.filter((t) => t.startsWith('*nat')).at(-1) ?? '').matchAll(/--to-destination (\S+)/g)].map((m) => m[1]);
    expect(dnats()).to.deep.equal(['192.0.2.10:8080']);
    nodes.emit?.({ type: 'MODIFIED', object: node('zone-b', '6') });
    await clock.advance(1000);
    await settle(10);
    expect(dnats()).to.deep.equal(['192.0.2.11:8080']);
  });

  it('/healthz follows its Node: 503 while it is tainted for deletion by the cluster autoscaler, 200 again when untainted', async () => {
    const clock = new FakeClock();
    const port = await freePort();
    const tainted = (rv: string, taint: boolean): V1Node => ({
      metadata: { name: 'n1', resourceVersion: rv },
      spec: taint ? { taints: [{ key: 'ToBeDeletedByClusterAutoscaler', value: '1700000000', effect: 'NoSchedule' }] } : {},
    });
    const { nodes, starting } = startWithNode([tainted('5', false)], { deps: { clock }, args: [`--healthz-bind-address=127.0.0.1:${port}`] });
    nodes.release();
    running = await starting;
    await settle(10);
    const healthz = async (path = '/healthz') => {
      const res = await fetch(`http://127.0.0.1:${port}${path}`);
      return { status: res.status, eligible: ((await res.json()) as { nodeEligible?: boolean }).nodeEligible };
    };
    expect(await healthz()).to.deep.equal({ status: 200, eligible: true });
    nodes.emit?.({ type: 'MODIFIED', object: tainted('6', true) });
    await settle(10);
    expect(await healthz()).to.deep.equal({ status: 503, eligible: false });
    expect(await healthz('/livez')).to.deep.equal({ status: 200, eligible: undefined });
    nodes.emit?.({ type: 'MODIFIED', object: tainted('7', false) });
    await settle(10);
    expect(await healthz()).to.deep.equal({ status: 200, eligible: true });
  });

  it('starts without the zone when its Node is not listed within 5 s', async () => {
    const clock = new FakeClock();
    const { starting } = startWithNode([], { deps: { clock } });
    await settle(10);
    expect(restores).to.deep.equal([]);
    await clock.advance(5000);
    running = await starting;
    await settle(10);
    expect(restores.find((t) => t.startsWith('*nat'))).to.include('--to-destination 192.0.2.10:8080');
  });

  it('removes the other modes\' leftover rules before its first sync', async () => {
    const leftover = '*nat\n:OUTPUT ACCEPT [0:0]\n:KUBE-PORTALS-HOST - [0:0]\n-A OUTPUT -j KUBE-PORTALS-HOST\nCOMMIT\n';
    const base = exec;
    exec = async (cmd, args, opts) => (cmd === 'iptables-nft-save' && args.length === 0 ? { code: 0, stdout: leftover, stderr: '' } : base(cmd, args, opts));
    await startListed(['--iptables-backend=nft']);
    const cleanup = restores.findIndex((t) => t.includes('-X KUBE-PORTALS-HOST'));
    const sync = restores.findIndex((t) => t.includes('--to-destination 192.0.2.10:8080'));
    expect(cleanup, 'the cleanup restore').to.be.at.least(0);
    expect(restores[cleanup]).to.include('-D OUTPUT -j KUBE-PORTALS-HOST');
    expect(sync, 'the first sync, after the cleanup').to.be.greaterThan(cleanup);
  });

  it('writes kube-proxy\'s conntrack settings before its first sync (--conntrack-* flags)', async () => {
    kernel.set(CONNTRACK_MAX, '65536\n');
    kernel.set(CONNTRACK_HASHSIZE, '16384\n');
    await startListed(['--conntrack-max-per-core=1000000', '--conntrack-tcp-timeout-close-wait=0'], {}, true);
    expect(Number(kernel.get(CONNTRACK_MAX)), 'at least a million: one CPU or more').to.be.at.least(1_000_000);
    expect(Number(kernel.get(CONNTRACK_HASHSIZE))).to.equal(Math.floor(Number(kernel.get(CONNTRACK_MAX)) / 4));
    expect(kernel.get('/proc/sys/net/netfilter/nf_conntrack_tcp_timeout_established')).to.equal('86400\n');
    expect(kernel.has('/proc/sys/net/netfilter/nf_conntrack_tcp_timeout_close_wait'), '0 leaves it').to.equal(false);
  });

  it('with --nodeport-addresses primary, node ports answer on the Node object\'s InternalIP only', async () => {
    const getNode = async (name: string) => ({ metadata: { name }, status: { addresses: [{ type: 'InternalIP', address: '192.0.2.44' }] } });
    await startListed(['--nodeport-addresses=primary'], { getNode }, true);
    const nat = firstNat();
    expect(nat).to.match(/^-A KUBE-SERVICES -d 192\.0\.2\.44\/32 .*-j KUBE-NODEPORTS$/m);
    expect(nat).to.not.include('--dst-type LOCAL');
  });

  it('with --detect-local-mode=NodeCIDR, pod traffic is told apart by the Node\'s pod CIDR', async () => {
    const getNode = async (name: string) => ({ metadata: { name }, spec: { podCIDR: '10.244.7.0/24' }, status: { addresses: [{ type: 'InternalIP', address: '192.0.2.44' }] } });
    await startListed(['--detect-local-mode=NodeCIDR', '--cluster-cidr=10.244.0.0/16'], { getNode });
    const nat = firstNat();
    expect(nat).to.match(/ ! -s 10\.244\.7\.0\/24 -d 10\.96\.0\.80\/32 .*-j KUBE-MARK-MASQ$/m);
    expect(nat).to.not.include('10.244.0.0/16');
  });

  it('with --detect-local-mode=NodeCIDR, follows a pod CIDR the Node gets after start, and one that changes', async () => {
    const clock = new FakeClock();
    const nodeAt = (rv: string, podCIDR?: string): V1Node => ({
      metadata: { name: 'n1', resourceVersion: rv },
      spec: podCIDR ? { podCIDR } : {},
      status: { addresses: [{ type: 'InternalIP', address: '192.0.2.44' }] },
    });
    // No pod CIDR when asked at start (the wait for it is cut short by the fake clock).
    const { nodes, starting } = startWithNode([nodeAt('1')], { deps: { clock, getNode: async () => nodeAt('1') }, args: ['--detect-local-mode=NodeCIDR'] });
    nodes.release();
    for (let i = 0; i < 40 && !running; i++) {
      await clock.advance(1000);
      running = await Promise.race([starting, settle(5).then(() => undefined)]);
    }
    await settle(10);
    const lastNat = () => restores.filter((t) => t.startsWith('*nat')).at(-1) ?? '';
    expect(lastNat()).to.include('-d 10.96.0.80/32');
    expect(lastNat(), 'no pod traffic told apart yet').to.not.match(/! -s \S+ -d 10\.96\.0\.80\/32/);
    nodes.emit?.({ type: 'MODIFIED', object: nodeAt('2', '10.244.7.0/24') });
    await clock.advance(1000);
    await settle(10);
    expect(lastNat()).to.match(/ ! -s 10\.244\.7\.0\/24 -d 10\.96\.0\.80\/32 .*-j KUBE-MARK-MASQ$/m);
    nodes.emit?.({ type: 'MODIFIED', object: nodeAt('3', '10.244.9.0/24') });
    await clock.advance(1000);
    await settle(10);
    expect(lastNat()).to.match(/ ! -s 10\.244\.9\.0\/24 -d 10\.96\.0\.80\/32 .*-j KUBE-MARK-MASQ$/m);
    expect(lastNat()).to.not.include('10.244.7.0/24');
  });

  it('dual-stack where the kernel has IPv6 on: a proxier per family, each restoring its own tables (ip6tables for IPv6)', async () => {
    kernel.set('/proc/sys/net/ipv6/conf/all/disable_ipv6', '0\n');
    const byCmd = new Map<string, string[]>();
    const base = exec;
    exec = async (cmd, args, opts) => {
      if (!cmd.endsWith('-restore')) return base(cmd, args, opts);
      // The text is read once (it may be a generator), then handed on.
      const input = inputText(opts?.input);
      byCmd.set(cmd, [...(byCmd.get(cmd) ?? []), input]);
      return base(cmd, args, { ...opts, input });
    };
    const dualWeb: V1Service = { ...web, spec: { ...web.spec, clusterIPs: ['10.96.0.80', 'fd00:96::80'], ipFamilies: ['IPv4', 'IPv6'] } };
    const slice6: V1EndpointSlice = { ...webSlice, metadata: { ...webSlice.metadata, name: 'web-2' }, addressType: 'IPv6', endpoints: [{ addresses: ['fd00:244::10'], conditions: { ready: true } }] };
    const services = new GatedListWatch<V1Service>([dualWeb]);
    const slices = new GatedListWatch<V1EndpointSlice>([webSlice, slice6]);
    services.release();
    slices.release();
    const getNode = async (name: string) => ({ metadata: { name }, status: { addresses: [{ type: 'InternalIP', address: '192.0.2.44' }, { type: 'InternalIP', address: 'fd00:2::44' }] } });
    const cap = captureLogger();
    running = await startProxy(fakeDeps({ listWatches: { services, slices }, getNode, log: cap.log }), cfg('--cluster-cidr=10.244.0.0/16,fd00:244::/56', '--nodeport-addresses=primary'));
    await settle(10);
    const nat4 = (byCmd.get('iptables-nft-restore') ?? []).find((t) => t.startsWith('*nat')) ?? '';
    const nat6 = (byCmd.get('ip6tables-nft-restore') ?? []).find((t) => t.startsWith('*nat')) ?? '';
    expect(nat4).to.include('-d 10.96.0.80/32').and.include('--to-destination 192.0.2.10:8080').and.not.include('fd00');
    expect(nat6).to.include('-d fd00:96::80/128').and.include('--to-destination [fd00:244::10]:8080').and.not.include('10.96.0.80');
    // Each family's cluster CIDR, and each family's primary node address for node ports.
    expect(nat6).to.match(/ ! -s fd00:244::\/56 -d fd00:96::80\/128 .*-j KUBE-MARK-MASQ$/m);
    expect(nat6).to.match(/^-A KUBE-SERVICES -d fd00:2::44\/128 .*-j KUBE-NODEPORTS$/m);
    expect(nat4).to.match(/^-A KUBE-SERVICES -d 192\.0\.2\.44\/32 .*-j KUBE-NODEPORTS$/m);
    expect(cap.entries.filter((e) => e.level === 'error'), 'no sync failed').to.deep.equal([]);
    expect(cap.entries.find((e) => e.message === 'proxy running in dual-stack mode')).to.deep.include({ ipFamilies: ['IPv4', 'IPv6'], primaryIPFamily: 'IPv4' });
    expect([...(running.proxier.routedEndpoints() ?? [])].sort()).to.deep.equal(['192.0.2.10', 'fd00:244::10']);
  });

  describe('the primary IP family, as upstream\'s detectNodeIPs', () => {
    const released = () => {
      const services = new GatedListWatch<V1Service>([]);
      const slices = new GatedListWatch<V1EndpointSlice>([]);
      services.release();
      slices.release();
      return { services, slices };
    };
    const announced = async (args: string[], getNode: (name: string) => Promise<V1Node | undefined>, deps: Partial<ProxyDeps> = {}) => {
      kernel.set('/proc/sys/net/ipv6/conf/all/disable_ipv6', '0\n');
      const cap = captureLogger();
      running = await startProxy(fakeDeps({ listWatches: released(), getNode, log: cap.log, ...deps }), cfg(...args));
      const mode = cap.entries.find((e) => e.message.startsWith('proxy running in'));
      return { mode: mode && { message: mode.message, primary: mode['primaryIPFamily'], families: mode['ipFamilies'] }, warnings: cap.entries.filter((e) => e.level === 'warn').map((e) => e.message) };
    };
    const v6First = async (name: string): Promise<V1Node> => ({
      metadata: { name },
      status: { addresses: [{ type: 'Hostname', address: name }, { type: 'InternalIP', address: 'fd00:2::44' }, { type: 'InternalIP', address: '192.0.2.44' }] },
    });

    it('is the Node\'s first IP\'s; a cluster CIDR of the other family only is a warning', async () => {
      const r = await announced(['--cluster-cidr=10.244.0.0/16'], v6First);
      expect(r.mode).to.deep.equal({ message: 'proxy running in dual-stack mode', primary: 'IPv6', families: ['IPv6', 'IPv4'] });
      expect(r.warnings).to.include('cluster is IPv6-primary but clusterCIDRs contains only IPv4 addresses');
    });

    it('is --bind-address\'s when it names an address (the Node is not asked)', async () => {
      let asked = 0;
      const r = await announced(['--bind-address=192.0.2.9', '--cluster-cidr=10.244.0.0/16'], async (n) => (asked++, v6First(n)));
      expect(r.mode).to.deep.include({ primary: 'IPv4', families: ['IPv4', 'IPv6'] });
      expect(asked).to.equal(0);
      expect(r.warnings.filter((w) => w.startsWith('cluster is'))).to.deep.equal([]);
      // 0.0.0.0 (the default) names none: the Node decides.
      await running!.stop();
      running = undefined;
      expect((await announced(['--bind-address=0.0.0.0'], v6First)).mode).to.deep.include({ primary: 'IPv6' });
    });

    it('is IPv4, with a warning, when the Node has no IP within 30 s', async () => {
      const clock = new FakeClock();
      kernel.set('/proc/sys/net/ipv6/conf/all/disable_ipv6', '0\n');
      const cap = captureLogger();
      let done = false;
      const starting = startProxy(fakeDeps({ listWatches: released(), clock, log: cap.log, getNode: async (name) => ({ metadata: { name } }) }), cfg()).then((r) => {
        running = r;
        done = true;
      });
      for (let i = 0; i < 40 && !done; i++) {
        await clock.advance(1000);
        await settle(2);
      }
      await starting;
      expect(cap.entries.find((e) => e.message.startsWith("can't determine this node's IP"))).to.deep.include({ level: 'warn', node: 'n1' });
      expect(cap.entries.find((e) => e.message === 'proxy running in dual-stack mode')).to.deep.include({ primaryIPFamily: 'IPv4' });
    });

    it('refuses a cluster CIDR of the other family only where just the primary family is proxied (local traffic could not be told)', async () => {
      // No IPv4 iptables here: IPv6 only.
      const base = exec;
      exec = async (cmd, args, opts) => (cmd === 'iptables-nft' && args.includes('-S') ? { code: 1, stdout: '', stderr: 'no' } : base(cmd, args, opts));
      let code: string | undefined;
      let message = '';
      await announced(['--cluster-cidr=10.244.0.0/16', '--iptables-backend=nft'], v6First).catch((err: unknown) => {
        code = errorCode(err);
        message = String((err as Error).message);
      });
      expect(code).to.equal('CONFIG_INVALID');
      expect(message).to.equal('cluster is IPv6-only but clusterCIDRs contains only IPv4 addresses');
    });
  });

  it('passes --iptables-masquerade-bit to the rules', async () => {
    await startListed(['--iptables-masquerade-bit=12']);
    expect(firstNat()).to.include('-A KUBE-MARK-MASQ -j MARK --or-mark 0x1000');
  });

  it('builds the userspace proxier for --proxy-mode=userspace', async () => {
    await startListed(['--proxy-mode=userspace'], {}, true);
    expect(running!.proxier).to.be.instanceOf(UserspaceProxier);
  });

  it('fails with CONFIG_INVALID when --nodeport-addresses matches no local address', async () => {
    let code: string | undefined;
    await startProxy(
      fakeDeps(),
      cfg('--nodeport-addresses=203.0.113.0/24'),
    ).catch((err: unknown) => { code = errorCode(err); });
    expect(code).to.equal('CONFIG_INVALID');
  });

  describe('--init-only (as kube-proxy\'s)', () => {
    const init = (args: string[], writeOom: (f: string, t: string) => Promise<void>, sysctlFails = false) => {
      const sysctls: string[] = [];
      const oom: string[] = [];
      const cfg = parseProxyFlags(['--init-only', '--hostname-override', 'n1', ...args]);
      const run = runInitOnly(cfg, {
        kernelFiles,
        sysctl: async (k, v) => {
          if (sysctlFails) throw Object.assign(new Error('EROFS: read-only file system'), { code: 'EROFS' });
          sysctls.push(`${k}=${v}`);
        },
        writeOomScore: async (f, t) => { oom.push(`${f}=${t.trim()}`); await writeOom(f, t); },
      }, nullLogger());
      return { run, sysctls, oom };
    };

    it('needs no kubeconfig; writes the OOM score, the conntrack settings and route_localnet, then exits 0', async () => {
      const r = init([], async () => {});
      expect(await r.run).to.equal(0);
      expect(r.oom).to.deep.equal(['/proc/self/oom_score_adj=-999']);
      expect(Number(kernel.get(CONNTRACK_MAX))).to.be.at.least(131072);
      expect(kernel.get('/proc/sys/net/netfilter/nf_conntrack_tcp_timeout_established')).to.equal('86400\n');
      expect(r.sysctls).to.deep.equal(['net.ipv4.conf.all.route_localnet=1']);
      expect(restores, 'no rules written').to.deep.equal([]);
    });

    it('leaves route_localnet alone in userspace mode or without localhost node ports', async () => {
      for (const args of [['--proxy-mode=userspace'], ['--iptables-localhost-nodeports=false']]) {
        const r = init(args, async () => {});
        expect(await r.run).to.equal(0);
        expect(r.sysctls, args.join(' ')).to.deep.equal([]);
      }
    });

    it('a refused OOM score is logged (exit 0, as kube-proxy); a refused route_localnet exits 1', async () => {
      const refused = async () => { throw Object.assign(new Error('EACCES: permission denied'), { code: 'EACCES' }); };
      expect(await init([], refused).run).to.equal(0);
      expect(await init([], async () => {}, true).run).to.equal(1);
    });
  });
});
