// MIME parsing of RFC 822 messages into Gmail's MessagePart tree.
//
// The parser works on the message bytes in memory, never throws, and keeps going on broken
// input: a header line that is not "Name: value" is skipped, a multipart without a usable
// boundary or without any part is served as a text/plain leaf, a part whose closing
// boundary is missing runs to the end of the message, and nesting stops at MAX_DEPTH.
//
// How the tree is shown follows Gmail:
// - header values are unfolded (the line breaks removed, the folding white space kept),
//   and RFC 2047 encoded words are decoded; in address headers a decoded display name that
//   holds specials (a comma, say) is put in quotes so the value still parses as addresses;
// - partId is "" for the top part, "0", "1", … for its children, "1.0" below "1", …;
// - a multipart part has body {size: 0} and its children in parts;
// - a leaf's body holds the bytes after undoing the Content-Transfer-Encoding (no charset
//   conversion), base64url-encoded with padding as Gmail writes it; parts with a filename,
//   and any part over INLINE_BODY_LIMIT bytes, get an attachmentId instead of data.

import libmime from 'libmime';
import { decode as decodeCharset } from 'libmime/lib/charset.js';
import * as libqp from 'libqp';
import { convert as htmlToText } from 'html-to-text';

export const INLINE_BODY_LIMIT = 64 * 1024;
const MAX_DEPTH = 32;

const LF = 0x0a;
const CR = 0x0d;
const SP = 0x20;
const HT = 0x09;

export interface RawHeader {
  name: string;
  /** Unfolded, not decoded, value (UTF-8 when the bytes are valid UTF-8, else Latin-1). */
  value: string;
}

