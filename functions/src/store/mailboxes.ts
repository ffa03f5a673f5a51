/**
 * The state of one task's mailbox, `state/{TASK}/mailboxes/{address}`: who may
 * work on it now, and what the last complete Synchronize left behind.
 *
 * Terminology:
 * - lock: `activeToken` and `activeUntil`, the action working on the mailbox;
 *   two actions never work on one mailbox at once (docs/CONTRACT.md).
 * - owner: `owner`, the lease holder (one delivery) that may write the
 *   mailbox's sink documents and state. Every such write is conditional on the
 *   mailbox document being as its holder last saw it, so a delivery that lost
 *   the mailbox (its process paused past its lease, say) can write nothing
 *   more: a fence, not a clock.
 * - epoch: every run of a unit takes the next epoch of its mailbox when it
 *   begins; a full listing marks the documents it sees with it, and its sweep
 *   deletes the documents not marked. `syncedEpoch` is the epoch of the last
 *   run that finished the mailbox: a run older than it was superseded.
 * - historyId: where the next incremental run starts; it only moves forward.
 * - selection: the task's `query`, `labels` and `includeSpamTrash` (canonical: labels sorted,
 *   each once) that the last run to finish the mailbox synchronized with. A run with another
 *   selection clears it when it begins, so that until a run with the new one finishes every run
 *   lists in full and sweeps: the sink is then of no one selection.
 *
 * This module computes the reads and writes; the unit store makes them,
 * together with the unit's own lease.
 */
import { FieldValue, Timestamp, type DocumentReference, type DocumentSnapshot, type Firestore } from '@google-cloud/firestore';
import type { TaskConfig } from '../config.js';
import { COLLECTIONS, type Selection } from './model.js';

export type { Selection } from './model.js';


/** The selection of a task's configuration, canonical: a reordering of its labels is the same selection. */
export function selectionOf(t: Pick<TaskConfig, 'query' | 'labels' | 'includeSpamTrash'>): Selection {
  return { query: t.query, labels: [...new Set(t.labels)].sort(), includeSpamTrash: t.includeSpamTrash };
}

/** Whether two selections select the same messages (null, unknown, equals nothing). */
export function sameSelection(a: Selection | null | undefined, b: Selection | null | undefined): boolean {
  if (!a || !b) return false;
  const x = selectionOf(a);
  const y = selectionOf(b);
  return x.query === y.query && x.includeSpamTrash === y.includeSpamTrash && x.labels.join('\n') === y.labels.join('\n');
}

/** The mailbox document as stored. */
export interface MailboxState {
  activeToken?: string;
  activeUntil?: Timestamp;
  owner?: string;
  epoch?: number;
  syncedEpoch?: number;
  historyId?: string;
  syncedAt?: Timestamp;
  syncedBy?: string;
  /** The selection the sink was synchronized with; absent when unknown (see the module's comment). */
  selection?: Selection;
}

/** Where a run stands against the mailbox's other runs. */
export interface RunStanding {
  /** The epoch this run is to use. */
  epoch: number;
  /** The history id of the last complete run, if any. */
  lastHistoryId: string | null;
  /** The selection the sink was synchronized with (null: unknown, so a run lists in full). */
  syncedSelection: Selection | null;
  /** Another run began after `epoch` and finished: this run's work is already done. */
  supersededBy: string | null;
}

/** The delivery no longer owns the mailbox: another one claimed it since. */
export class MailboxLost extends Error {
  override readonly name = 'MailboxLost';
}

/** Compares Gmail history ids (decimal strings of up to 20 digits). */
export function laterHistoryId(a: string | null | undefined, b: string | null | undefined): string | null {
  if (!a) return b ?? null;
  if (!b) return a;
  return BigInt(a) >= BigInt(b) ? a : b;
}

export function mailboxRef(db: Firestore, task: string, user: string): DocumentReference {
  return db.collection(COLLECTIONS.state).doc(task.toUpperCase()).collection(COLLECTIONS.units).doc(user.toLowerCase());
}

export function readMailbox(snap: DocumentSnapshot | undefined): MailboxState {
  return snap?.exists ? (snap.data() as MailboxState) : {};
}

/** The other action whose live lock keeps `token` out, if any. */
export function lockedByOther(m: MailboxState, token: string, now: number): string | null {
  if (!m.activeToken || m.activeToken === token) return null;
  return (m.activeUntil?.toMillis() ?? 0) > now ? m.activeToken : null;
}

/** The writes that give the mailbox to `holder` of action `token` until `until`. */
export function takeMailbox(token: string, holder: string, until: number): Partial<MailboxState> {
  return { activeToken: token, activeUntil: Timestamp.fromMillis(until), owner: holder };
}

/** Throws MailboxLost unless `holder` owns the mailbox. */
export function assertOwner(m: MailboxState, holder: string, what: string): void {
  if (m.owner !== holder) throw new MailboxLost(`${what}: another delivery claimed the mailbox since`);
}

/** The writes that release the mailbox if action `token` (or, when given, `holder`) has it. */
export function releaseMailbox(m: MailboxState, token: string, holder: string | null): Record<string, unknown> {
  const mine = holder !== null ? m.owner === holder : m.activeToken === token;
  if (!mine) return {};
  return { activeToken: FieldValue.delete(), activeUntil: FieldValue.delete(), owner: FieldValue.delete() };
}

/**
 * The standing of a run that begins (epoch null) or resumes at `epoch`. `selection`: the one a run
 * that begins would synchronize with; when it is not the recorded one, `writes` clears that.
 */
export function standing(m: MailboxState, epoch: number | null, selection?: Selection): RunStanding & { begins: boolean; writes: Record<string, unknown> } {
  const lastHistoryId = m.historyId ?? null;
  const syncedSelection = m.selection ?? null;
  if (epoch !== null && (m.syncedEpoch ?? 0) > epoch) {
    return { epoch, lastHistoryId, syncedSelection, supersededBy: m.syncedBy ?? 'another action', begins: false, writes: {} };
  }
  if (epoch !== null && (m.epoch ?? 0) <= epoch) return { epoch, lastHistoryId, syncedSelection, supersededBy: null, begins: false, writes: {} };
  // A new run, or one that another run has since overtaken without finishing: it starts over.
  const next = (m.epoch ?? 0) + 1;
  // Its writes will be of its own selection: until a run finishes the mailbox, the sink is of no one selection.
  const writes = selection !== undefined && syncedSelection !== null && !sameSelection(syncedSelection, selection) ? { selection: FieldValue.delete() } : {};
  return { epoch: next, lastHistoryId, syncedSelection, supersededBy: null, begins: true, writes: { epoch: next, ...writes } };
}

/**
 * The writes that record a finished run: its epoch becomes the synced one, the
 * history id moves forward only, and the selection it synchronized with is
 * recorded (null, unknown: cleared, so the next run lists in full). A
 * superseded run writes nothing.
 */
export function finishedRun(m: MailboxState, token: string, epoch: number, historyId: string | null, selection: Selection | null, now: Timestamp): Record<string, unknown> {
  if ((m.syncedEpoch ?? 0) > epoch) return {};
  const out: Record<string, unknown> = { syncedEpoch: epoch, syncedAt: now, syncedBy: token, selection: selection ? selectionOf(selection) : FieldValue.delete() };
  const next = laterHistoryId(m.historyId, historyId);
  if (next !== null) out.historyId = next;
  return out;
}
