/**
 * Per-action totals that GetStatus reads without reading units (docs/CONTRACT.md, "Totals"):
 * sharded counters `actions/{token}/totals/{n}`, `n` = the unit's index modulo TOTAL_SHARDS.
 *
 * Each unit records in its own document (`rolled`) the share of its figures already added to its
 * shard. A write that changes the unit may add the difference to the shard in the same batch, and
 * moves `rolled` with it, atomically: the shards never count a figure twice nor lose one, whoever
 * writes the unit next (a take-over, Stop, reconcile). A running holder does so at most once per
 * `flushEveryMs` (each shard then stays near Firestore's one sustained write a second per
 * document); every end and hand-over does so always, so once an action has ended its shards sum
 * exactly what its units hold.
 */
import { FieldValue, type DocumentReference, type WriteBatch } from '@google-cloud/firestore';
import { COLLECTIONS, ENDED_STATUSES, type ActionTotals, type Counts, type Status, type UnitTally } from './model.js';

export type { ActionTotals, UnitTally } from './model.js';

/** Shards per action: GetStatus reads at most this many documents besides the action's. */
export const TOTAL_SHARDS = 16;
/** Units of all actions that run at once at most: the queue's default concurrent dispatches (infra/queue.tf). */
const MAX_RUNNING = 80;


/** What a unit holds that its tally is made of. */
export interface Tallied {
  task: string;
  status: Status;
  pages: number;
  messages: number;
  retries: number;
  attempts: number;
  total: number | null;
  counts: Counts;
}


export function tallyOf(u: Tallied): UnitTally {
  return {
    pages: u.pages,
    messages: u.messages,
    retries: u.retries,
    attempts: u.attempts,
    total: u.total ?? 0,
    known: u.total === null ? 0 : 1,
    finished: u.status === 'Finished' ? 1 : 0,
    failed: u.status === 'Error' ? 1 : 0,
    ended: ENDED_STATUSES.has(u.status) ? 1 : 0,
    counts: { ...u.counts },
  };
}

const SCALARS = ['pages', 'messages', 'retries', 'attempts', 'total', 'known', 'finished', 'failed', 'ended'] as const;

/** after − before, or null when nothing changed. `before` absent: the unit was never added (it adds itself as a unit too). */
export function tallyDelta(after: UnitTally, before: UnitTally | undefined): (UnitTally & { units: number }) | null {
  const b = before ?? emptyTally();
  const out = { ...emptyTally(), units: before ? 0 : 1 };
  let changed = out.units !== 0;
  for (const k of SCALARS) {
    out[k] = after[k] - (b[k] ?? 0);
    if (out[k] !== 0) changed = true;
  }
  for (const k of new Set([...Object.keys(after.counts), ...Object.keys(b.counts ?? {})])) {
    const d = (after.counts[k] ?? 0) - (b.counts?.[k] ?? 0);
    out.counts[k] = d;
    if (d !== 0) changed = true;
  }
  return changed ? out : null;
}

function emptyTally(): UnitTally {
  return { pages: 0, messages: 0, retries: 0, attempts: 0, total: 0, known: 0, finished: 0, failed: 0, ended: 0, counts: {} };
}

export function shardRef(actionRef: DocumentReference, index: number): DocumentReference {
  return actionRef.collection(COLLECTIONS.totals).doc(String(index % TOTAL_SHARDS));
}

/**
 * Adds the unit's change to its shard in `b` and returns the `rolled` value the unit's own update
 * must carry in the same batch; null when there is nothing to add.
 */
export function rollInto(
  b: WriteBatch,
  actionRef: DocumentReference,
  unit: { index: number; task: string },
  after: UnitTally,
  before: UnitTally | undefined,
  expireAt: unknown,
): UnitTally | null {
  const d = tallyDelta(after, before);
  if (!d) return null;
  const inc = (n: number) => FieldValue.increment(n);
  const task: Record<string, unknown> = { units: inc(d.units), finished: inc(d.finished), failed: inc(d.failed), counts: Object.fromEntries(Object.entries(d.counts).map(([k, v]) => [k, inc(v)])) };
  b.set(
    shardRef(actionRef, unit.index),
    {
      pages: inc(d.pages),
      messages: inc(d.messages),
      retries: inc(d.retries),
      attempts: inc(d.attempts),
      total: inc(d.total),
      known: inc(d.known),
      ended: inc(d.ended),
      units: inc(d.units),
      tasks: { [unit.task]: task },
      expireAt,
    },
    { merge: true },
  );
  return after;
}

export function emptyTotals(): ActionTotals {
  return { units: 0, pages: 0, messages: 0, retries: 0, attempts: 0, total: 0, known: 0, ended: 0, tasks: {} };
}

function addTask(t: ActionTotals, task: string, units: number, finished: number, failed: number, counts: Counts): void {
  const c = (t.tasks[task] ??= { units: 0, finished: 0, failed: 0, counts: {} });
  c.units += units;
  c.finished += finished;
  c.failed += failed;
  for (const [k, v] of Object.entries(counts)) c.counts[k] = (c.counts[k] ?? 0) + v;
}

/** The totals summed over the units themselves (exact at any time; reads every unit). */
export function totalsOfUnits(units: readonly Tallied[]): ActionTotals {
  const t = emptyTotals();
  for (const u of units) {
    const y = tallyOf(u);
    t.units++;
    for (const k of ['pages', 'messages', 'retries', 'attempts', 'total', 'known', 'ended'] as const) t[k] += y[k];
    addTask(t, u.task, 1, y.finished, y.failed, y.counts);
  }
  return t;
}

/** The totals as the shards hold them. */
export function totalsOfShards(shards: readonly Record<string, unknown>[]): ActionTotals {
  const t = emptyTotals();
  const num = (v: unknown) => (typeof v === 'number' ? v : 0);
  for (const s of shards) {
    t.units += num(s['units']);
    for (const k of ['pages', 'messages', 'retries', 'attempts', 'total', 'known', 'ended'] as const) t[k] += num(s[k]);
    const tasks = (s['tasks'] ?? {}) as Record<string, { units?: number; finished?: number; failed?: number; counts?: Counts }>;
    for (const [task, v] of Object.entries(tasks)) addTask(t, task, num(v.units), num(v.finished), num(v.failed), v.counts ?? {});
  }
  return t;
}

/**
 * How often a running holder adds its unit's figures to its shard: once a second, longer for an
 * action with more units than shards, so that each shard gets about one write a second at most.
 */
export function flushEveryMs(unitsTotal: number | null): number {
  const running = Math.min(unitsTotal ?? 1, MAX_RUNNING);
  return 1000 * Math.max(1, Math.ceil(running / TOTAL_SHARDS));
}
