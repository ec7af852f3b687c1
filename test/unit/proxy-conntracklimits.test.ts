// kube-proxy's conntrack settings: the pure choice of values, writing them
// through fake kernel files (refusals reported, the rest written), and the
// --conntrack-* flags and KubeProxyConfiguration.conntrack fields.
import { expect } from 'chai';
import { nullLogger } from '../../lib/log.ts';
import { parseProxyFlags } from '../../proxy/config.ts';
import {
  applyConntrackSettings,
  CONNTRACK_DEFAULTS,
  CONNTRACK_HASHSIZE,
  CONNTRACK_MAX,
  conntrackMax,
  conntrackSettings,
  type KernelFiles,
} from '../../proxy/conntracklimits.ts';

const NF = '/proc/sys/net/netfilter';
const host = { hostname: () => 'node-a', networkInterfaces: () => ({}) };

/** Kernel files in a map; files in `readOnly` refuse writes as /proc/sys does outside the host netns. */
function fakeKernel(initial: Record<string, string>, readOnly: string[] = []): { files: KernelFiles; kernel: Map<string, string>; writes: string[] } {
  const kernel = new Map(Object.entries(initial));
  const writes: string[] = [];
  const files: KernelFiles = {
    read: async (f) => {
      const v = kernel.get(f);
      if (v === undefined) throw Object.assign(new Error(`ENOENT: no such file or directory, open '${f}'`), { code: 'ENOENT' });
      return v;
    },
    write: async (f, v) => {
      if (readOnly.includes(f)) throw Object.assign(new Error(`EACCES: permission denied, open '${f}'`), { code: 'EACCES' });
      writes.push(`${f}=${v.trim()}`);
      kernel.set(f, v);
    },
  };
  return { files, kernel, writes };
}

