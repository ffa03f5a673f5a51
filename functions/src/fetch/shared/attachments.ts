/**
 * The attachments of a message as it streams past: `AttachmentSplitter` is a Writable that takes
 * a message's raw bytes and hands each attachment, one at a time and as a stream, to `store`,
 * under a name safe as an object name. mailparser's streaming `MailParser` does the MIME work
 * (boundaries, transfer encodings, encoded file names); its attachment streams honour
 * backpressure, so an attachment is never held whole: the parser waits while `store` reads.
 */
import { Writable } from 'node:stream';
import { MailParser, type AttachmentStream, type MessageText } from 'mailparser';

/** The longest object-name segment an attachment gets, in UTF-8 bytes (Cloud Storage allows 1,024 for a whole name). */
const MAX_NAME_BYTES = 200;

/** Cuts `s` to at most `max` UTF-8 bytes without splitting a character. */
function cutBytes(s: string, max: number): string {
  let out = '';
  let bytes = 0;
  for (const ch of s) {
    const n = Buffer.byteLength(ch);
    if (bytes + n > max) break;
    out += ch;
    bytes += n;
  }
  return out;
}

/**
 * A file name as one safe object-name segment: no path separators, control characters or
 * characters that wildcard tools treat specially, no leading dots (no `.` or `..`), at most
 * 200 bytes with the extension kept; `attachment-N` when nothing is left.
 */
export function safeAttachmentName(raw: string | undefined, n: number): string {
  let s = (raw ?? '')
    .normalize('NFC')
    .replace(/[\u0000-\u001f\u007f-\u009f/\\]/g, '_')
    .replace(/[#[\]*?:"<>|]/g, '_')
    .trim()
    .replace(/^\.+/, '')
    .replace(/[. ]+$/, '');
  if (s === '' || /^_+$/.test(s)) s = `attachment-${n}`;
  if (Buffer.byteLength(s) <= MAX_NAME_BYTES) return s;
  const dot = s.lastIndexOf('.');
  const ext = dot > 0 && s.length - dot <= 16 ? s.slice(dot) : '';
  return cutBytes(s.slice(0, s.length - ext.length), MAX_NAME_BYTES - Buffer.byteLength(ext)) + ext;
}

/** Distinct names within one message: a repeated name gets ` (2)`, ` (3)`… before its extension. */
export function uniqueName(name: string, taken: Set<string>): string {
  let out = name;
  const dot = name.lastIndexOf('.');
  const [stem, ext] = dot > 0 ? [name.slice(0, dot), name.slice(dot)] : [name, ''];
  for (let k = 2; taken.has(out.toLowerCase()); k++) out = `${stem} (${k})${ext}`;
  taken.add(out.toLowerCase());
  return out;
}

export interface AttachmentOut {
  /** The safe, distinct name (see safeAttachmentName). */
  name: string;
  contentType: string;
  content: NodeJS.ReadableStream;
}

/**
 * Takes a message's raw bytes; finishes once every attachment has been stored. A failure of
 * `store` or of the parser destroys it with that error.
 */
export class AttachmentSplitter extends Writable {
  private readonly parser = new MailParser({ skipHtmlToText: true, skipTextToHtml: true, skipTextLinks: true, skipImageLinks: true });
  private readonly taken = new Set<string>();
  private count = 0;
  private stored: Promise<void> = Promise.resolve();
  private readonly ended: Promise<void>;
  /** The attachment being stored, ended with an error if the splitter is destroyed first. */
  private current: NodeJS.ReadableStream | undefined;

  /** How many attachments were handed to `store`. */
  get attachments(): number {
    return this.count;
  }

  constructor(store: (a: AttachmentOut) => Promise<void>) {
    super();
    this.ended = new Promise((res, rej) => {
      this.parser.once('end', res);
      this.parser.once('error', rej);
    });
    this.ended.catch(() => {});
    this.parser.on('data', (part: AttachmentStream | MessageText) => {
      if (part.type !== 'attachment') return;
      this.count += 1;
      const name = uniqueName(safeAttachmentName(part.filename, this.count), this.taken);
      this.current = part.content;
      const done = store({ name, contentType: part.contentType || 'application/octet-stream', content: part.content }).then(
        () => {
          this.current = undefined;
          part.release?.();
        },
        (e: unknown) => {
          this.current = undefined;
          part.release?.();
          this.destroy(e instanceof Error ? e : new Error(String(e)));
        },
      );
      this.stored = this.stored.then(() => done);
    });
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    if (this.parser.write(chunk)) cb();
    else this.parser.once('drain', () => cb());
  }

  override _final(cb: (e?: Error | null) => void): void {
    this.parser.end();
    this.ended.then(() => this.stored).then(
      () => cb(),
      (e: unknown) => cb(e instanceof Error ? e : new Error(String(e))),
    );
  }

  override _destroy(e: Error | null, cb: (e?: Error | null) => void): void {
    // An attachment's upload under way must fail too, so that it never completes.
    const current = this.current as (NodeJS.ReadableStream & { destroy?: (e: Error) => void }) | undefined;
    current?.destroy?.(e ?? new Error('the message ended before this attachment'));
    this.parser.destroy();
    cb(e);
  }
}

/** A Writable that writes each chunk to every one of `outs`, waiting for the slowest; it finishes when all have. */
export class Fork extends Writable {
  constructor(private readonly outs: Writable[]) {
    super();
    for (const o of outs) o.once('error', (e) => this.destroy(e));
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    let waiting = 1;
    const one = () => {
      if (--waiting === 0) cb();
    };
    for (const o of this.outs) {
      if (!o.write(chunk)) {
        waiting += 1;
        o.once('drain', one);
      }
    }
    one();
  }

  override _final(cb: (e?: Error | null) => void): void {
    Promise.all(
      this.outs.map(
        (o) =>
          new Promise<void>((res, rej) => {
            o.once('finish', res);
            o.once('error', rej);
            o.end();
          }),
      ),
    ).then(
      () => cb(),
      (e: unknown) => cb(e instanceof Error ? e : new Error(String(e))),
    );
  }

  override _destroy(e: Error | null, cb: (e?: Error | null) => void): void {
    for (const o of this.outs) if (!o.destroyed) o.destroy(e ?? undefined);
    cb(e);
  }
}
