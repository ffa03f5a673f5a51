/**
 * The ACI actions this connector answers: one typed table that the parser and
 * the dispatch share. Each action parses its parameters, calls the modules that
 * do the work (verbs.ts: Fetch's queueing, Cancel, Stop, the reads of GetStatus
 * and Progress; view.ts for View), and builds the answer's tree.
 */
import type { Config } from '../config.js';
import type { Deps } from '../deps.js';
import { runNow } from './inline.js';
import { FETCH_ACTION_NAMES, fetchActionNamed, fetchActionOf } from '../fetch/registry.js';
import { viewMessage, ViewRefused } from './view.js';
import { watchStatus } from '../push/status.js';
import { decodeIdentifier, IdentifierError, type Identifier } from '../aci/identifiers.js';
import type { ActionListQuery } from '../store/actions.js';
import { STATUSES, TOKEN_PATTERN, type Status } from '../store/model.js';
import {
  actionStatus,
  cancel,
  listActions,
  progress,
  queueFetch,
  queueStatus,
  resultsPage,
  sentParameters,
  serverStatus,
  setPaused,
  stop,
  type ActionProgress,
  type FetchRequest,
} from './verbs.js';
import { badParameter, gmailRefused, missingParameter, notFound, turnedOff, unavailable, unknownAction } from '../aci/errors.js';
import { createAciParams, parameterKey, parseBoolParam, parseEnum, parseIntParam, requireParam, type AciParams } from '../aci/request.js';
import { parseActionId } from '../aci/action-id.js';
import { QUEUE_ACTION_PARAMETERS, type QueueActionName } from '../aci/parameters.js';
import { formatAciTime, type AciTree } from '../aci/response.js';
import { actionView, identifierView } from '../aci/status.js';
import { totalsOfUnits } from '../store/totals.js';

/** The product name GetVersion reports. */
export const PRODUCT = 'gmail-connector';
/** The connector's version (kept equal to package.json's). */
export const VERSION = '0.1.0';
/** The Cloud Functions as the deployment names them (infra/locals.tf and infra/push.tf; test/infra holds them equal). */
export const FUNCTION_NAMES = { action: 'gmail-connector-action', worker: 'gmail-connector-worker', notify: 'gmail-connector-notify' } as const;

/** The names a request may give its task sections under: IDOL's `TaskSections`, or one `ConfigSection`. */
const SECTION_PARAMS = ['TaskSections', 'ConfigSection'] as const;
const QUEUE_ACTIONS = Object.keys(QUEUE_ACTION_PARAMETERS) as QueueActionName[];
/** The QueueInfo verbs that only read (HEAD may answer them). */
const READING_QUEUE_ACTIONS: readonly string[] = ['getstatus', 'progress', 'queuestatus', 'getactionparameters'];
const QUEUE_NAMES = ['fetch'] as const;
/** The most results one GetStatus answers (IDOL's MaxResults). */
export const MAX_RESULTS_PAGE = 1000;

type Handler = (p: AciParams, deps: Deps) => Promise<AciTree | RawAnswer | undefined>;

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

/** Parameters a request carries that are not what the action does: how it is answered, and the client's label (kept apart). */
const NOT_KEPT = new Set(['responseformat', 'actionid']);

/** The request's parameters as sent, for GetActionParameters and Duplicate (never a secret: those travel in headers). */
function requestOf(p: AciParams): { name: string; value: string }[] {
  return p.names().filter((n) => !NOT_KEPT.has(parameterKey(n))).map((name) => ({ name, value: p.get(name) ?? '' }));
}

/**
 * A Fetch's parameters, checked against the configuration: what `queueFetch` is given. Pure: no
 * I/O. `actionId`: the request's own, or for Duplicate the Duplicate request's.
 */
