/**
 * The mailbox units of actions, `actions/{token}/mailboxes/{task}:{address}`:
 * their creation at fan-out, their claims, leases, progress and end (docs/CONTRACT.md).
 *
 * Every write here is conditional on the documents it depends on (the unit,
 * its mailbox, for a claim the action) being as they were read; when one
 * changed, they are read again and the decision is made again. Nothing holds
 * a lock, so a worker killed mid-write delays no one, and no two writers
 * (a claim and a Cancel, a renewal and a commit) can deadlock. A running
 * unit's writes go ahead only while the writer holds both the unit's lease and
 * its mailbox (see mailboxes.ts), and the progress written with a batch of sink
 * documents is part of the same batch: counts and checkpoint never disagree
 * with the sink.
 */
import { FieldValue, Timestamp, type DocumentReference, type Firestore, type WriteBatch } from '@google-cloud/firestore';
import type { ActionStore, CancelResult } from './actions.js';
import { CODES, refusedWith } from './conflicts.js';
import {
  assertOwner,
  finishedRun,
  lockedByOther,
  mailboxRef,
  readMailbox,
  releaseMailbox,
  standing,
  takeMailbox,
  type MailboxState,
  type RunStanding,
  type Selection,
} from './mailboxes.js';
import {
  COLLECTIONS,
  ENDED_STATUSES,
  unitKey,
  unitTaskId,
  zeroCounts,
  type ActionRecord,
  type Checkpoint,
  type Counts,
  type Status,
  type UnitRecord,
} from './model.js';
import { rollInto, tallyOf, type UnitTally } from './totals.js';

/** Outcome of a worker's claim of a unit. */
export type ClaimResult =
  | { kind: 'claimed'; unit: UnitRecord; action: ActionRecord }
  | { kind: 'busy'; until: number }
  | { kind: 'overlap'; other: string; unit: UnitRecord }
  | { kind: 'done'; why: string };

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

/** A delivery as Cloud Tasks describes it in its headers. */
export interface DeliveryInfo {
  retryCount: number;
  previousResponse: number | null;
}

/** The worker lost its lease (it expired and another delivery took over). */
export class LeaseLost extends Error {
  override readonly name = 'LeaseLost';
}

/** What a holder knows of the two documents it writes (see UnitStore.hold). */
export interface Holding {
  readonly token: string;
  readonly id: string;
  readonly holder: string;
  readonly unitRef: DocumentReference;
  mRef: DocumentReference;
  unitTime: Timestamp | null;
  mTime: Timestamp | null;
  /** The checkpoint's `items` as last written: unchanged, they are not written again. */
  items?: string[];
  /** The unit's figures as last written, and as last added to its shard (store/totals.ts). */
  tally?: UnitTally;
  rolled?: UnitTally;
  unit?: { index: number; task: string; attempts: number };
  /** How often, and when last, the holder added its figures to the shard. */
  flushEveryMs: number;
  flushedAt: number;
}

const MAX_NAMED_ERRORS = 100;
const { ALREADY_EXISTS, NOT_FOUND, FAILED_PRECONDITION } = CODES;

export class UnitStore {
  constructor(
    private readonly db: Firestore,
    private readonly actions: ActionStore,
    private readonly now: () => number = Date.now,
  ) {}

  ref(token: string, id: string): DocumentReference {
    return this.db.collection(COLLECTIONS.actions).doc(token).collection(COLLECTIONS.units).doc(id);
  }

  /** The document whose lock and owner fence the unit's writes: its mailbox's, or its own. */
  private lockRef(token: string, id: string, unit: UnitRecord): DocumentReference {
    if (unit.mailboxLock === false) return this.db.collection(COLLECTIONS.actions).doc(token).collection(COLLECTIONS.locks).doc(id);
    return mailboxRef(this.db, unit.task, unit.user);
  }

  async get(token: string, id: string): Promise<UnitRecord | null> {
    const snap = await this.ref(token, id).get();
    return snap.exists ? (snap.data() as UnitRecord) : null;
  }

