/**
 * Insert: adds messages to mailboxes of one task section (`ConfigSection`, `InsertXML`; see
 * aci/insert-xml.ts), each with `messages.import` (as received mail: scanned and classified) or,
 * with `INSERT_METHOD=insert`, `messages.insert` (as is), with its `LABEL_IDS`. The message's bytes
 * are in the request (base64) or in Cloud Storage (`gs://bucket/object`, read with the worker's
 * identity; larger messages must come that way, the request being at most 1 MiB). Results:
 * `<tasks><success insert_id="REF">IDENTIFIER</success><failed insert_id="REF" message="why"/>`,
 * the identifier being the new message's, as FetchAction=Identifiers lists it. Counters:
 * `inserted`, `existing`, `errors`.
 *
 * At most once: Gmail's import is not idempotent, so an Insert imports each message at most once,
 * whatever fails and whoever redelivers.
 *
 * - Each message has a key (aci/insert-xml.ts messageKey): its Message-ID when it has a usable one,
 *   else a hash of its bytes (a missing or malformed Message-ID is no fault; the bytes are never
 *   changed). A message with a usable Message-ID is looked up (`rfc822msgid:`, Trash and Spam
 *   included) before it is imported: one already in the mailbox is not imported again, and the
 *   item succeeds with that message's identifier, counted `existing`.
 * - Before importing a batch, the unit reads the mailbox's history id (`getProfile`) and commits a
 *   pending result batch (which GetStatus does not show) naming each item it is about to import,
 *   its key and that history id. Whatever may have landed since is then found in the mailbox's
 *   history (`history.list`, `messageAdded`, from that id), each added message compared by key
 *   (its Message-ID header, `messages.get` metadata; or the hash of its bytes, `messages.get`
 *   raw). History is not search-indexed, so this does not depend on how soon Gmail's search sees a
 *   new message. It is done before every retry of an import that got no answer, and by a delivery
 *   that resumes a pending batch: an item found there succeeds, counted `inserted`, and is not
 *   imported again. A later delivery adds to the pending batch and drops nothing from it.
 * - Only when Gmail no longer has that history (404) is the look-up by Message-ID the fallback; an
 *   item with no usable Message-ID then fails ("cannot tell whether ... was imported") rather than
 *   risk a second copy.
 * - Once an item's failure ends the batch (a transient failure, the run's end), no other item of
 *   the batch starts and no call makes another attempt; the calls in flight are awaited, so none
 *   outlives the run (and its lease).
 *
 * An item is one Gmail call, so it is never half-applied; an item whose mailbox is not one of the
 * task's, whose content is not a message, whose source cannot be read, or that Gmail refuses fails
 * by itself.
 *
 * Writes must be on for the task (`"writes": true`); scopes gmail.insert and gmail.readonly (for
 * the look-ups, the history and the mailbox's history id).
 */
import { Readable } from 'node:stream';
import pLimit from 'p-limit';
import { badParameter, missingParameter } from '../aci/errors.js';
import { encodeIdentifier } from '../aci/identifiers.js';
import { InsertXmlError, keyOf, messageKey, parseInsertXml, usableMessageId, type InsertItem } from '../aci/insert-xml.js';
import type { AciParams } from '../aci/request.js';
import type { Config } from '../config.js';
import type { GmailMethod } from '../gmail/caller.js';
import { PermanentGmailError, classify } from '../gmail/errors.js';
import { RunAborted } from '../gmail/pacing.js';
import { ResultStore, type ResultEntry } from '../store/results.js';
import { belongsTo } from './shared/named.js';
import type { FetchActionSpec, FetchParams, UnitContext, UnitOutcome } from './spec.js';
import { SCOPES, failedEntry, gmailItemFailure, requireWrites, runItems, type ItemOutcome } from './shared/writes.js';

const INSERT_SCOPES = [SCOPES.insert, SCOPES.readonly];
/**
 * The largest InsertXML: the action record keeps it twice (as parsed, and as sent for
 * GetActionParameters), within Firestore's 1 MiB per document. Larger messages go by gs://.
 */