function parseFetch(p: AciParams, config: Config, actionId = parseActionId(p)): FetchRequest {
  const raw = requireParam(p, 'FetchAction');
  const spec = fetchActionNamed(raw);
  if (!spec) throw badParameter('FetchAction', raw, `one of the supported fetch actions: ${FETCH_ACTION_NAMES.join(', ')}`);
  const params = spec.parse(p, config);
  // An action given identifiers takes its task sections from them.
  const named = spec.namedMailboxes?.(params);
  const configured = Object.keys(config.connector.tasks);
  const given = SECTION_PARAMS.filter((n) => p.has(n));
  if (given.length > 1) throw badParameter('ConfigSection', p.get('ConfigSection') ?? '', 'TaskSections or ConfigSection, not both');
  const sectionParam = given[0] ?? 'TaskSections';
  if (named && given.length && !spec.takesSections) throw badParameter(sectionParam, p.get(sectionParam) ?? '', 'left out: the identifiers name their task sections');
  const sections = (named && !spec.takesSections ? Object.keys(named).join(',') : requireParam(p, sectionParam))
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  if (sections.length === 0) throw missingParameter(sectionParam, `configured tasks: ${configured.join(', ')}`);
  const tasks: string[] = [];
  for (const s of sections) {
    const match = configured.find((c) => c.toLowerCase() === s.toLowerCase());
    if (!match) throw badParameter(sectionParam, s, `one of the configured tasks: ${configured.join(', ')}`);
    if (!tasks.includes(match)) tasks.push(match);
  }
  const schedule = parseBoolParam(p, 'Schedule', false);
  if (schedule && !spec.coalesces) throw badParameter('Schedule', p.get('Schedule') ?? '', `false: ${spec.name} runs are never joined to a running one`);
  if (schedule && tasks.length !== 1) throw badParameter(sectionParam, sections.join(','), 'exactly one task with Schedule=true');
  // Only an action that joins scheduled runs is found by its task (see ActionStore.activeOfTask).
  // Nor is one given identifiers (a named Synchronize): a scheduled run never joins it.
  if (schedule && named) throw badParameter('Schedule', p.get('Schedule') ?? '', `false with identifiers: a named ${spec.name} is never joined to a running one`);
  const scheduleKey = spec.coalesces && tasks.length === 1 && !named ? (tasks[0] ?? null) : null;
  return { fetchAction: spec.name, tasks, scheduleKey, params, request: requestOf(p), schedule, actionId };
}

async function fetchAction(p: AciParams, deps: Deps): Promise<AciTree> {
  const request = parseFetch(p, deps.config);
  if (!parseBoolParam(p, 'Sync', false)) return queueFetch(deps, request);
  // Sync=true: the results now, inline; nothing is queued or stored.
  if (request.schedule) throw badParameter('Schedule', p.get('Schedule') ?? '', 'false with Sync=true');
  const r = await runNow(deps, fetchActionOf(request.fetchAction), request.tasks, request.params);
  if (r.kind === 'entries') {
    return { identifiers: { '@count': String(r.entries.length), identifier: r.entries.map(identifierView) } };
  }
  if (r.why === 'off') throw turnedOff(r.message);
  if (r.why === 'gmail') {
    if (r.status === undefined || r.status >= 500 || r.status === 429) throw unavailable(`Gmail did not answer: ${r.message}`);
    throw gmailRefused(r.message);
  }
  throw badParameter('Sync', p.get('Sync') ?? '', `false: ${r.message}`);
}

const MONTH_NAMES = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];
/** The times a filter accepts: from the epoch to the end of year 9999 (Firestore's range). */
const LATEST_TIME_MS = Date.UTC(9999, 11, 31, 23, 59, 59, 999);

/** Milliseconds since the epoch of a UTC calendar time, or undefined when a field is out of range. */
function utcTime(year: number, month: number, day: number, h: number, m: number, s: number, ms: number): number | undefined {
  if (month < 0 || month > 11 || day < 1 || h > 23 || m > 59 || s > 59) return undefined;
  const d = new Date(0);
  d.setUTCFullYear(year, month, day);
  d.setUTCHours(h, m, s, ms);
  return d.getUTCMonth() === month && d.getUTCDate() === day ? d.getTime() : undefined;
}

