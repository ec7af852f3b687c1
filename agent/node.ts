// NodeController: what upstream kubelet does for its own Node object.
//  1. Registration (registerWithAPIServer): create the Node; if it already
//     exists, read it and reconcile default labels and status. Retries with
//     backoff (100 ms doubling to 7 s) while the API server is unreachable.
//  2. Status (syncNodeStatus), every nodeStatusUpdateFrequency: read the
//     Node, recompute conditions from the runtime's health, merge-patch the
//     status when something changed or nodeStatusReportFrequency elapsed.
//  3. Lease (component-helpers lease controller): kube-node-lease/<node>,
//     renewed every leaseDuration/4; on conflict re-read and retry.
// Loops are level-triggered, log errors as one line, never throw out, and end
// promptly when the signal aborts.
import type { V1Lease, V1Node, V1NodeCondition } from '@kubernetes/client-node';
import type { RuntimeService, VersionResponse } from '../cri/runtime.ts';
import { Backoff } from '../lib/backoff.ts';
import type { Clock } from '../lib/clock.ts';
import { describeError, errorCode, NodeletError } from '../lib/errors.ts';
import type { Logger } from '../lib/log.ts';
import type { AgentConfig } from './config.ts';
import type { MachineInfo } from './machine.ts';
import type { NodeApi } from './nodeapi.ts';
import { apiStatus } from '../lib/kube/errors.ts';
import { MicroTime } from '../lib/kube/time.ts';
import type { NodeHealth, NodeInput } from './nodestatus.ts';
import {
  buildNode,
  buildNodeStatus,
  computeConditions,
  readyStatus,
  reconcileDefaultLabels,
  runtimeHealth,
  shouldPatchStatus,
  statusFieldsPatch,
} from './nodestatus.ts';

export const LEASE_NAMESPACE = 'kube-node-lease';
/** Upstream maxUpdateRetries for the lease. */
const LEASE_UPDATE_RETRIES = 5;
/** Upstream registration and lease backoff: 100 ms doubling, capped at 7 s. */
const BACKOFF_INITIAL_MS = 100;
const BACKOFF_MAX_MS = 7_000;

export type NodeControllerConfig = Pick<
  AgentConfig,
  | 'nodeName'
  | 'hostname'
  | 'nodeIP'
  | 'podCIDR'
  | 'nodeLabels'
  | 'maxPods'
  | 'port'
  | 'nodeLeaseDurationSeconds'
  | 'nodeStatusUpdateFrequencyMs'
  | 'nodeStatusReportFrequencyMs'
>;

/** The part of the runtime the controller uses (the CRI interface keeps growing). */
export type RuntimeHealthSource = Pick<RuntimeService, 'version' | 'status'>;

export interface NodeControllerDeps {
  api: NodeApi;
  runtime: RuntimeHealthSource;
  clock: Clock;
  /** Parent logger; the controller takes a child with component 'node'. */
  log: Logger;
  config: NodeControllerConfig;
  machine: MachineInfo;
  /** The Kubernetes version nodelet reports as kubeletVersion, e.g. 'v1.37.2'. */
  kubeletVersion: string;
}

/** One line for logs: our errors already carry a complete message. */
function errMsg(err: unknown): string {
  const s = err instanceof NodeletError ? err.message : describeError(err);
  return s.replace(/\s*\n\s*/g, ' ');
}

/** The lease to write (upstream newLease + the kubelet's setNodeOwnerFunc). */
export function newLease(
  base: V1Lease | undefined,
  p: { nodeName: string; nodeUID: string | undefined; leaseDurationSeconds: number },
  nowMs: number,
): V1Lease {
  const lease: V1Lease = base
    ? { ...base, metadata: { ...base.metadata }, spec: { ...base.spec } }
    : {
        apiVersion: 'coordination.k8s.io/v1',
        kind: 'Lease',
        metadata: { name: p.nodeName, namespace: LEASE_NAMESPACE },
        spec: { holderIdentity: p.nodeName, leaseDurationSeconds: p.leaseDurationSeconds },
      };
  // A plain Date's millisecond form is rejected for a MicroTime.
  lease.spec = { ...lease.spec, renewTime: new MicroTime(nowMs) };
  const meta = lease.metadata ?? {};
  if (p.nodeUID) {
    const owner = { apiVersion: 'v1', kind: 'Node', name: p.nodeName, uid: p.nodeUID };
    const refs = meta.ownerReferences ?? [];
    if (refs.length === 0) meta.ownerReferences = [owner];
    // A Node re-created under the same name has a new uid; a reference to
    // the old one would get the lease garbage-collected.
    else if (refs.some((r) => r.kind === 'Node' && r.uid !== p.nodeUID)) {
      meta.ownerReferences = refs.map((r) => (r.kind === 'Node' ? owner : r));
    }
  }
  lease.metadata = meta;
  return lease;
}

