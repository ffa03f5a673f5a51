// One mailbox: the message index, labels, threads and history.
//
// Messages loaded from an mbox file are kept as a small index entry (ids, labels, dates,
// the decoded headers queries need, where the bytes are in the file); their bytes are read
// from disk when a client asks for them. Inserted and imported messages keep their bytes in
// memory. Messages are ordered newest first (internalDate, then id), as messages.list
// answers; page tokens are positions in that order, so they stay valid while the mailbox
// changes.

import { open, type FileHandle } from 'node:fs/promises';
import { ApiError, invalidArgument, notFound } from './errors.js';
import {
  IMMUTABLE_LABELS,
  SYSTEM_LABELS,
  SYSTEM_LABEL_IDS,
  mapTakeoutLabel,
  normalizeLabelName,
  splitTakeoutLabels,
} from './labels.js';
import { parseFromLine, readMbox, readMessageBytes, type MboxEntry } from './mbox.js';
import {
  decodeBody,
  decodeHeaderValue,
  findPart,
  headerValue,
  headersJson,
  isAttachment,
  leaves,
  parseMime,
  payloadJson,
  snippetOf,
  toBase64Url,
  type MimeNode,
} from './mime.js';
import { matches, mentionsSpamOrTrash, parseQuery, type QueryContext, type Searchable } from './query.js';
import { hash32 } from './random.js';

export interface MessageRecord extends Searchable {
  id: string;
  threadId: string;
  labelIds: string[];
  historyId: number;
  /** Where the bytes are in the mbox file; raw holds them instead for inserted messages. */
  offset: number;
  fileLength: number;
  escaped: boolean;
  raw: Buffer | null;
  /** Until when (the mailbox's clock, ms) `q=` searches do not see it yet: Gmail's search index lags a new message. */
  searchableAt?: number;
}

export type MessageFormat = 'minimal' | 'metadata' | 'full' | 'raw';

interface HistoryRecord {
  id: number;
  messageId: string;
  threadId: string;
  /** The message's labels after the change. */
  labelIds: string[];
  added?: true;
  deleted?: true;
  labelsAdded?: string[];
  labelsRemoved?: string[];
}

export type HistoryType = 'messageAdded' | 'messageDeleted' | 'labelAdded' | 'labelRemoved';

export const HISTORY_BASE = 100_000;
const MAX_U64 = (1n << 64n) - 1n;
const MIN_ID_TIME = 1_100_000_000_000; // ms; (t << 20) has 16 hex digits from here on

/** Gmail ids are lower-case hex numbers without leading zeros (16 digits for mail since 2005). */
function hexId(n: bigint): string {
  return n.toString(16);
}

/** Numeric order of two hex ids. */
function compareIds(a: string, b: string): number {
  if (a.length !== b.length) return a.length - b.length;
  return a < b ? -1 : a > b ? 1 : 0;
}

function compareOrder(a: { internalDate: number; id: string }, b: { internalDate: number; id: string }): number {
  // Newest first; ties by id, higher first.
  if (a.internalDate !== b.internalDate) return b.internalDate - a.internalDate;
  return -compareIds(a.id, b.id);
}

const ID_PATTERN = /^[0-9a-f]{1,16}$/;

function checkId(id: string): string {
  if (!ID_PATTERN.test(id)) throw invalidArgument('Invalid id value');
  return id;
}

function decimalToHexId(text: string): string | null {
  if (!/^\d{1,20}$/.test(text)) return null;
  const n = BigInt(text);
  return n > 0n && n <= MAX_U64 ? hexId(n) : null;
}

function parseDateHeader(value: string | undefined): number | null {
  if (!value) return null;
  const t = Date.parse(value.replace(/\s*\([^)]*\)\s*$/, ''));
  return Number.isFinite(t) ? t : null;
}

function messageIdsIn(value: string | undefined): string[] {
  return value ? (value.match(/<[^<>\s]+>/g) ?? []) : [];
}

interface PageCursor {
  d: number;
  i: string;
}

function encodeCursor(c: PageCursor): string {
  return toBase64Url(Buffer.from(`${c.d}.${c.i}`, 'latin1')).replace(/=+$/, '');
}

