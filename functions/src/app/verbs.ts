/**
 * What each verb does: queueing a Fetch (and joining a scheduled run to a running one), Cancel,
 * Stop, Pause and Resume, reading actions for GetStatus and Progress, the queue's counts, and the
 * parameters an action was sent with. Each takes the dependencies and plain values that aci/ has
 * parsed, and returns plain data (which aci/ renders) or throws an ACI error. Nothing here parses
 * a request or builds a response tree.
 */
import { randomBytes } from 'node:crypto';
import type { Deps } from '../deps.js';
import { fetchActionNamed } from '../fetch/registry.js';
import { resultsKind } from '../aci/status.js';
import type { FetchParams } from '../fetch/spec.js';
import { createReconciler, type Reconciler } from '../queue/reconcile.js';
import type { ActionIdClaim, ActionListQuery, CreateOutcome } from '../store/actions.js';
import type { ActionTotals } from '../store/totals.js';
import { ENDED_STATUSES, STATUSES, fanOutTaskId, unitId, type ActionRecord, type Status, type UnitRecord } from '../store/model.js';
import { ResultStore, type ResultEntry } from '../store/results.js';
import { AciError, conflict, notFound, unavailable } from '../aci/errors.js';
import { parametersDigest } from '../aci/action-id.js';
import { errorMessage } from '../error-message.js';

/** One parameter of a request, as the client sent it. */
export interface SentParameter {
  name: string;
  value: string;
}

/** A Fetch, once its parameters are parsed and checked against the configuration. */
export interface FetchRequest {
  /** The fetch action's canonical name (see fetch/registry.ts). */
  fetchAction: string;
  /** Task sections, as configured. */
  tasks: string[];
  /** The task an action that joins scheduled runs is found by; null for others. */
  scheduleKey: string | null;
  /** The fetch action's own parameters, as it parsed them. */
  params: FetchParams;
  /** The request's parameters as sent (kept for GetActionParameters and Duplicate). */
  request: SentParameter[];
  /** Schedule=true: join a `Queued` or `Processing` action of the one task instead of queueing another. */
  schedule: boolean;
  /** The client's ActionID: kept on the action, and a repeat of the request within a day answers the same token. */
  actionId?: string;
}

function newToken(): string {
  return randomBytes(16).toString('base64url');
}

const reconcilers = new WeakMap<Deps, Reconciler>();
function reconcilerOf(deps: Deps): Reconciler {
  let r = reconcilers.get(deps);
  if (!r) reconcilers.set(deps, (r = createReconciler(deps)));
  return r;
}

/** The action as it is once a dead lease or a lost task is no longer trusted (one read when it has ended). */
async function settled(deps: Deps, token: string): Promise<ActionRecord | null> {
  return reconcilerOf(deps).action(token);
}

/** An action already read (GetStatus's list), ended if its units all ended; none of its units is read. */
async function current(deps: Deps, a: ActionRecord): Promise<ActionRecord> {
  return reconcilerOf(deps).listed(a);
}

/** The action, settled; a 404 when there is none. */
async function getOne(deps: Deps, token: string): Promise<ActionRecord> {
  const a = await settled(deps, token);
  if (!a) throw notFound(`action ${token}`);
  return a;
}

/**
 * Ends the units no live lease holds and deletes their tasks (Cancel of a
 * queued action, Stop of a running one): `Cancelled` if they never started,
 * else `Stopped`. A unit whose holder is alive sees the stop flag itself.
 */
async function endIdleUnits(deps: Deps, token: string): Promise<void> {
  const units = await deps.units.open(token);
  const now = deps.now();
  await Promise.all(
    units
      .filter((u) => !u.lease || u.lease.expiresAt.toMillis() <= now)
      .map(async (u) => {
        if (await deps.units.end(token, unitId(u.task, u.user), null, u.status === 'Queued' ? 'Cancelled' : 'Stopped', {})) {
          await deps.queue.remove(u.taskId);
        }
      }),
  );
}

function endedConflict(token: string, status: Status, verb: string): AciError {
  return conflict(`action ${token} is ${status}: there is nothing to ${verb}`);
}

