/**
 * ACI errors: the one error type that every action and the request parser
 * throw when a request cannot be answered with SUCCESS.
 *
 * This module owns the error catalogue (stable `errorid` and negative `errorcode`
 * per kind of failure, as IDOL servers report them), the HTTP status of each kind,
 * and the wording of `errorstring`: one line saying what was wrong and how to fix it.
 * Rendering the error envelope is `response.ts`'s job.
 */
/** HTTP statuses an ACI error may carry (docs/CONTRACT.md). */
export type AciErrorStatus = 400 | 403 | 404 | 405 | 409 | 413 | 500 | 502 | 503;

/**
 * The error catalogue: each stable error id with its stable IDOL-style negative
 * error code. Ids and codes never change meaning once published; add new ones at
 * the end.
 */
export const ACI_ERRORS = {
  'GMAILCONNECTOR-MISSING-PARAMETER': -1,
  'GMAILCONNECTOR-BAD-PARAMETER': -2,
  'GMAILCONNECTOR-DUPLICATE-PARAMETER': -3,
  'GMAILCONNECTOR-UNKNOWN-ACTION': -4,
  'GMAILCONNECTOR-INVALID-UTF8': -5,
  'GMAILCONNECTOR-MALFORMED-REQUEST': -6,
  'GMAILCONNECTOR-UNSUPPORTED-CONTENT-TYPE': -7,
  'GMAILCONNECTOR-REQUEST-TOO-LARGE': -8,
  'GMAILCONNECTOR-NOT-FOUND': -9,
  'GMAILCONNECTOR-CONFLICT': -10,
  'GMAILCONNECTOR-INTERNAL': -11,
  'GMAILCONNECTOR-UNAVAILABLE': -12,
  'GMAILCONNECTOR-METHOD-NOT-ALLOWED': -13,
  'GMAILCONNECTOR-TURNED-OFF': -14,
  'GMAILCONNECTOR-GMAIL-REFUSED': -15,
} as const;

/** A stable error id from {@link ACI_ERRORS}. */
export type AciErrorId = keyof typeof ACI_ERRORS;

/** Optional parts of an {@link AciError}. */
export interface AciErrorOptions {
  /** Longer text for `errordescription`; the message is used when absent. */
  readonly description?: string;
  /** The underlying failure, for logs only: never rendered into a response. */
  readonly cause?: unknown;
  /** The parameter a missing-parameter error is about. */
  readonly parameter?: string;
}

/**
 * An error answered to the client in the ACI error envelope.
 * `message` is the `errorstring`: one line, safe to show to the client.
 */
export class AciError extends Error {
  override readonly name = 'AciError';
  /** HTTP status of the response. */
  readonly status: AciErrorStatus;
  /** Stable IDOL-style error id, e.g. `GMAILCONNECTOR-MISSING-PARAMETER`. */
  readonly id: AciErrorId;
  /** Stable negative error code of {@link id}. */
  readonly code: number;
  /** Longer text for `errordescription`, if any. */
  readonly description: string | undefined;
  /** The parameter a missing-parameter error is about (action.ts names a sent near miss of it). */
  readonly parameter: string | undefined;

  constructor(status: AciErrorStatus, id: AciErrorId, message: string, options: AciErrorOptions = {}) {
    // The errorstring is one line, whatever text the caller built it from.
    super(message.replace(/[\r\n\u2028\u2029]+/g, ' '), options.cause === undefined ? undefined : { cause: options.cause });
    this.status = status;
    this.id = id;
    this.code = ACI_ERRORS[id];
    this.description = options.description;
    this.parameter = options.parameter;
  }
}

/** Longest piece of client-supplied text quoted in an error message. */
const MAX_QUOTED = 80;

/**
 * Quotes client-supplied text for an error message: JSON string syntax (so control
 * characters, line breaks and lone surrogates are escaped and the message stays one
 * line), cut to a readable length.
 */
export function quote(text: string): string {
  const chars = Array.from(text);
  const cut = chars.length > MAX_QUOTED ? `${chars.slice(0, MAX_QUOTED).join('')}…` : text;
  return JSON.stringify(cut);
}

/** A required parameter is absent (or empty). */
export function missingParameter(name: string, hint?: string): AciError {
  const fix = hint ?? `add ${name}=... to the request`;
  return new AciError(400, 'GMAILCONNECTOR-MISSING-PARAMETER', `Missing parameter ${name}: ${fix}.`, { parameter: name });
}

/**
 * The same missing-parameter error, naming what the request sent instead: names one or two
 * letters away from the parameter (`TaskSection` for `TaskSections`).
 */
