/**
 * Gmail push on the test stack (test/support/stack.ts with `push`: the Gmail emulator publishing
 * to the official Pub/Sub emulator, whose push subscription reaches `notify` through the signing
 * relay; the functions in this process, the worker as the queue's real target):
 * - insert → sink: 100 messages inserted one at a time into a watched mailbox, each timed from the
 *   insert's answer until its document is in the sink (no Fetch is sent);
 * - quota: Gmail units per day for 1,000 mailboxes of which 1% change per hour, push with its
 *   hourly safety net against a 15-minute poll, from the per-call costs measured here (the units
 *   the emulator charged for a push sync of one change, for a sync that finds nothing, for a watch);
 * - burst: 1,000 notifications of one change of one address, sent 50 at a time: how many syncs ran.
 */
import { rm } from 'node:fs/promises';
import { METHOD_COSTS } from '../test/emulators/gmail/quota.js';
import { rawMessage, testGmail } from '../test/support/gmail.js';
import { writeMailbox } from '../test/support/mail.js';
import { startTestStack, type TestStack } from '../test/support/stack.js';
import { onCleanup } from './lib/cleanup.js';
import { below, info, type Benchmark, type Outcome } from './lib/report.js';
import { fmt, median, note, quantile, round } from './lib/util.js';

const USER = 'push@bench.example';
const INSERTS = 100;
const TARGET_MEDIAN_MS = 5000;
const MAILBOXES = 1000;
const CHANGING_PER_HOUR = 0.01;
const POLL_EVERY_MIN = 15;
const SAFETY_NET_EVERY_MIN = 60;
const BURST = 1000;
const BURST_CONCURRENCY = 50;

