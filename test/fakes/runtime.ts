// A stateful fake RuntimeService + ImageService: health and version are
// settable, calls are recorded, sandboxes, containers and images live in
// memory with the same states, idempotency and error codes as the Docker
// implementation. Nothing touches a real runtime.
import { type Duplex, PassThrough } from 'node:stream';
import { NodeletError } from '../../lib/errors.ts';
import type {
  AuthConfig,
  Container,
  ContainerConfig,
  ContainerFilter,
  ContainerStats,
  ContainerStatsFilter,
  ContainerStatus,
  ContainerStatusResponse,
  ExecSyncResponse,
  Image,
  ImageFilter,
  ImageFsInfoResponse,
  ImageService,
  ImageSpec,
  LinuxContainerResources,
  PodSandbox,
  PodSandboxConfig,
  PodSandboxFilter,
  PodSandboxStatus,
  PodSandboxStatusResponse,
  PullProgress,
  RuntimeService,
  RuntimeStatus,
  StreamOptions,
  StreamSession,
  VersionResponse,
} from '../../cri/runtime.ts';
import {
  CONTAINER_CREATED,
  CONTAINER_EXITED,
  CONTAINER_RUNNING,
  NETWORK_READY,
  REASON_COMPLETED,
  REASON_ERROR,
  RUNTIME_READY,
  SANDBOX_NOTREADY,
  SANDBOX_READY,
} from '../../cri/runtime.ts';
import { containerName, matchesSelector, sandboxName } from '../../cri/labels.ts';
import { asImageID, normalizeImage } from '../../cri/reference.ts';

export interface FakeSandbox {
  id: string;
  config: PodSandboxConfig;
  status: PodSandboxStatus;
}

export interface FakeContainer {
  id: string;
  podSandboxId: string;
  config: ContainerConfig;
  status: ContainerStatus;
}

/** What execSync answers for a command (keyed by the command joined with spaces). */
export type FakeExecResult = ExecSyncResponse | 'timeout';

export class FakeRuntime implements RuntimeService, ImageService {
  /** RuntimeReady; false makes status() report the runtime down and version() fail. */
  healthy = true;
  /** NetworkReady (only looked at while healthy). */
  networkReady = true;
  /** Reason and message reported while unhealthy. */
  downReason = 'DockerDaemonNotAvailable';
  downMessage = 'connect ENOENT /var/run/docker.sock';
  /** When set, status() throws it (a broken implementation, not a down runtime). */
  statusError: Error | undefined;
  versionInfo: VersionResponse = {
    version: '0.1.0',
    runtimeName: 'docker',
    runtimeVersion: '27.3.1',
    runtimeApiVersion: 'v1',
  };
  readonly calls: string[] = [];
  readonly sandboxes = new Map<string, FakeSandbox>();
  readonly containers = new Map<string, FakeContainer>();
  /** Present images by normalised reference -> ID. */
  readonly images = new Map<string, string>();
  /** Images pullImage can find (normalised references); others fail with CRI_PULL_FAILED. */
  readonly pullable = new Set<string>();
  /** Per-command answers for execSync; default: exit 0, no output. */
  readonly execResults = new Map<string, FakeExecResult>();
  /** Errors to throw from the next call of a method (by name), once. */
  readonly injectErrors = new Map<string, Error>();
  /** Pod IP handed to the next sandbox (incremented per sandbox). */
  nextIP = 1;
  /** Fake time (ns) for created/started/finished stamps; advances 1 s per event. */
  nowNs = 1_700_000_000_000_000_000;
  private seq = 0;
  /** Open attach sessions per container, ended with the container's exit code. */
  private readonly attached = new Map<string, Set<(exitCode: number) => void>>();

  setHealthy(healthy: boolean, message?: string): void {
    this.healthy = healthy;
    if (message !== undefined) this.downMessage = message;
  }

  async version(): Promise<VersionResponse> {
    this.calls.push('version');
    if (!this.healthy) throw new Error(`docker version: ${this.downMessage}`);
    return { ...this.versionInfo };
  }

  async status(): Promise<RuntimeStatus> {
    this.calls.push('status');
    if (this.statusError) throw this.statusError;
    if (!this.healthy) {
      return {
        conditions: [
          { type: RUNTIME_READY, status: false, reason: this.downReason, message: this.downMessage },
          { type: NETWORK_READY, status: false, reason: this.downReason, message: this.downMessage },
        ],
      };
    }
    return {
      conditions: [
        { type: RUNTIME_READY, status: true, reason: '', message: '' },
        this.networkReady
          ? { type: NETWORK_READY, status: true, reason: '', message: '' }
          : { type: NETWORK_READY, status: false, reason: 'NetworkPluginNotReady', message: 'network plugin is not ready' },
      ],
    };
  }