function decodeCursor(token: string): PageCursor {
  const text = Buffer.from(token, 'base64url').toString('latin1');
  const m = /^(-?\d+)\.([0-9a-f]{1,16})$/.exec(text);
  if (!m) throw invalidArgument('Invalid pageToken');
  return { d: Number(m[1]), i: m[2] as string };
}

export interface ListOptions {
  labelIds?: string[];
  q?: string;
  includeSpamTrash?: boolean;
  pageToken?: string;
  maxResults: number;
}

export class Mailbox {
  readonly messages = new Map<string, MessageRecord>();
  private sorted: MessageRecord[] = [];
  private readonly threads = new Map<string, Set<string>>();
  private readonly rfcIds = new Map<string, string>(); // Message-ID header → thread id
  private readonly userLabels = new Map<string, string>(); // id → name
  private readonly labelByName = new Map<string, string>(); // normalized name → id
  private nextLabel = 1;
  historyId = HISTORY_BASE;
  private history: HistoryRecord[] = [];
  private historyHead = 0;
  private historyFloor = HISTORY_BASE;
  private version = 0;
  private readonly countCache = new Map<string, { version: number; count: number }>();
  private fh: FileHandle | null = null;
  private insertSeq = 0;
  private lastDate = 0;
  /**
   * How long a message inserted or imported stays out of `q=` searches (ms; Infinity: until
   * indexSearches). Listings by label, messages.get and history see it at once, as at Gmail,
   * whose search index lags new mail. 0 (the default): searches see it at once.
   */
  searchLagMs = 0;
  /** Messages searches do not see yet. */
  private readonly unindexed = new Set<MessageRecord>();
  /** Told of every recorded change (watch.ts publishes notifications from it): the history id after it and the labels involved. */
  onChange: ((historyId: number, labelIds: string[]) => void) | undefined;

  constructor(
    readonly address: string,
    private readonly historyRetention = Number.POSITIVE_INFINITY,
    private readonly now: () => number = () => Date.now(),
  ) {}

  // ---- loading -------------------------------------------------------------------------

  static async load(
    path: string,
    address: string,
    historyRetention?: number,
    now?: () => number,
  ): Promise<Mailbox> {
    const mb = new Mailbox(address, historyRetention, now);
    mb.fh = await open(path, 'r');
    try {
      for await (const entry of readMbox(path)) mb.addLoaded(entry);
    } catch (err) {
      await mb.close();
      throw err;
    }
    mb.sorted.sort(compareOrder);
    return mb;
  }

  async close(): Promise<void> {
    const fh = this.fh;
    this.fh = null;
    await fh?.close();
  }

  private uniqueId(candidate: string): string {
    let id = candidate;
    while (this.messages.has(id)) id = hexId((BigInt(`0x${id}`) + 1n) & MAX_U64);
    return id;
  }

  private labelIdForName(name: string): string {
    const key = normalizeLabelName(name);
    let id = this.labelByName.get(key);
    if (!id) {
      id = `Label_${this.nextLabel++}`;
      this.labelByName.set(key, id);
      this.userLabels.set(id, name);
    }
    return id;
  }

  private searchFields(root: MimeNode): Omit<Searchable, 'labelIds' | 'internalDate' | 'size'> {
    const h = (name: string): string => {
      const values = root.headers.filter((x) => x.name.toLowerCase() === name);
      return values.map((x) => decodeHeaderValue(name, x.value)).join(', ').toLowerCase();
    };
    const filenames: string[] = [];
    let hasAttachment = false;
    for (const leaf of leaves(root)) {
      if (isAttachment(leaf)) {
        hasAttachment = true;
        if (leaf.filename) filenames.push(leaf.filename.toLowerCase());
      }
    }
    const mid = headerValue(root.headers, 'message-id');
    return {
      from: h('from'),
      to: h('to'),
      cc: h('cc'),
      bcc: h('bcc'),
      subject: h('subject'),
      deliveredTo: h('delivered-to'),
      messageIdHeader: mid === undefined ? null : mid,
      hasAttachment,
      filenames,
    };
  }