export const MAX_INSERT_XML_BYTES = 450 * 1024;
/** The largest message read from Cloud Storage. */
export const MAX_MESSAGE_BYTES = 35 * 1024 * 1024;
/** Items per committed batch, and imports at once (each may hold a message of up to 35 MB). */
const BATCH = 10;
const IMPORTS = 2;
/** Added messages examined at once when looking for what landed. */
const EXAMINE = 5;

/** An item as kept on the action (the message's bytes in base64). */
type StoredItem = Omit<InsertItem, 'source'> & { source: { kind: 'content'; b64: string } | { kind: 'gs'; bucket: string; object: string } };

function sectionOf(p: AciParams, config: Config): string {
  const given = ['ConfigSection', 'TaskSections'].filter((n) => p.has(n));
  const name = given[0] ?? 'ConfigSection';
  const raw = (p.get(name) ?? '').trim();
  if (raw === '') throw missingParameter('ConfigSection', `the task section whose mailboxes the messages go to: ${Object.keys(config.connector.tasks).join(', ')}`);
  const task = Object.keys(config.connector.tasks).find((t) => t.toLowerCase() === raw.toLowerCase());
  if (!task || raw.includes(',')) throw badParameter(name, raw, `one configured task: ${Object.keys(config.connector.tasks).join(', ')}`);
  return task;
}

function parse(p: AciParams, config: Config): FetchParams {
  const task = sectionOf(p, config);
  const xml = p.get('InsertXML');
  if (xml === undefined || xml.trim() === '') throw missingParameter('InsertXML', '<insertXML><insert>...</insert></insertXML>');
  if (Buffer.byteLength(xml) > MAX_INSERT_XML_BYTES) {
    throw badParameter('InsertXML', `${Buffer.byteLength(xml)} bytes`, `at most ${MAX_INSERT_XML_BYTES} bytes: give larger messages as gs://bucket/object (<file><type>file</type><path>gs://...</path></file>)`);
  }
  let items: InsertItem[];
  try {
    items = parseInsertXml(xml);
  } catch (e) {
    if (e instanceof InsertXmlError) throw badParameter('InsertXML', xml.slice(0, 80), `insert items as the contract describes them: ${e.message}`);
    throw e;
  }
  // Two items of one message for one mailbox: by its Message-ID, or by its bytes when it has no usable one.
  const seen = new Map<string, string>();
  for (const i of items) {
    if (i.source.kind !== 'content' || i.fault !== undefined) continue;
    const key = `${i.user} ${messageKey(i.source.raw, i.messageId)}`;
    const other = seen.get(key);
    const same = i.messageId === undefined ? 'the same bytes, without a usable Message-ID' : `Message-ID ${i.messageId}`;
    if (other !== undefined) throw badParameter('InsertXML', i.reference, `items with different messages: ${i.reference} and ${other} are the same message (${same}) for ${i.user}`);
    seen.set(key, i.reference);
  }
  requireWrites(config, [task], 'Insert', INSERT_SCOPES);
  const stored: StoredItem[] = items.map((i) => ({ ...i, source: i.source.kind === 'content' ? { kind: 'content', b64: i.source.raw.toString('base64') } : i.source }));
  return { task, items: JSON.stringify(stored) };
}

function namedMailboxes(params: FetchParams): Record<string, string[]> {
  const items = JSON.parse(String(params['items'])) as StoredItem[];
  return { [String(params['task'])]: [...new Set(items.map((i) => i.user))].sort() };
}

