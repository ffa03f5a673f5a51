/**
 * Fetching ahead while committing (fetch/shared/pipeline.ts), broken on purpose on the
 * real stack: a lease taken over mid-run, and a Stop mid-run, each while later
 * batches are being fetched ahead. What was committed stays a consistent
 * prefix (the sink holds exactly what the counts say), the run that lost its
 * lease writes and fetches nothing more, and the next run finishes with every
 * message counted once. (A worker killed mid-run is crash.test.ts.)
 *
 * Gmail is throttled to a 1 s burst of 100 units a second (20 messages a
 * second), so a run of 300 messages is caught in the middle however fast or
 * loaded the machine is.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Timestamp } from '@google-cloud/firestore';
import type { gmail_v1 } from 'googleapis/build/src/apis/gmail/index.js';
import { unitId, type UnitRecord } from '../../functions/src/store/model.js';
import { assertSinkMirrors, countsOf, until } from '../support/checks.js';
import { testGmail } from '../support/gmail.js';
import { writeMailbox } from '../support/mail.js';
import { startTestStack, type TestStack } from '../support/stack.js';

const STOLEN = 'stolen@pipeline.example';
const STOPPED = 'stopped@pipeline.example';
const COUNT = 300;
const QUOTA = 6000;
const ENDED = ['Finished', 'Error', 'Stopped', 'Cancelled'];

let stack: TestStack;
let g: gmail_v1.Gmail;

before(async () => {
  const { dir } = writeMailbox(STOLEN, COUNT, { prefix: 'l' });
  writeMailbox(STOPPED, COUNT, { dir, prefix: 'p' });
  stack = await startTestStack({
    mailDir: dir,
    env: { WORKER_LEASE_S: '30' },
    connector: { gmail: { quotaUnitsPerUserPerMinute: QUOTA }, tasks: { STOLEN: { users: [STOLEN] }, STOPPED: { users: [STOPPED] } } },
    gmail: { quotaUnitsPerMinute: QUOTA, quotaBurstSeconds: 1 },
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

/** The sink equals the mailbox; the test's own reads of Gmail are not throttled. */
async function mirrors(task: string, user: string): Promise<void> {
  stack.gmail.setQuota(0);
  try {
    await assertSinkMirrors(stack, g, task, user);
  } finally {
    stack.gmail.setQuota(QUOTA);
  }
}

/** Waits until the action's unit is running and has committed at least `messages`. */
async function runningUnit(token: string, messages: number): Promise<UnitRecord> {
  const us = await until('the unit committed some batches', () => stack.units(token), (x) => x[0]?.status === 'Processing' && (x[0]?.messages ?? 0) >= messages, 120_000);
  return us[0] as UnitRecord;
}

describe('fetching ahead', () => {
  it('a lease taken over mid-run: the run writes and fetches nothing more; the next holder finishes with each message once', async () => {
    const token = await stack.synchronize('STOLEN');
    const u = await runningUnit(token, 60);
    // Another delivery takes the unit over, as after a stall past the lease.
    await stack.deps.units.ref(token, unitId('STOLEN', STOLEN)).update({ lease: { holder: 'another-delivery', expiresAt: Timestamp.fromMillis(Date.now() + 600_000) } });
    const answered = await until(
      'the run answered its delivery',
      async () => stack.deliveries.filter((d) => d.task.endsWith(u.taskId)),
      (ds) => ds.length > 0,
      120_000,
    );
    assert.equal(answered[0]?.status, 200);
    const gets = stack.gmail.stats().calls['messages.get'] ?? 0;
    const stale = await unitOf(token);
    const sinkThen = (await stack.sink('STOLEN', STOLEN)).size;
    // What the run committed before it lost the lease: its documents, and no more.
    assert.equal(sinkThen, stale.messages);
    assert.equal(stale.counts['added'], stale.messages);
    assert.ok(stale.messages < COUNT, `caught mid-run (${stale.messages} of ${COUNT})`);
    // Nothing of the run goes on after its answer.
    await new Promise((r) => setTimeout(r, 1000));
    assert.equal(stack.gmail.stats().calls['messages.get'] ?? 0, gets, 'no Gmail call after the run answered');
    assert.equal((await stack.sink('STOLEN', STOLEN)).size, sinkThen, 'no sink write after the run answered');
    // The other holder vanishes; reconcile hands the unit to a new delivery, which finishes it.
    await stack.deps.units.ref(token, unitId('STOLEN', STOLEN)).update({ lease: { holder: 'another-delivery', expiresAt: Timestamp.fromMillis(Date.now() - 1000) } });
    await stack.reconcile();
    const a = await stack.waitFor(token, ENDED, 240_000);
    assert.equal(a.status, 'Finished', a.error ?? '');
    const counts = await countsOf(stack, token, 'STOLEN');
    assert.equal(counts['seen'], COUNT);
    assert.equal(counts['added'], COUNT);
    await mirrors('STOLEN', STOLEN);
  });

  it('a Stop mid-run: the committed prefix is consistent, and the next run adds exactly the rest', async () => {
    const token = await stack.synchronize('STOPPED');
    await runningUnit(token, 60);
    await stack.aci({ action: 'QueueInfo', QueueName: 'fetch', QueueAction: 'Stop', Token: token });
    assert.equal((await stack.waitFor(token, ENDED, 60_000)).status, 'Stopped');
    const u = await unitOf(token);
    const inSink = (await stack.sink('STOPPED', STOPPED)).size;
    assert.ok(u.messages > 0 && u.messages < COUNT, `stopped mid-run (${u.messages} of ${COUNT})`);
    assert.equal(inSink, u.messages);
    assert.equal(u.counts['added'], u.messages);
    assert.equal(u.counts['seen'], u.messages);
    const next = await stack.synchronize('STOPPED');
    assert.equal((await stack.waitFor(next, ENDED, 240_000)).status, 'Finished');
    const counts = await countsOf(stack, next, 'STOPPED');
    assert.equal(counts['added'], COUNT - u.messages);
    assert.equal(counts['unchanged'], u.messages);
    await mirrors('STOPPED', STOPPED);
  });
});
