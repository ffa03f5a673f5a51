/**
 * The ACI actions this connector answers: one typed table that the parser,
 * the enqueue call and the dispatch share. Synchronous actions answer at once;
 * Fetch writes the action `Queued`, then creates its Cloud Task.
 */
import { randomBytes } from 'node:crypto';
import type { Deps } from '../deps.js';
import { actionView } from '../queue/view.js';
import { createReconciler, type Reconciler } from '../queue/reconcile.js';
import { ENDED_STATUSES, FETCH_ACTIONS, STATUSES, TOKEN_PATTERN, fanOutTaskId, unitId, type ActionRecord, type Status } from '../store/model.js';
import { AciError, badParameter, conflict, missingParameter, notFound, unavailable, unknownAction } from './errors.js';
import { parseBoolParam, parseEnum, parseIntParam, requireParam, type AciParams } from './request.js';
import type { AciTree } from './response.js';

/** The product name GetVersion reports. */
export const PRODUCT = 'gmail-connector';
/** The connector's version (kept equal to package.json's). */
export const VERSION = '0.1.0';

/** Fetch actions IDOL connectors know that this one does not run. */
const OTHER_FETCH_ACTIONS = ['Collect', 'Delete', 'Hold', 'Identifiers', 'Insert', 'ReleaseHold', 'Remove', 'Update', 'View'];
const QUEUE_ACTIONS = ['GetStatus', 'Cancel', 'Stop', 'Pause', 'Resume'] as const;
const QUEUE_NAMES = ['fetch'] as const;

type Handler = (p: AciParams, deps: Deps) => Promise<AciTree | undefined>;

function newToken(): string {
  return randomBytes(16).toString('base64url');
}

/** An enumerated parameter that must be given. */
function requiredEnum<T extends string>(p: AciParams, name: string, allowed: readonly T[]): T {
  return parseEnum(p, name, allowed);
}

/** A Token parameter: present and well-formed, before any path is built from it. */
function tokenParam(p: AciParams): string {
  const t = requireParam(p, 'Token');
  if (!TOKEN_PATTERN.test(t)) throw badParameter('Token', t, 'a 22-character token as returned by Fetch');
  return t;
}

async function fetchAction(p: AciParams, deps: Deps): Promise<AciTree> {
  const raw = requireParam(p, 'FetchAction');
  if (OTHER_FETCH_ACTIONS.some((a) => a.toLowerCase() === raw.toLowerCase())) {
    throw badParameter('FetchAction', raw, `one of the supported fetch actions: ${FETCH_ACTIONS.join(', ')}`);
  }
  const fetch = requiredEnum(p, 'FetchAction', FETCH_ACTIONS);
  const configured = Object.keys(deps.config.connector.tasks);
  const sections = requireParam(p, 'TaskSections')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  if (sections.length === 0) throw missingParameter('TaskSections', `configured tasks: ${configured.join(', ')}`);
  const tasks: string[] = [];
  for (const s of sections) {
    const match = configured.find((c) => c.toLowerCase() === s.toLowerCase());
    if (!match) throw badParameter('TaskSections', s, `one of the configured tasks: ${configured.join(', ')}`);
    if (!tasks.includes(match)) tasks.push(match);
  }
  const schedule = parseBoolParam(p, 'Schedule', false);
  if (schedule && tasks.length !== 1) throw badParameter('TaskSections', sections.join(','), 'exactly one task with Schedule=true');
  const scheduleKey = tasks.length === 1 ? (tasks[0] ?? null) : null;
  const token = newToken();
  if (schedule && scheduleKey) {
    // Never coalesce onto an action that lost its tasks: reconcile it first.
    const active = await deps.store.activeOfTask(scheduleKey);
    if (active) await reconcilerOf(deps).action(active.token, true);
    const r = await deps.store.createScheduled({ token, fetchAction: fetch, tasks, scheduleKey });
    if (!r.created) return { token: r.record.token, coalesced: true };
  } else {
    await deps.store.create({ token, fetchAction: fetch, tasks, scheduleKey });
  }
  try {
    await deps.queue.enqueue(token, { token });
  } catch (e) {
    await deps.store.failQueued(token, `the Cloud Task could not be created: ${(e as Error).message}`);
    deps.log.with({ token }).error('task creation failed', { error: (e as Error).message });
    throw unavailable('the fetch queue did not accept the action; try again later', e);
  }
  deps.log.with({ token, task: tasks.join(',') }).info('action queued', { fetchAction: fetch, schedule });
  return { token };
}

