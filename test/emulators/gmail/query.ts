// Evaluation of Gmail search queries (the `q` parameter), for the subset the emulator serves.
//
// Syntax: terms separated by white space are ANDed; `OR` (upper case) or `{a b}` ORs terms;
// `-term` negates; `( … )` groups; `field:value`, `field:"a phrase"`, `field:(a b)` (all
// words) and `field:{a b}` (any word). Operators:
//   in:/label:/is:/category:  inbox sent spam trash draft(s) starred important unread read
//                             chats anywhere, category names, user labels (case-insensitive,
//                             spaces, "/" and "_" written as "-")
//   from: to: cc: bcc: subject: deliveredto:   substring of the decoded header, case-insensitive
//   after: before: newer: older:  YYYY/MM/DD (midnight in America/Los_Angeles, as Gmail
//                                 reads dates) or epoch seconds; against internalDate
//   newer_than: older_than:       Nd, Nm (months), Ny relative to now
//   has:attachment has:userlabels has:nouserlabels  filename:  larger: smaller: size:
//   rfc822msgid:
// Bare words and phrases match the subject, the From/To/Cc headers and attachment names
// (message bodies are not searched). An unknown `word:value` is a bare word, as in Gmail.

import { normalizeLabelName } from './labels.js';

export interface Searchable {
  labelIds: readonly string[];
  from: string;
  to: string;
  cc: string;
  bcc: string;
  subject: string;
  deliveredTo: string;
  messageIdHeader: string | null;
  hasAttachment: boolean;
  filenames: readonly string[];
  internalDate: number;
  size: number;
}

export type QueryNode =
  | { type: 'and'; items: QueryNode[] }
  | { type: 'or'; items: QueryNode[] }
  | { type: 'not'; item: QueryNode }
  | { type: 'term'; field: string | null; value: string };

export interface QueryContext {
  /** Label id for a label name as written after label:/in:/is:, or null when unknown. */
  resolveLabel(name: string): string | null;
  /** User label ids, for has:userlabels. */
  isUserLabel(id: string): boolean;
  now: number;
}

const KNOWN_FIELDS = new Set([
  'in', 'label', 'is', 'category', 'from', 'to', 'cc', 'bcc', 'subject', 'deliveredto', 'after', 'before',
  'newer', 'older', 'newer_than', 'older_than', 'has', 'filename', 'larger', 'smaller', 'size', 'rfc822msgid',
]);

class Parser {
  private pos = 0;
  constructor(private readonly text: string) {}

  private skipWs(): void {
    while (this.pos < this.text.length && /\s/.test(this.text[this.pos] as string)) this.pos++;
  }

  private peek(): string {
    return this.text[this.pos] ?? '';
  }

  parseSequence(close: string, field: string | null): QueryNode[] {
    const items: QueryNode[] = [];
    for (;;) {
      this.skipWs();
      if (this.pos >= this.text.length) break;
      if (close && this.peek() === close) {
        this.pos++;
        break;
      }
      if (this.peek() === ')' || this.peek() === '}') {
        this.pos++; // stray closer: ignored
        continue;
      }
      const node = this.parseOr(close, field);
      if (node) items.push(node);
    }
    return items;
  }

