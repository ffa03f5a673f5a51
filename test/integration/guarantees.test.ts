/**
 * The two promises, each way they were seen to break: every action reaches an
 * end state (reconcile of lost tasks and lost ends, Stop of an action nobody
 * runs, hung Gmail calls), and after a `Finished` Synchronize the sink equals
 * the mailbox (sweeps after a Stopped first run, documents of messages Gmail
 * would not serve, runs that lost their mailbox to another). Against the real
 * servers, the worker in its own process so that it can be killed.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Timestamp } from '@google-cloud/firestore';
import type { gmail_v1 } from 'googleapis/build/src/apis/gmail/index.js';
import { synchronizeAction } from '../../functions/src/fetch/synchronize.js';
import { MailboxLost } from '../../functions/src/store/mailboxes.js';
import { fanOutTaskId, unitId, unitKey, unitTaskId, type UnitRecord } from '../../functions/src/store/model.js';
import { assertSinkMirrors, countsOf, sinkState, until } from '../support/checks.js';
import { rawMessage, testGmail } from '../support/gmail.js';
import { writeMailbox } from '../support/mail.js';
import { startTestStack, type TestStack } from '../support/stack.js';

const DROP = 'drop@example.com';
const GIVEUP = 'giveup@example.com';
const SMALL = 'small@example.com';
const IDLE = 'idle@example.com';
const SWEEP = 'sweep@example.com';
const KEEP = 'keep@example.com';
const FENCE = 'fence@example.com';
const HANG = 'hang@example.com';
const STALE = 'stale@example.com';
const TEAM = ['f1@example.com', 'f2@example.com', 'f3@example.com'];
const ENDED = ['Finished', 'Error', 'Stopped', 'Cancelled'];

let stack: TestStack;
let g: gmail_v1.Gmail;
type Json = Record<string, unknown>;

before(async () => {
  const { dir } = writeMailbox(DROP, 300, { prefix: 'd' });
  writeMailbox(GIVEUP, 200, { dir, prefix: 'g' });
  writeMailbox(SMALL, 20, { dir, prefix: 's' });
  writeMailbox(IDLE, 200, { dir, prefix: 'i' });
  writeMailbox(SWEEP, 200, { dir, prefix: 'w' });
  writeMailbox(KEEP, 30, { dir, prefix: 'k' });
  writeMailbox(FENCE, 5, { dir, prefix: 'e' });
  writeMailbox(HANG, 150, { dir, prefix: 'h' });
  writeMailbox(STALE, 5, { dir, prefix: 't' });
  TEAM.forEach((u, i) => writeMailbox(u, 10 + i, { dir, prefix: `f${i}` }));
  stack = await startTestStack({
    mailDir: dir,
    workerProcess: true,
    gmail: { historyRetention: 6 },
    env: { WORKER_LEASE_S: '2', GMAIL_CALL_TIMEOUT_S: '1', GMAIL_BACKOFF_MS: '10', WORKER_TIME_BUDGET_S: '4' },
    connector: {
      gmail: { quotaUnitsPerUserPerMinute: 1_000_000 },
      tasks: {
        DROP: { users: [DROP] },
        GIVEUP: { users: [GIVEUP] },
        SMALL: { users: [SMALL] },
        IDLE: { users: [IDLE] },
        SWEEP: { users: [SWEEP] },
        KEEP: { users: [KEEP] },
        FENCE: { users: [FENCE] },
        HANG: { users: [HANG] },
        STALE: { users: [STALE] },
        TEAM: { users: TEAM },
      },
    },
  });
  g = testGmail(stack.gmail.url);
});

after(async () => {
  await stack?.close();
});

async function unitOf(token: string): Promise<UnitRecord> {
  const [u] = await stack.units(token);
  assert.ok(u, `action ${token} has a unit`);
  return u;
}

/** Starts a Synchronize and waits until its (only) unit has committed at least `messages`. */
async function runningSync(task: string, messages: number): Promise<string> {
  const token = await stack.synchronize(task);
  await until('the unit is running', () => stack.units(token), (us) => us[0]?.status === 'Processing' && (us[0]?.messages ?? 0) >= messages);
  return token;
}

async function syncAndWait(task: string, statuses = ['Finished']): Promise<string> {
  const token = await stack.synchronize(task);
  const a = await stack.waitFor(token, ENDED, 120_000);
  assert.ok(statuses.includes(a.status), `${task}: ${a.status} ${a.error ?? ''}`);
  return token;
}

