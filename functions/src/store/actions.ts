/**
 * The state rules of actions (DESIGN §3). Every status change is a Firestore
 * transaction that checks the current status, so Cancel and the worker's claim
 * cannot both win, and a unit's lease has exactly one live holder.
 */
import {
  FieldValue,
  Timestamp,
  type DocumentReference,
  type DocumentSnapshot,
  type Firestore,
  type Transaction,
} from '@google-cloud/firestore';
import {
  COLLECTIONS,
  ENDED_STATUSES,
  zeroCounts,
  type ActionRecord,
  type Checkpoint,
  type Counts,
  type Status,
  type UnitRecord,
} from './model.js';
import { QUERIES } from './queries.js';

/** Outcome of Cancel. */
export type CancelResult = { kind: 'cancelled' | 'already' } | { kind: 'wrong-state'; status: Status } | { kind: 'missing' };
/** Outcome of Stop. */
export type StopResult = { kind: 'stopping'; status: Status } | { kind: 'wrong-state'; status: Status } | { kind: 'missing' };
/** Outcome of a worker's claim of a unit. */
export type ClaimResult =
  | { kind: 'claimed'; unit: UnitRecord; action: ActionRecord }
  | { kind: 'busy'; until: number }
  | { kind: 'overlap'; other: string; unit: UnitRecord }
  | { kind: 'done' };

/** What a unit's work reports when it writes progress. */
export interface UnitProgress {
  pages: number;
  messages: number;
  total: number | null;
  retries: number;
  counts: Counts;
  checkpoint: Checkpoint | null;
  messageErrors: string[];
}

/** The worker lost its lease (it expired and another delivery took over). */
export class LeaseLost extends Error {
  override readonly name = 'LeaseLost';
}

const MAX_NAMED_ERRORS = 100;
const FAILED_PRECONDITION = 9;

export class ActionStore {
  constructor(
    private readonly db: Firestore,
    private readonly now: () => number = Date.now,
  ) {}

  private actionRef(token: string): DocumentReference {
    return this.db.collection(COLLECTIONS.actions).doc(token);
  }

  private unitRef(token: string, unit: string): DocumentReference {
    return this.actionRef(token).collection(COLLECTIONS.units).doc(unit);
  }

  private ts(): Timestamp {
    return Timestamp.fromMillis(this.now());
  }

  /** Writes a new action `Queued`. */
  async create(a: Pick<ActionRecord, 'token' | 'fetchAction' | 'tasks' | 'scheduleKey'>): Promise<ActionRecord> {
    const record: ActionRecord = {
      ...a,
      status: 'Queued',
      queuedAt: this.ts(),
      startedAt: null,
      endedAt: null,
      stopRequested: false,
      attempts: 0,
      unitsTotal: null,
      error: null,
    };
    await this.actionRef(a.token).create(record);
    return record;
  }

  /** Ends an action `Error` if it is still queued (its task could not be created). */
  async failQueued(token: string, message: string): Promise<void> {
    await this.db.runTransaction(async (tx) => {
      const snap = await tx.get(this.actionRef(token));
      if (snap.get('status') !== 'Queued') return;
      tx.update(snap.ref, { status: 'Error', error: message, endedAt: this.ts() });
    });
  }

  async get(token: string): Promise<ActionRecord | null> {
    const snap = await this.actionRef(token).get();
    return snap.exists ? (snap.data() as ActionRecord) : null;
  }

  async units(token: string): Promise<UnitRecord[]> {
    const snaps = await this.actionRef(token).collection(COLLECTIONS.units).orderBy('index').get();
    return snaps.docs.map((d) => d.data() as UnitRecord);
  }

  /** The queue's actions, newest first, optionally of one status. */
  async list(opts: { status?: Status; limit: number }): Promise<ActionRecord[]> {
    let q = this.db.collection(COLLECTIONS.actions).orderBy('queuedAt', 'desc');
    if (opts.status !== undefined) {
      const [eq, order] = QUERIES.actionsByStatus.fields;
      q = this.db
        .collection(COLLECTIONS.actions)
        .where(eq.fieldPath, '==', opts.status)
        .orderBy(order.fieldPath, 'desc');
    }
    const snaps = await q.limit(opts.limit).get();
    return snaps.docs.map((d) => d.data() as ActionRecord);
  }

  /** How many actions there are of each status. */
  async countByStatus(statuses: readonly Status[]): Promise<Record<string, number>> {
    const out: Record<string, number> = {};
    await Promise.all(
      statuses.map(async (s) => {
        const agg = await this.db.collection(COLLECTIONS.actions).where('status', '==', s).count().get();
        out[s] = agg.data().count;
      }),
    );
    return out;
  }

