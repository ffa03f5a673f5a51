/**
 * Gmail watches (docs/CONTRACT.md, "Push"): `users.watch` of an address once a Synchronize of a
 * push task has finished it, the daily renewal of every watch, and `users.stop` of an address no
 * push task includes any more. Each call is paced with the address's other Gmail calls, retried
 * when transient, and has a timeout; a failure is recorded on the watch (GetStatus shows it)
 * rather than failing the Synchronize that led to it.
 */
import pLimit from 'p-limit';
import type { Deps } from '../deps.js';
import { GMAIL_SCOPES } from '../gmail/client.js';
import { GmailCaller } from '../gmail/caller.js';
import { pacerFor } from '../gmail/pacing.js';
import { WatchStore, type WatchRecord } from '../store/watches.js';
import { pushTasksOf, watchLabels } from './tasks.js';
import { errorMessage } from '../error-message.js';

/** A watch that expires sooner than this is renewed after a Synchronize (Google asks for a daily renewal). */
const RENEW_WITHIN_MS = 86_400_000;
/** Watches read per page by the renewal pass. */
const PAGE = 200;
/** Addresses the renewal pass calls Gmail for at once. */
const RENEW_CONCURRENCY = 16;

/** What one renewal pass did. */
export interface RenewalReport {
  renewed: number;
  stopped: number;
  failed: number;
}

export function createWatcher(deps: Deps) {
  const { config, log } = deps;
  const store = new WatchStore(deps.db, deps.now);

  function callerFor(address: string) {
    const client = deps.google.gmail(address, GMAIL_SCOPES);
    const caller = new GmailCaller({
      auth: client,
      pacer: pacerFor(address, config.connector.gmail.quotaUnitsPerUserPerMinute, deps.now),
      timeoutMs: config.gmailCallTimeoutS * 1000,
      baseBackoffMs: config.gmailBackoffMs,
      maxBackoffMs: Math.min(30_000, config.gmailBackoffMs * 60),
      maxRetries: 3,
    });
    return { api: client.api, caller };
  }

  /** users.watch of `address` with the union of its push tasks' labels; recorded either way. Throws when it failed. */
  async function watch(address: string): Promise<WatchRecord | null> {
    const topic = config.pushTopic;
    const labelIds = watchLabels(config.connector, address);
    if (!topic) {
      await store.failed(address, { topic: '', labelIds }, 'PUSH_TOPIC is not set: the connector does not know which topic Gmail is to publish to');
      throw new Error('PUSH_TOPIC is not set');
    }
    const { api, caller } = callerFor(address);
    try {
      const res = await caller.call('watch', `users.watch of ${address}`, (o) =>
        api.users.watch({ userId: address, requestBody: { topicName: topic, labelIds, labelFilterBehavior: labelIds.length ? 'include' : undefined } }, o),
      );
      const expiration = Number(res.data.expiration);
      await store.watched(address, { topic, labelIds, expiration: Number.isFinite(expiration) ? expiration : deps.now(), historyId: res.data.historyId ?? null });
      log.with({ user: address }).info('watched', { expiration: res.data.expiration });
      return store.get(address);
    } catch (e) {
      await store.failed(address, { topic, labelIds }, errorMessage(e));
      throw e;
    }
  }

  /** users.stop of `address`, then its watch is forgotten. */
  async function stopWatch(address: string, rec: WatchRecord): Promise<void> {
    const { api, caller } = callerFor(address);
    try {
      await caller.call('stop', `users.stop of ${address}`, (o) => api.users.stop({ userId: address }, o));
    } catch (e) {
      await store.failed(address, rec, `users.stop: ${errorMessage(e)}`);
      throw e;
    }
    await store.remove(address);
    log.with({ user: address }).info('watch stopped: no push task includes the address');
  }

  return {
    store,
    watch,
    /**
     * After a unit of `fetchAction` finished `address` for `task`: watches the address when the task
     * is a push task and its watch is missing, expiring within a day, or on other labels or topic.
     * Never throws: a failure is on the watch record, and the renewal pass tries again.
     */
    async afterSync(task: string, address: string, fetchAction: string): Promise<void> {
      if (fetchAction !== 'Synchronize' || !config.connector.tasks[task]?.push) return;
      try {
        const rec = await store.get(address);
        const labels = watchLabels(config.connector, address);
        const current =
          rec?.expiration &&
          rec.expiration.toMillis() > deps.now() + RENEW_WITHIN_MS &&
          rec.topic === config.pushTopic &&
          rec.labelIds.join(',') === labels.join(',');
        if (!current) await watch(address);
      } catch (e) {
        log.with({ task, user: address }).warn('users.watch failed; the renewal pass tries again', { error: errorMessage(e) });
      }
    },
    /** The renewal pass (daily, from Cloud Scheduler): renews every watch, and stops those no push task includes. */
    async renewAll(): Promise<RenewalReport> {
      const report: RenewalReport = { renewed: 0, stopped: 0, failed: 0 };
      let after: string | undefined;
      for (;;) {
        const page = await store.list(PAGE, after);
        // A few addresses at a time: each call is paced with the address's own quota, not the others'.
        const limit = pLimit(RENEW_CONCURRENCY);
        await Promise.all(
          page.map((rec) =>
            limit(async () => {
              try {
                if (pushTasksOf(config.connector, rec.address).length === 0) {
                  await stopWatch(rec.address, rec);
                  report.stopped++;
                } else {
                  await watch(rec.address);
                  report.renewed++;
                }
              } catch (e) {
                report.failed++;
                log.with({ user: rec.address }).warn('watch renewal failed', { error: errorMessage(e) });
              }
            }),
          ),
        );
        if (page.length < PAGE) break;
        after = page[page.length - 1]?.address;
      }
      return report;
    },
  };
}

export type Watcher = ReturnType<typeof createWatcher>;