export interface MimeNode {
  partId: string;
  headers: RawHeader[];
  /** Lower-cased type Gmail reports; text/plain when the part's own type is missing or unusable. */
  mimeType: string;
  params: Record<string, string>;
  filename: string;
  disposition: string;
  transferEncoding: string;
  /** Raw (still transfer-encoded) body range in the message buffer. */
  bodyStart: number;
  bodyEnd: number;
  parts: MimeNode[] | null;
  /** True when something had to be guessed or skipped while parsing this part. */
  damaged: boolean;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

export function bytesToText(buf: Buffer): string {
  try {
    return utf8.decode(buf);
  } catch {
    return buf.toString('latin1');
  }
}

function isWsp(b: number | undefined): boolean {
  return b === SP || b === HT;
}

function lineEnd(buf: Buffer, pos: number, end: number): number {
  const nl = buf.indexOf(LF, pos);
  return nl === -1 || nl >= end ? end : nl + 1;
}

function isBlank(buf: Buffer, start: number, stop: number): boolean {
  const len = stop - start;
  return (len === 1 && buf[start] === LF) || (len === 2 && buf[start] === CR && buf[start + 1] === LF) || len === 0;
}

const HEADER_NAME = /^[\x21-\x39\x3b-\x7e]+[ \t]*:/;

/**
 * Splits the header block at [start, end) from the body. Answers the headers and where the
 * body starts. A first line that is not a header means there are no headers at all.
 */
export function parseHeaderBlock(
  buf: Buffer,
  start = 0,
  end = buf.length,
): { headers: RawHeader[]; bodyStart: number; damaged: boolean } {
  const headers: RawHeader[] = [];
  let damaged = false;
  let pos = start;
  let current: Buffer[] | null = null;
  let currentName = '';

  const flush = (): void => {
    if (current === null) return;
    const raw = Buffer.concat(current);
    // Unfold: drop CR/LF, keep the folding white space; then trim the ends.
    let text = bytesToText(raw).replace(/\r?\n/g, '').replace(/\r/g, '');
    text = text.replace(/^[ \t]+|[ \t]+$/g, '');
    headers.push({ name: currentName, value: text });
    current = null;
  };

  // A message that does not start with a header line has no header block.
  {
    const first = lineEnd(buf, pos, end);
    if (!isBlank(buf, pos, first) && !HEADER_NAME.test(buf.toString('latin1', pos, Math.min(first, pos + 200)))) {
      return { headers, bodyStart: start, damaged: true };
    }
  }

  while (pos < end) {
    const stop = lineEnd(buf, pos, end);
    if (isBlank(buf, pos, stop)) {
      flush();
      return { headers, bodyStart: stop, damaged };
    }
    if (isWsp(buf[pos])) {
      if (current !== null) (current as Buffer[]).push(buf.subarray(pos, stop));
      else damaged = true;
    } else {
      flush();
      const head = buf.toString('latin1', pos, Math.min(stop, pos + 200));
      const m = HEADER_NAME.exec(head);
      if (m) {
        const colon = head.indexOf(':');
        currentName = head.slice(0, colon).replace(/[ \t]+$/, '');
        current = [buf.subarray(pos + colon + 1, stop)];
      } else {
        damaged = true; // not a header line: skipped
      }
    }
    pos = stop;
  }
  flush();
  // No blank line: everything was headers and the body is empty.
  return { headers, bodyStart: end, damaged };
}

export function headerValue(headers: readonly RawHeader[], name: string): string | undefined {
  const lower = name.toLowerCase();
  return headers.find((h) => h.name.toLowerCase() === lower)?.value;
}

const ADDRESS_HEADERS = new Set([
  'from', 'to', 'cc', 'bcc', 'reply-to', 'sender', 'resent-from', 'resent-to', 'resent-cc', 'resent-bcc',
  'delivered-to', 'return-path',
]);
const ENCODED_RUN = /=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=(?:\s+=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=)*/g;

function safeDecodeWords(text: string): string {
  try {
    return libmime.decodeWords(text);
  } catch {
    return text;
  }
}

/** A header value as Gmail shows it: RFC 2047 decoded, quoting decoded names in address headers. */
export function decodeHeaderValue(name: string, value: string): string {
  if (!value.includes('=?')) return value;
  if (!ADDRESS_HEADERS.has(name.toLowerCase())) return safeDecodeWords(value);
  return value.replace(ENCODED_RUN, (run, offset: number, whole: string) => {
    const decoded = safeDecodeWords(run);
    const before = whole.slice(0, offset);
    const insideQuotes = (before.match(/(?<!\\)"/g)?.length ?? 0) % 2 === 1;
    if (insideQuotes || !/[",;:<>@()[\]\\]/.test(decoded)) return decoded;
    return `"${decoded.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
  });
}

const MIME_TYPE = /^[a-z0-9!#$&^_.+-]+\/[a-z0-9!#$&^_.+-]+$/;

function parseStructured(value: string | undefined): { value: string; params: Record<string, string> } {
  if (value === undefined) return { value: '', params: {} };
  try {
    const parsed = libmime.parseHeaderValue(value, { stripComments: true });
    const decoded = new Set(parsed.decodedParams ?? []);
    const params: Record<string, string> = {};
    for (const [k, v] of Object.entries(parsed.params)) {
      params[k] = decoded.has(k) ? v : safeDecodeWords(v);
    }
    return { value: parsed.value.trim().toLowerCase(), params };
  } catch {
    return { value: value.split(';')[0]?.trim().toLowerCase() ?? '', params: {} };
  }
}

/** Finds the parts of a multipart body: ranges of each part's bytes between delimiters. */
export function splitMultipart(
  buf: Buffer,
  start: number,
  end: number,
  boundary: string,
): { parts: Array<{ start: number; end: number }>; closed: boolean } {
  const delim = Buffer.from(`--${boundary}`, 'latin1');
  const parts: Array<{ start: number; end: number }> = [];
  let partStart = -1;
  let pos = start;
  while (pos < end) {
    const hit = buf.indexOf(delim, pos);
    if (hit === -1 || hit + delim.length > end) break;
    const atLineStart = hit === start || buf[hit - 1] === LF;
    const stop = lineEnd(buf, hit, end);
    if (!atLineStart) {
      pos = hit + 1;
      continue;
    }
    const rest = buf.toString('latin1', hit + delim.length, stop);
    const close = rest.startsWith('--');
    if (!close && rest.trim() !== '') {
      pos = hit + 1; // a longer boundary that starts with this one
      continue;
    }
    if (partStart !== -1) {
      // The line break before a delimiter belongs to the delimiter.
      let partEnd = hit;
      if (partEnd > partStart && buf[partEnd - 1] === LF) partEnd--;
      if (partEnd > partStart && buf[partEnd - 1] === CR) partEnd--;
      parts.push({ start: partStart, end: Math.max(partStart, partEnd) });
    }
    if (close) return { parts, closed: true };
    partStart = stop;
    pos = stop;
  }
  if (partStart !== -1) parts.push({ start: partStart, end }); // truncated: no closing delimiter
  return { parts, closed: false };
}

function parseNode(buf: Buffer, start: number, end: number, partId: string, depth: number, defaultType: string): MimeNode {
  const { headers, bodyStart, damaged: headerDamage } = parseHeaderBlock(buf, start, end);
  let damaged = headerDamage;
  const ct = parseStructured(headerValue(headers, 'content-type'));
  let mimeType = ct.value;
  if (!MIME_TYPE.test(mimeType)) {
    if (mimeType !== '') damaged = true;
    mimeType = defaultType;
  }
  const cd = parseStructured(headerValue(headers, 'content-disposition'));
  const filename = (cd.params['filename'] ?? ct.params['name'] ?? '').trim();
  const node: MimeNode = {
    partId,
    headers,
    mimeType,
    params: ct.params,
    filename,
    disposition: cd.value,
    transferEncoding: (headerValue(headers, 'content-transfer-encoding') ?? '').trim().toLowerCase(),
    bodyStart,
    bodyEnd: end,
    parts: null,
    damaged,
  };
  if (mimeType.startsWith('multipart/')) {
    const boundary = ct.params['boundary'];
    const found = boundary && depth < MAX_DEPTH ? splitMultipart(buf, bodyStart, end, boundary) : null;
    if (found && found.parts.length > 0) {
      const childDefault = mimeType === 'multipart/digest' ? 'message/rfc822' : 'text/plain';
      node.parts = found.parts.map((p, i) =>
        parseNode(buf, p.start, p.end, partId === '' ? String(i) : `${partId}.${i}`, depth + 1, childDefault),
      );
      if (!found.closed) node.damaged = true;
    } else {
      // Unusable multipart: shown as one text/plain leaf holding the whole body.
      node.mimeType = 'text/plain';
      node.damaged = true;
    }
  }
  return node;
}

/** Parses a whole message. Never throws. */
export function parseMime(buf: Buffer): MimeNode {
  try {
    return parseNode(buf, 0, buf.length, '', 0, 'text/plain');
  } catch {
    const { headers, bodyStart } = safeHeaders(buf);
    return {
      partId: '',
      headers,
      mimeType: 'text/plain',
      params: {},
      filename: '',
      disposition: '',
      transferEncoding: '',
      bodyStart,
      bodyEnd: buf.length,
      parts: null,
      damaged: true,
    };
  }
}

function safeHeaders(buf: Buffer): { headers: RawHeader[]; bodyStart: number } {
  try {
    return parseHeaderBlock(buf);
  } catch {
    return { headers: [], bodyStart: 0 };
  }
}

export function* leaves(node: MimeNode): Generator<MimeNode> {
  if (node.parts === null) {
    yield node;
    return;
  }
  for (const p of node.parts) yield* leaves(p);
}

export function findPart(node: MimeNode, partId: string): MimeNode | undefined {
  if (node.partId === partId) return node;
  for (const p of node.parts ?? []) {
    if (partId === p.partId || partId.startsWith(`${p.partId}.`)) return findPart(p, partId);
  }
  return undefined;
}

/** The leaf's body after undoing its Content-Transfer-Encoding. */
export function decodeBody(buf: Buffer, node: MimeNode): Buffer {
  const raw = buf.subarray(node.bodyStart, node.bodyEnd);
  try {
    if (node.transferEncoding === 'base64') {
      return Buffer.from(raw.toString('latin1').replace(/[^A-Za-z0-9+/]/g, ''), 'base64');
    }
    if (node.transferEncoding === 'quoted-printable') return libqp.decode(raw);
  } catch {
    // fall through: the bytes as they are
  }
  return Buffer.from(raw);
}

export function isAttachment(node: MimeNode): boolean {
  return node.parts === null && (node.filename !== '' || node.disposition === 'attachment');
}

export function toBase64Url(buf: Buffer): string {
  return buf.toString('base64').replace(/\+/g, '-').replace(/\//g, '_');
}

export function fromBase64Url(text: string): Buffer {
  return Buffer.from(text.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
}

export function attachmentIdFor(messageId: string, partId: string): string {
  return `att_${toBase64Url(Buffer.from(`${messageId}:${partId}`, 'latin1')).replace(/=+$/, '')}`;
}

export function parseAttachmentId(attachmentId: string): { messageId: string; partId: string } | null {
  if (!attachmentId.startsWith('att_')) return null;
  const text = fromBase64Url(attachmentId.slice(4)).toString('latin1');
  const m = /^([0-9a-f]{1,16}):([0-9.]*)$/.exec(text);
  return m ? { messageId: m[1] as string, partId: m[2] as string } : null;
}

export interface MessagePartJson {
  partId: string;
  mimeType: string;
  filename: string;
  headers: Array<{ name: string; value: string }>;
  body: { size: number; data?: string; attachmentId?: string };
  parts?: MessagePartJson[];
}

export function headersJson(headers: readonly RawHeader[]): Array<{ name: string; value: string }> {
  return headers.map((h) => ({ name: h.name, value: decodeHeaderValue(h.name, h.value) }));
}

/** The full-format payload tree. */
export function payloadJson(buf: Buffer, node: MimeNode, messageId: string): MessagePartJson {
  const out: MessagePartJson = {
    partId: node.partId,
    mimeType: node.mimeType,
    filename: node.filename,
    headers: headersJson(node.headers),
    body: { size: 0 },
  };
  if (node.parts !== null) {
    out.parts = node.parts.map((p) => payloadJson(buf, p, messageId));
    return out;
  }
  const data = decodeBody(buf, node);
  out.body.size = data.length;
  if (data.length === 0) return out;
  if (node.filename !== '' || data.length > INLINE_BODY_LIMIT) {
    out.body.attachmentId = attachmentIdFor(messageId, node.partId);
  } else {
    out.body.data = toBase64Url(data);
  }
  return out;
}

/** The text of a leaf in Unicode, using its declared charset. */
export function leafText(buf: Buffer, node: MimeNode): string {
  const data = decodeBody(buf, node);
  const charset = node.params['charset'];
  try {
    return charset ? decodeCharset(data, charset) : bytesToText(data);
  } catch {
    return bytesToText(data);
  }
}

const SNIPPET_LENGTH = 200;

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) =>
    c === '&' ? '&amp;' : c === '<' ? '&lt;' : c === '>' ? '&gt;' : c === '"' ? '&quot;' : '&#39;',
  );
}

/** Gmail-like snippet: the start of the message text, white space collapsed, HTML-escaped. */
export function snippetOf(buf: Buffer, root: MimeNode): string {
  try {
    let text = '';
    const all = [...leaves(root)].filter((n) => !isAttachment(n));
    const plain = all.find((n) => n.mimeType === 'text/plain');
    const html = all.find((n) => n.mimeType === 'text/html');
    if (plain) text = leafText(buf, plain);
    else if (html) {
      text = htmlToText(leafText(buf, html), {
        wordwrap: false,
        selectors: [
          { selector: 'a', options: { ignoreHref: true } },
          { selector: 'img', format: 'skip' },
        ],
      });
    }
    const collapsed = text.replace(/\s+/g, ' ').trim();
    const chars = Array.from(collapsed);
    return escapeHtml(chars.slice(0, SNIPPET_LENGTH).join('').trimEnd());
  } catch {
    return '';
  }
}
