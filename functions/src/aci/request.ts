/**
 * ACI request parsing: turns the raw URL and raw body of an HTTP request into
 * ACI parameters, and reads typed values out of them.
 *
 * This module owns the request rules of docs/CONTRACT.md: IDOL's path form
 * (`/action=Fetch&...`), the query form (`/?action=...`) and POST bodies
 * (`application/x-www-form-urlencoded`, `multipart/form-data`) are one parameter
 * set; names are case-insensitive and `a` is `action`; a name given twice, a bad
 * percent escape, text that is not valid UTF-8 and a request over the size limit
 * are errors. It never uses a framework's parsed query or body, which merge
 * duplicates and hide bad encodings.
 */
import {
  AciError,
  badParameter,
  duplicateParameter,
  invalidUtf8,
  malformedRequest,
  missingParameter,
  quote,
  tooLarge,
  unsupportedContentType,
} from './errors.js';

/** Default limit on a request's URL plus body, in bytes (docs/CONTRACT.md: 1 MiB). */
export const DEFAULT_MAX_BYTES = 1024 * 1024;

/** Body content types that carry parameters. */
export const SUPPORTED_BODY_TYPES = ['application/x-www-form-urlencoded', 'multipart/form-data'] as const;

/**
 * The parameters of one ACI request. Names are matched case-insensitively
 * (see {@link parameterKey}) and `a` is the same parameter as `action`.
 */
export interface AciParams {
  /** The value of `name` as sent (untrimmed), or undefined when absent. */
  get(name: string): string | undefined;
  /** Whether `name` was sent, even with an empty value. */
  has(name: string): boolean;
  /** The names as the client spelled them, in request order (path, query, body). */
  names(): string[];
}

/** What {@link parseAciRequest} needs from an HTTP request (an Express request fits). */
export interface AciRequestLike {
  readonly method: string;
  /** The raw request target: `/action=...`, `/?action=...`, or an absolute URL. */
  readonly url: string;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  /** The raw body, when a framework has already read it (Functions Framework sets it). */
  readonly rawBody?: Buffer;
  /** The body stream, read only when `rawBody` is absent. */
  readonly body?: NodeJS.ReadableStream;
}

/** Limits applied while parsing. */
export interface AciRequestLimits {
  /** Most bytes of URL (as UTF-8) plus body; larger requests are a 413. Default 1 MiB. */
  readonly maxBytes?: number;
}

// ---------------------------------------------------------------------------
// Parameter sets
// ---------------------------------------------------------------------------

/**
 * Case-insensitive form of a name or enumerated value: lower, upper, then lower
 * case (a close stand-in for Unicode case folding, so that `TaskSections`,
 * `tasksections` and `TASKSECTIONS` match, as do `ß`, `ẞ` and `SS`).
 */
export function foldCase(text: string): string {
  return text.toLowerCase().toUpperCase().toLowerCase();
}

/** The key a parameter name is matched by: {@link foldCase}, with `a` mapped to `action`. */
export function parameterKey(name: string): string {
  const key = foldCase(name);
  return key === 'a' ? 'action' : key;
}

class ParameterSet implements AciParams {
  readonly #entries = new Map<string, { readonly name: string; readonly value: string }>();

