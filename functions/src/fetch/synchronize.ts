/**
 * Synchronize of one mailbox unit (docs/CONTRACT.md): a full listing the first
 * time (or when Gmail no longer has the history asked for, or the task has a
 * search query, or its selection is not the one the mailbox was synchronized
 * with), `history.list` after that.
 *
 * A run synchronizes with one selection (the task's query, labels and
 * includeSpamTrash), the task's when it begins, kept in its checkpoint: every
 * continuation lists and filters with it, whatever the configuration says by
 * then, and a finished run records it in the mailbox state. A configuration
 * changed during a run applies from the next run, which finds the recorded
 * selection different and lists in full.
 *
 * A run works from its checkpoint through phases (see `Checkpoint`): list a
 * page, apply its changes in batches, then, after a full listing, sweep the
 * sink documents it did not see. Each batch of sink writes is committed in one
 * transaction with the counts and checkpoint it leads to, by the delivery that
 * owns the mailbox, so a take-over resumes exactly where the last commit left
 * off: nothing listed twice, nothing counted twice, and a delivery that lost
 * the mailbox writes nothing more.
 */
import type { DocumentReference, DocumentSnapshot, WriteBatch } from '@google-cloud/firestore';
import pLimit from 'p-limit';
import { decodeIdentifier } from '../aci/identifiers.js';
import { GMAIL_SCOPES } from '../gmail/client.js';
import { PermanentGmailError, classify } from '../gmail/errors.js';
import { RunAborted } from '../gmail/pacing.js';
import { selectionOf, sameSelection, type RunStanding, type Selection } from '../store/mailboxes.js';
import { COLLECTIONS, documentId, type Checkpoint, type Counts } from '../store/model.js';
import { QUERIES } from '../store/queries.js';
import { estimateBytes, fetchDocument, type SinkDocument } from './shared/document.js';
import { HOLD_FIELDS, holdStateOf, releasedPage, sweptUnderHold, underHold } from './shared/held-documents.js';
import { PAGE_SIZE, cloneProgress, listMessages, saveProgress } from './shared/listing.js';
import { namedMailboxes, namedOf, parseNamed } from './shared/named.js';
import { fetchAhead } from './shared/pipeline.js';
import { failedEntry, runItems, type ItemOutcome } from './shared/writes.js';
import type { FetchActionSpec, FetchParams, UnitContext, UnitOutcome } from './spec.js';

/** The counters of a Synchronize, per task section. */
export const SYNC_COUNTERS = ['seen', 'added', 'updated', 'unchanged', 'deleted', 'errors'] as const;

/** Messages fetched, then committed, together; the run's end is checked between batches. */
const BATCH = 50;
/** Batches fetched while the one before them commits (fetch/shared/pipeline.ts). */
const AHEAD = 2;
/**
 * Messages fetched at once: CONCURRENCY, and up to BURST_CONCURRENCY while the address's quota has
 * that many calls in hand, once the page's first CONCURRENCY messages proved small (none over
 * LARGE_MESSAGE bytes): a page of large messages is read ten at a time.
 */
const CONCURRENCY = 10;
const BURST_CONCURRENCY = 25;
const LARGE_MESSAGE = 1024 * 1024;
/**
 * The most messages a run that starts a page fetches before its first commit: the first batch
 * and the batches ahead of it, whose reads may finish in any order.
 */
export const FIRST_COMMIT_WITHIN = CONCURRENCY + AHEAD * BATCH;
/** Firestore allows 500 writes and 10 MiB a commit; stay under both (the progress write included). */
const MAX_WRITES = 450;
const MAX_COMMIT_BYTES = 8 * 1024 * 1024;
/** Sink documents examined (and at most deleted) per sweep commit. */
const SWEEP_PAGE = 400;

type SyncContext = UnitContext;
type SyncOutcome = UnitOutcome;

function docRef(ctx: SyncContext, messageId: string): DocumentReference {
  return ctx.db.collection(COLLECTIONS.documents).doc(documentId(ctx.task, ctx.user, messageId));
}

/**
 * The selection the run synchronizes with: its checkpoint's. A checkpoint written before runs kept
 * theirs has none: the task's is used, and the run records none when it finishes (so the next
 * run lists in full), since its earlier deliveries may have used another.
 */
function selectionOfRun(ctx: SyncContext): Selection {
  return ctx.progress.checkpoint?.selection ?? selectionOf(ctx.taskConfig);
}

