/**
 * What the worker does with one delivery of a task (docs/CONTRACT.md):
 * - the action's own task fans out to one unit task per task section and mailbox;
 * - a unit task claims the unit's lease and mailbox, runs its fetch action with
 *   the lease renewed and the stop flag watched, then ends the unit or hands it
 *   over to a continuation task before the time budget runs out.
 */
import { randomBytes } from 'node:crypto';
import { Timestamp } from '@google-cloud/firestore';
import pLimit from 'p-limit';
import type { Deps } from '../deps.js';
import { GmailCaller, withScopeAdvice } from '../gmail/caller.js';
import { PermanentGmailError, classify } from '../gmail/errors.js';
import { holdAddress, type AddressHold } from '../gmail/address.js';
import { pacerFor, RunAborted, sleep } from '../gmail/pacing.js';
import type { WorkPayload } from '../queue/tasks.js';
import { MailboxLost } from '../store/mailboxes.js';
import { ENDED_STATUSES, unitId, unitKey, unitTaskId, type ActionRecord, type UnitRecord } from '../store/model.js';
import { flushEveryMs } from '../store/totals.js';
import { LeaseLost, type DeliveryInfo, type UnitProgress } from '../store/units.js';
import { createWatcher } from '../push/watcher.js';
import { fetchActionOf } from './registry.js';
import { createStopWatch } from './stopwatch.js';

/** The worker's answer: an HTTP status for Cloud Tasks (2xx: done; else: retry later). */
export interface WorkResult {
  status: number;
  message: string;
}

/** How long an action waits before trying again when another works on its mailbox: half a lease, at most 30 s. */
function overlapDelayS(leaseS: number): number {
  return Math.min(30, Math.max(1, Math.ceil(leaseS / 2)));
}
/** Unit tasks a fan-out creates at once. */
const FAN_OUT_CONCURRENCY = 64;
/** How long after its task was queued an action's record may still be on its way (see claimWritten). */
export const RECORD_GRACE_MS = 60_000;
/** How long Gmail calls already sent may go on once the time budget winds a run down. */
const WIND_DOWN_MS = 10_000;
/** How often a worker process reads the stop flags of the actions its units run (one read per action). */
const STOP_POLL_MS = 400;

