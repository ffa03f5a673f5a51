/**
 * Gmail push end to end on the test stack: the Gmail emulator publishes to the Pub/Sub emulator,
 * whose push subscription reaches `notify` (through the relay that signs its pushes as Google's
 * push service does), and `notify` queues push Synchronizes. Inserts, deletes and label changes
 * reach the sink with no Fetch sent; duplicate, reordered, malformed and unauthenticated
 * notifications change nothing; a burst runs at most two syncs; watches are renewed; and a
 * notification Gmail drops is caught by the scheduled safety net.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { ConnectorConfig } from '../../functions/src/config.js';
import { createWatcher } from '../../functions/src/push/watch-renewal.js';
import { mailboxState, rawMessage, testGmail } from '../support/gmail.js';
import { writeMailbox } from '../support/mail.js';
import { startTestStack, type TestStack } from '../support/stack.js';

const ANN = 'ann@push.example';
const OTHER = 'other@push.example';
type Json = Record<string, unknown>;

let stack: TestStack;
let g: ReturnType<typeof testGmail>;

before(async () => {
  const { dir } = writeMailbox(ANN, 12, { prefix: 'a' });
  writeMailbox(OTHER, 3, { dir, prefix: 'o' });
  stack = await startTestStack({
    mailDir: dir,
    push: true,
    connector: {
      gmail: { quotaUnitsPerUserPerMinute: 1_000_000 },
      tasks: { PUSHY: { users: [ANN], push: true }, PLAIN: { users: [OTHER] } },
    },
  });
  g = testGmail(stack.gmail.url);
});

after(async () => {
  await stack?.close();
});

async function until(what: string, ok: () => Promise<boolean> | boolean, timeoutMs = 60_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await ok())) {
    if (Date.now() > end) throw new Error(`not within ${timeoutMs} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Whether the sink holds exactly the mailbox's messages, with their labels. */
async function sinkMirrors(task: string, user: string): Promise<boolean> {
  const [mailbox, sink] = await Promise.all([mailboxState(g, user), stack.sink(task, user)]);
  if (mailbox.size !== sink.size) return false;
  for (const [id, labels] of mailbox) {
    const d = sink.get(`${task}:${user}:${id}`);
    if (!d || [...(d.labels as string[])].sort().join(',') !== labels.join(',')) return false;
  }
  return true;
}

/** Actions by origin: those clients and the scheduler sent, and push ones. */
async function actionsByOrigin(): Promise<{ sent: number; push: Json[] }> {
  const all = (await stack.db.collection('actions').get()).docs.map((d) => d.data());
  return { sent: all.filter((a) => a.origin === undefined).length, push: all.filter((a) => a.origin === 'push') };
}

/** Waits until Gmail would notify the next change of `user` rather than drop it. */
async function quiet(user: string): Promise<void> {
  await until(`notifications of ${user} allowed again`, () => stack.gmail.notifyQuietFor(user) === 0, 5000);
}

/** Posts a push request through the relay (which adds the push account's token). */
async function push(body: unknown): Promise<{ status: number; json: Json }> {
  const r = await fetch(stack.push?.relay.url ?? '', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: typeof body === 'string' ? body : JSON.stringify(body),
    signal: AbortSignal.timeout(60_000),
  });
  const text = await r.text();
  return { status: r.status, json: text.startsWith('{') ? (JSON.parse(text) as Json) : { text } };
}

function notification(emailAddress: string, historyId: string | number): Json {
  return { message: { data: Buffer.from(JSON.stringify({ emailAddress, historyId })).toString('base64'), messageId: '1' }, subscription: 'projects/x/subscriptions/y' };
}

async function storedHistoryId(task: string, user: string): Promise<string> {
  return (await stack.db.collection('state').doc(task).collection('mailboxes').doc(user).get()).get('historyId') as string;
}

async function getStatusList(extra: Record<string, string> = {}): Promise<Json[]> {
  const r = await stack.aci({ action: 'QueueInfo', QueueName: 'fetch', QueueAction: 'GetStatus', ...extra });
  assert.equal(r.status, 200, r.text);
  const actions = (((r.json as Json).autnresponse as Json).responsedata as Json).actions as Json | undefined;
  return (actions?.action as Json[] | undefined) ?? [];
}

