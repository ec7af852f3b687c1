// In-memory PodObjects: tests put ConfigMaps, Secrets and Services in, and see
// which tokens were requested. Token strings are deterministic so tests can
// compare file contents.
import type { V1ConfigMap, V1Secret, V1Service } from '@kubernetes/client-node';
import type { Clock } from '../../lib/clock.ts';
import { NodeletError } from '../../lib/errors.ts';
import type { IssuedToken, PodObjects, TokenRequest } from '../../agent/pod/objects.ts';

export class FakePodObjects implements PodObjects {
  readonly configMaps = new Map<string, V1ConfigMap>();
  readonly secrets = new Map<string, V1Secret>();
  readonly services = new Map<string, V1Service>();
  readonly tokenRequests: TokenRequest[] = [];
  /** Set to make every call fail (an unreachable API server). */
  failWith: Error | undefined;
  private readonly clock: Clock;

  constructor(clock: Clock) {
    this.clock = clock;
  }

  addConfigMap(namespace: string, name: string, data: Record<string, string>, binaryData?: Record<string, string>): void {
    this.configMaps.set(`${namespace}/${name}`, { metadata: { namespace, name }, data, ...(binaryData ? { binaryData } : {}) });
  }

  /** `data` is plain text here; stored base64-encoded as the API returns it. */
  addSecret(namespace: string, name: string, data: Record<string, string>): void {
    const enc = Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v).toString('base64')]));
    this.secrets.set(`${namespace}/${name}`, { metadata: { namespace, name }, data: enc });
  }

  addService(svc: V1Service): void {
    this.services.set(`${svc.metadata?.namespace ?? 'default'}/${svc.metadata?.name ?? ''}`, svc);
  }

  private check(): void {
    if (this.failWith) throw this.failWith;
  }

  async getConfigMap(namespace: string, name: string): Promise<V1ConfigMap | undefined> {
    this.check();
    return structuredClone(this.configMaps.get(`${namespace}/${name}`));
  }

  async getSecret(namespace: string, name: string): Promise<V1Secret | undefined> {
    this.check();
    return structuredClone(this.secrets.get(`${namespace}/${name}`));
  }

  async listServices(namespace: string): Promise<V1Service[]> {
    this.check();
    return [...this.services.values()].filter((s) => (s.metadata?.namespace ?? 'default') === namespace).map((s) => structuredClone(s));
  }

  async requestToken(req: TokenRequest): Promise<IssuedToken> {
    this.check();
    if (!req.serviceAccountName) throw new NodeletError('API_ERROR', 'serviceaccount name is empty');
    this.tokenRequests.push(structuredClone(req));
    const n = this.tokenRequests.length;
    return {
      token: `token-${req.namespace}-${req.serviceAccountName}-${req.boundPod.name}-${n}`,
      expiresAtMs: this.clock.now() + req.expirationSeconds * 1000,
    };
  }
}