  /** Adds a parameter; an empty name is ignored, a repeated one is a 400. */
  add(name: string, value: string): void {
    if (name === '') return;
    const key = parameterKey(name);
    if (this.#entries.has(key)) throw duplicateParameter(name);
    this.#entries.set(key, { name, value });
  }

  get(name: string): string | undefined {
    return this.#entries.get(parameterKey(name))?.value;
  }

  has(name: string): boolean {
    return this.#entries.has(parameterKey(name));
  }

  names(): string[] {
    return Array.from(this.#entries.values(), (entry) => entry.name);
  }
}

/**
 * Builds parameters from name/value pairs with the same rules as a request
 * (empty names ignored, a repeated name throws a 400 {@link AciError}).
 */
export function createAciParams(entries: Iterable<readonly [string, string]>): AciParams {
  const params = new ParameterSet();
  for (const [name, value] of entries) params.add(name, value);
  return params;
}

// ---------------------------------------------------------------------------
// Byte-level decoding
// ---------------------------------------------------------------------------

const AMPERSAND = 0x26;
const EQUALS = 0x3d;
const PLUS = 0x2b;
const PERCENT = 0x25;
const SPACE = 0x20;

/** Strict UTF-8: undefined for invalid input; a leading BOM is kept as text. */
function decodeUtf8(bytes: Uint8Array): string | undefined {
  try {
    return new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    return undefined;
  }
}

function hexValue(byte: number | undefined): number {
  if (byte === undefined) return -1;
  if (byte >= 0x30 && byte <= 0x39) return byte - 0x30;
  const lower = byte | 0x20;
  if (lower >= 0x61 && lower <= 0x66) return lower - 0x61 + 10;
  return -1;
}

/** `application/x-www-form-urlencoded` byte decoding: `+` is a space, `%XX` a byte; undefined for a bad escape. */
function percentDecode(bytes: Uint8Array): Buffer | undefined {
  const out = Buffer.allocUnsafe(bytes.length);
  let length = 0;
  for (let i = 0; i < bytes.length; i++) {
    const byte = bytes[i] as number;
    if (byte === PLUS) {
      out[length++] = SPACE;
    } else if (byte === PERCENT) {
      const high = hexValue(bytes[i + 1]);
      const low = hexValue(bytes[i + 2]);
      if (high < 0 || low < 0) return undefined;
      out[length++] = high * 16 + low;
      i += 2;
    } else {
      out[length++] = byte;
    }
  }
  return out.subarray(0, length);
}

/** Shows raw bytes in an error message (the URL is ASCII, so this is the text as sent). */
function rawText(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('latin1');
}

/** Decodes one urlencoded name or value; `what` names it in errors. */
function decodeComponent(bytes: Uint8Array, what: () => string): string {
  const decoded = percentDecode(bytes);
  if (decoded === undefined) {
    throw malformedRequest(`bad percent escape in ${what()} (write % as %25; an escape is % and two hex digits)`);
  }
  const text = decodeUtf8(decoded);
  if (text === undefined) throw invalidUtf8(what());
  return text;
}

/**
 * Splits urlencoded bytes (`name=value&...`) into decoded pairs, in order.
 * Empty pieces (`&&`) and pieces with an empty raw name (`=x`) are skipped;
 * a piece without `=` is a name with an empty value.
 */
export function parseUrlEncoded(bytes: Uint8Array): Array<[string, string]> {
  const pairs: Array<[string, string]> = [];
  let start = 0;
  while (start <= bytes.length) {
    let end = bytes.indexOf(AMPERSAND, start);
    if (end < 0) end = bytes.length;
    const piece = bytes.subarray(start, end);
    start = end + 1;
    const eq = piece.indexOf(EQUALS);
    const rawName = eq < 0 ? piece : piece.subarray(0, eq);
    if (rawName.length === 0) continue;
    const rawValue = eq < 0 ? piece.subarray(piece.length) : piece.subarray(eq + 1);
    const name = decodeComponent(rawName, () => `the parameter name ${quote(rawText(rawName))}`);
    const value = decodeComponent(rawValue, () => `the value of parameter ${quote(name)}`);
    pairs.push([name, value]);
  }
  return pairs;
}

// ---------------------------------------------------------------------------
// URL
// ---------------------------------------------------------------------------

/**
 * The parameter strings of a request target: the path form and the query.
 * The path form starts at the first path segment that contains `=` and runs to
 * the end of the path, so a prefix such as `/action/` before `action=...` is
 * tolerated and an unencoded `/` inside a path-form value is kept.
 */
export function splitRequestTarget(url: string): { path: string; query: string } {
  const authority = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/?]*/.exec(url);
  const target = authority ? url.slice(authority[0].length) : url;
  const q = target.indexOf('?');
  const pathPart = q < 0 ? target : target.slice(0, q);
  const query = q < 0 ? '' : target.slice(q + 1);
  const segments = pathPart.split('/');
  const first = segments.findIndex((segment) => segment.includes('='));
  return { path: first < 0 ? '' : segments.slice(first).join('/'), query };
}

// ---------------------------------------------------------------------------
// Headers and their parameters (Content-Type, Content-Disposition)
// ---------------------------------------------------------------------------

function headerValue(headers: AciRequestLike['headers'], name: string): string | undefined {
  let value = headers[name];
  if (value === undefined) {
    const key = Object.keys(headers).find((k) => k.toLowerCase() === name);
    value = key === undefined ? undefined : headers[key];
  }
  return Array.isArray(value) ? value[0] : value;
}

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+/;
const WHOLE_TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/** A header value's leading token (media type or disposition type) and its `;` parameters. */
interface HeaderWithParams {
  readonly value: string;
  readonly params: ReadonlyMap<string, string>;
}

/**
 * Parses `value; name=token; name="quoted \" string"` (RFC 9110 parameters;
 * names lower-cased; `\` in a quoted string escapes the next character).
 * Undefined when malformed or when a parameter is repeated.
 */
function parseHeaderWithParams(header: string): HeaderWithParams | undefined {
  let rest = header.trim();
  const head = /^[^;\s]+/.exec(rest);
  if (!head) return undefined;
  const value = head[0].toLowerCase();
  rest = rest.slice(head[0].length);
  const params = new Map<string, string>();
  for (;;) {
    rest = rest.replace(/^[ \t]*/, '');
    if (rest === '') return { value, params };
    if (!rest.startsWith(';')) return undefined;
    rest = rest.slice(1).replace(/^[ \t]*/, '');
    if (rest === '') return { value, params };
    const name = TOKEN.exec(rest);
    if (!name) return undefined;
    rest = rest.slice(name[0].length).replace(/^[ \t]*/, '');
    if (!rest.startsWith('=')) return undefined;
    rest = rest.slice(1).replace(/^[ \t]*/, '');
    let paramValue: string;
    if (rest.startsWith('"')) {
      let i = 1;
      paramValue = '';
      for (;;) {
        const c = rest[i];
        if (c === undefined) return undefined;
        if (c === '"') break;
        if (c === '\\') {
          const escaped = rest[i + 1];
          if (escaped === undefined) return undefined;
          paramValue += escaped;
          i += 2;
        } else {
          paramValue += c;
          i += 1;
        }
      }
      rest = rest.slice(i + 1);
    } else {
      const token = TOKEN.exec(rest);
      if (!token) return undefined;
      paramValue = token[0];
      rest = rest.slice(token[0].length);
    }
    const key = name[0].toLowerCase();
    if (params.has(key)) return undefined;
    params.set(key, paramValue);
  }
}

/** An RFC 8187 ext-value (`UTF-8''percent%20encoded`); only UTF-8 is accepted. */
function decodeExtValue(extValue: string): string | undefined {
  const match = /^([^']*)'[^']*'(.*)$/.exec(extValue);
  if (!match || !/^utf-?8$/i.test(match[1] ?? '')) return undefined;
  const decoded = percentDecode(Buffer.from((match[2] ?? '').replace(/\+/g, '%2B'), 'utf8'));
  return decoded === undefined ? undefined : decodeUtf8(decoded);
}

// ---------------------------------------------------------------------------
// multipart/form-data
// ---------------------------------------------------------------------------

const CRLF = Buffer.from('\r\n', 'latin1');
const HEADER_END = Buffer.from('\r\n\r\n', 'latin1');

/** Decodes a part's bytes in its declared charset (UTF-8 when none), strictly. */
function decodePartText(bytes: Uint8Array, charset: string | undefined, name: string): string {
  const label = (charset ?? 'utf-8').trim().toLowerCase();
  if (label === 'utf-8' || label === 'utf8') {
    const text = decodeUtf8(bytes);
    if (text === undefined) throw invalidUtf8(`the value of parameter ${quote(name)}`);
    return text;
  }
  let decoder: InstanceType<typeof TextDecoder>;
  try {
    decoder = new TextDecoder(label, { fatal: true, ignoreBOM: true });
  } catch {
    throw malformedRequest(`parameter ${quote(name)} declares charset ${quote(label)}, which is not supported: send UTF-8`);
  }
  try {
    return decoder.decode(bytes);
  } catch {
    throw malformedRequest(`the value of parameter ${quote(name)} is not valid ${label}`);
  }
}

/** The headers of one part, names lower-cased; undefined when malformed or repeated. */
function parsePartHeaders(block: Uint8Array): Map<string, string> | undefined {
  const text = decodeUtf8(block);
  if (text === undefined) throw invalidUtf8('the headers of a multipart part');
  const headers = new Map<string, string>();
  let last: string | undefined;
  for (const line of text.split('\r\n')) {
    if (line === '') continue;
    if ((line.startsWith(' ') || line.startsWith('\t')) && last !== undefined) {
      headers.set(last, `${headers.get(last) ?? ''} ${line.trim()}`);
      continue;
    }
    const colon = line.indexOf(':');
    if (colon <= 0) return undefined;
    const name = line.slice(0, colon).trim().toLowerCase();
    if (!WHOLE_TOKEN.test(name) || headers.has(name)) return undefined;
    headers.set(name, line.slice(colon + 1).trim());
    last = name;
  }
  return headers;
}

/** Turns one part (headers and content) into a name/value pair. */
function parsePart(headerBlock: Uint8Array, content: Uint8Array): [string, string] {
  const headers = parsePartHeaders(headerBlock);
  if (headers === undefined) throw malformedRequest('a multipart part has a malformed or repeated header');
  const disposition = parseHeaderWithParams(headers.get('content-disposition') ?? '');
  if (disposition === undefined || disposition.value !== 'form-data') {
    throw malformedRequest('every multipart part needs Content-Disposition: form-data; name="..."');
  }
  const extName = disposition.params.get('name*');
  const name = extName === undefined ? disposition.params.get('name') : decodeExtValue(extName);
  if (name === undefined) {
    throw malformedRequest('every multipart part needs Content-Disposition: form-data; name="..." (name* must be UTF-8)');
  }
  const encoding = headers.get('content-transfer-encoding')?.toLowerCase();
  if (encoding !== undefined && !['7bit', '8bit', 'binary'].includes(encoding)) {
    throw malformedRequest(`parameter ${quote(name)} uses Content-Transfer-Encoding ${quote(encoding)}: send it as binary`);
  }
  const typeHeader = headers.get('content-type');
  let charset: string | undefined;
  if (typeHeader !== undefined) {
    const type = parseHeaderWithParams(typeHeader);
    if (type === undefined) throw malformedRequest(`parameter ${quote(name)} has a malformed Content-Type`);
    charset = type.params.get('charset');
  }
  return [name, decodePartText(content, charset, name)];
}

/**
 * Parses a complete `multipart/form-data` body (RFC 7578, RFC 2046 framing) into
 * name/value pairs, in order. Every part is a parameter; a file part's content is
 * its value, decoded as text like any other part (UTF-8 unless the part declares a
 * charset). Preamble and epilogue are ignored; anything else malformed is a 400.
 */
export function parseMultipart(body: Uint8Array, boundary: string): Array<[string, string]> {
  if (!/^[\x20-\x7e]{1,70}$/.test(boundary) || boundary.endsWith(' ')) {
    throw malformedRequest('the multipart boundary must be 1 to 70 printable ASCII characters');
  }
  const buffer = Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  const dashBoundary = Buffer.from(`--${boundary}`, 'latin1');
  const delimiter = Buffer.concat([CRLF, dashBoundary]);
  const unterminated = (): AciError => malformedRequest('the multipart body does not end with its closing boundary');

  let pos: number;
  if (buffer.subarray(0, dashBoundary.length).equals(dashBoundary)) {
    pos = dashBoundary.length;
  } else {
    const first = buffer.indexOf(delimiter);
    if (first < 0) throw unterminated();
    pos = first + delimiter.length;
  }

  const pairs: Array<[string, string]> = [];
  for (;;) {
    // After a boundary: "--" closes the body; otherwise optional padding and CRLF.
    if (buffer[pos] === 0x2d && buffer[pos + 1] === 0x2d) return pairs;
    while (buffer[pos] === 0x20 || buffer[pos] === 0x09) pos++;
    if (buffer[pos] !== 0x0d || buffer[pos + 1] !== 0x0a) {
      throw malformedRequest('a multipart boundary is not followed by CRLF');
    }
    pos += 2;
    // The headers end at the first blank line; searching from the CRLF just read
    // also finds an empty header block. The content runs to the next delimiter,
    // which may start on the blank line's CRLF when the content is empty.
    const headerEnd = buffer.indexOf(HEADER_END, pos - 2);
    const next = buffer.indexOf(delimiter, pos - 2);
    if (headerEnd < 0 || next < 0) throw unterminated();
    if (next < headerEnd + CRLF.length) throw malformedRequest('a multipart part has no blank line after its headers');
    const headerBlock = buffer.subarray(pos, Math.max(pos, headerEnd));
    const content = buffer.subarray(Math.min(headerEnd + HEADER_END.length, next), next);
    pairs.push(parsePart(headerBlock, content));
    pos = next + delimiter.length;
  }
}

// ---------------------------------------------------------------------------
// Body
// ---------------------------------------------------------------------------

/** Reads a stream to its end, failing with 413 as soon as it passes `allowance` bytes. */
function readStream(stream: NodeJS.ReadableStream, allowance: number, maxBytes: number): Promise<Buffer> {
  if ((stream as { readableEnded?: boolean }).readableEnded === true) return Promise.resolve(Buffer.alloc(0));
  return new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const cleanup = (): void => {
      stream.removeListener('data', onData);
      stream.removeListener('end', onEnd);
      stream.removeListener('error', onError);
      stream.removeListener('close', onClose);
    };
    const onData = (chunk: Buffer | string): void => {
      const bytes = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk;
      size += bytes.length;
      if (size > allowance) {
        cleanup();
        stream.resume(); // discard the rest so that the 413 can still be sent
        reject(tooLarge(maxBytes));
        return;
      }
      chunks.push(bytes);
    };
    const onEnd = (): void => {
      cleanup();
      resolve(Buffer.concat(chunks, size));
    };
    const onError = (error: unknown): void => {
      cleanup();
      reject(malformedRequest('the request body could not be read', error));
    };
    const onClose = (): void => {
      cleanup();
      reject(malformedRequest('the request body ended early'));
    };
    stream.on('data', onData);
    stream.on('end', onEnd);
    stream.on('error', onError);
    stream.on('close', onClose);
    stream.resume();
  });
}

/** The body as bytes, enforcing the size limit (early from Content-Length when it is given). */
async function readBody(req: AciRequestLike, allowance: number, maxBytes: number): Promise<Buffer> {
  if (req.rawBody !== undefined) {
    if (req.rawBody.length > allowance) throw tooLarge(maxBytes);
    return req.rawBody;
  }
  if (req.body === undefined) return Buffer.alloc(0);
  const declared = headerValue(req.headers, 'content-length');
  if (declared !== undefined && /^\s*\d+\s*$/.test(declared) && Number(declared) > allowance) {
    req.body.resume();
    throw tooLarge(maxBytes);
  }
  return readStream(req.body, allowance, maxBytes);
}

/** The parameters carried by a non-empty body, by its content type. */
function parseBody(body: Buffer, contentType: string | undefined): Array<[string, string]> {
  const type = contentType === undefined ? undefined : parseHeaderWithParams(contentType);
  if (type?.value === 'application/x-www-form-urlencoded') return parseUrlEncoded(body);
  if (type?.value === 'multipart/form-data') {
    const boundary = type.params.get('boundary');
    if (boundary === undefined) throw malformedRequest('multipart/form-data needs a boundary parameter in Content-Type');
    return parseMultipart(body, boundary);
  }
  throw unsupportedContentType(contentType ?? '(none)', SUPPORTED_BODY_TYPES);
}

/**
 * Reads the ACI parameters of a request from its raw URL (path form and query
 * form) and its raw body. Throws {@link AciError}: 400 for a bad percent escape,
 * invalid UTF-8, a name given twice, a malformed or unsupported body; 413 when the
 * URL (as UTF-8) plus body is over `limits.maxBytes` (default 1 MiB). The method
 * is not checked: a body is read whenever there is one.
 */
export async function parseAciRequest(req: AciRequestLike, limits: AciRequestLimits = {}): Promise<AciParams> {
  const maxBytes = limits.maxBytes ?? DEFAULT_MAX_BYTES;
  const urlBytes = Buffer.byteLength(req.url, 'utf8');
  if (urlBytes > maxBytes) throw tooLarge(maxBytes);
  const { path, query } = splitRequestTarget(req.url);
  const params = new ParameterSet();
  for (const part of [path, query]) {
    for (const [name, value] of parseUrlEncoded(Buffer.from(part, 'utf8'))) params.add(name, value);
  }
  const body = await readBody(req, maxBytes - urlBytes, maxBytes);
  if (body.length > 0) {
    for (const [name, value] of parseBody(body, headerValue(req.headers, 'content-type'))) params.add(name, value);
  }
  return params;
}

// ---------------------------------------------------------------------------
// Typed values
//
// For every reader below, a parameter that is absent or whose value is empty
// (after trimming spaces) counts as not given; other values are trimmed first.
// ---------------------------------------------------------------------------

function givenValue(params: AciParams, name: string): string | undefined {
  const value = params.get(name)?.trim();
  return value === undefined || value === '' ? undefined : value;
}

/** The value of a required parameter, as sent; a 400 when it is absent or empty. */
export function requireParam(params: AciParams, name: string, hint?: string): string {
  const value = params.get(name);
  if (value === undefined || value.trim() === '') throw missingParameter(name, hint);
  return value;
}

/**
 * The canonical spelling (from `allowed`) of an enumerated parameter, matched
 * case-insensitively. When it is not given: `defaultValue`, or a 400 (missing
 * parameter) when there is no default. A value outside `allowed` is a 400 listing
 * the allowed values.
 */
export function parseEnum<T extends string>(
  params: AciParams,
  name: string,
  allowed: readonly T[],
  defaultValue?: T,
): T {
  const value = givenValue(params, name);
  if (value === undefined) {
    if (defaultValue !== undefined) return defaultValue;
    throw missingParameter(name, `add ${name}=... with one of ${allowed.join(', ')}`);
  }
  const key = foldCase(value);
  const match = allowed.find((candidate) => foldCase(candidate) === key);
  if (match === undefined) throw badParameter(name, value, `one of ${allowed.join(', ')}`);
  return match;
}

/** Bounds and default of an integer parameter. */
export interface IntParamOptions {
  readonly min?: number;
  readonly max?: number;
  /** Used when the parameter is not given; without it the parameter is required. */
  readonly default?: number;
}

function rangeText(options: IntParamOptions): string {
  const { min, max } = options;
  if (min !== undefined && max !== undefined) return `an integer from ${min} to ${max}`;
  if (min !== undefined) return `an integer of at least ${min}`;
  if (max !== undefined) return `an integer of at most ${max}`;
  return 'an integer';
}

/**
 * A decimal integer parameter (optional sign, then digits) within `min`..`max`.
 * When it is not given: the default, or a 400 (missing parameter) when there is
 * no default. Anything else is a 400 naming the accepted range.
 */
export function parseIntParam(params: AciParams, name: string, options: IntParamOptions = {}): number {
  const value = givenValue(params, name);
  if (value === undefined) {
    if (options.default !== undefined) return options.default;
    throw missingParameter(name, `add ${name}=... with ${rangeText(options)}`);
  }
  const parsed = /^[+-]?\d+$/.test(value) ? Number(value) : Number.NaN;
  const min = options.min ?? Number.MIN_SAFE_INTEGER;
  const max = options.max ?? Number.MAX_SAFE_INTEGER;
  if (!Number.isSafeInteger(parsed) || parsed < min || parsed > max) {
    throw badParameter(name, value, rangeText(options));
  }
  return parsed === 0 ? 0 : parsed; // no -0
}

const TRUE_WORDS = ['true', 'yes', 'on', '1'];
const FALSE_WORDS = ['false', 'no', 'off', '0'];

/**
 * A boolean parameter: `true`/`false` as IDOL writes them, also `yes`/`no`,
 * `on`/`off` and `1`/`0`, case-insensitively; `defaultValue` when not given; a 400
 * otherwise.
 */
export function parseBoolParam(params: AciParams, name: string, defaultValue: boolean): boolean {
  const value = givenValue(params, name);
  if (value === undefined) return defaultValue;
  const word = value.toLowerCase();
  if (TRUE_WORDS.includes(word)) return true;
  if (FALSE_WORDS.includes(word)) return false;
  throw badParameter(name, value, 'true or false');
}
