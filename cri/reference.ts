// Image references normalised as upstream (distribution/reference's
// ParseNormalizedNamed + TagNameOnly): 'busybox' -> 'docker.io/library/busybox:latest',
// 'index.docker.io' -> 'docker.io', a tag is added only when there is no digest.
import { NodeletError } from '../lib/errors.ts';

export const DEFAULT_DOMAIN = 'docker.io';
const LEGACY_DEFAULT_DOMAIN = 'index.docker.io';
const OFFICIAL_REPO_PREFIX = 'library/';
export const DEFAULT_TAG = 'latest';

const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const DOMAIN_COMPONENT = /^(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])$/;
const TAG = /^[\w][\w.-]{0,127}$/;
const DIGEST = /^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}$/;
const IMAGE_ID = /^(?:sha256:)?([a-f0-9]{64})$/;

export interface ImageReference {
  /** Registry host (and port): 'docker.io', 'localhost:5000', 'nodelet.local'. */
  domain: string;
  /** Repository path inside the registry: 'library/busybox'. */
  path: string;
  tag?: string;
  digest?: string;
}

/** 'sha256:<hex>' when ref is an image ID (with or without the prefix), else undefined. */
export function asImageID(ref: string): string | undefined {
  const m = IMAGE_ID.exec(ref);
  return m ? `sha256:${m[1]}` : undefined;
}

/** Parses and normalises a reference; throws CRI_INVALID_IMAGE with the reason. */
export function parseImageReference(ref: string): ImageReference {
  const bad = (why: string) => new NodeletError('CRI_INVALID_IMAGE', `invalid image reference "${ref}": ${why}`);
  if (ref === '') throw bad('empty');
  if (ref.length > 255) throw bad('too long');
  let rest = ref;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST.test(digest)) throw bad(`bad digest "${digest}"`);
    if (digest.startsWith('sha256:') && !/^sha256:[a-f0-9]{64}$/.test(digest)) throw bad('sha256 digest must be 64 hex digits');
  }
  let tag: string | undefined;
  const lastSlash = rest.lastIndexOf('/');
  const colon = rest.indexOf(':', lastSlash + 1);
  if (colon >= 0) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) throw bad(`bad tag "${tag}"`);
  }
  if (IMAGE_ID.test(rest) && !rest.includes('/')) throw bad('cannot specify 64-byte hexadecimal strings as a name');
  let domain = DEFAULT_DOMAIN;
  let path = rest;
  const slash = rest.indexOf('/');
  if (slash >= 0) {
    const first = rest.slice(0, slash);
    if (first.includes('.') || first.includes(':') || first === 'localhost' || first !== first.toLowerCase()) {
      domain = first;
      path = rest.slice(slash + 1);
    }
  }
  if (domain === LEGACY_DEFAULT_DOMAIN) domain = DEFAULT_DOMAIN;
  if (domain === DEFAULT_DOMAIN && !path.includes('/')) path = OFFICIAL_REPO_PREFIX + path;
  if (path !== path.toLowerCase()) throw bad('repository name must be lowercase');
  for (const c of path.split('/')) if (!PATH_COMPONENT.test(c)) throw bad(`bad path component "${c}"`);
  const [host, port] = domain.split(':') as [string, string | undefined];
  if (port !== undefined && !/^\d+$/.test(port)) throw bad(`bad port "${port}"`);
  for (const c of host.split('.')) if (!DOMAIN_COMPONENT.test(c)) throw bad(`bad domain "${domain}"`);
  const out: ImageReference = { domain, path };
  if (tag !== undefined) out.tag = tag;
  if (digest !== undefined) out.digest = digest;
  return out;
}

/** The repository: 'docker.io/library/busybox'. */
export function repository(r: ImageReference): string {
  return `${r.domain}/${r.path}`;
}

/** Full normalised form; adds ':latest' when there is neither tag nor digest. */
export function normalizeImage(ref: string): string {
  const r = parseImageReference(ref);
  let s = repository(r);
  if (r.tag !== undefined) s += `:${r.tag}`;
  else if (r.digest === undefined) s += `:${DEFAULT_TAG}`;
  if (r.digest !== undefined) s += `@${r.digest}`;
  return s;
}

/** The short form people type and Docker prints: 'busybox:latest', 'nodelet.local/pause:3.10'. */
export function familiarName(ref: string): string {
  const full = normalizeImage(ref);
  const prefix = `${DEFAULT_DOMAIN}/${OFFICIAL_REPO_PREFIX}`;
  if (full.startsWith(prefix)) {
    const rest = full.slice(prefix.length);
    // 'docker.io/library/foo/bar' is not an official image; keep 'library/'.
    if (!rest.split(/[:@]/)[0]!.includes('/')) return rest;
  }
  if (full.startsWith(`${DEFAULT_DOMAIN}/`)) return full.slice(DEFAULT_DOMAIN.length + 1);
  return full;
}

/** Every way Docker may list the same image in RepoTags (familiar and full names). */
export function referenceAliases(ref: string): string[] {
  const full = normalizeImage(ref);
  return [...new Set([full, familiarName(ref)])];
}