/**
 * A time as a filter takes it: epoch seconds; IDOL's form as GetStatus writes it
 * (`2026-Nov-30 08:38:02`, UTC); or ISO 8601 (`2026-11-30`, `2026-11-30T08:38:02Z`, with
 * fractions and offsets; UTC when no offset is given). Undefined for anything else.
 */
function parseTime(text: string): number | undefined {
  let t: number | undefined;
  if (/^\d{1,12}$/.test(text)) {
    t = Number(text) * 1000;
  } else {
    const idol = /^(\d{4})-([A-Za-z]{3})-(\d{2}) (\d{2}):(\d{2}):(\d{2})$/.exec(text);
    const iso = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?)?(Z|[+-]\d{2}(?::?\d{2})?)?$/i.exec(text);
    if (idol) {
      const [, y, mon, d, h, m, s] = idol;
      t = utcTime(Number(y), MONTH_NAMES.indexOf((mon ?? '').toLowerCase()), Number(d), Number(h), Number(m), Number(s), 0);
    } else if (iso) {
      const [, y, mo, d, h, m, s, frac, zone] = iso;
      const local = utcTime(Number(y), Number(mo) - 1, Number(d), Number(h ?? 0), Number(m ?? 0), Number(s ?? 0), Math.floor(Number(`0.${frac ?? '0'}`) * 1000));
      const z = /^([+-])(\d{2}):?(\d{2})?$/.exec(zone ?? '');
      const offset = z ? (z[1] === '-' ? -1 : 1) * (Number(z[2]) * 60 + Number(z[3] ?? 0)) : 0;
      if (local !== undefined && (!z || (Number(z[2]) <= 23 && Number(z[3] ?? 0) <= 59))) t = local - offset * 60_000;
    }
  }
  return t !== undefined && t >= 0 && t <= LATEST_TIME_MS ? t : undefined;
}

/** An optional time parameter (see parseTime), in milliseconds since the epoch; a 400 naming it when it is not a time. */
function timeParam(p: AciParams, name: string): number | undefined {
  const value = p.get(name)?.trim();
  if (value === undefined || value === '') return undefined;
  const t = parseTime(value);
  if (t === undefined) {
    throw badParameter(name, value, 'a time from 1970 to 9999: ISO 8601 (2026-11-30T08:38:02Z), as GetStatus writes it (2026-Nov-30 08:38:02, UTC), or epoch seconds');
  }
  return t;
}

const SORT_BY = { 'queue-time': 'queuedAt', 'start-time': 'startedAt', 'finish-time': 'endedAt' } as const;
const SORT_ORDERS = ['descending', 'ascending'] as const;
const ORIGINS = ['push', 'all'] as const;

/** GetStatus without a token: which actions (IDOL's filters), in what order, how many. */
function listQuery(p: AciParams): ActionListQuery {
  const limit = parseIntParam(p, 'MaxResults', { min: 1, max: MAX_RESULTS_PAGE, default: 100 });
  const status = p.get('State') ? parseEnum(p, 'State', STATUSES) : undefined;
  const range = (from: string, to: string) => {
    const r = { from: timeParam(p, from), to: timeParam(p, to) };
    return r.from === undefined && r.to === undefined ? undefined : r;
  };
  const queued = range('Queued-After', 'Queued-Before');
  const ended = range('Finished-After', 'Finished-Before');
  const sortBy = SORT_BY[parseEnum(p, 'Sort-By', Object.keys(SORT_BY) as (keyof typeof SORT_BY)[], 'queue-time')];
  const descending = parseEnum(p, 'Sort-Order', SORT_ORDERS, 'descending') === 'descending';
  // Origin=push lists the syncs push notifications queued, Origin=all everything; by default, not those.
  const origin = p.get('Origin') ? parseEnum(p, 'Origin', ORIGINS) : undefined;
  // ActionID, echoed in every answer, here also selects the actions that were given it.
  const actionId = parseActionId(p);
  return { status, queued, ended, sortBy, descending, limit, origin, actionId };
}