export function createWork(deps: Deps) {
  const { store, units, queue, config, log } = deps;
  const leaseMs = config.leaseS * 1000;
  const callTimeoutMs = config.gmailCallTimeoutS * 1000;
  const stops = createStopWatch((tokens) => store.stopFlags(tokens), STOP_POLL_MS);
  const watcher = createWatcher(deps);

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
      const what = `listing the users of ${t.domain} as ${admin}`;
      const list = () =>
        dir.api.users.list(
          { domain: t.domain, maxResults: 500, pageToken, fields: 'users(primaryEmail,suspended),nextPageToken' },
          { signal: AbortSignal.timeout(callTimeoutMs) },
        );
      let res;
      try {
        res = await list();
      } catch (e) {
        let err = classify(e, what);
        // A token that expired or was revoked early: one new token, then the call again.
        if (err.status !== 401) throw err instanceof PermanentGmailError ? withScopeAdvice(err, dir.advice) : err;
        dir.renew();
        try {
          res = await list();
        } catch (again) {
          err = classify(again, what);
          throw err instanceof PermanentGmailError ? withScopeAdvice(err, dir.advice) : err;
        }
      }
      for (const u of res.data.users ?? []) if (u.primaryEmail && !u.suspended) out.push(u.primaryEmail.toLowerCase());
      pageToken = res.data.nextPageToken ?? undefined;
    } while (pageToken);
    return [...new Set(out)].sort();
  }

  /**
   * The action to fan out, claimed; null when it ended, or when its record was
   * never written. The action function writes the record and creates this task
   * at once (verbs.ts queueFetch), so a delivery can overtake the record: it
   * reads again for a few seconds (the queue's own retry would come 30 s
   * later), then asks to be delivered again, until `RECORD_GRACE_MS` after the
   * task was queued.
   */
  async function claimWritten(token: string, queuedAt: number | undefined): Promise<ActionRecord | null | 'pending'> {
    for (let waitMs = 10; ; waitMs *= 2) {
      const action = await store.claimAction(token);
      if (action || queuedAt === undefined || deps.now() - queuedAt >= RECORD_GRACE_MS) return action;
      const found = await store.get(token);
      if (found && ENDED_STATUSES.has(found.status)) return null;
      if (waitMs > 2_560) return 'pending';
      // Written between the two reads: claim it at once.
      if (!found) await sleep(waitMs);
    }
  }

  async function fanOut(token: string, queuedAt: number | undefined): Promise<WorkResult> {
    const action = await claimWritten(token, queuedAt);
    if (action === 'pending') return { status: 503, message: 'the action is not written yet; will be retried' };
    if (!action) return { status: 200, message: 'ended or cancelled: nothing to do' };
    // A delivery after the units were fixed does not list again: a changed
    // user list cannot add or drop a mailbox of a running action.
    let created: { task: string; user: string; id: string }[] | undefined;
    if (action.unitsTotal === null) {
      const list: { task: string; user: string; id: string }[] = [];
      const named = fetchActionOf(action.fetchAction).namedMailboxes?.(action.params ?? {});
      try {
        for (const task of action.tasks) {
          for (const user of named ? (named[task] ?? []) : await mailboxes(task)) list.push({ task, user, id: unitId(task, user) });
        }
      } catch (e) {
        if (e instanceof PermanentGmailError) {
          await store.failAction(token, e.message);
          log.with({ token }).error('action failed', { error: e.message });
          return { status: 200, message: e.message };
        }
        throw e;
      }
      await units.create(token, list, fetchActionOf(action.fetchAction));
      created = list;
    }
    const now = await store.get(token);
    if (now?.status === 'Cancelled' || now?.stopRequested) {
      // Cancelled or stopped while the units were written: they never start.
      const stored = await store.units(token);
      await Promise.all(stored.map((u) => units.end(token, unitId(u.task, u.user), null, 'Cancelled', {})));
      return { status: 200, message: 'cancelled' };
    }
    // The units this delivery wrote are queued as listed, without reading them back (a task
    // that exists already is left as it is); a later delivery reads which are still to queue.
    const queued = created
      ? created.map((u) => ({ unit: u.id, taskId: unitTaskId(token, unitKey(u.task, u.user), 0) }))
      : (await store.units(token)).filter((u) => u.status === 'Queued' && u.generation === 0).map((u) => ({ unit: unitId(u.task, u.user), taskId: u.taskId }));
    // A domain can have thousands of mailboxes: create their tasks many at a time.
    const limit = pLimit(FAN_OUT_CONCURRENCY);
    await Promise.all(queued.map((u) => limit(() => queue.enqueue(u.taskId, { token, unit: u.unit, generation: 0 }))));
    log.with({ token }).info('fanned out', { units: queued.length });
    return { status: 200, message: `${queued.length} mailboxes queued` };
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

  async function runUnit(token: string, id: string, generation: number, delivery: DeliveryInfo): Promise<WorkResult> {
    const holder = randomBytes(12).toString('base64url');
    const claim = await units.claim(token, id, holder, generation, leaseMs, delivery);
    if (claim.kind === 'done') return { status: 200, message: `nothing to do: ${claim.why}` };
    if (claim.kind === 'busy') {
      const message = `another delivery holds the lease until ${new Date(claim.until).toISOString()}`;
      await units.noteError(token, id, message, delivery);
      return { status: 409, message };
    }
    if (claim.kind === 'overlap') {
      const next = generation + 1;
      const taskId = unitTaskId(token, claim.unit.key, next);
      const delay = overlapDelayS(config.leaseS);
      await queue.enqueue(taskId, { token, unit: id, generation: next }, { delaySeconds: delay });
      await units.requeue(token, id, next, taskId);
      return { status: 200, message: `action ${claim.other} is working on this mailbox; retrying in ${delay} s` };
    }
    const { unit, action } = claim;
    const ulog = log.with({ token, task: unit.task, user: unit.user });
    const progress = progressOf(unit);
    const abort = new AbortController();
    let stop = action.stopRequested;
    // A claimant that read its action `Queued` moves it to `Processing`, beside the run's own start.
    const marking = action.status === 'Queued' ? store.markStarted(token, unit.startedAt ?? Timestamp.fromMillis(deps.now())) : Promise.resolve(action.status);
    // Settled at once so that a failure waits, unhandled, for no one: it is thrown where the run awaits it.
    const started = marking.then(
      (s) => () => s,
      (e: unknown) => () => {
        throw e;
      },
    );
    let outOfTime = false;
    let lost: unknown;
    // The budget winds the run down: no Gmail call or wait starts, and the calls already sent
    // finish so that their answers are kept (a listed page is not listed again by the
    // continuation), unless they outlast WIND_DOWN_MS. Stop and a lost lease or address end
    // everything at once.
    const ending = new AbortController();
    let windDown: NodeJS.Timeout | undefined;
    const end = (why: () => void, at: 'once' | 'wind down' = 'once') => {
      why();
      ending.abort();
      if (at === 'once') abort.abort();
      else windDown ??= setTimeout(() => abort.abort(), Math.min(WIND_DOWN_MS, callTimeoutMs));
    };
    const unwatch = stops.watch(token, () => end(() => (stop = true)));
    // One write of this run at a time: each is conditional on the one before.
    const serial = pLimit(1);
    const held = await units.hold(token, id, holder, flushEveryMs(action.unitsTotal));
    const leaseTimer = setInterval(() => {
      serial(() => units.renew(held, leaseMs)).catch((e: unknown) => {
        if (e instanceof LeaseLost || e instanceof MailboxLost) end(() => (lost = e));
      });
    }, Math.max(1000, leaseMs / 3));
    // The budget ends the run even inside a hung call: the hand-over must happen before the dispatch deadline.
    const budgetTimer = setTimeout(() => end(() => (outOfTime = true), 'wind down'), config.workerTimeBudgetS * 1000);
    const spec = fetchActionOf(action.fetchAction);
    const taskConfig = config.connector.tasks[unit.task];
    const mailbox = deps.google.gmail(unit.user, spec.scopesFor?.(action.params ?? {}) ?? spec.scopes);
    // One pacer per address in this process, and one reader of the address at a time across processes (gmail/address.ts).
    const pacer = pacerFor(unit.user, config.connector.gmail.quotaUnitsPerUserPerMinute, deps.now);
    let address: AddressHold | undefined;
    const caller = new GmailCaller({
      auth: mailbox,
      pacer,
      signal: abort.signal,
      ending: ending.signal,
      timeoutMs: callTimeoutMs,
      baseBackoffMs: config.gmailBackoffMs,
      maxBackoffMs: Math.min(30_000, config.gmailBackoffMs * 60),
    });
    caller.retries = progress.retries;
    ulog.info('unit started', { generation, attempts: unit.attempts });
    try {
      if (taskConfig) {
        address = await holdAddress({ db: deps.db, address: unit.user, holder, leaseMs, pacer, now: deps.now, signal: ending.signal, onLost: (e) => end(() => (lost = e)) }).catch(
          (e: unknown) => {
            if (e instanceof RunAborted) return undefined;
            throw e;
          },
        );
      }
      const status = (await started)();
      if (status !== 'Processing') {
        // Cancel (or an end) won the race with this claim: the mailbox never starts.
        await address?.release();
        await serial(() => units.end(token, id, holder, status === 'Cancelled' ? 'Cancelled' : 'Stopped', progress));
        return { status: 200, message: `the action is ${status ?? 'gone'}` };
      }
      const outcome = !taskConfig
        ? ({ kind: 'failed', error: `task ${unit.task} is no longer configured` } as const)
        : !address
          ? ({ kind: 'interrupted' } as const)
          : await spec.run({
            db: deps.db,
            gmail: mailbox.api,
            caller,
            storage: deps.storage,
            token,
            task: unit.task,
            user: unit.user,
            index: unit.index,
            taskConfig,
            params: action.params ?? {},
            progress,
            shouldEnd: () => stop || outOfTime || lost !== undefined,
            expireWhileRunning: () => store.expireWhileRunning(),
            begin: (epoch, selection) => serial(() => units.begin(held, leaseMs, epoch, selection)),
            commit: async (p, write) => {
              await serial(() => units.write(held, leaseMs, { ...p, retries: caller.retries }, write));
            },
          });
      await address?.release();
      if (lost) throw lost;
      progress.retries = caller.retries;
      switch (outcome.kind) {
        case 'finished':
          await serial(() =>
            units.end(token, id, holder, 'Finished', progress, outcome.epoch === undefined ? undefined : { epoch: outcome.epoch, historyId: outcome.historyId ?? null, selection: outcome.selection ?? null }),
          );
          // A push task's mailbox is watched once it has been synchronized (push/watcher.ts).
          await watcher.afterSync(unit.task, unit.user, action.fetchAction);
          break;
        case 'superseded':
          await serial(() => units.end(token, id, holder, 'Finished', { ...progress, note: `action ${outcome.by} synchronized this mailbox after this run began; this run stopped there` }));
          break;
        case 'failed':
          await serial(() => units.end(token, id, holder, 'Error', { ...progress, error: outcome.error }));
          ulog.error('unit failed', { error: outcome.error });
          break;
        case 'interrupted':
          if (stop) {
            await serial(() => units.end(token, id, holder, 'Stopped', progress));
            break;
          }
          if (outOfTime) {
            // The lease is released before the continuation exists, so that its first delivery can claim
            // the unit at once; should the enqueue fail, reconcile finds the task missing and re-enqueues it.
            const next = generation + 1;
            const taskId = unitTaskId(token, unit.key, next);
            await serial(() => units.handOver(token, id, holder, next, taskId, progress));
            await queue.enqueue(taskId, { token, unit: id, generation: next });
            ulog.info('handed over to a continuation', { next: taskId });
            break;
          }
          throw new Error('the run ended without a reason');
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
      // Transient, or the mailbox passed to another delivery: keep what was
      // committed, free the lease, and let Cloud Tasks deliver again.
      const message = (e as Error).message;
      ulog.warn('unit interrupted; the queue will retry', { error: message });
      try {
        progress.retries = caller.retries;
        await serial(() => units.handOver(token, id, holder, generation, unit.taskId, progress, message));
      } catch {
        // The lease expires on its own; reconcile looks after a unit whose task is gone.
      }
      return { status: 503, message: `interrupted: ${message}; will be retried` };
    } finally {
      await address?.release();
      unwatch();
      clearInterval(leaseTimer);
      clearTimeout(budgetTimer);
      clearTimeout(windDown);
    }
  }

  return {
    /** Handles one delivery. */
    async handle(p: WorkPayload, delivery: DeliveryInfo = { retryCount: 0, previousResponse: null }): Promise<WorkResult> {
      if (p.unit === undefined) return fanOut(p.token, p.queuedAt);
      return runUnit(p.token, p.unit, p.generation ?? 0, delivery);
    },
  };
}

export type Work = ReturnType<typeof createWork>;
