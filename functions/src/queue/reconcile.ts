/**
 * Reconcile: no action or unit stays `Queued` or `Processing` without a live
 * lease or a pending Cloud Task behind it.
 *
 * A unit whose lease is not live and whose newest task is gone from the queue
 * (the queue gave up after its attempts, the task was deleted, the worker died
 * between ending its run and answering) is re-enqueued as a fresh generation
 * that resumes from its checkpoint, at most MAX_REQUEUES times; then it ends
 * `Error`, naming the queue's last answer and the worker's last error. An
 * action that fanned out and whose units all ended is ended. An action whose
 * fan-out task is gone before it fanned out is re-enqueued the same way.
 *
 * It runs on the worker's `/reconcile` route (Cloud Scheduler in production, a
 * timer in the local stack), and lazily wherever an open action is read for a
 * decision: GetStatus, Stop, Cancel and the coalescing of scheduled runs.
 */
import pLimit from 'p-limit';
import type { Deps } from '../deps.js';
import { ENDED_STATUSES, fanOutTaskId, unitId, unitTaskId, type ActionRecord, type UnitRecord } from '../store/model.js';
import { errorMessage } from '../error-message.js';

/** Times a lost unit or fan-out is re-enqueued before it ends `Error`. */
export const MAX_REQUEUES = 3;
/** Open actions read at once by a pass. */
const PASS_PAGE = 500;
/** How long a pass goes on reading pages before it leaves the rest to the next (a pass runs every 5 minutes). */
const PASS_BUDGET_MS = 120_000;

/** What a pass did. */
export interface ReconcileReport {
  actions: number;
  requeued: number;
  ended: number;
  finished: number;
  /** Actions the pass could not repair this time (the next pass tries again). */
  failed: number;
}

function emptyReport(): ReconcileReport {
  return { actions: 0, requeued: 0, ended: 0, finished: 0, failed: 0 };
}

