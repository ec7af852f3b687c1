// Client certificate rotation, as kubelet's certificate manager: at a jittered
// 70-90% of the certificate's lifetime, a new key and a CSR authenticated by
// the current certificate (auto-approved through the selfnodeclient binding);
// the new pair replaces the old in one rename. Failures retry with backoff
// until the certificate expires; the agent keeps running meanwhile.
import type { Clock } from '../../lib/clock.ts';
import { describeError } from '../../lib/errors.ts';
import type { Logger } from '../../lib/log.ts';
import { requestClientCertificate } from './bootstrap.ts';
import { generateNodeKey } from './csr.ts';
import { type CredentialPaths, readCredentials, replaceClientPem } from './credentials.ts';
import type { JsonRequester } from './http.ts';

/** When to rotate: notBefore + (0.7 + 0.2 * jitter) of the lifetime; jitter in [0,1). */
export function rotationDeadline(notBeforeMs: number, notAfterMs: number, jitter: number): number {
  const life = notAfterMs - notBeforeMs;
  return notBeforeMs + Math.round(life * (0.7 + 0.2 * Math.min(Math.max(jitter, 0), 1)));
}

export interface RotatorDeps {
  request: JsonRequester;
  clock: Clock;
  log: Logger;
  paths: CredentialPaths;
  nodeName: string;
  random?: () => number;
  csrTimeoutMs?: number;
}

const RETRY_MIN_MS = 5_000;
/**
 * Waits are taken in steps that re-read the files, so a certificate replaced
 * from outside (an admin, a restore) gets its own deadline within a step.
 */
const MAX_SLEEP_MS = 30_000;
const RETRY_MAX_MS = 5 * 60_000;

export class ClientCertRotator {
  private readonly d: RotatorDeps;
  private loop: Promise<void> | undefined;
  /** Rotations done (for tests and logs). */
  rotations = 0;

  constructor(d: RotatorDeps) {
    this.d = d;
  }

  start(signal: AbortSignal): void {
    this.loop = this.run(signal);
  }

  async stop(): Promise<void> {
    await this.loop;
  }

  private async run(signal: AbortSignal): Promise<void> {
    const { clock, log } = this.d;
    const random = this.d.random ?? Math.random;
    let retryMs = RETRY_MIN_MS;
    // One jittered deadline per certificate, not a new one per wake-up.
    let planned: { fingerprint: string; at: number } | undefined;
    while (!signal.aborted) {
      const cur = readCredentials(this.d.paths);
      if (!cur) {
        log.warn('client certificate rotation: no readable credentials', { file: this.d.paths.clientPem });
        await clock.sleep(RETRY_MAX_MS, signal);
        continue;
      }
      if (planned?.fingerprint !== cur.cert.fingerprint256) {
        planned = { fingerprint: cur.cert.fingerprint256, at: rotationDeadline(cur.cert.validFromDate.getTime(), cur.cert.validToDate.getTime(), random()) };
        log.info('client certificate rotation scheduled', { at: new Date(planned.at).toISOString(), expires: cur.cert.validTo });
      }
      if (clock.now() < planned.at) {
        await clock.sleep(Math.min(planned.at - clock.now(), MAX_SLEEP_MS), signal);
        continue;
      }
      try {
        const key = generateNodeKey();
        const certPem = await requestClientCertificate(
          { request: this.d.request, clock, log },
          { server: cur.server, caPem: cur.caPem, clientCertPem: cur.certPem, clientKeyPem: cur.keyPem },
          key, this.d.nodeName, this.d.csrTimeoutMs ?? 5 * 60_000,
        );
        await replaceClientPem(this.d.paths, certPem, key);
        this.rotations++;
        retryMs = RETRY_MIN_MS;
        log.info('client certificate rotated', { file: this.d.paths.clientPem });
      } catch (err) {
        log.warn('client certificate rotation failed; retrying', { err: describeError(err), retryMs });
        await clock.sleep(retryMs, signal);
        retryMs = Math.min(retryMs * 2, RETRY_MAX_MS);
      }
    }
  }
}
