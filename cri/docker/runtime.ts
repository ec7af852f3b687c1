// RuntimeService and ImageService over the Docker Engine API (dockerode). The
// caller builds the dockerode instance (socket path, request timeout) and
// passes it in. Docker's 304 (already started/stopped), 404 (gone) and 409
// (name in use, removal in progress) are outcomes here, not failures.
// All state is read back from Docker (labels and names): a new DockerRuntime
// over the same daemon sees the same sandboxes and containers.
import type Dockerode from 'dockerode';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { Duplex, PassThrough, Writable } from 'node:stream';
import { describeError, NodeletError } from '../../lib/errors.ts';
import { nullLogger, type Logger } from '../../lib/log.ts';
import type {
  AuthConfig,
  Container,
  ContainerConfig,
  ContainerFilter,
  ContainerStats,
  ContainerStatsFilter,
  ContainerStatusResponse,
  ExecSyncResponse,
  Image,
  ImageFilter,
  ImageFsInfoResponse,
  ImageService,
  ImageSpec,
  LinuxContainerResources,
  Mount,
  PodSandbox,
  PodSandboxConfig,
  PodSandboxFilter,
  PodSandboxMetadata,
  PodSandboxStatusResponse,
  PullProgress,
  RuntimeCondition,
  RuntimeService,
  RuntimeStatus,
  StreamOptions,
  StreamSession,
  VersionResponse,
} from '../runtime.ts';
import { CONTAINER_RUNNING, NETWORK_READY, RUNTIME_READY, SANDBOX_NOTREADY, SANDBOX_READY } from '../runtime.ts';
import {
  decodeLabels,
  LABEL_ATTEMPT,
  LABEL_CONTAINER_NAME,
  LABEL_HOST_IPC,
  LABEL_HOST_NETWORK,
  LABEL_HOST_PID,
  LABEL_LOG_PATH,
  LABEL_USER_IMAGE,
  LABEL_MANAGED,
  LABEL_POD_NAME,
  LABEL_POD_NAMESPACE,
  LABEL_POD_UID,
  LABEL_SANDBOX_ID,
  LABEL_TYPE,
  matchesSelector,
  parseName,
  TYPE_CONTAINER,
  TYPE_SANDBOX,
} from '../labels.ts';
import { asImageID, normalizeImage, referenceAliases } from '../reference.ts';
import { dockerTimeToNanos, listStateToCri, mapContainerState, sandboxNetwork, sandboxStateFromList } from '../status.ts';
import { containerCreateOptions, resourcesToHostConfig, SANDBOX_OOM_SCORE_ADJ, sandboxCreateOptions } from './config.ts';
import { LogCopiers, type RotationOptions } from './logs.ts';
import { followProgress } from './progress.ts';
import { type ContainerEvent, watchContainerEvents, type WatchOptions } from './events.ts';

/** The part of dockerode this module uses (a Dockerode instance fits). */
export type DockerClient = Pick<
  Dockerode,
  | 'version'
  | 'ping'
  | 'info'
  | 'df'
  | 'createContainer'
  | 'getContainer'
  | 'listContainers'
  | 'getExec'
  | 'getImage'
  | 'listImages'
  | 'pull'
  | 'getEvents'
  | 'modem'
>;

export const DOCKER_NOT_AVAILABLE = 'DockerDaemonNotAvailable';
export const DEFAULT_PAUSE_IMAGE = 'nodelet.local/pause:3.10';
const CRI_API_VERSION = '0.1.0';
const DEFAULT_TIMEOUT_MS = 5_000;
/** Output kept per stream by ExecSync (CRI's limit). */
const MAX_EXEC_OUTPUT = 16 * 1024 * 1024;
/** Grace given to a sandbox's containers when the sandbox stops (CRI: forcibly). */
const SANDBOX_STOP_GRACE_SEC = 2;

export interface DockerRuntimeOptions {
  /** The port-forward relay: a busybox (its `nc` applet) on the node. Default: busybox from PATH. */
  relayCommand?: string;
  /** Timeout of version() and status() (ms). */
  timeoutMs?: number;
  /** Image of every sandbox's pause container; must be present (see cri/images/build.ts). */
  pauseImage?: string;
  log?: Logger;
  /** Bounds Docker's own json-file log per app container (the CRI log is separate). */
  dockerLogMaxSize?: string;
  /**
   * oom_score_adj of pause containers. Default: the kubelet's -998 when this
   * process may lower an oom_score_adj (CAP_SYS_RESOURCE), else 0: a negative
   * value makes runc fail where that is not allowed (some sandboxes, rootless).
   */
  sandboxOomScoreAdj?: number;
  /** Rotation of the CRI log files (default 10 MiB x 5 files). */
  logRotation?: RotationOptions;
  /**
   * Called with the pid of each started sandbox that has its own network:
   * turns on hairpin mode of its bridge port (see ./hairpin.ts). Only where
   * this process shares the bridge's network namespace (the agent).
   */
  hairpin?: (sandboxPid: number) => Promise<unknown>;
}

/** Whether this process may set a negative oom_score_adj (probed on itself, then restored). */
export function canLowerOomScoreAdj(): boolean {
  const file = '/proc/self/oom_score_adj';
  try {
    const cur = readFileSync(file, 'utf8').trim();
    writeFileSync(file, String(SANDBOX_OOM_SCORE_ADJ));
    writeFileSync(file, cur);
    return true;
  } catch {
    return false;
  }
}

