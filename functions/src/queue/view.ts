/**
 * How an action looks in QueueInfo GetStatus (DESIGN §2): its record and its
 * units, summed when read, as the simplejson-shaped tree the ACI renderer takes.
 */
import type { Timestamp } from '@google-cloud/firestore';
import { formatAciTime, type AciTree } from '../aci/response.js';
import { SYNC_COUNTERS, zeroCounts, type ActionRecord, type Counts, type UnitRecord } from '../store/model.js';

function secondsBetween(a: Timestamp | null, b: number | null): number | undefined {
  if (a === null || b === null) return undefined;
  return Math.max(0, Math.floor((b - a.toMillis()) / 1000));
}

/** The GetStatus element of one action. */
export function actionView(a: ActionRecord, units: UnitRecord[], now: number): AciTree {
  const ended = a.endedAt?.toMillis() ?? null;
  const started = a.startedAt?.toMillis() ?? null;
  const perTask = new Map<string, Counts>(a.tasks.map((t) => [t, zeroCounts()]));
  let pages = 0;
  let messages = 0;
  let total = 0;
  let knownTotal = true;
  let attempts = a.attempts;
  let retries = 0;
  const failedTasks = new Set<string>();
  const openTasks = new Set<string>();
  for (const u of units) {
    const c = perTask.get(u.task) ?? zeroCounts();
    for (const k of SYNC_COUNTERS) c[k] += u.counts[k];
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
    tasks,
    stop_requested: a.stopRequested,
    progress: { percent, pages, messages },
    attempts,
    retries,
    documentcounts: {
      documentcount: [...perTask].map(([task, c]) => ({
        '@task': task,
        ...Object.fromEntries(SYNC_COUNTERS.map((k) => [`@${k}`, String(c[k])])),
      })),
    },
    error: a.error ?? undefined,
  };
  return view;
}