export class NodeController {
  private readonly api: NodeApi;
  private readonly runtime: RuntimeHealthSource;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly cfg: NodeControllerConfig;
  private readonly machine: MachineInfo;
  private readonly kubeletVersion: string;

  private runtimeVersion: VersionResponse | undefined;
  private uid: string | undefined;
  private isRegistered = false;
  private isReady = false;
  private lastReportMs = Number.NEGATIVE_INFINITY;
  private latestLease: V1Lease | undefined;
  private abort: AbortController | undefined;
  private done: Promise<void> | undefined;

  constructor(deps: NodeControllerDeps) {
    this.api = deps.api;
    this.runtime = deps.runtime;
    this.clock = deps.clock;
    this.cfg = deps.config;
    this.machine = deps.machine;
    this.kubeletVersion = deps.kubeletVersion;
    this.log = deps.log.child({ component: 'node', node: deps.config.nodeName });
  }

  /** Whether the Ready condition last reported (or found) in the API is True. */
  get ready(): boolean {
    return this.isReady;
  }

  /** Whether the Node exists in the API server as far as the controller knows. */
  get registered(): boolean {
    return this.isRegistered;
  }

  /** The Node's uid once registered. */
  get nodeUID(): string | undefined {
    return this.uid;
  }

  /** Starts registration, then the status and lease loops, in the background. */
  start(signal: AbortSignal): void {
    if (this.done) throw new NodeletError('NODE_CONTROLLER_STARTED', 'node controller already started');
    const ac = new AbortController();
    this.abort = ac;
    const onAbort = () => ac.abort();
    if (signal.aborted) ac.abort();
    else signal.addEventListener('abort', onAbort, { once: true });
    this.done = this.run(ac.signal)
      .catch((err: unknown) => {
        this.log.error('node controller stopped on an unexpected error', { error: errMsg(err) });
      })
      .finally(() => signal.removeEventListener('abort', onAbort));
  }

  /** Stops the loops and waits until they have returned. */
  async stop(): Promise<void> {
    this.abort?.abort();
    await this.done;
  }

  private async run(signal: AbortSignal): Promise<void> {
    if (!(await this.registerWithBackoff(signal))) return;
    await Promise.all([this.statusLoop(signal), this.leaseLoop(signal)]);
    this.log.debug('node controller stopped');
  }

  // ------------------------------------------------------------ registration

  private async registerWithBackoff(signal: AbortSignal): Promise<boolean> {
    const backoff = new Backoff(BACKOFF_INITIAL_MS, BACKOFF_MAX_MS);
    while (!signal.aborted) {
      if (await this.guard('register', () => this.tryRegister())) return true;
      await this.clock.sleep(backoff.next(), signal);
    }
    return false;
  }

