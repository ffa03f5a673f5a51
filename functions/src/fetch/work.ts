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
import { withScopeAdvice } from '../gmail/caller.js';
import { PermanentGmailError, classify } from '../gmail/errors.js';
import { sleep } from '../gmail/pacing.js';
import type { WorkPayload } from '../queue/tasks.js';
import { ENDED_STATUSES, unitId, unitKey, unitTaskId, type ActionRecord, type UnitRecord } from '../store/model.js';
import type { DeliveryInfo, UnitProgress } from '../store/units.js';
import { createWatcher } from '../push/watcher.js';
import { fetchActionNamed, unknownFetchAction } from './registry.js';
import { createStopWatch } from './stopwatch.js';
import { UnitRun, type WorkResult } from './unit-run.js';

export type { WorkResult } from './unit-run.js';

/** How long an action waits before trying again when another works on its mailbox: half a lease, at most 30 s. */
function overlapDelayS(leaseS: number): number {
  return Math.min(30, Math.max(1, Math.ceil(leaseS / 2)));
}
/** Unit tasks a fan-out creates at once. */
const FAN_OUT_CONCURRENCY = 64;
/** How long after its task was queued an action's record may still be on its way (see claimWritten). */
export const RECORD_GRACE_MS = 60_000;
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

  async function failBeforeUnits(token: string, message: string): Promise<WorkResult> {
    await store.failAction(token, message);
    log.with({ token }).error('action failed', { error: message });
    return { status: 200, message };
  }

  async function fanOut(token: string, queuedAt: number | undefined): Promise<WorkResult> {
    const action = await claimWritten(token, queuedAt);
    if (action === 'pending') return { status: 503, message: 'the action is not written yet; will be retried' };
    if (!action) return { status: 200, message: 'ended or cancelled: nothing to do' };
    // Written by a newer version (before a rollback), the record may name a fetch action this
    // version does not know: the action ends `Error`, naming it, rather than retrying for ever.
    const spec = fetchActionNamed(action.fetchAction);
    if (!spec) return failBeforeUnits(token, unknownFetchAction(action.fetchAction));
    // A delivery after the units were fixed does not list again: a changed
    // user list cannot add or drop a mailbox of a running action.
    let created: { task: string; user: string; id: string; index: number }[] | undefined;
    if (action.unitsTotal === null) {
      const list: { task: string; user: string; id: string; index: number }[] = [];
      const named = spec.namedMailboxes?.(action.params ?? {});
      try {
        for (const task of action.tasks) {
          for (const user of named ? (named[task] ?? []) : await mailboxes(task)) list.push({ task, user, id: unitId(task, user), index: list.length });
        }
        // Without an identity to read Gmail with, no unit could run: the action ends here, naming what to set.
        const first = list[0];
        if (first) deps.google.gmail(first.user, spec.scopesFor?.(action.params ?? {}) ?? spec.scopes);
      } catch (e) {
        if (e instanceof PermanentGmailError) return failBeforeUnits(token, e.message);
        throw e;
      }
      // An earlier delivery may have written some units before it failed, from a list that has
      // changed since (a domain's users): those keep their index, and the others take indexes
      // after theirs, so that no two units share one (results are kept by unit index).
      const before = await store.units(token);
      if (before.length) {
        const taken = new Map(before.map((u) => [unitId(u.task, u.user), u.index]));
        let nextIndex = Math.max(...before.map((u) => u.index)) + 1;
        for (const u of list) u.index = taken.get(u.id) ?? nextIndex++;
      }
      await units.create(token, list, spec);
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
    // A claimant that read its action `Queued` moves it to `Processing`, beside the run's own start.
    const marking = action.status === 'Queued' ? store.markStarted(token, unit.startedAt ?? Timestamp.fromMillis(deps.now())) : Promise.resolve(action.status);
    // Settled at once so that a failure waits, unhandled, for no one: it is thrown where the run awaits it.
    const started = marking.then(
      (s) => () => s,
      (e: unknown) => () => {
        throw e;
      },
    );
    // What the run needs and may not have: its fetch action (a record written by a newer version
    // names one this version does not know, after a rollback) and its Gmail identity. Either
    // missing ends the unit `Error` with the cause, before anything that would outlive it starts.
    const spec = fetchActionNamed(action.fetchAction);
    let mailbox: ReturnType<Deps['google']['gmail']> | undefined;
    let unusable: string | undefined;
    if (!spec) unusable = unknownFetchAction(action.fetchAction);
    else {
      try {
        mailbox = deps.google.gmail(unit.user, spec.scopesFor?.(action.params ?? {}) ?? spec.scopes);
      } catch (e) {
        if (!(e instanceof PermanentGmailError)) throw e;
        unusable = e.message;
      }
    }
    if (unusable !== undefined || !spec || !mailbox) {
      const error = unusable ?? 'the run cannot start';
      const status = (await started)();
      await units.end(token, id, holder, status === 'Cancelled' ? 'Cancelled' : 'Error', { ...progress, ...(status === 'Cancelled' ? {} : { error }) });
      ulog.error('unit failed', { error });
      return { status: 200, message: error };
    }
    const run = new UnitRun({ deps, stops, watcher, token, id, generation, holder, unit, action, spec, mailbox, progress, started, leaseMs, callTimeoutMs, log: ulog });
    return run.go();
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
