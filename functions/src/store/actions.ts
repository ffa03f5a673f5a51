/**
 * The action records, `actions/{token}` (docs/CONTRACT.md): creation (and the
 * coalescing of scheduled runs), Cancel, Stop, and the end of an action once
 * its units ended. Every status change is a write conditional on the action
 * being as it was read (coalescing alone is a transaction), so Cancel and the
 * worker's claim cannot both win. The units themselves are units.ts's; their
 * mailboxes, mailboxes.ts's.
 */
import { FieldPath, FieldValue, Timestamp, type DocumentReference, type Firestore, type Query, type QueryDocumentSnapshot, type Transaction } from '@google-cloud/firestore';
import { ACTION_ID_LIFETIME_MS, COLLECTIONS, ENDED_STATUSES, actionIdKey, type ActionIdRecord, type ActionRecord, type Status, type UnitRecord } from './model.js';
import { CODES, refusedWith, runTransaction } from './conflicts.js';
import { QUERIES, statusQueryShape } from './queries.js';
import { totalsOfShards, type ActionTotals } from './totals.js';

/** Outcome of Cancel. */
export type CancelResult = { kind: 'cancelled' | 'already' } | { kind: 'wrong-state'; status: Status } | { kind: 'missing' };
/** Outcome of Stop. */
export type StopResult = { kind: 'stopping'; status: Status } | { kind: 'wrong-state'; status: Status } | { kind: 'missing' };

const MAX_NAMED_ERRORS = 100;
/** The document of reconcile's cursor in `state`: task names (letters, digits, `_`, `-`) never start with a dot. */
const RECONCILE_CURSOR = '.reconcile';

/** What a new action is made of. */
export type NewAction = Pick<ActionRecord, 'token' | 'fetchAction' | 'tasks' | 'scheduleKey' | 'params' | 'request' | 'origin' | 'actionId'>;

/** A Fetch's ActionID and the digest of its parameters: what a repeat of it must match. */
export interface ActionIdClaim {
  actionId: string;
  digest: string;
}

/** What creating an action came to. */
export type CreateOutcome =
  /** A new action, written `Queued`. */
  | { kind: 'created'; record: ActionRecord }
  /** A scheduled run joined the task's open action. */
  | { kind: 'joined'; record: ActionRecord }
  /** The ActionID answered this within the day, for the same parameters: nothing written. */
  | { kind: 'repeated'; token: string; coalesced: boolean }
  /** The ActionID answered `token` within the day, for other parameters: nothing written. */
  | { kind: 'differs'; token: string };

/** The times an action list can be ordered by. */
export type ActionTimeField = 'queuedAt' | 'startedAt' | 'endedAt';
/** Milliseconds since the epoch: from `from` (included) to `to` (excluded). */
export interface TimeRange {
  from?: number;
  to?: number;
}
/** Which actions a list holds, and in what order. */
export interface ActionListQuery {
  status?: Status;
  queued?: TimeRange;
  ended?: TimeRange;
  sortBy: ActionTimeField;
  descending: boolean;
  limit: number;
  /** `push`: only actions queued by push notifications; `all`: every action; absent: all but those. */
  origin?: 'push' | 'all';
  /** Only the actions of this ActionID. */
  actionId?: string;
}
/** Actions read per page, and at most in all, when a time range must be checked in memory. */
const LIST_PAGE = 500;
const LIST_SCAN_MAX = 10_000;

export class ActionStore {
  constructor(
    private readonly db: Firestore,
    private readonly now: () => number = Date.now,
    /** Days an ended action and its units are kept (ACTION_RETENTION_DAYS); Firestore's TTL policy deletes them after `expireAt`. */
    private readonly retentionDays = 30,
  ) {}

  /** When a record that ended at `endedAt` expires. */
  expireAt(endedAt: Timestamp): Timestamp {
    return Timestamp.fromMillis(endedAt.toMillis() + this.retentionDays * 86_400_000);
  }