export function createReconciler(deps: Pick<Deps, 'store' | 'units' | 'queue' | 'log' | 'now'>) {
  const { store, units, queue, log } = deps;

  function leaseLive(u: UnitRecord): boolean {
    return u.lease !== null && u.lease.expiresAt.toMillis() > deps.now();
  }

  /** Why the unit's task was lost, as far as the unit recorded it. */
  function lostCause(u: UnitRecord): string {
    const n = (u.delivery?.retryCount ?? 0) + 1;
    const prev = u.delivery?.previousResponse;
    const last = u.lastError ?? (prev ? `HTTP ${prev}` : 'none recorded');
    return `the queue gave up after ${n} deliveries of task ${u.taskId}: last error: ${last}`;
  }

  /**
   * Whether the unit's task may still be on its way: until the longest an enqueue can take after its name was
   * recorded (a hand-over, a re-enqueue and the fan-out record the name first, then create the
   * task), and, for a unit the fan-out wrote, while the fan-out's own task is still in the queue
   * (its next delivery creates what is missing).
   */
  async function taskOnItsWay(a: ActionRecord, u: UnitRecord, fanOutPending: () => Promise<boolean>): Promise<boolean> {
    const named = (u.taskAt ?? u.delivery?.at ?? a.fanOutAt ?? a.queuedAt).toMillis();
    if (deps.now() - named < queue.longestEnqueueMs) return true;
    return u.generation === 0 && u.status === 'Queued' && (await fanOutPending());
  }

  async function unit(a: ActionRecord, u: UnitRecord, r: ReconcileReport, fanOutPending: () => Promise<boolean>): Promise<void> {
    if (ENDED_STATUSES.has(u.status) || leaseLive(u)) return;
    if (await taskOnItsWay(a, u, fanOutPending)) return;
    if (await queue.exists(u.taskId)) return;
    const id = unitId(u.task, u.user);
    if (a.stopRequested || a.status === 'Cancelled') {
      if (await units.end(a.token, id, null, u.status === 'Queued' ? 'Cancelled' : 'Stopped', {})) r.ended++;
      return;
    }
    if (u.requeues >= MAX_REQUEUES) {
      const error = `${lostCause(u)}; re-enqueued ${u.requeues} times`;
      if (await units.end(a.token, id, null, 'Error', { error })) {
        r.ended++;
        log.with({ token: a.token, task: u.task, user: u.user }).error('unit lost its task', { error });
      }
      return;
    }
    // Recorded first, then enqueued: a delivery of the new generation must find the unit moved on.
    // Should the enqueue fail, the next pass finds the new task missing and tries again.
    const next = u.generation + 1;
    const taskId = unitTaskId(a.token, u.key, next);
    const lostTasks = [...(u.lostTasks ?? []), u.taskId].slice(-10);
    const moved = await units.requeue(a.token, id, next, taskId, { requeues: u.requeues + 1, lease: null, lastError: lostCause(u), lostTasks });
    if (!moved) return;
    await queue.enqueue(taskId, { token: a.token, unit: id, generation: next });
    r.requeued++;
    log.with({ token: a.token, task: u.task, user: u.user }).warn('unit re-enqueued: its task was lost', { task: taskId });
  }

  async function fanOut(a: ActionRecord, r: ReconcileReport): Promise<void> {
    // The record is written with its task or before it: while whoever asked for the task may
    // still be creating it, a missing task is not a lost one (else ticks coalescing onto a new
    // scheduled action would each re-enqueue its fan-out, up to failing it).
    if (deps.now() - (a.fanOutAt ?? a.queuedAt).toMillis() < queue.longestEnqueueMs) return;
    if (await queue.exists(fanOutTaskId(a.token, a.fanOutGeneration))) return;
    if (a.fanOutGeneration >= MAX_REQUEUES) {
      await store.failAction(a.token, `the queue gave up on the action's task ${fanOutTaskId(a.token, a.fanOutGeneration)}; re-enqueued ${a.fanOutGeneration} times`);
      r.ended++;
      return;
    }
    const next = a.fanOutGeneration + 1;
    if (!(await store.requeueFanOut(a.token, next))) return;
    await queue.enqueue(fanOutTaskId(a.token, next), { token: a.token });
    r.requeued++;
  }

  /**
   * Repairs one action. `thorough` also asks the queue about units that never
   * started (the scheduled pass); the lazy pass looks only at units whose
   * lease lapsed, and at whether the action should have ended.
   */
  async function action(token: string, thorough: boolean, r: ReconcileReport = emptyReport()): Promise<ActionRecord | null> {
    const a = await store.get(token);
    if (!a || ENDED_STATUSES.has(a.status)) return a;
    r.actions++;
    if (a.unitsTotal === null) {
      if (thorough) await fanOut(a, r);
    } else {
      const open = await units.open(token);
      const suspects = open.filter((u) => (thorough ? true : u.status === 'Processing' || u.requeues > 0 || a.stopRequested));
      const limit = pLimit(8);
      // Asked once per action, and only when a unit the fan-out wrote has no task yet.
      let pending: Promise<boolean> | undefined;
      const fanOutPending = () => (pending ??= queue.exists(fanOutTaskId(a.token, a.fanOutGeneration)));
      await Promise.all(suspects.map((u) => limit(() => unit(a, u, r, fanOutPending))));
      await store.finish(token);
    }
    const after = await store.get(token);
    if (after && ENDED_STATUSES.has(after.status)) r.finished++;
    return after;
  }

  return {
    /**
     * Repairs one action if it lost its tasks or should have ended; returns it
     * as it is now. `thorough` also asks the queue about units that never started.
     */
    action: (token: string, thorough = false) => action(token, thorough),
    /**
     * The cheap repair of an action GetStatus lists: ends it if its units all ended (two count
     * queries), reading none of its units; lost leases and tasks are left to the pass and to the
     * verbs that name the action.
     */
    async listed(a: ActionRecord): Promise<ActionRecord> {
      if (ENDED_STATUSES.has(a.status) || a.unitsTotal === null) return a;
      await store.finish(a.token);
      return (await store.get(a.token)) ?? a;
    },
    /**
     * One pass over the open actions, a page at a time in token order, from where the last pass
     * stopped to where it started (wrapping once), until the pass has taken `budgetMs`; the next
     * pass goes on from there, so that every open action is examined however many there are.
     */
    async pass(opts: { pageSize?: number; budgetMs?: number } = {}): Promise<ReconcileReport> {
      const pageSize = opts.pageSize ?? PASS_PAGE;
      const budgetMs = opts.budgetMs ?? PASS_BUDGET_MS;
      const r = emptyReport();
      const began = deps.now();
      const from = await store.reconcileCursor();
      let after = from;
      let wrapped = from === null;
      const limit = pLimit(8);
      for (;;) {
        const page = await store.open(pageSize, after);
        // Past the end: once around, from the start back to where this pass began.
        const mine = wrapped && from !== null ? page.filter((a) => a.token <= from) : page;
        await Promise.all(
          mine.map((a) =>
            limit(() =>
              action(a.token, true, r).catch((e: unknown) => {
                // One action the queue or Firestore would not let us repair does not stop the pass.
                r.failed++;
                log.with({ token: a.token }).warn('reconcile of the action failed; the next pass tries again', { error: errorMessage(e) });
              }),
            ),
          ),
        );
        const last = mine[mine.length - 1];
        const done = mine.length < page.length || page.length < pageSize;
        if (done && wrapped) {
          after = null;
          break;
        }
        if (done) {
          wrapped = true;
          after = null;
          continue;
        }
        after = last?.token ?? after;
        if (deps.now() - began >= budgetMs) break;
      }
      await store.setReconcileCursor(after);
      log.info('reconciled', { ...r });
      return r;
    },
  };
}


export type Reconciler = ReturnType<typeof createReconciler>;