/** Reads a gs:// source: its first bytes only (for the Message-ID), or all of it. */
async function readSource(ctx: UnitContext, item: StoredItem, head: boolean): Promise<Buffer> {
  if (item.source.kind === 'content') return Buffer.from(item.source.b64, 'base64');
  const { bucket, object } = item.source;
  if (!ctx.storage) throw new Error('Insert runs in the worker only, which has Cloud Storage');
  const file = ctx.storage.bucket(bucket).file(object);
  const where = `gs://${bucket}/${object}`;
  try {
    const [meta] = await file.getMetadata();
    const size = Number(meta.size ?? 0);
    if (size === 0) throw new SourceError(`${where} is empty`);
    if (size > MAX_MESSAGE_BYTES) throw new SourceError(`${where} is ${size} bytes: Insert reads at most ${MAX_MESSAGE_BYTES}`);
    const [bytes] = head ? await file.download({ start: 0, end: Math.min(size, 256 * 1024) - 1 }) : await file.download();
    return bytes;
  } catch (e) {
    if (e instanceof SourceError) throw e;
    const x = e as { code?: unknown; message?: unknown };
    throw new SourceError(`${where} cannot be read: ${typeof x.code === 'number' ? `${x.code} ` : ''}${String(x.message ?? e)}`);
  }
}

class SourceError extends Error {
  override readonly name = 'SourceError';
}

/** A message's key (see messageKey) and its usable Message-ID, if it has one. */
interface Keyed {
  key: string;
  messageId: string | undefined;
}

/** The key of an item's message: from its first bytes, or from all of them when it has no usable Message-ID. */
async function keyOfItem(ctx: UnitContext, item: StoredItem): Promise<Keyed | { error: string }> {
  const head = keyOf(await readSource(ctx, item, true));
  if ('error' in head || head.messageId !== undefined || item.source.kind === 'content') return head;
  return keyOf(await readSource(ctx, item, false));
}

/** How one Gmail call of a look-up is made: paced and retried by the unit's caller, or once, inside an attempt of another call. */
type Call = <T>(method: GmailMethod, what: string, fn: (o: { signal: AbortSignal }) => Promise<T>) => Promise<T>;

/** Through the unit's caller; once `stop` fires, no attempt starts. */
function viaCaller(ctx: UnitContext, stop: AbortSignal): Call {
  return (method, what, fn) =>
    ctx.caller.call(method, what, (o) => {
      if (stop.aborted) throw new RunAborted();
      return fn(o);
    });
}

/** Once, with `signal`: inside an attempt of the caller's own call, which retries it. */
function direct(signal: AbortSignal): Call {
  return (_method, what, fn) =>
    fn({ signal }).catch((e: unknown) => {
      throw classify(e, what);
    });
}

/** The ids of the mailbox's messages with this Message-ID, Trash and Spam included (Gmail's search). */
async function findByMessageId(ctx: UnitContext, messageId: string, call: Call): Promise<string[]> {
  const q = `rfc822msgid:${messageId.replace(/^<|>$/g, '')}`;
  const res = await call('messages.list', `searching ${ctx.user} for ${messageId}`, (o) =>
    ctx.gmail.users.messages.list({ userId: ctx.user, q, includeSpamTrash: true, maxResults: 10 }, o),
  );
  return (res.data.messages ?? []).map((m) => m.id ?? '').filter((id) => id !== '');
}

function identifierOf(ctx: UnitContext, messageId: string): string {
  return encodeIdentifier({ task: ctx.task, address: ctx.user, messageId });
}

const later = (a: string, b: string): boolean => BigInt(a) > BigInt(b);

/**
 * What landed in the mailbox since a history id: the messages added since (history.list,
 * messageAdded), each examined once and known by its key, so that an item is found by its key
 * whether or not Gmail's search has indexed it yet. `gone` once Gmail no longer has that history.
 * One per batch; its look-ups run one at a time, each going on from where the last one ended.
 */
class Landed {
  private next: string;
  private gone = false;
  /** Key → the first added message with it. */
  private readonly found = new Map<string, string>();
  private readonly examined = new Set<string>();
  private readonly serial = pLimit(1);

  /** `keys`: the batch's keys; added messages are compared with them only (by bytes only when one of them is a hash). */
  constructor(
    private readonly ctx: UnitContext,
    start: string,
    private readonly keys: ReadonlySet<string>,
  ) {
    this.next = start;
  }

  get since(): string {
    return this.next;
  }

