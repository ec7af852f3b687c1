// Facts about this machine for the Node object (what cAdvisor's MachineInfo
// gives upstream kubelet). Reading is tolerant: a missing file gives a
// fallback, never an error. The parsers are pure and exported for tests.
import { readFileSync, statfsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export interface MachineInfo {
  cpuCores: number;
  memoryBytes: number;
  ephemeralStorageBytes: number;
  kernelVersion: string;
  osImage: string;
  operatingSystem: 'linux';
  /** Go naming (GOARCH): amd64, arm64, ... */
  architecture: string;
  machineID: string;
  systemUUID: string;
  bootID: string;
  hostname: string;
}

/** Reads a small text file, trimmed; undefined when it cannot be read. */
function readText(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8').trim();
  } catch {
    return undefined;
  }
}

export function readMachineInfo(rootDir: string): MachineInfo {
  const meminfo = readText('/proc/meminfo');
  const osRelease = readText('/etc/os-release') ?? readText('/usr/lib/os-release');
  return {
    cpuCores: Math.max(1, os.cpus().length),
    memoryBytes: (meminfo !== undefined ? parseMemTotal(meminfo) : undefined) ?? os.totalmem(),
    ephemeralStorageBytes: filesystemBytes(rootDir),
    kernelVersion: os.release(),
    osImage: (osRelease !== undefined ? parsePrettyName(osRelease) : undefined) ?? 'Linux',
    operatingSystem: 'linux',
    architecture: goArch(process.arch, os.endianness()),
    machineID: readText('/etc/machine-id') ?? readText('/var/lib/dbus/machine-id') ?? '',
    systemUUID: readText('/sys/class/dmi/id/product_uuid') ?? '',
    bootID: readText('/proc/sys/kernel/random/boot_id') ?? '',
    hostname: os.hostname(),
  };
}

/** MemTotal from /proc/meminfo text, in bytes. */
export function parseMemTotal(meminfo: string): number | undefined {
  const m = /^MemTotal:\s+(\d+)\s*kB/m.exec(meminfo);
  return m ? Number(m[1]) * 1024 : undefined;
}

/** PRETTY_NAME from os-release text, unquoted. */
export function parsePrettyName(osRelease: string): string | undefined {
  const m = /^PRETTY_NAME=(.*)$/m.exec(osRelease);
  if (!m) return undefined;
  let v = m[1]!.trim();
  if ((v.startsWith('"') && v.endsWith('"')) || (v.startsWith("'") && v.endsWith("'"))) v = v.slice(1, -1);
  v = v.replace(/\\(["'$`\\])/g, '$1');
  return v === '' ? undefined : v;
}

/** Node's process.arch to Go's GOARCH. */
export function goArch(arch: string, endianness: 'BE' | 'LE' = 'LE'): string {
  switch (arch) {
    case 'x64':
      return 'amd64';
    case 'ia32':
      return '386';
    case 'ppc64':
      return endianness === 'LE' ? 'ppc64le' : 'ppc64';
    case 'mipsel':
      return 'mipsle';
    default:
      return arch; // arm64, arm, s390x, riscv64, loong64, mips are spelled the same
  }
}

/** Size of the filesystem holding `dir` (or its nearest existing parent); 0 if unknown. */
function filesystemBytes(dir: string): number {
  let d = path.resolve(dir);
  for (;;) {
    try {
      const s = statfsSync(d);
      return s.blocks * s.bsize;
    } catch {
      const up = path.dirname(d);
      if (up === d) return 0;
      d = up;
    }
  }
}