/** How Progress names a unit's status: IDOL's `Pending` for one not yet started. */
const STAGE_STATUS: Readonly<Record<Status, string>> = {
  Queued: 'Pending',
  Processing: 'Processing',
  Finished: 'Finished',
  Cancelled: 'Cancelled',
  Stopped: 'Stopped',
  Error: 'Error',
};

function progressView(pr: ActionProgress): AciTree {
  return {
    progress: {
      percent: pr.percent,
      time_processing: pr.timeProcessing,
      estimated_time_remaining: pr.remaining ?? undefined,
      stage: pr.stages.map((s) => ({
        '@title': s.user,
        '@status': STAGE_STATUS[s.status],
        '@percent': String(s.percent),
        '@progress': String(s.progress),
        '@maximum': s.maximum === null ? undefined : String(s.maximum),
        '@task': s.task,
      })),
    },
  };
}

async function queueInfo(p: AciParams, deps: Deps): Promise<AciTree> {
  requiredEnum(p, 'QueueName', QUEUE_NAMES);
  const verb = requiredEnum(p, 'QueueAction', QUEUE_ACTIONS);
  switch (verb) {
    case 'GetStatus': {
      if (p.has('Token')) {
        const { action, units, results } = await actionStatus(deps, tokenParam(p));
        if (!results) return { actions: { action: [actionView(action, fetchActionNamed(action.fetchAction), totalsOfUnits(units), deps.now())] } };
        // Results are paged: Start is 1-based, as in IDOL.
        const start = parseIntParam(p, 'Start', { min: 1, max: 1_000_000_000, default: 1 });
        const max = parseIntParam(p, 'MaxResults', { min: 1, max: MAX_RESULTS_PAGE, default: 100 });
        const page = await resultsPage(deps, action, units, start, max);
        return { actions: { action: [actionView(action, fetchActionNamed(action.fetchAction), totalsOfUnits(units), deps.now(), page)] } };
      }
      const list = await listActions(deps, listQuery(p));
      return { actions: { action: list.map(({ action, totals }) => actionView(action, fetchActionNamed(action.fetchAction), totals, deps.now())) } };
    }
    case 'Cancel':
      return cancel(deps, tokenParam(p));
    case 'Stop':
      return stop(deps, tokenParam(p));
    case 'Pause':
      return { queue: 'fetch', paused: await setPaused(deps, true) };
    case 'Resume':
      return { queue: 'fetch', paused: await setPaused(deps, false) };
    case 'Progress':
      return progressView(await progress(deps, tokenParam(p)));
    case 'QueueStatus': {
      const s = await queueStatus(deps);
      return { queue: { '@name': 'fetch', '@paused': String(s.paused), pending: s.pending, running: s.running, completed: s.completed } };
    }
    case 'Duplicate': {
      // The original's parameters go through Fetch's checks again, against today's configuration.
      // The duplicate is a new action: it takes this request's ActionID, never the original's.
      const sent = (await sentParameters(deps, tokenParam(p))).filter((s) => !NOT_KEPT.has(parameterKey(s.name)));
      return queueFetch(deps, parseFetch(createAciParams(sent.map((s) => [s.name, s.value] as const)), deps.config, parseActionId(p)));
    }
    case 'GetActionParameters': {
      const sent = await sentParameters(deps, tokenParam(p));
      return { parameters: { parameter: sent.map((s) => ({ '@name': s.name, $: s.value })) } };
    }
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
  const [{ paused, counts }, watched] = await Promise.all([serverStatus(deps), watchStatus(deps)]);
  return {
    product: PRODUCT,
    version: VERSION,
    // The commit the deployment says it built from (BUILD_COMMIT): the deployed source has no .git.
    build: deps.config.buildCommit ?? 'unknown',
    uptime: Math.floor((deps.now() - deps.startedAt) / 1000),
    functions: { ...FUNCTION_NAMES },
    queues: {
      queue: [
        {
          name: 'fetch',
          // The Cloud Tasks queue behind QueueName=fetch, as gcloud names it.
          tasks_queue: deps.queue.queuePath,
          paused,
          actions: Object.fromEntries(STATUSES.map((s) => [`@${s.toLowerCase()}`, String(counts[s])])),
        },
      ],
    },
    // Gmail watches of push tasks (push/watch-renewal.ts): expiry, last renewal, last error.
    watches: {
      '@count': String(watched.count),
      watch: watched.watches.map((w) => ({
        address: w.address,
        expiration: w.expiration ? formatAciTime(w.expiration.toDate()) : undefined,
        renewed: w.renewedAt ? formatAciTime(w.renewedAt.toDate()) : undefined,
        labels: w.labelIds.join(',') || undefined,
        error: w.lastError ?? undefined,
        error_time: w.lastErrorAt ? formatAciTime(w.lastErrorAt.toDate()) : undefined,
      })),
    },
  };
}

/** An answer that is not an ACI response: View's original bytes (`NoACI=true`). */
export class RawAnswer {
  constructor(
    readonly contentType: string,
    readonly filename: string,
    readonly body: Buffer,
  ) {}
}

/** action=View: one message, synchronously, as its original bytes or in an ACI response. */
async function view(p: AciParams, deps: Deps): Promise<AciTree | RawAnswer> {
  const value = requireParam(p, 'Identifier').trim();
  let id: Identifier;
  try {
    id = decodeIdentifier(value);
  } catch (e) {
    if (e instanceof IdentifierError) throw badParameter('Identifier', value, `an identifier as FetchAction=Identifiers lists them: ${e.message}`);
    throw e;
  }
  const noAci = parseBoolParam(p, 'NoACI', true);
  let m;
  try {
    m = await viewMessage(deps.config, deps.viewGoogle, id, deps.config.gmailCallTimeoutS * 1000);
  } catch (e) {
    if (!(e instanceof ViewRefused)) throw e;
    if (e.kind === 'off') throw turnedOff(e.message);
    if (e.kind === 'unknown') throw notFound(`identifier: ${e.message}`);
    if (e.status === undefined || e.status >= 500 || e.status === 429) throw unavailable(`Gmail did not answer: ${e.message}`);
    throw gmailRefused(e.message);
  }
  const filename = `${id.messageId}.eml`;
  if (noAci) return new RawAnswer('message/rfc822', filename, m.raw);
  const d = m.document;
  return {
    reference: value,
    metadata: {
      task: d.task,
      user: d.user,
      messageId: d.messageId,
      threadId: d.threadId,
      subject: d.subject,
      from: d.from,
      to: d.to,
      cc: d.cc,
      date: d.date.toDate().toISOString(),
      messageIdHeader: d.messageIdHeader ?? undefined,
      labels: d.labels.join(','),
      sizeEstimate: d.sizeEstimate,
    },
    'mime-type': 'message/rfc822',
    filename,
    content: m.raw.toString('base64'),
  };
}

/** Every action, by canonical name. */
export const ACTIONS = {
  Fetch: fetchAction,
  QueueInfo: queueInfo,
  GetVersion: getVersion,
  GetStatus: getStatus,
  View: view,
} as const satisfies Record<string, Handler>;
export type ActionName = keyof typeof ACTIONS;
export const ACTION_NAMES = Object.keys(ACTIONS) as ActionName[];

/** Whether the action only reads (HEAD may answer it): GetVersion, GetStatus, View, and QueueInfo's reading verbs. */
export function readsOnly(name: ActionName, p: AciParams): boolean {
  if (name === 'GetVersion' || name === 'GetStatus' || name === 'View') return true;
  return name === 'QueueInfo' && READING_QUEUE_ACTIONS.includes((p.get('QueueAction') ?? '').trim().toLowerCase());
}

/** The canonical name of the request's action, or the reason there is none. */
export function actionName(p: AciParams): ActionName {
  const raw = p.get('action');
  if (raw === undefined || raw === '') throw missingParameter('action', `supported actions: ${ACTION_NAMES.join(', ')}`);
  const name = ACTION_NAMES.find((n) => n.toLowerCase() === raw.toLowerCase());
  if (!name) throw unknownAction(raw, ACTION_NAMES);
  return name;
}