const statusCode = (err: unknown): number | undefined => (err as { statusCode?: number } | undefined)?.statusCode;

/** Docker's own message ({"message": ...}) rather than dockerode's "(HTTP code 404) ..." wrapper. */
function dockerMessage(err: unknown): string {
  const j = (err as { json?: { message?: string } } | undefined)?.json;
  if (j && typeof j.message === 'string') return j.message;
  return describeError(err).replace(/^\(HTTP code \d+\) [^-]*- /, '').trim();
}

/**
 * A CRI label selector as Docker label filters, so Docker lists only the
 * matches (CRI labels are Docker labels under the same keys); the exact match
 * is still checked on our side.
 */
function selectorFilter(selector: Record<string, string> | undefined): Record<string, string[]> {
  const pairs = Object.entries(selector ?? {});
  return pairs.length ? { label: pairs.map(([k, v]) => `${k}=${v}`) } : {};
}

/** The image a container runs, with the name the pod spec gave when we know it. */
function userImage(image: string, labels: Record<string, string> | undefined): ImageSpec {
  const user = labels?.[LABEL_USER_IMAGE];
  return user ? { image, userSpecifiedImage: user } : { image };
}

function fail(code: string, what: string, err: unknown): NodeletError {
  return new NodeletError(code, `${what}: ${dockerMessage(err)}`, { cause: err });
}

export class DockerRuntime implements RuntimeService, ImageService {
  private readonly docker: DockerClient;
  private readonly timeoutMs: number;
  private readonly pauseImage: string;
  private readonly log: Logger;
  private readonly dockerLogMaxSize: string | undefined;
  private readonly logs: LogCopiers;
  private readonly sandboxOomScoreAdj: number;
  private readonly relayCommand: string;
  private readonly hairpin: DockerRuntimeOptions['hairpin'];

  constructor(docker: DockerClient, opts: DockerRuntimeOptions = {}) {
    this.docker = docker;
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.pauseImage = opts.pauseImage ?? DEFAULT_PAUSE_IMAGE;
    this.log = opts.log ?? nullLogger();
    this.dockerLogMaxSize = opts.dockerLogMaxSize;
    this.logs = new LogCopiers(docker, this.log, opts.logRotation);
    this.relayCommand = opts.relayCommand ?? 'busybox';
    this.hairpin = opts.hairpin;
    this.sandboxOomScoreAdj = opts.sandboxOomScoreAdj ?? (canLowerOomScoreAdj() ? SANDBOX_OOM_SCORE_ADJ : 0);
  }

  async version(): Promise<VersionResponse> {
    let v: Dockerode.DockerVersion;
    try {
      v = await withTimeout(this.docker.version(), this.timeoutMs, 'docker version');
    } catch (err) {
      throw new NodeletError('CRI_VERSION_FAILED', `docker version: ${describeError(err)}`, { cause: err });
    }
    return { version: CRI_API_VERSION, runtimeName: 'docker', runtimeVersion: v.Version, runtimeApiVersion: 'v1' };
  }

  async status(): Promise<RuntimeStatus> {
    try {
      await withTimeout(this.docker.ping(), this.timeoutMs, 'docker ping');
      return { conditions: [cond(RUNTIME_READY, true), cond(NETWORK_READY, true)] };
    } catch (err) {
      const message = describeError(err).replace(/\s*\n\s*/g, ' ');
      return {
        conditions: [
          cond(RUNTIME_READY, false, DOCKER_NOT_AVAILABLE, message),
          cond(NETWORK_READY, false, DOCKER_NOT_AVAILABLE, message),
        ],
      };
    }
  }

  /**
   * Follows Docker events of managed containers as a hint for an early relist
   * (see ./events.ts) until opts.signal aborts. Not part of CRI.
   */
  watchEvents(onEvent: (e: ContainerEvent) => void, opts: Omit<WatchOptions, 'log'>): Promise<void> {
    return watchContainerEvents(this.docker, onEvent, { ...opts, log: this.log });
  }

  /** Stops the log copiers (the containers keep running). Call before dropping the object. */
  async close(): Promise<void> {
    await this.logs.stopAll();
  }

  /**
   * After a restart: resumes copying the output of every managed container that
   * has a CRI log path (running ones follow; exited ones catch up and stop).
   */
  async recoverLogs(): Promise<void> {
    const list = await this.listRaw(TYPE_CONTAINER, {});
    for (const c of list) {
      const file = c.Labels?.[LABEL_LOG_PATH];
      if (!file || this.logs.has(c.Id)) continue;
      const info = await this.inspect(c.Id).catch(() => undefined);
      if (info) await this.logs.start(c.Id, file, info.Config.Tty);
    }
  }

  // ---- sandboxes -----------------------------------------------------------

