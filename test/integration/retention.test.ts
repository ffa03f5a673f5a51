/**
 * Retention: an action that ends carries `expireAt` = its end time + ACTION_RETENTION_DAYS, the
 * field Firestore's TTL policies (infra/firestore.tf) delete it by, and its units then carry the
 * same: their retention counts from their action's end. Open actions and units carry none, nor does the sync state that shares the units'
 * collection group, so neither is ever deleted.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Timestamp } from '@google-cloud/firestore';
import { ConfigError, loadConfig } from '../../functions/src/config.js';
import { startTestStack, type TestStack } from '../support/stack.js';
import { writeMailbox } from '../support/mail.js';
import { until } from '../support/checks.js';

const DAYS = 7;
const DAY_MS = 86_400_000;
const ALICE = 'alice@example.com';
const BOB = 'bob@example.com';
const ENDED = ['Finished', 'Cancelled', 'Stopped', 'Error'];

let stack: TestStack;

before(async () => {
  const { dir } = writeMailbox(ALICE, 12);
  writeMailbox(BOB, 5, { dir, prefix: 'b' });
  stack = await startTestStack({
    mailDir: dir,
    connector: {
      gmail: { quotaUnitsPerUserPerMinute: 1_000_000 },
      tasks: { TEAM: { users: [ALICE, BOB] }, SOLO: { users: [ALICE] } },
    },
    env: { ACTION_RETENTION_DAYS: String(DAYS) },
  });
});

after(async () => {
  await stack?.close();
});

/** The document's expireAt, asserted to be its endedAt + DAYS. */
function assertExpiry(what: string, data: FirebaseFirestore.DocumentData | undefined): void {
  const endedAt = data?.['endedAt'] as Timestamp | null | undefined;
  const expireAt = data?.['expireAt'] as Timestamp | undefined;
  assert.ok(endedAt, `${what} has no endedAt`);
  assert.ok(expireAt, `${what} has no expireAt`);
  assert.equal(typeof expireAt.toMillis, 'function', `${what}: expireAt is not a Timestamp (a TTL policy needs one)`);
  assert.equal(expireAt.toMillis() - endedAt.toMillis(), DAYS * DAY_MS, `${what}: expireAt is not endedAt + ${DAYS} days`);
}

describe('expireAt', () => {
  it('is set on a finished action, endedAt + ACTION_RETENTION_DAYS, and then on each of its units, the same', async () => {
    const token = await stack.synchronize('TEAM');
    const a = await stack.waitFor(token, ENDED);
    assert.equal(a.status, 'Finished', a.error ?? '');
    const action = (await stack.db.collection('actions').doc(token).get()).data();
    assertExpiry('the action', action);
    const expireAt = (action?.['expireAt'] as Timestamp).toMillis();
    const units = await until(
      'the units expire with their action',
      async () => (await stack.db.collection('actions').doc(token).collection('mailboxes').get()).docs.map((u) => (u.get('expireAt') as Timestamp | undefined)?.toMillis()),
      (times) => times.every((t) => t === expireAt),
    );
    assert.deepEqual(units, [expireAt, expireAt]);
  });

  it('is set on a cancelled action; an open one has none', async () => {
    await stack.aci({ action: 'QueueInfo', QueueName: 'fetch', QueueAction: 'Pause' });
    try {
      const token = await stack.synchronize('SOLO');
      const open = (await stack.db.collection('actions').doc(token).get()).data();
      assert.equal(open?.['status'], 'Queued');
      assert.equal(open?.['expireAt'], undefined);
      const c = await stack.aci({ action: 'QueueInfo', QueueName: 'fetch', QueueAction: 'Cancel', Token: token });
      assert.equal(c.status, 200, c.text);
      const cancelled = (await stack.db.collection('actions').doc(token).get()).data();
      assert.equal(cancelled?.['status'], 'Cancelled');
      assertExpiry('the cancelled action', cancelled);
      const units = await stack.db.collection('actions').doc(token).collection('mailboxes').get();
      for (const u of units.docs) {
        if (ENDED.includes(u.get('status') as string)) assertExpiry(`unit ${u.id}`, u.data());
      }
    } finally {
      await stack.aci({ action: 'QueueInfo', QueueName: 'fetch', QueueAction: 'Resume' });
    }
  });

  it('is set on an action ended in error by the store, and never on the sync state', async () => {
    const token = await stack.synchronize('SOLO');
    await stack.waitFor(token, ENDED);
    // Ending an open action Error (as a fan-out that cannot list its mailboxes does).
    await stack.deps.store.create({ token: 'retentionErrorToken000', fetchAction: 'Synchronize', tasks: ['SOLO'], scheduleKey: null });
    await stack.deps.store.failAction('retentionErrorToken000', 'the domain could not be listed');
    const failed = (await stack.db.collection('actions').doc('retentionErrorToken000').get()).data();
    assert.equal(failed?.['status'], 'Error');
    assertExpiry('the failed action', failed);
    const state = await stack.db.collectionGroup('mailboxes').get();
    const syncState = state.docs.filter((d) => d.ref.path.startsWith('state/'));
    assert.ok(syncState.length > 0, 'no sync state was written');
    for (const d of syncState) assert.equal(d.get('expireAt'), undefined, `${d.ref.path} carries expireAt`);
  });
});

describe('ACTION_RETENTION_DAYS', () => {
  const base = {
    GCLOUD_PROJECT: 'p',
    CONNECTOR_CONFIG: JSON.stringify({ tasks: { T: { users: ['a@example.com'] } } }),
    WORKER_URL: 'https://worker.example.com/',
    TASKS_INVOKER_SERVICE_ACCOUNT: 'tasks@p.iam.gserviceaccount.com',
  };

  it('defaults to 30 days and accepts a whole number of days', () => {
    assert.equal(loadConfig(base).actionRetentionDays, 30);
    assert.equal(loadConfig({ ...base, ACTION_RETENTION_DAYS: '90' }).actionRetentionDays, 90);
  });

  it('refuses anything else', () => {
    for (const bad of ['0', '-1', '1.5', 'month', '4000']) {
      assert.throws(() => loadConfig({ ...base, ACTION_RETENTION_DAYS: bad }), (e: unknown) => e instanceof ConfigError && /ACTION_RETENTION_DAYS/.test(e.message));
    }
  });
});
