// API times as the API server wants them on the wire.

/** A MicroTime (leases, events.k8s.io): RFC 3339 with six fractional digits, which the API server requires. */
export class MicroTime extends Date {
  override toISOString(): string {
    return `${super.toISOString().slice(0, -1)}000Z`;
  }
}