/**
 * Fetch: writes the action `Queued`, then creates its Cloud Task; with `schedule`, answers the
 * task's open action instead when there is one (`coalesced`). A queue that refuses the task ends
 * the action `Error` and is a 503. With an ActionID, a repeat of the request within a day answers
 * what the first was answered, and queues nothing; the same ActionID with other parameters is a 409.
 */
export async function queueFetch(deps: Deps, r: FetchRequest): Promise<{ token: string; coalesced?: true }> {
  const token = newToken();
  const record = { token, fetchAction: r.fetchAction, tasks: r.tasks, scheduleKey: r.scheduleKey, params: r.params, request: r.request, actionId: r.actionId };
  // The parameters as sent, not as parsed: a retry sends the same request, whatever it parses to today.
  const claim: ActionIdClaim | undefined = r.actionId === undefined ? undefined : { actionId: r.actionId, digest: parametersDigest(r.request) };
  if (r.schedule && r.scheduleKey) {
    // Never coalesce onto an action that lost its tasks: reconcile it first.
    const active = await deps.store.activeOfTask(r.scheduleKey);
    if (active) await reconcilerOf(deps).action(active.token, true);
    const made = await deps.store.createScheduled({ ...record, scheduleKey: r.scheduleKey }, claim);
    if (made.kind !== 'created') return answered(made, r.actionId);
    await deps.queue.enqueue(token, { token }).catch((e: unknown) => enqueueFailed(deps, token, e, r.actionId));
  } else if (claim) {
    // The record and its ActionID are written first, in one transaction, so that simultaneous
    // repeats make one action; the task after, as for a scheduled run.
    const made = await deps.store.createOnce({ ...record, actionId: claim.actionId }, claim);
    if (made.kind !== 'created') return answered(made, r.actionId);
    await deps.queue.enqueue(token, { token }).catch((e: unknown) => enqueueFailed(deps, token, e, r.actionId));
  } else {
    // The record and the task are written at once, one round trip instead of two: a delivery
    // that overtakes the record waits for it (engine/fan-out.ts claimWritten).
    const [made, queued] = await Promise.allSettled([deps.store.create(record), deps.queue.enqueue(token, { token, queuedAt: deps.now() })]);
    if (made.status === 'rejected') {
      // No record: the task must not run. One that escapes removal finds no record and ends.
      if (queued.status === 'fulfilled') await deps.queue.remove(token).catch(() => false);
      throw made.reason;
    }
    if (queued.status === 'rejected') await enqueueFailed(deps, token, queued.reason);
  }
  deps.log.with({ token, task: r.tasks.join(',') }).info('action queued', { fetchAction: r.fetchAction, schedule: r.schedule, actionId: r.actionId });
  return { token };
}

/** The answer of a Fetch that queued nothing: the open action it joined, or its ActionID's first answer. */
function answered(made: Exclude<CreateOutcome, { kind: 'created' }>, actionId: string | undefined): { token: string; coalesced?: true } {
  switch (made.kind) {
    case 'joined':
      return { token: made.record.token, coalesced: true };
    case 'repeated':
      return made.coalesced ? { token: made.token, coalesced: true } : { token: made.token };
    case 'differs':
      throw conflict(
        `ActionID ${actionId ?? ''} was sent within the last 24 hours with other parameters (action ${made.token}): the parameters differ. Send the same parameters to get the token of that action, or use another ActionID`,
      );
  }
}

/**
 * The action's task could not be created, as far as the queue's answers tell. A creation that
 * took effect though its answers were lost left the task in the queue, or already delivered: the
 * action is queued (or running), and the client gets its token (told to try again, it would run
 * the action twice). Otherwise the action ends `Error`, and the client is told to try again; a
 * delivery of a task that did exist then finds the action ended and runs nothing, and its
 * ActionID, if any, is released.
 */