async function watchesShown(): Promise<Json> {
  const r = await stack.aci({ action: 'GetStatus' });
  assert.equal(r.status, 200, r.text);
  return (((r.json as Json).autnresponse as Json).responsedata as Json).watches as Json;
}

describe('Gmail push', () => {
  it("watches an address after its first complete Synchronize in a push task, and GetStatus shows the watch; a task without push is not watched", async () => {
    const first = await stack.synchronize('PUSHY');
    await stack.waitFor(first, ['Finished']);
    await stack.waitFor(await stack.synchronize('PLAIN'), ['Finished']);
    await until('the watch of ann', () => stack.gmail.watchOf(ANN) !== undefined);
    assert.equal(stack.gmail.watchOf(OTHER), undefined);
    assert.equal(stack.gmail.watchOf(ANN)?.topicName, stack.push?.topic);
    assert.deepEqual(stack.gmail.watchOf(ANN)?.labelIds, []);
    await until('the watch recorded', async () => (await watchesShown())?.['@count'] === '1');
    const w = ((await watchesShown()).watch as Json[])[0] as Json;
    assert.equal(w.address, ANN);
    assert.match(String(w.expiration), /^\d{4}-[A-Z][a-z]{2}-\d{2} \d{2}:\d{2}:\d{2}$/);
    assert.match(String(w.renewed), /^\d{4}-[A-Z][a-z]{2}-\d{2} /);
    assert.equal(w.error, undefined);
    assert.ok(await sinkMirrors('PUSHY', ANN));
  });

  it('inserts, deletes and label changes reach the sink through push alone, with no Fetch sent; GetStatus lists push syncs only with Origin', async () => {
    const before = await actionsByOrigin();
    const list = (await g.users.messages.list({ userId: ANN, maxResults: 500 })).data.messages ?? [];
    const [d1, m1, m2] = list.map((m) => m.id ?? '');
    const changes: [string, () => Promise<unknown>][] = [
      ['insert', () => g.users.messages.insert({ userId: ANN, requestBody: { raw: rawMessage(ANN, '<p1@x>', 'pushed one'), labelIds: ['INBOX'] } })],
      ['delete', () => g.users.messages.delete({ userId: ANN, id: d1 ?? '' })],
      ['label added', () => g.users.messages.modify({ userId: ANN, id: m1 ?? '', requestBody: { addLabelIds: ['STARRED'] } })],
      ['label removed', () => g.users.messages.modify({ userId: ANN, id: m2 ?? '', requestBody: { removeLabelIds: ['INBOX'] } })],
      ['trash', () => g.users.messages.trash({ userId: ANN, id: m2 ?? '' })],
    ];
    for (const [what, change] of changes) {
      await quiet(ANN);
      const published = stack.gmail.notifications(ANN).published;
      await change();
      await until(`${what}: notified`, () => stack.gmail.notifications(ANN).published === published + 1);
      await until(`${what}: the sink follows`, () => sinkMirrors('PUSHY', ANN));
    }
    const after = await actionsByOrigin();
    assert.equal(after.sent, before.sent, 'no Fetch was sent');
    assert.ok(after.push.length >= changes.length, `push syncs: ${after.push.length}`);
    await until('every push sync ended', async () => (await actionsByOrigin()).push.every((a) => a.status === 'Finished'));
    for (const a of (await actionsByOrigin()).push) {
      assert.deepEqual(a.tasks, ['PUSHY']);
      assert.equal(a.scheduleKey, null);
    }
    const pushTokens = new Set(after.push.map((a) => a.token as string));
    const byDefault = await getStatusList();
    assert.equal(byDefault.filter((a) => pushTokens.has(a.token as string)).length, 0);
    assert.equal(byDefault.length, after.sent);
    const pushed = await getStatusList({ Origin: 'push' });
    assert.deepEqual(new Set(pushed.map((a) => a.token)), pushTokens);
    assert.ok(pushed.every((a) => a.origin === 'push'));
    assert.equal((await getStatusList({ Origin: 'all' })).length, after.sent + after.push.length);
    const bad = await stack.aci({ action: 'QueueInfo', QueueName: 'fetch', QueueAction: 'GetStatus', Origin: 'nowhere' });
    assert.equal(bad.status, 400, bad.text);
    assert.match(bad.text, /Origin/);
  });

  it('duplicate and out-of-order notifications change nothing', async () => {
    const stored = await storedHistoryId('PUSHY', ANN);
    const before = await actionsByOrigin();
    const sink = await stack.sink('PUSHY', ANN);
    for (const h of [stored, String(BigInt(stored) - 1n), '1', stored]) {
      const r = await push(notification(ANN, h));
      assert.equal(r.status, 200, JSON.stringify(r.json));
      assert.match(String(((r.json.tasks as Json[])[0] as Json).skipped), /not newer/);
    }
    const after = await actionsByOrigin();
    assert.equal(after.push.length, before.push.length);
    assert.deepEqual(await stack.sink('PUSHY', ANN), sink);
  });

  it('malformed and unauthenticated pushes get 4xx and change nothing; an address no push task includes is acknowledged and ignored', async () => {
    const before = (await stack.db.collection('actions').count().get()).data().count;
    const next = String(BigInt(await storedHistoryId('PUSHY', ANN)) + 5n);
    for (const [body, why] of [
      ['{not json', /JSON object/],
      [{ message: {} }, /message\.data/],
      [{ message: { data: '***' } }, /not base64/],
      [{ message: { data: Buffer.from('[1]').toString('base64') } }, /JSON object/],
      [notification('not an address', next), /emailAddress/],
      [notification(ANN, 'x12'), /historyId/],
      [notification(ANN, -3), /historyId/],
    ] as const) {
      const r = await push(body);
      assert.equal(r.status, 400, JSON.stringify(r.json));
      // A body that is not JSON is refused by the Functions Framework itself, with a plain 400.
      if (typeof body !== 'string') assert.match(String(r.json.error), why);
    }
    const notifyUrl = stack.push?.notifyUrl ?? '';
    const unsigned = await fetch(notifyUrl, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(notification(ANN, next)) });
    assert.equal(unsigned.status, 401);
    const wrongAccount = await stack.tasks.mintOidcToken('someone-else@x.iam.gserviceaccount.com', notifyUrl);
    const r2 = await fetch(notifyUrl, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${wrongAccount}` }, body: JSON.stringify(notification(ANN, next)) });
    assert.equal(r2.status, 401);
    const wrongAudience = await stack.tasks.mintOidcToken('gmail-push@test-stacks.iam.gserviceaccount.com', stack.workerUrl);
    const r3 = await fetch(notifyUrl, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${wrongAudience}` }, body: JSON.stringify(notification(ANN, next)) });
    assert.equal(r3.status, 401);
    const get = await fetch(notifyUrl);
    assert.equal(get.status, 405);
    const stranger = await push(notification(OTHER, next));
    assert.equal(stranger.status, 200);
    assert.deepEqual(stranger.json.tasks, []);
    assert.equal((await stack.db.collection('actions').count().get()).data().count, before);
  });

  it('a burst of notifications for one change runs at most two syncs', async () => {
    await quiet(ANN);
    const before = await actionsByOrigin();
    // The burst arrives directly; the change's own notification is dropped so that only the burst counts.
    stack.gmail.dropNotifications(ANN, 1);
    await g.users.messages.insert({ userId: ANN, requestBody: { raw: rawMessage(ANN, '<burst@x>', 'burst'), labelIds: ['INBOX'] } });
    const h = (await g.users.getProfile({ userId: ANN })).data.historyId ?? '';
    const answers = await Promise.all(Array.from({ length: 200 }, () => push(notification(ANN, h))));
    assert.ok(answers.every((a) => a.status === 200));
    await until('the sink follows the burst', () => sinkMirrors('PUSHY', ANN));
    await until('the burst syncs ended', async () => (await actionsByOrigin()).push.every((a) => a.status === 'Finished'));
    const runs = (await actionsByOrigin()).push.length - before.push.length;
    assert.ok(runs >= 1 && runs <= 2, `${runs} syncs`);
    const tokens = new Set(answers.flatMap((a) => (a.json.tasks as Json[]).map((t) => t.token)).filter((t) => t !== undefined));
    assert.ok(tokens.size >= 1 && tokens.size <= 2, `${tokens.size} tokens`);
  });

  it('renews watches: a watch that expired is renewed by the renewal call, and push works again', async () => {
    stack.gmail.setWatchExpiry(800);
    assert.deepEqual(await stack.renewWatches(), { renewed: 1, stopped: 0, failed: 0 });
    const renewedAt = ((await watchesShown()).watch as Json[])[0]?.renewed;
    await until('the watch expired', () => stack.gmail.watchOf(ANN) === undefined, 10_000);
    const stats = stack.gmail.notifications(ANN);
    await g.users.messages.insert({ userId: ANN, requestBody: { raw: rawMessage(ANN, '<lapsed@x>', 'while lapsed'), labelIds: ['INBOX'] } });
    assert.deepEqual(stack.gmail.notifications(ANN), stats, 'an expired watch notifies nothing');
    stack.gmail.setWatchExpiry(7 * 86_400_000);
    assert.deepEqual(await stack.renewWatches(), { renewed: 1, stopped: 0, failed: 0 });
    assert.ok(stack.gmail.watchOf(ANN));
    const w = ((await watchesShown()).watch as Json[])[0] as Json;
    assert.ok(String(w.renewed) >= String(renewedAt));
    await quiet(ANN);
    await g.users.messages.insert({ userId: ANN, requestBody: { raw: rawMessage(ANN, '<renewed@x>', 'after renewal'), labelIds: ['INBOX'] } });
    await until('the sink follows after renewal', () => sinkMirrors('PUSHY', ANN));
  });

  it('a notification Gmail dropped is caught by the safety net (the scheduled Synchronize)', async () => {
    await until('push syncs ended', async () => (await actionsByOrigin()).push.every((a) => a.status === 'Finished'));
    await quiet(ANN);
    const before = await actionsByOrigin();
    const stats = stack.gmail.notifications(ANN);
    stack.gmail.dropNotifications(ANN, 1);
    await g.users.messages.insert({ userId: ANN, requestBody: { raw: rawMessage(ANN, '<dropped@x>', 'dropped'), labelIds: ['INBOX'] } });
    assert.deepEqual(stack.gmail.notifications(ANN), { ...stats, dropped: stats.dropped + 1 });
    assert.equal(await sinkMirrors('PUSHY', ANN), false);
    assert.equal((await actionsByOrigin()).push.length, before.push.length, 'nothing was pushed');
    const net = await stack.synchronize('PUSHY', { Schedule: 'true' });
    const a = await stack.waitFor(net, ['Finished']);
    assert.equal(a.origin, undefined);
    assert.ok(await sinkMirrors('PUSHY', ANN));
  });

  it('stops the watch of an address no push task includes any more', async () => {
    // The renewal pass of functions whose configuration no longer has the push task.
    const connector = { ...stack.deps.config.connector, tasks: { PLAIN: stack.deps.config.connector.tasks['PLAIN'] } } as ConnectorConfig;
    const watcher = createWatcher({ ...stack.deps, config: { ...stack.deps.config, connector } });
    assert.ok(stack.gmail.watchOf(ANN));
    assert.deepEqual(await watcher.renewAll(), { renewed: 0, stopped: 1, failed: 0 });
    assert.equal(stack.gmail.watchOf(ANN), undefined);
    assert.equal(stack.gmail.stats().calls['stop'], 1);
    assert.equal((await watchesShown())['@count'], '0');
  });

  it('a users.watch that fails is recorded on the watch and shown by GetStatus; the Synchronize still finishes', async () => {
    // Gmail refuses to watch a topic that does not exist.
    const r = await fetch(`${stack.push?.pubsub.url}v1/${stack.push?.topic}`, { method: 'DELETE', signal: AbortSignal.timeout(10_000) });
    assert.equal(r.status, 200, await r.text());
    const token = await stack.synchronize('PUSHY');
    assert.equal((await stack.waitFor(token, ['Finished', 'Error'])).status, 'Finished');
    await until('the failure recorded', async () => (await watchesShown())?.['@count'] === '1');
    const w = ((await watchesShown()).watch as Json[])[0] as Json;
    assert.equal(w.address, ANN);
    assert.match(String(w.error), /users\.watch of ann@push\.example.*(not found|404)/i);
    assert.match(String(w.error_time), /^\d{4}-[A-Z][a-z]{2}-\d{2} /);
    assert.equal(w.expiration, undefined);
    assert.equal(stack.gmail.watchOf(ANN), undefined);
  });
});