  /** A `Queued` or `Processing` action that reads exactly this task, newest first. */
  async activeOfTask(task: string): Promise<ActionRecord | null> {
    const [key, status, order] = QUERIES.activeSyncOfTask.fields;
    const snaps = await this.db
      .collection(COLLECTIONS.actions)
      .where(key.fieldPath, '==', task)
      .where(status.fieldPath, 'in', ['Queued', 'Processing'])
      .orderBy(order.fieldPath, 'desc')
      .limit(1)
      .get();
    const d = snaps.docs[0];
    return d ? (d.data() as ActionRecord) : null;
  }

  /** Cancel: `Queued` → `Cancelled`. */
  async cancel(token: string): Promise<CancelResult> {
    return this.db.runTransaction(async (tx): Promise<CancelResult> => {
      const snap = await tx.get(this.actionRef(token));
      if (!snap.exists) return { kind: 'missing' };
      const status = snap.get('status') as Status;
      if (status === 'Cancelled') return { kind: 'already' };
      if (status !== 'Queued') return { kind: 'wrong-state', status };
      tx.update(snap.ref, { status: 'Cancelled', endedAt: this.ts() });
      return { kind: 'cancelled' };
    });
  }

  /** Stop: sets `stopRequested` on a `Processing` action. */
  async requestStop(token: string): Promise<StopResult> {
    return this.db.runTransaction(async (tx): Promise<StopResult> => {
      const snap = await tx.get(this.actionRef(token));
      if (!snap.exists) return { kind: 'missing' };
      const status = snap.get('status') as Status;
      if (status !== 'Processing') return { kind: 'wrong-state', status };
      tx.update(snap.ref, { stopRequested: true });
      return { kind: 'stopping', status };
    });
  }

  /** Units of an action still waiting for their first delivery. */
  async queuedUnits(token: string): Promise<UnitRecord[]> {
    const snaps = await this.actionRef(token).collection(COLLECTIONS.units).where('status', '==', 'Queued').get();
    return snaps.docs.map((d) => d.data() as UnitRecord);
  }

  /**
   * The worker's claim of the action's own task (the fan-out). The action stays
   * `Queued` until one of its units starts. Returns null when it ended or was cancelled.
   */
  async claimAction(token: string): Promise<ActionRecord | null> {
    // No transaction: the fan-out changes no status (the units' claims do, in
    // transactions), so it need not contend with a Cancel arriving at once.
    const ref = this.actionRef(token);
    const snap = await ref.get();
    if (!snap.exists) return null;
    const a = snap.data() as ActionRecord;
    if (ENDED_STATUSES.has(a.status)) return null;
    await ref.update({ attempts: FieldValue.increment(1) });
    return { ...a, attempts: a.attempts + 1 };
  }

  /** Ends an action that failed before it had units (for example its domain could not be listed). */
  async failAction(token: string, message: string): Promise<void> {
    await this.db.runTransaction(async (tx) => {
      const snap = await tx.get(this.actionRef(token));
      if (!snap.exists || ENDED_STATUSES.has(snap.get('status') as Status)) return;
      tx.update(snap.ref, { status: 'Error', error: message, endedAt: this.ts() });
    });
  }

  /**
   * Writes the action's units (idempotently: units that exist are kept) and
   * fixes their number. Returns the units as stored.
   */
  async fanOut(token: string, units: { task: string; user: string; id: string; taskId: string }[]): Promise<UnitRecord[]> {
    const writer = this.db.bulkWriter();
    writer.onWriteError((err) => err.code !== 6 && err.failedAttempts < 5);
    units.forEach((u, index) => {
      const rec: UnitRecord = {
        task: u.task,
        user: u.user,
        index,
        status: 'Queued',
        taskId: u.taskId,
        generation: 0,
        startedAt: null,
        endedAt: null,
        lease: null,
        attempts: 0,
        retries: 0,
        pages: 0,
        messages: 0,
        total: null,
        counts: zeroCounts(),
        checkpoint: null,
        error: null,
        messageErrors: [],
      };
      writer.create(this.unitRef(token, u.id), rec).catch(() => {
        // Already written by an earlier delivery: keep its progress.
      });
    });
    await writer.close();
    await this.db.runTransaction(async (tx) => {
      const snap = await tx.get(this.actionRef(token));
      if (snap.get('unitsTotal') !== null) return;
      tx.update(snap.ref, { unitsTotal: units.length });
    });
    // Units that ended before the total was known (or none at all) end the action here.
    await this.finishAction(token);
    return this.units(token);
  }

  /** `state/{task}/mailboxes/{address}`: incremental state and the overlap lock of one mailbox. */
  mailboxStateRef(task: string, user: string): DocumentReference {
    return this.db.collection(COLLECTIONS.state).doc(task.toUpperCase()).collection(COLLECTIONS.units).doc(user.toLowerCase());
  }

