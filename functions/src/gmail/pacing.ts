/**
 * Per-mailbox pacing at Gmail's per-user quota (docs/CONTRACT.md).
 *
 * Written here rather than taken from a rate-limit library because it must do
 * things together that the libraries we looked at do not: charge each call its
 * own cost in quota units, find how much burst Gmail really allows for a user
 * (Gmail calls its limit "a moving average that allows short bursts" and does
 * not publish the window), lower its rate when Gmail refuses calls, never call
 * again before a Retry-After has passed, and climb back as calls succeed.
 *
 * The model: a token bucket in quota units refilled at the configured
 * sustained rate. Its capacity starts at the widest burst Gmail is thought to
 * allow (a minute of quota) and shrinks to what Gmail proves it holds: when a
 * call is refused while the bucket still showed tokens, Gmail's bucket was
 * smaller by that much. A burst learned smaller grows back (linearly to the
 * widest over `REGROW_MS`, from `REGROW_DELAY_MS` after the last refusal that
 * shrank it), so that a Gmail that allows more again is found again: the next
 * burst probes the larger size, and a refusal shrinks it once more. One pacer
 * serves every run reading one address in a process (`pacerFor`), and its
 * state travels with the address's hold (address.ts) to the next holder in
 * another process.
 */

/** How long after a refusal that shrank the burst it starts to grow back. */
export const REGROW_DELAY_MS = 60_000;
/** How long the believed burst takes to grow from nothing back to the widest. */
export const REGROW_MS = 600_000;
/**
 * Refusal episodes this close together say the sustained rate is too high; a lone one is the
 * jitter between our count and Gmail's, and the pause it imposes already lets Gmail's bucket refill.
 */
export const RATE_EPISODES_MS = 10_000;

/** What a pacer knows, as stored with its address's hold. */
export interface PacerState {
  tokens: number;
  rate: number;
  capacity: number;
  pausedUntil: number;
  /** When a refusal last shrank the burst (ms since the epoch; absent in states written before it was kept). */
  shrunkAt?: number;
  /** When the state was taken (the pacer's clock, ms since the epoch). */
  at: number;
}

/** A token bucket in quota units whose size and refill rate adapt to Gmail's answers. */
export class QuotaPacer {
  private tokens: number;
  private last: number;
  private rate: number;
  private readonly maxRate: number;
  private capacity: number;
  private readonly maxCapacity: number;
  private readonly minCapacity: number;
  private shrunkAt = -Infinity;
  private grownAt: number;
  private lastThrottle = -Infinity;
  private pausedUntil = -Infinity;
  /** Refusal episodes in a row without a success: the own backoff doubles with each. */
  private streak = 0;
  private inFlight = 0;
  private maxInFlight = Infinity;
  private sinceWiden = 0;
  private readonly waiting: (() => void)[] = [];
  /** The longest a call has taken to be answered, as the margin between our count and Gmail's. */
  private slackMs = 20;

  /**
   * @param unitsPerMinute the configured per-user quota; 0 means unpaced
   * @param burstSeconds the widest burst to try, in seconds of quota (default a minute's)
   */
  constructor(
    unitsPerMinute: number,
    private readonly now: () => number = Date.now,
    burstSeconds = 60,
  ) {
    this.maxRate = unitsPerMinute / 60;
    this.rate = this.maxRate;
    this.minCapacity = Math.max(this.maxRate, 5);
    this.capacity = Math.max(this.maxRate * burstSeconds, this.minCapacity);
    this.maxCapacity = this.capacity;
    this.tokens = this.capacity;
    this.last = now();
    this.grownAt = this.last;
  }

  /** Units per second currently allowed. */
  get currentRate(): number {
    return this.rate;
  }

  /** Units the pacer believes Gmail lets this user spend at once. */
  get burstUnits(): number {
    return this.capacity;
  }

  /** When the next call may start at the earliest (ms, the pacer's clock). */
  get notBefore(): number {
    return this.pausedUntil;
  }

  /** Calls allowed in flight at once (Infinity until Gmail refuses for concurrency). */
  get concurrency(): number {
    return this.maxInFlight;
  }

  /** Units that may be spent at once now (Infinity when unpaced). */
  get available(): number {
    if (this.maxRate <= 0) return Infinity;
    if (this.now() < this.pausedUntil) return 0;
    this.refill();
    return Math.max(0, this.tokens);
  }

  /** Grows a burst learned smaller back towards the widest (see REGROW_MS). */
  private regrow(t: number): void {
    const from = Math.max(this.grownAt, this.shrunkAt + REGROW_DELAY_MS);
    if (this.capacity < this.maxCapacity && t > from) {
      this.capacity = Math.min(this.maxCapacity, this.capacity + ((t - from) / REGROW_MS) * this.maxCapacity);
    }
    this.grownAt = Math.max(this.grownAt, t);
  }

  private refill(): void {
    const t = this.now();
    this.regrow(t);
    if (t > this.last) this.tokens = Math.min(this.capacity, this.tokens + ((t - this.last) / 1000) * this.rate);
    this.last = Math.max(this.last, t);
  }

  /** Waits until `cost` units may be spent, then spends them; throws RunAborted once `signal` aborts. */
  async take(cost: number, signal?: AbortSignal): Promise<void> {
    for (;;) {
      if (signal?.aborted) throw new RunAborted();
      if (this.maxRate <= 0) return;
      const t = this.now();
      if (t < this.pausedUntil) {
        await sleep(this.pausedUntil - t, signal);
        continue;
      }
      this.refill();
      // Gmail charges a call when it arrives, up to a call's latency after we count it; keep that
      // much refill (at least 20 ms, at most 2 s) in hand so that our count never runs ahead of Gmail's.
      const need = Math.min(cost + (this.rate * this.slackMs) / 1000, this.capacity);
      if (this.tokens >= need) {
        this.tokens -= cost;
        return;
      }
      const waitMs = Math.max(1, ((need - this.tokens) / this.rate) * 1000);
      await sleep(waitMs, signal);
    }
  }

