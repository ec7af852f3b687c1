// Where a pod's volumes live on disk, laid out as upstream's kubelet does
// under its root dir, so tools and habits that know /var/lib/kubelet find
// their way: pods/<uid>/volumes/<plugin>/<volume> and
// pods/<uid>/containers/<container>/<random> for termination-message files.
import path from 'node:path';

/** Upstream plugin names with "/" escaped to "~" (utilstrings.EscapeQualifiedName). */
export const PLUGIN_EMPTY_DIR = 'kubernetes.io~empty-dir';
export const PLUGIN_CONFIGMAP = 'kubernetes.io~configmap';
export const PLUGIN_SECRET = 'kubernetes.io~secret';
export const PLUGIN_DOWNWARD_API = 'kubernetes.io~downward-api';
export const PLUGIN_PROJECTED = 'kubernetes.io~projected';

export function podsDir(rootDir: string): string {
  return path.join(rootDir, 'pods');
}

export function podDir(rootDir: string, uid: string): string {
  return path.join(podsDir(rootDir), uid);
}

export function podVolumesDir(rootDir: string, uid: string): string {
  return path.join(podDir(rootDir, uid), 'volumes');
}

export function volumeDir(rootDir: string, uid: string, plugin: string, volume: string): string {
  return path.join(podVolumesDir(rootDir, uid), plugin, volume);
}

export function containerDir(rootDir: string, uid: string, container: string): string {
  return path.join(podDir(rootDir, uid), 'containers', container);
}

/**
 * A pod UID or a volume/container name that is safe as one path component.
 * UIDs and DNS-label names always are; anything else would let an API object
 * steer our file I/O outside the root dir.
 */
export function isSafeComponent(s: string): boolean {
  return s !== '' && s !== '.' && s !== '..' && !s.includes('/') && !s.includes('\0');
}