  /**
   * A delivery's claim of a unit: takes the lease when it is free or expired,
   * answers `busy` while another live holder has it, `overlap` while another
   * action works on the same task and mailbox, and `done` when there is nothing
   * to do (unit ended, action cancelled, or an older task generation). The first
   * claim moves the action to `Processing`; a unit never started of an action
   * being stopped ends `Cancelled` here.
   */
  async claimUnit(token: string, id: string, holder: string, generation: number, leaseMs: number): Promise<ClaimResult> {
    const out = await this.db.runTransaction(async (tx): Promise<ClaimResult | { kind: 'cancel' }> => {
      const [aSnap, uSnap] = await tx.getAll(this.actionRef(token), this.unitRef(token, id));
      if (!aSnap?.exists || !uSnap?.exists) return { kind: 'done' };
      const action = aSnap.data() as ActionRecord;
      const unit = uSnap.data() as UnitRecord;
      const lockRef = this.mailboxStateRef(unit.task, unit.user);
      const lock = await tx.get(lockRef);
      if (ENDED_STATUSES.has(unit.status) || ENDED_STATUSES.has(action.status)) return { kind: 'done' };
      if (generation < unit.generation) return { kind: 'done' };
      const now = this.now();
      if (unit.lease && unit.lease.holder !== holder && unit.lease.expiresAt.toMillis() > now) {
        return { kind: 'busy', until: unit.lease.expiresAt.toMillis() };
      }
      if (action.stopRequested && unit.status === 'Queued') return { kind: 'cancel' };
      const other = lock.get('activeToken') as string | undefined;
      const otherUntil = (lock.get('activeUntil') as Timestamp | undefined)?.toMillis() ?? 0;
      if (other && other !== token && otherUntil > now) return { kind: 'overlap', other, unit };
      const startedAt = unit.startedAt ?? Timestamp.fromMillis(now);
      const lease = { holder, expiresAt: Timestamp.fromMillis(now + leaseMs) };
      tx.update(uSnap.ref, { status: 'Processing', startedAt, lease, generation, attempts: FieldValue.increment(1) });
      tx.set(lockRef, { activeToken: token, activeUntil: lease.expiresAt }, { merge: true });
      if (action.status === 'Queued') tx.update(aSnap.ref, { status: 'Processing', startedAt: Timestamp.fromMillis(now) });
      return {
        kind: 'claimed',
        action: { ...action, status: 'Processing' },
        unit: { ...unit, status: 'Processing', startedAt, lease, generation, attempts: unit.attempts + 1 },
      };
    });
    if (out.kind === 'cancel') {
      await this.endUnit(token, id, null, 'Cancelled', {});
      return { kind: 'done' };
    }
    return out;
  }

  /** Moves a waiting unit to its next task generation (it was re-enqueued with a delay). */
  async requeue(token: string, id: string, generation: number, taskId: string): Promise<void> {
    await this.db.runTransaction(async (tx) => {
      const snap = await tx.get(this.unitRef(token, id));
      if (!snap.exists || ENDED_STATUSES.has(snap.get('status') as Status)) return;
      if ((snap.get('generation') as number) >= generation) return;
      tx.update(snap.ref, { generation, taskId });
    });
  }

  /** The history id of the last complete sync of a task's mailbox, if any. */
  async lastHistoryId(task: string, user: string): Promise<string | null> {
    const snap = await this.mailboxStateRef(task, user).get();
    return (snap.get('historyId') as string | undefined) ?? null;
  }

  /** Runs `write` in a transaction on the unit if `holder` still has its lease; throws LeaseLost otherwise. */
  private async whileHeld(
    token: string,
    id: string,
    holder: string,
    write: (tx: Transaction, snap: DocumentSnapshot) => void,
  ): Promise<void> {
    await this.db.runTransaction(async (tx) => {
      const snap = await tx.get(this.unitRef(token, id));
      if (snap.get('lease.holder') !== holder) throw new LeaseLost(`the lease of ${id} passed to another delivery`);
      write(tx, snap);
    });
  }

  /** Checks the holder still has the lease and extends it; throws LeaseLost otherwise. */
  async renewLease(token: string, id: string, holder: string, leaseMs: number): Promise<void> {
    await this.whileHeld(token, id, holder, (tx, snap) => {
      const until = Timestamp.fromMillis(this.now() + leaseMs);
      const unit = snap.data() as UnitRecord;
      tx.update(snap.ref, { 'lease.expiresAt': until });
      tx.set(this.mailboxStateRef(unit.task, unit.user), { activeToken: token, activeUntil: until }, { merge: true });
    });
  }