/** Kills the worker mid-run and removes the unit's task, as a queue that gave up on it would; then waits out the lease. */
async function loseTask(token: string): Promise<UnitRecord> {
  await stack.worker.kill();
  const u = await unitOf(token);
  assert.equal(await stack.deps.queue.remove(u.taskId), true, 'the unit had a task pending retry');
  await stack.worker.start();
  const lapsed = await until('the lease lapsed', () => unitOf(token), (x) => x.lease === null || x.lease.expiresAt.toMillis() < Date.now());
  // The task was named longer ago than anyone could still be creating it: its absence is a loss.
  const longAgo = Timestamp.fromMillis(Date.now() - stack.deps.queue.longestEnqueueMs - 1000);
  await stack.deps.units.ref(token, unitId(lapsed.task, lapsed.user)).update({ taskAt: longAgo });
  return { ...lapsed, taskAt: longAgo };
}

/** A Synchronize that loses its task once it committed `messages`, Gmail slowed so that it is caught running. */
async function runThenLoseTask(task: string, messages: number): Promise<string> {
  stack.gmail.setLatency(10);
  try {
    const token = await runningSync(task, messages);
    await loseTask(token);
    return token;
  } finally {
    stack.gmail.setLatency(0);
  }
}

function status(r: { json: unknown }): string {
  return ((((r.json as Json).autnresponse as Json).responsedata as Json).status as string) ?? '';
}

