// The Gmail emulator's push notifications: users.watch and users.stop through googleapis, and
// what it publishes to the official Pub/Sub emulator (read back with a pull subscription).

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { auth, gmail as gmailApi, type gmail_v1 } from 'googleapis/build/src/apis/gmail/index.js';
import { startGmailEmulator, type GmailEmulator } from './gmail/index.js';
import { startPubsubEmulator, type PubsubEmulator } from './pubsub.js';

const ANN = 'ann@watch.example';
const BOB = 'bob@watch.example';
const PROJECT = 'demo-watch';
const TOPIC = `projects/${PROJECT}/topics/gmail`;

let pubsub: PubsubEmulator;
let emulator: GmailEmulator;
let g: gmail_v1.Gmail;

async function pubsubCall(method: string, path: string, body?: unknown): Promise<Record<string, unknown>> {
  const r = await fetch(`${pubsub.url}v1/${path}`, {
    method,
    headers: { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(10_000),
  });
  const text = await r.text();
  assert.ok(r.ok, `${method} ${path}: ${r.status} ${text}`);
  return text ? (JSON.parse(text) as Record<string, unknown>) : {};
}

/** Every message published since the last pull: Gmail's notification, decoded. */
async function pulled(sub: string, atLeast: number): Promise<{ emailAddress: string; historyId: number }[]> {
  const out: { emailAddress: string; historyId: number }[] = [];
  const until = Date.now() + 20_000;
  while (out.length < atLeast && Date.now() < until) {
    const r = await pubsubCall('POST', `projects/${PROJECT}/subscriptions/${sub}:pull`, { maxMessages: 100, returnImmediately: true });
    const got = (r.receivedMessages as { ackId: string; message: { data: string } }[] | undefined) ?? [];
    for (const m of got) out.push(JSON.parse(Buffer.from(m.message.data, 'base64').toString('utf8')) as { emailAddress: string; historyId: number });
    if (got.length > 0) await pubsubCall('POST', `projects/${PROJECT}/subscriptions/${sub}:acknowledge`, { ackIds: got.map((m) => m.ackId) });
    else await new Promise((r2) => setTimeout(r2, 100));
  }
  return out;
}

let subs = 0;
async function newSubscription(): Promise<string> {
  const name = `s${++subs}-${Date.now()}`;
  await pubsubCall('PUT', `projects/${PROJECT}/subscriptions/${name}`, { topic: TOPIC, ackDeadlineSeconds: 10 });
  return name;
}

async function quiet(user: string): Promise<void> {
  while (emulator.notifyQuietFor(user) > 0) await new Promise((r) => setTimeout(r, emulator.notifyQuietFor(user) + 5));
}

function raw(subject: string): string {
  return Buffer.from(`From: x@example.org\r\nTo: ${ANN}\r\nSubject: ${subject}\r\n\r\nbody\r\n`).toString('base64url');
}

before(async () => {
  pubsub = await startPubsubEmulator();
  await pubsub.createTopic(TOPIC);
  emulator = await startGmailEmulator({ users: [ANN, BOB], pubsubUrl: pubsub.url, quotaUnitsPerMinute: 1000 });
  const c = new auth.OAuth2();
  c.setCredentials({ access_token: 'owner' });
  g = gmailApi({ version: 'v1', rootUrl: emulator.url, auth: c, retry: false });
});

after(async () => {
  await emulator?.close();
  await pubsub?.close();
});

describe('users.watch and users.stop', () => {
  test('watch answers the history id and an expiration 7 days on, costs 100 units; stop answers 204', async () => {
    const before = Date.now();
    const r = await g.users.watch({ userId: ANN, requestBody: { topicName: TOPIC } });
    assert.equal(r.status, 200);
    assert.equal(r.data.historyId, (await g.users.getProfile({ userId: ANN })).data.historyId);
    const exp = Number(r.data.expiration);
    assert.ok(exp >= before + 7 * 86_400_000 && exp <= Date.now() + 7 * 86_400_000, String(r.data.expiration));
    assert.equal(emulator.watchOf(ANN)?.topicName, TOPIC);
    const stop = await g.users.stop({ userId: ANN });
    assert.equal(stop.status, 204);
    assert.equal(emulator.watchOf(ANN), undefined);
    assert.equal(emulator.stats().calls['watch'], 1);
  });

  test('the quota charges 100 units a watch', async () => {
    const small = await startGmailEmulator({ users: [ANN], pubsubUrl: pubsub.url, quotaUnitsPerMinute: 150, quotaBurstSeconds: 60 });
    try {
      const c = new auth.OAuth2();
      c.setCredentials({ access_token: 'owner' });
      const s = gmailApi({ version: 'v1', rootUrl: small.url, auth: c, retry: false });
      await s.users.watch({ userId: ANN, requestBody: { topicName: TOPIC } });
      await assert.rejects(s.users.watch({ userId: ANN, requestBody: { topicName: TOPIC } }), (e: { status?: number }) => e.status === 429);
    } finally {
      await small.close();
    }
  });

  test('a bad topic name is 400, a topic that does not exist 404, bad labels 400; nothing is watched', async () => {
    await assert.rejects(g.users.watch({ userId: BOB, requestBody: { topicName: 'gmail' } }), (e: { status?: number; message?: string }) => e.status === 400 && /topicName/.test(e.message ?? ''));
    await assert.rejects(g.users.watch({ userId: BOB, requestBody: {} }), (e: { status?: number }) => e.status === 400);
    await assert.rejects(
      g.users.watch({ userId: BOB, requestBody: { topicName: `projects/${PROJECT}/topics/missing` } }),
      (e: { status?: number }) => e.status === 404,
    );
    await assert.rejects(
      g.users.watch({ userId: BOB, requestBody: { topicName: TOPIC, labelFilterBehavior: 'sometimes' } }),
      (e: { status?: number }) => e.status === 400,
    );
    assert.equal(emulator.watchOf(BOB), undefined);
  });
});

describe('notifications', () => {
  test('insert, label change, trash and delete of a watched mailbox each publish {emailAddress, historyId} as base64 data; an unwatched one publishes nothing', async () => {
    const sub = await newSubscription();
    await g.users.watch({ userId: ANN, requestBody: { topicName: TOPIC } });
    const seen: number[] = [];
    const steps: (() => Promise<unknown>)[] = [];
    let id = '';
    steps.push(async () => (id = (await g.users.messages.insert({ userId: ANN, requestBody: { raw: raw('one'), labelIds: ['INBOX'] } })).data.id ?? ''));
    steps.push(() => g.users.messages.modify({ userId: ANN, id, requestBody: { addLabelIds: ['STARRED'] } }));
    steps.push(() => g.users.messages.trash({ userId: ANN, id }));
    steps.push(() => g.users.messages.delete({ userId: ANN, id }));
    for (const step of steps) {
      await quiet(ANN);
      await step();
      const h = Number((await g.users.getProfile({ userId: ANN })).data.historyId);
      const [n, ...more] = await pulled(sub, 1);
      assert.deepEqual(more, []);
      assert.deepEqual(n, { emailAddress: ANN, historyId: h });
      seen.push(h);
    }
    assert.deepEqual([...seen].sort((a, b) => a - b), seen);
    await g.users.messages.insert({ userId: BOB, requestBody: { raw: raw('unwatched'), labelIds: ['INBOX'] } });
    assert.deepEqual(emulator.notifications(BOB), { published: 0, dropped: 0, failed: 0 });
    await g.users.stop({ userId: ANN });
  });

  test('at most one notification per second per user: the excess is dropped, not delayed', async () => {
    const sub = await newSubscription();
    await g.users.watch({ userId: ANN, requestBody: { topicName: TOPIC } });
    await quiet(ANN);
    const before = emulator.notifications(ANN);
    const t0 = Date.now();
    for (let i = 0; i < 5; i++) await g.users.messages.insert({ userId: ANN, requestBody: { raw: raw(`burst ${i}`), labelIds: ['INBOX'] } });
    const elapsed = Date.now() - t0;
    const after = emulator.notifications(ANN);
    assert.equal(after.published + after.dropped - before.published - before.dropped, 5);
    // One a second at most, however slow the machine: within `elapsed` ms, at most floor(elapsed / 1000) + 1.
    assert.ok(after.published - before.published <= Math.floor(elapsed / 1000) + 1, `${after.published - before.published} in ${elapsed} ms`);
    if (elapsed < 1000) assert.equal(after.published - before.published, 1);
    const got = await pulled(sub, after.published - before.published);
    assert.equal(got.length, after.published - before.published);
    await g.users.stop({ userId: ANN });
  });

  test('a label filter (include) notifies only changes that touch those labels; an expired watch notifies nothing', async () => {
    await g.users.watch({ userId: ANN, requestBody: { topicName: TOPIC, labelIds: ['STARRED'], labelFilterBehavior: 'include' } });
    await quiet(ANN);
    const before = emulator.notifications(ANN);
    const id = (await g.users.messages.insert({ userId: ANN, requestBody: { raw: raw('not starred'), labelIds: ['INBOX'] } })).data.id ?? '';
    assert.deepEqual(emulator.notifications(ANN), before);
    await g.users.messages.modify({ userId: ANN, id, requestBody: { addLabelIds: ['STARRED'] } });
    assert.equal(emulator.notifications(ANN).published + emulator.notifications(ANN).dropped, before.published + before.dropped + 1);
    emulator.setWatchExpiry(1);
    await g.users.watch({ userId: ANN, requestBody: { topicName: TOPIC } });
    while (emulator.watchOf(ANN)) await new Promise((r) => setTimeout(r, 5));
    const lapsed = emulator.notifications(ANN);
    await g.users.messages.insert({ userId: ANN, requestBody: { raw: raw('lapsed'), labelIds: ['INBOX'] } });
    assert.deepEqual(emulator.notifications(ANN), lapsed);
    emulator.setWatchExpiry(7 * 86_400_000);
  });
});