  private parseOr(close: string, field: string | null): QueryNode | null {
    const first = this.parseUnary(close, field);
    if (!first) return null;
    const items = [first];
    for (;;) {
      const save = this.pos;
      this.skipWs();
      if (this.text.startsWith('OR', this.pos) && /[\s({"-]/.test(this.text[this.pos + 2] ?? '')) {
        this.pos += 2;
        this.skipWs();
        const next = this.parseUnary(close, field);
        if (next) items.push(next);
        continue;
      }
      this.pos = save;
      break;
    }
    return items.length === 1 ? first : { type: 'or', items };
  }

  private parseUnary(close: string, field: string | null): QueryNode | null {
    this.skipWs();
    const c = this.peek();
    if (c === '' || c === close) return null;
    if (c === '-' && this.pos + 1 < this.text.length && !/\s/.test(this.text[this.pos + 1] as string)) {
      this.pos++;
      const item = this.parseUnary(close, field);
      return item ? { type: 'not', item } : null;
    }
    if (c === '(') {
      this.pos++;
      return { type: 'and', items: this.parseSequence(')', field) };
    }
    if (c === '{') {
      this.pos++;
      return { type: 'or', items: this.parseSequence('}', field) };
    }
    return this.parseTerm(field);
  }

  private readValue(): string {
    if (this.peek() === '"') {
      const end = this.text.indexOf('"', this.pos + 1);
      const value = this.text.slice(this.pos + 1, end === -1 ? undefined : end);
      this.pos = end === -1 ? this.text.length : end + 1;
      return value;
    }
    const start = this.pos;
    while (this.pos < this.text.length && !/[\s(){}]/.test(this.text[this.pos] as string)) this.pos++;
    return this.text.slice(start, this.pos);
  }

  private parseTerm(field: string | null): QueryNode | null {
    const m = /^([A-Za-z_0-9]+):/.exec(this.text.slice(this.pos, this.pos + 40));
    if (m && KNOWN_FIELDS.has((m[1] as string).toLowerCase())) {
      const name = (m[1] as string).toLowerCase();
      this.pos += m[0].length;
      const c = this.peek();
      if (c === '(') {
        this.pos++;
        return { type: 'and', items: this.parseSequence(')', name) };
      }
      if (c === '{') {
        this.pos++;
        return { type: 'or', items: this.parseSequence('}', name) };
      }
      return { type: 'term', field: name, value: this.readValue() };
    }
    const start = this.pos;
    const value = this.readValue();
    if (value === '') {
      if (this.pos === start) this.pos++;
      return null;
    }
    return { type: 'term', field, value };
  }
}

export function parseQuery(q: string): QueryNode {
  return { type: 'and', items: new Parser(q).parseSequence('', null) };
}

/** Whether a query names spam or trash, so that messages.list includes them. */
export function mentionsSpamOrTrash(node: QueryNode): boolean {
  switch (node.type) {
    case 'and':
    case 'or':
      return node.items.some(mentionsSpamOrTrash);
    case 'not':
      return false;
    case 'term': {
      if (node.field !== 'in' && node.field !== 'label' && node.field !== 'is') return false;
      const v = node.value.toLowerCase();
      return v === 'spam' || v === 'trash' || v === 'anywhere' || v === 'bin';
    }
  }
}

const LA = new Intl.DateTimeFormat('en-US', {
  timeZone: 'America/Los_Angeles',
  hourCycle: 'h23',
  year: 'numeric',
  month: '2-digit',
  day: '2-digit',
  hour: '2-digit',
  minute: '2-digit',
  second: '2-digit',
});

function laOffsetMs(instant: number): number {
  const parts = Object.fromEntries(LA.formatToParts(instant).map((p) => [p.type, p.value]));
  const wall = Date.UTC(
    Number(parts['year']),
    Number(parts['month']) - 1,
    Number(parts['day']),
    Number(parts['hour']),
    Number(parts['minute']),
    Number(parts['second']),
  );
  return wall - Math.floor(instant / 1000) * 1000;
}

/** Epoch ms for a query date: epoch seconds, or YYYY/MM/DD as midnight in Los Angeles. */
export function parseQueryDate(value: string): number | null {
  if (/^\d{9,}$/.test(value)) return Number(value) * 1000;
  const m = /^(\d{4})[/-](\d{1,2})[/-](\d{1,2})$/.exec(value);
  if (!m) return null;
  const midnightUtc = Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]));
  let guess = midnightUtc - laOffsetMs(midnightUtc + 12 * 3600_000);
  guess = midnightUtc - laOffsetMs(guess);
  return guess;
}

function relativeCutoff(value: string, now: number): number | null {
  const m = /^(\d+)([dmy])$/i.exec(value);
  if (!m) return null;
  const n = Number(m[1]);
  const unit = (m[2] as string).toLowerCase();
  if (unit === 'd') return now - n * 86_400_000;
  const d = new Date(now);
  if (unit === 'm') d.setUTCMonth(d.getUTCMonth() - n);
  else d.setUTCFullYear(d.getUTCFullYear() - n);
  return d.getTime();
}

function parseSize(value: string): number | null {
  const m = /^(\d+(?:\.\d+)?)([kmKM]?)$/.exec(value);
  if (!m) return null;
  const mult = (m[2] ?? '').toLowerCase() === 'k' ? 1024 : (m[2] ?? '').toLowerCase() === 'm' ? 1024 * 1024 : 1;
  return Number(m[1]) * mult;
}

