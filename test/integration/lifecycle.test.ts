/**
 * An action's life against the real servers where it is easiest to break: hand-overs watched by
 * reconcile while Cloud Tasks stalls, records removed by retention before their action ends, a
 * record naming a fetch action this version does not know, a worker with no Gmail identity, and
 * a fan-out retried after its domain's users changed.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { gmail_v1 } from 'googleapis/build/src/apis/gmail/index.js';
import { Timestamp } from '@google-cloud/firestore';
import { createGoogleAccess } from '../../functions/src/gmail/client.js';
import { createWork } from '../../functions/src/engine/work.js';
import { createReconciler } from '../../functions/src/queue/reconcile.js';
import { synchronizeAction } from '../../functions/src/fetch/synchronize.js';
import { ENDED_STATUSES, unitId, type ActionRecord } from '../../functions/src/store/model.js';
import { assertSinkMirrors, until } from '../support/checks.js';
import { testGmail } from '../support/gmail.js';
import { writeMailbox } from '../support/mail.js';
import { startTestStack, type TestStack } from '../support/stack.js';

const LONG = 'long@example.com';
const QUICK = 'quick@example.com';
const SLOW = 'slow@example.com';
const SOLO = 'solo@example.com';
const ENDED = ['Finished', 'Error', 'Stopped', 'Cancelled'];

function pick(u: { generation: number; requeues: number; status: string } | null) {
  return u && { generation: u.generation, requeues: u.requeues, status: u.status };
}

let stack: TestStack;
let g: gmail_v1.Gmail;

before(async () => {
  const { dir } = writeMailbox(LONG, 300, { prefix: 'l' });
  writeMailbox(QUICK, 5, { dir, prefix: 'q' });
  writeMailbox(SLOW, 30, { dir, prefix: 's' });
  writeMailbox(SOLO, 3, { dir, prefix: 'o' });
  stack = await startTestStack({
    mailDir: dir,
    // A one-second budget: the long mailbox hands over many times.
    env: { WORKER_TIME_BUDGET_S: '1', WORKER_LEASE_S: '4', ACTION_RETENTION_DAYS: '1' },
    connector: {
      gmail: { quotaUnitsPerUserPerMinute: 1_000_000 },
      tasks: { LONG: { users: [LONG] }, PAIR: { users: [QUICK, SLOW] }, SOLO: { users: [SOLO] } },
    },
  });
  g = testGmail(stack.gmail.url);
});

after(async () => {
  await stack?.close();
});

describe('lifecycle', () => {
  it('reconcile polled through every hand-over, with CreateTask unavailable twice each time, re-enqueues nothing and the run finishes', async () => {
    // Every task name's creation meets UNAVAILABLE twice before it goes through (the queue
    // client's third attempt): each hand-over leaves the unit without a task for a while.
    stack.tasks.flakyCreates(2);
    try {
      const token = await stack.synchronize('LONG');
      let passes = 0;
      const a = await until(
        'the long run ended',
        async () => {
          // Both passes: the scheduled one, and the lazy one of GetStatus (the queue page's poll).
          await stack.reconcile();
          await stack.aci({ action: 'QueueInfo', QueueAction: 'GetStatus', QueueName: 'Fetch', Token: token });
          passes++;
          return (await stack.deps.store.get(token)) as ActionRecord;
        },
        (x) => ENDED_STATUSES.has(x.status),
        180_000,
      );
      assert.equal(a.status, 'Finished', a.error ?? '');
      const [u] = await stack.units(token);
      assert.ok((u?.generation ?? 0) >= 2, `generation ${u?.generation}: the run should have handed over`);
      assert.ok(passes > (u?.generation ?? 0), `${passes} reconcile passes`);
      assert.equal(u?.requeues, 0);
      assert.equal(u?.messages, 300);
      await assertSinkMirrors(stack, g, 'LONG', LONG);
    } finally {
      stack.tasks.flakyCreates(0);
    }
  });

  it('a task that really is lost is re-enqueued once its grace has passed, and counted once', async () => {
    const { store, units } = stack.deps;
    const token = 'LOSTTASKAAAAAAAAAAAAAA';
    const id = unitId('SOLO', SOLO);
    // The unit's name is recorded; its task never reaches the queue.
    await store.create({ token, fetchAction: 'Synchronize', tasks: ['SOLO'], scheduleKey: null });
    await units.create(token, [{ task: 'SOLO', user: SOLO, id, index: 0 }], synchronizeAction);
    // Within the grace nothing happens; once it has passed, one re-enqueue, and the run finishes.
    await stack.reconcile();
    assert.deepEqual(pick(await units.get(token, id)), { generation: 0, requeues: 0, status: 'Queued' });
    await units.ref(token, id).update({ taskAt: Timestamp.fromMillis(Date.now() - stack.deps.queue.longestEnqueueMs - 1000) });
    await stack.reconcile();
    const a = await stack.waitFor(token, ENDED, 60_000);
    assert.equal(a.status, 'Finished', a.error ?? '');
    assert.deepEqual(pick(await units.get(token, id)), { generation: 1, requeues: 1, status: 'Finished' });
  });

  it('an action ends when retention removed the record of a unit that ended long before it, and its records then expire with it', async () => {
    const release = stack.gmail.holdCalls(SLOW, 'messages.get', 0);
    const token = await stack.synchronize('PAIR');
    const quick = unitId('PAIR', QUICK);
    await until('the quick mailbox ended', () => stack.deps.units.get(token, quick), (u) => u?.status === 'Finished');
    // Firestore's TTL policy deletes the ended record (as it would once its retention passed).
    await stack.deps.units.ref(token, quick).delete();
    release();
    const a = await stack.waitFor(token, ENDED, 60_000);
    assert.equal(a.status, 'Finished', a.error ?? '');
    assert.equal(a.totals?.ended, 2);
    // Every record left of the action expires with it.
    const expireAt = a.expireAt?.toMillis();
    assert.equal(typeof expireAt, 'number');
    const ref = stack.deps.store.ref(token);
    await until(
      'the records expire with their action',
      async () => {
        const docs = (await Promise.all(['mailboxes', 'totals'].map((c) => ref.collection(c).get()))).flatMap((q) => q.docs);
        return docs.map((d) => (d.get('expireAt') as Timestamp | undefined)?.toMillis());
      },
      (times) => times.length > 0 && times.every((t) => t === expireAt),
    );
    // A scheduled tick now starts a new action: nothing is left open to coalesce onto.
    const tick = await stack.synchronize('PAIR', { Schedule: 'true' });
    assert.notEqual(tick, token);
    assert.equal((await stack.waitFor(tick, ENDED, 60_000)).status, 'Finished');
  });

  it('a unit that failed and whose record expired still ends its action Error', async () => {
    const token = 'RETAINEDERRORAAAAAAAAA';
    const { store, units } = stack.deps;
    await store.create({ token, fetchAction: 'Synchronize', tasks: ['PAIR'], scheduleKey: null });
    const list = [QUICK, SLOW].map((user, index) => ({ task: 'PAIR', user, id: unitId('PAIR', user), index }));
    await units.create(token, list, synchronizeAction);
    await units.end(token, list[0]?.id ?? '', null, 'Error', { error: 'Gmail refused' });
    await units.ref(token, list[0]?.id ?? '').delete();
    await units.end(token, list[1]?.id ?? '', null, 'Cancelled', {});
    const a = await store.get(token);
    assert.equal(a?.status, 'Error');
    assert.match(a?.error ?? '', /1 more whose records have expired/);
  });

  it('a record naming a fetch action this version does not know ends Error, before or after its fan-out, and GetStatus still answers', async () => {
    const { store, queue } = stack.deps;
    // Before the fan-out: the action's own task.
    const early = 'UNKNOWNFETCHEARLYAAAAA';
    await store.create({ token: early, fetchAction: 'Frobnicate', tasks: ['SOLO'], scheduleKey: null });
    await queue.enqueue(early, { token: early });
    const e = await stack.waitFor(early, ENDED, 30_000);
    assert.equal(e.status, 'Error');
    assert.match(e.error ?? '', /unknown fetch action Frobnicate/);
    // After it: a unit's task.
    const late = 'UNKNOWNFETCHLATEAAAAAA';
    const id = unitId('SOLO', SOLO);
    await store.create({ token: late, fetchAction: 'Synchronize', tasks: ['SOLO'], scheduleKey: null });
    await stack.deps.units.create(late, [{ task: 'SOLO', user: SOLO, id, index: 0 }], synchronizeAction);
    await store.ref(late).update({ fetchAction: 'Frobnicate' });
    const u = await stack.deps.units.get(late, id);
    await queue.enqueue(u?.taskId ?? '', { token: late, unit: id, generation: 0 });
    const l = await stack.waitFor(late, ENDED, 30_000);
    assert.equal(l.status, 'Error');
    assert.match(l.error ?? '', /unknown fetch action Frobnicate/);
    const after = await stack.deps.units.get(late, id);
    assert.equal(after?.lease, null);
    assert.equal(after?.status, 'Error');
    for (const token of [early, late]) {
      const r = await stack.aci({ action: 'QueueInfo', QueueAction: 'GetStatus', QueueName: 'Fetch', Token: token });
      assert.equal(r.status, 200, r.text);
      assert.match(r.text, /Error/);
    }
  });

  it('a worker with no Gmail identity ends the action Error before its fan-out, naming the variable to set', async () => {
    const { store } = stack.deps;
    const token = 'NOIDENTITYAAAAAAAAAAAA';
    await store.create({ token, fetchAction: 'Synchronize', tasks: ['SOLO'], scheduleKey: null });
    // The worker's own configuration without delegation and without an emulator to read.
    const config = { ...stack.deps.config, gmailRootUrl: undefined, delegatedServiceAccount: undefined, delegatedClientId: undefined };
    const work = createWork({ ...stack.deps, config, google: createGoogleAccess(config) });
    const r = await work.handle({ token });
    assert.equal(r.status, 200);
    const a = await store.get(token);
    assert.equal(a?.status, 'Error');
    assert.match(a?.error ?? '', /GMAIL_DELEGATED_SERVICE_ACCOUNT is not set/);
    assert.equal((await store.units(token)).length, 0);
  });

  it('a fan-out retried after its user list changed gives every unit its own index', async () => {
    const { store, units } = stack.deps;
    const token = 'INDEXCOLLISIONAAAAAAAA';
    await store.create({ token, fetchAction: 'Synchronize', tasks: ['PAIR'], scheduleKey: null });
    // A first delivery wrote one unit, at index 0, from a list that has changed since, then failed.
    await units.create(token, [{ task: 'PAIR', user: SLOW, id: unitId('PAIR', SLOW), index: 0 }], synchronizeAction);
    await store.ref(token).update({ unitsTotal: null });
    await createWork(stack.deps).handle({ token });
    const listed = await store.units(token);
    assert.deepEqual(listed.map((u) => [u.user, u.index]), [[SLOW, 0], [QUICK, 1]]);
    assert.equal((await stack.waitFor(token, ENDED, 60_000)).status, 'Finished');
  });

  it('reconcile passes go on from where the last one stopped, so actions beyond the first page are reached', async () => {
    const { store, units } = stack.deps;
    const none = { retryCount: 0, previousResponse: null };
    // First in token order: actions a pass can do nothing for (a live lease holds each).
    const blocked = ['AAAAAAAAAAAAAAAAAAAAA1', 'AAAAAAAAAAAAAAAAAAAAA2', 'AAAAAAAAAAAAAAAAAAAAA3'];
    for (const [i, token] of blocked.entries()) {
      const user = `busy${i}@example.com`;
      await store.create({ token, fetchAction: 'Synchronize', tasks: ['SOLO'], scheduleKey: null });
      await units.create(token, [{ task: 'SOLO', user, id: unitId('SOLO', user), index: 0 }], synchronizeAction);
      assert.equal((await units.claim(token, unitId('SOLO', user), 'holder', 0, 3_600_000, none)).kind, 'claimed');
      await store.markStarted(token, Timestamp.now());
    }
    // Last in token order: actions whose units all ended but which missed their end.
    const stuck = ['ZZZZZZZZZZZZZZZZZZZZZ1', 'ZZZZZZZZZZZZZZZZZZZZZ2'];
    for (const token of stuck) {
      const user = `${token.slice(-1)}stuck@example.com`;
      await store.create({ token, fetchAction: 'Synchronize', tasks: ['SOLO'], scheduleKey: null });
      await units.create(token, [{ task: 'SOLO', user, id: unitId('SOLO', user), index: 0 }], synchronizeAction);
      await units.end(token, unitId('SOLO', user), null, 'Finished', {});
      await store.ref(token).update({ status: 'Processing', endedAt: null });
    }
    const reconciler = createReconciler(stack.deps);
    // Two actions a page and no time: each pass reads one page, and the next goes on from it.
    const statuses = async () => (await Promise.all(stuck.map((t) => store.get(t)))).map((a) => a?.status);
    for (let pass = 0; pass < 4 && (await statuses()).some((x) => x !== 'Finished'); pass++) await reconciler.pass({ pageSize: 2, budgetMs: 0 });
    assert.deepEqual(await statuses(), ['Finished', 'Finished']);
    for (const token of blocked) await store.failAction(token, 'the test is done with it');
  });
});