/** Runs (or resumes) the unit's Synchronize until it ends or must stop. */
async function synchronize(ctx: SyncContext): Promise<SyncOutcome> {
  try {
    // A run that begins (or starts over) takes the task's selection, and says so when taking its epoch.
    const st = await ctx.begin(ctx.progress.checkpoint?.epoch ?? null, selectionOf(ctx.taskConfig));
    if (st.supersededBy !== null) return { kind: 'superseded', by: st.supersededBy };
    if (ctx.progress.checkpoint === null || st.begins) await start(ctx, st);
    for (;;) {
      if (ctx.shouldEnd()) return { kind: 'interrupted' };
      const cp = ctx.progress.checkpoint as Checkpoint;
      switch (cp.phase) {
        case 'listing':
          await (cp.mode === 'full' ? listFull(ctx, cp) : listHistory(ctx, cp));
          break;
        case 'fetching':
          if (!(await applyItems(ctx, cp))) return { kind: 'interrupted' };
          break;
        case 'sweeping':
          await sweepPage(ctx, cp);
          break;
        case 'done': {
          const p = ctx.progress;
          if (p.messageErrors.length > 0) {
            return { kind: 'failed', error: `${p.counts['errors'] ?? 0} messages failed after retries: ${p.messageErrors.slice(0, 5).join('; ')}` };
          }
          return { kind: 'finished', epoch: cp.epoch, historyId: cp.baselineHistoryId, selection: cp.selection ?? null };
        }
        default: {
          const never: never = cp.phase;
          throw new Error(`unknown phase ${String(never)}`);
        }
      }
    }
  } catch (e) {
    if (e instanceof PermanentGmailError) return { kind: 'failed', error: e.message };
    if (e instanceof RunAborted) return { kind: 'interrupted' };
    throw e;
  }
}

/**
 * Begins a run with the task's selection: incremental from the last complete run's history id
 * when the mailbox was synchronized with that same selection, else a full listing (and a sweep).
 */
async function start(ctx: SyncContext, st: RunStanding): Promise<void> {
  const profile = await ctx.caller.call('getProfile', `getProfile of ${ctx.user}`, (o) => ctx.gmail.users.getProfile({ userId: ctx.user }, o));
  const selection = selectionOf(ctx.taskConfig);
  // A task with a search query cannot tell from history whether a changed message matches it,
  // so it always lists in full (and sweeps). Nor can history bring in the older messages a wider
  // selection takes, or show the documents a narrower one leaves: a changed selection (or an
  // unknown one: a state written before selections were recorded) lists in full and sweeps too.
  const incremental = st.lastHistoryId !== null && selection.query === '' && sameSelection(st.syncedSelection, selection);
  const next = cloneProgress(ctx.progress);
  next.checkpoint = {
    mode: incremental ? 'history' : 'full',
    phase: 'listing',
    epoch: st.epoch,
    pageToken: null,
    items: [],
    done: 0,
    next: null,
    startHistoryId: incremental ? st.lastHistoryId : null,
    baselineHistoryId: profile.data.historyId ?? null,
    sweepAfter: null,
    selection,
  };
  next.total = incremental ? null : (profile.data.messagesTotal ?? null);
  await saveProgress(ctx, next);
}

/** The checkpoint once `done` of the listed page's items are applied (the page may be complete). */
function advance(cp: Checkpoint, done: number): { cp: Checkpoint; pageDone: boolean } {
  if (done < cp.items.length) return { cp: { ...cp, done }, pageDone: false };
  const base = { ...cp, items: [], done: 0, next: null };
  if (cp.next) return { cp: { ...base, phase: 'listing', pageToken: cp.next }, pageDone: true };
  // An incremental run also "sweeps": it examines the mailbox's released documents (fetch/shared/held-documents.ts).
  return { cp: { ...base, phase: 'sweeping', pageToken: null }, pageDone: true };
}

/** Records a listed page: its items, or straight to the next phase when it has none. */
async function listed(ctx: SyncContext, cp: Checkpoint, items: string[], nextToken: string | null): Promise<void> {
  const next = cloneProgress(ctx.progress);
  const page = { ...cp, phase: 'fetching' as const, items, done: 0, next: nextToken };
  const a = advance(page, 0);
  next.checkpoint = a.cp;
  if (a.pageDone) next.pages += 1;
  await saveProgress(ctx, next);
}

async function listFull(ctx: SyncContext, cp: Checkpoint): Promise<void> {
  const page = await listMessages(ctx, cp.pageToken, selectionOfRun(ctx));
  await listed(ctx, cp, page.ids, page.next);
}

