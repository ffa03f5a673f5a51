/**
 * Fetch → first sink document: how long after a client sends a `Fetch`
 * `Synchronize` the first document of its mailbox can be read from the sink,
 * on the local stack as `npm start` runs it (Gmail within its default quota,
 * no added latency). Each run is a new task and mailbox, so that the sink
 * starts empty; the sink is polled every 10 ms. Target: median < 1 s.
 */
import { rm } from 'node:fs/promises';
import { writeMailbox } from '../test/support/mail.js';
import { onCleanup } from './lib/cleanup.js';
import { below, info, type Benchmark, type Outcome } from './lib/report.js';
import { startBenchStack } from './lib/stack.js';
import { ENDED } from './lib/sync.js';
import { fmt, median, note, quantile, round, sleep } from './lib/util.js';

const RUNS = 9;
const MESSAGES = 100;
const TARGET_MS = 1_000;

const userOf = (i: number) => `first${i}@example.com`;

export const firstDocument: Benchmark = {
  name: 'first',
  title: 'Fetch Synchronize → first sink document',
  async run(ctx): Promise<Outcome> {
    const { dir } = writeMailbox(userOf(0), MESSAGES, { prefix: 'a0' });
    for (let i = 1; i < RUNS; i++) writeMailbox(userOf(i), MESSAGES, { dir, prefix: `a${i}` });
    const removeDir = onCleanup(`folder ${dir}`, () => rm(dir, { recursive: true, force: true }));
    try {
      const tasks: Record<string, unknown> = {};
      for (let i = 0; i < RUNS; i++) tasks[`FIRST${i}`] = { users: [userOf(i)] };
      const stack = await startBenchStack({
        name: 'first',
        firestore: ctx.firestore,
        logDir: ctx.logDir,
        mailDir: dir,
        connector: { gmail: { quotaUnitsPerUserPerMinute: 15_000 }, tasks },
        gmail: { quotaUnitsPerMinute: 15_000 },
      });
      try {
        note(`first: ${RUNS} Synchronizes of ${MESSAGES}-message mailboxes, one at a time, each to its end`);
        const ms: number[] = [];
        for (let i = 0; i < RUNS; i++) {
          const query = stack.db.collection('documents').where('task', '==', `FIRST${i}`).limit(1);
          const t0 = performance.now();
          const { token } = await stack.synchronize(`FIRST${i}`);
          for (;;) {
            if (!(await query.get()).empty) break;
            if (performance.now() - t0 > 60_000) throw new Error(`no sink document of FIRST${i} within 60 s`);
            await sleep(10);
          }
          ms.push(performance.now() - t0);
          const a = await stack.waitFor(token, ENDED, 120_000);
          if (a.status !== 'Finished') throw new Error(`FIRST${i} ended ${a.status}`);
        }
        const p50 = median(ms);
        return {
          rows: [below(`median of ${RUNS} Fetch → first sink document`, p50, 'ms', TARGET_MS, 0), info('90th percentile', quantile(ms, 0.9), 'ms', 0)],
          notes: [
            `Each run a new task and mailbox of ${MESSAGES} messages, measured at the client from sending the request to the first read that finds a document of the task ` +
              `(polled every 10 ms): queue dispatch, the fan-out, the unit's claim, getProfile, the first listing page and the first batch of ${10} messages. ` +
              `min ${fmt(Math.min(...ms), 0)} ms, max ${fmt(Math.max(...ms), 0)} ms.`,
          ],
          details: { runs: RUNS, messages: MESSAGES, medianMs: round(p50, 1), p90Ms: round(quantile(ms, 0.9), 1), samplesMs: ms.map((v) => round(v, 1)) },
        };
      } finally {
        await stack.close();
      }
    } finally {
      await removeDir();
    }
  },
};
