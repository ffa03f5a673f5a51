/**
 * Synchronize of one mailbox unit (DESIGN §3, §4): a full listing the first
 * time (or when Gmail no longer has the history asked for), `history.list`
 * after that. Works page by page from the unit's checkpoint, fetches messages
 * with bounded concurrency under the mailbox's pacer, writes sink documents in
 * batches, and stops between batches when asked.
 */
import { FieldPath, type DocumentReference, type Firestore } from '@google-cloud/firestore';
import type { gmail_v1 } from 'googleapis/build/src/apis/gmail/index.js';
import pLimit from 'p-limit';
import type { TaskConfig } from '../config.js';
import type { GmailCaller } from '../gmail/caller.js';
import { PermanentGmailError, classify } from '../gmail/errors.js';
import { RunAborted } from '../gmail/pacing.js';
import type { UnitProgress } from '../store/actions.js';
import { COLLECTIONS, documentId, type Checkpoint, type Counts } from '../store/model.js';
import { buildDocument, estimateBytes, type SinkDocument } from './document.js';

/** Messages fetched, then written, together; the stop flag is checked between batches. */
const BATCH = 50;
/** Messages fetched at once within a batch. */
const CONCURRENCY = 10;
const PAGE_SIZE = 500;
/** Firestore allows 500 writes and 10 MiB a commit; stay under both. */
const MAX_WRITES = 450;
const MAX_COMMIT_BYTES = 8 * 1024 * 1024;

/** How a unit's run ended (a transient failure is thrown instead). */
export type SyncOutcome =
  | { kind: 'finished'; historyId: string | null }
  | { kind: 'stopped' }
  | { kind: 'budget' }
  | { kind: 'failed'; error: string };

export interface SyncContext {
  db: Firestore;
  gmail: gmail_v1.Gmail;
  caller: GmailCaller;
  token: string;
  task: string;
  user: string;
  taskConfig: TaskConfig;
  /** The history id of the last complete sync, if any. */
  lastHistoryId: string | null;
  /** Progress so far (from the unit's record); updated in place. */
  progress: UnitProgress;
  /** True once the run must end (Stop, lost lease). */
  shouldStop: () => boolean;
  /** True once the time budget is spent. */
  outOfTime: () => boolean;
  /** Persists progress (the caller rate-limits and checks the lease). */
  save: (force: boolean) => Promise<void>;
}

type Change = 'changed' | 'deleted';

function docRef(ctx: SyncContext, messageId: string): DocumentReference {
  return ctx.db.collection(COLLECTIONS.documents).doc(documentId(ctx.task, ctx.user, messageId));
}

function bump(ctx: SyncContext, k: keyof Counts, n = 1): void {
  ctx.progress.counts[k] += n;
}

/** Runs (or resumes) the unit's Synchronize until it ends, stops or runs out of time. */
export async function synchronize(ctx: SyncContext): Promise<SyncOutcome> {
  const users = ctx.gmail.users;
  try {
    if (ctx.progress.checkpoint === null) {
      const profile = await ctx.caller.call('getProfile', `getProfile of ${ctx.user}`, () => users.getProfile({ userId: ctx.user }));
      const baseline = profile.data.historyId ?? null;
      // A task with a search query cannot tell from history whether a changed
      // message matches it, so it always lists in full (and sweeps).
      const incremental = ctx.lastHistoryId !== null && ctx.taskConfig.query === '';
      ctx.progress.checkpoint = {
        mode: incremental ? 'history' : 'full',
        pageToken: null,
        startHistoryId: incremental ? ctx.lastHistoryId : null,
        baselineHistoryId: baseline,
        sweep: ctx.lastHistoryId !== null,
      };
      ctx.progress.total = incremental ? null : (profile.data.messagesTotal ?? null);
      await ctx.save(true);
    }
    for (;;) {
      if (ctx.shouldStop()) return { kind: 'stopped' };
      if (ctx.outOfTime()) return { kind: 'budget' };
      const cp: Checkpoint = ctx.progress.checkpoint;
      const done = cp.mode === 'full' ? await fullPage(ctx, cp) : await historyPage(ctx, cp);
      if (done === 'stopped') return { kind: 'stopped' };
      if (done === 'last') break;
    }
    const cp = ctx.progress.checkpoint;
    if (cp.mode === 'full' && cp.sweep) {
      await sweep(ctx);
      if (ctx.shouldStop()) return { kind: 'stopped' };
    }
    if (ctx.progress.messageErrors.length > 0) {
      return { kind: 'failed', error: `${ctx.progress.counts.errors} messages failed after retries: ${ctx.progress.messageErrors.slice(0, 5).join('; ')}` };
    }
    return { kind: 'finished', historyId: cp.baselineHistoryId };
  } catch (e) {
    if (e instanceof PermanentGmailError) return { kind: 'failed', error: e.message };
    // Told to end while waiting on Gmail: the checkpoint still marks the page's start.
    if (e instanceof RunAborted) return { kind: 'stopped' };
    throw e;
  }
}

