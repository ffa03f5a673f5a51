/**
 * The action records, `actions/{token}` (DESIGN §3): creation (and the
 * coalescing of scheduled runs), Cancel, Stop, and the end of an action once
 * its units ended. Every status change is a Firestore transaction that checks
 * the current status, so Cancel and the worker's claim cannot both win. The
 * units themselves are units.ts's; their mailboxes, mailboxes.ts's.
 */
import { FieldValue, Timestamp, type DocumentReference, type Firestore } from '@google-cloud/firestore';
import { COLLECTIONS, ENDED_STATUSES, type ActionRecord, type Status, type UnitRecord } from './model.js';
import { QUERIES } from './queries.js';

/** Outcome of Cancel. */
export type CancelResult = { kind: 'cancelled' | 'already' } | { kind: 'wrong-state'; status: Status } | { kind: 'missing' };
/** Outcome of Stop. */
export type StopResult = { kind: 'stopping'; status: Status } | { kind: 'wrong-state'; status: Status } | { kind: 'missing' };

const MAX_NAMED_ERRORS = 100;
const FAILED_PRECONDITION = 9;

export class ActionStore {
  constructor(
    private readonly db: Firestore,
    private readonly now: () => number = Date.now,
  ) {}

  ref(token: string): DocumentReference {
    return this.db.collection(COLLECTIONS.actions).doc(token);
  }

  private ts(): Timestamp {
    return Timestamp.fromMillis(this.now());
  }

  private newRecord(a: Pick<ActionRecord, 'token' | 'fetchAction' | 'tasks' | 'scheduleKey'>): ActionRecord {
    return {
      ...a,
      status: 'Queued',
      queuedAt: this.ts(),
      startedAt: null,
      endedAt: null,
      stopRequested: false,
      attempts: 0,
      unitsTotal: null,
      fanOutGeneration: 0,
      error: null,
    };
  }

  /** Writes a new action `Queued`. */
  async create(a: Pick<ActionRecord, 'token' | 'fetchAction' | 'tasks' | 'scheduleKey'>): Promise<ActionRecord> {
    const record = this.newRecord(a);
    await this.ref(a.token).create(record);
    return record;
  }

  /**
   * A scheduled action of one task, in one transaction: the task's `Queued` or
   * `Processing` action if there is one (`created: false`), else a new one.
   * Both deliveries of a doubled scheduler tick read and write the task's
   * schedule document, so one of them retries and finds the other's action.
   */
  async createScheduled(a: Pick<ActionRecord, 'token' | 'fetchAction' | 'tasks'> & { scheduleKey: string }): Promise<{ record: ActionRecord; created: boolean }> {
    const [key, status, order] = QUERIES.activeSyncOfTask.fields;
    const active = this.db
      .collection(COLLECTIONS.actions)
      .where(key.fieldPath, '==', a.scheduleKey)
      .where(status.fieldPath, 'in', ['Queued', 'Processing'])
      .orderBy(order.fieldPath, 'desc')
      .limit(1);
    const schedRef = this.db.collection(COLLECTIONS.state).doc(a.scheduleKey.toUpperCase());
    return this.db.runTransaction(async (tx) => {
      const [, found] = await Promise.all([tx.get(schedRef), tx.get(active)]);
      const d = found.docs[0];
      if (d) return { record: d.data() as ActionRecord, created: false };
      const record = this.newRecord(a);
      tx.create(this.ref(a.token), record);
      tx.set(schedRef, { scheduledToken: a.token, scheduledAt: record.queuedAt }, { merge: true });
      return { record, created: true };
    });
  }

  /** Ends an action `Error` if it is still queued (its task could not be created). */
  async failQueued(token: string, message: string): Promise<void> {
    await this.db.runTransaction(async (tx) => {
      const snap = await tx.get(this.ref(token));
      if (snap.get('status') !== 'Queued') return;
      tx.update(snap.ref, { status: 'Error', error: message, endedAt: this.ts() });
    });
  }