export function withNearMisses(error: AciError, sent: readonly string[]): AciError {
  if (sent.length === 0 || error.parameter === undefined) return error;
  const names = sent.map((n) => quote(n)).join(', ');
  return new AciError(error.status, error.id, `${error.message} The request sent ${names}: did you mean ${error.parameter}?`, {
    parameter: error.parameter,
    description: error.description,
  });
}

/** A parameter has a value outside what it accepts; `expected` says what it accepts. */
export function badParameter(name: string, value: string, expected: string): AciError {
  return new AciError(
    400,
    'GMAILCONNECTOR-BAD-PARAMETER',
    `Bad value ${quote(value)} for parameter ${name}: expected ${expected}.`,
  );
}

/** A parameter name was given more than once (case-insensitively; `a` counts as `action`). */
export function duplicateParameter(name: string): AciError {
  return new AciError(
    400,
    'GMAILCONNECTOR-DUPLICATE-PARAMETER',
    `Parameter ${quote(name)} is given more than once (names are case-insensitive and a= is action=): give it once.`,
  );
}

/** The action name matches no supported action. */
export function unknownAction(name: string, supported: readonly string[]): AciError {
  return new AciError(
    400,
    'GMAILCONNECTOR-UNKNOWN-ACTION',
    `Unknown action ${quote(name)}: use one of ${supported.join(', ')}.`,
  );
}

/** Text that is not valid UTF-8; `where` names it, e.g. `the value of parameter "Token"`. */
export function invalidUtf8(where: string): AciError {
  return new AciError(
    400,
    'GMAILCONNECTOR-INVALID-UTF8',
    `Invalid UTF-8 in ${where}: encode text as UTF-8 and percent-encode its bytes.`,
  );
}

/** The request cannot be parsed at all (bad percent escape, broken multipart body, ...). */
export function malformedRequest(what: string, cause?: unknown): AciError {
  return new AciError(400, 'GMAILCONNECTOR-MALFORMED-REQUEST', `Malformed request: ${what}.`, { cause });
}

/** A body in a content type the connector does not read. */
export function unsupportedContentType(contentType: string, supported: readonly string[]): AciError {
  return new AciError(
    400,
    'GMAILCONNECTOR-UNSUPPORTED-CONTENT-TYPE',
    `Unsupported request body type ${quote(contentType)}: send parameters in the URL or as ${supported.join(' or ')}.`,
  );
}

/** The request (URL plus body) is over the size limit. */
export function tooLarge(limitBytes: number): AciError {
  return new AciError(
    413,
    'GMAILCONNECTOR-REQUEST-TOO-LARGE',
    `The request is larger than ${limitBytes} bytes (URL plus body): send fewer or shorter parameters.`,
  );
}

/** A well-formed reference matches nothing; `what` names it, e.g. `action with token "..."`. */
export function notFound(what: string, hint = 'check the value sent'): AciError {
  return new AciError(404, 'GMAILCONNECTOR-NOT-FOUND', `Not found: ${what}; ${hint}.`);
}

/** The request is valid but the target is in the wrong state; `message` says which and what to do. */
/** An HTTP method other than GET and POST: nothing runs. */
export function methodNotAllowed(method: string, why = `HTTP method ${method} does not run actions: send the request with GET or POST`): AciError {
  return new AciError(405, 'GMAILCONNECTOR-METHOD-NOT-ALLOWED', why);
}

export function conflict(message: string): AciError {
  return new AciError(409, 'GMAILCONNECTOR-CONFLICT', message);
}

/**
 * Our own fault. `message` must be safe to show (no secrets, no stack, no raw cause);
 * `cause` is kept on the error for logs and is never rendered.
 */
export function internal(message: string, cause?: unknown): AciError {
  return new AciError(
    500,
    'GMAILCONNECTOR-INTERNAL',
    `Internal error: ${message}. Retry later; if it persists, see the connector's logs.`,
    { cause },
  );
}

/** A dependency (Firestore, Cloud Tasks, ...) is unavailable for now; the client should retry. */
export function unavailable(message: string, cause?: unknown): AciError {
  return new AciError(
    503,
    'GMAILCONNECTOR-UNAVAILABLE',
    `Service unavailable: ${message}. Retry later.`,
    { cause },
  );
}

/** A feature the connector's configuration turns off. */
export function turnedOff(message: string): AciError {
  return new AciError(403, 'GMAILCONNECTOR-TURNED-OFF', message);
}

/** Gmail (or the delegation behind it) refused a synchronous read: the message says what to fix. */
export function gmailRefused(message: string): AciError {
  return new AciError(502, 'GMAILCONNECTOR-GMAIL-REFUSED', message);
}
