/**
 * Synchronize at scale, drilled against the real servers: throttling and
 * faults, changes between syncs, lost history, many mailboxes (users and a
 * Workspace domain), hand-over to continuation tasks, no overlap, scheduled
 * runs. Each drill checks the exact sink contents against the mailbox.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { gmail_v1 } from 'googleapis/build/src/apis/gmail/index.js';
import { assertSinkMirrors as mirrors, countsOf as counts, until } from '../support/checks.js';
import { rawMessage, testGmail } from '../support/gmail.js';
import { writeMailbox } from '../support/mail.js';
import { startTestStack, type TestStack } from '../support/stack.js';

const FAULTY = 'faulty@example.com';
const CHANGES = 'changes@example.com';
const LOST = 'lost@example.com';
const BIG = 'big@example.com';
const TEAM = ['t1@example.com', 't2@example.com', 't3@example.com', 't4@example.com'];
const CORP = ['ann@corp.example.com', 'bob@corp.example.com', 'cy@corp.example.com'];

let stack: TestStack;
let g: gmail_v1.Gmail;

type Json = Record<string, unknown>;

before(async () => {
  const { dir } = writeMailbox(FAULTY, 150, { prefix: 'f' });
  writeMailbox(CHANGES, 30, { dir, prefix: 'c' });
  writeMailbox(LOST, 40, { dir, prefix: 'l' });
  writeMailbox(BIG, 1200, { dir, prefix: 'b' });
  TEAM.forEach((u, i) => writeMailbox(u, 60 + i * 10, { dir, prefix: `t${i}` }));
  CORP.forEach((u, i) => writeMailbox(u, 20 + i, { dir, prefix: `c${i}` }));
  stack = await startTestStack({
    mailDir: dir,
    // Faults ask for a 50 ms Retry-After rather than Gmail's whole seconds: the drill checks that
    // each is honoured and retried, not how long a second is.
    gmail: { historyRetention: 6, faultRetryAfterS: 0.05 },
    // A three-second budget: every page of the long listing, and the fault drill's waits for
    // Retry-After, hand over to continuation tasks.
    env: { WORKER_TIME_BUDGET_S: '3', WORKER_LEASE_S: '4' },
    connector: {
      gmail: { quotaUnitsPerUserPerMinute: 1_000_000 },
      tasks: {
        FAULTY: { users: [FAULTY] },
        CHANGES: { users: [CHANGES] },
        LOST: { users: [LOST] },
        BIG: { users: [BIG] },
        TEAM: { users: TEAM },
        CORP: { domain: 'corp.example.com', directoryAdmin: 'admin@corp.example.com' },
      },
    },
  });
  g = testGmail(stack.gmail.url);
});

after(async () => {
  await stack?.close();
});

function assertSinkMirrors(task: string, user: string): Promise<void> {
  return mirrors(stack, g, task, user);
}

async function syncAndWait(task: string, extra: Record<string, string> = {}, timeoutMs = 120_000): Promise<string> {
  const token = await stack.synchronize(task, extra);
  const a = await stack.waitFor(token, ['Finished', 'Error', 'Stopped', 'Cancelled'], timeoutMs);
  assert.equal(a.status, 'Finished', a.error ?? '');
  return token;
}

function countsOf(token: string, task: string): Promise<Record<string, number>> {
  return counts(stack, token, task);
}

describe('drills', () => {
  it('20% of Gmail calls fail (429, 403, 500, 503): nothing lost, retries shown', async () => {
    stack.gmail.setFaultRate(0.2);
    let token: string;
    try {
      // Each rate-limit refusal pauses the address for its Retry-After.
      token = await syncAndWait('FAULTY', {}, 240_000);
    } finally {
      stack.gmail.setFaultRate(0);
    }
    await assertSinkMirrors('FAULTY', FAULTY);
    const c = await countsOf(token, 'FAULTY');
    assert.equal(c.added, 150);
    assert.equal(c.errors, 0);
    assert.ok((c.retries ?? 0) > 10, `retries ${c.retries}`);
    assert.ok(stack.gmail.stats().faults > 10);
  });

  it('inserts, deletes and label changes between two syncs arrive through history', async () => {
    await syncAndWait('CHANGES');
    await assertSinkMirrors('CHANGES', CHANGES);
    const list = (await g.users.messages.list({ userId: CHANGES, maxResults: 500 })).data.messages ?? [];
    const [d1, m1, m2] = list.map((m) => m.id ?? '');
    await g.users.messages.insert({ userId: CHANGES, requestBody: { raw: rawMessage(CHANGES, '<new1@x>', 'new one'), labelIds: ['INBOX'] } });
    await g.users.messages.delete({ userId: CHANGES, id: d1 ?? '' });
    await g.users.messages.modify({ userId: CHANGES, id: m1 ?? '', requestBody: { addLabelIds: ['STARRED'] } });
    await g.users.messages.modify({ userId: CHANGES, id: m2 ?? '', requestBody: { removeLabelIds: ['INBOX'] } });
    const token = await syncAndWait('CHANGES');
    await assertSinkMirrors('CHANGES', CHANGES);
    const c = await countsOf(token, 'CHANGES');
    assert.deepEqual([c.added, c.updated, c.deleted, c.errors], [1, 2, 1, 0]);
    const sink = await stack.sink('CHANGES', CHANGES);
    assert.ok([...sink.values()].some((d) => d.messageIdHeader === '<new1@x>'));
  });

  it('history older than Gmail keeps falls back to a full sync that also deletes what is gone', async () => {
    await syncAndWait('LOST');
    const list = (await g.users.messages.list({ userId: LOST, maxResults: 500 })).data.messages ?? [];
    // More changes than the mailbox keeps history for (6): the stored history id is lost.
    for (const m of list.slice(0, 5)) await g.users.messages.delete({ userId: LOST, id: m.id ?? '' });
    for (const m of list.slice(5, 8)) await g.users.messages.modify({ userId: LOST, id: m.id ?? '', requestBody: { addLabelIds: ['STARRED'] } });
    await g.users.messages.insert({ userId: LOST, requestBody: { raw: rawMessage(LOST, '<late@x>', 'late'), labelIds: ['INBOX'] } });
    const token = await syncAndWait('LOST');
    await assertSinkMirrors('LOST', LOST);
    const c = await countsOf(token, 'LOST');
    assert.deepEqual([c.added, c.updated, c.deleted, c.unchanged], [1, 3, 5, 40 - 5 - 3]);
  });

  it('a long listing hands over to continuation tasks and stays one action', async () => {
    // Latency makes each page of 500 take longer than the three-second budget.
    stack.gmail.setLatency(150);
    // Counted for this mailbox only: other tests' mailboxes share the emulator.
    const listsOf = () => stack.gmail.stats().callsByUser[BIG]?.['messages.list'] ?? 0;
    const lists = listsOf();
    let token: string;
    try {
      token = await syncAndWait('BIG');
    } finally {
      stack.gmail.setLatency(0);
    }
    // Each hand-over resumes at its checkpoint: no page is listed twice.
    assert.equal(listsOf() - lists, 3);
    await assertSinkMirrors('BIG', BIG);
    const [unit] = await stack.units(token);
    assert.ok((unit?.generation ?? 0) >= 2, `generation ${unit?.generation}`);
    // No message counted twice either.
    assert.deepEqual(unit?.counts, { seen: 1200, added: 1200, updated: 0, unchanged: 0, deleted: 0, errors: 0 });
    assert.equal(unit?.pages, 3);
  });

  it('many mailboxes fan out to one unit each; GetStatus sums them', async () => {
    const token = await syncAndWait('TEAM');
    for (const u of TEAM) await assertSinkMirrors('TEAM', u);
    const units = await stack.units(token);
    assert.equal(units.length, TEAM.length);
    const c = await countsOf(token, 'TEAM');
    assert.equal(c.added, 60 + 70 + 80 + 90);
  });

  it('a domain task lists its users through the Directory API', async () => {
    const token = await syncAndWait('CORP');
    const units = await stack.units(token);
    assert.deepEqual(units.map((u) => u.user).sort(), [...CORP].sort());
    for (const u of CORP) await assertSinkMirrors('CORP', u);
  });

  it('Cancel of a queued fanned-out action and Stop of a running one reach every mailbox', async () => {
    await stack.aci({ action: 'QueueInfo', QueueName: 'fetch', QueueAction: 'Pause' });
    const queued = await stack.synchronize('TEAM');
    const c = await stack.aci({ action: 'QueueInfo', QueueName: 'fetch', QueueAction: 'Cancel', Token: queued });
    assert.equal(c.status, 200);
    await stack.aci({ action: 'QueueInfo', QueueName: 'fetch', QueueAction: 'Resume' });

    for (const u of TEAM) {
      const ids = (await g.users.messages.list({ userId: u, maxResults: 5 })).data.messages ?? [];
      for (const m of ids) await g.users.messages.modify({ userId: u, id: m.id ?? '', requestBody: { addLabelIds: ['STARRED'] } });
    }
    // Each mailbox lists its changes, then the emulator holds its reads: every run is still
    // running, or not yet started, when the Stop comes.
    const releases = TEAM.map((u) => stack.gmail.holdCalls(u, 'messages.get', 0));
    let token: string;
    try {
      token = await stack.synchronize('TEAM');
      for (;;) {
        const units = await stack.units(token);
        if (units.some((u) => u.status === 'Processing')) break;
        await new Promise((r) => setTimeout(r, 10));
      }
      const asked = Date.now();
      const s = await stack.aci({ action: 'QueueInfo', QueueName: 'fetch', QueueAction: 'Stop', Token: token });
      assert.equal(s.status, 200, s.text);
      const a = await stack.waitFor(token, ['Stopped', 'Finished', 'Error'], 10_000);
      assert.equal(a.status, 'Stopped');
      assert.ok(Date.now() - asked < 10_000, `stop took ${Date.now() - asked} ms`);
    } finally {
      for (const release of releases) release();
    }
    const units = await stack.units(token);
    assert.equal(units.length, TEAM.length);
    for (const u of units) assert.ok(['Stopped', 'Cancelled'].includes(u.status), u.status);
    const cancelled = await stack.deps.store.get(queued);
    assert.equal(cancelled?.status, 'Cancelled');
    for (const u of await stack.units(queued)) assert.equal(u.attempts, 0);
    // A Stopped run never advances the history: the next one brings every mailbox up to date.
    await syncAndWait('TEAM');
    for (const u of TEAM) await assertSinkMirrors('TEAM', u);
  });

  it('no two actions work on one mailbox; Schedule=true coalesces onto the waiting one', async () => {
    stack.gmail.setLatency(40);
    try {
      const first = await stack.synchronize('FAULTY', { Schedule: 'true' });
      const again = await stack.aci({ action: 'Fetch', FetchAction: 'Synchronize', TaskSections: 'faulty', Schedule: 'true' });
      const rd = ((again.json as Json).autnresponse as Json).responsedata as Json;
      assert.deepEqual(rd, { token: first, coalesced: 'true' });
      for (;;) {
        const [u] = await stack.units(first);
        if (u?.status === 'Processing') break;
        await new Promise((r) => setTimeout(r, 10));
      }
      // The first run is held slow until the second's unit has met it on the mailbox and been
      // put back: the order is decided by conditions, not by how fast this machine is.
      stack.gmail.setLatency(400);
      const second = await stack.synchronize('FAULTY');
      await until('the second action met the first on the mailbox', () => stack.units(second), (us) => (us[0]?.generation ?? 0) >= 1, 120_000);
      stack.gmail.setLatency(0);
      const a1 = await stack.waitFor(first, ['Finished', 'Error'], 180_000);
      assert.equal(a1.status, 'Finished');
      const a2 = await stack.waitFor(second, ['Finished', 'Error'], 180_000);
      assert.equal(a2.status, 'Finished');
      const [u1] = await stack.units(first);
      const [u2] = await stack.units(second);
      assert.ok(u1?.endedAt && u2?.startedAt && u2.startedAt.toMillis() >= u1.endedAt.toMillis(), 'the second started after the first ended');
      assert.ok((u2?.generation ?? 0) >= 1, 'the second was re-enqueued while the first ran');
    } finally {
      stack.gmail.setLatency(0);
    }
    await assertSinkMirrors('FAULTY', FAULTY);
  });
});