  /**
   * Writes an action's units; units already written by an earlier delivery
   * keep their progress. Any other failure is thrown: no unit is ever lost
   * silently. The action's number of units is fixed once all are written.
   */
  async create(token: string, units: { task: string; user: string; id: string; index: number }[], kind: { counters: readonly string[]; lock: boolean }): Promise<void> {
    const writer = this.db.bulkWriter();
    writer.onWriteError((err) => err.code !== ALREADY_EXISTS && err.failedAttempts < 5);
    const failures: Error[] = [];
    const taskAt = this.ts();
    const writes = units.map((u) => {
      const key = unitKey(u.task, u.user);
      const index = u.index;
      const rec: UnitRecord = {
        task: u.task,
        user: u.user,
        mailboxLock: kind.lock,
        index,
        key,
        status: 'Queued',
        taskId: unitTaskId(token, key, 0),
        taskAt,
        generation: 0,
        startedAt: null,
        endedAt: null,
        lease: null,
        attempts: 0,
        retries: 0,
        pages: 0,
        messages: 0,
        total: null,
        counts: zeroCounts(kind.counters),
        checkpoint: null,
        error: null,
        messageErrors: [],
        delivery: null,
        lastError: null,
        requeues: 0,
        note: null,
      };
      return writer.create(this.ref(token, u.id), rec).catch((e: unknown) => {
        if (!refusedWith(e, ALREADY_EXISTS)) failures.push(e as Error);
      });
    });
    await writer.close();
    await Promise.all(writes);
    if (failures.length) throw new Error(`${failures.length} of ${units.length} units could not be written: ${failures[0]?.message}`, { cause: failures[0] });
    const written = await this.ref(token, 'x').parent.count().get();
    await this.actions.setUnitsTotal(token, written.data().count);
  }

  /**
   * A delivery's claim of a unit: takes the lease and the mailbox when both are
   * free or expired, answers `busy` while another live holder has the lease,
   * `overlap` while another action works on the mailbox, and `done` when there
   * is nothing to do (unit or action ended, an older task generation). The
   * claim writes the unit and its mailbox only: a claimant that read its action
   * `Queued` moves it to `Processing` next (ActionStore.markStarted). A unit of an action being
   * stopped ends here: `Cancelled` if it never started, else `Stopped`.
   */
  async claim(token: string, id: string, holder: string, generation: number, leaseMs: number, delivery: DeliveryInfo): Promise<ClaimResult> {
    const aRef = this.actions.ref(token);
    const uRef = this.ref(token, id);
    // Optimistic, as every unit write is: the claim commits only if the action,
    // the unit and the mailbox are as it read them, so it never holds a lock that
    // a Cancel, a Stop or a duplicate delivery could deadlock on.
    for (let attempt = 0; ; attempt++) {
      const [aSnap, uSnap] = await this.db.getAll(aRef, uRef);
      if (!aSnap?.exists || !uSnap?.exists) return { kind: 'done', why: 'no such unit' };
      const action = aSnap.data() as ActionRecord;
      const unit = uSnap.data() as UnitRecord;
      const mRef = this.lockRef(token, id, unit);
      const mSnap = await mRef.get();
      const m = readMailbox(mSnap);
      if (ENDED_STATUSES.has(unit.status)) return { kind: 'done', why: `the mailbox is ${unit.status}` };
      if (ENDED_STATUSES.has(action.status)) return { kind: 'done', why: `the action is ${action.status}` };
      if (generation < unit.generation) return { kind: 'done', why: `task generation ${generation} was replaced by ${unit.generation}` };
      const now = this.now();
      if (unit.lease && unit.lease.holder !== holder && unit.lease.expiresAt.toMillis() > now) {
        return { kind: 'busy', until: unit.lease.expiresAt.toMillis() };
      }
      const at = Timestamp.fromMillis(now);
      const seen = { delivery: { ...delivery, at } };
      const b = this.db.batch();
      const onUnit = { lastUpdateTime: uSnap.updateTime as Timestamp };
      const onMailbox = (data: Record<string, unknown>) => {
        if (mSnap.exists) b.update(mRef, data, { lastUpdateTime: mSnap.updateTime as Timestamp });
        else b.create(mRef, data);
      };
      let out: ClaimResult;
      let ended = false;
      if (action.stopRequested) {
        const status: Status = unit.status === 'Queued' ? 'Cancelled' : 'Stopped';
        const rolled = rollInto(b, aRef, unit, tallyOf({ ...unit, status }), unit.rolled, this.actions.expireWhileRunning());
        // Kept until its action ends, which then gives it the action's own expiry (ActionStore.finish).
        b.update(uRef, { ...seen, status, endedAt: at, expireAt: this.actions.expireWhileRunning(), lease: null, ...(rolled ? { rolled } : {}) }, onUnit);
        const release = releaseMailbox(m, token, null);
        if (Object.keys(release).length) onMailbox(release);
        ended = true;
        out = { kind: 'done', why: 'the action is stopping' };
      } else {
        const other = lockedByOther(m, token, now);
        if (other) return { kind: 'overlap', other, unit };
        const startedAt = unit.startedAt ?? at;
        const lease = { holder, expiresAt: Timestamp.fromMillis(now + leaseMs) };
        b.update(uRef, { ...seen, status: 'Processing', startedAt, lease, generation, attempts: FieldValue.increment(1) }, onUnit);
        // A unit's own lock document is deleted with its action's records (see expireWhileRunning).
        onMailbox({ ...takeMailbox(token, holder, now + leaseMs), ...(unit.mailboxLock === false ? { expireAt: this.actions.expireWhileRunning() } : {}) });
        // The action's own move to `Processing` is the claimant's to make after this commit
        // (ActionStore.markStarted): a fan-out's first claims never contend on the action's record.
        out = {
          kind: 'claimed',
          action,
          unit: { ...unit, ...seen, status: 'Processing', startedAt, lease, generation, attempts: unit.attempts + 1 },
        };
      }
      try {
        await b.commit();
      } catch (e) {
        if (!refusedWith(e, FAILED_PRECONDITION, NOT_FOUND, ALREADY_EXISTS) || attempt >= 50) throw e;
        continue;
      }
      if (ended) await this.actions.finish(token);
      return out;
    }
  }