  /** The added messages with these keys (key → Gmail id), or `gone`. */
  find(wanted: readonly string[], call: Call): Promise<Map<string, string> | 'gone'> {
    return this.serial(async () => {
      if (!this.gone && wanted.some((k) => !this.found.has(k))) await this.scan(call);
      if (this.gone) return 'gone';
      return new Map(wanted.flatMap((k) => (this.found.has(k) ? [[k, this.found.get(k) as string] as const] : [])));
    });
  }

  private async scan(call: Call): Promise<void> {
    const { ctx } = this;
    const added: string[] = [];
    let last = this.next;
    let pageToken: string | undefined;
    try {
      do {
        const res = await call('history.list', `history.list of ${ctx.user} since ${this.next}`, (o) =>
          ctx.gmail.users.history.list({ userId: ctx.user, startHistoryId: this.next, historyTypes: ['messageAdded'], maxResults: 500, pageToken }, o),
        );
        for (const h of res.data.history ?? []) {
          for (const a of h.messagesAdded ?? []) {
            const id = a.message?.id;
            if (id && !this.examined.has(id) && !added.includes(id)) added.push(id);
          }
          if (h.id && later(h.id, last)) last = h.id;
        }
        pageToken = res.data.nextPageToken ?? undefined;
      } while (pageToken);
    } catch (e) {
      if (e instanceof PermanentGmailError && e.status === 404) {
        this.gone = true;
        return;
      }
      throw e;
    }
    const limit = pLimit(EXAMINE);
    await Promise.all(
      added.map((id) =>
        limit(async () => {
          const key = await this.keyOfAdded(id, call);
          this.examined.add(id);
          if (key !== undefined && !this.found.has(key)) this.found.set(key, id);
        }),
      ),
    );
    this.next = last;
  }

  /** The key of an added message, as far as the batch's keys need it; undefined when it is gone since. */
  private async keyOfAdded(id: string, call: Call): Promise<string | undefined> {
    const { ctx } = this;
    try {
      const meta = await call('messages.get', `messages.get ${id} of ${ctx.user}`, (o) =>
        ctx.gmail.users.messages.get({ userId: ctx.user, id, format: 'metadata', metadataHeaders: ['Message-ID'], fields: 'id,payload/headers' }, o),
      );
      const header = (meta.data.payload?.headers ?? []).find((h) => (h.name ?? '').toLowerCase() === 'message-id');
      const messageId = header?.value ? usableMessageId(header.value) : undefined;
      const byId = messageId === undefined ? undefined : messageKey(Buffer.alloc(0), messageId);
      if (byId !== undefined && this.keys.has(byId)) return byId;
      // A key of bytes: the message's bytes, whatever its Message-ID (Gmail may have given it one).
      if (![...this.keys].some((k) => k.startsWith('sha256 '))) return byId;
      const raw = await call('messages.get', `messages.get ${id} of ${ctx.user} (raw)`, (o) =>
        ctx.gmail.users.messages.get({ userId: ctx.user, id, format: 'raw', fields: 'raw' }, o),
      );
      return messageKey(Buffer.from(raw.data.raw ?? '', 'base64url'));
    } catch (e) {
      if (e instanceof PermanentGmailError && e.status === 404) return undefined;
      throw e;
    }
  }
}

/** Why an item whose import may have landed is not imported again, when that cannot be told. */
function cannotTell(ref: string, since: string, user: string): string {
  return (
    `cannot tell whether ${ref} was imported by an earlier attempt: ${user}'s history since ${since} is gone and the message has no usable Message-ID ` +
    'to search for; it is not imported again, so that it is never imported twice'
  );
}

/**
 * Whether the message of `key` landed (its Gmail id), by the history; when the history is gone, by
 * its Message-ID (Gmail's search, which may lag); a message without a usable one then fails.
 */
async function landedAs(ctx: UnitContext, ref: string, k: Keyed, landed: Landed, call: Call): Promise<string | undefined> {
  const found = await landed.find([k.key], call);
  if (found !== 'gone') return found.get(k.key);
  if (k.messageId !== undefined) return (await findByMessageId(ctx, k.messageId, call))[0];
  throw new PermanentGmailError(cannotTell(ref, landed.since, ctx.user), 404);
}

