// Types of the container runtime interface, shaped on CRI v1 (k8s.io/cri-api,
// package runtime.v1): the same messages, field names in camelCase, the same
// enum values as string constants, so that exposing this as a real CRI gRPC
// service later is mechanical. Times are nanoseconds since the Unix epoch as
// in CRI (a JS number: exact to about 0.25 µs, which no caller needs better);
// 0 means "not set".

// ---- states -------------------------------------------------------------

export const SANDBOX_READY = 'SANDBOX_READY';
export const SANDBOX_NOTREADY = 'SANDBOX_NOTREADY';
export type PodSandboxState = typeof SANDBOX_READY | typeof SANDBOX_NOTREADY;

export const CONTAINER_CREATED = 'CONTAINER_CREATED';
export const CONTAINER_RUNNING = 'CONTAINER_RUNNING';
export const CONTAINER_EXITED = 'CONTAINER_EXITED';
export const CONTAINER_UNKNOWN = 'CONTAINER_UNKNOWN';
export type ContainerState =
  | typeof CONTAINER_CREATED
  | typeof CONTAINER_RUNNING
  | typeof CONTAINER_EXITED
  | typeof CONTAINER_UNKNOWN;

/** CRI NamespaceMode: POD shares the sandbox's, CONTAINER its own, NODE the host's. */
export type NamespaceMode = 'POD' | 'CONTAINER' | 'NODE' | 'TARGET';

/** CRI MountPropagation. */
export type MountPropagation = 'PROPAGATION_PRIVATE' | 'PROPAGATION_HOST_TO_CONTAINER' | 'PROPAGATION_BIDIRECTIONAL';

export type Protocol = 'TCP' | 'UDP' | 'SCTP';

/** CRI SecurityProfile.ProfileType. */
export type SeccompProfileType = 'RuntimeDefault' | 'Unconfined' | 'Localhost';

/** Reasons CRI runtimes report for an exited container (kubelet reads them verbatim). */
export const REASON_COMPLETED = 'Completed';
export const REASON_ERROR = 'Error';
export const REASON_OOM_KILLED = 'OOMKilled';

// ---- sandboxes ----------------------------------------------------------

export interface PodSandboxMetadata {
  name: string;
  uid: string;
  namespace: string;
  attempt: number;
}

export interface DNSConfig {
  servers: string[];
  searches: string[];
  options: string[];
}

export interface PortMapping {
  protocol: Protocol;
  containerPort: number;
  hostPort: number;
  hostIp?: string;
}

export interface NamespaceOption {
  network?: NamespaceMode;
  pid?: NamespaceMode;
  ipc?: NamespaceMode;
  targetId?: string;
}

export interface LinuxSandboxSecurityContext {
  namespaceOptions?: NamespaceOption;
  runAsUser?: number;
  runAsGroup?: number;
  readonlyRootfs?: boolean;
  supplementalGroups?: number[];
  privileged?: boolean;
  seccomp?: SecurityProfile;
}

export interface LinuxPodSandboxConfig {
  cgroupParent?: string;
  securityContext?: LinuxSandboxSecurityContext;
  sysctls?: Record<string, string>;
}

export interface PodSandboxConfig {
  metadata: PodSandboxMetadata;
  hostname?: string;
  /** Directory (on the host) for the pod's container logs: /var/log/pods/<ns>_<name>_<uid>. */
  logDirectory?: string;
  dnsConfig?: DNSConfig;
  portMappings?: PortMapping[];
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  linux?: LinuxPodSandboxConfig;
}

export interface PodSandboxNetworkStatus {
  ip: string;
  additionalIps: { ip: string }[];
}

export interface PodSandboxStatus {
  id: string;
  metadata: PodSandboxMetadata;
  state: PodSandboxState;
  createdAt: number;
  network?: PodSandboxNetworkStatus;
  linux?: { namespaces: { options: NamespaceOption } };
  labels: Record<string, string>;
  annotations: Record<string, string>;
  runtimeHandler: string;
}

export interface PodSandboxStatusResponse {
  status: PodSandboxStatus;
  /** Extra runtime information (CRI's `info` map), only when verbose. */
  info?: Record<string, string>;
}

export interface PodSandbox {
  id: string;
  metadata: PodSandboxMetadata;
  state: PodSandboxState;
  createdAt: number;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  runtimeHandler: string;
}

export interface PodSandboxFilter {
  id?: string;
  state?: PodSandboxState;
  /** Every pair must match (AND). */
  labelSelector?: Record<string, string>;
}

// ---- containers ---------------------------------------------------------

export interface ContainerMetadata {
  name: string;
  attempt: number;
}

export interface ImageSpec {
  image: string;
  annotations?: Record<string, string>;
  userSpecifiedImage?: string;
}

export interface KeyValue {
  key: string;
  value: string;
}

export interface Mount {
  containerPath: string;
  hostPath: string;
  readonly?: boolean;
  selinuxRelabel?: boolean;
  propagation?: MountPropagation;
}