  /**
   * When a record written while its action runs expires (its results, a unit's own lock): 30 days
   * after the retention of an action that ended now, so that it outlives its action.
   */
  expireWhileRunning(): Timestamp {
    return Timestamp.fromMillis(this.now() + (this.retentionDays + 30) * 86_400_000);
  }

  /** The fields of an action's (or a unit's) end: its end time and its expiry. */
  private ended(): { endedAt: Timestamp; expireAt: Timestamp } {
    const endedAt = this.ts();
    return { endedAt, expireAt: this.expireAt(endedAt) };
  }

  ref(token: string): DocumentReference {
    return this.db.collection(COLLECTIONS.actions).doc(token);
  }

  private ts(): Timestamp {
    return Timestamp.fromMillis(this.now());
  }

  /** The record of a new `Queued` action (written by create, createScheduled, or push/queue.ts in its own transaction). */
  newRecord(a: NewAction): ActionRecord {
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
  async create(a: NewAction): Promise<ActionRecord> {
    const record = this.newRecord(a);
    await this.ref(a.token).create(record);
    return record;
  }

  private claimRef(actionId: string): DocumentReference {
    return this.db.collection(COLLECTIONS.actionIds).doc(actionIdKey(actionId));
  }

  /**
   * What the ActionID answered within the day, read in `tx`: the same answer for the same
   * parameters, a refusal for others; null when it answered nothing yet, or over a day ago (the
   * TTL policy may not have deleted its document yet).
   */
  private async claimed(tx: Transaction, claim: ActionIdClaim): Promise<CreateOutcome | null> {
    const snap = await tx.get(this.claimRef(claim.actionId));
    const found = snap.exists ? (snap.data() as ActionIdRecord) : null;
    if (!found || found.expireAt.toMillis() <= this.now()) return null;
    if (found.digest !== claim.digest) return { kind: 'differs', token: found.token };
    return { kind: 'repeated', token: found.token, coalesced: found.coalesced };
  }

  /** Records in `tx` that the ActionID answered `token`, for a day. */
  private claim(tx: Transaction, claim: ActionIdClaim, token: string, coalesced: boolean): void {
    const claimedAt = this.ts();
    const record: ActionIdRecord = {
      actionId: claim.actionId,
      token,
      coalesced,
      digest: claim.digest,
      claimedAt,
      expireAt: Timestamp.fromMillis(claimedAt.toMillis() + ACTION_ID_LIFETIME_MS),
    };
    tx.set(this.claimRef(claim.actionId), record);
  }

  /**
   * A new action with an ActionID, in one transaction with its ActionID's document: when the
   * ActionID answered within the day, that answer (or a refusal, for other parameters) and
   * nothing written. Simultaneous requests with one ActionID contend on its document, so one of
   * them writes and the others, run again, find its answer.
   */
  async createOnce(a: NewAction & { actionId: string }, claim: ActionIdClaim): Promise<CreateOutcome> {
    return runTransaction(this.db, async (tx): Promise<CreateOutcome> => {
      const earlier = await this.claimed(tx, claim);
      if (earlier) return earlier;
      const record = this.newRecord(a);
      tx.create(this.ref(a.token), record);
      this.claim(tx, claim, a.token, false);
      return { kind: 'created', record };
    }, { maxAttempts: 20 });
  }

  /**
   * Forgets that the ActionID answered `token` (its action failed before it could run), so that
   * the client's retry queues the action anew. An ActionID that answered another since is kept.
   */
  async releaseActionId(actionId: string, token: string): Promise<void> {
    const ref = this.claimRef(actionId);
    await runTransaction(this.db, async (tx) => {
      const snap = await tx.get(ref);
      if (snap.exists && snap.get('token') === token) tx.delete(ref);
    });
  }

  /**
   * A scheduled action of one task, in one transaction: the task's `Queued` or
   * `Processing` action if there is one (`joined`), else a new one.
   * Both deliveries of a doubled scheduler tick read and write the task's
   * schedule document, so one of them retries and finds the other's action.
   * With an ActionID, its document is read and written in the same transaction (see createOnce).
   */
  async createScheduled(a: NewAction & { scheduleKey: string }, claim?: ActionIdClaim): Promise<CreateOutcome> {
    const [key, status, order] = QUERIES.activeSyncOfTask.fields;
    const active = this.db
      .collection(COLLECTIONS.actions)
      .where(key.fieldPath, '==', a.scheduleKey)
      .where(status.fieldPath, 'in', ['Queued', 'Processing'])
      .orderBy(order.fieldPath, 'desc')
      .limit(1);
    const schedRef = this.db.collection(COLLECTIONS.state).doc(a.scheduleKey.toUpperCase());
    // Ticks of one schedule delivered together contend on its document: more attempts than the
    // client's default 5, so that every tick of a burst is answered with the one action.
    return runTransaction(this.db, async (tx): Promise<CreateOutcome> => {
      const earlier = claim ? await this.claimed(tx, claim) : null;
      if (earlier) return earlier;
      const [, found] = await Promise.all([tx.get(schedRef), tx.get(active)]);
      const d = found.docs[0];
      if (d) {
        const joined = d.data() as ActionRecord;
        if (claim) this.claim(tx, claim, joined.token, true);
        return { kind: 'joined', record: joined };
      }
      const record = this.newRecord(a);
      tx.create(this.ref(a.token), record);
      tx.set(schedRef, { scheduledToken: a.token, scheduledAt: record.queuedAt }, { merge: true });
      if (claim) this.claim(tx, claim, a.token, false);
      return { kind: 'created', record };
    }, { maxAttempts: 20 });
  }

  /** Ends an action `Error` if it is still queued (its task could not be created); false when it had moved on. */
  async failQueued(token: string, message: string): Promise<boolean> {
    return this.change(token, (a) =>
      a?.status === 'Queued' ? { result: true, update: { status: 'Error', error: message, ...this.ended() } } : { result: false },
    );
  }

  /**
   * Changes the action as `decide` says, given the action as read, if it was
   * not changed in between (else reads again). Optimistic rather than a
   * transaction: no lock is held, so a Cancel or a Stop never waits on, or
   * deadlocks with, a worker's claim that reads the same document.
   */
  private async change<T>(token: string, decide: (a: ActionRecord | null) => { result: T; update?: Record<string, unknown> }): Promise<T> {
    const ref = this.ref(token);
    for (let attempt = 0; ; attempt++) {
      const snap = await ref.get();
      const out = decide(snap.exists ? (snap.data() as ActionRecord) : null);
      if (!out.update || !snap.updateTime) return out.result;
      try {
        await ref.update(out.update, { lastUpdateTime: snap.updateTime });
        return out.result;
      } catch (e) {
        if (!refusedWith(e, CODES.FAILED_PRECONDITION) || attempt >= 50) throw e;
      }
    }
  }

  async get(token: string): Promise<ActionRecord | null> {
    const snap = await this.ref(token).get();
    return snap.exists ? (snap.data() as ActionRecord) : null;
  }

  /** The action's totals as its shards hold them (store/totals.ts): at most TOTAL_SHARDS reads, whatever its units. */
  async totals(token: string): Promise<ActionTotals> {
    const snaps = await this.ref(token).collection(COLLECTIONS.totals).get();
    return totalsOfShards(snaps.docs.map((d) => d.data()));
  }

  async units(token: string): Promise<UnitRecord[]> {
    const snaps = await this.ref(token).collection(COLLECTIONS.units).orderBy('index').get();
    return snaps.docs.map((d) => d.data() as UnitRecord);
  }

  /**
   * The queue's actions as `q` selects and orders them. A time range on the field ordered by is
   * a Firestore range; a range on another field is checked here, on pages read in that order
   * (at most LIST_SCAN_MAX actions examined), since Firestore orders only by the field of its
   * range. Ranges include `from` and exclude `to`; a range on `endedAt` excludes open actions.
   */
  async list(q: ActionListQuery): Promise<ActionRecord[]> {
    if (q.actionId !== undefined) return this.listOfActionId(q, q.actionId);
    const direction = q.descending ? 'desc' : 'asc';
    const ranges: Partial<Record<ActionTimeField, TimeRange>> = { queuedAt: q.queued, endedAt: q.ended };
    // queuedAt <= endedAt, so an end before `to` is also a queue time before `to`; a queue time
    // from `from` on is an end from then on, once a range on endedAt leaves open actions out.
    const own: TimeRange = { ...ranges[q.sortBy] };
    if (q.sortBy === 'queuedAt' && q.ended?.to !== undefined) own.to = Math.min(own.to ?? Infinity, q.ended.to);
    if (q.sortBy === 'endedAt' && q.queued?.from !== undefined && q.ended) own.from = Math.max(own.from ?? -Infinity, q.queued.from);
    let query: Query = this.db.collection(COLLECTIONS.actions);
    if (q.status !== undefined) {
      // Equality on the status, then the time: one composite index per time and direction.
      const [eq] = statusQueryShape(q.sortBy, q.descending).fields;
      if (eq) query = query.where(eq.fieldPath, '==', q.status);
    }
    if (own.from !== undefined) query = query.where(q.sortBy, '>=', Timestamp.fromMillis(own.from));
    if (own.to !== undefined) query = query.where(q.sortBy, '<', Timestamp.fromMillis(own.to));
    query = query.orderBy(q.sortBy, direction);
    const others = (Object.keys(ranges) as ActionTimeField[]).filter((f) => f !== q.sortBy && ranges[f] !== undefined);
    // Push actions are told apart here, not by an indexed filter: old records carry no origin.
    const ofOrigin = (a: ActionRecord): boolean => q.origin === 'all' || (q.origin === 'push') === (a.origin === 'push');
    if (others.length === 0 && q.origin === 'all') {
      const snaps = await query.limit(q.limit).get();
      return snaps.docs.map((d) => d.data() as ActionRecord);
    }
    const inRange = (a: ActionRecord): boolean =>
      others.every((f) => {
        const t = a[f]?.toMillis();
        const r = ranges[f] as TimeRange;
        return t !== undefined && (r.from === undefined || t >= r.from) && (r.to === undefined || t < r.to);
      }) && ofOrigin(a);
    const pageSize = others.length ? LIST_PAGE : Math.min(LIST_PAGE, q.limit + 20);
    const out: ActionRecord[] = [];
    let after: QueryDocumentSnapshot | undefined;
    for (let scanned = 0; out.length < q.limit && scanned < LIST_SCAN_MAX; ) {
      const page = await (after ? query.startAfter(after) : query).limit(pageSize).get();
      for (const d of page.docs) {
        const a = d.data() as ActionRecord;
        if (out.length < q.limit && inRange(a)) out.push(a);
      }
      scanned += page.size;
      if (page.size < pageSize) break;
      after = page.docs[page.docs.length - 1];
    }
    return out;
  }

  /**
   * The actions of one ActionID, as `q` selects and orders them. An ActionID names at most one
   * action a day (a retry answers the first), so its actions are read whole by the one equality
   * (Firestore's single-field index, no composite one) and selected and ordered here, as
   * Firestore would order them: an action without the sorted time before every time.
   */
  private async listOfActionId(q: ActionListQuery, actionId: string): Promise<ActionRecord[]> {
    const snaps = await this.db.collection(COLLECTIONS.actions).where('actionId', '==', actionId).limit(LIST_SCAN_MAX).get();
    const within = (t: Timestamp | null | undefined, r: TimeRange | undefined): boolean => {
      if (r === undefined) return true;
      const ms = t?.toMillis();
      return ms !== undefined && (r.from === undefined || ms >= r.from) && (r.to === undefined || ms < r.to);
    };
    const timeOf = (a: ActionRecord): number => a[q.sortBy]?.toMillis() ?? -Infinity;
    const sign = q.descending ? -1 : 1;
    return snaps.docs
      .map((d) => d.data() as ActionRecord)
      .filter((a) => (q.status === undefined || a.status === q.status) && within(a.queuedAt, q.queued) && within(a.endedAt, q.ended))
      .filter((a) => q.origin === 'all' || (q.origin === 'push') === (a.origin === 'push'))
      .sort((a, b) => sign * (timeOf(a) - timeOf(b) || (a.token < b.token ? -1 : a.token > b.token ? 1 : 0)))
      .slice(0, q.limit);
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

  /** Stop: sets `stopRequested` on a `Processing` action. */
  async requestStop(token: string): Promise<StopResult> {
    return this.change<StopResult>(token, (a) => {
      if (!a) return { result: { kind: 'missing' } };
      if (a.status !== 'Processing') return { result: { kind: 'wrong-state', status: a.status } };
      return { result: { kind: 'stopping', status: a.status }, update: { stopRequested: true } };
    });
  }

  /** Whether Stop was asked for the action (or it was cancelled). */
  async stopRequested(token: string): Promise<boolean> {
    const snap = await this.ref(token).get();
    return snap.get('stopRequested') === true || snap.get('status') === 'Cancelled';
  }

  /** The stop flags of several actions in one read (see stopRequested); a missing action reads as stopping. */
  async stopFlags(tokens: string[]): Promise<Map<string, boolean>> {
    const snaps = tokens.length ? await this.db.getAll(...tokens.map((t) => this.ref(t))) : [];
    return new Map(snaps.map((snap, i) => [tokens[i] as string, !snap.exists || snap.get('stopRequested') === true || snap.get('status') === 'Cancelled']));
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

  /**
   * A claimed unit's action moves `Queued` → `Processing` (startedAt: the claim's time), unless
   * it moved on; returns the status after. Written once: the claimants that race here re-read and
   * find it done. A `Cancelled` answer means Cancel won: the unit must not run.
   */
  async markStarted(token: string, at: Timestamp): Promise<Status | null> {
    return this.change(token, (a) => {
      if (!a) return { result: null };
      if (a.status !== 'Queued') return { result: a.status };
      return { result: 'Processing', update: { status: 'Processing', startedAt: at } };
    });
  }

  /** Ends an action that failed before it had units (for example its domain could not be listed). */
  async failAction(token: string, message: string): Promise<void> {
    await this.change(token, (a) => ({
      result: undefined,
      update: a && !ENDED_STATUSES.has(a.status) ? { status: 'Error', error: message, ...this.ended() } : undefined,
    }));
  }

  /** Fixes the action's number of units, once, after all were written; then ends it if none is open. */
  async setUnitsTotal(token: string, total: number): Promise<void> {
    await this.change(token, (a) => ({ result: undefined, update: a && a.unitsTotal === null ? { unitsTotal: total } : undefined }));
    // Units that ended before the total was known (or none at all) end the action here.
    await this.finish(token);
  }

  /** Moves the action's fan-out to task generation `generation` (reconcile re-enqueued it), unless it moved on. */
  async requeueFanOut(token: string, generation: number): Promise<boolean> {
    return this.change(token, (a) => {
      if (!a || ENDED_STATUSES.has(a.status) || a.unitsTotal !== null || (a.fanOutGeneration ?? 0) >= generation) return { result: false };
      return { result: true, update: { fanOutGeneration: generation, fanOutAt: Timestamp.fromMillis(this.now()) } };
    });
  }

  /** Actions still `Queued` or `Processing`, in token order, after `after` (for reconcile's passes). */
  async open(limit: number, after: string | null = null): Promise<ActionRecord[]> {
    let q = this.db.collection(COLLECTIONS.actions).where('status', 'in', ['Queued', 'Processing']).orderBy(FieldPath.documentId());
    if (after !== null) q = q.startAfter(after);
    const snaps = await q.limit(limit).get();
    return snaps.docs.map((d) => d.data() as ActionRecord);
  }

  /** Where reconcile's last pass stopped (`state/.reconcile`; no task is named so); null: at the start. */
  async reconcileCursor(): Promise<string | null> {
    const snap = await this.db.collection(COLLECTIONS.state).doc(RECONCILE_CURSOR).get();
    return (snap.get('after') as string | undefined) ?? null;
  }

  async setReconcileCursor(after: string | null): Promise<void> {
    await this.db.collection(COLLECTIONS.state).doc(RECONCILE_CURSOR).set({ after, at: this.ts() });
  }

  /**
   * Ends the action once it has fanned out and every one of its units has ended: `Error` if any
   * failed (each named), else `Stopped` if a Stop was asked, else `Finished`. Whether every unit
   * ended is read from the totals' shards (each unit's end adds itself there in the batch that
   * ends it), not from the unit records, so that an action ends even when retention has already
   * removed the records of units that ended long ago. The write is conditional on the action not
   * having changed since it was read (optimistic, so that the units that end together do not
   * queue up on a lock); a lost race reads again. Then the action's records (units, results,
   * shards, lock documents) are given the action's own expiry: their retention counts from the
   * action's end.
   */
  async finish(token: string): Promise<void> {
    const ref = this.ref(token);
    const units = ref.collection(COLLECTIONS.units);
    for (let attempt = 0; attempt < 50; attempt++) {
      const snap = await ref.get();
      if (!snap.exists || !snap.updateTime) return;
      const a = snap.data() as ActionRecord;
      if (ENDED_STATUSES.has(a.status) || a.unitsTotal === null) return;
      const [open, totals] = await Promise.all([units.where('status', 'in', ['Queued', 'Processing']).count().get(), this.totals(token)]);
      if (open.data().count > 0) return;
      // Never ends before every unit it must have has ended.
      if (totals.ended < a.unitsTotal) return;
      const failedUnits = Object.values(totals.tasks).reduce((n, t) => n + t.failed, 0);
      const failed = failedUnits > 0 ? await units.where('status', '==', 'Error').limit(MAX_NAMED_ERRORS).get() : null;
      const named = (failed?.docs ?? []).map((d) => `${d.get('task') as string}/${d.get('user') as string}: ${(d.get('error') as string | null) ?? 'failed'}`);
      if (failed && failedUnits > failed.size && failed.size < MAX_NAMED_ERRORS) named.push(`${failedUnits - failed.size} more whose records have expired`);
      const ended = this.ended();
      try {
        await ref.update(
          {
            status: failedUnits === 0 ? (a.stopRequested ? 'Stopped' : 'Finished') : 'Error',
            error: failedUnits === 0 ? null : named.join('; '),
            // Every unit's end added its last figures to the shards: they are final, and kept here
            // so that GetStatus reads one document for an ended action.
            totals,
            ...ended,
          },
          { lastUpdateTime: snap.updateTime },
        );
      } catch (e) {
        if (!refusedWith(e, CODES.FAILED_PRECONDITION)) throw e;
        continue;
      }
      await this.expireWithAction(token, ended.expireAt);
      return;
    }
  }

  /**
   * Gives every record of an ended action the action's own expiry. Until then each carries a
   * later one of its own (expireWhileRunning), so a failure here only keeps them longer.
   */
  async expireWithAction(token: string, expireAt: Timestamp): Promise<void> {
    const ref = this.ref(token);
    const writer = this.db.bulkWriter();
    writer.onWriteError((err) => err.code !== CODES.NOT_FOUND && err.failedAttempts < 5);
    const kinds = [COLLECTIONS.units, COLLECTIONS.results, COLLECTIONS.totals, COLLECTIONS.locks];
    const writes: Promise<unknown>[] = [];
    await Promise.all(
      kinds.map(async (kind) => {
        const snaps = await ref.collection(kind).select().get();
        for (const d of snaps.docs) writes.push(writer.update(d.ref, { expireAt }).catch(() => undefined));
      }),
    );
    await writer.close();
    await Promise.all(writes);
  }
}