/**
 * Imports (or inserts) one message. Before each retry of a call that got no answer, looks for it
 * in what landed; once `stop` fires (another item's failure ends the batch), makes no new attempt.
 */
async function importOne(ctx: UnitContext, ref: string, item: StoredItem, k: Keyed, landed: Landed, stop: AbortSignal): Promise<string> {
  const raw = await readSource(ctx, item, false);
  const now = keyOf(raw);
  if ('error' in now || now.key !== k.key) throw new SourceError(`the message of ${ref} changed while it was being inserted`);
  const method = item.method === 'insert' ? 'messages.insert' : 'messages.import';
  let attempt = 0;
  const res = await ctx.caller.call(method, `${method} of ${ref} into ${ctx.user}`, async (o) => {
    if (stop.aborted) throw new RunAborted();
    if (attempt++ > 0) {
      const id = await landedAs(ctx, ref, k, landed, direct(o.signal));
      if (id) return { data: { id } };
    }
    const common = {
      userId: ctx.user,
      internalDateSource: 'dateHeader',
      requestBody: { labelIds: item.labels },
      media: { mimeType: 'message/rfc822', body: Readable.from([raw]) },
    };
    // googleapis builds upload URLs from the per-call rootUrl only, not the client's: pass it on.
    const rootUrl = (ctx.gmail.context._options as { rootUrl?: string }).rootUrl;
    const opts = { ...o, ...(rootUrl ? { rootUrl } : {}) };
    return method === 'messages.insert'
      ? ctx.gmail.users.messages.insert(common, opts)
      : ctx.gmail.users.messages.import({ ...common, neverMarkSpam: true }, opts);
  });
  const id = res.data.id;
  if (!id) throw new PermanentGmailError(`${method} of ${ref} into ${ctx.user}: Gmail answered without the new message's id`, undefined);
  return id;
}

/**
 * Runs `fn` on each of `items`, `limit` at once. Once one throws, `stop` fires, no other starts,
 * and those started are awaited; then the first failure is thrown. So nothing the batch started
 * goes on after it returns.
 */
async function untilFailure<T>(items: readonly T[], limit: number, stop: AbortController, fn: (t: T) => Promise<unknown>): Promise<void> {
  const run = pLimit(limit);
  let failure: { error: unknown } | undefined;
  await Promise.allSettled(
    items.map((t) =>
      run(async () => {
        if (stop.signal.aborted) return;
        try {
          await fn(t);
        } catch (e) {
          failure ??= { error: e };
          stop.abort();
        }
      }),
    ),
  );
  if (failure) throw failure.error;
}

/** An item an earlier delivery of this batch may have imported: its key, the history id from which to look, and the message found. */
interface Mark {
  key: string;
  history: string | undefined;
  landed: string | undefined;
}

function marksOf(entries: ResultEntry[] | undefined): Map<string, Mark> {
  const out = new Map<string, Mark>();
  for (const e of entries ?? []) {
    const a = e.attributes ?? {};
    if (a['pending'] !== 'true' || a['insert_id'] === undefined) continue;
    out.set(a['insert_id'], { key: a['key'] ?? '', history: a['history'] || undefined, landed: a['landed'] || undefined });
  }
  return out;
}

function markEntries(marks: Map<string, Mark>): ResultEntry[] {
  return [...marks].map(([ref, m]) => ({
    id: '',
    name: '',
    attributes: { pending: 'true', insert_id: ref, key: m.key, ...(m.history ? { history: m.history } : {}), ...(m.landed ? { landed: m.landed } : {}) },
  }));
}

