/**
 * A fetch action answered inline (`Sync=true`), for small tasks: the action function reads Gmail
 * itself, with its own read-only identity (the one View uses), and nothing is queued or stored.
 * Only fetch actions that declare an inline form (Identifiers) take it, only for tasks that name
 * their users, and only up to the action's cap, checked before any message is read.
 */
import type { Deps } from '../deps.js';
import { GmailCaller } from '../gmail/caller.js';
import { PermanentGmailError } from '../gmail/errors.js';
import { pacerFor } from '../gmail/pacing.js';
import { zeroCounts } from '../store/model.js';
import type { ResultEntry } from '../store/results.js';
import type { FetchParams, FetchActionSpec } from '../fetch/spec.js';

export type NowResult =
  | { kind: 'entries'; entries: ResultEntry[] }
  | { kind: 'refused'; why: 'off' | 'unsupported' | 'over' | 'gmail'; message: string; status?: number };

export async function runNow(deps: Deps, spec: FetchActionSpec, tasks: string[], params: FetchParams): Promise<NowResult> {
  const inline = spec.inline;
  if (!inline) return { kind: 'refused', why: 'unsupported', message: `${spec.name} runs only as an action: leave Sync out` };
  const { config } = deps;
  if (!config.connector.view) {
    return { kind: 'refused', why: 'off', message: 'Sync=true reads Gmail as View does, and View is turned off in the connector configuration ("view": false)' };
  }
  const entries: ResultEntry[] = [];
  let index = 0;
  for (const task of tasks) {
    const taskConfig = config.connector.tasks[task];
    if (!taskConfig?.users?.length) {
      return { kind: 'refused', why: 'unsupported', message: `task ${task} reads a whole domain: Sync=true takes only tasks that name their users` };
    }
    for (const user of taskConfig.users.map((u) => u.toLowerCase())) {
      let mailbox;
      try {
        mailbox = deps.viewGoogle.gmail(user);
      } catch (e) {
        if (e instanceof PermanentGmailError) return { kind: 'refused', why: 'off', message: `Sync=true has no identity to read Gmail with: ${e.message}` };
        throw e;
      }
      const caller = new GmailCaller({
        auth: mailbox,
        pacer: pacerFor(user, config.connector.gmail.quotaUnitsPerUserPerMinute, deps.now),
        timeoutMs: config.gmailCallTimeoutS * 1000,
        baseBackoffMs: config.gmailBackoffMs,
        maxRetries: 3,
      });
      const nothing = () => Promise.reject(new Error('an inline run keeps no state'));
      let got: ResultEntry[] | 'over';
      try {
        got = await inline.run(
          {
            db: deps.db,
            gmail: mailbox.api,
            caller,
            token: '',
            task,
            user,
            index: index++,
            taskConfig,
            params,
            progress: { pages: 0, messages: 0, total: null, retries: 0, counts: zeroCounts(spec.counters), checkpoint: null, messageErrors: [] },
            shouldEnd: () => false,
            expireWhileRunning: () => deps.store.expireWhileRunning(),
            begin: nothing,
            commit: nothing,
          },
          inline.cap - entries.length,
        );
      } catch (e) {
        if (e instanceof PermanentGmailError) return { kind: 'refused', why: 'gmail', message: e.message, ...(e.status === undefined ? {} : { status: e.status }) };
        throw e;
      }
      if (got === 'over') {
        return {
          kind: 'refused',
          why: 'over',
          message: `Sync=true answers at most ${inline.cap} identifiers and these tasks hold more: leave Sync out and read the results with QueueInfo GetStatus`,
        };
      }
      entries.push(...got);
    }
  }
  return { kind: 'entries', entries };
}
