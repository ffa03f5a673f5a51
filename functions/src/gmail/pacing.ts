/**
 * Per-mailbox pacing at Gmail's per-user quota (docs/CONTRACT.md).
 *
 * Written here rather than taken from a rate-limit library because it must do
 * two things together that the libraries we looked at do not: charge each call
 * its own cost in quota units, and lower its own rate for a user that Gmail
 * answers with rate-limit errors, then climb back as calls succeed.
 */

/** A token bucket in quota units whose refill rate adapts to Gmail's answers. */
export class QuotaPacer {
  private tokens: number;
  private last: number;
  private rate: number;
  private readonly maxRate: number;
  private readonly capacity: number;
  private lastThrottle = -Infinity;

  /**
   * @param unitsPerMinute the configured per-user quota; 0 means unpaced
   * @param burstSeconds how many seconds of quota may be spent at once
   */
  constructor(
    unitsPerMinute: number,
    private readonly now: () => number = Date.now,
    burstSeconds = 1,
  ) {
    this.maxRate = unitsPerMinute / 60;
    this.rate = this.maxRate;
    this.capacity = Math.max(this.maxRate * burstSeconds, 5);
    this.tokens = this.capacity;
    this.last = now();
  }

  /** Units per second currently allowed. */
  get currentRate(): number {
    return this.rate;
  }

  private refill(): void {
    const t = this.now();
    this.tokens = Math.min(this.capacity, this.tokens + ((t - this.last) / 1000) * this.rate);
    this.last = t;
  }

  /** Waits until `cost` units may be spent, then spends them; throws RunAborted once `signal` aborts. */
  async take(cost: number, signal?: AbortSignal): Promise<void> {
    for (;;) {
      if (signal?.aborted) throw new RunAborted();
      if (this.maxRate <= 0) return;
      this.refill();
      if (this.tokens >= cost) {
        this.tokens -= cost;
        return;
      }
      const waitMs = Math.max(1, ((cost - this.tokens) / this.rate) * 1000);
      await sleep(waitMs, signal);
    }
  }

  /**
   * Gmail said this user is over quota: halve the rate and spend what is left.
   * The calls in flight together are refused together; that is one episode,
   * so the rate is halved at most once a second.
   */
  throttled(): void {
    if (this.maxRate <= 0) return;
    const t = this.now();
    this.tokens = Math.min(this.tokens, 0);
    if (t - this.lastThrottle < 1000) return;
    this.lastThrottle = t;
    this.rate = Math.max(this.maxRate / 16, this.rate / 2);
  }

  /** A call succeeded: climb back towards the configured rate. */
  succeeded(): void {
    if (this.rate < this.maxRate) this.rate = Math.min(this.maxRate, this.rate * 1.02 + 0.01);
  }
}

/** The run was told to end (Stop, or its lease was lost) while it waited. */
export class RunAborted extends Error {
  override readonly name = 'RunAborted';
  constructor() {
    super('the run was asked to end');
  }
}

/** A timer promise that an AbortSignal ends early. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}