/** One messages.list page. */
async function fullPage(ctx: SyncContext, cp: Checkpoint): Promise<'more' | 'last' | 'stopped'> {
  const t = ctx.taskConfig;
  const res = await ctx.caller.call('messages.list', `messages.list of ${ctx.user}`, () =>
    ctx.gmail.users.messages.list({
      userId: ctx.user,
      maxResults: PAGE_SIZE,
      pageToken: cp.pageToken ?? undefined,
      q: t.query || undefined,
      labelIds: t.labels.length ? [...t.labels] : undefined,
      includeSpamTrash: t.includeSpamTrash,
    }),
  );
  const ids = (res.data.messages ?? []).map((m) => m.id).filter((id): id is string => !!id);
  const changes = new Map<string, Change>(ids.map((id) => [id, 'changed']));
  if (!(await applyChanges(ctx, changes, cp.sweep))) return 'stopped';
  return endPage(ctx, cp, res.data.nextPageToken ?? null);
}

/** One history.list page; falls back to a full listing with sweep when Gmail answers 404. */
async function historyPage(ctx: SyncContext, cp: Checkpoint): Promise<'more' | 'last' | 'stopped'> {
  let res;
  try {
    res = await ctx.caller.call('history.list', `history.list of ${ctx.user}`, () =>
      ctx.gmail.users.history.list({
        userId: ctx.user,
        startHistoryId: cp.startHistoryId ?? undefined,
        pageToken: cp.pageToken ?? undefined,
        maxResults: PAGE_SIZE,
      }),
    );
  } catch (e) {
    if (e instanceof PermanentGmailError && e.status === 404) {
      const profile = await ctx.caller.call('getProfile', `getProfile of ${ctx.user}`, () => ctx.gmail.users.getProfile({ userId: ctx.user }));
      ctx.progress.checkpoint = {
        mode: 'full',
        pageToken: null,
        startHistoryId: null,
        baselineHistoryId: profile.data.historyId ?? cp.baselineHistoryId,
        sweep: true,
      };
      ctx.progress.total = profile.data.messagesTotal ?? null;
      await ctx.save(true);
      return 'more';
    }
    throw e;
  }
  // The last record for a message decides: a later add after a delete is a change.
  const changes = new Map<string, Change>();
  for (const h of res.data.history ?? []) {
    for (const m of h.messagesAdded ?? []) if (m.message?.id) changes.set(m.message.id, 'changed');
    for (const m of h.labelsAdded ?? []) if (m.message?.id) changes.set(m.message.id, 'changed');
    for (const m of h.labelsRemoved ?? []) if (m.message?.id) changes.set(m.message.id, 'changed');
    for (const m of h.messagesDeleted ?? []) if (m.message?.id) changes.set(m.message.id, 'deleted');
  }
  if (!(await applyChanges(ctx, changes, false))) return 'stopped';
  return endPage(ctx, cp, res.data.nextPageToken ?? null);
}

async function endPage(ctx: SyncContext, cp: Checkpoint, next: string | null): Promise<'more' | 'last'> {
  ctx.progress.pages += 1;
  ctx.progress.checkpoint = { ...cp, pageToken: next };
  await ctx.save(true);
  return next ? 'more' : 'last';
}

/** Whether a message belongs in the task's sink by its labels. */
function wanted(ctx: SyncContext, labels: string[]): boolean {
  const t = ctx.taskConfig;
  if (!t.includeSpamTrash && (labels.includes('SPAM') || labels.includes('TRASH'))) return false;
  return t.labels.every((l) => labels.includes(l));
}

interface Pending {
  set: Map<string, SinkDocument>;
  update: Map<string, { labels: string[]; historyId: string; sweepMark?: string }>;
  mark: string[];
  remove: string[];
}

/** Fetches and writes a set of changes in batches; false when stopped part-way. */
async function applyChanges(ctx: SyncContext, changes: Map<string, Change>, markSweep: boolean): Promise<boolean> {
  const entries = [...changes];
  const limit = pLimit(CONCURRENCY);
  for (let i = 0; i < entries.length; i += BATCH) {
    if (ctx.shouldStop()) return false;
    const batch = entries.slice(i, i + BATCH);
    const snaps = await ctx.db.getAll(...batch.map(([id]) => docRef(ctx, id)), { fieldMask: ['labels', 'historyId'] });
    const existing = new Map(batch.map(([id], k) => [id, snaps[k]?.exists ? (snaps[k]?.get('labels') as string[]) : null]));
    const pending: Pending = { set: new Map(), update: new Map(), mark: [], remove: [] };
    let stopped = false;
    await Promise.all(
      batch.map(([id, change]) =>
        limit(async () => {
          if (ctx.shouldStop()) {
            stopped = true;
            return;
          }
          await applyOne(ctx, id, change, existing.get(id) ?? null, pending, markSweep);
        }),
      ),
    );
    await commit(ctx, pending, markSweep);
    await ctx.save(false);
    if (stopped) return false;
  }
  return true;
}