  /**
   * Cancel: `Queued` → `Cancelled`, in one batch with every unit, each ended `Cancelled`, all
   * conditional on being as read. The claims write only their unit (never the action), so the
   * unit is where Cancel and a claim meet: whichever commits first makes the other read again.
   * A claim that won means the action started: it is moved to `Processing` here and Cancel is
   * refused. The action's own condition covers units written by a fan-out in between (the fan-out
   * fixes `unitsTotal` before any unit task exists). Returns the ended units' task names.
   */
  async cancelAction(token: string): Promise<{ result: CancelResult; tasks: string[] }> {
    const aRef = this.actions.ref(token);
    for (let attempt = 0; ; attempt++) {
      const [aSnap, uSnaps] = await Promise.all([aRef.get(), aRef.collection(COLLECTIONS.units).get()]);
      if (!aSnap.exists || !aSnap.updateTime) return { result: { kind: 'missing' }, tasks: [] };
      const a = aSnap.data() as ActionRecord;
      if (a.status === 'Cancelled') return { result: { kind: 'already' }, tasks: [] };
      if (a.status !== 'Queued') return { result: { kind: 'wrong-state', status: a.status }, tasks: [] };
      const units = uSnaps.docs.map((d) => ({ snap: d, unit: d.data() as UnitRecord }));
      const started = units.find(({ unit }) => unit.startedAt !== null);
      if (started) {
        const status = await this.actions.markStarted(token, started.unit.startedAt as Timestamp);
        if (status === 'Processing') return { result: { kind: 'wrong-state', status }, tasks: [] };
        continue;
      }
      const at = this.ts();
      const b = this.db.batch();
      b.update(aRef, { status: 'Cancelled', endedAt: at, expireAt: this.actions.expireAt(at) }, { lastUpdateTime: aSnap.updateTime });
      const tasks: string[] = [];
      for (const { snap, unit } of units) {
        if (ENDED_STATUSES.has(unit.status)) continue;
        const rolled = rollInto(b, aRef, unit, tallyOf({ ...unit, status: 'Cancelled' }), unit.rolled, this.actions.expireWhileRunning());
        b.update(snap.ref, { status: 'Cancelled', endedAt: at, expireAt: this.actions.expireAt(at), lease: null, ...(rolled ? { rolled } : {}) }, { lastUpdateTime: snap.updateTime });
        tasks.push(unit.taskId);
      }
      try {
        await b.commit();
        return { result: { kind: 'cancelled' }, tasks };
      } catch (e) {
        if (!refusedWith(e, FAILED_PRECONDITION, NOT_FOUND) || attempt >= 50) throw e;
      }
    }
  }

