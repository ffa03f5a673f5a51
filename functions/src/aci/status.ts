/**
 * How an action looks in QueueInfo GetStatus (docs/CONTRACT.md): its record and its
 * totals (summed over its units, or as its shards hold them), as the simplejson-shaped tree the ACI renderer takes;
 * the counters are the fetch action's own (`FetchActionSpec` in fetch/spec.ts), given by the caller.
 */
import type { Timestamp } from '@google-cloud/firestore';
import type { ActionRecord, Counts } from '../store/model.js';
import type { ActionTotals } from '../store/totals.js';
import type { ResultEntry } from '../store/results.js';
import { formatAciTime, type AciTree } from './response.js';

function secondsBetween(a: Timestamp | null, b: number | null): number | undefined {
  if (a === null || b === null) return undefined;
  return Math.max(0, Math.floor((b - a.toMillis()) / 1000));
}

/** What GetStatus shows of an action's fetch action: its counters and its kind of results; undefined for one this version does not know. */
export interface FetchActionShape {
  readonly counters: readonly string[];
  readonly results?: 'identifiers' | 'tasks';
  /** Its kind of results when it depends on the action's parameters (a Synchronize given identifiers). */
  resultsFor?(params: Record<string, string | number | boolean>): 'identifiers' | 'tasks' | undefined;
}

/** The kind of results an action of `spec` has, given its parameters. */
export function resultsKind(spec: FetchActionShape | undefined, params: Record<string, string | number | boolean> | undefined): 'identifiers' | 'tasks' | undefined {
  return spec?.resultsFor ? spec.resultsFor(params ?? {}) : spec?.results;
}

/** The GetStatus element of one action, from its totals (store/totals.ts). */
export function actionView(
  a: ActionRecord,
  spec: FetchActionShape | undefined,
  totals: ActionTotals,
  now: number,
  results?: { entries: ResultEntry[]; start: number; total: number },
): AciTree {
  const counters = spec?.counters ?? [];
  const ended = a.endedAt?.toMillis() ?? null;
  const started = a.startedAt?.toMillis() ?? null;
  // A counter no unit reported is shown as 0 below.
  const perTask = new Map<string, Counts>(a.tasks.map((t) => [t, {}]));
  for (const [task, t] of Object.entries(totals.tasks)) {
    const c = perTask.get(task) ?? {};
    for (const k of counters) c[k] = (c[k] ?? 0) + (t.counts[k] ?? 0);
    perTask.set(task, c);
  }
  const { pages, messages, total, retries } = totals;
  const knownTotal = a.unitsTotal !== null && totals.known >= a.unitsTotal;
  const attempts = a.attempts + totals.attempts;
  // In the action's order of tasks, whichever way the totals were read.
  const failedTasks = [...new Set([...a.tasks, ...Object.keys(totals.tasks)])].filter((t) => (totals.tasks[t]?.failed ?? 0) > 0);
  // A task succeeded when every one of its units finished (none of an action that ended without units).
  const succeeded = (t: string) => (totals.tasks[t]?.finished ?? 0) === (totals.tasks[t]?.units ?? 0);
  let percent = 0;
  if (a.status === 'Finished') percent = 100;
  else if (knownTotal && total > 0) percent = Math.min(99, Math.floor((messages / total) * 100));
  const endedLike = ended !== null;
  const tasks: AciTree = {
    success: endedLike ? a.tasks.filter((t) => succeeded(t) && a.status !== 'Cancelled') : [],
    failed: failedTasks,
  };
  const view: AciTree = {
    token: a.token,
    actionid: a.actionId,
    status: a.status,
    queued_time: formatAciTime(a.queuedAt.toDate()),
    time_in_queue: secondsBetween(a.queuedAt, started ?? ended ?? now),
    process_start_time: a.startedAt ? formatAciTime(a.startedAt.toDate()) : undefined,
    time_processing: started !== null ? secondsBetween(a.startedAt, ended ?? now) : undefined,
    process_end_time: a.endedAt && started !== null ? formatAciTime(a.endedAt.toDate()) : undefined,
    fetchaction: a.fetchAction.toUpperCase(),
    origin: a.origin,
    tasks: results && resultsKind(spec, a.params) === 'tasks' ? taskResultsView(results.entries) : tasks,
    stop_requested: a.stopRequested,
    progress: { percent, pages, messages },
    attempts,
    retries,
    documentcounts: {
      documentcount: [...perTask].map(([task, c]) => ({
        '@task': task,
        ...Object.fromEntries(counters.map((k) => [`@${k}`, String(c[k] ?? 0)])),
      })),
    },
    error: a.error ?? undefined,
    identifiers: results && resultsKind(spec, a.params) !== 'tasks' ? identifiersView(results) : undefined,
  };
  return view;
}

/** A page of an action's identifiers: `<identifiers start total><identifier name type>ID</identifier>...` */
function identifiersView(r: { entries: ResultEntry[]; start: number; total: number }): AciTree {
  return {
    '@start': String(r.start),
    '@count': String(r.entries.length),
    '@total': String(r.total),
    identifier: r.entries.map(identifierView),
  };
}

/** Results of an action that acts on documents (Collect): `<tasks><success>ID</success><failed message="why">ID</failed></tasks>`. */
function taskResultsView(entries: ResultEntry[]): AciTree {
  const failed = (e: ResultEntry) => e.attributes?.['message'] !== undefined;
  // Other attributes (Insert's insert_id) are shown as attributes of the entry.
  const others = (e: ResultEntry) => Object.entries(e.attributes ?? {}).filter(([k]) => k !== 'message').map(([k, v]) => [`@${k}`, v] as const);
  return {
    success: entries.filter((e) => !failed(e)).map((e) => (others(e).length ? { ...Object.fromEntries(others(e)), $: e.id } : e.id)),
    failed: entries.filter(failed).map((e) => ({ ...Object.fromEntries(others(e)), '@message': e.attributes?.['message'] ?? '', $: e.id })),
  };
}

/** One identifier: `<identifier name="subject" type="Message" ...>ID</identifier>`. */
export function identifierView(e: ResultEntry): AciTree {
  return {
    '@name': e.name,
    '@type': 'Message',
    ...Object.fromEntries(Object.entries(e.attributes ?? {}).map(([k, v]) => [`@${k}`, v])),
    $: e.id,
  };
}
