/**
 * A Gmail message (format `raw`) as a sink document (docs/CONTRACT.md): the MIME
 * source is parsed with mailparser (RFC 2047 words, charsets, transfer
 * encodings) and HTML bodies are turned into text with html-to-text.
 *
 * The source is parsed as it arrives (`MimeReader`), never held whole: the
 * text and HTML bodies are kept (the sink keeps their text), and attachments,
 * which the sink keeps only by name, type and size, are counted as they stream
 * past and dropped (nor are they hashed). So what one message costs in memory
 * is its text bodies plus a few network chunks, whatever its attachments weigh.
 */
import { once } from 'node:events';
import { Timestamp } from '@google-cloud/firestore';
import type { gmail_v1 } from 'googleapis/build/src/apis/gmail/index.js';
import { compile } from 'html-to-text';
import { MailParser, type AddressObject, type EmailAddress, type HeaderLines, type Headers } from 'mailparser';
import type { CallOptions } from '../../gmail/caller.js';
import { readRawMessage } from '../../gmail/raw.js';

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

/** What the sink keeps of a message's MIME source. */
export interface ParsedSource {
  headers: Headers;
  headerLines: HeaderLines;
  text: string;
  html: string | false;
  attachments: { filename: string; mimeType: string; size: number }[];
  /** Bytes of the source. */
  bytes: number;
}

/** Parses a MIME source given piece by piece (`write`, honouring backpressure), keeping what the sink needs. */
export class MimeReader {
  private readonly parser = new MailParser({ skipImageLinks: true, skipTextToHtml: true, skipTextLinks: true, checksumAlgo: false });
  private readonly done: Promise<ParsedSource>;
  private bytes = 0;

  constructor() {
    const p = this.parser;
    let headers: Headers = new Map();
    let headerLines: HeaderLines = [];
    let text = '';
    let html: string | false = false;
    const attachments: ParsedSource['attachments'] = [];
    this.done = new Promise<ParsedSource>((resolve, reject) => {
      p.on('error', reject);
      p.on('headers', (h: Headers) => {
        headers = h;
        headerLines = p.headerLines || [];
      });
      p.on('data', (d: { type: 'text'; text?: string; html?: string | false } | { type: 'attachment'; filename?: string; contentType: string; content: NodeJS.ReadableStream; release(): void }) => {
        if (d.type === 'text') {
          text = d.text ?? '';
          html = d.html ?? false;
          return;
        }
        // Counted and dropped: the parser goes on once the attachment is released.
        let size = 0;
        d.content.on('data', (c: Buffer) => (size += c.length));
        d.content.on('end', () => {
          attachments.push({ filename: d.filename ?? '', mimeType: d.contentType, size });
          d.release();
        });
      });
      p.on('end', () => resolve({ headers, headerLines, text, html, attachments, bytes: this.bytes }));
    });
    // Read by `end`; a reader abandoned mid-way (the download failed) must not report an unhandled rejection.
    this.done.catch(() => {});
  }

  async write(chunk: Buffer): Promise<void> {
    this.bytes += chunk.length;
    if (!this.parser.write(chunk)) await Promise.race([once(this.parser, 'drain'), this.done]);
  }

  end(): Promise<ParsedSource> {
    this.parser.end();
    return this.done;
  }

  /** Gives up (the download failed). */
  destroy(): void {
    this.parser.destroy();
  }
}

/** HTML to text, with its options compiled once: compiling them is most of the cost of a small message's conversion. */
const htmlToText = compile({ wordwrap: false, selectors: [{ selector: 'img', format: 'skip' }] });

/** The sink document of a message: `msg`'s fields (format raw, without `raw`) and its parsed source. */
export function documentOf(task: string, user: string, msg: gmail_v1.Schema$Message, parsed: ParsedSource): SinkDocument {
  let content = parsed.text;
  if (content.trim() === '' && typeof parsed.html === 'string') {
    content = htmlToText(parsed.html);
  }
  const h = parsed.headers;
  const subject = h.get('subject');
  const doc: SinkDocument = {
    task: task.toUpperCase(),
    user: user.toLowerCase(),
    messageId: msg.id ?? '',
    threadId: msg.threadId ?? '',
    historyId: msg.historyId ?? '',
    labels: [...(msg.labelIds ?? [])].sort(),
    subject: typeof subject === 'string' ? subject : '',
    from: addresses(h.get('from') as AddressObject | undefined)[0] ?? '',
    to: addresses(h.get('to') as AddressObject | AddressObject[] | undefined),
    cc: addresses(h.get('cc') as AddressObject | AddressObject[] | undefined),
    date: Timestamp.fromMillis(Number(msg.internalDate ?? 0) || 0),
    messageIdHeader: messageIdHeader(parsed.headerLines),
    snippet: msg.snippet ?? '',
    content: '',
    attachments: parsed.attachments,
    sizeEstimate: msg.sizeEstimate ?? parsed.bytes,
    truncated: false,
  };
  const rest = Buffer.byteLength(JSON.stringify(doc), 'utf8') + 4096;
  const room = MAX_DOCUMENT_BYTES - rest;
  const cut = cutUtf8(content, room);
  doc.content = cut;
  doc.truncated = cut.length < content.length;
  return doc;
}

/** Builds the sink document of one message fetched with `format=raw` and held whole (View). */
export async function buildDocument(task: string, user: string, msg: gmail_v1.Schema$Message): Promise<SinkDocument> {
  const reader = new MimeReader();
  await reader.write(Buffer.from(msg.raw ?? '', 'base64url'));
  return documentOf(task, user, msg, await reader.end());
}

/**
 * A Google API error of a streamed answer, with its JSON body restored: gaxios reads the body of a
 * refused streamed call as text, puts that text in the error's message and leaves `response.data`
 * unset or a string, so the reason (`rateLimitExceeded`, "concurrent requests") would be lost.
 */
function withParsedBody(e: unknown): unknown {
  const err = e as { message?: unknown; response?: { data?: unknown } } | null;
  const res = err?.response;
  if (res && (res.data === undefined || typeof res.data === 'string')) {
    const text = typeof res.data === 'string' ? res.data : String(err?.message ?? '');
    try {
      res.data = JSON.parse(text) as unknown;
    } catch {
      // Not JSON: left as it is.
    }
  }
  return e;
}

/**
 * Gets message `id` of `user` (format raw) and builds its sink document as the answer arrives
 * (gmail/raw.ts, `MimeReader`): the message is never held whole. Answers its labels too, so that
 * the caller can drop a message the task does not want.
 */
export async function fetchDocument(
  gmail: gmail_v1.Gmail,
  task: string,
  user: string,
  id: string,
  o: CallOptions,
): Promise<{ labels: string[]; doc: SinkDocument }> {
  const reader = new MimeReader();
  try {
    const res = await gmail.users.messages
      .get({ userId: user, id, format: 'raw' }, { signal: o.signal, responseType: 'stream' })
      .catch((e: unknown) => {
        throw withParsedBody(e);
      });
    const msg = await readRawMessage(res.data as unknown as AsyncIterable<Uint8Array>, (chunk) => {
      o.alive();
      return reader.write(chunk);
    });
    return { labels: msg.labelIds ?? [], doc: documentOf(task, user, msg, await reader.end()) };
  } catch (e) {
    reader.destroy();
    throw e;
  }
}

/** An estimate of a document's stored size, for batching within Firestore's request limit. */
export function estimateBytes(doc: SinkDocument): number {
  return Buffer.byteLength(doc.content, 'utf8') + Buffer.byteLength(doc.subject, 'utf8') + 2048;
}