  /** Records a delivery the worker turned away and why (a busy lease), for reconcile to report. */
  async noteError(token: string, id: string, error: string, delivery: DeliveryInfo): Promise<void> {
    await this.ref(token, id)
      .update({ lastError: error.slice(0, 1000), delivery: { ...delivery, at: this.ts() } })
      .catch(() => {
        // Only a diagnostic: a unit that is gone keeps its older note.
      });
  }

  /** Moves a unit to task generation `generation` (already enqueued as `taskId`), unless it moved on. */
  async requeue(token: string, id: string, generation: number, taskId: string, fields: Record<string, unknown> = {}): Promise<boolean> {
    return this.change(token, id, (unit) => {
      if (!unit || ENDED_STATUSES.has(unit.status) || unit.generation >= generation) return { result: false };
      if (unit.lease && unit.lease.expiresAt.toMillis() > this.now()) return { result: false };
      return { result: true, unit: { ...fields, generation, taskId, taskAt: this.ts() } };
    });
  }

  /**
   * Changes a unit (and its mailbox) as `decide` says, given both as read, if
   * neither changed in between (else reads again). Optimistic rather than a
   * transaction: no lock is held, so Stop, Cancel, reconcile and a hand-over
   * never wait on, or deadlock with, a delivery's claim of the same unit.
   */
  private async change<T>(
    token: string,
    id: string,
    decide: (unit: UnitRecord | null, m: MailboxState) => { result: T; unit?: Record<string, unknown>; mailbox?: Record<string, unknown> },
  ): Promise<T> {
    const ref = this.ref(token, id);
    for (let attempt = 0; ; attempt++) {
      const uSnap = await ref.get();
      const unit = uSnap.exists ? (uSnap.data() as UnitRecord) : null;
      const mRef = unit ? this.lockRef(token, id, unit) : null;
      const mSnap = mRef ? await mRef.get() : undefined;
      const out = decide(unit, readMailbox(mSnap));
      if (!out.unit && !out.mailbox) return out.result;
      const b = this.db.batch();
      if (out.unit && unit && uSnap.updateTime) {
        // Whatever the unit's figures became since they were last added to the totals is added now.
        const rolled = rollInto(b, this.actions.ref(token), unit, tallyOf({ ...unit, ...out.unit } as UnitRecord), unit.rolled, this.actions.expireWhileRunning());
        b.update(ref, rolled ? { ...out.unit, rolled } : out.unit, { lastUpdateTime: uSnap.updateTime });
      }
      if (out.mailbox && mRef) {
        if (mSnap?.exists && mSnap.updateTime) b.update(mRef, out.mailbox, { lastUpdateTime: mSnap.updateTime });
        else b.set(mRef, out.mailbox, { merge: true });
      }
      try {
        await b.commit();
        return out.result;
      } catch (e) {
        if (!refusedWith(e, FAILED_PRECONDITION, NOT_FOUND) || attempt >= 50) throw e;
      }
    }
  }

  /**
   * A claimed unit as its holder writes it. Writes are batches conditional on
   * the unit's and the mailbox's documents being unchanged since this holder
   * last wrote or read them (no locks are held, so a holder that dies mid-way
   * delays no one); when a condition fails, both are read again and the write
   * goes ahead only if the holder still has the lease and the mailbox.
   */
  async hold(token: string, id: string, holder: string, flushEveryMs = 1000): Promise<Holding> {
    const h: Holding = { token, id, holder, unitRef: this.ref(token, id), mRef: this.ref(token, id), unitTime: null, mTime: null, flushEveryMs, flushedAt: 0 };
    await this.refresh(h);
    return h;
  }

