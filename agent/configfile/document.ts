// The --config file: a YAML stream holding a KubeletConfiguration and/or a
// KubeProxyConfiguration document, as kubeadm writes them. This module finds
// the documents and reads fields with their paths; kubelet.ts and proxy.ts map
// the fields to flag values, which the flag parsers merge under the flags
// (a flag on the command line wins, as upstream).
import { readFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';
import { NodeletError } from '../../lib/errors.ts';
import type { Logger } from '../../lib/log.ts';
import { parseDuration } from '../config.ts';

export const KUBELET_KIND = 'KubeletConfiguration';
export const KUBELET_API_VERSION = 'kubelet.config.k8s.io/v1beta1';
export const PROXY_KIND = 'KubeProxyConfiguration';
export const PROXY_API_VERSION = 'kubeproxy.config.k8s.io/v1alpha1';

const API_VERSIONS: Record<string, string> = { [KUBELET_KIND]: KUBELET_API_VERSION, [PROXY_KIND]: PROXY_API_VERSION };

/** A field that was accepted but has no effect (unknown, or not supported by nodelet). */
export interface ConfigWarning {
  /** e.g. KubeletConfiguration.evictionHard */
  readonly field: string;
  readonly message: string;
}

/** What a component took from its document; on AgentConfig/ProxyConfig when --config was given. */
export interface ConfigFileInfo {
  readonly path: string;
  readonly warnings: readonly ConfigWarning[];
}

/** The file's documents, by kind; each validated only for apiVersion and kind here. */
export interface ConfigDocuments {
  readonly kubelet?: Record<string, unknown>;
  readonly proxy?: Record<string, unknown>;
}

export type ReadFile = (file: string) => string;
export const readFileUtf8: ReadFile = (file) => readFileSync(file, 'utf8');

export function configInvalid(file: string, field: string, why: string): NodeletError {
  return new NodeletError('CONFIG_INVALID', `${file}: ${field}: ${why}`);
}

function isMapping(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Splits the YAML stream into its documents. Empty documents are skipped; any other kind is an error. */
export function parseConfigDocuments(text: string, file: string): ConfigDocuments {
  const out: { kubelet?: Record<string, unknown>; proxy?: Record<string, unknown> } = {};
  // An empty stream is an empty array; a stream that is not YAML at all has error-bearing documents.
  const list = parseAllDocuments(text);
  for (const [i, doc] of list.entries()) {
    const where = list.length > 1 ? `document ${i + 1}` : 'document';
    const err = doc.errors[0];
    if (err) {
      // The message's first line names the line and column; the rest is a code frame.
      throw new NodeletError('CONFIG_INVALID', `${file}: ${where}: not valid YAML: ${err.message.split('\n')[0]!.replace(/:$/, '')}`);
    }
    const value: unknown = doc.toJS({ maxAliasCount: 100 });
    if (value === null || value === undefined) continue;
    if (!isMapping(value)) throw configInvalid(file, where, `is a ${Array.isArray(value) ? 'list' : typeof value}, not a mapping with apiVersion and kind`);
    const kind = value['kind'];
    const apiVersion = value['apiVersion'];
    if (typeof kind !== 'string' || kind === '') throw configInvalid(file, `${where}.kind`, `is required (${KUBELET_KIND} or ${PROXY_KIND})`);
    const want = API_VERSIONS[kind];
    if (want === undefined) throw configInvalid(file, `${where}.kind`, `'${kind}' is not ${KUBELET_KIND} or ${PROXY_KIND}`);
    if (apiVersion !== want) {
      const got = typeof apiVersion === 'string' ? `'${apiVersion}'` : apiVersion === undefined ? 'missing' : `not a string`;
      throw configInvalid(file, `${kind}.apiVersion`, `${got}; nodelet reads ${kind} as ${want}`);
    }
    const slot = kind === KUBELET_KIND ? 'kubelet' : 'proxy';
    if (out[slot]) throw configInvalid(file, where, `a second ${kind}; give one of each kind at most`);
    out[slot] = value;
  }
  return out;
}

/** Reads and splits the file; an unreadable file is CONFIG_INVALID for --config. */
export function readConfigDocuments(file: string, read: ReadFile = readFileUtf8): ConfigDocuments {
  let text: string;
  try {
    text = read(file);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new NodeletError('CONFIG_INVALID', `--config: cannot read ${file}: ${e.code ?? e.message}`, { cause: err });
  }
  return parseConfigDocuments(text, file);
}

/** Null, '', [] and {} (kubeadm writes such zero values for fields it leaves at their default). */
function isEmpty(v: unknown): boolean {
  if (v === undefined || v === null || v === '') return true;
  if (Array.isArray(v)) return v.length === 0;
  if (isMapping(v)) return Object.values(v).every(isEmpty);
  return false;
}

function typeName(v: unknown): string {
  if (Array.isArray(v)) return 'a list';
  if (v === null) return 'null';
  if (typeof v === 'object') return 'a mapping';
  if (typeof v === 'string') return `the string '${v}'`;
  return `${typeof v} ${String(v)}`;
}

/**
 * One mapping of a document. Getters type-check a field and mark it read;
 * `finish` warns about the fields nobody read (unknown fields warn, as
 * upstream's lenient decoding does). null counts as absent, as Go's decoder.
 */
export class Fields {
  readonly file: string;
  readonly path: string;
  readonly warnings: ConfigWarning[];
  private readonly obj: Record<string, unknown>;
  private readonly seen = new Set<string>();

  constructor(file: string, path: string, obj: Record<string, unknown>, warnings: ConfigWarning[]) {
    this.file = file;
    this.path = path;
    this.obj = obj;
    this.warnings = warnings;
  }

  field(key: string): string {
    return `${this.path}.${key}`;
  }

  fail(key: string, why: string): NodeletError {
    return configInvalid(this.file, this.field(key), why);
  }

  warn(key: string, message: string): void {
    this.warnings.push({ field: this.field(key), message });
  }

  private raw(key: string): unknown {
    this.seen.add(key);
    const v = this.obj[key];
    return v === null ? undefined : v;
  }

  has(key: string): boolean {
    return this.obj[key] !== undefined && this.obj[key] !== null;
  }

  string(key: string): string | undefined {
    const v = this.raw(key);
    if (v === undefined) return undefined;
    if (typeof v !== 'string') throw this.fail(key, `must be a string, not ${typeName(v)}`);
    return v;
  }

  bool(key: string): boolean | undefined {
    const v = this.raw(key);
    if (v === undefined) return undefined;
    if (typeof v !== 'boolean') throw this.fail(key, `must be true or false, not ${typeName(v)}`);
    return v;
  }

  int(key: string): number | undefined {
    const v = this.raw(key);
    if (v === undefined) return undefined;
    if (typeof v !== 'number' || !Number.isInteger(v)) throw this.fail(key, `must be a whole number, not ${typeName(v)}`);
    return v;
  }

  /** A metav1.Duration: a Go duration string ('10s', '1m30s'), in ms. */
  duration(key: string): number | undefined {
    const v = this.raw(key);
    if (v === undefined) return undefined;
    if (typeof v !== 'string') throw this.fail(key, `must be a duration string like '10s' or '1m30s', not ${typeName(v)}`);
    try {
      return parseDuration(v);
    } catch (err) {
      throw this.fail(key, (err as Error).message);
    }
  }

  stringList(key: string): string[] | undefined {
    const v = this.raw(key);
    if (v === undefined) return undefined;
    if (!Array.isArray(v)) throw this.fail(key, `must be a list of strings, not ${typeName(v)}`);
    return v.map((item, i) => {
      if (typeof item !== 'string') throw this.fail(`${key}[${i}]`, `must be a string, not ${typeName(item)}`);
      return item;
    });
  }

  stringMap(key: string): Record<string, string> | undefined {
    const v = this.raw(key);
    if (v === undefined) return undefined;
    if (!isMapping(v)) throw this.fail(key, `must be a mapping of strings, not ${typeName(v)}`);
    const out: Record<string, string> = {};
    for (const [k, item] of Object.entries(v)) {
      if (typeof item !== 'string') throw this.fail(`${key}[${k}]`, `must be a string, not ${typeName(item)}`);
      out[k] = item;
    }
    return out;
  }

  object(key: string): Fields | undefined {
    const v = this.raw(key);
    if (v === undefined) return undefined;
    if (!isMapping(v)) throw this.fail(key, `must be a mapping, not ${typeName(v)}`);
    return new Fields(this.file, this.field(key), v, this.warnings);
  }

  /** Marks fields read elsewhere (apiVersion, kind), so they do not warn. */
  skip(keys: readonly string[]): void {
    for (const key of keys) this.seen.add(key);
  }

  /** Upstream fields nodelet takes but does not act on: accepted, with a warning when set to something. */
  unsupported(keys: readonly string[]): void {
    for (const key of keys) {
      if (!this.seen.has(key) && !isEmpty(this.obj[key])) this.warn(key, 'not supported by nodelet; ignored');
      this.seen.add(key);
    }
  }

  /** Warns about every field no getter read. */
  finish(): void {
    for (const key of Object.keys(this.obj)) {
      if (!this.seen.has(key)) this.warn(key, `unknown field; ignored`);
    }
  }
}

/** Logs what a component's document held that has no effect, once, at start. */
export function logConfigWarnings(log: Logger, info: ConfigFileInfo | undefined): void {
  for (const w of info?.warnings ?? []) log.warn(`config file: ${w.field}: ${w.message}`, { file: info!.path, field: w.field });
}
