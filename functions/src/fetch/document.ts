/**
 * A Gmail message (format `raw`) as a sink document (docs/CONTRACT.md): the MIME
 * source is parsed with mailparser (RFC 2047 words, charsets, transfer
 * encodings) and HTML bodies are turned into text with html-to-text.
 */
import { Timestamp } from '@google-cloud/firestore';
import type { gmail_v1 } from 'googleapis/build/src/apis/gmail/index.js';
import { convert } from 'html-to-text';
import { simpleParser, type AddressObject, type EmailAddress } from 'mailparser';

/** One document of collection `documents`. */
export interface SinkDocument {
  task: string;
  user: string;
  messageId: string;
  threadId: string;
  historyId: string;
  labels: string[];
  subject: string;
  from: string;
  to: string[];
  cc: string[];
  date: Timestamp;
  messageIdHeader: string | null;
  snippet: string;
  content: string;
  attachments: { filename: string; mimeType: string; size: number }[];
  sizeEstimate: number;
  truncated: boolean;
}

/** Firestore's limit is 1 MiB a document; stay well under it with the other fields. */
const MAX_DOCUMENT_BYTES = 1_000_000;

function flatten(list: EmailAddress[]): string[] {
  return list.flatMap((a) => (a.group ? flatten(a.group) : [a.name ? `${a.name} <${a.address ?? ''}>` : (a.address ?? '')]));
}

function addresses(v: AddressObject | AddressObject[] | undefined): string[] {
  if (!v) return [];
  return (Array.isArray(v) ? v : [v]).flatMap((o) => flatten(o.value)).filter((s) => s !== '');
}

/** The Message-ID header exactly as written (unfolded), or null. */
function messageIdHeader(lines: ReadonlyArray<{ key: string; line: string }>): string | null {
  const h = lines.find((l) => l.key === 'message-id');
  if (!h) return null;
  const value = h.line.slice(h.line.indexOf(':') + 1).replace(/\r?\n[ \t]+/g, ' ').trim();
  return value === '' ? null : value;
}

/** Cuts `text` to at most `bytes` UTF-8 bytes on a character boundary. */
export function cutUtf8(text: string, bytes: number): string {
  const buf = Buffer.from(text, 'utf8');
  if (buf.length <= bytes) return text;
  let end = Math.max(0, bytes);
  while (end > 0 && ((buf[end] ?? 0) & 0xc0) === 0x80) end--;
  return buf.subarray(0, end).toString('utf8');
}

function decodeRaw(raw: string): Buffer {
  return Buffer.from(raw.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
}

/** Builds the sink document of one message fetched with `format=raw`. */
export async function buildDocument(task: string, user: string, msg: gmail_v1.Schema$Message): Promise<SinkDocument> {
  const source = decodeRaw(msg.raw ?? '');
  const parsed = await simpleParser(source, { skipImageLinks: true, skipTextToHtml: true, skipTextLinks: true });
  let content = parsed.text ?? '';
  if (content.trim() === '' && typeof parsed.html === 'string') {
    content = convert(parsed.html, { wordwrap: false, selectors: [{ selector: 'img', format: 'skip' }] });
  }
  const from = addresses(parsed.from)[0] ?? '';
  const doc: SinkDocument = {
    task: task.toUpperCase(),
    user: user.toLowerCase(),
    messageId: msg.id ?? '',
    threadId: msg.threadId ?? '',
    historyId: msg.historyId ?? '',
    labels: [...(msg.labelIds ?? [])].sort(),
    subject: parsed.subject ?? '',
    from,
    to: addresses(parsed.to),
    cc: addresses(parsed.cc),
    date: Timestamp.fromMillis(Number(msg.internalDate ?? 0) || 0),
    messageIdHeader: messageIdHeader(parsed.headerLines),
    snippet: msg.snippet ?? '',
    content: '',
    attachments: parsed.attachments.map((a) => ({
      filename: a.filename ?? '',
      mimeType: a.contentType,
      size: a.size,
    })),
    sizeEstimate: msg.sizeEstimate ?? source.length,
    truncated: false,
  };
  const rest = Buffer.byteLength(JSON.stringify(doc), 'utf8') + 4096;
  const room = MAX_DOCUMENT_BYTES - rest;
  const cut = cutUtf8(content, room);
  doc.content = cut;
  doc.truncated = cut.length < content.length;
  return doc;
}

/** An estimate of a document's stored size, for batching within Firestore's request limit. */
export function estimateBytes(doc: SinkDocument): number {
  return Buffer.byteLength(doc.content, 'utf8') + Buffer.byteLength(doc.subject, 'utf8') + 2048;
}