/** One history.list page; a full listing (with its sweep) instead when Gmail no longer has that history. */
async function listHistory(ctx: SyncContext, cp: Checkpoint): Promise<void> {
  let res;
  try {
    res = await ctx.caller.call('history.list', `history.list of ${ctx.user}`, (o) =>
      ctx.gmail.users.history.list(
        { userId: ctx.user, startHistoryId: cp.startHistoryId ?? undefined, pageToken: cp.pageToken ?? undefined, maxResults: PAGE_SIZE },
        o,
      ),
    );
  } catch (e) {
    if (!(e instanceof PermanentGmailError && e.status === 404)) throw e;
    const profile = await ctx.caller.call('getProfile', `getProfile of ${ctx.user}`, (o) => ctx.gmail.users.getProfile({ userId: ctx.user }, o));
    const next = cloneProgress(ctx.progress);
    next.checkpoint = {
      ...cp,
      mode: 'full',
      phase: 'listing',
      pageToken: null,
      items: [],
      done: 0,
      next: null,
      startHistoryId: null,
      baselineHistoryId: profile.data.historyId ?? cp.baselineHistoryId,
    };
    next.total = profile.data.messagesTotal ?? null;
    await saveProgress(ctx, next);
    return;
  }
  // The last record for a message decides: a later add after a delete is a change.
  const changes = new Map<string, boolean>();
  for (const h of res.data.history ?? []) {
    for (const m of h.messagesAdded ?? []) if (m.message?.id) changes.set(m.message.id, true);
    for (const m of h.labelsAdded ?? []) if (m.message?.id) changes.set(m.message.id, true);
    for (const m of h.labelsRemoved ?? []) if (m.message?.id) changes.set(m.message.id, true);
    for (const m of h.messagesDeleted ?? []) if (m.message?.id) changes.set(m.message.id, false);
  }
  const items = [...changes].map(([id, changed]) => (changed ? id : `-${id}`));
  await listed(ctx, cp, items, res.data.nextPageToken ?? null);
}

/** Whether a message belongs in the task's sink by its labels, as the run's selection has it. */
function wanted(ctx: SyncContext, labels: string[], t: Selection = selectionOfRun(ctx)): boolean {
  if (!t.includeSpamTrash && (labels.includes('SPAM') || labels.includes('TRASH'))) return false;
  return t.labels.every((l) => labels.includes(l));
}

/** What applying one item leads to: one sink write (or none) and the counts it adds. */
interface ItemResult {
  write:
    | { op: 'set'; doc: SinkDocument }
    | { op: 'update'; labels: string[]; historyId: string }
    | { op: 'mark' }
    | { op: 'remove' }
    | { op: 'flag'; fields: Record<string, unknown> }
    | null;
  counts: Partial<Counts>;
  error?: string;
}

/**
 * Adds one item's sink write to `b`. A rewritten document takes `epoch.doc`; `epoch.stamp`, when
 * given, is also written by every other change (a run of the mailbox marks what it saw, for its
 * sweep); a named Synchronize, a side run, gives none and leaves the documents' epochs alone.
 */
function writeItem(b: WriteBatch, ref: DocumentReference, w: NonNullable<ItemResult['write']>, epoch: { doc: number; stamp?: number }): void {
  const stamp = epoch.stamp === undefined ? {} : { epoch: epoch.stamp };
  if (w.op === 'set') b.set(ref, { ...w.doc, epoch: epoch.doc });
  else if (w.op === 'update') b.update(ref, { labels: w.labels, historyId: w.historyId, ...stamp });
  else if (w.op === 'mark') b.update(ref, stamp);
  else if (w.op === 'flag') b.update(ref, { ...w.fields, ...stamp });
  else b.delete(ref);
}

function writeBytes(r: ItemResult): number {
  if (r.write?.op === 'set') return estimateBytes(r.write.doc);
  return r.write ? 256 : 0;
}

/**
 * Applies the listed page's items from `done` on, in batches, fetching ahead
 * while the batch before commits (fetch/shared/pipeline.ts); each batch's finished
 * prefix is committed with its counts, in order. False when the run must end.
 */