  // ---- helpers for tests ---------------------------------------------------

  /** Makes a running container exit as its process would (exit code, optional reason). */
  exitContainer(id: string, exitCode: number, reason?: string, message = ''): void {
    const c = this.mustContainer(id);
    c.status = {
      ...c.status,
      state: CONTAINER_EXITED,
      exitCode,
      finishedAt: this.tick(),
      reason: reason ?? (exitCode === 0 ? REASON_COMPLETED : REASON_ERROR),
      message,
    };
    const sessions = this.attached.get(id);
    this.attached.delete(id);
    for (const end of sessions ?? []) end(exitCode);
  }

  /** Makes a sandbox die (its pause process exits): NOTREADY. */
  killSandbox(id: string): void {
    const s = this.sandboxes.get(id);
    if (s) s.status = { ...s.status, state: SANDBOX_NOTREADY };
  }

  /** Adds an image as if pulled. */
  addImage(ref: string, id = `sha256:${(++this.seq).toString(16).padStart(64, '0')}`): string {
    this.images.set(normalizeImage(ref), id);
    return id;
  }

  private record(call: string): void {
    this.calls.push(call);
    const err = this.injectErrors.get(call.split(' ')[0]!);
    if (err) {
      this.injectErrors.delete(call.split(' ')[0]!);
      throw err;
    }
  }

  private tick(): number {
    this.nowNs += 1e9;
    return this.nowNs;
  }

  private newId(): string {
    return (++this.seq).toString(16).padStart(64, '0');
  }

  private mustSandbox(id: string): FakeSandbox {
    const s = this.sandboxes.get(id);
    if (!s) throw new NodeletError('CRI_NOT_FOUND', `pod sandbox ${id} not found`);
    return s;
  }

  private mustContainer(id: string): FakeContainer {
    const c = this.containers.get(id);
    if (!c) throw new NodeletError('CRI_NOT_FOUND', `container ${id} not found`);
    return c;
  }

  // ---- RuntimeService ------------------------------------------------------

  async runPodSandbox(config: PodSandboxConfig, runtimeHandler = ''): Promise<string> {
    this.record(`runPodSandbox ${sandboxName(config.metadata)}`);
    const name = sandboxName(config.metadata);
    for (const s of this.sandboxes.values()) {
      if (sandboxName(s.config.metadata) === name) {
        throw new NodeletError('CRI_ALREADY_EXISTS', `pod sandbox ${name} already exists`);
      }
    }
    const id = this.newId();
    const hostNet = config.linux?.securityContext?.namespaceOptions?.network === 'NODE';
    const status: PodSandboxStatus = {
      id,
      metadata: { ...config.metadata },
      state: SANDBOX_READY,
      createdAt: this.tick(),
      network: { ip: hostNet ? '192.0.2.10' : `10.244.0.${this.nextIP++}`, additionalIps: [] },
      linux: { namespaces: { options: { ...(config.linux?.securityContext?.namespaceOptions ?? {}) } } },
      labels: { ...(config.labels ?? {}) },
      annotations: { ...(config.annotations ?? {}) },
      runtimeHandler,
    };
    this.sandboxes.set(id, { id, config, status });
    return id;
  }

  async stopPodSandbox(id: string): Promise<void> {
    this.record(`stopPodSandbox ${id}`);
    const s = this.sandboxes.get(id);
    if (!s) return;
    for (const c of this.containers.values()) {
      if (c.podSandboxId === id && c.status.state === CONTAINER_RUNNING) this.exitContainer(c.id, 137, REASON_ERROR);
    }
    s.status = { ...s.status, state: SANDBOX_NOTREADY };
  }

  async removePodSandbox(id: string): Promise<void> {
    this.record(`removePodSandbox ${id}`);
    for (const c of [...this.containers.values()]) if (c.podSandboxId === id) this.containers.delete(c.id);
    this.sandboxes.delete(id);
  }

  async podSandboxStatus(id: string): Promise<PodSandboxStatusResponse> {
    this.record(`podSandboxStatus ${id}`);
    return { status: structuredClone(this.mustSandbox(id).status) };
  }