describe('every action ends', () => {
  it('a unit whose task the queue dropped is re-enqueued by reconcile and finishes exactly', async () => {
    const token = await runThenLoseTask('DROP', 50);
    const report = await stack.reconcile();
    assert.equal(report.requeued, 1, JSON.stringify(report));
    const a = await stack.waitFor(token, ENDED);
    assert.equal(a.status, 'Finished', a.error ?? '');
    const u = await unitOf(token);
    assert.equal(u.requeues, 1);
    assert.deepEqual(u.counts, { seen: 300, added: 300, updated: 0, unchanged: 0, deleted: 0, errors: 0 });
    await assertSinkMirrors(stack, g, 'DROP', DROP);
  });

  it('a unit the queue keeps losing ends Error naming the cause, and so does its action', async () => {
    const token = await runThenLoseTask('GIVEUP', 20);
    // As if reconcile had already re-enqueued it as often as it will.
    await stack.deps.units.ref(token, unitId('GIVEUP', GIVEUP)).update({ requeues: 3 });
    const report = await stack.reconcile();
    assert.equal(report.ended, 1, JSON.stringify(report));
    const a = await stack.waitFor(token, ENDED);
    assert.equal(a.status, 'Error');
    assert.match(a.error ?? '', /GIVEUP\/giveup@example\.com: the queue gave up after \d+ deliveries of task \S+: last error: .*re-enqueued 3 times/);
  });

  it('a fan-out task lost before it ran is re-enqueued once nobody can still be creating it, and the action finishes', async () => {
    await stack.aci({ action: 'QueueInfo', QueueName: 'fetch', QueueAction: 'Pause' });
    let token: string;
    try {
      token = await stack.synchronize('SMALL');
      assert.equal(await stack.deps.queue.remove(token), true, 'the action had its fan-out task');
      const backdate = (field: 'queuedAt' | 'fanOutAt') => stack.deps.store.ref(token).update({ [field]: Timestamp.fromMillis(Date.now() - stack.deps.queue.longestEnqueueMs - 1000) });
      const fanOut = async () => {
        const a = await stack.deps.store.get(token);
        return { generation: a?.fanOutGeneration, status: a?.status, tasks: await Promise.all([0, 1, 2].map((g) => stack.deps.queue.exists(fanOutTaskId(token, g)))) };
      };
      // Young: whoever asked for the task may still be creating it.
      await stack.reconcile();
      assert.deepEqual(await fanOut(), { generation: 0, status: 'Queued', tasks: [false, false, false] });
      await backdate('queuedAt');
      await stack.reconcile();
      assert.deepEqual(await fanOut(), { generation: 1, status: 'Queued', tasks: [false, true, false] });
      // The re-enqueue is as young as the record was: lost again, it is left until it is not.
      assert.equal(await stack.deps.queue.remove(fanOutTaskId(token, 1)), true);
      await stack.reconcile();
      assert.deepEqual(await fanOut(), { generation: 1, status: 'Queued', tasks: [false, false, false] });
      await backdate('fanOutAt');
      await stack.reconcile();
      assert.deepEqual(await fanOut(), { generation: 2, status: 'Queued', tasks: [false, false, true] });
    } finally {
      await stack.aci({ action: 'QueueInfo', QueueName: 'fetch', QueueAction: 'Resume' });
    }
    const a = await stack.waitFor(token, ENDED);
    assert.equal(a.status, 'Finished', a.error ?? '');
    await assertSinkMirrors(stack, g, 'SMALL', SMALL);
  });

  it('an action whose end was lost ends when read, is never coalesced onto, and ends in a reconcile pass', async () => {
    const token = await syncAndWait('SMALL');
    const lose = () => stack.deps.store.ref(token).update({ status: 'Processing', endedAt: null });
    await lose();
    const r = await stack.aci({ action: 'QueueInfo', QueueName: 'fetch', QueueAction: 'GetStatus', Token: token });
    const view = ((((r.json as Json).autnresponse as Json).responsedata as Json).actions as { action: Json[] }).action[0];
    assert.equal(view?.status, 'Finished');

    await lose();
    const next = await stack.synchronize('SMALL', { Schedule: 'true' });
    assert.notEqual(next, token, 'a scheduled run is not coalesced onto an action that has ended');
    assert.equal((await stack.waitFor(next, ENDED)).status, 'Finished');

    await lose();
    const report = await stack.reconcile();
    assert.ok((report.finished ?? 0) >= 1, JSON.stringify(report));
    assert.equal((await stack.deps.store.get(token))?.status, 'Finished');
  });

  it('Stop of an action whose worker died ends it Stopped at once', async () => {
    stack.gmail.setLatency(10);
    let token: string;
    try {
      token = await runningSync('IDLE', 20);
      await stack.worker.kill();
      await until('the lease lapsed', () => unitOf(token), (x) => x.lease === null || x.lease.expiresAt.toMillis() < Date.now());
      const r = await stack.aci({ action: 'QueueInfo', QueueName: 'fetch', QueueAction: 'Stop', Token: token });
      assert.equal(r.status, 200, r.text);
      assert.equal(status(r), 'Stopped');
    } finally {
      await stack.worker.start();
      stack.gmail.setLatency(0);
    }
    assert.equal((await unitOf(token)).status, 'Stopped');
    // The Stopped run left the mailbox free: the next one completes it.
    await syncAndWait('IDLE');
    await assertSinkMirrors(stack, g, 'IDLE', IDLE);
  });

  it('Schedule=true coalescing is one transaction: simultaneous ticks make one action', async () => {
    await stack.aci({ action: 'QueueInfo', QueueName: 'fetch', QueueAction: 'Pause' });
    try {
      const tokens = await Promise.all(Array.from({ length: 8 }, () => stack.synchronize('SMALL', { Schedule: 'true' })));
      assert.equal(new Set(tokens).size, 1, `tokens: ${[...new Set(tokens)].join(', ')}`);
      const open = await stack.db.collection('actions').where('scheduleKey', '==', 'SMALL').where('status', '==', 'Queued').get();
      assert.equal(open.size, 1);
      const c = await stack.aci({ action: 'QueueInfo', QueueName: 'fetch', QueueAction: 'Cancel', Token: tokens[0] ?? '' });
      assert.equal(c.status, 200, c.text);
    } finally {
      await stack.aci({ action: 'QueueInfo', QueueName: 'fetch', QueueAction: 'Resume' });
    }
  });

  it('fan-out: task ids derive from task and address, and a fan-out delivered twice adds nothing', async () => {
    await stack.aci({ action: 'QueueInfo', QueueName: 'fetch', QueueAction: 'Pause' });
    let token: string;
    try {
      token = await stack.synchronize('TEAM');
      const oidc = await stack.tasks.mintOidcToken(`tasks-invoker@${stack.project}.iam.gserviceaccount.com`, stack.workerUrl);
      const deliver = () =>
        fetch(stack.workerUrl, {
          method: 'POST',
          headers: { authorization: `Bearer ${oidc}`, 'content-type': 'application/json' },
          body: JSON.stringify({ token }),
        });
      const answers = await Promise.all([deliver(), deliver()]);
      assert.deepEqual(answers.map((r) => r.status), [200, 200]);
      const units = await stack.units(token);
      assert.equal(units.length, TEAM.length);
      for (const u of units) assert.equal(u.taskId, unitTaskId(token, unitKey('TEAM', u.user), 0));
      assert.equal((await stack.deps.store.get(token))?.unitsTotal, TEAM.length);
    } finally {
      await stack.aci({ action: 'QueueInfo', QueueName: 'fetch', QueueAction: 'Resume' });
    }
    assert.equal((await stack.waitFor(token, ENDED)).status, 'Finished');
    for (const u of TEAM) await assertSinkMirrors(stack, g, 'TEAM', u);
  });

  it('hung Gmail calls: Stop still ends the action, and a run still finishes', async () => {
    stack.gmail.setHangRate(0.3);
    try {
      const token = await runningSync('HANG', 1);
      const asked = Date.now();
      const r = await stack.aci({ action: 'QueueInfo', QueueName: 'fetch', QueueAction: 'Stop', Token: token });
      assert.equal(r.status, 200, r.text);
      const a = await stack.waitFor(token, ENDED, 30_000);
      assert.equal(a.status, 'Stopped');
      assert.ok(Date.now() - asked < 30_000);
      stack.gmail.setHangRate(0.1);
      await syncAndWait('HANG');
      assert.ok(stack.gmail.stats().hung > 0);
    } finally {
      stack.gmail.setHangRate(0);
    }
    await assertSinkMirrors(stack, g, 'HANG', HANG);
  });
});