  /** One registration attempt (upstream tryRegisterWithAPIServer). */
  private async tryRegister(): Promise<boolean> {
    const name = this.cfg.nodeName;
    const health = await this.checkRuntime();
    const nowMs = this.clock.now();
    const node = buildNode({ ...this.nodeInput(), conditions: computeConditions(undefined, health, new Date(nowMs)) });
    this.log.info('attempting to register node');
    try {
      const created = await this.api.createNode(node);
      this.uid = created.metadata?.uid;
      this.isRegistered = true;
      this.lastReportMs = nowMs;
      this.noteReady(node.status?.conditions);
      this.log.info('successfully registered node', { uid: this.uid });
      return true;
    } catch (err) {
      if (errorCode(err) !== 'API_CONFLICT') {
        this.log.error('unable to register node with API server', { error: errMsg(err) });
        return false;
      }
    }

    let existing: V1Node | undefined;
    try {
      existing = await this.api.getNode(name);
    } catch (err) {
      this.log.error('unable to register node with API server: error getting existing node', { error: errMsg(err) });
      return false;
    }
    if (!existing) {
      this.log.error('unable to register node with API server: node exists but is gone when read back; retrying');
      return false;
    }
    this.log.info('node was previously registered; reconciling it', { uid: existing.metadata?.uid });
    const labels = reconcileDefaultLabels(node, existing);
    const conditions = computeConditions(existing.status?.conditions, health, new Date(nowMs));
    const fields = statusFieldsPatch(existing.status, this.desiredStatus(existing));
    const patch = { ...(labels ? { metadata: { labels } } : {}), status: { ...fields, conditions } };
    try {
      await this.api.patchNodeStatus(name, patch);
    } catch (err) {
      this.log.error('unable to reconcile node with API server: error updating node', { error: errMsg(err) });
      return false;
    }
    this.uid = existing.metadata?.uid;
    this.isRegistered = true;
    this.lastReportMs = nowMs;
    this.noteReady(conditions);
    return true;
  }

  // ------------------------------------------------------------ status