  private threadFor(root: MimeNode, ownId: string, requested?: string): string {
    if (requested && this.threads.has(requested)) return requested;
    const refs = [
      ...messageIdsIn(headerValue(root.headers, 'in-reply-to')),
      ...messageIdsIn(headerValue(root.headers, 'references')).reverse(),
    ];
    for (const ref of refs) {
      const t = this.rfcIds.get(ref);
      if (t) return t;
    }
    return ownId;
  }

  private link(rec: MessageRecord): void {
    this.messages.set(rec.id, rec);
    let t = this.threads.get(rec.threadId);
    if (!t) this.threads.set(rec.threadId, (t = new Set()));
    t.add(rec.id);
    const mid = rec.messageIdHeader?.match(/<[^<>\s]+>/)?.[0];
    if (mid && !this.rfcIds.has(mid)) this.rfcIds.set(mid, rec.threadId);
  }

  private addLoaded(entry: MboxEntry): void {
    const root = parseMime(entry.raw);
    const from = parseFromLine(entry.fromLine);
    const internalDate = from.date ?? parseDateHeader(headerValue(root.headers, 'date')) ?? this.lastDate;
    this.lastDate = internalDate;
    const fromLineId = decimalToHexId(from.sender.replace(/@xxx$/i, ''));
    // Like Gmail's: the receipt time in ms above 20 more bits; never fewer than 16 hex digits.
    const derived = hexId(
      ((BigInt(Math.max(MIN_ID_TIME, internalDate)) << 20n) | BigInt(hash32(`${this.address}#${entry.index}`) & 0xfffff)) &
        MAX_U64,
    );
    const id = this.uniqueId(fromLineId ?? derived);
    const thrid = decimalToHexId((headerValue(root.headers, 'x-gm-thrid') ?? '').trim());
    const labelIds = new Set<string>();
    const gl = headerValue(root.headers, 'x-gmail-labels');
    if (gl !== undefined) {
      for (const name of splitTakeoutLabels(gl)) {
        const mapped = mapTakeoutLabel(name);
        if (mapped.kind === 'system') labelIds.add(mapped.id);
        else if (mapped.kind === 'user') labelIds.add(this.labelIdForName(mapped.name));
      }
    }
    const rec: MessageRecord = {
      id,
      threadId: thrid ?? this.threadFor(root, id),
      labelIds: [...labelIds],
      historyId: ++this.historyId,
      internalDate,
      size: entry.raw.length,
      offset: entry.offset,
      fileLength: entry.fileLength,
      escaped: entry.escaped,
      raw: null,
      ...this.searchFields(root),
    };
    this.link(rec);
    this.sorted.push(rec);
  }

  // ---- reading -------------------------------------------------------------------------

  get(id: string): MessageRecord {
    const rec = this.messages.get(checkId(id));
    if (!rec) throw notFound();
    return rec;
  }

  async rawBytes(rec: MessageRecord): Promise<Buffer> {
    if (rec.raw) return rec.raw;
    if (!this.fh) throw new ApiError(503, 'The service is currently unavailable.', 'backendError');
    return readMessageBytes(this.fh, rec);
  }

  private isUserLabel = (id: string): boolean => this.userLabels.has(id);

  private queryContext(): QueryContext {
    return {
      resolveLabel: (name) => {
        const upper = name.toUpperCase().replace(/-/g, '_');
        if (SYSTEM_LABEL_IDS.has(upper)) return upper;
        return this.labelByName.get(name) ?? null;
      },
      isUserLabel: this.isUserLabel,
      now: this.now(),
    };
  }

  /** Messages searches do not see yet, once those whose lag has passed are indexed. */
  unindexedCount(): number {
    this.catchUpIndex();
    return this.unindexed.size;
  }

  /** Makes every message visible to searches now, as the index catching up. */
  indexSearches(): void {
    for (const rec of this.unindexed) delete rec.searchableAt;
    if (this.unindexed.size > 0) this.version++;
    this.unindexed.clear();
  }

  private catchUpIndex(): void {
    if (this.unindexed.size === 0) return;
    const now = this.now();
    for (const rec of this.unindexed) {
      if ((rec.searchableAt ?? 0) <= now) {
        delete rec.searchableAt;
        this.unindexed.delete(rec);
        this.version++;
      }
    }
  }