describe('the sink equals the mailbox', () => {
  it('a Stopped first run, then deletions: the next run sweeps them', async () => {
    stack.gmail.setLatency(10);
    let stopped: string;
    try {
      stopped = await runningSync('SWEEP', 100);
      await stack.aci({ action: 'QueueInfo', QueueName: 'fetch', QueueAction: 'Stop', Token: stopped });
      assert.equal((await stack.waitFor(stopped, ENDED)).status, 'Stopped');
    } finally {
      stack.gmail.setLatency(0);
    }
    const inSink = [...(await sinkState(stack, 'SWEEP', SWEEP)).keys()].slice(0, 3);
    assert.equal(inSink.length, 3);
    for (const id of inSink) await g.users.messages.delete({ userId: SWEEP, id });
    await g.users.messages.insert({ userId: SWEEP, requestBody: { raw: rawMessage(SWEEP, '<after-stop@x>', 'late'), labelIds: ['INBOX'] } });
    const token = await syncAndWait('SWEEP');
    await assertSinkMirrors(stack, g, 'SWEEP', SWEEP);
    assert.equal((await countsOf(stack, token, 'SWEEP')).deleted, 3);
  });

  it('a sweep of more stale documents than a page deletes each unheld one once and marks each held one', async () => {
    // Documents an earlier run wrote (epoch 0) of messages the mailbox no longer has: more held
    // ones than a sweep page (400) holds, so a sweep that left them stale would read them forever.
    const UNHELD = 40;
    const HELD = 420;
    const name = (i: number) => `gone${String(i).padStart(4, '0')}`;
    const heldIds = new Set(Array.from({ length: HELD }, (_, k) => name(UNHELD + k)));
    const plant = stack.db.batch();
    for (let i = 0; i < UNHELD + HELD; i++) {
      const messageId = name(i);
      plant.set(stack.db.collection('documents').doc(`STALE:${STALE}:${messageId}`), { task: 'STALE', user: STALE, messageId, labels: ['INBOX'], epoch: 0, ...(heldIds.has(messageId) ? { held: true } : {}) });
    }
    await plant.commit();
    const token = await syncAndWait('STALE');
    const sink = await stack.sink('STALE', STALE);
    const mailbox = ((await g.users.messages.list({ userId: STALE })).data.messages ?? []).map((m) => m.id ?? '');
    assert.deepEqual([...sink.values()].map((d) => d.messageId as string).sort(), [...mailbox, ...heldIds].sort());
    for (const id of heldIds) {
      const d = sink.get(`STALE:${STALE}:${id}`);
      assert.deepEqual([d?.held, d?.deletedInSource], [true, true], `held ${id} is kept and marked`);
    }
    assert.equal((await countsOf(stack, token, 'STALE')).deleted, UNHELD);
  });

  it('a message Gmail will not serve keeps its document through a sweep, counted as an error', async () => {
    await syncAndWait('KEEP');
    const ids = [...(await sinkState(stack, 'KEEP', KEEP)).keys()];
    const [bad, ...rest] = ids;
    stack.gmail.failMessages([bad ?? '']);
    try {
      // More changes than the mailbox keeps history for: the next run lists in full and sweeps.
      for (const id of rest.slice(0, 7)) await g.users.messages.modify({ userId: KEEP, id, requestBody: { addLabelIds: ['STARRED'] } });
      const token = await syncAndWait('KEEP', ['Error']);
      const a = await stack.deps.store.get(token);
      assert.match(a?.error ?? '', new RegExp(`messages.get ${bad}`));
      assert.equal((await countsOf(stack, token, 'KEEP')).errors, 1);
      const sink = await sinkState(stack, 'KEEP', KEEP);
      assert.deepEqual([...sink.keys()].sort(), [...ids].sort(), 'no document was swept');
    } finally {
      stack.gmail.failMessages([]);
    }
    await syncAndWait('KEEP');
    await assertSinkMirrors(stack, g, 'KEEP', KEEP);
  });

  it('a run that lost its mailbox writes nothing more, and one that was overtaken and finished does not resume', async () => {
    const { store, units } = stack.deps;
    const a = 'AAAAAAAAAAAAAAAAAAAAAA';
    const b = 'BBBBBBBBBBBBBBBBBBBBBB';
    const id = unitId('FENCE', FENCE);
    for (const token of [a, b]) {
      await store.create({ token, fetchAction: 'Synchronize', tasks: ['FENCE'], scheduleKey: null });
      await units.create(token, [{ task: 'FENCE', user: FENCE, id, index: 0 }], synchronizeAction);
    }
    const none = { retryCount: 0, previousResponse: null };
    assert.equal((await units.claim(a, id, 'a1', 0, 300, none)).kind, 'claimed');
    const heldA = await units.hold(a, id, 'a1');
    const runA = await units.begin(heldA, 300, null);
    assert.equal(runA.begins, true);
    // A's process stalls past its lease; B takes the mailbox, runs and finishes it.
    await until('A lapsed', () => unitOf(a), (u) => (u.lease?.expiresAt.toMillis() ?? 0) < Date.now());
    assert.equal((await units.claim(b, id, 'b1', 0, 60_000, none)).kind, 'claimed');
    const heldB = await units.hold(b, id, 'b1');
    const runB = await units.begin(heldB, 60_000, null);
    assert.equal(runB.epoch, runA.epoch + 1);
    await units.end(b, id, 'b1', 'Finished', {}, { epoch: runB.epoch, historyId: '1000' });
    // A wakes up: its next write is refused.
    await assert.rejects(units.write(heldA, 300, null), (e) => e instanceof MailboxLost);
    // A's next delivery finds its run overtaken and finished: it neither sweeps nor writes state.
    assert.equal((await units.claim(a, id, 'a2', 0, 60_000, none)).kind, 'claimed');
    const again = await units.begin(await units.hold(a, id, 'a2'), 60_000, runA.epoch);
    assert.equal(again.supersededBy, b);
    await units.end(a, id, 'a2', 'Finished', {});
    // A later run that saw an older history id never moves it back.
    const c = 'CCCCCCCCCCCCCCCCCCCCCC';
    await store.create({ token: c, fetchAction: 'Synchronize', tasks: ['FENCE'], scheduleKey: null });
    await units.create(c, [{ task: 'FENCE', user: FENCE, id, index: 0 }], synchronizeAction);
    assert.equal((await units.claim(c, id, 'c1', 0, 60_000, none)).kind, 'claimed');
    const runC = await units.begin(await units.hold(c, id, 'c1'), 60_000, null);
    await units.end(c, id, 'c1', 'Finished', {}, { epoch: runC.epoch, historyId: '900' });
    const state = await stack.db.doc(`state/FENCE/mailboxes/${FENCE}`).get();
    assert.equal(state.get('historyId'), '1000');
    assert.equal(state.get('syncedEpoch'), runC.epoch);
    for (const token of [a, b, c]) assert.equal((await store.get(token))?.status, 'Finished');
  });
});
