/**
 * Turns a push notification into incremental Synchronizes (docs/CONTRACT.md, "Push"): one per
 * push task that includes the address, with `origin` `push`, of that address alone. Per task and
 * address at most one is queued: a notification that finds the queued one (not yet started, so
 * it will read everything up to the time it starts) joins it; one that finds it running queues
 * the next. A notification not newer than the history id the last complete Synchronize stored
 * does nothing. The mailbox's lock keeps a second one from running at once.
 */
import { randomBytes } from 'node:crypto';
import type { Deps } from '../deps.js';
import { mailboxRef, readMailbox } from '../store/mailboxes.js';
import type { ActionRecord } from '../store/model.js';
import { WatchStore } from '../store/watches.js';
import type { PushNotification } from './notification.js';
import { pushTasksOf } from './tasks.js';

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
      const stored = readMailbox(await mailboxRef(deps.db, task, n.emailAddress).get()).historyId;
      if (stored !== undefined && BigInt(n.historyId) <= BigInt(stored)) {
        return { task, skipped: `history id ${n.historyId} is not newer than ${stored}, already synchronized` };
      }
      const token = randomBytes(16).toString('base64url');
      const record = deps.store.newRecord({
        token,
        fetchAction: 'Synchronize',
        tasks: [task],
        scheduleKey: null,
        // The one address it reads (synchronize.ts's namedMailboxes).
        params: { pushAddress: n.emailAddress, pushTask: task },
        request: [
          { name: 'action', value: 'Fetch' },
          { name: 'FetchAction', value: 'Synchronize' },
          { name: 'TaskSections', value: task },
        ],
        origin: 'push',
      });
      const pending = watches.pendingRef(n.emailAddress, task);
      const joined = await deps.db.runTransaction(async (tx) => {
        const p = await tx.get(pending);
        const queued = p.get('token') as string | undefined;
        if (queued) {
          const a = await tx.get(deps.store.ref(queued));
          if (a.exists && (a.data() as ActionRecord).status === 'Queued') return queued;
        }
        tx.create(deps.store.ref(token), record);
        tx.set(pending, { token, at: record.queuedAt });
        return null;
      });
      if (joined !== null) return { task, token: joined, coalesced: true };
      try {
        await deps.queue.enqueue(token, { token });
      } catch (e) {
        await deps.store.failQueued(token, `the Cloud Task could not be created: ${(e as Error).message}`);
        throw e;
      }
      deps.log.with({ token, task, user: n.emailAddress }).info('push sync queued', { historyId: n.historyId });
      return { task, token, coalesced: false };
    }),
  );
}
