// Docker container state -> CRI container state, exit reason and times (pure).
// Follows dockershim: running -> RUNNING; a finish time -> EXITED with reason
// OOMKilled / Completed / Error; a failed start (exit code but never started)
// -> EXITED with reason ContainerCannotRun and Docker's error as message.
import type { ContainerState, PodSandboxState } from './api.ts';
import {
  CONTAINER_CREATED,
  CONTAINER_EXITED,
  CONTAINER_RUNNING,
  CONTAINER_UNKNOWN,
  REASON_COMPLETED,
  REASON_ERROR,
  REASON_OOM_KILLED,
  SANDBOX_NOTREADY,
  SANDBOX_READY,
} from './api.ts';
import { parseRfc3339Nano } from './logformat.ts';

export const REASON_CANNOT_RUN = 'ContainerCannotRun';

/** The part of Docker's inspect State this module reads. */
export interface DockerState {
  Status?: string;
  Running?: boolean;
  Paused?: boolean;
  Restarting?: boolean;
  OOMKilled?: boolean;
  Dead?: boolean;
  ExitCode?: number;
  Error?: string;
  StartedAt?: string;
  FinishedAt?: string;
}

/** Nanoseconds since the epoch; 0 for Go's zero time, '' or garbage. */
export function dockerTimeToNanos(ts: string | undefined): number {
  if (!ts || ts.startsWith('0001-01-01')) return 0;
  const p = parseRfc3339Nano(ts);
  if (!p) return 0;
  return p[0] * 1e9 + p[1];
}

export interface MappedStatus {
  state: ContainerState;
  startedAt: number;
  finishedAt: number;
  exitCode: number;
  reason: string;
  message: string;
}

export function mapContainerState(s: DockerState): MappedStatus {
  const startedAt = dockerTimeToNanos(s.StartedAt);
  const finishedAt = dockerTimeToNanos(s.FinishedAt);
  const exitCode = s.ExitCode ?? 0;
  const base = { startedAt, finishedAt, exitCode, reason: '', message: '' };
  if (s.Running || s.Status === 'running' || s.Status === 'paused' || s.Status === 'restarting') {
    return { ...base, state: CONTAINER_RUNNING, finishedAt: 0, exitCode: 0 };
  }
  if (finishedAt !== 0) {
    const reason = s.OOMKilled ? REASON_OOM_KILLED : exitCode === 0 ? REASON_COMPLETED : REASON_ERROR;
    // Docker records a failed start with a finish time but no start time.
    if (startedAt === 0 && exitCode !== 0 && s.Error) {
      return { ...base, state: CONTAINER_EXITED, reason: REASON_CANNOT_RUN, message: s.Error };
    }
    return { ...base, state: CONTAINER_EXITED, reason };
  }
  if (exitCode !== 0) {
    return { ...base, state: CONTAINER_EXITED, reason: REASON_CANNOT_RUN, message: s.Error ?? '' };
  }
  if (s.Status === 'created') return { ...base, state: CONTAINER_CREATED };
  if (s.Status === 'exited' || s.Status === 'dead') return { ...base, state: CONTAINER_EXITED, reason: REASON_COMPLETED };
  return { ...base, state: CONTAINER_UNKNOWN };
}

/** State from `docker ps`'s State field (no inspect needed). */
export function listStateToCri(state: string | undefined): ContainerState {
  switch (state) {
    case 'created':
      return CONTAINER_CREATED;
    case 'running':
    case 'paused':
    case 'restarting':
      return CONTAINER_RUNNING;
    case 'exited':
    case 'dead':
      return CONTAINER_EXITED;
    default:
      return CONTAINER_UNKNOWN;
  }
}

/** A sandbox is READY while its pause container runs. */
export function sandboxStateFromList(state: string | undefined): PodSandboxState {
  return state === 'running' ? SANDBOX_READY : SANDBOX_NOTREADY;
}

/** The part of a Docker endpoint (inspect NetworkSettings.Networks[name]) sandboxNetwork reads. */
export interface DockerEndpoint {
  IPAddress?: string;
  GlobalIPv6Address?: string;
}

/**
 * A sandbox's CRI network status from its Docker endpoint, as dockershim's
 * getIPs: the IPv4 address is the ip and a global IPv6 one the additional ip
 * (a dual-stack bridge, dockerd --ipv6); on an IPv6-only network the IPv6
 * address is the ip.
 */
export function sandboxNetwork(ep: DockerEndpoint | undefined): { ip: string; additionalIps: { ip: string }[] } {
  const v4 = ep?.IPAddress ?? '';
  const v6 = ep?.GlobalIPv6Address ?? '';
  if (!v4) return { ip: v6, additionalIps: [] };
  return { ip: v4, additionalIps: v6 ? [{ ip: v6 }] : [] };
}
