// API times as the API server wants them on the wire.

/** A MicroTime (leases, events.k8s.io): RFC 3339 with six fractional digits, which the API server requires. */
export class MicroTime extends Date {
  override toISOString(): string {
    return `${super.toISOString().slice(0, -1)}000Z`;
  }
}

/**
 * Go's time.Duration.String() of whole milliseconds: "0s", "250ms", "30s",
 * "1m30.5s", "24h0m0s" (what Go components print and config files hold).
 */
export function goDuration(ms: number): string {
  if (ms === 0) return '0s';
  const sign = ms < 0 ? '-' : '';
  const abs = Math.abs(ms);
  if (abs < 1000) return `${sign}${abs}ms`;
  const h = Math.floor(abs / 3_600_000);
  const m = Math.floor((abs % 3_600_000) / 60_000);
  const s = (abs % 60_000) / 1000;
  if (h > 0) return `${sign}${h}h${m}m${s}s`;
  if (m > 0) return `${sign}${m}m${s}s`;
  return `${sign}${s}s`;
}
