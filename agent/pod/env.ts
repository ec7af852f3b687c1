// A container's environment as upstream's kubelet builds it
// (kubelet_pods.go makeEnvironmentVariables, envvars.FromServices, v1.37):
// service link variables, then envFrom, then env in order with $(VAR)
// expansion against what is defined so far. A later source overrides an
// earlier one. Every failure is CreateContainerConfigError with upstream's
// message, which the pod status shows as the waiting reason's message.
import { joinHostPort } from '../../lib/ip.ts';
import { sortPodIPs } from './podips.ts';
import path from 'node:path';
import type {
  V1ConfigMap,
  V1Container,
  V1ObjectFieldSelector,
  V1Pod,
  V1ResourceFieldSelector,
  V1Secret,
  V1Service,
} from '@kubernetes/client-node';
import { describeError, NodeletError } from '../../lib/errors.ts';
import { readEnvFileKey } from './envfile.ts';
import { CREATE_CONTAINER_CONFIG_ERROR, expand, type EnvVar } from './expand.ts';
import {
  containerResourceValue as sharedContainerResourceValue,
  DOWNWARD_API_INVALID,
  extractFieldPath,
  isZeroOrMissing,
  splitSubscript,
  type ResourceList,
} from './fieldpath.ts';
import type { PodObjects } from './objects.ts';

export { CREATE_CONTAINER_CONFIG_ERROR } from './expand.ts';
export type { EnvVar } from './expand.ts';

export interface EnvContext {
  objects: PodObjects;
  podIPs: string[];
  /** The node's IPs, primary first (status.hostIP is the first). */
  hostIPs: string[];
  nodeName: string;
  /** Defaults for missing limits in resourceFieldRef (upstream uses node allocatable). */
  nodeAllocatable?: { cpu: string; memory: string; 'ephemeral-storage'?: string };
  /** Where the `kubernetes` service lives. */
  masterServiceNamespace?: 'default';
  /** Host directory of the pod's mounted volume `name` (for fileKeyRef); undefined when not mounted. */
  volumePath?: (name: string) => string | undefined;
}

/** envFrom keys that cannot be an environment variable name and were left out. */
export interface SkippedEnvFromKeys {
  kind: 'ConfigMap' | 'Secret';
  namespace: string;
  name: string;
  keys: string[];
}

export interface ContainerEnvironment {
  env: EnvVar[];
  skipped: SkippedEnvFromKeys[];
}

/** The master services whose variables every pod gets, even with enableServiceLinks false. */
const MASTER_SERVICES = new Set(['kubernetes']);

function configError(message: string, cause?: unknown): NodeletError {
  return new NodeletError(CREATE_CONTAINER_CONFIG_ERROR, message, cause === undefined ? undefined : { cause });
}