  private async statusLoop(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      await this.guard('node status', () => this.syncNodeStatus());
      await this.clock.sleep(this.cfg.nodeStatusUpdateFrequencyMs, signal);
    }
  }

  /** One status update (upstream tryUpdateNodeStatus). */
  private async syncNodeStatus(): Promise<void> {
    const name = this.cfg.nodeName;
    const health = await this.checkRuntime();
    let observed: V1Node | undefined;
    try {
      observed = await this.api.getNode(name);
    } catch (err) {
      this.log.error('unable to update node status', { error: errMsg(err) });
      return;
    }
    if (!observed) {
      this.log.warn('node not found in the API server; registering it again');
      this.isRegistered = false;
      this.latestLease = undefined;
      await this.tryRegister();
      return;
    }
    this.uid = observed.metadata?.uid ?? this.uid;

    const nowMs = this.clock.now();
    const prev = observed.status?.conditions;
    const conditions = computeConditions(prev, health, new Date(nowMs));
    const fields = statusFieldsPatch(observed.status, this.desiredStatus(observed));
    const fieldsChanged = Object.keys(fields).length > 0;
    if (!fieldsChanged && !shouldPatchStatus(prev, conditions, this.lastReportMs, nowMs, this.cfg.nodeStatusReportFrequencyMs)) {
      this.log.debug('node status unchanged; not patching');
      this.noteReady(prev);
      return;
    }
    try {
      await this.api.patchNodeStatus(name, { status: { ...fields, conditions } });
    } catch (err) {
      this.log.error('unable to update node status', { error: errMsg(err) });
      return;
    }
    this.lastReportMs = nowMs;
    this.log.debug('patched node status', { fields: Object.keys(fields) });
    this.noteReady(conditions);
  }

  /** Runtime health (and its version while it answers); never throws. */
  private async checkRuntime(): Promise<NodeHealth> {
    let health: NodeHealth;
    try {
      health = runtimeHealth(await this.runtime.status());
    } catch (err) {
      health = runtimeHealth({ error: errMsg(err) });
    }
    if (health.runtimeReady) {
      try {
        this.runtimeVersion = await this.runtime.version();
      } catch (err) {
        this.log.warn('unable to read the container runtime version', { error: errMsg(err) });
      }
    }
    return health;
  }

  private nodeInput(): NodeInput {
    const c = this.cfg;
    return {
      nodeName: c.nodeName,
      hostname: c.hostname,
      nodeIP: c.nodeIP,
      podCIDR: c.podCIDR,
      nodeLabels: c.nodeLabels,
      maxPods: c.maxPods,
      kubeletPort: c.port,
      machine: this.machine,
      runtime: this.runtimeVersion,
      kubeletVersion: this.kubeletVersion,
    };
  }

  /** Desired status fields; an unknown runtime version keeps the observed one. */
  private desiredStatus(observed: V1Node) {
    const desired = buildNodeStatus(this.nodeInput());
    const seen = observed.status?.nodeInfo?.containerRuntimeVersion;
    if (!this.runtimeVersion && desired.nodeInfo && seen) desired.nodeInfo.containerRuntimeVersion = seen;
    return desired;
  }

  private noteReady(conditions: readonly V1NodeCondition[] | undefined): void {
    const ready = readyStatus(conditions) === 'True';
    if (ready !== this.isReady) {
      const c = conditions?.find((x) => x.type === 'Ready');
      if (ready) this.log.info('node is Ready');
      else this.log.warn('node is NotReady', { reason: c?.reason, detail: c?.message }); // 'message' would merge into the log message
    }
    this.isReady = ready;
  }

  // ------------------------------------------------------------ lease

  private async leaseLoop(signal: AbortSignal): Promise<void> {
    const renewMs = (this.cfg.nodeLeaseDurationSeconds * 1000) / 4;
    while (!signal.aborted) {
      await this.guard('lease', () => this.syncLease(signal));
      await this.clock.sleep(renewMs, signal);
    }
  }

  /** Upstream lease controller sync: update from the last lease, else get-or-create then update. */
  private async syncLease(signal: AbortSignal): Promise<void> {
    if (this.latestLease) {
      if (await this.retryUpdateLease(this.latestLease, signal)) return;
      if (signal.aborted) return;
      this.log.info('failed to update lease using latest lease, falling back to ensure lease');
    }
    const ensured = await this.backoffEnsureLease(signal);
    if (!ensured) return;
    this.latestLease = ensured.lease;
    if (!ensured.created) await this.retryUpdateLease(ensured.lease, signal);
  }

  private async backoffEnsureLease(signal: AbortSignal): Promise<{ lease: V1Lease; created: boolean } | undefined> {
    const backoff = new Backoff(2 * BACKOFF_INITIAL_MS, BACKOFF_MAX_MS);
    while (!signal.aborted) {
      try {
        return await this.ensureLease();
      } catch (err) {
        const retryInMs = backoff.next();
        this.log.error('failed to ensure lease exists, will retry', { error: errMsg(err), retryInMs });
        await this.clock.sleep(retryInMs, signal);
      }
    }
    return undefined;
  }

  private async ensureLease(): Promise<{ lease: V1Lease; created: boolean }> {
    const name = this.cfg.nodeName;
    const existing = await this.api.getLease(LEASE_NAMESPACE, name);
    if (existing) return { lease: existing, created: false };
    if (!this.uid) throw new NodeletError('NODE_NOT_REGISTERED', `lease ${LEASE_NAMESPACE}/${name}: node uid not known yet`);
    const lease = await this.api.createLease(this.leaseFrom(undefined));
    this.log.info('created node lease');
    return { lease, created: true };
  }

  private async retryUpdateLease(base: V1Lease, signal: AbortSignal): Promise<boolean> {
    let current = base;
    for (let i = 0; i < LEASE_UPDATE_RETRIES && !signal.aborted; i++) {
      try {
        this.latestLease = await this.api.replaceLease(this.leaseFrom(current));
        this.log.debug('renewed node lease');
        return true;
      } catch (err) {
        this.log.error('failed to update lease', { error: errMsg(err) });
        const status = apiStatus(err);
        // A conflict (or a deleted lease) needs the current object first.
        if (errorCode(err) === 'API_CONFLICT' || status === 404) {
          const ensured = await this.backoffEnsureLease(signal);
          if (!ensured) return false;
          if (ensured.created) {
            this.latestLease = ensured.lease;
            return true;
          }
          current = ensured.lease;
          continue;
        }
        // The server was not reached: retrying at once will not help.
        if (status === undefined) return false;
      }
    }
    return false;
  }

  private leaseFrom(base: V1Lease | undefined): V1Lease {
    return newLease(
      base,
      { nodeName: this.cfg.nodeName, nodeUID: this.uid, leaseDurationSeconds: this.cfg.nodeLeaseDurationSeconds },
      this.clock.now(),
    );
  }

  // ------------------------------------------------------------ helpers

  /** Runs one step of a loop; anything it throws is logged, never rethrown. */
  private async guard<T>(what: string, fn: () => Promise<T>): Promise<T | undefined> {
    try {
      return await fn();
    } catch (err) {
      this.log.error(`${what}: unexpected error`, { error: errMsg(err) });
      return undefined;
    }
  }
}