async function enqueueFailed(deps: Deps, token: string, e: unknown, actionId?: string): Promise<void> {
  const log = deps.log.with({ token });
  if (await deps.queue.exists(token).catch(() => false)) {
    log.warn('task creation answered a failure, but the task exists: the action is queued', { error: errorMessage(e) });
    return;
  }
  if (!(await deps.store.failQueued(token, `the Cloud Task could not be created: ${errorMessage(e)}`))) {
    log.warn('task creation answered a failure, but the action has started: its task was delivered', { error: errorMessage(e) });
    return;
  }
  log.error('task creation failed', { error: errorMessage(e) });
  // The action never ran: the client's retry with the same ActionID queues it anew.
  if (actionId !== undefined) {
    await deps.store.releaseActionId(actionId, token).catch((err: unknown) => log.warn('the ActionID could not be released', { error: errorMessage(err) }));
  }
  throw unavailable('the fetch queue did not accept the action; try again later', e);
}

/** Cancel: a `Queued` action becomes `Cancelled`, its tasks deleted and its idle units ended. */
export async function cancel(deps: Deps, token: string): Promise<{ token: string; status: Status }> {
  await settled(deps, token);
  const { result: r, tasks } = await deps.units.cancelAction(token);
  if (r.kind === 'missing') throw notFound(`action ${token}`);
  if (r.kind === 'wrong-state') {
    if (r.status === 'Processing') throw conflict(`action ${token} is running: use QueueAction=Stop`);
    throw endedConflict(token, r.status, 'cancel');
  }
  const a = await deps.store.get(token);
  await Promise.all([...Array.from({ length: (a?.fanOutGeneration ?? 0) + 1 }, (_, g) => fanOutTaskId(token, g)), ...tasks].map((t) => deps.queue.remove(t)));
  await endIdleUnits(deps, token);
  return { token, status: 'Cancelled' };
}

/** Stop: sets the stop flag of a `Processing` action and ends its idle units; the status after. */
export async function stop(deps: Deps, token: string): Promise<{ token: string; status: Status }> {
  await settled(deps, token);
  const r = await deps.store.requestStop(token);
  if (r.kind === 'missing') throw notFound(`action ${token}`);
  if (r.kind === 'wrong-state') {
    if (r.status === 'Queued') throw conflict(`action ${token} is queued: use QueueAction=Cancel`);
    throw endedConflict(token, r.status, 'stop');
  }
  await endIdleUnits(deps, token);
  await deps.store.finish(token);
  const after = await deps.store.get(token);
  return { token, status: after?.status ?? r.status };
}

/** Pause (true) or Resume (false) the Cloud Tasks queue; whether it is paused after. */
export async function setPaused(deps: Deps, paused: boolean): Promise<boolean> {
  if (paused) await deps.queue.pause();
  else await deps.queue.resume();
  return paused;
}

/** One action for GetStatus, settled, with its units; `results`: whether its fetch action has results to page. */
export async function actionStatus(deps: Deps, token: string): Promise<{ action: ActionRecord; units: UnitRecord[]; results: boolean }> {
  const action = await getOne(deps, token);
  const units = await deps.store.units(action.token);
  return { action, units, results: resultsKind(fetchActionNamed(action.fetchAction), action.params) !== undefined };
}

/** A page of an action's results: `max` entries from position `start` (1-based), and how many there are. */
export async function resultsPage(
  deps: Deps,
  action: ActionRecord,
  units: UnitRecord[],
  start: number,
  max: number,
): Promise<{ entries: ResultEntry[]; start: number; total: number }> {
  const entries = await new ResultStore(deps.db).page(action.token, units, start - 1, max);
  return { entries, start, total: units.reduce((n, u) => n + u.messages, 0) };
}

/**
 * GetStatus without a token: the actions the query selects, each settled, with its totals. Reads
 * the listed actions, and the totals' shards of those that have not ended; never their units (store/totals.ts).
 */
export async function listActions(deps: Deps, query: ActionListQuery): Promise<{ action: ActionRecord; totals: ActionTotals }[]> {
  return Promise.all(
    (await deps.store.list(query)).map(async (listed) => {
      if (listed.totals) return { action: listed, totals: listed.totals };
      const totals = await deps.store.totals(listed.token);
      // Its shards count every unit ended: the action should have ended too, and is settled (its units counted).
      if (listed.unitsTotal === null || totals.ended < listed.unitsTotal) return { action: listed, totals };
      const action = await current(deps, listed);
      return { action, totals: action.totals ?? totals };
    }),
  );
}