  async runPodSandbox(config: PodSandboxConfig, _runtimeHandler = ''): Promise<string> {
    if (!(await this.imageStatus({ image: this.pauseImage }))) {
      throw new NodeletError(
        'CRI_IMAGE_NOT_FOUND',
        `pause image ${this.pauseImage} is not present (build it with ensurePauseImage from cri/images/build.ts)`,
      );
    }
    const opts = sandboxCreateOptions(config, { pauseImage: this.pauseImage, oomScoreAdj: this.sandboxOomScoreAdj });
    let c: Dockerode.Container;
    try {
      c = await this.docker.createContainer(opts);
    } catch (err) {
      if (statusCode(err) === 409) {
        throw fail('CRI_ALREADY_EXISTS', `pod sandbox ${opts.name} already exists`, err);
      }
      throw fail('CRI_RUNTIME_FAILED', `create pod sandbox ${opts.name}`, err);
    }
    try {
      await c.start();
    } catch (err) {
      await c.remove({ force: true }).catch(() => undefined);
      throw fail('CRI_RUNTIME_FAILED', `start pod sandbox ${opts.name}`, err);
    }
    if (config.logDirectory) mkdirSync(config.logDirectory, { recursive: true });
    if (this.hairpin && opts.HostConfig?.NetworkMode !== 'host') {
      // Not fatal: the pod runs; only reaching itself through a Service would not work.
      try {
        const pid = (await c.inspect()).State.Pid;
        await this.hairpin(pid);
      } catch (err) {
        this.log.warn('hairpin mode not set on the sandbox\'s bridge port', { sandbox: c.id, error: describeError(err) });
      }
    }
    this.log.info('pod sandbox started', { sandbox: c.id, pod: `${config.metadata.namespace}/${config.metadata.name}` });
    return c.id;
  }

  async stopPodSandbox(podSandboxId: string): Promise<void> {
    const members = await this.listRaw(TYPE_CONTAINER, { label: [`${LABEL_SANDBOX_ID}=${podSandboxId}`] });
    await Promise.all(
      members.filter((m) => m.State === 'running').map((m) => this.stopContainer(m.Id, SANDBOX_STOP_GRACE_SEC)),
    );
    await this.stopRaw(podSandboxId, SANDBOX_STOP_GRACE_SEC, 'pod sandbox');
  }

  async removePodSandbox(podSandboxId: string): Promise<void> {
    const members = await this.listRaw(TYPE_CONTAINER, { label: [`${LABEL_SANDBOX_ID}=${podSandboxId}`] });
    await Promise.all(members.map((m) => this.removeContainer(m.Id)));
    await this.removeRaw(podSandboxId, 'pod sandbox');
  }

  async podSandboxStatus(podSandboxId: string, verbose = false): Promise<PodSandboxStatusResponse> {
    const info = await this.inspect(podSandboxId, 'pod sandbox');
    if (info.Config.Labels?.[LABEL_TYPE] !== TYPE_SANDBOX) {
      throw new NodeletError('CRI_NOT_FOUND', `pod sandbox ${podSandboxId} not found (it is not a sandbox)`);
    }
    const labels = info.Config.Labels ?? {};
    const { labels: l, annotations } = decodeLabels(labels);
    const hostNet = labels[LABEL_HOST_NETWORK] === 'true';
    const network = hostNet ? { ip: '', additionalIps: [] } : sandboxNetwork(Object.values(info.NetworkSettings.Networks ?? {})[0]);
    const res: PodSandboxStatusResponse = {
      status: {
        id: info.Id,
        metadata: sandboxMetadata(info.Name, labels),
        state: info.State.Running ? SANDBOX_READY : SANDBOX_NOTREADY,
        createdAt: dockerTimeToNanos(info.Created),
        network,
        linux: {
          namespaces: {
            options: {
              network: hostNet ? 'NODE' : 'POD',
              pid: labels[LABEL_HOST_PID] === 'true' ? 'NODE' : 'CONTAINER',
              ipc: labels[LABEL_HOST_IPC] === 'true' ? 'NODE' : 'POD',
            },
          },
        },
        labels: l,
        annotations,
        runtimeHandler: '',
      },
    };
    if (verbose) res.info = { pid: String(info.State.Pid), image: info.Config.Image };
    return res;
  }

  async listPodSandbox(filter: PodSandboxFilter = {}): Promise<PodSandbox[]> {
    const f: Record<string, string[]> = selectorFilter(filter.labelSelector);
    if (filter.id) f.id = [filter.id];
    const list = await this.listRaw(TYPE_SANDBOX, f);
    const out: PodSandbox[] = [];
    for (const c of list) {
      const { labels, annotations } = decodeLabels(c.Labels);
      const state = sandboxStateFromList(c.State);
      if (filter.state && state !== filter.state) continue;
      if (!matchesSelector(labels, filter.labelSelector)) continue;
      out.push({
        id: c.Id,
        metadata: sandboxMetadata(c.Names[0] ?? '', c.Labels ?? {}),
        state,
        createdAt: c.Created * 1e9,
        labels,
        annotations,
        runtimeHandler: '',
      });
    }
    return out;
  }

  // ---- containers ----------------------------------------------------------

  async createContainer(podSandboxId: string, config: ContainerConfig, sandboxConfig: PodSandboxConfig): Promise<string> {
    const sb = await this.inspect(podSandboxId, 'pod sandbox');
    if (sb.Config.Labels?.[LABEL_TYPE] !== TYPE_SANDBOX) {
      throw new NodeletError('CRI_NOT_FOUND', `pod sandbox ${podSandboxId} not found (it is not a sandbox)`);
    }
    if (!sb.State.Running) {
      throw new NodeletError('CRI_SANDBOX_NOT_READY', `pod sandbox ${podSandboxId} is not ready`);
    }
    if (!config.image?.image) throw new NodeletError('CRI_INVALID_ARGUMENT', 'container config has no image');
    const logDir = sandboxConfig.logDirectory ?? sb.Config.Labels?.[LABEL_LOG_PATH] ?? '';
    const logPath = logDir && config.logPath ? path.join(logDir, config.logPath) : '';
    const opts = containerCreateOptions(config, {
      sandboxId: sb.Id,
      sandboxConfig,
      image: config.image.image,
      logPath,
      ...(this.dockerLogMaxSize ? { dockerLogMaxSize: this.dockerLogMaxSize } : {}),
    });
    try {
      const c = await this.docker.createContainer(opts);
      if (logPath) mkdirSync(path.dirname(logPath), { recursive: true });
      return c.id;
    } catch (err) {
      if (statusCode(err) === 409) throw fail('CRI_ALREADY_EXISTS', `container ${opts.name} already exists`, err);
      if (statusCode(err) === 404) throw fail('CRI_IMAGE_NOT_FOUND', `create container ${opts.name}: image ${config.image.image}`, err);
      if (statusCode(err) === 400) throw fail('CRI_INVALID_ARGUMENT', `create container ${opts.name}`, err);
      throw fail('CRI_RUNTIME_FAILED', `create container ${opts.name}`, err);
    }
  }

