/**
 * Calls to one mailbox's Gmail API, paced at the per-user quota and retried.
 *
 * Retries are written here rather than with a retry library because each one
 * is coupled to the mailbox's pacer (a rate-limit answer lowers the user's rate)
 * and must honour Gmail's Retry-After, and the wait must end at once on Stop.
 */
import { setMaxListeners } from 'node:events';
import { classify, PermanentGmailError, TransientGmailError } from './errors.js';
import { QuotaPacer, RunAborted, sleep } from './pacing.js';
import { errorMessage } from '../error-message.js';

/** Gmail's quota cost of each call we make, in units. */
export const GMAIL_COSTS = {
  'messages.list': 5,
  'messages.get': 5,
  'history.list': 2,
  'labels.list': 1,
  getProfile: 1,
  'messages.import': 25,
  'messages.insert': 25,
  'messages.modify': 5,
  'messages.batchModify': 50,
  'messages.trash': 5,
  'messages.delete': 10,
  'messages.batchDelete': 50,
  watch: 100,
  stop: 50,
} as const;
export type GmailMethod = keyof typeof GMAIL_COSTS;

export interface CallerOptions {
  pacer: QuotaPacer;
  /** How many times a transient failure is retried before it is thrown. */
  maxRetries?: number;
  /** First backoff; doubles each retry up to maxBackoffMs, with jitter. */
  baseBackoffMs?: number;
  maxBackoffMs?: number;
  /** Aborts waits (pacing and backoff) and calls in flight when the run must end. */
  signal?: AbortSignal;
  /**
   * The run is winding down: no call starts and no wait goes on after it fires, but a call
   * already sent may finish, so that its answer (a listed page, a fetched message) is kept.
   */
  ending?: AbortSignal;
  /** How long one call may take before it is abandoned and retried. Default 60 s. */
  timeoutMs?: number;
  /** The token the calls carry: renewed once on a 401; `advice` is added to a missing scope's error. */
  auth?: { renew(): void; advice: string };
}

/** What each call is given: a signal that fires on the run's end or the call's timeout. */
export interface CallOptions {
  signal: AbortSignal;
  /**
   * The call is making progress (a streamed answer's next piece arrived): its timeout starts
   * again, so a large message read as it arrives is bounded by its silences, not its length.
   */
  alive(): void;
}

/** A 403 for a missing scope, with what an administrator must grant. */
export function withScopeAdvice(err: PermanentGmailError, advice: string | undefined): PermanentGmailError {
  if (!advice || err.status !== 403 || !/insufficient(Permissions| authentication scopes)|SCOPE_INSUFFICIENT/i.test(err.message)) return err;
  return new PermanentGmailError(`${err.message}; ${advice}`, err.status, { cause: err });
}

/** Gmail's refusal of more calls at once for one user ("Too many concurrent requests for user"). */
function tooManyConcurrent(e: unknown): boolean {
  for (let c: unknown = e, i = 0; c && i < 4; c = (c as { cause?: unknown }).cause, i++) {
    const data = (c as { response?: { data?: { error?: { message?: string } } } }).response?.data;
    if (/concurrent requests/i.test(`${errorMessage(c)} ${data?.error?.message ?? ''}`)) return true;
  }
  return false;
}

/** Makes paced, retried calls for one mailbox and counts the retries. */
export class GmailCaller {
  retries = 0;
  private readonly maxRetries: number;
  private readonly base: number;
  private readonly max: number;
  private readonly timeoutMs: number;
  /** What ends the waits: the run's end or its winding down, whichever comes first. */
  private readonly waits: AbortSignal | undefined;
  /** Calls started and not yet settled, and who waits for them all to settle (see settled). */
  private inFlight = 0;
  private idle: (() => void)[] = [];

