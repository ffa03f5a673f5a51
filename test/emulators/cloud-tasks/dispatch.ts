/**
 * One HTTP attempt of a task against its target.
 *
 * Owns the outgoing connections (kept alive and reused), the dispatch deadline (an attempt still
 * unanswered when it passes is aborted) and the outcome of an attempt: the target's status, a
 * deadline, a connection error, or cancelled because the emulator is closing. It never
 * follows redirects: as on Google, only a 2xx answer is a success. A 429 or 503 answer's
 * Retry-After header (delta-seconds or an HTTP-date) is kept as the earliest retry time.
 */
import http from 'node:http';
import https from 'node:https';

export interface AttemptRequest {
  url: string;
  method: string;
  headers: Record<string, string>;
  body?: Buffer;
  deadlineMs: number;
}

export type AttemptOutcome =
  | {
      kind: 'response';
      status: number;
      /** When the answer arrived (ms). */
      at: number;
      /** From a 429 or 503 answer's Retry-After header: no retry before this moment (ms). */
      retryAfterAt?: number;
    }
  | { kind: 'deadline' }
  | { kind: 'error'; message: string }
  | { kind: 'cancelled' };

export class Dispatcher {
  private readonly plainPool = new http.Agent({ keepAlive: true, scheduling: 'fifo' });
  private readonly tlsPool = new https.Agent({ keepAlive: true, scheduling: 'fifo' });
  /** In-flight attempts, each with the function that cancels it. */
  private readonly active = new Set<() => void>();
  private closed = false;

  send(request: AttemptRequest): Promise<AttemptOutcome> {
    if (this.closed) return Promise.resolve({ kind: 'cancelled' });
    return new Promise<AttemptOutcome>((resolve) => {
      const url = new URL(request.url);
      const secure = url.protocol === 'https:';
      const headers: Record<string, string | number> = { ...request.headers };
      if (request.body) headers['Content-Length'] = request.body.length;
      else if (['POST', 'PUT', 'PATCH'].includes(request.method)) headers['Content-Length'] = 0;

      let settled = false;
      const finish = (outcome: AttemptOutcome): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.active.delete(cancel);
        resolve(outcome);
      };
      const cancel = (): void => {
        finish({ kind: 'cancelled' });
        req.destroy();
      };

      const req = (secure ? https : http).request(url, {
        method: request.method,
        headers,
        agent: secure ? this.tlsPool : this.plainPool,
      });
      const timer = setTimeout(() => {
        finish({ kind: 'deadline' });
        req.destroy();
      }, request.deadlineMs);
      this.active.add(cancel);

      req.on('response', (res) => {
        const status = res.statusCode ?? 0;
        const at = Date.now();
        const retryAfterAt =
          status === 429 || status === 503 ? parseRetryAfter(res.headers['retry-after'], at) : undefined;
        // The status decides the attempt; the body is read and dropped.
        const done = (): void =>
          finish(retryAfterAt === undefined ? { kind: 'response', status, at } : { kind: 'response', status, at, retryAfterAt });
        res.on('end', done);
        res.on('close', done);
        res.on('error', done);
        res.resume();
      });
      req.on('error', (err) => finish({ kind: 'error', message: err.message }));
      req.end(request.body);
    });
  }

  /** Cancels every in-flight attempt and drops idle connections. */
  close(): void {
    this.closed = true;
    for (const cancel of [...this.active]) cancel();
    this.plainPool.destroy();
    this.tlsPool.destroy();
  }
}

/** A Retry-After value (delta-seconds or an HTTP-date) as a moment (ms); undefined when absent or malformed. */
export function parseRetryAfter(value: string | undefined, now: number): number | undefined {
  if (value === undefined) return undefined;
  const text = value.trim();
  if (/^\d+$/.test(text)) return now + Number(text) * 1000;
  if (!/[A-Za-z]/.test(text)) return undefined;
  const date = Date.parse(text);
  return Number.isNaN(date) ? undefined : date;
}