  private async refresh(h: Holding): Promise<MailboxState> {
    const uSnap = await h.unitRef.get();
    const unit = uSnap.data() as UnitRecord | undefined;
    if (unit?.lease?.holder !== h.holder) throw new LeaseLost(`the lease of ${h.id} passed to another delivery`);
    h.mRef = this.lockRef(h.token, h.id, unit);
    const mSnap = await h.mRef.get();
    const m = readMailbox(mSnap);
    assertOwner(m, h.holder, h.id);
    h.unitTime = uSnap.updateTime ?? null;
    h.mTime = mSnap.updateTime ?? null;
    h.unit = { index: unit.index, task: unit.task, attempts: unit.attempts };
    h.tally = tallyOf(unit);
    h.rolled = unit.rolled;
    return m;
  }

  /**
   * Writes `progress` (when given), the writes of `write` and `mailbox` in one
   * batch, and extends the lease and the mailbox lock, if `h` still holds both;
   * throws LeaseLost or MailboxLost otherwise.
   */
  async write(
    h: Holding,
    leaseMs: number,
    progress: UnitProgress | null,
    write: (b: WriteBatch) => void = () => {},
    mailbox: Record<string, unknown> = {},
    retry = true,
  ): Promise<boolean> {
    for (let attempt = 0; ; attempt++) {
      if (h.unitTime === null || h.mTime === null) await this.refresh(h);
      const now = this.now();
      const until = now + leaseMs;
      const b = this.db.batch();
      write(b);
      const u = h.unit as { index: number; task: string; attempts: number };
      const tally = progress ? tallyOf({ ...progress, task: u.task, status: 'Processing', attempts: u.attempts }) : (h.tally as UnitTally);
      const rolled = now - h.flushedAt >= h.flushEveryMs ? rollInto(b, this.actions.ref(h.token), u, tally, h.rolled, this.actions.expireWhileRunning()) : null;
      b.update(
        h.unitRef,
        { ...(progress ? this.heldProgress(h, progress) : {}), ...(rolled ? { rolled } : {}), 'lease.expiresAt': Timestamp.fromMillis(until) },
        { lastUpdateTime: h.unitTime as Timestamp },
      );
      b.update(h.mRef, { ...mailbox, activeUntil: Timestamp.fromMillis(until) }, { lastUpdateTime: h.mTime as Timestamp });
      try {
        const results = await b.commit();
        const at = results[results.length - 1]?.writeTime ?? null;
        h.unitTime = at;
        h.mTime = at;
        h.tally = tally;
        if (rolled) {
          h.rolled = rolled;
          h.flushedAt = now;
        }
        if (progress?.checkpoint) h.items = progress.checkpoint.items;
        return true;
      } catch (e) {
        // Someone else wrote one of the two documents: see whether it is still ours.
        if (!refusedWith(e, FAILED_PRECONDITION, NOT_FOUND) || attempt >= 5) throw e;
        h.unitTime = null;
        h.mTime = null;
        if (!retry) return false;
      }
    }
  }

  /**
   * The fields a holder writes for its progress. A listed page's items (up to
   * 500 ids) are written once, when listed; each batch after that writes only
   * the checkpoint's other fields.
   */
  private heldProgress(h: Holding, p: UnitProgress): Record<string, unknown> {
    const cp = p.checkpoint;
    if (!cp || cp.items !== h.items || h.unitTime === null) return progressFields(p);
    const { checkpoint: _whole, ...rest } = progressFields(p);
    void _whole;
    const { items: _items, ...fields } = cp;
    void _items;
    return { ...rest, ...Object.fromEntries(Object.entries(fields).map(([k, v]) => [`checkpoint.${k}`, v])) };
  }

  /** Extends the holder's lease and mailbox lock; throws LeaseLost or MailboxLost when it has lost them. */
  async renew(h: Holding, leaseMs: number): Promise<void> {
    await this.write(h, leaseMs, null);
  }

