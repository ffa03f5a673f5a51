// Per-user quota, latency, fault and hang injection.
//
// Quota: Gmail meters each user in quota units per minute (15,000 for older projects,
// 6,000 for projects created since May 2026) and describes the limit as a moving average
// that allows short bursts. The emulator models it as one token bucket per user whose
// capacity is one minute's worth of units and which refills continuously at
// units-per-minute / 60 per second; a new user starts with a full bucket. So a client can
// burst up to a minute's quota at once, and after that sustain exactly the configured rate.
// `burstSeconds` narrows the bucket when a test wants the steady rate from the start.
// A call that does not fit is answered 429 rateLimitExceeded (or 403 userRateLimitExceeded)
// with Retry-After: the whole seconds until the bucket holds enough units for it. Refused
// calls cost nothing. A call that costs more than the whole bucket (batchModify under a
// tiny quota) is let through once the bucket is full, leaving it in debt.

import { fault, rateLimited, type ApiError, type FaultKind } from './errors.js';
import { createRng, type Rng } from './random.js';

/** Quota units per method, from Gmail's usage-limits table. */
export const METHOD_COSTS: Readonly<Record<string, number>> = {
  getProfile: 1,
  'labels.list': 1,
  'labels.get': 1,
  'messages.list': 5,
  'messages.get': 5,
  'messages.attachments.get': 5,
  'messages.insert': 25,
  'messages.import': 25,
  'messages.delete': 10,
  'messages.trash': 5,
  'messages.untrash': 5,
  'messages.modify': 5,
  'messages.batchModify': 50,
  'messages.batchDelete': 50,
  'history.list': 2,
  'threads.get': 10,
  'threads.list': 10,
  watch: 100,
  stop: 50,
};

interface Bucket {
  tokens: number;
  updated: number;
}

export class QuotaManager {
  private readonly buckets = new Map<string, Bucket>();
  private unitsPerMinute: number;

  constructor(
    unitsPerMinute: number,
    private readonly burstSeconds = 60,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.unitsPerMinute = Math.max(0, unitsPerMinute);
  }

  get rate(): number {
    return this.unitsPerMinute;
  }

  private get capacity(): number {
    return (this.unitsPerMinute * this.burstSeconds) / 60;
  }

  /** Changes the rate; buckets keep what they hold, up to the new capacity. */
  setRate(unitsPerMinute: number): void {
    const now = this.now();
    for (const b of this.buckets.values()) this.refill(b, now);
    this.unitsPerMinute = Math.max(0, unitsPerMinute);
    const cap = this.capacity;
    for (const b of this.buckets.values()) b.tokens = Math.min(b.tokens, cap);
    if (this.unitsPerMinute === 0) this.buckets.clear();
  }

  private refill(b: Bucket, now: number): void {
    const perMs = this.unitsPerMinute / 60_000;
    b.tokens = Math.min(this.capacity, b.tokens + (now - b.updated) * perMs);
    b.updated = now;
  }

  /** Takes `cost` units from the user's bucket; answers the seconds to wait when it cannot. */
  take(user: string, cost: number): { ok: true } | { ok: false; retryAfterSeconds: number } {
    if (this.unitsPerMinute === 0 || cost <= 0) return { ok: true };
    const now = this.now();
    let b = this.buckets.get(user);
    if (!b) {
      b = { tokens: this.capacity, updated: now };
      this.buckets.set(user, b);
    }
    this.refill(b, now);
    const need = Math.min(cost, this.capacity);
    if (b.tokens + 1e-9 >= need) {
      b.tokens -= cost;
      return { ok: true };
    }
    const perSecond = this.unitsPerMinute / 60;
    return { ok: false, retryAfterSeconds: Math.max(1, Math.ceil((need - b.tokens) / perSecond)) };
  }
}

const FAULT_KINDS: readonly FaultKind[] = ['429', '403', '500', '503'];

/** Answers a seeded-random fraction of calls with a transient error. */
export class FaultInjector {
  private rng: Rng;

  /**
   * `retryAfterS`: the Retry-After every fault carries, in seconds (a fraction for tests that
   * must not wait whole seconds); by default 1 or 2 s, drawn at random as Gmail's vary.
   */
  constructor(
    public rate: number,
    seed: number,
    private readonly retryAfterS?: number,
  ) {
    this.rng = createRng(seed ^ 0x5eed);
  }

  maybeFault(): ApiError | null {
    if (this.rate <= 0) return null;
    if (this.rate < 1 && this.rng() >= this.rate) return null;
    const kind = FAULT_KINDS[Math.floor(this.rng() * FAULT_KINDS.length)] ?? '500';
    // Drawn whether or not it is used, so that the sequence of faults is the same either way.
    const drawn = 1 + Math.floor(this.rng() * 2);
    return fault(kind, this.retryAfterS ?? drawn);
  }
}

/**
 * Picks a seeded-random fraction of calls that are never answered. It draws from its own
 * stream, so switching hangs on or off leaves the sequence of injected faults as it was.
 */
export class HangInjector {
  private rng: Rng;

  constructor(
    public rate: number,
    seed: number,
  ) {
    this.rng = createRng(seed ^ 0x4a46);
  }

  maybeHang(): boolean {
    if (this.rate <= 0) return false;
    if (this.rate >= 1) return true;
    return this.rng() < this.rate;
  }
}

export { rateLimited };
