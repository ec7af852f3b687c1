// IP address and CIDR helpers for both families, spelled as Go's net package
// spells them (IPv6 compressed as RFC 5952, lower case), so that addresses
// and CIDRs we write compare with the ones upstream components write.
import net from 'node:net';

export type IPFamily = 'IPv4' | 'IPv6';

/** The family of an address or of a CIDR's address; undefined when it is neither. */
export function ipFamilyOf(ipOrCIDR: string): IPFamily | undefined {
  const v = net.isIP(ipOrCIDR.split('/')[0] ?? '');
  return v === 4 ? 'IPv4' : v === 6 ? 'IPv6' : undefined;
}

/** `host:port`, bracketing IPv6 literals (Go's net.JoinHostPort). */
export function joinHostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/** An address as a number (32 bits for IPv4, 128 for IPv6; a trailing dotted quad in IPv6 is read). */
export function ipToBigInt(ip: string): bigint {
  if (net.isIPv4(ip)) return ip.split('.').reduce((acc, o) => (acc << 8n) | BigInt(Number(o)), 0n);
  let text = ip.split('%')[0] ?? '';
  let tail: bigint[] = [];
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4) {
    const n = ipToBigInt(v4[1]!);
    tail = [n >> 16n, n & 0xffffn];
    text = text.slice(0, -v4[1]!.length) + '0:0';
  }
  const [head = '', rest] = text.split('::');
  const h = head ? head.split(':') : [];
  const r = rest !== undefined && rest !== '' ? rest.split(':') : [];
  const groups = rest !== undefined ? [...h, ...Array<string>(8 - h.length - r.length).fill('0'), ...r] : h;
  const nums = groups.map((g) => BigInt(parseInt(g, 16)));
  if (tail.length) nums.splice(6, 2, ...tail);
  return nums.reduce((acc, g) => (acc << 16n) | g, 0n);
}

/** A number back to an address (4 or 6: the family), IPv6 compressed as RFC 5952. */
export function bigIntToIp(n: bigint, family: 4 | 6): string {
  if (family === 4) return [24n, 16n, 8n, 0n].map((s) => String((n >> s) & 0xffn)).join('.');
  const groups: string[] = [];
  for (let s = 112n; s >= 0n; s -= 16n) groups.push(((n >> s) & 0xffffn).toString(16));
  // Compress the longest run of two or more zero groups (the first of equal runs).
  let best = -1;
  let bestLen = 0;
  for (let i = 0; i < groups.length; ) {
    let j = i;
    while (j < groups.length && groups[j] === '0') j++;
    if (j - i > bestLen) [best, bestLen] = [i, j - i];
    i = j > i ? j : i + 1;
  }
  if (bestLen < 2) return groups.join(':');
  return `${groups.slice(0, best).join(':')}::${groups.slice(best + bestLen).join(':')}`;
}

/** The address in Go's spelling (IPv6 compressed, lower case); undefined when it is not one. */
export function canonicalIP(ip: string): string | undefined {
  const v = net.isIP(ip);
  if (v === 4) return ip;
  if (v === 6) return bigIntToIp(ipToBigInt(ip), 6);
  return undefined;
}

/** "addr/n" with its host bits cleared (as Go's net.ParseCIDR gives it), or undefined when it is not a CIDR. */
export function normalizeCIDR(text: string): string | undefined {
  const m = /^([^/]+)\/(\d{1,3})$/.exec(text);
  if (!m) return undefined;
  const v = net.isIP(m[1]!);
  if (v !== 4 && v !== 6) return undefined;
  // Go accepts only plain dotted quads with no leading zeros beyond "0" in IPv4 CIDRs; net.isIP agrees.
  const width = v === 4 ? 32 : 128;
  const bits = Number(m[2]);
  if (bits > width) return undefined;
  const host = BigInt(width - bits);
  const base = (ipToBigInt(m[1]!) >> host) << host;
  return `${bigIntToIp(base, v)}/${bits}`;
}

/** Whether `ip` is inside `cidr` (false across families). */
export function ipInCIDR(ip: string, cidr: string): boolean {
  const [base = '', bitsText] = cidr.split('/');
  const v = net.isIP(ip);
  if (v === 0 || v !== net.isIP(base)) return false;
  const width = v === 4 ? 32 : 128;
  const host = BigInt(width - Number(bitsText ?? width));
  return ipToBigInt(ip) >> host === ipToBigInt(base) >> host;
}