async function applyItems(ctx: SyncContext, cp0: Checkpoint): Promise<boolean> {
  let cp = cp0;
  const idOf = (item: string) => (item.startsWith('-') ? item.slice(1) : item);
  let small = 0;
  let large = false;
  const sized = (r: ItemResult | undefined) => {
    if (!r) return r;
    if (r.write?.op === 'set' && r.write.doc.sizeEstimate > LARGE_MESSAGE) large = true;
    else small++;
    return r;
  };
  return fetchAhead<string, ItemResult>({
    items: cp0.items.slice(cp0.done),
    batchSize: BATCH,
    // A run's first documents land after one round of fetches, not five.
    firstBatchSize: cp0.done === 0 ? CONCURRENCY : BATCH,
    ahead: AHEAD,
    concurrency: () => (large || small < CONCURRENCY ? CONCURRENCY : Math.min(BURST_CONCURRENCY, Math.max(CONCURRENCY, ctx.caller.headroom('messages.get')))),
    shouldEnd: ctx.shouldEnd,
    prepare: async (batch) => {
      const snaps = await ctx.db.getAll(...batch.map((item) => docRef(ctx, idOf(item))), { fieldMask: ['labels', ...HOLD_FIELDS] });
      return (item, k) => {
        const snap = snaps[k];
        const labels = snap?.exists ? ((snap.get('labels') as string[] | undefined) ?? []) : null;
        return applyOne(ctx, cp0, item, labels)
          .then((r) => r && underHold(r, holdStateOf(snap)))
          .then(sized);
      };
    },
    commit: async (batch, ready) => {
      cp = await commitItems(ctx, cp, batch.map(idOf), ready);
    },
  });
}

/** Commits applied items in order, as few transactions as Firestore's limits allow. */
async function commitItems(ctx: SyncContext, cp: Checkpoint, ids: string[], ready: ItemResult[]): Promise<Checkpoint> {
  let at = 0;
  let current = cp;
  while (at < ready.length) {
    let end = at;
    let writes = 0;
    let bytes = 0;
    while (end < ready.length) {
      const r = ready[end] as ItemResult;
      const size = writeBytes(r);
      if (end > at && (writes + 1 > MAX_WRITES || bytes + size > MAX_COMMIT_BYTES)) break;
      if (r.write) writes++;
      bytes += size;
      end++;
    }
    const chunk = ready.slice(at, end);
    const chunkIds = ids.slice(at, end);
    const next = cloneProgress(ctx.progress);
    for (const r of chunk) {
      next.messages += 1;
      for (const [k, v] of Object.entries(r.counts)) next.counts[k] = (next.counts[k] ?? 0) + (v ?? 0);
      if (r.error) next.messageErrors.push(r.error);
    }
    const a = advance(current, current.done + chunk.length);
    next.checkpoint = a.cp;
    if (a.pageDone) next.pages += 1;
    const epoch = current.epoch;
    await saveProgress(ctx, next, (b) => {
      chunk.forEach((r, k) => {
        if (r.write) writeItem(b, docRef(ctx, chunkIds[k] as string), r.write, { doc: epoch, stamp: epoch });
      });
    });
    current = a.cp;
    at = end;
  }
  return current;
}

/** One item of a listed page: a message id (a change) or `-id` (a deletion). `labels`: its sink document's, or null. */
async function applyOne(ctx: SyncContext, cp: Checkpoint, item: string, labels: string[] | null): Promise<ItemResult | undefined> {
  const users = ctx.gmail.users;
  if (item.startsWith('-')) {
    return labels !== null ? { write: { op: 'remove' }, counts: { deleted: 1 } } : { write: null, counts: {} };
  }
  const id = item;
  const what = `messages.get ${id} of ${ctx.user}`;
  try {
    if (labels !== null) {
      const res = await ctx.caller.call('messages.get', what, (o) => users.messages.get({ userId: ctx.user, id, format: 'minimal' }, o));
      const now = [...(res.data.labelIds ?? [])].sort();
      if (!wanted(ctx, now)) return { write: { op: 'remove' }, counts: { seen: 1, deleted: 1 } };
      if (now.join(',') !== [...labels].sort().join(',')) {
        return { write: { op: 'update', labels: now, historyId: res.data.historyId ?? '' }, counts: { seen: 1, updated: 1 } };
      }
      // A full listing marks what it saw, so that its sweep keeps it.
      return { write: cp.mode === 'full' ? { op: 'mark' } : null, counts: { seen: 1, unchanged: 1 } };
    }
    // Read and parsed as it arrives, attachments streamed past (fetch/shared/document.ts).
    const got = await ctx.caller.call('messages.get', what, (o) => fetchDocument(ctx.gmail, ctx.task, ctx.user, id, o));
    if (!wanted(ctx, got.labels)) return { write: null, counts: { seen: 1 } };
    return { write: { op: 'set', doc: got.doc }, counts: { seen: 1, added: 1 } };
  } catch (e) {
    // Not examined after all: the next run applies it.
    if (e instanceof RunAborted) return undefined;
    const err = classify(e, `message ${id} of ${ctx.user}`);
    if (err instanceof PermanentGmailError && err.status === 404) {
      // Gone from the mailbox since it was listed: gone from the sink too.
      return labels !== null ? { write: { op: 'remove' }, counts: { seen: 1, deleted: 1 } } : { write: null, counts: { seen: 1 } };
    }
    if (err instanceof PermanentGmailError && (err.status === 401 || err.status === 403)) throw err;
    // Still in the mailbox as far as we know: its document is kept (and marked, so no sweep deletes it).
    return { write: labels !== null && cp.mode === 'full' ? { op: 'mark' } : null, counts: { seen: 1, errors: 1 }, error: err.message };
  }
}

