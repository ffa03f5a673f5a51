/**
 * Holds on sink documents: what a Synchronize does to a document that is on hold, or whose hold
 * was just released (docs/CONTRACT.md, "Hold and ReleaseHold").
 *
 * Terminology (fields of the sink document):
 * - `held: true`: on hold. A Synchronize never deletes or overwrites it; when its message left
 *   Gmail (or the task's selection) it marks it `deletedInSource: true`, when its labels changed
 *   `changedInSource: true`, and keeps everything else as it was.
 * - `released: true`: ReleaseHold took the hold off and the next Synchronize has not yet examined
 *   the document. That run examines every released document of its mailbox again, whatever its
 *   mode: a full listing sees it (or sweeps it), and an incremental run, which would not see an
 *   old deletion or change again in Gmail's history, looks each one up after its history pages
 *   (`releasedPage`). Once examined the document is as any other: current, or gone.
 *
 * Pure decisions plus one page query; the writes are made by Synchronize's own commits.
 */
import { FieldPath, FieldValue, type DocumentSnapshot } from '@google-cloud/firestore';
import { encodeIdentifier } from '../../aci/identifiers.js';
import { RunAborted } from '../../gmail/pacing.js';
import { COLLECTIONS, type Checkpoint, type Counts } from '../../store/model.js';
import { MAX_RESULT_BATCH, ResultStore, type ResultEntry } from '../../store/results.js';
import { cloneProgress, listingCheckpoint, saveProgress } from './listing.js';
import type { UnitContext, UnitOutcome } from '../spec.js';

/** The sink document's fields that Synchronize reads to apply holds. */
export const HOLD_FIELDS = ['held', 'released'] as const;

/** Where a sink document stands: on hold, released and not yet examined again, or neither. */
export type HoldState = 'held' | 'released' | null;

export function holdStateOf(snap: DocumentSnapshot | undefined): HoldState {
  if (!snap?.exists) return null;
  if (snap.get('held') === true) return 'held';
  return snap.get('released') === true ? 'released' : null;
}

/** What examining a released document clears: the hold's marks. */
const CLEARED = { released: FieldValue.delete(), deletedInSource: FieldValue.delete(), changedInSource: FieldValue.delete() };

/** One Synchronize write, as synchronize.ts decides it (`flag`: these fields only). */
export type SyncWrite =
  | { op: 'set'; doc: object }
  | { op: 'update'; labels: string[]; historyId: string }
  | { op: 'mark' }
  | { op: 'remove' }
  | { op: 'flag'; fields: Record<string, unknown> }
  | null;

/**
 * What a Synchronize writes instead of `write` for a document in `state`. A held document is
 * marked, never removed or changed, and its would-be deletion or update is counted `unchanged`;
 * a released one is written as decided, with its marks cleared (a removal needs nothing more).
 * A failure (`error`) writes what it would have: a released document then stays released.
 */
export function underHold<R extends { write: SyncWrite; counts: Partial<Counts>; error?: string }>(r: R, state: HoldState): R {
  if (state === null || r.error !== undefined) return r;
  const w = r.write;
  if (state === 'held') {
    if (w?.op === 'remove' || w?.op === 'update') {
      const { deleted, updated, ...rest } = r.counts;
      void deleted;
      void updated;
      const fields = w.op === 'remove' ? { deletedInSource: true } : { changedInSource: true };
      return { ...r, write: { op: 'flag', fields }, counts: { ...rest, unchanged: (rest['unchanged'] ?? 0) + 1 } } as R;
    }
    return r;
  }
  if (w?.op === 'remove' || w?.op === 'set') return r;
  if (w?.op === 'update') return { ...r, write: { op: 'flag', fields: { labels: w.labels, historyId: w.historyId, ...CLEARED } } } as R;
  return { ...r, write: { op: 'flag', fields: { ...(w?.op === 'flag' ? w.fields : {}), ...CLEARED } } } as R;
}