export async function makeEnvironment(pod: V1Pod, container: V1Container, ctx: EnvContext): Promise<ContainerEnvironment> {
  const namespace = pod.metadata?.namespace ?? 'default';
  // The API server defaults enableServiceLinks to true.
  const serviceEnv = await serviceEnvFor(ctx, namespace, pod.spec?.enableServiceLinks !== false, pod.metadata?.resourceVersion);

  const lookups = new ObjectLookups(ctx.objects, namespace);
  const tmpEnv = new Map<string, string>();
  const skipped: SkippedEnvFromKeys[] = [];

  // envFrom first; env may then replace what it set.
  for (const from of container.envFrom ?? []) {
    const prefix = from.prefix ?? '';
    let kind: SkippedEnvFromKeys['kind'];
    let name: string;
    let data: Record<string, string>;
    if (from.configMapRef) {
      kind = 'ConfigMap';
      name = from.configMapRef.name ?? '';
      const cm = await lookups.configMap(name, from.configMapRef.optional === true);
      if (!cm) continue;
      data = cm.data ?? {};
    } else if (from.secretRef) {
      kind = 'Secret';
      name = from.secretRef.name ?? '';
      const secret = await lookups.secret(name, from.secretRef.optional === true);
      if (!secret) continue;
      data = decodeSecretData(secret);
    } else {
      continue;
    }
    const bad: string[] = [];
    for (const [k, v] of Object.entries(data)) {
      const key = prefix + k;
      if (!isRelaxedEnvVarName(key)) {
        bad.push(key);
        continue;
      }
      tmpEnv.set(key, v);
    }
    if (bad.length > 0) skipped.push({ kind, namespace, name, keys: bad.sort() });
  }

  const mapping = (name: string): string | undefined => tmpEnv.get(name) ?? serviceEnv.get(name);
  for (const e of container.env ?? []) {
    let value = e.value ?? '';
    if (value !== '') {
      value = expand(value, mapping);
    } else if (e.valueFrom) {
      const src = e.valueFrom;
      if (src.fieldRef) {
        value = podFieldValue(pod, src.fieldRef, ctx);
      } else if (src.resourceFieldRef) {
        value = containerResourceValue(src.resourceFieldRef, pod, container, allocatableFor(pod, ctx.nodeAllocatable));
      } else if (src.configMapKeyRef) {
        const ref = src.configMapKeyRef;
        const optional = ref.optional === true;
        const cm = await lookups.configMap(ref.name ?? '', optional);
        if (!cm) continue;
        const v = cm.data?.[ref.key];
        if (v === undefined) {
          if (optional) continue;
          throw configError(`couldn't find key ${ref.key} in ConfigMap ${namespace}/${ref.name ?? ''}`);
        }
        value = v;
      } else if (src.secretKeyRef) {
        const ref = src.secretKeyRef;
        const optional = ref.optional === true;
        const secret = await lookups.secret(ref.name ?? '', optional);
        if (!secret) continue;
        const v = decodeSecretData(secret)[ref.key];
        if (v === undefined) {
          if (optional) continue;
          throw configError(`couldn't find key ${ref.key} in Secret ${namespace}/${ref.name ?? ''}`);
        }
        value = v;
      } else if (src.fileKeyRef) {
        const ref = src.fileKeyRef;
        const root = ctx.volumePath?.(ref.volumeName);
        if (root === undefined) throw configError(`cannot find the volume "${ref.volumeName}" referenced by FileKeyRef`);
        let v: string | undefined;
        try {
          v = await readEnvFileKey(root, ref.path, ref.key);
        } catch (err) {
          throw configError("couldn't parse env file", err);
        }
        // Upstream treats an empty value like a missing key.
        if (v === undefined || v === '') {
          if (ref.optional === true) continue;
          throw configError(`environment variable key "${ref.key}" not found in file "${path.join(root, ref.path)}"`);
        }
        value = v;
      }
    }
    tmpEnv.set(e.name, value);
  }

  // Service variables first, then the container's own; a name the container
  // defines takes its value from the container.
  const final = new Map<string, string>(serviceEnv);
  for (const [k, v] of tmpEnv) final.set(k, v);
  return { env: [...final].map(([key, value]) => ({ key, value })), skipped };
}

/**
 * Event text for skipped envFrom keys, as upstream worded it (reason
 * InvalidEnvironmentVariableNames) before relaxed names went GA; v1.37 no
 * longer skips any key a valid ConfigMap or Secret can hold.
 */
export function skippedKeysMessage(s: SkippedEnvFromKeys): string {
  const what = s.kind === 'ConfigMap' ? 'configMap' : 'secret';
  return `Keys [${s.keys.join(', ')}] from the EnvFrom ${what} ${s.namespace}/${s.name} were skipped since they are considered invalid environment variable names.`;
}

/**
 * Since RelaxedEnvironmentVariableValidation went GA, upstream accepts any
 * printable ASCII name without '='. Anything else cannot be passed to the
 * runtime as NAME=VALUE, so it is left out.
 */
export function isRelaxedEnvVarName(name: string): boolean {
  return name !== '' && /^[\x20-\x3c\x3e-\x7e]+$/.test(name);
}

/** Secret values arrive base64-encoded (V1Secret.data). */
export function decodeSecretData(secret: V1Secret): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(secret.data ?? {})) out[k] = Buffer.from(v, 'base64').toString('utf8');
  return out;
}

/** ConfigMaps and Secrets fetched once per environment build, as upstream's local maps. */
class ObjectLookups {
  private readonly objects: PodObjects;
  private readonly namespace: string;
  private readonly configMaps = new Map<string, V1ConfigMap>();
  private readonly secrets = new Map<string, V1Secret>();

  constructor(objects: PodObjects, namespace: string) {
    this.objects = objects;
    this.namespace = namespace;
  }

