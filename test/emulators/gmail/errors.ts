// Errors in the JSON shape Google APIs answer with:
// {"error":{"code":404,"message":"...","errors":[{"message":"...","domain":"global","reason":"notFound"}],"status":"NOT_FOUND"}}

const STATUS_NAMES: Record<number, string> = {
  400: 'INVALID_ARGUMENT',
  401: 'UNAUTHENTICATED',
  403: 'PERMISSION_DENIED',
  404: 'NOT_FOUND',
  405: 'METHOD_NOT_ALLOWED',
  409: 'ABORTED',
  413: 'INVALID_ARGUMENT',
  429: 'RESOURCE_EXHAUSTED',
  500: 'INTERNAL',
  503: 'UNAVAILABLE',
};

export class ApiError extends Error {
  constructor(
    readonly code: number,
    message: string,
    readonly reason: string,
    readonly options: {
      domain?: string;
      status?: string;
      retryAfterSeconds?: number;
      location?: string;
      locationType?: string;
      headers?: Record<string, string>;
      /** errors[0].message when Google words it apart from the top-level message. */
      itemMessage?: string;
    } = {},
  ) {
    super(message);
  }

  body(): unknown {
    const item: Record<string, string> = {
      message: this.options.itemMessage ?? this.message,
      domain: this.options.domain ?? 'global',
      reason: this.reason,
    };
    if (this.options.location) item['location'] = this.options.location;
    if (this.options.locationType) item['locationType'] = this.options.locationType;
    return {
      error: {
        code: this.code,
        message: this.message,
        errors: [item],
        status: this.options.status ?? STATUS_NAMES[this.code] ?? 'UNKNOWN',
      },
    };
  }
}

export const notFound = (): ApiError => new ApiError(404, 'Requested entity was not found.', 'notFound');

export const invalidArgument = (message: string): ApiError => new ApiError(400, message, 'invalidArgument');

export const badRequest = (message = 'Bad Request'): ApiError => new ApiError(400, message, 'badRequest');

/**
 * What Gmail answers for a user it has no mailbox for: 400 failedPrecondition
 * ("Precondition check failed."), as for an account whose Gmail service is not enabled
 * or a service account that calls Gmail as itself. Gmail sends the same for a domain user
 * without a mailbox; a user that does not exist at all never reaches Gmail in production
 * (the delegated token request fails first with invalid_grant), so this is the nearest
 * answer an API call can get. Permanent: clients must not retry it.
 */
export const noMailbox = (): ApiError =>
  new ApiError(400, 'Precondition check failed.', 'failedPrecondition', { status: 'FAILED_PRECONDITION' });

export function rateLimited(status: 429 | 403, retryAfterSeconds: number, now = Date.now()): ApiError {
  const at = new Date(now + retryAfterSeconds * 1000).toISOString();
  if (status === 403) {
    return new ApiError(403, 'User Rate Limit Exceeded', 'userRateLimitExceeded', {
      domain: 'usageLimits',
      retryAfterSeconds,
    });
  }
  return new ApiError(429, `User-rate limit exceeded.  Retry after ${at}`, 'rateLimitExceeded', {
    domain: 'usageLimits',
    retryAfterSeconds,
  });
}

export type FaultKind = '429' | '403' | '500' | '503';

export function fault(kind: FaultKind, retryAfterSeconds: number): ApiError {
  switch (kind) {
    case '429':
      return new ApiError(429, 'Rate Limit Exceeded', 'rateLimitExceeded', { domain: 'usageLimits', retryAfterSeconds });
    case '403':
      return new ApiError(403, 'Rate Limit Exceeded', 'rateLimitExceeded', { domain: 'usageLimits', retryAfterSeconds });
    case '500':
      return new ApiError(500, 'Backend Error', 'backendError', { retryAfterSeconds });
    case '503':
      return new ApiError(503, 'The service is currently unavailable.', 'backendError', { retryAfterSeconds });
  }
}
