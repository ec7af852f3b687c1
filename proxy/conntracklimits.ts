// kube-proxy's conntrack settings at start (its server_linux.go): the table
// size nf_conntrack_max = max(maxPerCore x CPUs, min), with the hash table
// grown to a quarter of it; the TCP established and close-wait timeouts; and,
// when asked, be-liberal and the UDP timeouts. 0 leaves the kernel's value.
// Unlike kube-proxy, a value the kernel refuses (nf_conntrack_max is
// read-only outside the host's network namespace; /sys is read-only in many
// containers) is a warning, not a failed start: the proxy works without it.
import { readFile, writeFile } from 'node:fs/promises';
import { describeError } from '../lib/errors.ts';
import type { Logger } from '../lib/log.ts';

export interface ConntrackConfig {
  /** Entries per CPU; 0 leaves nf_conntrack_max (and min) alone. */
  readonly maxPerCore: number;
  readonly min: number;
  /** Seconds; 0 leaves the kernel's timeout. */
  readonly tcpEstablishedTimeoutS: number;
  readonly tcpCloseWaitTimeoutS: number;
  readonly tcpBeLiberal: boolean;
  readonly udpTimeoutS: number;
  readonly udpStreamTimeoutS: number;
}

/** Upstream's defaults (KubeProxyConntrackConfiguration). */
export const CONNTRACK_DEFAULTS: ConntrackConfig = Object.freeze({
  maxPerCore: 32768,
  min: 131072,
  tcpEstablishedTimeoutS: 24 * 3600,
  tcpCloseWaitTimeoutS: 3600,
  tcpBeLiberal: false,
  udpTimeoutS: 0,
  udpStreamTimeoutS: 0,
});

const NETFILTER = '/proc/sys/net/netfilter';
export const CONNTRACK_MAX = `${NETFILTER}/nf_conntrack_max`;
export const CONNTRACK_HASHSIZE = '/sys/module/nf_conntrack/parameters/hashsize';

/** Upstream's getConntrackMax: 0 when maxPerCore is 0 (leave it). */
export function conntrackMax(c: ConntrackConfig, cpus: number): number {
  if (c.maxPerCore <= 0) return 0;
  return Math.max(c.maxPerCore * cpus, c.min);
}

export interface KernelSetting {
  file: string;
  value: number;
}

/** The files to write, in upstream's order (the table size first). */
export function conntrackSettings(c: ConntrackConfig, cpus: number): KernelSetting[] {
  const out: KernelSetting[] = [];
  const max = conntrackMax(c, cpus);
  if (max > 0) out.push({ file: CONNTRACK_MAX, value: max });
  const add = (name: string, value: number) => {
    if (value > 0) out.push({ file: `${NETFILTER}/${name}`, value });
  };
  add('nf_conntrack_tcp_timeout_established', c.tcpEstablishedTimeoutS);
  add('nf_conntrack_tcp_timeout_close_wait', c.tcpCloseWaitTimeoutS);
  if (c.tcpBeLiberal) add('nf_conntrack_tcp_be_liberal', 1);
  add('nf_conntrack_udp_timeout', c.udpTimeoutS);
  add('nf_conntrack_udp_timeout_stream', c.udpStreamTimeoutS);
  return out;
}

/** /proc/sys and /sys files (tests pass a map). */
export interface KernelFiles {
  read(file: string): Promise<string>;
  write(file: string, value: string): Promise<void>;
}

export const realKernelFiles: KernelFiles = {
  read: (file) => readFile(file, 'utf8'),
  write: (file, value) => writeFile(file, value),
};

export interface ConntrackReport {
  /** "file=value" for each value written. */
  set: string[];
  /** "file: why" for each value the kernel refused. */
  failed: string[];
}

/** Writes each setting whose file holds another value; a refused write is reported and logged, the rest go on. */
export async function applyConntrackSettings(files: KernelFiles, log: Logger, c: ConntrackConfig, cpus: number): Promise<ConntrackReport> {
  const report: ConntrackReport = { set: [], failed: [] };
  const ensure = async (s: KernelSetting): Promise<boolean> => {
    try {
      const cur = Number((await files.read(s.file)).trim());
      if (cur === s.value) return true;
      await files.write(s.file, `${s.value}\n`);
      report.set.push(`${s.file}=${s.value}`);
      return true;
    } catch (err) {
      report.failed.push(`${s.file}: ${describeError(err)}`);
      return false;
    }
  };
  for (const s of conntrackSettings(c, cpus)) {
    const ok = await ensure(s);
    // As upstream's SetMax: the hash table follows a table size that took, and only grows.
    if (ok && s.file === CONNTRACK_MAX) {
      const buckets = Math.floor(s.value / 4);
      try {
        const cur = Number((await files.read(CONNTRACK_HASHSIZE)).trim());
        if (cur < buckets) await ensure({ file: CONNTRACK_HASHSIZE, value: buckets });
      } catch (err) {
        report.failed.push(`${CONNTRACK_HASHSIZE}: ${describeError(err)}`);
      }
    }
  }
  if (report.set.length > 0) log.info('conntrack settings', { set: report.set });
  if (report.failed.length > 0) {
    log.warn('conntrack settings not applied (outside the host network namespace, or /sys read-only?); the kernel keeps its values', { failed: report.failed });
  }
  return report;
}
