/**
 * The fan-out: the first delivery of an action's own task claims the action (`Processing`), lists
 * its mailboxes (a task's users, or its domain's through the Directory API, or the mailboxes its
 * identifiers name), writes one unit per task section and mailbox, and creates each unit's task.
 * A later delivery (after a crash) lists nothing again: it queues the units still to queue.
 */
import pLimit from 'p-limit';
import type { Deps } from '../deps.js';
import { fetchActionNamed, unknownFetchAction } from '../fetch/registry.js';
import { withScopeAdvice } from '../gmail/caller.js';
import { PermanentGmailError, classify } from '../gmail/errors.js';
import { sleep } from '../gmail/pacing.js';
import { ENDED_STATUSES, unitId, unitKey, unitTaskId, type ActionRecord } from '../store/model.js';
import type { WorkResult } from './unit-run.js';

/** Unit tasks a fan-out creates at once. */
const FAN_OUT_CONCURRENCY = 64;
/** How long after its task was queued an action's record may still be on its way (see claimWritten). */
export const RECORD_GRACE_MS = 60_000;

/** Fans out one action: `fanOut(token, queuedAt)` for each delivery of the action's own task. */
export function createFanOut(deps: Deps) {
  const { store, units, queue, config, log } = deps;
  const callTimeoutMs = config.gmailCallTimeoutS * 1000;

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
   * at once (app/verbs.ts queueFetch), so a delivery can overtake the record: it
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

  return fanOut;
}