  async get(token: string): Promise<ActionRecord | null> {
    const snap = await this.ref(token).get();
    return snap.exists ? (snap.data() as ActionRecord) : null;
  }

  async units(token: string): Promise<UnitRecord[]> {
    const snaps = await this.ref(token).collection(COLLECTIONS.units).orderBy('index').get();
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
      const snap = await tx.get(this.ref(token));
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
      const snap = await tx.get(this.ref(token));
      if (!snap.exists) return { kind: 'missing' };
      const status = snap.get('status') as Status;
      if (status !== 'Processing') return { kind: 'wrong-state', status };
      tx.update(snap.ref, { stopRequested: true });
      return { kind: 'stopping', status };
    });
  }

  /** Whether Stop was asked for the action (or it was cancelled). */
  async stopRequested(token: string): Promise<boolean> {
    const snap = await this.ref(token).get();
    return snap.get('stopRequested') === true || snap.get('status') === 'Cancelled';
  }

  /**
   * The worker's claim of the action's own task (the fan-out). The action stays
   * `Queued` until one of its units starts. Returns null when it ended or was cancelled.
   */
  async claimAction(token: string): Promise<ActionRecord | null> {
    // No transaction: the fan-out changes no status (the units' claims do, in
    // transactions), so it need not contend with a Cancel arriving at once.
    const ref = this.ref(token);
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
      const snap = await tx.get(this.ref(token));
      if (!snap.exists || ENDED_STATUSES.has(snap.get('status') as Status)) return;
      tx.update(snap.ref, { status: 'Error', error: message, endedAt: this.ts() });
    });
  }

  /** Fixes the action's number of units, once, after all were written; then ends it if none is open. */
  async setUnitsTotal(token: string, total: number): Promise<void> {
    await this.db.runTransaction(async (tx) => {
      const snap = await tx.get(this.ref(token));
      if (!snap.exists || snap.get('unitsTotal') !== null) return;
      tx.update(snap.ref, { unitsTotal: total });
    });
    // Units that ended before the total was known (or none at all) end the action here.
    await this.finish(token);
  }

  /** Moves the action's fan-out to task generation `generation` (reconcile re-enqueued it), unless it moved on. */
  async requeueFanOut(token: string, generation: number): Promise<boolean> {
    return this.db.runTransaction(async (tx) => {
      const snap = await tx.get(this.ref(token));
      if (!snap.exists || ENDED_STATUSES.has(snap.get('status') as Status)) return false;
      if (snap.get('unitsTotal') !== null || ((snap.get('fanOutGeneration') as number | undefined) ?? 0) >= generation) return false;
      tx.update(snap.ref, { fanOutGeneration: generation });
      return true;
    });
  }

  /** Actions still `Queued` or `Processing`, oldest first (for reconcile). */
  async open(limit: number): Promise<ActionRecord[]> {
    const snaps = await this.db.collection(COLLECTIONS.actions).where('status', 'in', ['Queued', 'Processing']).limit(limit).get();
    return snaps.docs.map((d) => d.data() as ActionRecord);
  }

  /**
   * Ends the action once it has fanned out and none of its units is still
   * queued or running: `Error` if any failed (each named), else `Stopped` if a
   * Stop was asked, else `Finished`. The write is conditional on the action not
   * having changed since it was read (optimistic, so that the units that end
   * together do not queue up on a lock); a lost race reads again.
   */
  async finish(token: string): Promise<void> {
    const ref = this.ref(token);
    const units = ref.collection(COLLECTIONS.units);
    for (let attempt = 0; attempt < 50; attempt++) {
      const snap = await ref.get();
      if (!snap.exists || !snap.updateTime) return;
      const a = snap.data() as ActionRecord;
      if (ENDED_STATUSES.has(a.status) || a.unitsTotal === null) return;
      const [open, all] = await Promise.all([units.where('status', 'in', ['Queued', 'Processing']).count().get(), units.count().get()]);
      if (open.data().count > 0) return;
      // Never ends without every unit it must have.
      if (all.data().count < a.unitsTotal) return;
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