async function insertBatch(ctx: UnitContext, refs: string[], items: Map<string, StoredItem>, results: ResultStore): Promise<{ outcomes: ItemOutcome[] } | undefined> {
  const first = ctx.progress.messages;
  const marks = marksOf(await results.read(ctx.token, ctx.index, first));
  const outcomes = new Map<string, ItemOutcome>();
  const fail = (ref: string, message: string) => outcomes.set(ref, failedEntry('', message, { insert_id: ref }));
  const done = (ref: string, messageId: string, counter: string) =>
    outcomes.set(ref, { entry: { id: identifierOf(ctx, messageId), name: '', attributes: { insert_id: ref } }, counter });
  const stop = new AbortController();
  const call = viaCaller(ctx, stop.signal);
  const mine = belongsTo(ctx.taskConfig, ctx.user);
  const keys = new Map<string, Keyed>();

  // Each message's key, from its bytes; an item an earlier delivery found landed is done.
  await untilFailure(refs, IMPORTS, stop, async (ref) => {
    const item = items.get(ref) as StoredItem;
    const landedBefore = marks.get(ref)?.landed;
    if (landedBefore) return done(ref, landedBefore, 'inserted');
    if (!mine) return fail(ref, `USER_ID ${ctx.user} is not a mailbox of task ${ctx.task}`);
    if (item.fault !== undefined) return fail(ref, item.fault);
    let k: Keyed | { error: string } | SourceError;
    try {
      k = await keyOfItem(ctx, item);
    } catch (e) {
      if (!(e instanceof SourceError)) throw e;
      k = e;
    }
    // An item an earlier delivery may have imported is looked for by the key it had then, even
    // when its source can no longer be read as it was (its import then fails, if it did not land).
    const markedKey = marks.get(ref)?.key;
    if (markedKey && (k instanceof SourceError || 'error' in k)) k = { key: markedKey, messageId: markedKey.startsWith('id ') ? markedKey.slice(3) : undefined };
    if (k instanceof SourceError) return fail(ref, k.message);
    if ('error' in k) return fail(ref, `the message ${k.error}`);
    keys.set(ref, k);
    return undefined;
  });
  const keyOfRef = (ref: string): Keyed => {
    const k = keys.get(ref) as Keyed;
    const marked = marks.get(ref)?.key;
    return marked ? { ...k, key: marked } : k;
  };
  const batchKeys = new Set([...keys.keys()].map((ref) => keyOfRef(ref).key));

  // What an earlier delivery may have imported: found in the history since its mark, not by search.
  const marked = [...keys.keys()].filter((ref) => !outcomes.has(ref) && marks.has(ref));
  const histories = marked.map((ref) => marks.get(ref)?.history).filter((h): h is string => h !== undefined);
  let landed = histories.length ? new Landed(ctx, histories.reduce((a, b) => (later(a, b) ? b : a)), batchKeys) : undefined;
  /** Marked items whose landing history could not tell: by search, as `inserted` when found; without a Message-ID, not at all. */
  const unsure = new Set(marked.filter((ref) => marks.get(ref)?.history === undefined));
  if (landed) {
    const withHistory = marked.filter((ref) => marks.get(ref)?.history !== undefined);
    try {
      const found = await landed.find(withHistory.map((ref) => keyOfRef(ref).key), call);
      if (found === 'gone') {
        for (const ref of withHistory) unsure.add(ref);
        landed = undefined;
      } else {
        for (const ref of withHistory) {
          const id = found.get(keyOfRef(ref).key);
          if (id === undefined) continue;
          done(ref, id, 'inserted');
          (marks.get(ref) as Mark).landed = id;
        }
      }
    } catch (e) {
      if (!(e instanceof PermanentGmailError)) throw e;
      for (const ref of withHistory) outcomes.set(ref, gmailItemFailure(e, '', `looking for what ${ref} left in ${ctx.user}`, { insert_id: ref }));
    }
  }

  // A message already in the mailbox (by its Message-ID) is not imported again.
  await untilFailure(
    [...keys.keys()].filter((ref) => !outcomes.has(ref)),
    IMPORTS,
    stop,
    async (ref) => {
      const k = keyOfRef(ref);
      if (k.messageId === undefined) {
        if (unsure.has(ref)) fail(ref, cannotTell(ref, marks.get(ref)?.history ?? 'its first attempt', ctx.user));
        return;
      }
      try {
        const [id] = await findByMessageId(ctx, k.messageId, call);
        if (id) done(ref, id, unsure.has(ref) ? 'inserted' : 'existing');
      } catch (e) {
        outcomes.set(ref, gmailItemFailure(e, '', `looking up ${ref} in ${ctx.user}`, { insert_id: ref }));
      }
    },
  );
  // Two items of one message (gs:// items, found to share a key): the second fails.
  const toImport: { ref: string; item: StoredItem; k: Keyed }[] = [];
  for (const ref of refs) {
    if (outcomes.has(ref) || !keys.has(ref)) continue;
    const k = keyOfRef(ref);
    const twin = toImport.find((t) => t.k.key === k.key);
    if (twin) fail(ref, `the same message (${k.messageId === undefined ? 'the same bytes' : `Message-ID ${k.messageId}`}) as item ${twin.ref}, which this Insert imports`);
    else toImport.push({ ref, item: items.get(ref) as StoredItem, k });
  }
  if (ctx.shouldEnd()) return undefined;
  if (toImport.length) {
    // Committed before the first import, with where the mailbox's history stands: a delivery that
    // resumes, and each retry, finds there what landed. Marks are added, never dropped.
    const profile = await call('getProfile', `getProfile of ${ctx.user}`, (o) => ctx.gmail.users.getProfile({ userId: ctx.user }, o));
    const now = profile.data.historyId;
    if (!now) throw new PermanentGmailError(`getProfile of ${ctx.user}: Gmail answered without the mailbox's history id`, undefined);
    for (const t of toImport) {
      const before = landed ? marks.get(t.ref)?.history : undefined;
      marks.set(t.ref, { key: t.k.key, history: before !== undefined && later(now, before) ? before : now, landed: undefined });
    }
    landed ??= new Landed(ctx, now, batchKeys);
    const scan = landed;
    const expireAt = ctx.expireWhileRunning();
    await ctx.commit(ctx.progress, (b) => results.write(b, ctx.token, ctx.index, first, markEntries(marks), expireAt));
    await untilFailure(toImport, IMPORTS, stop, async (t) => {
      try {
        done(t.ref, await importOne(ctx, t.ref, t.item, t.k, scan, stop.signal), 'inserted');
      } catch (e) {
        if (e instanceof SourceError) fail(t.ref, e.message);
        else outcomes.set(t.ref, gmailItemFailure(e, '', `${t.item.method} of ${t.ref} into ${ctx.user}`, { insert_id: t.ref }));
      }
    });
  }
  return { outcomes: refs.map((ref) => outcomes.get(ref) as ItemOutcome) };
}