const IN_ALIASES: Record<string, string> = {
  inbox: 'INBOX', sent: 'SENT', spam: 'SPAM', trash: 'TRASH', bin: 'TRASH', draft: 'DRAFT', drafts: 'DRAFT',
  starred: 'STARRED', important: 'IMPORTANT', unread: 'UNREAD', chat: 'CHAT', chats: 'CHAT',
  primary: 'CATEGORY_PERSONAL', personal: 'CATEGORY_PERSONAL', social: 'CATEGORY_SOCIAL',
  promotions: 'CATEGORY_PROMOTIONS', updates: 'CATEGORY_UPDATES', forums: 'CATEGORY_FORUMS',
};

function labelMatch(msg: Searchable, value: string, ctx: QueryContext): boolean {
  const v = value.toLowerCase();
  if (v === 'anywhere' || v === 'all') return true;
  if (v === 'read') return !msg.labelIds.includes('UNREAD');
  const system = IN_ALIASES[v];
  if (system) return msg.labelIds.includes(system);
  const id = ctx.resolveLabel(normalizeLabelName(value));
  return id !== null && msg.labelIds.includes(id);
}

function contains(haystack: string, needle: string): boolean {
  return haystack.includes(needle.toLowerCase());
}

function evalTerm(msg: Searchable, field: string | null, value: string, ctx: QueryContext): boolean {
  switch (field) {
    case 'in':
    case 'label':
    case 'is':
      return labelMatch(msg, value, ctx);
    case 'category':
      return msg.labelIds.includes(`CATEGORY_${value.toUpperCase() === 'PRIMARY' ? 'PERSONAL' : value.toUpperCase()}`);
    case 'from':
      return value.toLowerCase() === 'me' ? msg.labelIds.includes('SENT') : contains(msg.from, value);
    case 'to':
      return contains(msg.to, value);
    case 'cc':
      return contains(msg.cc, value);
    case 'bcc':
      return contains(msg.bcc, value);
    case 'subject':
      return contains(msg.subject, value);
    case 'deliveredto':
      return contains(msg.deliveredTo, value);
    case 'rfc822msgid': {
      const id = (msg.messageIdHeader ?? '').replace(/^<|>$/g, '').toLowerCase();
      return id !== '' && id === value.replace(/^<|>$/g, '').toLowerCase();
    }
    case 'after':
    case 'newer': {
      const t = parseQueryDate(value);
      return t !== null && msg.internalDate >= t;
    }
    case 'before':
    case 'older': {
      const t = parseQueryDate(value);
      return t !== null && msg.internalDate < t;
    }
    case 'newer_than': {
      const t = relativeCutoff(value, ctx.now);
      return t !== null && msg.internalDate >= t;
    }
    case 'older_than': {
      const t = relativeCutoff(value, ctx.now);
      return t !== null && msg.internalDate < t;
    }
    case 'has': {
      const v = value.toLowerCase();
      if (v === 'attachment') return msg.hasAttachment;
      if (v === 'userlabels') return msg.labelIds.some((l) => ctx.isUserLabel(l));
      if (v === 'nouserlabels') return !msg.labelIds.some((l) => ctx.isUserLabel(l));
      return false;
    }
    case 'filename': {
      const v = value.toLowerCase();
      return msg.filenames.some((f) => f.includes(v) || f.endsWith(`.${v}`));
    }
    case 'larger':
    case 'size': {
      const n = parseSize(value);
      return n !== null && msg.size > n;
    }
    case 'smaller': {
      const n = parseSize(value);
      return n !== null && msg.size < n;
    }
    default: {
      const v = value.toLowerCase();
      return (
        msg.subject.includes(v) ||
        msg.from.includes(v) ||
        msg.to.includes(v) ||
        msg.cc.includes(v) ||
        msg.filenames.some((f) => f.includes(v))
      );
    }
  }
}

export function matches(msg: Searchable, node: QueryNode, ctx: QueryContext): boolean {
  switch (node.type) {
    case 'and':
      return node.items.every((n) => matches(msg, n, ctx));
    case 'or':
      return node.items.length === 0 || node.items.some((n) => matches(msg, n, ctx));
    case 'not':
      return !matches(msg, node.item, ctx);
    case 'term':
      return evalTerm(msg, node.field, node.value, ctx);
  }
}