  /** Waits for a place among the calls in flight; pair with `leave`. */
  async enter(signal?: AbortSignal): Promise<void> {
    while (this.inFlight >= this.maxInFlight) {
      if (signal?.aborted) throw new RunAborted();
      await new Promise<void>((resolve) => {
        const done = () => {
          signal?.removeEventListener('abort', done);
          resolve();
        };
        this.waiting.push(done);
        signal?.addEventListener('abort', done, { once: true });
      });
    }
    if (signal?.aborted) throw new RunAborted();
    this.inFlight++;
  }

  leave(): void {
    this.inFlight = Math.max(0, this.inFlight - 1);
    this.waiting.shift()?.();
  }

  /**
   * Gmail said this user is over quota. The bucket is empty now, whatever it
   * showed; if it showed tokens, Gmail's burst is that much smaller than
   * believed. No call starts before `retryAfterMs` has passed, or, without
   * one, before an own backoff (1 s, doubling while refusals go on, at most
   * 32 s). The calls in flight together are refused together: one episode.
   * The rate is halved at most once an episode, only when the burst cannot be
   * the reason (the bucket was empty, or already one second wide), and only
   * when the episode before began less than RATE_EPISODES_MS ago: a lone
   * refusal now and then is jitter, and halving for it would leave quota that
   * Gmail refilled during the pause unused.
   */
  throttled(retryAfterMs?: number): void {
    if (this.maxRate <= 0) return;
    this.refill();
    const t = this.now();
    const left = this.tokens;
    // Units left in a bucket still wider than a second: Gmail's burst is smaller, not its rate.
    const burstWrong = left > 0 && this.capacity > this.minCapacity;
    if (burstWrong) {
      this.capacity = Math.max(this.minCapacity, this.capacity - left);
      this.shrunkAt = t;
    }
    this.tokens = Math.min(this.tokens, 0);
    const episode = t - this.lastThrottle >= 1000;
    if (episode) {
      const recurring = t - this.lastThrottle < RATE_EPISODES_MS;
      this.lastThrottle = t;
      if (!burstWrong && recurring) this.rate = Math.max(this.maxRate / 16, this.rate / 2);
      this.streak++;
    }
    const own = Math.min(32_000, 1000 * 2 ** Math.max(0, this.streak - 1));
    this.pausedUntil = Math.max(this.pausedUntil, t + (retryAfterMs ?? own));
  }

  /** Gmail refused a call for too many concurrent requests: allow one fewer in flight than now. */
  tooManyConcurrent(): void {
    this.maxInFlight = Math.max(1, Math.min(this.maxInFlight, this.inFlight) - 1);
    this.sinceWiden = 0;
  }

  /** A call was answered `ms` after its units were counted. */
  answered(ms: number): void {
    if (ms > this.slackMs) this.slackMs = Math.min(2000, ms);
  }

  /** A call succeeded: climb back towards the configured rate and, slowly, towards more calls at once. */
  succeeded(): void {
    this.streak = 0;
    if (this.rate < this.maxRate) this.rate = Math.min(this.maxRate, this.rate * 1.02 + 0.01);
    if (Number.isFinite(this.maxInFlight) && ++this.sinceWiden >= 50) {
      this.sinceWiden = 0;
      this.maxInFlight++;
      this.waiting.shift()?.();
    }
  }

  /** The state to hand to the address's next holder. */
  snapshot(): PacerState {
    this.refill();
    return {
      tokens: this.tokens,
      rate: this.rate,
      capacity: this.capacity,
      pausedUntil: Number.isFinite(this.pausedUntil) ? this.pausedUntil : 0,
      shrunkAt: Number.isFinite(this.shrunkAt) ? this.shrunkAt : 0,
      at: this.now(),
    };
  }

  /** Takes over a state another process left, with the refill since it was taken. */
  restore(s: PacerState): void {
    if (this.maxRate <= 0) return;
    const t = this.now();
    this.capacity = Math.min(Math.max(this.minCapacity, s.capacity), this.capacity);
    this.shrunkAt = Math.max(Number.isFinite(this.shrunkAt) ? this.shrunkAt : 0, s.shrunkAt ?? 0);
    // The burst grows back from when the state was taken, as it would have in the holder that left it.
    this.grownAt = Math.min(t, s.at);
    this.regrow(t);
    this.rate = Math.min(this.maxRate, Math.max(this.maxRate / 16, s.rate));
    this.tokens = Math.min(this.capacity, s.tokens + (Math.max(0, t - s.at) / 1000) * this.rate);
    this.last = t;
    this.pausedUntil = Math.max(this.pausedUntil, s.pausedUntil ?? -Infinity);
  }
}

const pacers = new Map<string, { pacer: QuotaPacer; unitsPerMinute: number; now: () => number }>();

/**
 * The one pacer of `address` in this process: every run reading the address
 * here spends from it. A changed quota (or clock) starts a new one.
 */
export function pacerFor(address: string, unitsPerMinute: number, now: () => number = Date.now): QuotaPacer {
  const key = address.toLowerCase();
  const known = pacers.get(key);
  if (known && known.unitsPerMinute === unitsPerMinute && known.now === now) return known.pacer;
  const pacer = new QuotaPacer(unitsPerMinute, now);
  pacers.set(key, { pacer, unitsPerMinute, now });
  return pacer;
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