  async listPodSandbox(filter?: PodSandboxFilter): Promise<PodSandbox[]> {
    this.record('listPodSandbox');
    return [...this.sandboxes.values()]
      .map((s) => s.status)
      .filter((s) => (!filter?.id || s.id.startsWith(filter.id)) && (!filter?.state || s.state === filter.state))
      .filter((s) => matchesSelector(s.labels, filter?.labelSelector))
      .map((s) => ({
        id: s.id,
        metadata: { ...s.metadata },
        state: s.state,
        createdAt: s.createdAt,
        labels: { ...s.labels },
        annotations: { ...s.annotations },
        runtimeHandler: s.runtimeHandler,
      }));
  }

  async createContainer(podSandboxId: string, config: ContainerConfig, sandboxConfig: PodSandboxConfig): Promise<string> {
    const name = containerName(sandboxConfig.metadata, config.metadata);
    this.record(`createContainer ${name}`);
    const sb = this.mustSandbox(podSandboxId);
    if (sb.status.state !== SANDBOX_READY) {
      throw new NodeletError('CRI_SANDBOX_NOT_READY', `pod sandbox ${podSandboxId} is not ready`);
    }
    for (const c of this.containers.values()) {
      if (containerName(this.sandboxes.get(c.podSandboxId)?.config.metadata ?? sandboxConfig.metadata, c.config.metadata) === name) {
        throw new NodeletError('CRI_ALREADY_EXISTS', `container ${name} already exists`);
      }
    }
    // An image ID (what the kubelet passes after pulling) or a reference.
    const asId = asImageID(config.image.image);
    const imageId = asId !== undefined && [...this.images.values()].includes(asId) ? asId : this.images.get(normalizeImage(config.image.image));
    if (!imageId) throw new NodeletError('CRI_IMAGE_NOT_FOUND', `image ${config.image.image} is not present`);
    const id = this.newId();
    const logDir = sandboxConfig.logDirectory ?? '';
    this.containers.set(id, {
      id,
      podSandboxId,
      config,
      status: {
        id,
        metadata: { ...config.metadata },
        state: CONTAINER_CREATED,
        createdAt: this.tick(),
        startedAt: 0,
        finishedAt: 0,
        exitCode: 0,
        image: { ...config.image },
        imageRef: imageId,
        reason: '',
        message: '',
        labels: { ...(config.labels ?? {}) },
        annotations: { ...(config.annotations ?? {}) },
        mounts: (config.mounts ?? []).map((m) => ({ ...m })),
        logPath: logDir && config.logPath ? `${logDir}/${config.logPath}` : '',
        resources: { linux: { ...(config.linux?.resources ?? {}) } },
      },
    });
    return id;
  }

  async startContainer(id: string): Promise<void> {
    this.record(`startContainer ${id}`);
    const c = this.mustContainer(id);
    if (c.status.state !== CONTAINER_CREATED) {
      throw new NodeletError('CRI_INVALID_STATE', `container ${id} is ${c.status.state}, not created`);
    }
    c.status = { ...c.status, state: CONTAINER_RUNNING, startedAt: this.tick() };
  }

  async stopContainer(id: string, timeoutSec: number): Promise<void> {
    this.record(`stopContainer ${id} ${timeoutSec}`);
    const c = this.containers.get(id);
    if (!c || c.status.state !== CONTAINER_RUNNING) return;
    this.exitContainer(id, 137, REASON_ERROR);
  }

  async removeContainer(id: string): Promise<void> {
    this.record(`removeContainer ${id}`);
    this.containers.delete(id);
  }

  async listContainers(filter?: ContainerFilter): Promise<Container[]> {
    this.record('listContainers');
    return [...this.containers.values()]
      .filter((c) => !filter?.id || c.id.startsWith(filter.id))
      .filter((c) => !filter?.podSandboxId || c.podSandboxId === filter.podSandboxId)
      .filter((c) => !filter?.state || c.status.state === filter.state)
      .filter((c) => matchesSelector(c.status.labels, filter?.labelSelector))
      .map((c) => ({
        id: c.id,
        podSandboxId: c.podSandboxId,
        metadata: { ...c.status.metadata },
        image: { ...c.status.image },
        imageRef: c.status.imageRef,
        state: c.status.state,
        createdAt: c.status.createdAt,
        labels: { ...c.status.labels },
        annotations: { ...c.status.annotations },
      }));
  }

  async containerStatus(id: string): Promise<ContainerStatusResponse> {
    this.record(`containerStatus ${id}`);
    return { status: structuredClone(this.mustContainer(id).status) };
  }

