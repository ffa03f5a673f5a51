/**
 * A `messages.get` answer in `format=raw` read as it arrives: the message's
 * MIME source (the `raw` field, base64url, up to Gmail's 50 MB message limit
 * and a third more in base64) is decoded chunk by chunk and handed on as it
 * comes, and only the other fields (ids, labels, snippet, a few hundred bytes)
 * are kept and parsed as JSON. So a message is never held whole in memory,
 * neither as the response body, nor as the base64 string, nor as its bytes.
 *
 * Why not a streaming JSON library: the answer is one flat object of which one
 * string may be huge; this scanner passes that string's content through
 * `indexOf` and parses the rest with `JSON.parse`, which costs a small message
 * next to nothing (a general tokenizer looks at every character of it).
 */
import type { gmail_v1 } from 'googleapis/build/src/apis/gmail/index.js';

const enum State {
  Normal,
  InString,
  Escape,
  AfterRawKey,
  BeforeRawValue,
  InRaw,
}

/**
 * Takes the text of a Gmail message resource piece by piece; gives the
 * decoded bytes of its top-level `raw` field as they come (`feed`'s answer),
 * and the other fields at the end (`end`).
 */
export class RawMessageScanner {
  private state = State.Normal;
  private depth = 0;
  /** The text of the object without the raw field's content (which stays as ""). */
  private rest: string[] = [];
  /** The string being read, while it could still be the key "raw". */
  private key = '';
  /** Base64 characters not yet decoded (fewer than four). */
  private pending = '';

  /** Reads `text`; answers the source bytes it completed. */
  feed(text: string): Buffer[] {
    const out: Buffer[] = [];
    let i = 0;
    let keep = 0;
    const n = text.length;
    while (i < n) {
      switch (this.state) {
        case State.InRaw: {
          const close = text.indexOf('"', i);
          const end = close === -1 ? n : close;
          if (text.lastIndexOf('\\', end - 1) >= i) throw new Error('an escape inside the raw field of a Gmail message');
          this.decode(text.slice(i, end), out);
          if (close === -1) {
            i = n;
            keep = n;
          } else {
            // The raw field's content is dropped from `rest`; its closing quote is kept.
            this.state = State.Normal;
            keep = close;
            i = close + 1;
          }
          continue;
        }
        case State.Normal: {
          const c = text[i];
          if (c === '"') {
            this.state = State.InString;
            this.key = '';
          } else if (c === '{' || c === '[') this.depth++;
          else if (c === '}' || c === ']') this.depth--;
          break;
        }
        case State.InString: {
          const c = text[i];
          if (c === '\\') this.state = State.Escape;
          else if (c === '"') this.state = this.depth === 1 && this.key === 'raw' ? State.AfterRawKey : State.Normal;
          else if (this.key.length <= 3) this.key += c;
          break;
        }
        case State.Escape:
          this.key = 'escaped';
          this.state = State.InString;
          break;
        case State.AfterRawKey: {
          const c = text[i] as string;
          if (c === ':') this.state = State.BeforeRawValue;
          else if (!/\s/.test(c)) {
            // "raw" was a value, not a key: read this character again as any other.
            this.state = State.Normal;
            continue;
          }
          break;
        }
        case State.BeforeRawValue: {
          const c = text[i] as string;
          if (c === '"') {
            this.rest.push(text.slice(keep, i + 1));
            this.state = State.InRaw;
            i++;
            keep = i;
            continue;
          }
          if (!/\s/.test(c)) {
            this.state = State.Normal;
            continue;
          }
          break;
        }
      }
      i++;
    }
    if (this.state !== State.InRaw) this.rest.push(text.slice(keep));
    return out;
  }

  private decode(chars: string, out: Buffer[]): void {
    const all = this.pending + chars;
    const whole = all.length - (all.length % 4);
    this.pending = all.slice(whole);
    if (whole > 0) out.push(Buffer.from(all.slice(0, whole), 'base64url'));
  }

  /** The message's other fields, and the last source bytes; throws if the text was not a whole message. */
  end(): { message: gmail_v1.Schema$Message; last: Buffer } {
    if (this.state !== State.Normal || this.depth !== 0) throw new Error('a Gmail message answer ended early');
    const last = Buffer.from(this.pending, 'base64url');
    this.pending = '';
    const message = JSON.parse(this.rest.join('')) as gmail_v1.Schema$Message;
    delete message.raw;
    return { message, last };
  }
}

/**
 * Reads a `format=raw` answer's body: each piece of the message's source is
 * given to `source` (awaited, so a slow reader slows the download), and the
 * message's other fields are answered at the end.
 */
export async function readRawMessage(body: AsyncIterable<Uint8Array | string>, source: (chunk: Buffer) => Promise<void> | void): Promise<gmail_v1.Schema$Message> {
  const scanner = new RawMessageScanner();
  const text = new TextDecoder('utf-8');
  for await (const chunk of body) {
    const pieces = scanner.feed(typeof chunk === 'string' ? chunk : text.decode(chunk, { stream: true }));
    for (const p of pieces) await source(p);
  }
  scanner.feed(text.decode());
  const { message, last } = scanner.end();
  if (last.length > 0) await source(last);
  return message;
}