  private filterFor(opts: Omit<ListOptions, 'pageToken' | 'maxResults'>): (m: MessageRecord) => boolean {
    const labels = opts.labelIds ?? [];
    const query = opts.q && opts.q.trim() !== '' ? parseQuery(opts.q) : null;
    if (query !== null) this.catchUpIndex();
    const lagging = query !== null && this.unindexed.size > 0;
    const ctx = this.queryContext();
    const showAll =
      opts.includeSpamTrash === true ||
      labels.includes('SPAM') ||
      labels.includes('TRASH') ||
      (query !== null && mentionsSpamOrTrash(query));
    return (m) => {
      if (!showAll && (m.labelIds.includes('SPAM') || m.labelIds.includes('TRASH'))) return false;
      if (lagging && this.unindexed.has(m)) return false;
      for (const l of labels) if (!m.labelIds.includes(l)) return false;
      return query === null || matches(m, query, ctx);
    };
  }

  private countMatching(key: string, filter: (m: MessageRecord) => boolean): number {
    const cached = this.countCache.get(key);
    if (cached && cached.version === this.version) return cached.count;
    let count = 0;
    for (const m of this.sorted) if (filter(m)) count++;
    if (this.countCache.size > 200) this.countCache.clear();
    this.countCache.set(key, { version: this.version, count });
    return count;
  }

