/**
 * What the worker does with one delivery of a task (DESIGN §3):
 * - the action's own task fans out to one unit task per task section and mailbox;
 * - a unit task claims the unit's lease, runs its fetch action with the lease
 *   renewed and the stop flag watched, then ends the unit or hands it over to a
 *   continuation task before the time budget runs out.
 */
import { randomBytes } from 'node:crypto';
import pLimit from 'p-limit';
import type { Deps } from '../deps.js';
import { GmailCaller } from '../gmail/caller.js';
import { PermanentGmailError, classify } from '../gmail/errors.js';
import { QuotaPacer } from '../gmail/pacing.js';
import type { WorkPayload } from '../queue/tasks.js';
import { LeaseLost, type UnitProgress } from '../store/actions.js';
import { FETCH_ACTIONS, unitId, type ActionRecord, type FetchAction, type UnitRecord } from '../store/model.js';
import { synchronize, type SyncContext, type SyncOutcome } from './synchronize.js';

/** The worker's answer: an HTTP status for Cloud Tasks (2xx: done; else: retry later). */
export interface WorkResult {
  status: number;
  message: string;
}

/** How long an action waits before trying again when another works on its mailbox: half a lease, at most 30 s. */
function overlapDelayS(leaseS: number): number {
  return Math.min(30, Math.max(1, Math.ceil(leaseS / 2)));
}
/** How often a running unit looks at the stop flag. */
const STOP_POLL_MS = 400;
/** The least time between two progress writes of a unit (Firestore: ~1 write/s a document). */
const PROGRESS_EVERY_MS = 1000;

/** The task id of a unit's task generation. */
export function unitTaskId(token: string, index: number, generation: number): string {
  return `${token}-${index}-${generation}`;
}