  /** Undefined only when missing and optional. */
  async configMap(name: string, optional: boolean): Promise<V1ConfigMap | undefined> {
    const cached = this.configMaps.get(name);
    if (cached) return cached;
    let cm: V1ConfigMap | undefined;
    try {
      cm = await this.objects.getConfigMap(this.namespace, name);
    } catch (err) {
      throw configError(`couldn't get configMap ${this.namespace}/${name}: ${describeError(err)}`, err);
    }
    if (!cm) {
      if (optional) return undefined;
      throw configError(`configmap "${name}" not found`);
    }
    this.configMaps.set(name, cm);
    return cm;
  }

  async secret(name: string, optional: boolean): Promise<V1Secret | undefined> {
    const cached = this.secrets.get(name);
    if (cached) return cached;
    let s: V1Secret | undefined;
    try {
      s = await this.objects.getSecret(this.namespace, name);
    } catch (err) {
      throw configError(`couldn't get secret ${this.namespace}/${name}: ${describeError(err)}`, err);
    }
    if (!s) {
      if (optional) return undefined;
      throw configError(`secret "${name}" not found`);
    }
    this.secrets.set(name, s);
    return s;
  }
}

// ---- service link variables ----

async function serviceEnvFor(ctx: EnvContext, namespace: string, enableServiceLinks: boolean, podVersion: string | undefined): Promise<Map<string, string>> {
  const masterNs = ctx.masterServiceNamespace ?? 'default';
  try {
    // Lists at least as new as the pod: a Service made before the pod is in them.
    const master = await ctx.objects.listServices(masterNs, podVersion);
    const local = !enableServiceLinks || namespace === masterNs ? [] : await ctx.objects.listServices(namespace, podVersion);
    const services = servicesForPod(namespace, enableServiceLinks, [...master, ...local], masterNs);
    return new Map(serviceEnvVars(services).map((e) => [e.key, e.value]));
  } catch (err) {
    throw configError('failed to list services when setting up env vars', err);
  }
}

function isServiceIPSet(svc: V1Service): boolean {
  const ip = svc.spec?.clusterIP;
  return ip !== undefined && ip !== '' && ip !== 'None';
}

/**
 * The services a pod in `namespace` sees, one per name, sorted by name: the
 * master services from `masterNs` always; the namespace's own services when
 * service links are on (a local service of the same name wins, as upstream).
 */
export function servicesForPod(namespace: string, enableServiceLinks: boolean, services: V1Service[], masterNs = 'default'): V1Service[] {
  const byName = new Map<string, V1Service>();
  const local = new Set<string>();
  for (const svc of services) {
    if (!isServiceIPSet(svc)) continue;
    const name = svc.metadata?.name ?? '';
    const ns = svc.metadata?.namespace ?? '';
    if (ns === namespace && enableServiceLinks) {
      byName.set(name, svc);
      local.add(name);
    } else if (ns === masterNs && MASTER_SERVICES.has(name) && !local.has(name)) {
      byName.set(name, svc);
    }
  }
  return [...byName.values()].sort((a, b) => ((a.metadata?.name ?? '') < (b.metadata?.name ?? '') ? -1 : 1));
}

function envName(s: string): string {
  return s.replaceAll('-', '_').toUpperCase();
}

/** upstream envvars.FromServices: {SVC}_SERVICE_HOST/PORT(_NAME) and Docker link variables. */
export function serviceEnvVars(services: V1Service[]): EnvVar[] {
  const out: EnvVar[] = [];
  for (const svc of services) {
    const ports = svc.spec?.ports ?? [];
    const first = ports[0];
    if (!isServiceIPSet(svc) || !first) continue;
    const ip = svc.spec!.clusterIP!;
    const prefix = envName(svc.metadata?.name ?? '');
    out.push({ key: `${prefix}_SERVICE_HOST`, value: ip });
    out.push({ key: `${prefix}_SERVICE_PORT`, value: String(first.port) });
    for (const p of ports) {
      if (p.name) out.push({ key: `${prefix}_SERVICE_PORT_${envName(p.name)}`, value: String(p.port) });
    }
    ports.forEach((p, i) => {
      const proto = p.protocol || 'TCP';
      const url = `${proto.toLowerCase()}://${joinHostPort(ip, p.port)}`;
      // Docker special-cases the first port.
      if (i === 0) out.push({ key: `${prefix}_PORT`, value: url });
      const pp = `${prefix}_PORT_${p.port}_${proto.toUpperCase()}`;
      out.push({ key: pp, value: url });
      out.push({ key: `${pp}_PROTO`, value: proto.toLowerCase() });
      out.push({ key: `${pp}_PORT`, value: String(p.port) });
      out.push({ key: `${pp}_ADDR`, value: ip });
    });
  }
  return out;
}