async function run(ctx: UnitContext): Promise<UnitOutcome> {
  const all = JSON.parse(String(ctx.params['items'])) as StoredItem[];
  const items = new Map(all.filter((i) => i.user === ctx.user).map((i) => [i.reference, i]));
  const results = new ResultStore(ctx.db);
  return runItems(
    ctx,
    [...items.keys()],
    (batch) =>
      insertBatch(ctx, batch, items, results).catch((e: unknown) => {
        if (e instanceof RunAborted) return undefined;
        throw e;
      }),
    BATCH,
    { action: 'Insert', scopes: INSERT_SCOPES, failed: (ref, why) => failedEntry('', why, { insert_id: ref }) },
  );
}

export const insertAction: FetchActionSpec = {
  name: 'Insert',
  summary: 'adds messages (InsertXML) to mailboxes of one task section (ConfigSection); needs "writes": true',
  parameters: ['InsertXML'],
  parse,
  units: 'identifiers',
  namedMailboxes,
  takesSections: true,
  lock: false,
  coalesces: false,
  scopes: INSERT_SCOPES,
  methods: ['messages.list', 'getProfile', 'history.list', 'messages.get', 'messages.import', 'messages.insert'],
  counters: ['inserted', 'existing', 'errors'],
  run,
  results: 'tasks',
};
