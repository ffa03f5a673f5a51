/**
 * ACI responses: renders the `autnresponse` envelope around an action's data,
 * or around an error, in the three formats IDOL servers offer (docs/CONTRACT.md).
 *
 * This module owns the data model actions answer with ({@link AciTree}, shaped
 * like IDOL's simplejson), its mapping to XML, simplejson and json, XML escaping,
 * IDOL's time format, and the choice of format from `ResponseFormat`.
 *
 * Rules the three formats share:
 * - `null`/`undefined` values, and lists with no items, are left out: the element
 *   is absent in XML and the key is absent in JSON.
 * - Numbers and booleans are written as strings (`String(value)`).
 * - Within an element: attributes first, then its own text, then children, each in
 *   key order.
 * - XML cannot carry every string: characters outside XML 1.0's `Char` production
 *   (U+0000–U+0008, U+000B, U+000C, U+000E–U+001F, lone surrogates, U+FFFE, U+FFFF)
 *   are written as U+FFFD. JSON carries every string exactly (`JSON.stringify`
 *   escapes control characters and lone surrogates).
 */
import type { AciError } from './errors.js';
import { parseEnum, type AciParams } from './request.js';

/** Text of an element or attribute; numbers and booleans are written as strings. */
export type AciText = string | number | boolean;

/** One element: its text, or an {@link AciTree} of its attributes, text and children. */
export type AciNode = AciText | AciTree;

/**
 * A value under a key of an {@link AciTree}: an element, a list of elements of
 * that name (always an array in JSON, even with one item; left out when empty),
 * or nothing (`null`/`undefined`: left out).
 */
export type AciField = AciNode | readonly (AciNode | null | undefined)[] | null | undefined;

/**
 * The response data, shaped like IDOL's simplejson: each key is a child element
 * (an array value is a list: repeated elements of that name); a key starting with
 * `@` is an attribute of this element; key `$` is the element's own text, for an
 * element that also has attributes.
 *
 * @example { documentcounts: { documentcount: [{ '@task': 'MYTASK', '@added': 4 }] } }
 */
export type AciTree = {
  readonly [name: string]: AciField;
  readonly [attribute: `@${string}`]: AciText | null | undefined;
  readonly $?: AciText | null | undefined;
};

/** The formats of `ResponseFormat`, as IDOL names them. */
export const RESPONSE_FORMATS = ['xml', 'simplejson', 'json'] as const;

/** A response format: `xml` (default), `simplejson` or `json`. */
export type ResponseFormat = (typeof RESPONSE_FORMATS)[number];

/** A rendered response, ready to send. */
export interface AciResponse {
  readonly status: number;
  readonly contentType: string;
  readonly body: string;
}

export const XML_CONTENT_TYPE = 'application/xml; charset=utf-8';
export const JSON_CONTENT_TYPE = 'application/json; charset=utf-8';

/** The namespace IDOL declares on `autnresponse` in XML. */
export const ACI_NAMESPACE = 'http://schemas.autonomy.com/aci/';

/**
 * The format asked for by `ResponseFormat` (case-insensitive; `xml` when absent
 * or when there are no parameters). An invalid value throws a 400 `AciError`:
 * callers render that error in `xml`, the default.
 */
export function chooseFormat(params: AciParams | undefined): ResponseFormat {
  return params === undefined ? 'xml' : parseEnum(params, 'ResponseFormat', RESPONSE_FORMATS, 'xml');
}

// ---------------------------------------------------------------------------
// Time
// ---------------------------------------------------------------------------

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'] as const;

function pad(n: number, width = 2): string {
  return String(n).padStart(width, '0');
}

/** A time in IDOL's form, in UTC: `2022-Nov-03 19:19:37`. Throws RangeError for an invalid date. */
export function formatAciTime(d: Date): string {
  if (Number.isNaN(d.getTime())) throw new RangeError('formatAciTime: invalid date');
  const month = MONTHS[d.getUTCMonth()] ?? '';
  return (
    `${pad(d.getUTCFullYear(), 4)}-${month}-${pad(d.getUTCDate())} ` +
    `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`
  );
}

// ---------------------------------------------------------------------------
// The tree, normalized
// ---------------------------------------------------------------------------

/** An element's content, after omissions: what every renderer walks. */
interface Content {
  readonly attributes: ReadonlyArray<readonly [string, string]>;
  readonly text: string | undefined;
  /** Children in key order; `list` marks an array value (a list, even of one). */
  readonly children: ReadonlyArray<{ readonly name: string; readonly list: boolean; readonly items: readonly AciNode[] }>;
}