// ---- downward API: fieldRef ----

const SUPPORTED_FIELDS = new Set([
  'metadata.annotations',
  'metadata.labels',
  'metadata.name',
  'metadata.namespace',
  'metadata.uid',
  'spec.nodeName',
  'spec.restartPolicy',
  'spec.serviceAccountName',
  'spec.schedulerName',
  'status.phase',
  'status.hostIP',
  'status.hostIPs',
  'status.podIP',
  'status.podIPs',
]);

/**
 * The value of a fieldRef env var (upstream podFieldSelectorRuntimeValue):
 * the label conversion, the kubelet-only fields, then the metadata fields
 * every downward API consumer shares (extractFieldPath).
 */
export function podFieldValue(
  pod: V1Pod,
  sel: V1ObjectFieldSelector,
  ctx: { podIPs: string[]; hostIPs: string[]; nodeName?: string },
): string {
  const field = convertFieldLabel(sel.apiVersion ?? 'v1', sel.fieldPath);
  const podIPs = sortPodIPs(ctx.podIPs, ctx.hostIPs);
  switch (field) {
    case 'spec.nodeName':
      return pod.spec?.nodeName || ctx.nodeName || '';
    case 'spec.serviceAccountName':
      return pod.spec?.serviceAccountName ?? '';
    case 'status.hostIP':
    case 'status.hostIPs':
      if (ctx.hostIPs.length === 0) throw configError('host IP unknown; known addresses: []');
      return field === 'status.hostIP' ? ctx.hostIPs[0]! : ctx.hostIPs.join(',');
    case 'status.podIP':
      return podIPs[0] ?? '';
    case 'status.podIPs':
      return podIPs.join(',');
  }
  // Fields the conversion accepts but nothing extracts (status.phase, ...) fail there, as upstream.
  return asConfigError(() => extractFieldPath(pod, field));
}

/** upstream ConvertDownwardAPIFieldLabel: which fieldRef paths env vars accept, under their internal name. */
function convertFieldLabel(version: string, field: string): string {
  if (version !== 'v1') throw configError(`unsupported pod version: ${version}`);
  const sub = splitSubscript(field);
  if (sub) {
    if (sub[0] !== 'metadata.annotations' && sub[0] !== 'metadata.labels') throw configError(`field label does not support subscript: ${field}`);
    return field;
  }
  if (field === 'spec.host') return 'spec.nodeName'; // old v1 clients
  if (!SUPPORTED_FIELDS.has(field)) throw configError(`field label not supported: ${field}`);
  return field;
}

/** The shared downward API functions throw their own code; env reports CreateContainerConfigError. */
function asConfigError<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    throw err instanceof NodeletError && err.code === DOWNWARD_API_INVALID ? configError(err.message, err) : err;
  }
}

// ---- downward API: resourceFieldRef ----

const POD_LEVEL_RESOURCES = ['cpu', 'memory'] as const;

/**
 * What a missing limit defaults to: node allocatable, replaced by the pod-level
 * limit where one is set (upstream defaultPodLimitsForDownwardAPI with
 * PodLevelResources, beta and on by default since 1.34).
 */
export function allocatableFor(pod: V1Pod, nodeAllocatable: EnvContext['nodeAllocatable']): ResourceList {
  const out: ResourceList = {};
  for (const [k, v] of Object.entries(nodeAllocatable ?? {})) if (v !== undefined) out[k] = v;
  const podLimits = pod.spec?.resources?.limits;
  if (podLimits) {
    for (const r of POD_LEVEL_RESOURCES) {
      const v = podLimits[r];
      if (!isZeroOrMissing(v) && out[r] !== undefined) out[r] = v!;
    }
  }
  return out;
}

/** The value of a resourceFieldRef env var (upstream containerResourceRuntimeValue); `container` when no containerName is given. */
export function containerResourceValue(
  sel: V1ResourceFieldSelector,
  pod: V1Pod,
  container: V1Container,
  allocatable: ResourceList,
): string {
  return asConfigError(() => sharedContainerResourceValue(sel, pod, container, allocatable));
}
