/**
 * Errors of the Cloud Tasks emulator, in Google's shape.
 *
 * Owns the canonical status codes (google.rpc.Code), their HTTP statuses, the JSON error body
 * Google's REST front end answers (`{ "error": { "code", "message", "status" } }`), and the
 * mapping from a target's HTTP answer to the status recorded in a task's `lastAttempt`.
 */

/** Canonical codes (google.rpc.Code) by name. */
export const RPC_CODES = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const;

export type RpcStatus = keyof typeof RPC_CODES;

/** The HTTP status Google's REST front end answers for each canonical code. */
const HTTP_STATUS: Record<RpcStatus, number> = {
  OK: 200,
  CANCELLED: 499,
  UNKNOWN: 500,
  INVALID_ARGUMENT: 400,
  DEADLINE_EXCEEDED: 504,
  NOT_FOUND: 404,
  ALREADY_EXISTS: 409,
  PERMISSION_DENIED: 403,
  RESOURCE_EXHAUSTED: 429,
  FAILED_PRECONDITION: 400,
  ABORTED: 409,
  OUT_OF_RANGE: 400,
  UNIMPLEMENTED: 501,
  INTERNAL: 500,
  UNAVAILABLE: 503,
  DATA_LOSS: 500,
  UNAUTHENTICATED: 401,
};

/** An API call that fails with a canonical status; the server turns it into Google's error body. */
export class ApiError extends Error {
  override readonly name = 'ApiError';

  constructor(
    readonly status: RpcStatus,
    message: string,
  ) {
    super(message);
  }

  get httpStatus(): number {
    return HTTP_STATUS[this.status];
  }

  /** Google's JSON error body. */
  toJSON(): { error: { code: number; message: string; status: RpcStatus } } {
    return { error: { code: this.httpStatus, message: this.message, status: this.status } };
  }
}

export const invalidArgument = (message: string): ApiError => new ApiError('INVALID_ARGUMENT', message);
export const notFound = (message = 'Requested entity was not found.'): ApiError =>
  new ApiError('NOT_FOUND', message);
export const alreadyExists = (message = 'Requested entity already exists'): ApiError =>
  new ApiError('ALREADY_EXISTS', message);
export const unimplemented = (message: string): ApiError => new ApiError('UNIMPLEMENTED', message);

/** The canonical code Google records for a target's HTTP answer (as google.rpc.Status.code). */
export function rpcCodeForHttpStatus(status: number): number {
  if (status >= 200 && status < 300) return RPC_CODES.OK;
  switch (status) {
    case 400:
      return RPC_CODES.INVALID_ARGUMENT;
    case 401:
      return RPC_CODES.UNAUTHENTICATED;
    case 403:
      return RPC_CODES.PERMISSION_DENIED;
    case 404:
      return RPC_CODES.NOT_FOUND;
    case 409:
      return RPC_CODES.ABORTED;
    case 416:
      return RPC_CODES.OUT_OF_RANGE;
    case 429:
      return RPC_CODES.RESOURCE_EXHAUSTED;
    case 499:
      return RPC_CODES.CANCELLED;
    case 501:
      return RPC_CODES.UNIMPLEMENTED;
    case 503:
      return RPC_CODES.UNAVAILABLE;
    case 504:
      return RPC_CODES.DEADLINE_EXCEEDED;
    default:
      if (status >= 400 && status < 500) return RPC_CODES.FAILED_PRECONDITION;
      if (status >= 500) return RPC_CODES.INTERNAL;
      return RPC_CODES.UNKNOWN;
  }
}