/** What the sweep does with a document its listing did not see: delete it, unless it is held (then it is marked). */
export function sweptUnderHold(snap: DocumentSnapshot): 'delete' | { deletedInSource: true } {
  return snap.get('held') === true ? { deletedInSource: true } : 'delete';
}

/** A page of the unit's mailbox's documents with `field: true`, in id order after `after`, with `fields` only. */
function markedPage(ctx: UnitContext, field: 'held' | 'released', after: string | null, limit: number, fields: string[]) {
  let q = ctx.db
    .collection(COLLECTIONS.documents)
    .where('task', '==', ctx.task.toUpperCase())
    .where('user', '==', ctx.user.toLowerCase())
    .where(field, '==', true)
    .orderBy(FieldPath.documentId())
    .select(...fields);
  if (after !== null) q = q.startAfter(after);
  return q.limit(limit).get();
}

/** Released documents looked up per page of an incremental run. */
const RELEASED_PAGE = 450;

/**
 * After an incremental run's history pages: the next page of the mailbox's released documents
 * (after `sweepAfter`) becomes the items to examine, or the run is done when none is left.
 */
export async function releasedPage(ctx: UnitContext, cp: Checkpoint): Promise<void> {
  const page = await markedPage(ctx, 'released', cp.sweepAfter, RELEASED_PAGE, ['messageId']);
  const next = cloneProgress(ctx.progress);
  const ids = page.docs.map((d) => String(d.get('messageId')));
  next.checkpoint = ids.length
    ? { ...cp, phase: 'fetching', items: ids, done: 0, next: null, sweepAfter: page.docs[page.docs.length - 1]?.id ?? null }
    : { ...cp, phase: 'done', sweepAfter: null };
  await saveProgress(ctx, next);
}

/**
 * `FetchAction=Identifiers&Held=true`: the identifiers of the mailbox's held documents, read from
 * the sink (no Gmail call), with each document's subject as its name and its marks as attributes
 * (`deletedInSource`, `changedInSource`: true or false). One committed page of entries at a time,
 * the last document id being the cursor (`pageToken`), so a take-over resumes after the last page.
 */
export async function heldIdentifiers(ctx: UnitContext): Promise<UnitOutcome> {
  const results = new ResultStore(ctx.db);
  try {
    if (ctx.progress.checkpoint === null) {
      const next = cloneProgress(ctx.progress);
      next.checkpoint = listingCheckpoint();
      await saveProgress(ctx, next);
    }
    for (;;) {
      if (ctx.shouldEnd()) return { kind: 'interrupted' };
      const cp = ctx.progress.checkpoint as Checkpoint;
      if (cp.phase === 'done') return { kind: 'finished' };
      const page = await markedPage(ctx, 'held', cp.pageToken, MAX_RESULT_BATCH, ['messageId', 'subject', 'deletedInSource', 'changedInSource']);
      const entries: ResultEntry[] = page.docs.map((d) => ({
        id: encodeIdentifier({ task: ctx.task, address: ctx.user, messageId: String(d.get('messageId')) }),
        name: String(d.get('subject') ?? ''),
        attributes: { deletedInSource: String(d.get('deletedInSource') === true), changedInSource: String(d.get('changedInSource') === true) },
      }));
      const next = cloneProgress(ctx.progress);
      const first = next.messages;
      next.messages += entries.length;
      next.pages += 1;
      next.counts['identifiers'] = (next.counts['identifiers'] ?? 0) + entries.length;
      const last = page.docs[page.docs.length - 1]?.id ?? null;
      next.checkpoint = page.size < MAX_RESULT_BATCH ? { ...cp, phase: 'done', pageToken: null } : { ...cp, pageToken: last };
      const expireAt = ctx.expireWhileRunning();
      await saveProgress(ctx, next, (b) => results.write(b, ctx.token, ctx.index, first, entries, expireAt));
    }
  } catch (e) {
    if (e instanceof RunAborted) return { kind: 'interrupted' };
    throw e;
  }
}