describe('proxy conntrack settings', () => {
  it('sizes the table as upstream: maxPerCore x CPUs, at least min; maxPerCore 0 leaves it', () => {
    expect(conntrackMax(CONNTRACK_DEFAULTS, 2)).to.equal(131072);
    expect(conntrackMax(CONNTRACK_DEFAULTS, 8)).to.equal(262144);
    expect(conntrackMax({ ...CONNTRACK_DEFAULTS, min: 0 }, 1)).to.equal(32768);
    expect(conntrackMax({ ...CONNTRACK_DEFAULTS, maxPerCore: 0 }, 64)).to.equal(0);
  });

  it('writes the defaults kube-proxy writes, and the opt-in ones only when asked', () => {
    expect(conntrackSettings(CONNTRACK_DEFAULTS, 4)).to.deep.equal([
      { file: CONNTRACK_MAX, value: 131072 },
      { file: `${NF}/nf_conntrack_tcp_timeout_established`, value: 86400 },
      { file: `${NF}/nf_conntrack_tcp_timeout_close_wait`, value: 3600 },
    ]);
    const all = { maxPerCore: 0, min: 0, tcpEstablishedTimeoutS: 0, tcpCloseWaitTimeoutS: 0, tcpBeLiberal: true, udpTimeoutS: 30, udpStreamTimeoutS: 180 };
    expect(conntrackSettings(all, 4)).to.deep.equal([
      { file: `${NF}/nf_conntrack_tcp_be_liberal`, value: 1 },
      { file: `${NF}/nf_conntrack_udp_timeout`, value: 30 },
      { file: `${NF}/nf_conntrack_udp_timeout_stream`, value: 180 },
    ]);
    expect(conntrackSettings({ ...all, tcpBeLiberal: false, udpTimeoutS: 0, udpStreamTimeoutS: 0 }, 4)).to.deep.equal([]);
  });

  it('writes only values that differ, and grows the hash table to a quarter of the table size', async () => {
    const { files, writes } = fakeKernel({
      [CONNTRACK_MAX]: '65536\n',
      [CONNTRACK_HASHSIZE]: '16384\n',
      [`${NF}/nf_conntrack_tcp_timeout_established`]: '432000\n',
      [`${NF}/nf_conntrack_tcp_timeout_close_wait`]: '3600\n',
    });
    const r = await applyConntrackSettings(files, nullLogger(), CONNTRACK_DEFAULTS, 2);
    expect(writes).to.deep.equal([`${CONNTRACK_MAX}=131072`, `${CONNTRACK_HASHSIZE}=32768`, `${NF}/nf_conntrack_tcp_timeout_established=86400`]);
    expect(r).to.deep.equal({ set: writes, failed: [] });
  });

  it('never shrinks the hash table', async () => {
    const { files, writes } = fakeKernel({ [CONNTRACK_MAX]: '65536\n', [CONNTRACK_HASHSIZE]: '262144\n' });
    await applyConntrackSettings(files, nullLogger(), { ...CONNTRACK_DEFAULTS, tcpEstablishedTimeoutS: 0, tcpCloseWaitTimeoutS: 0 }, 2);
    expect(writes).to.deep.equal([`${CONNTRACK_MAX}=131072`]);
  });

  it('reports what the kernel refuses (a network namespace: the table size is read-only) and writes the rest', async () => {
    const { files, writes, kernel } = fakeKernel(
      { [CONNTRACK_MAX]: '262144\n', [CONNTRACK_HASHSIZE]: '1024\n', [`${NF}/nf_conntrack_tcp_timeout_established`]: '432000\n', [`${NF}/nf_conntrack_tcp_timeout_close_wait`]: '60\n' },
      [CONNTRACK_MAX],
    );
    const r = await applyConntrackSettings(files, nullLogger(), CONNTRACK_DEFAULTS, 2);
    expect(r.failed).to.have.length(1);
    expect(r.failed[0]).to.match(/nf_conntrack_max: .*EACCES/);
    expect(writes, 'no hash table change when the size did not take').to.deep.equal([`${NF}/nf_conntrack_tcp_timeout_established=86400`, `${NF}/nf_conntrack_tcp_timeout_close_wait=3600`]);
    expect(kernel.get(CONNTRACK_HASHSIZE)).to.equal('1024\n');
  });

  it('reports a missing conntrack module (no files) without throwing', async () => {
    const r = await applyConntrackSettings(fakeKernel({}).files, nullLogger(), CONNTRACK_DEFAULTS, 2);
    expect(r.set).to.deep.equal([]);
    expect(r.failed.map((f) => f.split(':')[0])).to.deep.equal([CONNTRACK_MAX, `${NF}/nf_conntrack_tcp_timeout_established`, `${NF}/nf_conntrack_tcp_timeout_close_wait`]);
  });
});

describe('proxy conntrack flags and config file', () => {
  const parse = (...argv: string[]) => parseProxyFlags(['--kubeconfig=/k', ...argv], host);

  it('defaults to upstream\'s values and takes the --conntrack-* flags', () => {
    expect(parse().conntrack).to.deep.equal(CONNTRACK_DEFAULTS);
    expect(
      parse('--conntrack-max-per-core=0', '--conntrack-min', '1000', '--conntrack-tcp-timeout-established=1h30m', '--conntrack-tcp-timeout-close-wait=0',
        '--conntrack-tcp-be-liberal', '--conntrack-udp-timeout=30s', '--conntrack-udp-timeout-stream=2m0s').conntrack,
    ).to.deep.equal({ maxPerCore: 0, min: 1000, tcpEstablishedTimeoutS: 5400, tcpCloseWaitTimeoutS: 0, tcpBeLiberal: true, udpTimeoutS: 30, udpStreamTimeoutS: 120 });
  });

  it('rejects bad values naming the flag', () => {
    for (const [arg, re] of [
      ['--conntrack-max-per-core=-1', /--conntrack-max-per-core: '-1' is not a whole number/],
      ['--conntrack-min=lots', /--conntrack-min: 'lots' is not a whole number/],
      ['--conntrack-tcp-timeout-established=forever', /--conntrack-tcp-timeout-established: 'forever' is not a duration/],
      ['--conntrack-tcp-be-liberal=perhaps', /--conntrack-tcp-be-liberal: 'perhaps' is not true or false/],
    ] as const) {
      expect(() => parse(arg), arg).to.throw(re);
    }
  });
});