  async updateContainerResources(id: string, linux: LinuxContainerResources): Promise<void> {
    this.record(`updateContainerResources ${id}`);
    const c = this.mustContainer(id);
    c.status = { ...c.status, resources: { linux: { ...(c.status.resources?.linux ?? {}), ...linux } } };
  }

  async execSync(id: string, cmd: string[], timeoutSec: number): Promise<ExecSyncResponse> {
    this.record(`execSync ${id} ${cmd.join(' ')}`);
    const c = this.mustContainer(id);
    if (c.status.state !== CONTAINER_RUNNING) {
      throw new NodeletError('CRI_INVALID_STATE', `container ${id} is not running`);
    }
    const r = this.execResults.get(cmd.join(' '));
    if (r === 'timeout') throw new NodeletError('CRI_EXEC_TIMEOUT', `command timed out after ${timeoutSec}s`);
    return r ? { stdout: Buffer.from(r.stdout), stderr: Buffer.from(r.stderr), exitCode: r.exitCode } : { stdout: Buffer.alloc(0), stderr: Buffer.alloc(0), exitCode: 0 };
  }

  /**
   * A streaming exec answering like execSync (execResults; default exit 0, no
   * output). With stdin, what is written comes back on stdout (like cat) and the
   * result follows once stdin ends. A 'timeout' result never ends until close().
   */
  async exec(id: string, cmd: string[], opts: StreamOptions = {}): Promise<StreamSession> {
    this.record(`exec ${id} ${cmd.join(' ')}`);
    const c = this.mustContainer(id);
    if (c.status.state !== CONTAINER_RUNNING) throw new NodeletError('CRI_NOT_RUNNING', `container ${id} is not running`);
    if (cmd.length === 0) throw new NodeletError('CRI_INVALID_ARGUMENT', 'exec: empty command');
    const r = this.execResults.get(cmd.join(' '));
    const s = fakeSession(opts);
    const finish = () => {
      if (r === 'timeout') return;
      s.output(r?.stdout, r?.stderr);
      s.end(r?.exitCode ?? 0);
    };
    if (s.session.stdin) s.session.stdin.on('end', finish);
    else queueMicrotask(finish);
    return s.session;
  }

  /** Attaches to a running container: stdin echoes to stdout; the session ends when the container exits. */
  async attach(id: string, opts: StreamOptions = {}): Promise<StreamSession> {
    this.record(`attach ${id}`);
    const c = this.mustContainer(id);
    if (c.status.state !== CONTAINER_RUNNING) throw new NodeletError('CRI_NOT_RUNNING', `container ${id} is not running`);
    const tty = c.config.tty ?? false;
    if (opts.tty !== undefined && opts.tty !== tty) throw new NodeletError('CRI_INVALID_ARGUMENT', `attach: tty mismatch`);
    if (opts.stdin && !c.config.stdin) throw new NodeletError('CRI_INVALID_ARGUMENT', `attach: container ${id} has no stdin`);
    const s = fakeSession({ tty, stdin: opts.stdin ?? false });
    let set = this.attached.get(id);
    if (!set) this.attached.set(id, (set = new Set()));
    set.add((code) => s.end(code));
    return s.session;
  }

  /** An echo stream stands in for the pod's port (what is written comes back). */
  async portForward(podSandboxId: string, port: number): Promise<Duplex> {
    this.record(`portForward ${podSandboxId} ${port}`);
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw new NodeletError('CRI_INVALID_ARGUMENT', `port ${port} is not in 1-65535`);
    const sb = this.sandboxes.get(podSandboxId);
    if (!sb) throw new NodeletError('CRI_NOT_FOUND', `sandbox ${podSandboxId} not found`);
    if (sb.status.state !== SANDBOX_READY) throw new NodeletError('CRI_SANDBOX_NOT_READY', `sandbox ${podSandboxId} is not ready`);
    return new PassThrough();
  }

  async containerStats(id: string): Promise<ContainerStats> {
    this.record(`containerStats ${id}`);
    return this.statsOf(this.mustContainer(id));
  }

  async listContainerStats(filter?: ContainerStatsFilter): Promise<ContainerStats[]> {
    this.record('listContainerStats');
    return [...this.containers.values()]
      .filter((c) => c.status.state === CONTAINER_RUNNING)
      .filter((c) => !filter?.id || c.id.startsWith(filter.id))
      .filter((c) => !filter?.podSandboxId || c.podSandboxId === filter.podSandboxId)
      .filter((c) => matchesSelector(c.status.labels, filter?.labelSelector))
      .map((c) => this.statsOf(c));
  }