  async startContainer(containerId: string): Promise<void> {
    const c = this.docker.getContainer(containerId);
    try {
      await c.start();
    } catch (err) {
      const code = statusCode(err);
      if (code === 404) throw fail('CRI_NOT_FOUND', `container ${containerId}`, err);
      if (code !== 304) throw fail('CRI_START_FAILED', `start container ${containerId}`, err);
    }
    const info = await this.inspect(containerId).catch(() => undefined);
    const file = info?.Config.Labels?.[LABEL_LOG_PATH];
    if (info && file) await this.logs.start(containerId, file, info.Config.Tty);
  }

  async stopContainer(containerId: string, timeoutSec: number): Promise<void> {
    await this.stopRaw(containerId, Math.max(0, Math.floor(timeoutSec)), 'container');
    await this.logs.drain(containerId, 2000);
  }

  async removeContainer(containerId: string): Promise<void> {
    this.logs.stop(containerId);
    await this.removeRaw(containerId, 'container');
  }

  async listContainers(filter: ContainerFilter = {}): Promise<Container[]> {
    const f: Record<string, string[]> = selectorFilter(filter.labelSelector);
    if (filter.id) f.id = [filter.id];
    if (filter.podSandboxId) (f.label ??= []).push(`${LABEL_SANDBOX_ID}=${filter.podSandboxId}`);
    const list = await this.listRaw(TYPE_CONTAINER, f);
    const out: Container[] = [];
    for (const c of list) {
      const { labels, annotations } = decodeLabels(c.Labels);
      const state = listStateToCri(c.State);
      if (filter.state && state !== filter.state) continue;
      if (!matchesSelector(labels, filter.labelSelector)) continue;
      out.push({
        id: c.Id,
        podSandboxId: c.Labels?.[LABEL_SANDBOX_ID] ?? '',
        metadata: containerMetadata(c.Names[0] ?? '', c.Labels ?? {}),
        image: userImage(c.Image, c.Labels),
        imageRef: c.ImageID,
        state,
        createdAt: c.Created * 1e9,
        labels,
        annotations,
      });
    }
    return out;
  }

  async containerStatus(containerId: string, verbose = false): Promise<ContainerStatusResponse> {
    const info = await this.inspect(containerId, 'container');
    const dl = info.Config.Labels ?? {};
    if (dl[LABEL_TYPE] !== TYPE_CONTAINER) {
      throw new NodeletError('CRI_NOT_FOUND', `container ${containerId} not found (it is not a CRI container)`);
    }
    const { labels, annotations } = decodeLabels(dl);
    const s = mapContainerState(info.State);
    const hc = info.HostConfig;
    const mounts: Mount[] = (info.Mounts ?? []).map((m) => {
      const out: Mount = { containerPath: m.Destination, hostPath: m.Source, readonly: !m.RW };
      if (m.Propagation === 'rslave') out.propagation = 'PROPAGATION_HOST_TO_CONTAINER';
      else if (m.Propagation === 'rshared') out.propagation = 'PROPAGATION_BIDIRECTIONAL';
      else out.propagation = 'PROPAGATION_PRIVATE';
      return out;
    });
    const res: ContainerStatusResponse = {
      status: {
        id: info.Id,
        metadata: containerMetadata(info.Name, dl),
        state: s.state,
        createdAt: dockerTimeToNanos(info.Created),
        startedAt: s.startedAt,
        finishedAt: s.finishedAt,
        exitCode: s.exitCode,
        image: userImage(info.Config.Image, dl),
        imageRef: info.Image,
        reason: s.reason,
        message: s.message,
        labels,
        annotations,
        mounts,
        logPath: dl[LABEL_LOG_PATH] ?? '',
        resources: {
          linux: {
            cpuShares: hc.CpuShares ?? 0,
            cpuQuota: hc.CpuQuota ?? 0,
            cpuPeriod: hc.CpuPeriod ?? 0,
            memoryLimitInBytes: hc.Memory ?? 0,
            oomScoreAdj: hc.OomScoreAdj ?? 0,
            cpusetCpus: hc.CpusetCpus ?? '',
            cpusetMems: hc.CpusetMems ?? '',
          },
        },
      },
    };
    if (verbose) res.info = { pid: String(info.State.Pid), sandboxID: dl[LABEL_SANDBOX_ID] ?? '' };
    return res;
  }

  async updateContainerResources(containerId: string, linux: LinuxContainerResources): Promise<void> {
    const { OomScoreAdj: _ignored, ...update } = resourcesToHostConfig(linux); // Docker cannot change oom_score_adj live
    try {
      await this.docker.getContainer(containerId).update(update);
    } catch (err) {
      if (statusCode(err) === 404) throw fail('CRI_NOT_FOUND', `container ${containerId}`, err);
      throw fail('CRI_RUNTIME_FAILED', `update container ${containerId}`, err);
    }
  }

