// The container runtime seen by the agent, shaped after CRI v1's RuntimeService
// and ImageService (k8s.io/cri-api runtime/v1). The message types live in
// ./api.ts (re-exported here); the Docker implementation lives in cri/docker/,
// the fake in test/fakes/runtime.ts.
import type { Duplex, Readable, Writable } from 'node:stream';
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
  ImageSpec,
  LinuxContainerResources,
  PodSandbox,
  PodSandboxConfig,
  PodSandboxFilter,
  PodSandboxStatusResponse,
  PullProgress,
} from './api.ts';

export * from './api.ts';

/** CRI VersionResponse. */
export interface VersionResponse {
  /** Version of the kubelet-runtime API (CRI says "0.1.0"). */
  version: string;
  /** Name of the container runtime, e.g. 'docker'. */
  runtimeName: string;
  /** Version of the container runtime, e.g. '27.3.1'. */
  runtimeVersion: string;
  /** API version of the container runtime, e.g. 'v1'. */
  runtimeApiVersion: string;
}

/** CRI RuntimeCondition. `status` true means the condition holds. */
export interface RuntimeCondition {
  type: string;
  status: boolean;
  reason: string;
  message: string;
}

/** CRI RuntimeStatus (the part the agent reads). */
export interface RuntimeStatus {
  conditions: RuntimeCondition[];
}

/** How Exec and Attach connect to the process (CRI ExecRequest / AttachRequest flags). */
export interface StreamOptions {
  /** A terminal: stdout and stderr come merged on stdout, and resize works. Default false. */
  tty?: boolean;
  /** Pass input to the process. Default false. */
  stdin?: boolean;
}

/**
 * A live Exec or Attach. Output streams end when the process's output ends;
 * ending `stdin` closes the process's stdin. `exitCode` has a handler attached
 * (an unawaited rejection is harmless); it rejects with CRI_STREAM_CLOSED after
 * close() or a dropped connection, or when the exit code cannot be read.
 */
export interface StreamSession {
  /** Undefined unless stdin was asked for. */
  stdin: Writable | undefined;
  stdout: Readable;
  /** Undefined with a tty (its output is all on stdout). */
  stderr: Readable | undefined;
  /** Sets the terminal size (columns, rows); a no-op without a tty or once the process is gone. */
  resize(width: number, height: number): Promise<void>;
  exitCode: Promise<number>;
  /** Drops the connection (the process keeps running for Attach; for Exec it loses its stdio). */
  close(): void;
}

/** Condition types every runtime reports, as in CRI. */
export const RUNTIME_READY = 'RuntimeReady';
export const NETWORK_READY = 'NetworkReady';

/**
 * CRI RuntimeService. Errors are NodeletErrors with stable codes (CRI_NOT_FOUND,
 * CRI_ALREADY_EXISTS, CRI_INVALID_ARGUMENT, CRI_EXEC_TIMEOUT, CRI_RUNTIME_FAILED, ...).
 * Exec and Attach are streaming sessions (see StreamSession) rather than CRI's URL
 * handshake; PortForward is a byte stream to one port on the sandbox's own
 * localhost. Not yet here: ReopenContainerLog, PodSandboxStats.
 */
export interface RuntimeService {
  version(): Promise<VersionResponse>;
  /** Never throws for an unhealthy runtime: reports it in the conditions. */
  status(): Promise<RuntimeStatus>;

  /** Creates and starts a sandbox; on success it is SANDBOX_READY. Returns its id. */
  runPodSandbox(config: PodSandboxConfig, runtimeHandler?: string): Promise<string>;
  /** Stops the sandbox and every container in it (forcibly). Idempotent: a missing sandbox is fine. */
  stopPodSandbox(podSandboxId: string): Promise<void>;
  /** Removes the sandbox and its containers, stopping them first. Idempotent. */
  removePodSandbox(podSandboxId: string): Promise<void>;
  /** Throws CRI_NOT_FOUND for an unknown sandbox. */
  podSandboxStatus(podSandboxId: string, verbose?: boolean): Promise<PodSandboxStatusResponse>;
  listPodSandbox(filter?: PodSandboxFilter): Promise<PodSandbox[]>;

  /** Creates a container in a sandbox (CONTAINER_CREATED); the same metadata twice is CRI_ALREADY_EXISTS. */
  createContainer(podSandboxId: string, config: ContainerConfig, sandboxConfig: PodSandboxConfig): Promise<string>;
  startContainer(containerId: string): Promise<void>;
  /** SIGTERM (or the image's stop signal), SIGKILL after timeoutSec. Idempotent. */
  stopContainer(containerId: string, timeoutSec: number): Promise<void>;
  /** Removes a container, forcibly if it runs. Idempotent. */
  removeContainer(containerId: string): Promise<void>;
  listContainers(filter?: ContainerFilter): Promise<Container[]>;
  /** Throws CRI_NOT_FOUND for an unknown container. */
  containerStatus(containerId: string, verbose?: boolean): Promise<ContainerStatusResponse>;
  updateContainerResources(containerId: string, linux: LinuxContainerResources): Promise<void>;
  /** Runs cmd in the container; a non-zero exit is a result, running past timeoutSec (0: none) is CRI_EXEC_TIMEOUT. */
  execSync(containerId: string, cmd: string[], timeoutSec: number): Promise<ExecSyncResponse>;
  /** Starts cmd in a running container (CRI_NOT_FOUND, CRI_NOT_RUNNING); exitCode is the command's. */
  exec(containerId: string, cmd: string[], opts?: StreamOptions): Promise<StreamSession>;
  /**
   * Attaches to a running container's stdio; exitCode is the container's once it
   * exits. opts.tty must match the container's; opts.stdin needs a container
   * created with stdin (CRI_INVALID_ARGUMENT otherwise).
   */
  attach(containerId: string, opts?: StreamOptions): Promise<StreamSession>;
  /**
   * A byte stream to TCP `port` on the sandbox's loopback, inside its network
   * namespace (so listeners bound to the pod's 127.0.0.1 are reachable).
   * CRI_NOT_FOUND / CRI_SANDBOX_NOT_READY up front; a refused connection ends
   * the stream with a CRI_PORT_FORWARD_FAILED error.
   */
  portForward(podSandboxId: string, port: number): Promise<Duplex>;
  containerStats(containerId: string): Promise<ContainerStats>;
  listContainerStats(filter?: ContainerStatsFilter): Promise<ContainerStats[]>;
}

/** CRI ImageService. */
export interface ImageService {
  listImages(filter?: ImageFilter): Promise<Image[]>;
  /** Undefined when the image is not present (CRI returns a nil image, not an error). */
  imageStatus(image: ImageSpec): Promise<Image | undefined>;
  /** Pulls and returns the image reference (its ID). Throws CRI_PULL_FAILED saying why. */
  pullImage(image: ImageSpec, auth?: AuthConfig, onProgress?: (p: PullProgress) => void): Promise<string>;
  /** Idempotent: removing an absent image succeeds. */
  removeImage(image: ImageSpec): Promise<void>;
  imageFsInfo(): Promise<ImageFsInfoResponse>;
}
