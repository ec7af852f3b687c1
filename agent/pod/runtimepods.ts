// What the runtime holds, grouped by pod UID: one ListPodSandbox and one
// ListContainers per relist, plus a status call only for sandboxes and
// containers that are new or whose listed state changed since the last relist
// (the details of a sandbox or container in a given state do not change, so a
// steady pod costs two list calls and nothing else). Truth lives in the
// runtime: everything here is rebuilt from CRI lists, labels and annotations.
import {
  CONTAINER_CREATED,
  CONTAINER_EXITED,
  CONTAINER_RUNNING,
  CONTAINER_UNKNOWN,
  SANDBOX_READY,
  type Container,
  type ContainerState,
  type ContainerStatus,
  type PodSandbox,
  type PodSandboxState,
  type PodSandboxStatus,
  type RuntimeService,
} from '../../cri/runtime.ts';
import {
  ANNOTATION_CONTAINER_HASH,
  ANNOTATION_RESTART_COUNT,
  LABEL_CONTAINER_NAME,
  LABEL_HOST_NETWORK,
  LABEL_POD_NAME,
  LABEL_POD_NAMESPACE,
  LABEL_POD_UID,
} from '../../cri/labels.ts';
import { open } from 'node:fs/promises';
import { ANNOTATION_TERMINATION_MESSAGE_PATH, ANNOTATION_TERMINATION_MESSAGE_POLICY } from '../../cri/labels.ts';
import { joinRecords, parseLogLine } from '../../cri/logformat.ts';
import { describeError, errorCode } from '../../lib/errors.ts';
import type { Logger } from '../../lib/log.ts';
import { networkIPs } from './podips.ts';
import type { RuntimeContainer, RuntimePodStatus, RuntimeSandbox } from './types.ts';

/** Status calls in flight at once during one relist (the first relist after a restart inspects everything). */
const STATUS_CONCURRENCY = 8;

const CONTAINER_STATES: ReadonlySet<string> = new Set([CONTAINER_CREATED, CONTAINER_RUNNING, CONTAINER_EXITED, CONTAINER_UNKNOWN]);

/** The details of a sandbox that only a status call gives, valid while the listed state stays the same. */
interface SandboxDetails {
  listedState: PodSandboxState;
  sandbox: RuntimeSandbox;
}

interface ContainerDetails {
  listedState: ContainerState;
  status: ContainerStatus;
}

/** A status call failed for a reason other than the object being gone. */
class InspectFailed {
  readonly err: unknown;
  constructor(err: unknown) {
    this.err = err;
  }
}

/** Restart count from the annotation; the CRI attempt when it is missing or malformed. */
export function restartCountOf(annotations: Record<string, string>, attempt: number): number {
  const raw = annotations[ANNOTATION_RESTART_COUNT];
  const n = raw === undefined ? Number.NaN : Number(raw);
  return Number.isInteger(n) && n >= 0 ? n : attempt;
}

/**
 * Whether a sandbox uses the node's network: the namespace options of its
 * status when the runtime reports them, else the runtime's label; undefined
 * when neither says.
 */
export function sandboxHostNetwork(status: PodSandboxStatus | undefined, labels: Record<string, string>): boolean | undefined {
  const mode = status?.linux?.namespaces?.options?.network;
  if (mode !== undefined) return mode === 'NODE';
  const label = labels[LABEL_HOST_NETWORK];
  if (label === 'true') return true;
  if (label === 'false') return false;
  return undefined;
}