/** The action, settled (see `settled`); a 404 when there is none. */
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

/** The same for an action already read (GetStatus's list). */
async function current(deps: Deps, a: ActionRecord): Promise<ActionRecord> {
  if (ENDED_STATUSES.has(a.status)) return a;
  return (await settled(deps, a.token)) ?? a;
}

function endedConflict(token: string, status: Status, verb: string): AciError {
  return conflict(`action ${token} is ${status}: there is nothing to ${verb}`);
}

async function queueInfo(p: AciParams, deps: Deps): Promise<AciTree> {
  requiredEnum(p, 'QueueName', QUEUE_NAMES);
  const verb = requiredEnum(p, 'QueueAction', QUEUE_ACTIONS);
  switch (verb) {
    case 'GetStatus': {
      if (p.has('Token')) {
        const a = await getOne(deps, tokenParam(p));
        return { actions: { action: [actionView(a, await deps.store.units(a.token), deps.now())] } };
      }
      const limit = parseIntParam(p, 'MaxResults', { min: 1, max: 1000, default: 100 });
      const state = p.get('State') ? parseEnum(p, 'State', STATUSES) : undefined;
      const list = await Promise.all((await deps.store.list({ status: state, limit })).map((a) => current(deps, a)));
      const views = await Promise.all(list.map(async (a) => actionView(a, await deps.store.units(a.token), deps.now())));
      return { actions: { action: views } };
    }
    case 'Cancel': {
      const token = tokenParam(p);
      await settled(deps, token);
      const r = await deps.store.cancel(token);
      if (r.kind === 'missing') throw notFound(`action ${token}`);
      if (r.kind === 'wrong-state') {
        if (r.status === 'Processing') throw conflict(`action ${token} is running: use QueueAction=Stop`);
        throw endedConflict(token, r.status, 'cancel');
      }
      const a = await deps.store.get(token);
      await Promise.all(Array.from({ length: (a?.fanOutGeneration ?? 0) + 1 }, (_, g) => deps.queue.remove(fanOutTaskId(token, g))));
      await endIdleUnits(deps, token);
      return { token, status: 'Cancelled' };
    }
    case 'Stop': {
      const token = tokenParam(p);
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
    case 'Pause':
      await deps.queue.pause();
      return { queue: 'fetch', paused: true };
    case 'Resume':
      await deps.queue.resume();
      return { queue: 'fetch', paused: false };
    default: {
      const never: never = verb;
      throw new Error(`unhandled QueueAction ${String(never)}`);
    }
  }
}

async function getVersion(): Promise<AciTree> {
  return { product: PRODUCT, version: VERSION, node: process.versions.node };
}

async function getStatus(_p: AciParams, deps: Deps): Promise<AciTree> {
  const [paused, counts] = await Promise.all([deps.queue.isPaused(), deps.store.countByStatus(STATUSES)]);
  return {
    version: VERSION,
    uptime: Math.floor((deps.now() - deps.startedAt) / 1000),
    queues: {
      queue: [
        {
          name: 'fetch',
          paused,
          actions: Object.fromEntries(STATUSES.map((s) => [`@${s.toLowerCase()}`, String(counts[s] ?? 0)])),
        },
      ],
    },
  };
}

/** Every action, by canonical name. */
export const ACTIONS = {
  Fetch: fetchAction,
  QueueInfo: queueInfo,
  GetVersion: getVersion,
  GetStatus: getStatus,
} as const satisfies Record<string, Handler>;
export type ActionName = keyof typeof ACTIONS;
export const ACTION_NAMES = Object.keys(ACTIONS) as ActionName[];

/** The canonical name of the request's action, or the reason there is none. */
export function actionName(p: AciParams): ActionName {
  const raw = p.get('action');
  if (raw === undefined || raw === '') throw missingParameter('action', `supported actions: ${ACTION_NAMES.join(', ')}`);
  const name = ACTION_NAMES.find((n) => n.toLowerCase() === raw.toLowerCase());
  if (!name) throw unknownAction(raw, ACTION_NAMES);
  return name;
}