/**
 * One page of the sweep: deletes the task's documents of this mailbox that this run's listing did
 * not mark, and marks the held ones among them (deletedInSource) with the run's epoch. Either way
 * a page's documents leave the query once committed, so the next page is again the first one
 * left: no cursor, and a take-over goes on where the last commit left off. The query reads only
 * stale documents (an index on task, user and epoch), so sweeping an unchanged mailbox reads none.
 */
async function sweepPage(ctx: SyncContext, cp: Checkpoint): Promise<void> {
  if (cp.mode === 'history') return releasedPage(ctx, cp);
  const [task, user, epoch] = QUERIES.staleDocumentsOfMailbox.fields;
  const page = await ctx.db
    .collection(COLLECTIONS.documents)
    .where(task.fieldPath, '==', ctx.task.toUpperCase())
    .where(user.fieldPath, '==', ctx.user.toLowerCase())
    .where(epoch.fieldPath, '!=', cp.epoch)
    .select('held')
    .limit(SWEEP_PAGE)
    .get();
  const stale = page.docs.map((d) => ({ ref: d.ref, rule: sweptUnderHold(d) }));
  const next = cloneProgress(ctx.progress);
  next.counts['deleted'] = (next.counts['deleted'] ?? 0) + stale.filter((d) => d.rule === 'delete').length;
  next.checkpoint = { ...cp, sweepAfter: null, ...(page.size < SWEEP_PAGE ? { phase: 'done' as const } : {}) };
  await saveProgress(ctx, next, (b) => {
    for (const d of stale) {
      if (d.rule === 'delete') b.delete(d.ref);
      else b.update(d.ref, { ...d.rule, epoch: cp.epoch });
    }
  });
}

/** Named messages fetched per committed batch of a named Synchronize. */
const NAMED_BATCH = 20;

/**
 * One named message of a named Synchronize (`Identifiers`): read again from Gmail and its sink
 * document rewritten with the document builder a full listing uses (keeping the document's epoch,
 * so the mailbox's regular runs see it as they left it), or removed when the message is gone (404)
 * or outside the task's selection. A held document is left as a Synchronize leaves it
 * (held-documents.ts `underHold`): never rewritten or removed, only marked `changedInSource` or
 * `deletedInSource`.
 */
async function syncNamedOne(ctx: SyncContext, id: string, snap: DocumentSnapshot | undefined): Promise<{ r: ItemResult; epoch: number }> {
  const messageId = decodeIdentifier(id).messageId;
  const labels = snap?.exists ? ((snap.get('labels') as string[] | undefined) ?? []) : null;
  const epoch = snap?.exists ? Number(snap.get('epoch') ?? 0) : 0;
  const state = holdStateOf(snap);
  const gone = (counts: Partial<Counts>): ItemResult => (labels !== null ? { write: { op: 'remove' }, counts: { ...counts, deleted: 1 } } : { write: null, counts });
  let r: ItemResult;
  try {
    const got = await ctx.caller.call('messages.get', `messages.get ${messageId} of ${ctx.user}`, (o) => fetchDocument(ctx.gmail, ctx.task, ctx.user, messageId, o));
    const now = [...got.labels].sort();
    if (!wanted(ctx, now, selectionOf(ctx.taskConfig))) {
      r = labels !== null ? gone({ seen: 1 }) : { write: null, counts: { seen: 1 }, error: `message ${messageId} is outside task ${ctx.task}'s selection (its labels, spam or trash): not in its sink` };
    } else if (labels === null) {
      r = { write: { op: 'set', doc: got.doc }, counts: { seen: 1, added: 1 } };
    } else {
      const changed = now.join(',') !== [...labels].sort().join(',');
      if (state === 'held') r = { write: changed ? { op: 'update', labels: now, historyId: got.doc.historyId } : null, counts: { seen: 1, ...(changed ? { updated: 1 } : { unchanged: 1 }) } };
      else r = { write: { op: 'set', doc: got.doc }, counts: { seen: 1, ...(changed ? { updated: 1 } : { unchanged: 1 }) } };
    }
  } catch (e) {
    if (e instanceof RunAborted) throw e;
    const err = classify(e, `message ${messageId} of ${ctx.user}`);
    if (err instanceof PermanentGmailError && (err.status === 401 || err.status === 403)) throw err;
    if (err instanceof PermanentGmailError && err.status === 404) {
      r = labels !== null ? gone({ seen: 1 }) : { write: null, counts: { seen: 1 }, error: `message ${messageId} is not in mailbox ${ctx.user}, nor its document in the sink` };
    } else {
      r = { write: null, counts: { seen: 1, errors: 1 }, error: err.message };
    }
  }
  return { r: underHold(r, state), epoch };
}