/** Newest first by creation time; the id breaks ties so the order is stable. */
function newestFirst<T extends { createdAt: number; id: string }>(xs: T[]): T[] {
  return xs.sort((a, b) => b.createdAt - a.createdAt || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

/** Runs `fn` over `items` with at most `limit` calls in flight. */
async function forEachLimited<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const item = items[next++] as T;
      await fn(item);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

/**
 * The runtime's pods as of the last relist. Not a cache of the API's pods:
 * a pod appears here as long as any sandbox or container with its UID label
 * exists, whatever the API server says.
 */
export class RuntimePodCache {
  private readonly runtime: RuntimeService;
  private readonly log: Logger;
  private view = new Map<string, RuntimePodStatus>();
  private failed = new Set<string>();
  private sandboxDetails = new Map<string, SandboxDetails>();
  private containerDetails = new Map<string, ContainerDetails>();
  /** Relists started / the newest one whose view is installed (an older relist never overwrites a newer view). */
  private started = 0;
  private installed = 0;

  constructor(runtime: RuntimeService, log: Logger) {
    this.runtime = runtime;
    this.log = log;
  }

  /** The pod as of the last relist; undefined when the runtime holds nothing for it. */
  get(uid: string): RuntimePodStatus | undefined {
    return this.view.get(uid);
  }

  /** Every pod as of the last relist. */
  pods(): RuntimePodStatus[] {
    return [...this.view.values()];
  }

  /** The last relist's view keyed by UID (do not modify). */
  snapshot(): ReadonlyMap<string, RuntimePodStatus> {
    return this.view;
  }

  /**
   * UIDs whose view could not be refreshed in the last relist (a status call
   * failed for another reason than the object being gone): their view is the
   * previous relist's, or absent when there was none. Upstream's pod cache
   * carries an error for them; a pod worker should not act on a stale view.
   */
  stalePods(): ReadonlySet<string> {
    return this.failed;
  }

  /**
   * Lists the runtime and rebuilds the view. Throws when a list call fails
   * (the previous view stays). Status calls that fail are per pod: see stalePods().
   */
  async relist(): Promise<ReadonlyMap<string, RuntimePodStatus>> {
    const seq = ++this.started;
    const [sandboxes, containers] = await Promise.all([this.runtime.listPodSandbox(), this.runtime.listContainers()]);

    const ours = (labels: Record<string, string>) => labels[LABEL_POD_UID];
    const sbs = sandboxes.filter((s) => ours(s.labels));
    const cs = containers.filter((c) => ours(c.labels) && CONTAINER_STATES.has(c.state));

    const nextSandboxDetails = new Map<string, SandboxDetails>();
    const nextContainerDetails = new Map<string, ContainerDetails>();
    const failed = new Set<string>();
    const sandboxOut = new Map<string, RuntimeSandbox>();
    const containerOut = new Map<string, ContainerStatus>();

    await forEachLimited([...sbs, ...cs], STATUS_CONCURRENCY, async (item) => {
      const uid = ours(item.labels) as string;
      if ('podSandboxId' in item) {
        const d = await this.containerStatus(item);
        if (d instanceof InspectFailed) {
          failed.add(uid);
          this.log.warn('container status failed; keeping the previous view of its pod', { pod: uid, container: item.id, error: describeError(d.err) });
        } else if (d) {
          nextContainerDetails.set(item.id, d);
          containerOut.set(item.id, d.status);
        }
      } else {
        const d = await this.sandboxStatus(item);
        if (d instanceof InspectFailed) {
          failed.add(uid);
          this.log.warn('pod sandbox status failed; keeping the previous view of its pod', { pod: uid, sandbox: item.id, error: describeError(d.err) });
        } else if (d) {
          nextSandboxDetails.set(item.id, d);
          sandboxOut.set(item.id, d.sandbox);
        }
      }
    });

    const view = new Map<string, RuntimePodStatus>();
    const podOf = (uid: string, name: string, namespace: string): RuntimePodStatus => {
      let p = view.get(uid);
      if (!p) {
        p = { uid, name, namespace, sandboxes: [], containers: [] };
        view.set(uid, p);
      }
      if (!p.name) p.name = name;
      if (!p.namespace) p.namespace = namespace;
      return p;
    };
    for (const s of sbs) {
      const sb = sandboxOut.get(s.id);
      if (!sb) continue; // gone between list and status
      const uid = ours(s.labels) as string;
      podOf(uid, s.metadata.name || (s.labels[LABEL_POD_NAME] ?? ''), s.metadata.namespace || (s.labels[LABEL_POD_NAMESPACE] ?? '')).sandboxes.push(sb);
    }
    for (const c of cs) {
      const st = containerOut.get(c.id);
      if (!st) continue;
      const uid = ours(c.labels) as string;
      podOf(uid, c.labels[LABEL_POD_NAME] ?? '', c.labels[LABEL_POD_NAMESPACE] ?? '').containers.push(toRuntimeContainer(c, st));
    }
    for (const p of view.values()) {
      newestFirst(p.sandboxes);
      newestFirst(p.containers);
    }
    // A pod whose refresh failed keeps its previous view rather than a partial one.
    for (const uid of failed) {
      const prev = this.view.get(uid);
      if (prev) view.set(uid, prev);
      else view.delete(uid);
    }

    if (seq > this.installed) {
      this.installed = seq;
      this.view = view;
      this.failed = failed;
      // Only what the runtime still lists stays cached.
      this.sandboxDetails = nextSandboxDetails;
      this.containerDetails = nextContainerDetails;
    }
    return view;
  }

  /**
   * One pod's current state, read now: two list calls filtered by its UID
   * and status calls only for what changed since it was last seen. Pod
   * workers use this after acting, so one pod never waits for a relist of
   * every other pod. Throws when a call fails (the caller retries).
   */
  async inspectPod(uid: string): Promise<RuntimePodStatus> {
    const selector = { [LABEL_POD_UID]: uid };
    const [sandboxes, containers] = await Promise.all([
      this.runtime.listPodSandbox({ labelSelector: selector }),
      this.runtime.listContainers({ labelSelector: selector }),
    ]);
    const pod: RuntimePodStatus = { uid, name: '', namespace: '', sandboxes: [], containers: [] };
    for (const s of sandboxes) {
      const d = await this.sandboxStatus(s);
      if (d instanceof InspectFailed) throw d.err;
      if (!d) continue;
      this.sandboxDetails.set(s.id, d);
      pod.sandboxes.push(d.sandbox);
      pod.name ||= s.metadata.name || (s.labels[LABEL_POD_NAME] ?? '');
      pod.namespace ||= s.metadata.namespace || (s.labels[LABEL_POD_NAMESPACE] ?? '');
    }
    for (const c of containers.filter((x) => CONTAINER_STATES.has(x.state))) {
      const d = await this.containerStatus(c);
      if (d instanceof InspectFailed) throw d.err;
      if (!d) continue;
      this.containerDetails.set(c.id, d);
      pod.containers.push(toRuntimeContainer(c, d.status));
    }
    newestFirst(pod.sandboxes);
    newestFirst(pod.containers);
    return pod;
  }

  /** Cached details when the listed state is unchanged; else a status call. Undefined when it is gone. */
  private async sandboxStatus(s: PodSandbox): Promise<SandboxDetails | InspectFailed | undefined> {
    const cached = this.sandboxDetails.get(s.id);
    if (cached && cached.listedState === s.state) return cached;
    let status: PodSandboxStatus;
    try {
      status = (await this.runtime.podSandboxStatus(s.id)).status;
    } catch (err) {
      if (errorCode(err) === 'CRI_NOT_FOUND') return undefined;
      return new InspectFailed(err);
    }
    const hostNetwork = sandboxHostNetwork(status, s.labels);
    const ready = status.state === SANDBOX_READY;
    const net = networkIPs(status.network);
    const sandbox: RuntimeSandbox = {
      id: s.id,
      state: status.state,
      attempt: s.metadata.attempt,
      createdAt: status.createdAt || s.createdAt,
      // No pod IP for a sandbox on the node's network or one that is not running.
      ip: ready && hostNetwork !== true ? net.ip : '',
    };
    if (sandbox.ip && net.additionalIps.length > 0) sandbox.additionalIps = net.additionalIps;
    if (hostNetwork !== undefined) sandbox.hostNetwork = hostNetwork;
    return { listedState: s.state, sandbox };
  }

  private async containerStatus(c: Container): Promise<ContainerDetails | InspectFailed | undefined> {
    const cached = this.containerDetails.get(c.id);
    if (cached && cached.listedState === c.state) return cached;
    try {
      const status = (await this.runtime.containerStatus(c.id)).status;
      if (status.state === CONTAINER_EXITED) status.message = await withTerminationMessage(status);
      return { listedState: c.state, status };
    } catch (err) {
      if (errorCode(err) === 'CRI_NOT_FOUND') return undefined;
      return new InspectFailed(err);
    }
  }
}

/** Upstream's limits: 4 KiB from the file; 80 lines / 2 KiB from the log. */
const MAX_TERMINATION_MESSAGE = 4096;
const MAX_LOG_LINES = 80;
const MAX_LOG_BYTES = 2048;

async function readHead(file: string, max: number): Promise<string | undefined> {
  try {
    const fh = await open(file, 'r');
    try {
      const buf = Buffer.alloc(max);
      const { bytesRead } = await fh.read(buf, 0, max, 0);
      return buf.subarray(0, bytesRead).toString('utf8');
    } finally {
      await fh.close();
    }
  } catch {
    return undefined;
  }
}

async function readTail(file: string, max: number): Promise<string | undefined> {
  try {
    const fh = await open(file, 'r');
    try {
      const { size } = await fh.stat();
      const len = Math.min(size, max);
      const buf = Buffer.alloc(len);
      await fh.read(buf, 0, len, size - len);
      return buf.toString('utf8');
    } finally {
      await fh.close();
    }
  } catch {
    return undefined;
  }
}

/**
 * The runtime's message plus what the container wrote to its termination
 * message file (the mount at terminationMessagePath), or, with
 * FallbackToLogsOnError and a failure, the end of its log (upstream's
 * convertToKubeContainerStatus).
 */
async function withTerminationMessage(st: ContainerStatus): Promise<string> {
  const path = st.annotations[ANNOTATION_TERMINATION_MESSAGE_PATH];
  let msg = '';
  if (path) {
    const m = st.mounts.find((x) => x.containerPath === path);
    if (m) msg = (await readHead(m.hostPath, MAX_TERMINATION_MESSAGE)) ?? '';
  }
  const fallback = st.annotations[ANNOTATION_TERMINATION_MESSAGE_POLICY] === 'FallbackToLogsOnError' && st.exitCode !== 0 && st.reason !== 'ContainerCannotRun';
  if (msg === '' && fallback && st.logPath) {
    const raw = (await readTail(st.logPath, 64 * 1024)) ?? '';
    const records = raw.split('\n').map(parseLogLine).filter((r) => r !== undefined);
    const lines = joinRecords(records).map((r) => r.line).slice(-MAX_LOG_LINES).join('\n');
    msg = Buffer.from(lines).subarray(-MAX_LOG_BYTES).toString('utf8');
  }
  if (msg === '') return st.message;
  return st.message ? `${st.message}: ${msg}` : msg;
}

/** One container from its list entry (identity) and its status (state and details). */
function toRuntimeContainer(c: Container, st: ContainerStatus): RuntimeContainer {
  return {
    id: c.id,
    sandboxId: c.podSandboxId,
    name: c.labels[LABEL_CONTAINER_NAME] ?? c.metadata.name,
    hash: c.annotations[ANNOTATION_CONTAINER_HASH] ?? '',
    restartCount: restartCountOf(c.annotations, c.metadata.attempt),
    // The status call is newer than the list entry.
    state: st.state,
    createdAt: st.createdAt || c.createdAt,
    startedAt: st.startedAt,
    finishedAt: st.finishedAt,
    exitCode: st.exitCode,
    reason: st.reason,
    message: st.message,
    // The image the spec named when the runtime kept it; the runtime's own name for it otherwise.
    image: st.image.userSpecifiedImage || st.image.image || c.image.image,
    imageRef: st.imageRef || c.imageRef,
  };
}