  async execSync(containerId: string, cmd: string[], timeoutSec: number): Promise<ExecSyncResponse> {
    if (cmd.length === 0) throw new NodeletError('CRI_INVALID_ARGUMENT', 'execSync: empty command');
    let exec: Dockerode.Exec;
    try {
      exec = await this.docker.getContainer(containerId).exec({ Cmd: cmd, AttachStdout: true, AttachStderr: true, Tty: false });
    } catch (err) {
      if (statusCode(err) === 404) throw fail('CRI_NOT_FOUND', `container ${containerId}`, err);
      if (statusCode(err) === 409) throw fail('CRI_NOT_RUNNING', `exec in container ${containerId}`, err);
      throw fail('CRI_RUNTIME_FAILED', `exec in container ${containerId}`, err);
    }
    const stream = await exec.start({ hijack: true, stdin: false });
    const out = new Collector(MAX_EXEC_OUTPUT);
    const errs = new Collector(MAX_EXEC_OUTPUT);
    this.docker.modem.demuxStream(stream, out, errs);
    const ended = new Promise<void>((resolve, reject) => {
      stream.on('end', resolve);
      stream.on('close', resolve);
      stream.on('error', reject);
    });
    if (timeoutSec > 0) {
      let timer: NodeJS.Timeout | undefined;
      const timedOut = new Promise<'timeout'>((r) => {
        timer = setTimeout(() => r('timeout'), timeoutSec * 1000);
      });
      const first = await Promise.race([ended.then(() => 'done' as const), timedOut]).finally(() => clearTimeout(timer));
      if (first === 'timeout') {
        // Docker has no exec-kill: kill the exec'd process by its host pid.
        const pid = (await exec.inspect().catch(() => undefined))?.Pid;
        if (pid) {
          try { process.kill(pid, 'SIGKILL'); } catch { /* already gone */ }
        }
        (stream as unknown as { destroy?: () => void }).destroy?.();
        throw new NodeletError('CRI_EXEC_TIMEOUT', `command ${JSON.stringify(cmd)} timed out after ${timeoutSec}s`);
      }
    } else {
      await ended;
    }
    const info = await exec.inspect();
    return { stdout: out.data(), stderr: errs.data(), exitCode: info.ExitCode ?? 0 };
  }

  async exec(containerId: string, cmd: string[], opts: StreamOptions = {}): Promise<StreamSession> {
    if (cmd.length === 0) throw new NodeletError('CRI_INVALID_ARGUMENT', 'exec: empty command');
    const tty = opts.tty ?? false;
    const stdin = opts.stdin ?? false;
    let exec: Dockerode.Exec;
    try {
      exec = await this.docker.getContainer(containerId).exec({
        Cmd: cmd,
        AttachStdin: stdin,
        AttachStdout: true,
        AttachStderr: true,
        Tty: tty,
      });
    } catch (err) {
      if (statusCode(err) === 404) throw fail('CRI_NOT_FOUND', `container ${containerId}`, err);
      if (statusCode(err) === 409) throw fail('CRI_NOT_RUNNING', `exec in container ${containerId}`, err);
      throw fail('CRI_RUNTIME_FAILED', `exec in container ${containerId}`, err);
    }
    let sock: Duplex;
    try {
      sock = await exec.start({ hijack: true, stdin, Tty: tty });
    } catch (err) {
      if (statusCode(err) === 409) throw fail('CRI_NOT_RUNNING', `exec in container ${containerId}`, err);
      throw fail('CRI_RUNTIME_FAILED', `start exec in container ${containerId}`, err);
    }
    const io = wireStreams(sock, tty, stdin, this.docker.modem);
    let closed = false;
    const exitCode = handled(
      io.ended.then(() =>
        exitAfterOutput(closed, `exec ${JSON.stringify(cmd)} in container ${containerId}`, async () => {
          const info = await exec.inspect();
          return info.Running ? undefined : (info.ExitCode ?? -1);
        }),
      ),
    );
    return streamSession(io, tty, (size) => exec.resize(size), exitCode, () => {
      closed = true;
      sock.destroy();
    });
  }