/**
 * A named Synchronize: the unit's named messages (`Identifiers`), in committed batches with one
 * result each (writes.ts `runItems`). A side run: it neither begins nor finishes a run of the
 * mailbox, so its history baseline, epoch, selection and checkpoint are left as they were.
 */
async function synchronizeNamed(ctx: SyncContext, ids: string[]): Promise<SyncOutcome> {
  const limit = pLimit(CONCURRENCY);
  return runItems(
    ctx,
    ids,
    async (batch) => {
      const refs = batch.map((id) => docRef(ctx, decodeIdentifier(id).messageId));
      const snaps = await ctx.db.getAll(...refs, { fieldMask: ['labels', 'epoch', ...HOLD_FIELDS] });
      const done = await Promise.all(batch.map((id, k) => limit(() => syncNamedOne(ctx, id, snaps[k]))));
      // As many as one commit takes (at least one).
      let bytes = 0;
      let take = 0;
      while (take < done.length) {
        const size = writeBytes((done[take] as { r: ItemResult }).r);
        if (take > 0 && bytes + size > MAX_COMMIT_BYTES) break;
        bytes += size;
        take++;
      }
      const outcomes: ItemOutcome[] = done.slice(0, take).map(({ r }, k) => {
        const id = batch[k] as string;
        const counts = Object.fromEntries(Object.entries(r.counts).map(([c, v]) => [c, v ?? 0]));
        if (r.error !== undefined) return { ...failedEntry(id, r.error), counts: { ...counts, errors: 1 } };
        return { entry: { id, name: '' }, counter: 'seen', counts };
      });
      return {
        outcomes,
        write: (b) =>
          done.slice(0, take).forEach(({ r, epoch }, k) => {
            if (r.write) writeItem(b, refs[k] as DocumentReference, r.write, { doc: epoch });
          }),
      };
    },
    NAMED_BATCH,
  );
}

/**
 * Synchronize: makes the sink equal each mailbox of the task sections (docs/CONTRACT.md). One unit
 * per mailbox, holding the mailbox's lock; a scheduled run of one task joins a running one.
 */
export const synchronizeAction: FetchActionSpec = {
  name: 'Synchronize',
  summary: 'copies each mailbox of the task sections into the sink, and keeps it equal to the mailbox',
  parameters: ['Identifiers', 'IdentifiersXML'],
  // Given identifiers, it synchronizes those messages only (`synchronizeNamed`).
  parse: (p, config): FetchParams => {
    const named = parseNamed(p, config);
    return named ? { identifiers: JSON.stringify(named) } : {};
  },
  units: 'identifiers',
  // A push Synchronize (push/queue.ts) reads only the address that was notified.
  namedMailboxes: (p) =>
    namedMailboxes(p) ?? (typeof p['pushAddress'] === 'string' && typeof p['pushTask'] === 'string' ? { [p['pushTask']]: [p['pushAddress']] } : undefined),
  lock: true,
  coalesces: true,
  scopes: GMAIL_SCOPES,
  methods: ['getProfile', 'messages.list', 'history.list', 'messages.get'],
  counters: SYNC_COUNTERS,
  run: (ctx) => {
    const ids = namedOf(ctx);
    return ids === undefined ? synchronize(ctx) : synchronizeNamed(ctx, ids);
  },
  resultsFor: (p) => (typeof p['identifiers'] === 'string' ? 'tasks' : undefined),
};