async function applyOne(
  ctx: SyncContext,
  id: string,
  change: Change,
  labels: string[] | null,
  pending: Pending,
  markSweep: boolean,
): Promise<void> {
  const users = ctx.gmail.users;
  ctx.progress.messages += 1;
  if (change === 'deleted') {
    if (labels !== null) {
      pending.remove.push(id);
      bump(ctx, 'deleted');
    }
    return;
  }
  bump(ctx, 'seen');
  try {
    if (labels !== null) {
      const res = await ctx.caller.call('messages.get', `messages.get ${id} of ${ctx.user}`, () =>
        users.messages.get({ userId: ctx.user, id, format: 'minimal' }),
      );
      const now = [...(res.data.labelIds ?? [])].sort();
      if (!wanted(ctx, now)) {
        pending.remove.push(id);
        bump(ctx, 'deleted');
      } else if (now.join(',') !== [...labels].sort().join(',')) {
        pending.update.set(id, { labels: now, historyId: res.data.historyId ?? '' });
        bump(ctx, 'updated');
      } else {
        if (markSweep) pending.mark.push(id);
        bump(ctx, 'unchanged');
      }
      return;
    }
    const res = await ctx.caller.call('messages.get', `messages.get ${id} of ${ctx.user}`, () =>
      users.messages.get({ userId: ctx.user, id, format: 'raw' }),
    );
    if (!wanted(ctx, res.data.labelIds ?? [])) return;
    pending.set.set(id, await buildDocument(ctx.task, ctx.user, res.data));
    bump(ctx, 'added');
  } catch (e) {
    if (e instanceof RunAborted) {
      // Not examined after all: the page is read again by the next run.
      ctx.progress.messages -= 1;
      ctx.progress.counts.seen -= 1;
      return;
    }
    const err = classify(e, `message ${id} of ${ctx.user}`);
    if (err instanceof PermanentGmailError && err.status === 404) {
      // Gone from the mailbox since it was listed: gone from the sink too.
      if (labels !== null) {
        pending.remove.push(id);
        bump(ctx, 'deleted');
      }
      return;
    }
    if (err instanceof PermanentGmailError && (err.status === 401 || err.status === 403)) throw err;
    bump(ctx, 'errors');
    ctx.progress.messageErrors.push(err.message);
  }
}

/** Writes a batch's documents within Firestore's per-commit limits. */
async function commit(ctx: SyncContext, p: Pending, markSweep: boolean): Promise<void> {
  let batch = ctx.db.batch();
  let writes = 0;
  let bytes = 0;
  const flush = async () => {
    if (writes > 0) await batch.commit();
    batch = ctx.db.batch();
    writes = 0;
    bytes = 0;
  };
  const add = async (size: number, op: (b: FirebaseFirestore.WriteBatch) => void) => {
    if (writes + 1 > MAX_WRITES || bytes + size > MAX_COMMIT_BYTES) await flush();
    op(batch);
    writes++;
    bytes += size;
  };
  const mark = markSweep ? { sweepMark: ctx.token } : {};
  for (const [id, doc] of p.set) await add(estimateBytes(doc), (b) => b.set(docRef(ctx, id), { ...doc, ...mark }));
  for (const [id, u] of p.update) await add(256, (b) => b.update(docRef(ctx, id), { ...u, ...mark }));
  for (const id of p.mark) await add(128, (b) => b.update(docRef(ctx, id), mark));
  for (const id of p.remove) await add(64, (b) => b.delete(docRef(ctx, id)));
  await flush();
}

/** After a full listing that replaces lost history: deletes the task's documents no longer in the mailbox. */
async function sweep(ctx: SyncContext): Promise<void> {
  const q = ctx.db
    .collection(COLLECTIONS.documents)
    .where('task', '==', ctx.task.toUpperCase())
    .where('user', '==', ctx.user.toLowerCase())
    .orderBy(FieldPath.documentId())
    .select('sweepMark');
  let last: string | undefined;
  for (;;) {
    const page = await (last ? q.startAfter(last) : q).limit(500).get();
    if (page.empty) return;
    const stale = page.docs.filter((d) => d.get('sweepMark') !== ctx.token);
    if (stale.length) {
      const b = ctx.db.batch();
      for (const d of stale) b.delete(d.ref);
      await b.commit();
      bump(ctx, 'deleted', stale.length);
    }
    last = page.docs[page.docs.length - 1]?.id;
    if (ctx.shouldStop()) return;
  }
}
