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
 * Never twice: Gmail's import is not idempotent, so each message is looked up by its Message-ID
 * (`rfc822msgid:`, Trash and Spam included) before it is imported, and again before any retry of
 * an import that got no answer. A message already in the mailbox is not imported again: the item
 * succeeds with that message's identifier and counts `existing`. Before importing a batch, the
 * unit commits which items it is about to import (a pending result batch, which GetStatus does not
 * show); a delivery that resumes after a crash between the import and the commit of its result
 * finds the message it had imported, reports it and counts it `inserted`, and imports nothing.
 * An item is one Gmail call, so it is never half-applied; an item whose mailbox is not one of the
 * task's, whose source cannot be read, or that Gmail refuses fails by itself.
 *
 * Writes must be on for the task (`"writes": true`); scopes gmail.insert and gmail.readonly (for
 * the Message-ID search).
 */
import { Readable } from 'node:stream';
import pLimit from 'p-limit';
import { badParameter, missingParameter } from '../aci/errors.js';
import { encodeIdentifier } from '../aci/identifiers.js';
import { InsertXmlError, messageIdOf, parseInsertXml, type InsertItem } from '../aci/insert-xml.js';
import type { AciParams } from '../aci/request.js';
import type { Config } from '../config.js';
import { PermanentGmailError } from '../gmail/errors.js';
import { RunAborted } from '../gmail/pacing.js';
import { ResultStore, type ResultEntry } from '../store/results.js';
import { belongsTo } from './collect.js';
import type { FetchActionSpec, FetchParams, UnitContext, UnitOutcome } from './registry.js';
import { SCOPES, failedEntry, gmailItemFailure, requireWrites, runItems, type ItemOutcome } from './writes.js';

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
  const seen = new Map<string, string>();
  for (const i of items) {
    const key = `${i.user} ${i.messageId?.toLowerCase() ?? ''}`;
    const other = i.messageId === undefined ? undefined : seen.get(key);
    if (other !== undefined) throw badParameter('InsertXML', i.reference, `items with different messages: ${i.reference} and ${other} are the same message (Message-ID ${i.messageId}) for ${i.user}`);
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

/** The ids of the mailbox's messages with this Message-ID, Trash and Spam included. */
async function findByMessageId(ctx: UnitContext, messageId: string, signal?: AbortSignal): Promise<string[]> {
  const q = `rfc822msgid:${messageId.replace(/^<|>$/g, '')}`;
  const list = (o: { signal: AbortSignal }) => ctx.gmail.users.messages.list({ userId: ctx.user, q, includeSpamTrash: true, maxResults: 10 }, o);
  const res = signal ? await list({ signal }) : await ctx.caller.call('messages.list', `searching ${ctx.user} for ${messageId}`, list);
  return (res.data.messages ?? []).map((m) => m.id ?? '').filter((id) => id !== '');
}

function identifierOf(ctx: UnitContext, messageId: string): string {
  return encodeIdentifier({ task: ctx.task, address: ctx.user, messageId });
}

/** Imports (or inserts) one message; before each retry of a call that got no answer, looks for it first. */
async function importOne(ctx: UnitContext, item: StoredItem, messageIdHeader: string): Promise<string> {
  const raw = await readSource(ctx, item, false);
  const method = item.method === 'insert' ? 'messages.insert' : 'messages.import';
  let attempt = 0;
  const res = await ctx.caller.call(method, `${method} of ${item.reference} into ${ctx.user}`, async (o) => {
    if (attempt++ > 0) {
      const found = await findByMessageId(ctx, messageIdHeader, o.signal);
      if (found[0]) return { data: { id: found[0] } };
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
  if (!id) throw new PermanentGmailError(`${method} of ${item.reference} into ${ctx.user}: Gmail answered without the new message's id`, undefined);
  return id;
}

async function insertBatch(ctx: UnitContext, refs: string[], items: Map<string, StoredItem>, results: ResultStore): Promise<{ outcomes: ItemOutcome[] } | undefined> {
  const first = ctx.progress.messages;
  const pending = await results.read(ctx.token, ctx.index, first);
  const attempted = new Set((pending ?? []).filter((e) => e.attributes?.['pending'] === 'true').map((e) => e.attributes?.['insert_id']));
  const outcomes = new Map<string, ItemOutcome>();
  const fail = (ref: string, message: string) => outcomes.set(ref, failedEntry('', message, { insert_id: ref }));
  const done = (ref: string, messageId: string, counter: string) =>
    outcomes.set(ref, { entry: { id: identifierOf(ctx, messageId), name: '', attributes: { insert_id: ref } }, counter });
  const toImport: { ref: string; item: StoredItem; messageId: string }[] = [];
  const limit = pLimit(IMPORTS);
  const mine = belongsTo(ctx.taskConfig, ctx.user);
  await Promise.all(
    refs.map((ref) =>
      limit(async () => {
        const item = items.get(ref) as StoredItem;
        if (!mine) return fail(ref, `USER_ID ${ctx.user} is not a mailbox of task ${ctx.task}`);
        try {
          const head = messageIdOf(await readSource(ctx, item, true));
          if ('error' in head) return fail(ref, `the message ${head.error}`);
          if (!head.messageId) return fail(ref, 'the message has no Message-ID header, which Insert needs to find an earlier attempt and never import a message twice');
          const found = await findByMessageId(ctx, head.messageId);
          if (found[0]) return done(ref, found[0], attempted.has(ref) ? 'inserted' : 'existing');
          // Two items of one batch with one Message-ID would both be imported: the second fails.
          const twin = toImport.find((t) => t.messageId.toLowerCase() === head.messageId?.toLowerCase());
          if (twin) return fail(ref, `the same Message-ID ${head.messageId} as item ${twin.ref}, which this Insert imports`);
          toImport.push({ ref, item, messageId: head.messageId });
        } catch (e) {
          if (e instanceof SourceError) return fail(ref, e.message);
          outcomes.set(ref, gmailItemFailure(e, '', `looking up ${ref} in ${ctx.user}`, { insert_id: ref }));
        }
        return undefined;
      }),
    ),
  );
  if (ctx.shouldEnd()) return undefined;
  if (toImport.length) {
    // Committed before the first import: a delivery that resumes knows these may have landed.
    const marks: ResultEntry[] = toImport.map((t) => ({ id: '', name: '', attributes: { pending: 'true', insert_id: t.ref } }));
    const expireAt = ctx.expireWhileRunning();
    await ctx.commit(ctx.progress, (b) => results.write(b, ctx.token, ctx.index, first, marks, expireAt));
    await Promise.all(
      toImport.map((t) =>
        limit(async () => {
          try {
            done(t.ref, await importOne(ctx, t.item, t.messageId), 'inserted');
          } catch (e) {
            if (e instanceof SourceError) fail(t.ref, e.message);
            else outcomes.set(t.ref, gmailItemFailure(e, '', `${t.item.method} of ${t.ref} into ${ctx.user}`, { insert_id: t.ref }));
          }
        }),
      ),
    );
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
  methods: ['messages.list', 'messages.import', 'messages.insert'],
  counters: ['inserted', 'existing', 'errors'],
  run,
  results: 'tasks',
};