export interface Device {
  containerPath: string;
  hostPath: string;
  /** cgroups permissions: any of r, w, m. */
  permissions: string;
}

export interface LinuxContainerResources {
  cpuPeriod?: number;
  cpuQuota?: number;
  cpuShares?: number;
  memoryLimitInBytes?: number;
  oomScoreAdj?: number;
  cpusetCpus?: string;
  cpusetMems?: string;
  memorySwapLimitInBytes?: number;
}

export interface Capability {
  addCapabilities?: string[];
  dropCapabilities?: string[];
}

export interface SecurityProfile {
  profileType: SeccompProfileType;
  localhostRef?: string;
}

export interface LinuxContainerSecurityContext {
  capabilities?: Capability;
  privileged?: boolean;
  namespaceOptions?: NamespaceOption;
  runAsUser?: number;
  runAsGroup?: number;
  runAsUsername?: string;
  readonlyRootfs?: boolean;
  supplementalGroups?: number[];
  noNewPrivs?: boolean;
  maskedPaths?: string[];
  readonlyPaths?: string[];
  seccomp?: SecurityProfile;
}

export interface LinuxContainerConfig {
  resources?: LinuxContainerResources;
  securityContext?: LinuxContainerSecurityContext;
}

export interface ContainerConfig {
  metadata: ContainerMetadata;
  image: ImageSpec;
  command?: string[];
  args?: string[];
  workingDir?: string;
  envs?: KeyValue[];
  mounts?: Mount[];
  devices?: Device[];
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  /** Relative to the sandbox's logDirectory: <container>/<restartCount>.log. */
  logPath?: string;
  stdin?: boolean;
  stdinOnce?: boolean;
  tty?: boolean;
  linux?: LinuxContainerConfig;
}

export interface ContainerStatus {
  id: string;
  metadata: ContainerMetadata;
  state: ContainerState;
  createdAt: number;
  startedAt: number;
  finishedAt: number;
  exitCode: number;
  image: ImageSpec;
  imageRef: string;
  /** Brief CamelCase reason: Completed, Error, OOMKilled, ... */
  reason: string;
  /** Human-readable message (the termination message when there is one). */
  message: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  mounts: Mount[];
  /** Absolute path of the container's log file on the host ('' when none). */
  logPath: string;
  resources?: { linux?: LinuxContainerResources };
}

export interface ContainerStatusResponse {
  status: ContainerStatus;
  info?: Record<string, string>;
}

export interface Container {
  id: string;
  podSandboxId: string;
  metadata: ContainerMetadata;
  image: ImageSpec;
  imageRef: string;
  state: ContainerState;
  createdAt: number;
  labels: Record<string, string>;
  annotations: Record<string, string>;
}

export interface ContainerFilter {
  id?: string;
  state?: ContainerState;
  podSandboxId?: string;
  labelSelector?: Record<string, string>;
}

export interface ExecSyncResponse {
  stdout: Buffer;
  stderr: Buffer;
  exitCode: number;
}

// ---- stats --------------------------------------------------------------

export interface ContainerAttributes {
  id: string;
  metadata: ContainerMetadata;
  labels: Record<string, string>;
  annotations: Record<string, string>;
}

export interface CpuUsage {
  timestamp: number;
  /** Cumulative CPU time in nanoseconds. */
  usageCoreNanoSeconds: number;
}

export interface MemoryUsage {
  timestamp: number;
  /** Usage minus inactive file cache, as the kubelet computes it. */
  workingSetBytes: number;
  usageBytes: number;
  rssBytes: number;
  pageFaults: number;
  majorPageFaults: number;
}

export interface FilesystemUsage {
  timestamp: number;
  fsId: { mountpoint: string };
  usedBytes: number;
  inodesUsed?: number;
}

export interface ContainerStats {
  attributes: ContainerAttributes;
  cpu?: CpuUsage;
  memory?: MemoryUsage;
  writableLayer?: FilesystemUsage;
}

export interface ContainerStatsFilter {
  id?: string;
  podSandboxId?: string;
  labelSelector?: Record<string, string>;
}

// ---- images -------------------------------------------------------------

export interface Image {
  /** Image ID (sha256:...). */
  id: string;
  repoTags: string[];
  repoDigests: string[];
  size: number;
  uid?: number;
  username: string;
  spec?: ImageSpec;
  pinned: boolean;
}

export interface ImageFilter {
  image?: ImageSpec;
}

/** CRI AuthConfig: credentials for one registry, from an image pull secret. */
export interface AuthConfig {
  username?: string;
  password?: string;
  /** base64("user:password") as in a docker config.json. */
  auth?: string;
  serverAddress?: string;
  identityToken?: string;
  registryToken?: string;
}

/** One progress event of a pull (not CRI: CRI has no pull progress; the kubelet logs it). */
export interface PullProgress {
  id?: string;
  status: string;
  current?: number;
  total?: number;
}

export interface ImageFsInfoResponse {
  imageFilesystems: FilesystemUsage[];
  containerFilesystems: FilesystemUsage[];
}
