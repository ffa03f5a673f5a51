/**
 * A unit's delivery, before its run: the delivery claims the unit's lease (and, for a fetch action
 * that locks, its mailbox). Another delivery holding the lease is refused (409, the queue delivers
 * again later); another action working on the mailbox hands the unit over to a later task of the
 * next generation. A claimed unit whose fetch action or Gmail identity is missing ends `Error`
 * here; any other runs as a `UnitRun` (unit-run.ts).
 */
import { randomBytes } from 'node:crypto';
import { Timestamp } from '@google-cloud/firestore';
import type { Deps } from '../deps.js';
import { fetchActionNamed, unknownFetchAction } from '../fetch/registry.js';
import { PermanentGmailError } from '../gmail/errors.js';
import type { createWatcher } from '../push/watch-renewal.js';
import { unitTaskId, type UnitRecord } from '../store/model.js';
import type { DeliveryInfo, UnitProgress } from '../store/units.js';
import type { StopWatch } from './stopwatch.js';
import { UnitRun, type WorkResult } from './unit-run.js';

/** How long an action waits before trying again when another works on its mailbox: half a lease, at most 30 s. */
function overlapDelayS(leaseS: number): number {
  return Math.min(30, Math.max(1, Math.ceil(leaseS / 2)));
}

/** Claims and runs one unit: `runUnit(token, unit, generation, delivery)` for each delivery of a unit's task. */
export function createUnitClaim(deps: Deps, stops: StopWatch, watcher: ReturnType<typeof createWatcher>) {
  const { store, units, queue, config, log } = deps;
  const leaseMs = config.leaseS * 1000;
  const callTimeoutMs = config.gmailCallTimeoutS * 1000;

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

  return runUnit;
}