  constructor(private readonly opts: CallerOptions) {
    this.maxRetries = opts.maxRetries ?? 8;
    this.base = opts.baseBackoffMs ?? 500;
    this.max = opts.maxBackoffMs ?? 30_000;
    this.timeoutMs = opts.timeoutMs ?? 60_000;
    const { signal, ending } = opts;
    this.waits = signal && ending ? AbortSignal.any([signal, ending]) : (signal ?? ending);
    // Every call waiting for quota, a place or a backoff listens to it: as many as the calls a run
    // has going at once (up to 25, and the batches fetched ahead), more than Node's default 10.
    if (this.waits) setMaxListeners(100, this.waits);
  }

  /**
   * Runs `fn` as Gmail method `method`; `what` names the call in errors.
   * Throws PermanentGmailError at once, TransientGmailError after the retries,
   * RunAborted as soon as the run must end. A call that does not answer
   * within the timeout is abandoned and retried like a transient failure.
   */
  async call<T>(method: GmailMethod, what: string, fn: (o: CallOptions) => Promise<T>): Promise<T> {
    this.inFlight++;
    try {
      return await this.attempts(method, what, fn);
    } finally {
      if (--this.inFlight === 0) for (const wake of this.idle.splice(0)) wake();
    }
  }

  /**
   * Resolves once no call of this caller is in flight: a run awaits it (after aborting its
   * signal) before it gives up its lease, so that no Gmail call outlives the lease it ran under.
   */
  settled(): Promise<void> {
    if (this.inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => this.idle.push(resolve));
  }

  /** Calls started and not yet settled. */
  get pending(): number {
    return this.inFlight;
  }

  private async attempts<T>(method: GmailMethod, what: string, fn: (o: CallOptions) => Promise<T>): Promise<T> {
    let renewed = false;
    for (let attempt = 0; ; attempt++) {
      const pacer = this.opts.pacer;
      await pacer.enter(this.waits);
      const timeout = new AbortController();
      let timer = setTimeout(() => timeout.abort(), this.timeoutMs);
      const alive = () => {
        clearTimeout(timer);
        if (!timeout.signal.aborted) timer = setTimeout(() => timeout.abort(), this.timeoutMs);
      };
      try {
        await pacer.take(GMAIL_COSTS[method], this.waits);
        const counted = Date.now();
        const signal = this.opts.signal ? AbortSignal.any([this.opts.signal, timeout.signal]) : timeout.signal;
        const out = await fn({ signal, alive });
        pacer.answered(Date.now() - counted);
        pacer.succeeded();
        return out;
      } catch (e) {
        if (e instanceof RunAborted || this.waits?.aborted) throw new RunAborted();
        const err = timeout.signal.aborted
          ? new TransientGmailError(`${what}: no answer within ${Math.round(this.timeoutMs / 1000)} s`, undefined, undefined, false, { cause: e })
          : classify(e, what);
        if (err instanceof PermanentGmailError) {
          // A token that expired or was revoked early: one new token, then the call again.
          if (err.status === 401 && !renewed && this.opts.auth) {
            renewed = true;
            this.opts.auth.renew();
            continue;
          }
          throw withScopeAdvice(err, this.opts.auth?.advice);
        }
        const concurrent = err.rateLimited && tooManyConcurrent(e);
        if (concurrent) pacer.tooManyConcurrent();
        else if (err.rateLimited) pacer.throttled(err.retryAfterMs);
        if (attempt >= this.maxRetries) throw err;
        this.retries++;
        // A quota refusal's wait is the pacer's (it holds every call of the address); other failures back off here.
        if (!err.rateLimited || concurrent) await sleep(this.backoff(attempt, err), this.waits);
      } finally {
        clearTimeout(timer);
        pacer.leave();
      }
    }
  }

  /** Calls of `method` the address's quota lets start at once now (Infinity when unpaced). */
  headroom(method: GmailMethod): number {
    return Math.floor(this.opts.pacer.available / GMAIL_COSTS[method]);
  }

  private backoff(attempt: number, err: TransientGmailError): number {
    const exp = Math.min(this.max, this.base * 2 ** attempt);
    const jittered = exp / 2 + Math.random() * (exp / 2);
    return Math.max(jittered, err.retryAfterMs ?? 0);
  }
}
