// Exponential backoff with a cap, as upstream's wait.Backoff: initial, factor 2.
export class Backoff {
  private current: number;
  private readonly initialMs: number;
  private readonly maxMs: number;
  constructor(initialMs: number, maxMs: number) {
    this.initialMs = initialMs;
    this.maxMs = maxMs;
    this.current = initialMs;
  }
  /** The delay to wait now; doubles the next one up to the cap. */
  next(): number {
    const d = this.current;
    this.current = Math.min(this.current * 2, this.maxMs);
    return d;
  }
  reset(): void {
    this.current = this.initialMs;
  }
}
