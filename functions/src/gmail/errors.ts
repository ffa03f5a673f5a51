/**
 * How Gmail and Directory API failures are told apart: transient ones (rate
 * limits, 5xx, dropped connections) are retried; permanent ones (unknown or
 * suspended user, forbidden, refused delegation, bad query) end the mailbox.
 */

/** A failure that retrying will not mend; it ends the mailbox `Error`. */
export class PermanentGmailError extends Error {
  override readonly name = 'PermanentGmailError';
  constructor(
    message: string,
    readonly status: number | undefined,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** A failure that may pass; the caller retries, and past its retries throws it. */
export class TransientGmailError extends Error {
  override readonly name = 'TransientGmailError';
  constructor(
    message: string,
    readonly status: number | undefined,
    readonly retryAfterMs: number | undefined,
    readonly rateLimited: boolean,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

interface GaxiosLike {
  status?: number;
  code?: string | number;
  message?: string;
  response?: { status?: number; headers?: unknown; data?: unknown };
}

const RATE_REASONS = new Set(['rateLimitExceeded', 'userRateLimitExceeded', 'quotaExceeded', 'concurrentLimitExceeded']);
const NETWORK_CODES = new Set(['ECONNRESET', 'ECONNREFUSED', 'ETIMEDOUT', 'EPIPE', 'EAI_AGAIN', 'UND_ERR_SOCKET']);

function header(headers: unknown, name: string): string | undefined {
  if (!headers) return undefined;
  if (typeof (headers as Headers).get === 'function') return (headers as Headers).get(name) ?? undefined;
  const v = (headers as Record<string, unknown>)[name] ?? (headers as Record<string, unknown>)[name.toLowerCase()];
  return typeof v === 'string' ? v : undefined;
}

/** Seconds or an HTTP date, as Retry-After carries them. */
export function parseRetryAfter(value: string | undefined, now = Date.now()): number | undefined {
  if (value === undefined || value.trim() === '') return undefined;
  const secs = Number(value);
  if (Number.isFinite(secs) && secs >= 0) return secs * 1000;
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/** Sorts any error from a Google API call into transient or permanent, naming `what`. */
export function classify(e: unknown, what: string): TransientGmailError | PermanentGmailError {
  if (e instanceof TransientGmailError || e instanceof PermanentGmailError) return e;
  const g = (e ?? {}) as GaxiosLike;
  const status = g.response?.status ?? (typeof g.status === 'number' ? g.status : undefined);
  const data = g.response?.data as
    | { error?: string | { message?: string; errors?: { reason?: string }[]; status?: string }; error_description?: string }
    | undefined;
  const apiError = typeof data?.error === 'object' ? data.error : undefined;
  const reason = apiError?.errors?.[0]?.reason;
  const detail = apiError?.message ?? (typeof data?.error === 'string' ? `${data.error}${data.error_description ? `: ${data.error_description}` : ''}` : g.message ?? String(e));
  if (typeof data?.error === 'string' && data.error === 'invalid_grant') {
    return new PermanentGmailError(`${what}: delegation refused (invalid_grant): ${detail}`, status, { cause: e });
  }
  const retryAfterMs = parseRetryAfter(header(g.response?.headers, 'retry-after'));
  if (status === 429 || (status === 403 && reason !== undefined && RATE_REASONS.has(reason))) {
    return new TransientGmailError(`${what}: rate limited (${status} ${reason ?? ''})`.trim(), status, retryAfterMs, true, { cause: e });
  }
  if (status !== undefined && status >= 500) {
    return new TransientGmailError(`${what}: Gmail answered ${status}`, status, retryAfterMs, false, { cause: e });
  }
  if (status === undefined && typeof g.code === 'string' && (NETWORK_CODES.has(g.code) || g.code.startsWith('E'))) {
    return new TransientGmailError(`${what}: ${g.code}`, undefined, undefined, false, { cause: e });
  }
  if (status === undefined) {
    return new TransientGmailError(`${what}: ${detail}`, undefined, undefined, false, { cause: e });
  }
  return new PermanentGmailError(`${what}: ${status}${reason ? ` ${reason}` : ''}: ${detail}`, status, { cause: e });
}