  /** Writes a unit's progress and checkpoint, if the holder still has the lease. */
  async saveProgress(token: string, id: string, holder: string, p: UnitProgress): Promise<void> {
    await this.whileHeld(token, id, holder, (tx, snap) => {
      tx.update(snap.ref, { ...p, messageErrors: p.messageErrors.slice(0, MAX_NAMED_ERRORS) });
    });
  }

  /** Whether Stop was asked for the action. */
  async stopRequested(token: string): Promise<boolean> {
    const snap = await this.actionRef(token).get();
    return snap.get('stopRequested') === true || snap.get('status') === 'Cancelled';
  }

  /**
   * Hands a unit over to its next task generation: releases the lease and
   * records the new task, so the continuation can claim it at once.
   */
  async handOver(token: string, id: string, holder: string, generation: number, taskId: string, p: UnitProgress): Promise<void> {
    await this.whileHeld(token, id, holder, (tx, snap) => {
      tx.update(snap.ref, { ...p, messageErrors: p.messageErrors.slice(0, MAX_NAMED_ERRORS), lease: null, generation, taskId });
    });
  }

  /**
   * Ends a unit (when `holder` is given, only if it still holds the lease),
   * releases its mailbox and, for a finished Synchronize, advances the
   * mailbox's history id; then ends the action if this was its last unit.
   */
  async endUnit(
    token: string,
    id: string,
    holder: string | null,
    status: Status,
    p: Partial<UnitProgress> & { error?: string },
    historyId?: string,
  ): Promise<void> {
    // Only the unit and its mailbox state are locked here: units of one action
    // end at once (a Stop), and a transaction on the action from each of them
    // would contend and back off for seconds.
    const ended = await this.db.runTransaction(async (tx) => {
      const uSnap = await tx.get(this.unitRef(token, id));
      if (!uSnap.exists) return false;
      const unit = uSnap.data() as UnitRecord;
      const lockRef = this.mailboxStateRef(unit.task, unit.user);
      const lock = await tx.get(lockRef);
      if (ENDED_STATUSES.has(unit.status)) return false;
      // Without a holder only a unit that never started may be ended (Cancel, Stop).
      if (holder === null && unit.status !== 'Queued') return false;
      if (holder !== null && unit.lease?.holder !== holder) throw new LeaseLost(`the lease of ${id} passed to another delivery`);
      const now = this.ts();
      const update: Record<string, unknown> = { ...p, status, endedAt: now, lease: null };
      if (p.messageErrors) update.messageErrors = p.messageErrors.slice(0, MAX_NAMED_ERRORS);
      tx.update(uSnap.ref, update);
      // Incremental state advances only when a Synchronize finished the mailbox.
      const stateUpdate: Record<string, unknown> = {};
      if (status === 'Finished' && historyId !== undefined) {
        stateUpdate.historyId = historyId;
        stateUpdate.syncedAt = now;
        stateUpdate.syncedBy = token;
      }
      if (lock.get('activeToken') === token) {
        stateUpdate.activeToken = FieldValue.delete();
        stateUpdate.activeUntil = FieldValue.delete();
      }
      if (Object.keys(stateUpdate).length) tx.set(lockRef, stateUpdate, { merge: true });
      return true;
    });
    if (ended) await this.finishAction(token);
  }

  /**
   * Ends the action once it has fanned out and none of its units is still
   * queued or running: `Error` if any failed (each named), else `Stopped` if a
   * Stop was asked, else `Finished`. The write is conditional on the action not
   * having changed since it was read (optimistic, so that the units that end
   * together do not queue up on a lock); a lost race reads again.
   */
  async finishAction(token: string): Promise<void> {
    const ref = this.actionRef(token);
    const units = ref.collection(COLLECTIONS.units);
    for (let attempt = 0; attempt < 50; attempt++) {
      const snap = await ref.get();
      if (!snap.exists || !snap.updateTime) return;
      const a = snap.data() as ActionRecord;
      if (ENDED_STATUSES.has(a.status) || a.unitsTotal === null) return;
      const open = await units.where('status', 'in', ['Queued', 'Processing']).count().get();
      if (open.data().count > 0) return;
      const failed = await units.where('status', '==', 'Error').limit(MAX_NAMED_ERRORS).get();
      const error = failed.docs.map((d) => `${d.get('task') as string}/${d.get('user') as string}: ${(d.get('error') as string | null) ?? 'failed'}`).join('; ');
      try {
        await ref.update(
          {
            status: failed.empty ? (a.stopRequested ? 'Stopped' : 'Finished') : 'Error',
            error: failed.empty ? null : error,
            endedAt: this.ts(),
          },
          { lastUpdateTime: snap.updateTime },
        );
        return;
      } catch (e) {
        if ((e as { code?: number }).code !== FAILED_PRECONDITION) throw e;
      }
    }
  }
}