/** The server's GetStatus: whether the queue is paused, and how many actions there are of each status. */
export async function serverStatus(deps: Deps): Promise<{ paused: boolean; counts: Record<Status, number> }> {
  const [paused, counts] = await Promise.all([deps.queue.isPaused(), deps.store.countByStatus(STATUSES)]);
  return { paused, counts: Object.fromEntries(STATUSES.map((s) => [s, counts[s] ?? 0])) as Record<Status, number> };
}

/** QueueStatus: whether the queue is paused; actions `Queued` (pending), `Processing` (running) and ended (completed). */
export async function queueStatus(deps: Deps): Promise<{ paused: boolean; pending: number; running: number; completed: number }> {
  const { paused, counts } = await serverStatus(deps);
  const completed = STATUSES.filter((s) => ENDED_STATUSES.has(s)).reduce((n, s) => n + counts[s], 0);
  return { paused, pending: counts.Queued, running: counts.Processing, completed };
}

/** One mailbox unit's progress. */
export interface StageProgress {
  task: string;
  user: string;
  status: Status;
  /** 100 once `Finished`; else progress ÷ maximum, rounded down, at most 99; 0 while the maximum is unknown. */
  percent: number;
  /** Items applied. */
  progress: number;
  /** Messages expected, when known. */
  maximum: number | null;
}

/** Progress of an action. */
export interface ActionProgress {
  /** As GetStatus's `progress/percent`. */
  percent: number;
  /** Whole seconds since the first unit started (to the end, once ended); 0 before. */
  timeProcessing: number;
  /** Whole seconds left at the rate so far; 0 once ended; null when unknown. */
  remaining: number | null;
  stages: StageProgress[];
}

function percentOf(finished: boolean, done: number, total: number | null): number {
  if (finished) return 100;
  if (total === null || total <= 0) return 0;
  return Math.min(99, Math.floor((done / total) * 100));
}

/** Progress: one stage per unit (mailbox), and the action's percentage and estimate of the time left. */
export async function progress(deps: Deps, token: string): Promise<ActionProgress> {
  const a = await getOne(deps, token);
  const units = await deps.store.units(a.token);
  const now = deps.now();
  const started = a.startedAt?.toMillis() ?? null;
  const elapsedMs = started === null ? 0 : Math.max(0, (a.endedAt?.toMillis() ?? now) - started);
  const messages = units.reduce((n, u) => n + u.messages, 0);
  const known = units.length > 0 && units.every((u) => u.total !== null);
  const total = known ? units.reduce((n, u) => n + (u.total ?? 0), 0) : null;
  let remaining: number | null = null;
  if (ENDED_STATUSES.has(a.status)) remaining = 0;
  else if (a.status === 'Processing' && total !== null && messages > 0 && elapsedMs > 0) {
    remaining = Math.max(0, Math.ceil(((elapsedMs / 1000) * (total - messages)) / messages));
  }
  return {
    percent: percentOf(a.status === 'Finished', messages, total),
    timeProcessing: Math.floor(elapsedMs / 1000),
    remaining,
    stages: units.map((u) => ({
      task: u.task,
      user: u.user,
      status: u.status,
      percent: percentOf(u.status === 'Finished', u.messages, u.total),
      progress: u.messages,
      maximum: u.total,
    })),
  };
}

/**
 * The parameters the action was sent with (GetActionParameters; Duplicate sends them again):
 * a 404 for an unknown token, a 409 for an action stored before requests were kept.
 */
export async function sentParameters(deps: Deps, token: string): Promise<SentParameter[]> {
  const a = await deps.store.get(token);
  if (!a) throw notFound(`action ${token}`);
  if (!a.request) {
    throw conflict(`action ${token} was stored without the parameters it was sent with (it predates them being kept): send a new Fetch instead`);
  }
  return a.request;
}
