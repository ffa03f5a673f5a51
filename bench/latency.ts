/**
 * Action → token latency: how long a client waits for the token of a
 * `Fetch` `Synchronize` on the local stack (the action writes the action
 * record, then creates its Cloud Task). The queue is paused first so that no
 * action runs meanwhile; every action is cancelled afterwards.
 */
import { writeMailbox } from '../test/support/mail.js';
import { rm } from 'node:fs/promises';
import { onCleanup } from './lib/cleanup.js';
import { below, info, type Benchmark, type Outcome } from './lib/report.js';
import { startBenchStack } from './lib/stack.js';
import { fmt, mean, median, note, quantile, round } from './lib/util.js';

const USER = 'latency@example.com';
/**
 * Unmeasured requests first: they pay for connections and lazy loading, and they warm the Java
 * Firestore emulator's JIT, which takes a few hundred writes (alone on this machine, a `create`
 * took a median of 7.7 ms over its first 300 writes and 4.6 ms from the 600th on).
 */
const WARMUP = 300;
const REQUESTS = 300;
const TARGET_MEDIAN_MS = 10;
const CANCEL_CONCURRENCY = 8;

export const tokenLatency: Benchmark = {
  name: 'latency',
  title: 'Fetch Synchronize → token',
  async run(ctx): Promise<Outcome> {
    const { dir } = writeMailbox(USER, 5);
    const removeDir = onCleanup(`folder ${dir}`, () => rm(dir, { recursive: true, force: true }));
    try {
      const stack = await startBenchStack({
        name: 'latency',
        firestore: ctx.firestore,
        logDir: ctx.logDir,
        mailDir: dir,
        connector: { gmail: { quotaUnitsPerUserPerMinute: 15_000 }, tasks: { LAT: { users: [USER] } } },
        gmail: { quotaUnitsPerMinute: 0 },
      });
      try {
        await stack.queue('Pause');
        const tokens: string[] = [];
        for (let i = 0; i < WARMUP; i++) tokens.push((await stack.synchronize('LAT')).token);
        note(`latency: ${REQUESTS} Synchronize requests, one at a time, queue paused`);
        const ms: number[] = [];
        for (let i = 0; i < REQUESTS; i++) {
          const r = await stack.synchronize('LAT');
          tokens.push(r.token);
          ms.push(r.ms);
        }
        // Cancel them all (a few at a time), then check none ran.
        let next = 0;
        const cancelMs: number[] = [];
        await Promise.all(
          Array.from({ length: CANCEL_CONCURRENCY }, async () => {
            while (next < tokens.length) {
              const token = tokens[next++] as string;
              const r = await stack.queue('Cancel', token);
              cancelMs.push(r.ms);
            }
          }),
        );
        const ran = (await stack.db.collection('actions').where('status', '!=', 'Cancelled').count().get()).data().count;
        if (ran !== 0) throw new Error(`${ran} actions are not Cancelled after cancelling them all`);
        await stack.queue('Resume');

        const p50 = median(ms);
        const p99 = quantile(ms, 0.99);
        return {
          rows: [
            below('median of 300 Fetch → token', p50, 'ms', TARGET_MEDIAN_MS),
            info('99th percentile', p99, 'ms', 1),
          ],
          notes: [
            `${REQUESTS} sequential Synchronize requests after ${WARMUP} unmeasured ones, timed at the client from sending the request to the whole answer; ` +
              `the action function runs in its own process, the Firestore and Cloud Tasks emulators on the same 2 cores.`,
            `min ${fmt(Math.min(...ms), 1)} ms, mean ${fmt(mean(ms), 1)} ms, p90 ${fmt(quantile(ms, 0.9), 1)} ms, max ${fmt(Math.max(...ms), 1)} ms; ` +
              `Cancel of each afterwards: median ${fmt(median(cancelMs), 1)} ms.`,
          ],
          details: {
            requests: REQUESTS,
            warmup: WARMUP,
            medianMs: round(p50, 2),
            p90Ms: round(quantile(ms, 0.9), 2),
            p99Ms: round(p99, 2),
            minMs: round(Math.min(...ms), 2),
            maxMs: round(Math.max(...ms), 2),
            meanMs: round(mean(ms), 2),
            cancelMedianMs: round(median(cancelMs), 2),
            samplesMs: ms.map((v) => round(v, 2)),
          },
        };
      } finally {
        await stack.close();
      }
    } finally {
      await removeDir();
    }
  },
};