  async portForward(podSandboxId: string, port: number): Promise<Duplex> {
    if (!Number.isInteger(port) || port < 1 || port > 65535) {
      throw new NodeletError('CRI_INVALID_ARGUMENT', `portForward: port ${port} is not in 1-65535`);
    }
    const info = await this.inspect(podSandboxId, 'sandbox');
    if (info.Config.Labels?.[LABEL_TYPE] !== TYPE_SANDBOX) {
      throw new NodeletError('CRI_NOT_FOUND', `sandbox ${podSandboxId} not found (it is not a CRI sandbox)`);
    }
    if (!info.State.Running || !info.State.Pid) {
      throw new NodeletError('CRI_SANDBOX_NOT_READY', `portForward: sandbox ${podSandboxId} is not running`);
    }
    // As dockershim did (with socat): a relay that runs inside the sandbox's
    // network namespace and connects to its loopback.
    const child = spawn('nsenter', ['-t', String(info.State.Pid), '-n', '--', this.relayCommand, 'nc', '127.0.0.1', String(port)], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    // The readable side ends only once the relay's exit code is known, so a
    // refused connection surfaces as an error rather than a clean end.
    const out = new PassThrough();
    child.stdout.pipe(out, { end: false });
    const stream = Duplex.from({ readable: out, writable: child.stdin });
    let stderr = '';
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    child.stdin.on('error', () => {}); // EPIPE once the relay is gone
    child.on('error', (err) => stream.destroy(new NodeletError('CRI_PORT_FORWARD_FAILED', `portForward ${podSandboxId}:${port}: ${err.message}`, { cause: err })));
    child.on('close', (code) => {
      if (code === 0) out.end();
      else if (!stream.destroyed) {
        const why = stderr.trim().split('\n').pop() || `relay exited ${code}`;
        stream.destroy(new NodeletError('CRI_PORT_FORWARD_FAILED', `portForward ${podSandboxId}:${port}: ${why}`));
      }
    });
    stream.on('close', () => child.kill());
    return stream;
  }

  async attach(containerId: string, opts: StreamOptions = {}): Promise<StreamSession> {
    const info = await this.inspect(containerId, 'container');
    if (info.Config.Labels?.[LABEL_TYPE] !== TYPE_CONTAINER) {
      throw new NodeletError('CRI_NOT_FOUND', `container ${containerId} not found (it is not a CRI container)`);
    }
    if (!info.State.Running) throw new NodeletError('CRI_NOT_RUNNING', `attach: container ${containerId} is not running`);
    const tty = info.Config.Tty ?? false;
    if (opts.tty !== undefined && opts.tty !== tty) {
      throw new NodeletError('CRI_INVALID_ARGUMENT', `attach: tty ${opts.tty} but container ${containerId} has tty ${tty}`);
    }
    const stdin = opts.stdin ?? false;
    if (stdin && !info.Config.OpenStdin) {
      throw new NodeletError('CRI_INVALID_ARGUMENT', `attach: container ${containerId} was not created with stdin`);
    }
    const c = this.docker.getContainer(containerId);
    let sock: Duplex;
    try {
      sock = (await c.attach({ stream: true, stdin, stdout: true, stderr: true, hijack: true })) as unknown as Duplex;
    } catch (err) {
      if (statusCode(err) === 404) throw fail('CRI_NOT_FOUND', `container ${containerId}`, err);
      if (statusCode(err) === 409) throw fail('CRI_NOT_RUNNING', `attach to container ${containerId}`, err);
      throw fail('CRI_RUNTIME_FAILED', `attach to container ${containerId}`, err);
    }
    const io = wireStreams(sock, tty, stdin, this.docker.modem);
    // The attach stream ends when the container exits (or the connection drops):
    // only then ask for the exit code, so no request waits for the container's whole life.
    let closed = false;
    const exitCode = handled(
      io.ended.then(() =>
        exitAfterOutput(closed, `attach to container ${containerId}`, async () => {
          const st = (await c.inspect()).State;
          return st.Running ? undefined : st.ExitCode;
        }),
      ),
    );
    return streamSession(io, tty, (size) => c.resize(size), exitCode, () => {
      closed = true;
      sock.destroy();
    });
  }

  async containerStats(containerId: string): Promise<ContainerStats> {
    const info = await this.inspect(containerId, 'container');
    return this.statsOf(info.Id, info.Name, info.Config.Labels ?? {});
  }

  async listContainerStats(filter: ContainerStatsFilter = {}): Promise<ContainerStats[]> {
    const list = await this.listContainers({
      state: CONTAINER_RUNNING,
      ...(filter.id ? { id: filter.id } : {}),
      ...(filter.podSandboxId ? { podSandboxId: filter.podSandboxId } : {}),
      ...(filter.labelSelector ? { labelSelector: filter.labelSelector } : {}),
    });
    const raw = await this.listRaw(TYPE_CONTAINER, {});
    const byId = new Map(raw.map((c) => [c.Id, c]));
    const out = await Promise.all(
      list.map((c) => this.statsOf(c.id, byId.get(c.id)?.Names[0] ?? '', byId.get(c.id)?.Labels ?? {}).catch(() => undefined)),
    );
    return out.filter((s): s is ContainerStats => s !== undefined);
  }

  private async statsOf(id: string, name: string, dockerLabels: Record<string, string>): Promise<ContainerStats> {
    let s: Dockerode.ContainerStats;
    try {
      s = (await this.docker.getContainer(id).stats({ stream: false })) as Dockerode.ContainerStats;
    } catch (err) {
      if (statusCode(err) === 404) throw fail('CRI_NOT_FOUND', `container ${id}`, err);
      throw fail('CRI_RUNTIME_FAILED', `stats of container ${id}`, err);
    }
    const ts = (Date.parse(s.read) || Date.now()) * 1e6;
    const mem = s.memory_stats ?? ({} as Dockerode.ContainerStats['memory_stats']);
    const st = (mem.stats ?? {}) as unknown as Record<string, number>;
    const usage = mem.usage ?? 0;
    const inactive = st.total_inactive_file ?? st.inactive_file ?? 0;
    const { labels, annotations } = decodeLabels(dockerLabels);
    return {
      attributes: { id, metadata: containerMetadata(name, dockerLabels), labels, annotations },
      cpu: { timestamp: ts, usageCoreNanoSeconds: s.cpu_stats?.cpu_usage?.total_usage ?? 0 },
      memory: {
        timestamp: ts,
        workingSetBytes: Math.max(0, usage - inactive),
        usageBytes: usage,
        rssBytes: st.total_rss ?? st.anon ?? st.rss ?? 0,
        pageFaults: st.total_pgfault ?? st.pgfault ?? 0,
        majorPageFaults: st.total_pgmajfault ?? st.pgmajfault ?? 0,
      },
    };
  }

  // ---- images --------------------------------------------------------------

  async listImages(filter: ImageFilter = {}): Promise<Image[]> {
    if (filter.image?.image) {
      const one = await this.imageStatus(filter.image);
      return one ? [one] : [];
    }
    const list = await this.docker.listImages({ all: false });
    return list.map((i) => ({
      id: i.Id,
      repoTags: (i.RepoTags ?? []).filter((t) => t !== '<none>:<none>'),
      repoDigests: (i.RepoDigests ?? []).filter((d) => !d.startsWith('<none>')),
      size: i.Size,
      username: '',
      pinned: false,
    }));
  }

  async imageStatus(image: ImageSpec): Promise<Image | undefined> {
    const ref = asImageID(image.image) ?? normalizeImage(image.image);
    let info: Dockerode.ImageInspectInfo;
    try {
      info = await this.docker.getImage(ref).inspect();
    } catch (err) {
      if (statusCode(err) === 404) return undefined;
      throw fail('CRI_RUNTIME_FAILED', `inspect image ${image.image}`, err);
    }
    const user = info.Config?.User ?? '';
    const out: Image = {
      id: info.Id,
      repoTags: info.RepoTags ?? [],
      repoDigests: info.RepoDigests ?? [],
      size: info.Size,
      username: /^\d+$/.test(user.split(':')[0] ?? '') ? '' : (user.split(':')[0] ?? ''),
      spec: { image: image.image },
      pinned: false,
    };
    const uid = user.split(':')[0] ?? '';
    if (/^\d+$/.test(uid)) out.uid = Number(uid);
    return out;
  }

  async pullImage(image: ImageSpec, auth?: AuthConfig, onProgress?: (p: PullProgress) => void): Promise<string> {
    let ref: string;
    try {
      ref = normalizeImage(image.image);
    } catch (err) {
      throw new NodeletError('CRI_PULL_FAILED', `pull ${image.image}: ${describeError(err)}`, { cause: err });
    }
    const opts: Record<string, unknown> = {};
    if (auth) {
      opts.authconfig = {
        username: auth.username,
        password: auth.password,
        auth: auth.auth,
        serveraddress: auth.serverAddress,
        identitytoken: auth.identityToken,
        registrytoken: auth.registryToken,
      };
    }
    let stream: NodeJS.ReadableStream;
    try {
      stream = (await this.docker.pull(ref, opts)) as NodeJS.ReadableStream;
    } catch (err) {
      throw fail('CRI_PULL_FAILED', `pull ${image.image}`, err);
    }
    // The request succeeds once the stream starts: failures come as {"error": ...} lines.
    const failure = await followProgress(stream, onProgress);
    if (failure) throw new NodeletError('CRI_PULL_FAILED', `pull ${image.image}: ${failure}`);
    const got = await this.imageStatus({ image: ref });
    if (!got) throw new NodeletError('CRI_PULL_FAILED', `pull ${image.image}: finished but the image is not present`);
    return got.id;
  }

  async removeImage(image: ImageSpec): Promise<void> {
    const st = await this.imageStatus(image);
    if (!st) return;
    // Remove by the name asked for (untag) unless it is an ID; Docker deletes the image with its last tag.
    const id = asImageID(image.image);
    const names = id ? [id] : referenceAliases(image.image).filter((n) => st.repoTags.includes(n)).slice(0, 1);
    for (const n of names.length ? names : [st.id]) {
      try {
        await this.docker.getImage(n).remove();
      } catch (err) {
        if (statusCode(err) === 404) continue;
        if (statusCode(err) === 409) throw fail('CRI_IMAGE_IN_USE', `remove image ${image.image}`, err);
        throw fail('CRI_RUNTIME_FAILED', `remove image ${image.image}`, err);
      }
    }
  }

  async imageFsInfo(): Promise<ImageFsInfoResponse> {
    const [info, df] = await Promise.all([this.docker.info(), this.docker.df()]);
    const ts = Date.now() * 1e6;
    const root = String(info.DockerRootDir ?? '/var/lib/docker');
    const images = { timestamp: ts, fsId: { mountpoint: root }, usedBytes: Number(df.LayersSize ?? 0) };
    const rw = ((df.Containers ?? []) as { SizeRw?: number }[]).reduce((a, c) => a + (c.SizeRw ?? 0), 0);
    return { imageFilesystems: [images], containerFilesystems: [{ timestamp: ts, fsId: { mountpoint: root }, usedBytes: rw }] };
  }

  // ---- Docker plumbing ----------------------------------------------------

  private async inspect(id: string, what = 'container'): Promise<Dockerode.ContainerInspectInfo> {
    try {
      return await this.docker.getContainer(id).inspect();
    } catch (err) {
      if (statusCode(err) === 404) throw fail('CRI_NOT_FOUND', `${what} ${id} not found`, err);
      throw fail('CRI_RUNTIME_FAILED', `inspect ${what} ${id}`, err);
    }
  }

  private async listRaw(type: string, filters: Record<string, string[]>): Promise<Dockerode.ContainerInfo[]> {
    const label = [`${LABEL_MANAGED}=true`, `${LABEL_TYPE}=${type}`, ...(filters.label ?? [])];
    try {
      return await this.docker.listContainers({ all: true, filters: { ...filters, label } });
    } catch (err) {
      throw fail('CRI_RUNTIME_FAILED', `list ${type}s`, err);
    }
  }

  private async stopRaw(id: string, timeoutSec: number, what: string): Promise<void> {
    try {
      await this.docker.getContainer(id).stop({ t: timeoutSec });
    } catch (err) {
      const code = statusCode(err);
      if (code === 304 || code === 404) return; // already stopped, or gone
      throw fail('CRI_RUNTIME_FAILED', `stop ${what} ${id}`, err);
    }
  }

  private async removeRaw(id: string, what: string): Promise<void> {
    try {
      await this.docker.getContainer(id).remove({ force: true, v: true });
    } catch (err) {
      const code = statusCode(err);
      if (code === 404) return;
      if (code === 409 && /already in progress/.test(dockerMessage(err))) return;
      throw fail('CRI_RUNTIME_FAILED', `remove ${what} ${id}`, err);
    }
  }
}

function sandboxMetadata(name: string, labels: Record<string, string>): PodSandboxMetadata {
  const parsed = parseName(name);
  const attempt = Number(labels[LABEL_ATTEMPT] ?? parsed?.attempt ?? 0);
  return {
    name: labels[LABEL_POD_NAME] ?? parsed?.pod ?? '',
    namespace: labels[LABEL_POD_NAMESPACE] ?? parsed?.namespace ?? '',
    uid: labels[LABEL_POD_UID] ?? parsed?.uid ?? '',
    attempt: Number.isFinite(attempt) ? attempt : 0,
  };
}

function containerMetadata(name: string, labels: Record<string, string>): { name: string; attempt: number } {
  const parsed = parseName(name);
  const attempt = Number(labels[LABEL_ATTEMPT] ?? parsed?.attempt ?? 0);
  return { name: labels[LABEL_CONTAINER_NAME] ?? parsed?.container ?? '', attempt: Number.isFinite(attempt) ? attempt : 0 };
}

/** A sink for demuxStream that keeps at most `max` bytes. */
class Collector extends Writable {
  private readonly chunks: Buffer[] = [];
  private size = 0;
  private readonly max: number;
  constructor(max: number) {
    super();
    this.max = max;
  }
  override _write(b: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    if (this.size < this.max) {
      const part = b.subarray(0, this.max - this.size);
      this.chunks.push(Buffer.from(part));
      this.size += part.length;
    }
    cb();
  }
  data(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

/** Marks a promise as handled (a rejection nobody awaits must not crash the process) and returns it. */
function handled<T>(p: Promise<T>): Promise<T> {
  p.catch(() => undefined);
  return p;
}

/**
 * The exit code once a session's output is over: polls `probe` (undefined while
 * the process still runs) for up to ~1 s, since the output can end a moment
 * before Docker records the exit. A session closed by its caller, or whose
 * connection dropped while the process runs, rejects with CRI_STREAM_CLOSED.
 */
async function exitAfterOutput(closedByCaller: boolean, what: string, probe: () => Promise<number | undefined>): Promise<number> {
  if (closedByCaller) throw new NodeletError('CRI_STREAM_CLOSED', `${what}: closed before the process exited`);
  for (let i = 0; i < 50; i++) {
    const code = await probe();
    if (code !== undefined) return code;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new NodeletError('CRI_STREAM_CLOSED', `${what}: the connection ended while the process still runs`);
}

interface WiredStreams {
  stdin: Writable | undefined;
  stdout: PassThrough;
  stderr: PassThrough | undefined;
  /** Settles (never rejects) once the connection's output is over. */
  ended: Promise<void>;
}

/**
 * Splits a hijacked Docker connection into Node streams: raw on stdout with a
 * tty, else demultiplexed (8-byte frame headers) into stdout and stderr. Ending
 * stdin half-closes the connection, which closes the process's stdin.
 */
function wireStreams(sock: Duplex, tty: boolean, withStdin: boolean, modem: DockerClient['modem']): WiredStreams {
  const stdout = new PassThrough();
  const stderr = tty ? undefined : new PassThrough();
  if (stderr) modem.demuxStream(sock, stdout, stderr);
  else sock.on('data', (b: Buffer) => stdout.write(b));
  const ended = new Promise<void>((resolve) => {
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      stdout.end();
      stderr?.end();
      resolve();
    };
    sock.on('end', finish);
    sock.on('close', finish);
    sock.on('error', finish);
  });
  let stdin: Writable | undefined;
  if (withStdin) {
    stdin = new Writable({
      write(chunk: Buffer, _enc, cb) {
        if (!sock.writable) return cb();
        sock.write(chunk, () => cb()); // a process gone mid-write is not the writer's error
      },
      final(cb) {
        if (sock.writable) sock.end();
        cb();
      },
    });
  }
  return { stdin, stdout, stderr, ended };
}

function cond(type: string, status: boolean, reason = '', message = ''): RuntimeCondition {
  return { type, status, reason, message };
}

/** Rejects after `ms` if `p` has not settled; the timer never holds the process open. */
function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
    timer.unref();
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

/** The session both Exec and Attach hand out; resize is a no-op without a tty. */
function streamSession(
  io: Pick<StreamSession, 'stdin' | 'stdout' | 'stderr'>,
  tty: boolean,
  resize: (size: { w: number; h: number }) => Promise<unknown>,
  exitCode: Promise<number>,
  close: () => void,
): StreamSession {
  return {
    stdin: io.stdin,
    stdout: io.stdout,
    stderr: io.stderr,
    resize: async (width, height) => {
      if (!tty) return;
      await resize({ w: width, h: height }).catch(() => undefined);
    },
    exitCode,
    close,
  };
}