  /** Index of the first message that comes after the cursor in list order. */
  private indexAfter(c: PageCursor): number {
    let lo = 0;
    let hi = this.sorted.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (compareOrder(this.sorted[mid] as MessageRecord, { internalDate: c.d, id: c.i }) <= 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  list(opts: ListOptions): { messages?: Array<{ id: string; threadId: string }>; nextPageToken?: string; resultSizeEstimate: number } {
    const filter = this.filterFor(opts);
    const start = opts.pageToken ? this.indexAfter(decodeCursor(opts.pageToken)) : 0;
    const page: MessageRecord[] = [];
    let i = start;
    for (; i < this.sorted.length && page.length < opts.maxResults; i++) {
      const m = this.sorted[i] as MessageRecord;
      if (filter(m)) page.push(m);
    }
    let more = false;
    for (; i < this.sorted.length; i++) {
      if (filter(this.sorted[i] as MessageRecord)) {
        more = true;
        break;
      }
    }
    const key = JSON.stringify([opts.labelIds ?? [], opts.q ?? '', opts.includeSpamTrash === true]);
    const out: { messages?: Array<{ id: string; threadId: string }>; nextPageToken?: string; resultSizeEstimate: number } = {
      resultSizeEstimate: this.countMatching(key, filter),
    };
    if (page.length > 0) out.messages = page.map((m) => ({ id: m.id, threadId: m.threadId }));
    const last = page[page.length - 1];
    if (more && last) out.nextPageToken = encodeCursor({ d: last.internalDate, i: last.id });
    return out;
  }

  async listThreads(
    opts: ListOptions,
  ): Promise<{ threads?: Array<{ id: string; snippet: string; historyId: string }>; nextPageToken?: string; resultSizeEstimate: number }> {
    const filter = this.filterFor(opts);
    const seen = new Set<string>();
    const order: string[] = [];
    for (const m of this.sorted) {
      if (!seen.has(m.threadId) && filter(m)) {
        seen.add(m.threadId);
        order.push(m.threadId);
      }
    }
    let start = 0;
    if (opts.pageToken) {
      const n = Number(Buffer.from(opts.pageToken, 'base64url').toString('latin1').replace(/^t/, ''));
      if (!Number.isInteger(n) || n < 0) throw invalidArgument('Invalid pageToken');
      start = n;
    }
    const slice = order.slice(start, start + opts.maxResults);
    const out: { threads?: Array<{ id: string; snippet: string; historyId: string }>; nextPageToken?: string; resultSizeEstimate: number } = {
      resultSizeEstimate: order.length,
    };
    if (slice.length > 0) {
      out.threads = [];
      for (const id of slice) {
        const msgs = this.threadMessages(id);
        const latest = msgs[msgs.length - 1] as MessageRecord;
        const raw = await this.rawBytes(latest);
        out.threads.push({ id, snippet: snippetOf(raw, parseMime(raw)), historyId: String(this.threadHistoryId(id)) });
      }
    }
    if (start + opts.maxResults < order.length) {
      out.nextPageToken = toBase64Url(Buffer.from(`t${start + opts.maxResults}`, 'latin1')).replace(/=+$/, '');
    }
    return out;
  }

  private threadHistoryId(threadId: string): number {
    let h = 0;
    for (const id of this.threads.get(threadId) ?? []) h = Math.max(h, this.messages.get(id)?.historyId ?? 0);
    return h;
  }

  threadMessages(threadId: string): MessageRecord[] {
    const ids = this.threads.get(checkId(threadId));
    if (!ids || ids.size === 0) throw notFound();
    return [...ids]
      .map((id) => this.messages.get(id) as MessageRecord)
      .sort((a, b) => a.internalDate - b.internalDate || compareIds(a.id, b.id));
  }

  async messageJson(rec: MessageRecord, format: MessageFormat, metadataHeaders: string[] = []): Promise<Record<string, unknown>> {
    const raw = await this.rawBytes(rec);
    const root = parseMime(raw);
    const out: Record<string, unknown> = { id: rec.id, threadId: rec.threadId };
    if (rec.labelIds.length > 0) out['labelIds'] = [...rec.labelIds];
    out['snippet'] = snippetOf(raw, root);
    if (format === 'metadata') {
      const wanted = new Set(metadataHeaders.map((h) => h.toLowerCase()));
      const headers = headersJson(
        wanted.size === 0 ? root.headers : root.headers.filter((h) => wanted.has(h.name.toLowerCase())),
      );
      const payload: Record<string, unknown> = { mimeType: root.mimeType };
      if (headers.length > 0) payload['headers'] = headers;
      out['payload'] = payload;
    } else if (format === 'full') {
      out['payload'] = payloadJson(raw, root, rec.id);
    }
    out['sizeEstimate'] = rec.size;
    if (format === 'raw') out['raw'] = toBase64Url(raw);
    out['historyId'] = String(rec.historyId);
    out['internalDate'] = String(rec.internalDate);
    return out;
  }

  async attachment(rec: MessageRecord, partId: string): Promise<{ size: number; data: string }> {
    const raw = await this.rawBytes(rec);
    const node = findPart(parseMime(raw), partId);
    if (!node || node.parts !== null) throw notFound();
    const data = decodeBody(raw, node);
    return { size: data.length, data: toBase64Url(data) };
  }

  async threadJson(threadId: string, format: MessageFormat, metadataHeaders: string[]): Promise<Record<string, unknown>> {
    const msgs = this.threadMessages(threadId);
    const messages = [];
    for (const m of msgs) messages.push(await this.messageJson(m, format === 'raw' ? 'full' : format, metadataHeaders));
    const last = messages[messages.length - 1];
    return {
      id: msgs[0]?.threadId,
      snippet: last?.['snippet'] ?? '',
      historyId: String(Math.max(...msgs.map((m) => m.historyId))),
      messages,
    };
  }

  // ---- labels --------------------------------------------------------------------------

  labelsJson(): Array<Record<string, unknown>> {
    const system = SYSTEM_LABELS.map((l) => ({
      id: l.id,
      name: l.id,
      ...(l.messageListVisibility ? { messageListVisibility: l.messageListVisibility } : {}),
      ...(l.labelListVisibility ? { labelListVisibility: l.labelListVisibility } : {}),
      type: 'system',
    }));
    const user = [...this.userLabels].map(([id, name]) => ({
      id,
      name,
      messageListVisibility: 'show',
      labelListVisibility: 'labelShow',
      type: 'user',
    }));
    return [...system, ...user];
  }

  labelJson(id: string): Record<string, unknown> {
    const base = this.labelsJson().find((l) => l['id'] === id);
    if (!base) throw notFound();
    let messagesTotal = 0;
    let messagesUnread = 0;
    const threads = new Set<string>();
    const unreadThreads = new Set<string>();
    for (const m of this.sorted) {
      if (!m.labelIds.includes(id)) continue;
      messagesTotal++;
      threads.add(m.threadId);
      if (m.labelIds.includes('UNREAD')) {
        messagesUnread++;
        unreadThreads.add(m.threadId);
      }
    }
    return { ...base, messagesTotal, messagesUnread, threadsTotal: threads.size, threadsUnread: unreadThreads.size };
  }

  labelIdSet(): Set<string> {
    return new Set([...SYSTEM_LABEL_IDS, ...this.userLabels.keys()]);
  }

  profile(): Record<string, unknown> {
    return {
      emailAddress: this.address,
      messagesTotal: this.messages.size,
      threadsTotal: this.threads.size,
      historyId: String(this.historyId),
    };
  }

  // ---- mutations -----------------------------------------------------------------------

  private validateLabels(ids: readonly string[], forModify: boolean): void {
    const known = this.labelIdSet();
    for (const id of ids) {
      if (!known.has(id) || (forModify && IMMUTABLE_LABELS.has(id))) throw invalidArgument(`Invalid label: ${id}`);
    }
  }

  private record(rec: MessageRecord, change: Omit<HistoryRecord, 'id' | 'messageId' | 'threadId' | 'labelIds'>): void {
    const id = ++this.historyId;
    rec.historyId = id;
    this.version++;
    this.history.push({ id, messageId: rec.id, threadId: rec.threadId, labelIds: [...rec.labelIds], ...change });
    this.onChange?.(id, [...new Set([...rec.labelIds, ...(change.labelsAdded ?? []), ...(change.labelsRemoved ?? [])])]);
    while (this.history.length - this.historyHead > this.historyRetention) {
      this.historyFloor = (this.history[this.historyHead] as HistoryRecord).id;
      this.historyHead++;
    }
    if (this.historyHead > 4096) {
      this.history = this.history.slice(this.historyHead);
      this.historyHead = 0;
    }
  }

  addMessage(
    raw: Buffer,
    opts: { labelIds?: string[]; threadId?: string; internalDateSource: 'receivedTime' | 'dateHeader' },
  ): MessageRecord {
    const labelIds = [...new Set(opts.labelIds ?? [])];
    this.validateLabels(labelIds, false);
    const root = parseMime(raw);
    const now = this.now();
    const internalDate =
      opts.internalDateSource === 'dateHeader' ? (parseDateHeader(headerValue(root.headers, 'date')) ?? now) : now;
    const seq = BigInt(this.insertSeq++ & 0xfffff);
    const id = this.uniqueId(hexId(((BigInt(Math.max(0, now)) << 20n) | seq) & MAX_U64));
    const rec: MessageRecord = {
      id,
      threadId: this.threadFor(root, id, opts.threadId),
      labelIds,
      historyId: 0,
      internalDate,
      size: raw.length,
      offset: -1,
      fileLength: 0,
      escaped: false,
      raw,
      ...this.searchFields(root),
    };
    if (this.searchLagMs > 0) {
      rec.searchableAt = now + this.searchLagMs;
      this.unindexed.add(rec);
    }
    this.link(rec);
    this.sorted.splice(this.indexAfter({ d: rec.internalDate, i: rec.id }), 0, rec);
    this.record(rec, { added: true });
    return rec;
  }

  deleteMessage(id: string): void {
    const rec = this.get(id);
    this.messages.delete(rec.id);
    const pos = this.indexAfter({ d: rec.internalDate, i: rec.id }) - 1;
    if (this.sorted[pos] === rec) this.sorted.splice(pos, 1);
    else this.sorted = this.sorted.filter((m) => m !== rec);
    this.unindexed.delete(rec);
    const t = this.threads.get(rec.threadId);
    t?.delete(rec.id);
    if (t && t.size === 0) this.threads.delete(rec.threadId);
    this.record(rec, { deleted: true });
  }

  modify(id: string, add: readonly string[], remove: readonly string[]): MessageRecord {
    const rec = this.get(id);
    this.validateLabels([...add, ...remove], true);
    this.applyLabels(rec, add, remove);
    return rec;
  }

  /** Checks every label first, so that a bad request changes nothing. */
  batchModify(ids: readonly string[], add: readonly string[], remove: readonly string[]): void {
    this.validateLabels([...add, ...remove], true);
    for (const id of ids) checkId(id);
    for (const id of ids) {
      const rec = this.messages.get(id);
      if (rec) this.applyLabels(rec, add, remove); // unknown ids are skipped, as Gmail does
    }
  }

  batchDelete(ids: readonly string[]): void {
    for (const id of ids) checkId(id);
    for (const id of ids) if (this.messages.has(id)) this.deleteMessage(id);
  }

  applyLabels(rec: MessageRecord, add: readonly string[], remove: readonly string[]): void {
    const before = new Set(rec.labelIds);
    const after = new Set(before);
    for (const l of remove) after.delete(l);
    for (const l of add) after.add(l);
    const added = [...after].filter((l) => !before.has(l));
    const removed = [...before].filter((l) => !after.has(l));
    if (added.length === 0 && removed.length === 0) return;
    rec.labelIds = [...after];
    this.record(rec, {
      ...(added.length > 0 ? { labelsAdded: added } : {}),
      ...(removed.length > 0 ? { labelsRemoved: removed } : {}),
    });
  }

  trash(id: string): MessageRecord {
    const rec = this.get(id);
    this.applyLabels(rec, ['TRASH'], ['SPAM']);
    return rec;
  }

  untrash(id: string): MessageRecord {
    const rec = this.get(id);
    this.applyLabels(rec, [], ['TRASH']);
    return rec;
  }

  // ---- history -------------------------------------------------------------------------

  historyList(opts: {
    startHistoryId: number;
    historyTypes: HistoryType[];
    labelId?: string;
    maxResults: number;
    pageToken?: string;
  }): Record<string, unknown> {
    if (opts.startHistoryId < this.historyFloor) throw notFound();
    let after = opts.startHistoryId;
    if (opts.pageToken) {
      const n = Number(Buffer.from(opts.pageToken, 'base64url').toString('latin1').replace(/^h/, ''));
      if (!Number.isInteger(n) || n < after) throw invalidArgument('Invalid pageToken');
      after = n;
    }
    const types = new Set<HistoryType>(
      opts.historyTypes.length > 0 ? opts.historyTypes : ['messageAdded', 'messageDeleted', 'labelAdded', 'labelRemoved'],
    );
    // Binary search for the first record after `after`.
    let lo = this.historyHead;
    let hi = this.history.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((this.history[mid] as HistoryRecord).id <= after) lo = mid + 1;
      else hi = mid;
    }
    const out: Array<Record<string, unknown>> = [];
    let i = lo;
    let lastId = after;
    for (; i < this.history.length && out.length < opts.maxResults; i++) {
      const r = this.history[i] as HistoryRecord;
      lastId = r.id;
      const json = this.historyJson(r, types, opts.labelId);
      if (json) out.push(json);
    }
    const result: Record<string, unknown> = {};
    if (out.length > 0) result['history'] = out;
    if (i < this.history.length) {
      result['nextPageToken'] = toBase64Url(Buffer.from(`h${lastId}`, 'latin1')).replace(/=+$/, '');
    }
    result['historyId'] = String(this.historyId);
    return result;
  }

  private historyJson(r: HistoryRecord, types: Set<HistoryType>, labelId?: string): Record<string, unknown> | null {
    if (labelId) {
      const touched = r.labelIds.includes(labelId) || r.labelsAdded?.includes(labelId) || r.labelsRemoved?.includes(labelId);
      if (!touched) return null;
    }
    const message = { id: r.messageId, threadId: r.threadId, ...(r.labelIds.length > 0 ? { labelIds: r.labelIds } : {}) };
    const json: Record<string, unknown> = { id: String(r.id), messages: [{ id: r.messageId, threadId: r.threadId }] };
    let any = false;
    if (r.added && types.has('messageAdded')) {
      json['messagesAdded'] = [{ message }];
      any = true;
    }
    if (r.deleted && types.has('messageDeleted')) {
      json['messagesDeleted'] = [{ message }];
      any = true;
    }
    if (r.labelsAdded && types.has('labelAdded')) {
      json['labelsAdded'] = [{ message, labelIds: r.labelsAdded }];
      any = true;
    }
    if (r.labelsRemoved && types.has('labelRemoved')) {
      json['labelsRemoved'] = [{ message, labelIds: r.labelsRemoved }];
      any = true;
    }
    return any ? json : null;
  }
}