  /**
   * Where a run of the unit stands against the mailbox's other runs (a new run
   * takes the mailbox's next epoch here, and, with another `selection` than the
   * recorded one, clears that). Only the owner may ask.
   */
  async begin(h: Holding, leaseMs: number, epoch: number | null, selection?: Selection): Promise<RunStanding & { begins: boolean }> {
    for (let attempt = 0; ; attempt++) {
      const m = await this.refresh(h);
      const out = standing(m, epoch, selection);
      if (!out.begins) return out;
      // Conditional on the mailbox as just read: two runs never take the same epoch.
      if (await this.write(h, leaseMs, null, () => {}, out.writes, false)) return out;
      if (attempt >= 5) throw new Error(`the mailbox of ${h.id} kept changing while its run began`);
    }
  }

  /**
   * Hands a unit over to its task generation `generation` (`taskId`, already
   * enqueued): releases the lease, keeping the mailbox for the action, so the
   * next delivery can claim it at once.
   */
  async handOver(token: string, id: string, holder: string, generation: number, taskId: string, p: UnitProgress, lastError: string | null = null): Promise<void> {
    await this.change(token, id, (unit) => {
      if (unit?.lease?.holder !== holder) throw new LeaseLost(`the lease of ${id} passed to another delivery`);
      // A new task name starts its grace period (reconcile): it may still be being created.
      const named = unit.taskId === taskId ? {} : { taskAt: this.ts() };
      return { result: undefined, unit: { ...progressFields(p), lease: null, generation, taskId, lastError, ...named } };
    });
  }

  /**
   * Ends a unit and releases its mailbox. With a holder, only while it holds
   * the lease (and, to finish a Synchronize, the mailbox); without one, only a
   * unit whose lease is not live (Cancel, Stop, reconcile). A finished run
   * records its epoch and moves the history id forward, unless another run
   * finished the mailbox since. Then ends the action if this was its last unit.
   */
  async end(
    token: string,
    id: string,
    holder: string | null,
    status: Status,
    p: Partial<UnitProgress> & { error?: string; note?: string },
    finish?: { epoch: number; historyId: string | null; selection?: Selection | null },
  ): Promise<boolean> {
    const ended = await this.change(token, id, (unit, m) => {
      if (!unit || ENDED_STATUSES.has(unit.status)) return { result: false };
      const now = this.ts();
      if (holder === null) {
        if (unit.lease && unit.lease.expiresAt.toMillis() > now.toMillis()) return { result: false };
      } else if (unit.lease?.holder !== holder) {
        throw new LeaseLost(`the lease of ${id} passed to another delivery`);
      }
      // Kept until its action ends, which then gives it the action's own expiry (ActionStore.finish).
      const update: Record<string, unknown> = { ...p, status, endedAt: now, expireAt: this.actions.expireWhileRunning(), lease: null };
      if (p.messageErrors) update.messageErrors = p.messageErrors.slice(0, MAX_NAMED_ERRORS);
      const state: Record<string, unknown> = { ...releaseMailbox(m, token, holder) };
      if (status === 'Finished' && finish && holder !== null) {
        assertOwner(m, holder, id);
        Object.assign(state, finishedRun(m, token, finish.epoch, finish.historyId, finish.selection ?? null, now));
      }
      return { result: true, unit: update, mailbox: Object.keys(state).length ? state : undefined };
    });
    if (ended) await this.actions.finish(token);
    return ended;
  }

  /** Units of an action not yet ended. */
  async open(token: string): Promise<UnitRecord[]> {
    const snaps = await this.ref(token, 'x').parent.where('status', 'in', ['Queued', 'Processing']).get();
    return snaps.docs.map((d) => d.data() as UnitRecord);
  }

  private ts(): Timestamp {
    return Timestamp.fromMillis(this.now());
  }
}

function progressFields(p: UnitProgress): Record<string, unknown> {
  return { ...p, messageErrors: p.messageErrors.slice(0, MAX_NAMED_ERRORS) };
}
