/**
 * How an action looks in QueueInfo GetStatus (docs/CONTRACT.md): its record and its
 * units, summed when read, as the simplejson-shaped tree the ACI renderer takes;
 * the counters are the fetch action's own (see fetch/registry.ts).
 */
import type { Timestamp } from '@google-cloud/firestore';
import { fetchActionNamed } from '../fetch/registry.js';
import { zeroCounts, type ActionRecord, type Counts, type UnitRecord } from '../store/model.js';
import type { ResultEntry } from '../store/results.js';
import { formatAciTime, type AciTree } from './response.js';

function secondsBetween(a: Timestamp | null, b: number | null): number | undefined {
  if (a === null || b === null) return undefined;
  return Math.max(0, Math.floor((b - a.toMillis()) / 1000));
}

/** The GetStatus element of one action. */
export function actionView(
  a: ActionRecord,
  units: UnitRecord[],
  now: number,
  results?: { entries: ResultEntry[]; start: number; total: number },
): AciTree {
  const spec = fetchActionNamed(a.fetchAction);
  const counters = spec?.counters ?? [];
  const ended = a.endedAt?.toMillis() ?? null;
  const started = a.startedAt?.toMillis() ?? null;
  const perTask = new Map<string, Counts>(a.tasks.map((t) => [t, zeroCounts(counters)]));
  let pages = 0;
  let messages = 0;
  let total = 0;
  let knownTotal = true;
  let attempts = a.attempts;
  let retries = 0;
  const failedTasks = new Set<string>();
  const openTasks = new Set<string>();
  for (const u of units) {
    const c = perTask.get(u.task) ?? zeroCounts(counters);
    for (const k of counters) c[k] = (c[k] ?? 0) + (u.counts[k] ?? 0);
    perTask.set(u.task, c);
    pages += u.pages;
    messages += u.messages;
    if (u.total === null) knownTotal = false;
    else total += u.total;
    attempts += u.attempts;
    retries += u.retries;
    if (u.status === 'Error') failedTasks.add(u.task);
    else if (u.status !== 'Finished') openTasks.add(u.task);
  }
  let percent = 0;
  if (a.status === 'Finished') percent = 100;
  else if (knownTotal && total > 0) percent = Math.min(99, Math.floor((messages / total) * 100));
  const endedLike = ended !== null;
  const tasks: AciTree = {
    success: endedLike ? a.tasks.filter((t) => !failedTasks.has(t) && !openTasks.has(t) && a.status !== 'Cancelled') : [],
    failed: [...failedTasks],
  };
  const view: AciTree = {
    token: a.token,
    status: a.status,
    queued_time: formatAciTime(a.queuedAt.toDate()),
    time_in_queue: secondsBetween(a.queuedAt, started ?? ended ?? now),
    process_start_time: a.startedAt ? formatAciTime(a.startedAt.toDate()) : undefined,
    time_processing: started !== null ? secondsBetween(a.startedAt, ended ?? now) : undefined,
    process_end_time: a.endedAt && started !== null ? formatAciTime(a.endedAt.toDate()) : undefined,
    fetchaction: a.fetchAction.toUpperCase(),
    origin: a.origin,
    tasks: results && spec?.results === 'tasks' ? taskResultsView(results.entries) : tasks,
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
    identifiers: results && spec?.results !== 'tasks' ? identifiersView(results) : undefined,
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
  return {
    success: entries.filter((e) => !failed(e)).map((e) => e.id),
    failed: entries.filter(failed).map((e) => ({ '@message': e.attributes?.['message'] ?? '', $: e.id })),
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