const XML_NAME = /^[A-Za-z_][A-Za-z0-9._-]*$/;

function checkName(name: string): string {
  if (!XML_NAME.test(name)) throw new TypeError(`ACI response: ${JSON.stringify(name)} is not a valid element or attribute name`);
  return name;
}

function isText(value: unknown): value is AciText {
  return typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean';
}

function isTree(value: unknown): value is AciTree {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

function textOf(value: AciText): string {
  return typeof value === 'string' ? value : String(value);
}

function checkNode(name: string, value: unknown): AciNode {
  if (isText(value) || isTree(value)) return value;
  throw new TypeError(`ACI response: the value of ${JSON.stringify(name)} is not text, a plain object or a list`);
}

/** Splits a tree into attributes, text and children, leaving out what is not written. */
function contentOf(tree: AciTree): Content {
  const attributes: Array<readonly [string, string]> = [];
  const children: Array<{ name: string; list: boolean; items: AciNode[] }> = [];
  let text: string | undefined;
  for (const [key, value] of Object.entries(tree)) {
    if (value === undefined || value === null) continue;
    if (key === '$') {
      if (!isText(value)) throw new TypeError('ACI response: "$" (element text) must be text');
      text = textOf(value);
    } else if (key.startsWith('@')) {
      if (!isText(value)) throw new TypeError(`ACI response: attribute ${JSON.stringify(key)} must be text`);
      attributes.push([checkName(key.slice(1)), textOf(value)]);
    } else if (Array.isArray(value)) {
      const items = (value as readonly unknown[])
        .filter((item) => item !== undefined && item !== null)
        .map((item) => checkNode(key, item));
      if (items.length > 0) children.push({ name: checkName(key), list: true, items });
    } else {
      children.push({ name: checkName(key), list: false, items: [checkNode(key, value)] });
    }
  }
  return { attributes, text, children };
}

// ---------------------------------------------------------------------------
// XML
// ---------------------------------------------------------------------------

/** Characters escaped in text and attributes, and characters XML 1.0 cannot carry. */
const XML_SPECIAL = /[&<>"'\r]|[^\t\n\r\x20-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/gu;
/** In attributes, tab and line feed are escaped too, since parsers turn them into spaces. */
const XML_ATTRIBUTE_SPECIAL = /[&<>"'\t\n\r]|[^\t\n\r\x20-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/gu;

const XML_ENTITIES: Readonly<Record<string, string>> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&apos;',
  '\t': '&#9;',
  '\n': '&#10;',
  '\r': '&#13;',
};

/** The character written for one that XML 1.0 cannot carry. */
export const XML_REPLACEMENT_CHARACTER = '\uFFFD';

function escapeChar(c: string): string {
  return XML_ENTITIES[c] ?? XML_REPLACEMENT_CHARACTER;
}

/** Escapes element text: `& < > " '` and CR as references, characters XML cannot carry as U+FFFD. */
export function escapeXmlText(text: string): string {
  return text.replace(XML_SPECIAL, escapeChar);
}

/** Escapes an attribute value: as {@link escapeXmlText}, and tab and LF as references too. */
export function escapeXmlAttribute(text: string): string {
  return text.replace(XML_ATTRIBUTE_SPECIAL, escapeChar);
}

const INDENT = '  ';

/**
 * One element as XML. With `indent` a string, children go on their own lines,
 * indented; with `indent` null (inside mixed content) all is on one line.
 */
function xmlElement(name: string, node: AciNode, indent: string | null): string {
  const lead = indent ?? '';
  if (isText(node)) {
    const text = textOf(node);
    return text === '' ? `${lead}<${name}/>` : `${lead}<${name}>${escapeXmlText(text)}</${name}>`;
  }
  const { attributes, text, children } = contentOf(node);
  const open = `<${name}${attributes.map(([n, v]) => ` ${n}="${escapeXmlAttribute(v)}"`).join('')}`;
  if (children.length === 0) {
    return text === undefined || text === '' ? `${lead}${open}/>` : `${lead}${open}>${escapeXmlText(text)}</${name}>`;
  }
  // Mixed content (own text and children) is written on one line, so that no
  // indentation is added to the element's text.
  const inner = text !== undefined || indent === null ? null : indent + INDENT;
  const parts = children.flatMap((child) => child.items.map((item) => xmlElement(child.name, item, inner)));
  if (inner === null) return `${lead}${open}>${escapeXmlText(text ?? '')}${parts.join('')}</${name}>`;
  return `${lead}${open}>\n${parts.join('\n')}\n${lead}</${name}>`;
}

function renderXml(envelope: AciTree): string {
  const body = xmlElement('autnresponse', envelope, '');
  // The root carries IDOL's namespace declaration; it is not part of the tree, so
  // that the JSON formats leave it out.
  const root = body.replace(/^<autnresponse/, `<autnresponse xmlns:autn="${ACI_NAMESPACE}"`);
  return `<?xml version="1.0" encoding="UTF-8"?>\n${root}\n`;
}

// ---------------------------------------------------------------------------
// JSON
// ---------------------------------------------------------------------------

type Json = string | { [key: string]: Json } | Json[];

/**
 * One element as JSON. simplejson (`wrap` false): text is a plain string, and an
 * element with only text is that string. json (`wrap` true): every element text is
 * `{"$": "..."}`; attributes stay plain strings.
 */
function jsonElement(node: AciNode, wrap: boolean): Json {
  if (isText(node)) return wrap ? { $: textOf(node) } : textOf(node);
  const { attributes, text, children } = contentOf(node);
  if (!wrap && text !== undefined && attributes.length === 0 && children.length === 0) return text;
  // Null prototype: a child named "__proto__" is an own key like any other.
  const out = Object.create(null) as { [key: string]: Json };
  for (const [name, value] of attributes) out[`@${name}`] = value;
  if (text !== undefined) out.$ = text;
  for (const child of children) {
    const items = child.items.map((item) => jsonElement(item, wrap));
    out[child.name] = child.list ? items : (items[0] as Json);
  }
  return out;
}

function renderJson(envelope: AciTree, wrap: boolean): string {
  return `${JSON.stringify({ autnresponse: jsonElement(envelope, wrap) })}\n`;
}

// ---------------------------------------------------------------------------
// Envelope
// ---------------------------------------------------------------------------

/**
 * Warnings as the value of an HTTP `Warning` header (code 299, agent `gmail-connector`), for every
 * answer, View's raw bytes included: each a quoted string, non-ASCII escaped as in JSON.
 */
export function warningHeader(warnings: readonly string[]): string {
  return warnings
    .map((w) => `299 gmail-connector ${JSON.stringify(w).replace(/[^\x20-\x7e]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)}`)
    .join(', ');
}

function render(status: number, envelope: AciTree, format: ResponseFormat): AciResponse {
  if (format === 'xml') return { status, contentType: XML_CONTENT_TYPE, body: renderXml(envelope) };
  return { status, contentType: JSON_CONTENT_TYPE, body: renderJson(envelope, format === 'json') };
}

/**
 * A SUCCESS response (HTTP 200) for `action` (written upper-cased) with `data` as
 * `responsedata` (an empty `responsedata` when undefined), and one `warning` element per
 * warning (a list: always an array in JSON; left out when there is none). `actionId`, the
 * request's ActionID, is echoed as `actionid` after `action` (left out when undefined). Throws
 * TypeError when `data` holds something that is not an {@link AciTree} (a bug in the caller).
 */
export function renderSuccess(
  action: string,
  data: AciTree | undefined,
  format: ResponseFormat,
  warnings: readonly string[] = [],
  actionId?: string,
): AciResponse {
  return render(200, { action: action.toUpperCase(), actionid: actionId, response: 'SUCCESS', warning: warnings, responsedata: data ?? {} }, format);
}

/**
 * An ERROR response with the error's HTTP status:
 * `responsedata/error/{errorid, errorstring, errordescription, errorcode, errortime}`.
 * `errordescription` is the error's description, else its message; the cause is
 * never written. `autnresponse/action` is left out when `action` is unknown, `actionid` when the
 * request gave no well-formed ActionID.
 */
export function renderError(action: string | undefined, error: AciError, format: ResponseFormat, now: Date, actionId?: string): AciResponse {
  const envelope: AciTree = {
    action: action?.toUpperCase(),
    actionid: actionId,
    response: 'ERROR',
    responsedata: {
      error: {
        errorid: error.id,
        errorstring: error.message,
        errordescription: error.description ?? error.message,
        errorcode: error.code,
        errortime: formatAciTime(now),
      },
    },
  };
  return render(error.status, envelope, format);
}