async function until(what: string, ok: () => Promise<boolean> | boolean, timeoutMs = 120_000, everyMs = 20): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await ok())) {
    if (Date.now() > end) throw new Error(`not within ${timeoutMs / 1000} s: ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** Gmail units the emulator charged so far. */
function unitsCharged(stack: TestStack): number {
  return Object.entries(stack.gmail.stats().calls).reduce((n, [method, calls]) => n + (METHOD_COSTS[method] ?? 0) * calls, 0);
}

/** Units of the calls the connector made (the test's own inserts and profile reads left out). */
function connectorUnits(stack: TestStack, own: { inserts: number; profiles: number }): number {
  return unitsCharged(stack) - own.inserts * (METHOD_COSTS['messages.insert'] ?? 0) - own.profiles * (METHOD_COSTS['getProfile'] ?? 0);
}

async function pushActions(stack: TestStack): Promise<FirebaseFirestore.DocumentData[]> {
  return (await stack.db.collection('actions').where('origin', '==', 'push').get()).docs.map((d) => d.data());
}

export const pushBench: Benchmark = {
  name: 'push',
  title: 'Gmail push: insert → sink, quota, bursts',
  async run(ctx): Promise<Outcome> {
    const { dir } = writeMailbox(USER, 20);
    const removeDir = onCleanup(`folder ${dir}`, () => rm(dir, { recursive: true, force: true }));
    const stack = await startTestStack({
      firestore: ctx.firestore,
      mailDir: dir,
      push: true,
      connector: { gmail: { quotaUnitsPerUserPerMinute: 15_000 }, tasks: { PUSH: { users: [USER], push: true } } },
    });
    const closeStack = onCleanup('the push stack', () => stack.close());
    try {
      const g = testGmail(stack.gmail.url);
      const own = { inserts: 0, profiles: 0 };
      await stack.waitFor(await stack.synchronize('PUSH'), ['Finished'], 120_000);
      await until('the watch', () => stack.gmail.watchOf(USER) !== undefined);

      // A Synchronize that finds nothing new: what each poll (and each safety-net run) costs.
      const idleBefore = connectorUnits(stack, own);
      await stack.waitFor(await stack.synchronize('PUSH'), ['Finished'], 120_000);
      const idleSyncUnits = connectorUnits(stack, own) - idleBefore;

      note(`push: ${INSERTS} inserts into a watched mailbox, one at a time`);
      const ms: number[] = [];
      const pushBefore = connectorUnits(stack, own);
      const actionsBefore = (await pushActions(stack)).length;
      for (let i = 0; i < INSERTS; i++) {
        // Gmail notifies a user at most once a second and drops the excess: wait until the next is sent.
        await until('notifications allowed', () => stack.gmail.notifyQuietFor(USER) === 0, 10_000, 5);
        const t0 = performance.now();
        const r = await g.users.messages.insert({ userId: USER, requestBody: { raw: rawMessage(USER, `<bench-${i}@x>`, `bench ${i}`), labelIds: ['INBOX'] } });
        own.inserts++;
        const doc = stack.db.collection('documents').doc(`PUSH:${USER}:${r.data.id ?? ''}`);
        await until(`insert ${i} in the sink`, async () => (await doc.get()).exists, 120_000, 10);
        ms.push(performance.now() - t0);
      }
      await until('push syncs ended', async () => (await pushActions(stack)).every((a) => a.status === 'Finished'));
      const pushSyncs = (await pushActions(stack)).length - actionsBefore;
      const changeSyncUnits = (connectorUnits(stack, own) - pushBefore) / pushSyncs;
      const watchUnits = METHOD_COSTS['watch'] ?? 100;

      // The model: 1,000 mailboxes, 1% of them change each hour (one message each).
      const changesPerDay = MAILBOXES * CHANGING_PER_HOUR * 24;
      const pollSyncsPerDay = MAILBOXES * ((24 * 60) / POLL_EVERY_MIN);
      const netSyncsPerDay = MAILBOXES * ((24 * 60) / SAFETY_NET_EVERY_MIN);
      const perChange = changeSyncUnits - idleSyncUnits; // the messages.get of the changed message
      const pollUnits = pollSyncsPerDay * idleSyncUnits + changesPerDay * perChange;
      const pushUnits = changesPerDay * changeSyncUnits + netSyncsPerDay * idleSyncUnits + MAILBOXES * watchUnits;

      note(`push: a burst of ${BURST} notifications of one change`);
      await until('notifications allowed', () => stack.gmail.notifyQuietFor(USER) === 0, 10_000, 5);
      stack.gmail.dropNotifications(USER, 1);
      await g.users.messages.insert({ userId: USER, requestBody: { raw: rawMessage(USER, '<burst@x>', 'burst'), labelIds: ['INBOX'] } });
      own.inserts++;
      const h = (await g.users.getProfile({ userId: USER })).data.historyId ?? '';
      own.profiles++;
      const burstBefore = (await pushActions(stack)).length;
      const body = JSON.stringify({ message: { data: Buffer.from(JSON.stringify({ emailAddress: USER, historyId: Number(h) })).toString('base64'), messageId: 'b' } });
      let sent = 0;
      const statuses = new Map<number, number>();
      const burstT0 = performance.now();
      await Promise.all(
        Array.from({ length: BURST_CONCURRENCY }, async () => {
          while (sent < BURST) {
            sent++;
            const r = await fetch(stack.push?.relay.url ?? '', { method: 'POST', headers: { 'content-type': 'application/json' }, body, signal: AbortSignal.timeout(120_000) });
            await r.arrayBuffer();
            statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
          }
        }),
      );
      const burstMs = performance.now() - burstT0;
      await until('burst syncs ended', async () => (await pushActions(stack)).every((a) => a.status === 'Finished'));
      const burstSyncs = (await pushActions(stack)).length - burstBefore;
      if (statuses.get(200) !== BURST) throw new Error(`notify answered ${JSON.stringify([...statuses])} to the burst`);

      const p50 = median(ms);
      const p95 = quantile(ms, 0.95);
      return {
        rows: [
          below(`median insert → sink (${INSERTS} inserts)`, p50, 'ms', TARGET_MEDIAN_MS, 0),
          info('95th percentile insert → sink', p95, 'ms', 0),
          info(`Gmail units/day, push + hourly net (${MAILBOXES} mailboxes, 1%/h change)`, pushUnits, 'units', 0),
          info(`Gmail units/day, ${POLL_EVERY_MIN}-minute poll (same mailboxes)`, pollUnits, 'units', 0, '—', round(pushUnits / pollUnits, 3)),
          below(`syncs run for a burst of ${BURST} notifications`, burstSyncs, 'syncs', 2, 0, true),
        ],
        notes: [
          `Insert → sink: from sending messages.insert until the document exists in the sink, polled every 10 ms; each insert waits until Gmail's one-notification-a-second window is open ` +
            `(as Gmail drops notifications over that rate) and for the previous one to arrive. Path: Gmail emulator → Pub/Sub emulator push → relay (signs the OIDC token) → notify → ` +
            `Cloud Tasks emulator → worker (in this process) → Firestore emulator; the machine's 2 cores are shared. min ${fmt(Math.min(...ms), 0)} ms, max ${fmt(Math.max(...ms), 0)} ms; ${pushSyncs} push syncs for ${INSERTS} inserts.`,
          `Quota from measured per-call costs: a Synchronize that finds nothing costs ${fmt(idleSyncUnits, 1)} units (getProfile + history.list), a push sync of one change ${fmt(changeSyncUnits, 1)} units, ` +
            `a users.watch ${watchUnits} units (renewed daily). Poll: ${fmt(pollSyncsPerDay, 0)} syncs/day + ${fmt(changesPerDay, 0)} changed messages; push: ${fmt(changesPerDay, 0)} push syncs + ` +
            `${fmt(netSyncsPerDay, 0)} safety-net syncs + ${MAILBOXES} watches a day. Ratio column: push ÷ poll.`,
          `Burst: ${BURST} identical notifications (the change's own dropped) sent ${BURST_CONCURRENCY} at a time in ${fmt(burstMs / 1000, 1)} s; every one answered 200.`,
        ],
        details: {
          inserts: INSERTS,
          medianMs: round(p50, 1),
          p95Ms: round(p95, 1),
          pushSyncs,
          idleSyncUnits,
          changeSyncUnits: round(changeSyncUnits, 2),
          watchUnits,
          pushUnitsPerDay: round(pushUnits, 0),
          pollUnitsPerDay: round(pollUnits, 0),
          burst: BURST,
          burstSyncs,
          burstSeconds: round(burstMs / 1000, 1),
        },
      };
    } finally {
      await closeStack();
      await removeDir();
    }
  },
};