  private statsOf(c: FakeContainer): ContainerStats {
    const ts = this.nowNs;
    return {
      attributes: { id: c.id, metadata: { ...c.status.metadata }, labels: { ...c.status.labels }, annotations: { ...c.status.annotations } },
      cpu: { timestamp: ts, usageCoreNanoSeconds: 0 },
      memory: { timestamp: ts, workingSetBytes: 0, usageBytes: 0, rssBytes: 0, pageFaults: 0, majorPageFaults: 0 },
    };
  }

  // ---- ImageService --------------------------------------------------------

  async listImages(filter?: ImageFilter): Promise<Image[]> {
    this.record('listImages');
    const want = filter?.image?.image ? normalizeImage(filter.image.image) : undefined;
    return [...this.images.entries()]
      .filter(([ref]) => !want || ref === want)
      .map(([ref, id]) => ({ id, repoTags: [ref], repoDigests: [], size: 1, username: '', pinned: false }));
  }

  async imageStatus(image: ImageSpec): Promise<Image | undefined> {
    this.record(`imageStatus ${image.image}`);
    const ref = normalizeImage(image.image);
    const id = this.images.get(ref);
    return id ? { id, repoTags: [ref], repoDigests: [], size: 1, username: '', pinned: false } : undefined;
  }

  async pullImage(image: ImageSpec, _auth?: AuthConfig, onProgress?: (p: PullProgress) => void): Promise<string> {
    this.record(`pullImage ${image.image}`);
    const ref = normalizeImage(image.image);
    const have = this.images.get(ref);
    if (have) return have;
    if (!this.pullable.has(ref)) {
      throw new NodeletError('CRI_PULL_FAILED', `pull ${image.image}: repository does not exist or may require authorization`);
    }
    onProgress?.({ status: 'Downloading', current: 1, total: 1 });
    return this.addImage(ref);
  }

  async removeImage(image: ImageSpec): Promise<void> {
    this.record(`removeImage ${image.image}`);
    const id = asImageID(image.image);
    if (id !== undefined) {
      for (const [ref, v] of this.images) if (v === id) this.images.delete(ref);
      return;
    }
    this.images.delete(normalizeImage(image.image));
  }

  async imageFsInfo(): Promise<ImageFsInfoResponse> {
    this.record('imageFsInfo');
    const fs = { timestamp: this.nowNs, fsId: { mountpoint: '/var/lib/docker' }, usedBytes: this.images.size };
    return { imageFilesystems: [fs], containerFilesystems: [fs] };
  }
}

const _check: RuntimeService = new FakeRuntime();
const _checkImages: ImageService = new FakeRuntime();

/** A StreamSession over PassThroughs: stdin (if any) echoes to stdout until end(). */
function fakeSession(opts: StreamOptions): {
  session: StreamSession;
  output: (stdout?: Buffer | Uint8Array, stderr?: Buffer | Uint8Array) => void;
  end: (exitCode: number) => void;
} {
  const stdout = new PassThrough();
  const stderr = opts.tty ? undefined : new PassThrough();
  const stdin = opts.stdin ? new PassThrough() : undefined;
  stdin?.on('data', (b: Buffer) => {
    if (!stdout.writableEnded) stdout.write(b);
  });
  let settle: (code: number) => void = () => {};
  let fail: (err: Error) => void = () => {};
  const exitCode = new Promise<number>((resolve, reject) => {
    settle = resolve;
    fail = reject;
  });
  exitCode.catch(() => undefined);
  let ended = false;
  const end = (code: number | Error) => {
    if (ended) return;
    ended = true;
    stdout.end();
    stderr?.end();
    if (code instanceof Error) fail(code);
    else settle(code);
  };
  const output = (out?: Buffer | Uint8Array, err?: Buffer | Uint8Array) => {
    if (ended) return;
    if (out?.length) stdout.write(Buffer.from(out));
    if (err?.length) (stderr ?? stdout).write(Buffer.from(err));
  };
  const session: StreamSession = {
    stdin,
    stdout,
    stderr,
    resize: async () => {},
    exitCode,
    close: () => end(new NodeletError('CRI_STREAM_CLOSED', 'session closed before the process exited')),
  };
  return { session, output, end: (code) => end(code) };
}