export function createWork(deps: Deps) {
  const { store, queue, config, log } = deps;
  const leaseMs = config.leaseS * 1000;

  /** Lists a task's mailboxes: its users, or its domain's through the Directory API. */
  async function mailboxes(task: string): Promise<string[]> {
    const t = config.connector.tasks[task];
    if (!t) throw new PermanentGmailError(`task ${task} is no longer configured`, undefined);
    if (t.users?.length) return t.users.map((u) => u.toLowerCase());
    const admin = t.directoryAdmin ?? '';
    const dir = deps.google.directory(admin);
    const out: string[] = [];
    let pageToken: string | undefined;
    do {
      let res;
      try {
        res = await dir.users.list({ domain: t.domain, maxResults: 500, pageToken, fields: 'users(primaryEmail,suspended),nextPageToken' });
      } catch (e) {
        throw classify(e, `listing the users of ${t.domain} as ${admin}`);
      }
      for (const u of res.data.users ?? []) if (u.primaryEmail && !u.suspended) out.push(u.primaryEmail.toLowerCase());
      pageToken = res.data.nextPageToken ?? undefined;
    } while (pageToken);
    return out.sort();
  }

  async function fanOut(token: string): Promise<WorkResult> {
    const action = await store.claimAction(token);
    if (!action) return { status: 200, message: 'ended or cancelled: nothing to do' };
    const units: { task: string; user: string; id: string; taskId: string }[] = [];
    try {
      for (const task of action.tasks) {
        for (const user of await mailboxes(task)) {
          units.push({ task, user, id: unitId(task, user), taskId: unitTaskId(token, units.length, 0) });
        }
      }
    } catch (e) {
      if (e instanceof PermanentGmailError) {
        await store.failAction(token, e.message);
        log.with({ token }).error('action failed', { error: e.message });
        return { status: 200, message: e.message };
      }
      throw e;
    }
    const stored = await store.fanOut(token, units);
    const now = await store.get(token);
    if (now?.status === 'Cancelled') {
      // Cancelled while the units were written: they never start.
      await Promise.all(stored.map((u) => store.endUnit(token, unitId(u.task, u.user), null, 'Cancelled', {})));
      return { status: 200, message: 'cancelled' };
    }
    // A domain can have thousands of mailboxes: create their tasks a few dozen at a time.
    const limit = pLimit(32);
    await Promise.all(
      stored
        .filter((u) => u.status === 'Queued' && u.generation === 0)
        .map((u) => limit(() => queue.enqueue(u.taskId, { token, unit: unitId(u.task, u.user), generation: 0 }))),
    );
    log.with({ token }).info('fanned out', { units: stored.length });
    return { status: 200, message: `${stored.length} mailboxes queued` };
  }

  function progressOf(u: UnitRecord): UnitProgress {
    return {
      pages: u.pages,
      messages: u.messages,
      total: u.total,
      retries: u.retries,
      counts: { ...u.counts },
      checkpoint: u.checkpoint,
      messageErrors: [...u.messageErrors],
    };
  }

  async function runFetch(action: ActionRecord, unit: UnitRecord, ctx: Omit<SyncContext, 'taskConfig' | 'lastHistoryId'>): Promise<SyncOutcome> {
    const fetchAction: FetchAction = action.fetchAction;
    switch (fetchAction) {
      case 'Synchronize': {
        const taskConfig = config.connector.tasks[unit.task];
        if (!taskConfig) return { kind: 'failed', error: `task ${unit.task} is no longer configured` };
        const lastHistoryId = await store.lastHistoryId(unit.task, unit.user);
        return synchronize({ ...ctx, taskConfig, lastHistoryId });
      }
      default: {
        const never: never = fetchAction;
        throw new Error(`unknown fetch action ${String(never)}; known: ${FETCH_ACTIONS.join(', ')}`);
      }
    }
  }

  async function runUnit(token: string, id: string, generation: number): Promise<WorkResult> {
    const holder = randomBytes(12).toString('base64url');
    const claim = await store.claimUnit(token, id, holder, generation, leaseMs);
    if (claim.kind === 'done') return { status: 200, message: 'nothing to do' };
    if (claim.kind === 'busy') return { status: 409, message: `another delivery holds the lease until ${new Date(claim.until).toISOString()}` };
    if (claim.kind === 'overlap') {
      const next = generation + 1;
      const taskId = unitTaskId(token, claim.unit.index, next);
      const delay = overlapDelayS(config.leaseS);
      await queue.enqueue(taskId, { token, unit: id, generation: next }, { delaySeconds: delay });
      await store.requeue(token, id, next, taskId);
      return { status: 200, message: `action ${claim.other} is working on this mailbox; retrying in ${delay} s` };
    }
    const { unit, action } = claim;
    const ulog = log.with({ token, task: unit.task, user: unit.user });
    const progress = progressOf(unit);
    const abort = new AbortController();
    let stop = action.stopRequested;
    let lost: unknown;
    const started = deps.now();
    const budgetMs = config.workerTimeBudgetS * 1000;
    const stopTimer = setInterval(() => {
      store.stopRequested(token).then(
        (s) => {
          if (s) {
            stop = true;
            abort.abort();
          }
        },
        () => {},
      );
    }, STOP_POLL_MS);
    const leaseTimer = setInterval(() => {
      store.renewLease(token, id, holder, leaseMs).catch((e: unknown) => {
        if (e instanceof LeaseLost) {
          lost = e;
          abort.abort();
        }
      });
    }, Math.max(1000, leaseMs / 3));
    const caller = new GmailCaller({
      pacer: new QuotaPacer(config.connector.gmail.quotaUnitsPerUserPerMinute, deps.now),
      signal: abort.signal,
    });
    caller.retries = progress.retries;
    let lastSave = 0;
    const save = async (force: boolean) => {
      if (!force && deps.now() - lastSave < PROGRESS_EVERY_MS) return;
      lastSave = deps.now();
      progress.retries = caller.retries;
      await store.saveProgress(token, id, holder, progress);
    };
    ulog.info('unit started', { generation, attempts: unit.attempts });
    try {
      const outcome = await runFetch(action, unit, {
        db: deps.db,
        gmail: deps.google.gmail(unit.user),
        caller,
        token,
        task: unit.task,
        user: unit.user,
        progress,
        shouldStop: () => stop || lost !== undefined,
        outOfTime: () => deps.now() - started > budgetMs,
        save,
      });
      if (lost) throw lost;
      progress.retries = caller.retries;
      switch (outcome.kind) {
        case 'finished':
          await store.endUnit(token, id, holder, 'Finished', progress, outcome.historyId ?? undefined);
          break;
        case 'stopped':
          await store.endUnit(token, id, holder, 'Stopped', progress);
          break;
        case 'failed':
          await store.endUnit(token, id, holder, 'Error', { ...progress, error: outcome.error });
          ulog.error('unit failed', { error: outcome.error });
          break;
        case 'budget': {
          const next = generation + 1;
          const taskId = unitTaskId(token, unit.index, next);
          await queue.enqueue(taskId, { token, unit: id, generation: next });
          await store.handOver(token, id, holder, next, taskId, progress);
          ulog.info('handed over to a continuation', { next: taskId });
          break;
        }
        default: {
          const never: never = outcome;
          throw new Error(`unknown outcome ${JSON.stringify(never)}`);
        }
      }
      ulog.info('unit ended', { outcome: outcome.kind, counts: progress.counts });
      return { status: 200, message: outcome.kind };
    } catch (e) {
      if (e instanceof LeaseLost) {
        ulog.warn('lease lost: another delivery took over');
        return { status: 200, message: 'lease lost to another delivery' };
      }
      // Transient: keep what was done and let Cloud Tasks deliver again.
      ulog.warn('unit interrupted; the queue will retry', { error: (e as Error).message });
      try {
        progress.retries = caller.retries;
        await store.handOver(token, id, holder, generation, unit.taskId, progress);
      } catch {
        // The lease expires on its own.
      }
      return { status: 503, message: `interrupted: ${(e as Error).message}; will be retried` };
    } finally {
      clearInterval(stopTimer);
      clearInterval(leaseTimer);
    }
  }

  return {
    /** Handles one delivery. */
    async handle(p: WorkPayload): Promise<WorkResult> {
      if (p.unit === undefined) return fanOut(p.token);
      return runUnit(p.token, p.unit, p.generation ?? 0);
    },
  };
}

export type Work = ReturnType<typeof createWork>;
