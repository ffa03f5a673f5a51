/**
 * Turns a push notification into incremental Synchronizes (docs/CONTRACT.md, "Push"): one per
 * push task that includes the address, with `origin` `push`, of that address alone. Per task and
 * address at most one is queued: a notification that finds the queued one (not yet started, so
 * it will read everything up to the time it starts) joins it; one that finds it running queues
 * the next. A notification not newer than the history id the last complete Synchronize stored
 * does nothing. The mailbox's lock keeps a second one from running at once.
 */
import { randomBytes } from 'node:crypto';
import type { DocumentReference, DocumentSnapshot } from '@google-cloud/firestore';
import type { Deps } from '../deps.js';
import { runTransaction } from '../store/conflicts.js';
import { mailboxRef, readMailbox } from '../store/mailboxes.js';
import type { ActionRecord } from '../store/model.js';
import { WatchStore } from '../store/watches.js';
import type { PushNotification } from './notification.js';
import { pushTasksOf } from './tasks.js';
import { errorMessage } from '../error-message.js';

/** What a notification did for one task. */
export type PushOutcome =
  | { task: string; token: string; coalesced: boolean }
  | { task: string; skipped: string };

/** Queues (or joins) the push Synchronize of each push task that includes the notified address. */
export async function queuePushSyncs(deps: Deps, n: PushNotification): Promise<PushOutcome[]> {
  const watches = new WatchStore(deps.db, deps.now);
  const tasks = pushTasksOf(deps.config.connector, n.emailAddress);
  return Promise.all(
    tasks.map(async (task): Promise<PushOutcome> => {
      // Notifications come in bursts. Per task and address, this instance makes one decision at a
      // time; those that arrive meanwhile share the next one, made on a fresh read after they all
      // arrived, so a burst of any size costs a few reads and at most one transaction.
      const key = `${task.toUpperCase()}:${n.emailAddress}`;
      let g = groups.get(key);
      if (!g) groups.set(key, (g = { running: null, next: null }));
      return { task, ...(await join(g, key, task, n)) };
    }),
  );

  function join(g: Group, key: string, task: string, n: PushNotification): Promise<Decision> {
    if (g.next) {
      if (BigInt(n.historyId) > BigInt(g.next.historyId)) g.next.historyId = n.historyId;
      return g.next.promise;
    }
    const start = (historyId: string): Promise<Decision> => {
      const p = decide(deps, watches, task, { ...n, historyId });
      g.running = p;
      const done = () => {
        if (g.running === p) g.running = null;
        if (!g.running && !g.next) groups.delete(key);
      };
      p.then(done, done);
      return p;
    };
    if (!g.running) return start(n.historyId);
    const next: { historyId: string; promise: Promise<Decision> } = { historyId: n.historyId, promise: Promise.resolve({ skipped: '' }) };
    next.promise = g.running
      .then(
        () => undefined,
        () => undefined,
      )
      .then(() => {
        g.next = null;
        return start(next.historyId);
      });
    g.next = next;
    return next.promise;
  }
}

type Decision = { token: string; coalesced: boolean } | { skipped: string };
/** One task and address: the decision being made, and the one the notifications arriving meanwhile wait for. */
interface Group {
  running: Promise<Decision> | null;
  next: { historyId: string; promise: Promise<Decision> } | null;
}
const groups = new Map<string, Group>();

/** Nothing when the last complete Synchronize already read past the notified history id; else joinOrCreate. */
async function decide(deps: Deps, watches: WatchStore, task: string, n: PushNotification): Promise<Decision> {
  const stored = readMailbox(await mailboxRef(deps.db, task, n.emailAddress).get()).historyId;
  if (stored !== undefined && BigInt(n.historyId) <= BigInt(stored)) {
    return { skipped: `history id ${n.historyId} is not newer than ${stored}, already synchronized` };
  }
  return joinOrCreate(deps, watches, task, n.emailAddress);
}

/** The queued push Synchronize of the task and address, or a new one (queued before this returns). */
async function joinOrCreate(deps: Deps, watches: WatchStore, task: string, address: string): Promise<{ token: string; coalesced: boolean }> {
  const pending = watches.pendingRef(address, task);
  const queuedIn = async (read: (ref: DocumentReference) => Promise<DocumentSnapshot>): Promise<string | null> => {
    const queued = (await read(pending)).get('token') as string | undefined;
    if (!queued) return null;
    const a = await read(deps.store.ref(queued));
    return a.exists && (a.data() as ActionRecord).status === 'Queued' ? queued : null;
  };
  // Most of a burst finds the queued one without a transaction: it had not started when read,
  // so it will read every change notified before.
  const seen = await queuedIn((ref) => ref.get());
  if (seen !== null) return { token: seen, coalesced: true };
  const token = randomBytes(16).toString('base64url');
  const record = deps.store.newRecord({
    token,
    fetchAction: 'Synchronize',
    tasks: [task],
    scheduleKey: null,
    // The one address it reads (synchronize.ts's namedMailboxes).
    params: { pushAddress: address, pushTask: task },
    request: [
      { name: 'action', value: 'Fetch' },
      { name: 'FetchAction', value: 'Synchronize' },
      { name: 'TaskSections', value: task },
    ],
    origin: 'push',
  });
  const joined = await runTransaction(deps.db, async (tx) => {
    const queued = await queuedIn((ref) => tx.get(ref));
    if (queued !== null) return queued;
    tx.create(deps.store.ref(token), record);
    tx.set(pending, { token, at: record.queuedAt });
    return null;
  });
  if (joined !== null) return { token: joined, coalesced: true };
  try {
    await deps.queue.enqueue(token, { token });
  } catch (e) {
    await deps.store.failQueued(token, `the Cloud Task could not be created: ${errorMessage(e)}`);
    throw e;
  }
  deps.log.with({ token, task, user: address }).info('push sync queued');
  return { token, coalesced: false };
}
