/**
 * FetchAction=Synchronize with Identifiers against the real stack: the named messages are read
 * again from Gmail and their sink documents rewritten (or removed when the message is gone), each
 * reported as the write actions report theirs; held documents are left as a Synchronize leaves
 * them; the mailbox's regular sync state is not touched; a bad identifier queues nothing.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { encodeIdentifier } from '../../functions/src/aci/identifiers.js';
import { assertSinkMirrors, countsOf } from '../support/checks.js';
import { testGmail } from '../support/gmail.js';
import { writeMailbox } from '../support/mail.js';
import { startTestStack, type TestStack } from '../support/stack.js';

const ANN = 'ann@syncids.example';
const HELD = 'held@syncids.example';
const ENDED = ['Finished', 'Error', 'Cancelled', 'Stopped'];
type Json = Record<string, unknown>;

let stack: TestStack;

before(async () => {
  const { dir } = writeMailbox(ANN, 12, { prefix: 'a' });
  writeMailbox(HELD, 6, { dir, prefix: 'h' });
  stack = await startTestStack({ mailDir: dir, connector: { tasks: { ANN: { users: [ANN] }, HELD: { users: [HELD] } } } });
});

after(async () => {
  await stack?.close();
});

const list = (v: unknown): unknown[] => (v === undefined ? [] : Array.isArray(v) ? v : [v]);

async function statusOf(token: string): Promise<Json> {
  const r = await stack.aci({ action: 'QueueInfo', QueueName: 'fetch', QueueAction: 'GetStatus', Token: token });
  assert.equal(r.status, 200, r.text);
  return ((((r.json as Json).autnresponse as Json).responsedata as Json).actions as { action: Json[] }).action[0] as Json;
}

async function run(params: Record<string, string>, want: string): Promise<string> {
  const r = await stack.aci({ action: 'Fetch', FetchAction: 'Synchronize', ...params });
  assert.equal(r.status, 200, r.text);
  const token = (((r.json as Json).autnresponse as Json).responsedata as Json).token as string;
  const a = await stack.waitFor(token, ENDED, 120_000);
  assert.equal(a.status, want, a.error ?? '');
  return token;
}

async function syncTask(task: string): Promise<string> {
  const t = await stack.synchronize(task);
  const a = await stack.waitFor(t, ENDED, 120_000);
  assert.equal(a.status, 'Finished', a.error ?? '');
  return t;
}

async function stateOf(task: string, user: string): Promise<Json | undefined> {
  return (await stack.db.doc(`state/${task}/mailboxes/${user}`).get()).data();
}

async function docOf(task: string, user: string, messageId: string): Promise<Json | undefined> {
  return [...(await stack.sink(task, user)).values()].find((d) => d.messageId === messageId);
}

async function actionCount(): Promise<number> {
  return (await stack.db.collection('actions').count().get()).data().count;
}

const idOf = (task: string, address: string) => (messageId: string) => encodeIdentifier({ task, address, messageId });

describe('Synchronize with Identifiers', () => {
  it('rewrites the named documents, removes the one whose message is gone, reports each, and leaves the sync state alone', async () => {
    const g = testGmail(stack.gmail.url);
    await syncTask('ANN');
    const ids = ((await g.users.messages.list({ userId: ANN })).data.messages ?? []).map((m) => m.id as string);
    const [changed, gone, untouched] = ids as [string, string, string];
    await g.users.messages.modify({ userId: ANN, id: changed, requestBody: { addLabelIds: ['STARRED'] } });
    await g.users.messages.delete({ userId: ANN, id: gone });
    const untouchedBefore = await docOf('ANN', ANN, untouched);
    const stateBefore = await stateOf('ANN', ANN);
    assert.ok(stateBefore?.historyId, 'the first Synchronize recorded a history baseline');

    const named = [changed, gone, untouched].map(idOf('ANN', ANN));
    const token = await run({ Identifiers: named.join(',') }, 'Finished');
    const view = await statusOf(token);
    assert.equal(view.fetchaction, 'SYNCHRONIZE');
    assert.deepEqual(list((view.tasks as Json).success).sort(), [...named].sort());
    assert.deepEqual(list((view.tasks as Json).failed), []);
    assert.deepEqual(await countsOf(stack, token, 'ANN'), { retries: 0, attempts: 2, seen: 3, added: 0, updated: 1, unchanged: 1, deleted: 1, errors: 0 });

    const gmailLabels = [...((await g.users.messages.get({ userId: ANN, id: changed, format: 'minimal' })).data.labelIds ?? [])].sort();
    assert.ok(gmailLabels.includes('STARRED'));
    assert.deepEqual([...((await docOf('ANN', ANN, changed))?.labels as string[])].sort(), gmailLabels, 'the changed document has its new labels');
    assert.equal(await docOf('ANN', ANN, gone), undefined, 'the document of the deleted message is removed');
    assert.deepEqual(await docOf('ANN', ANN, untouched), untouchedBefore, 'the untouched document is as it was');
    await assertSinkMirrors(stack, g, 'ANN', ANN);
    assert.deepEqual(await stateOf('ANN', ANN), stateBefore, 'the mailbox sync state is not changed');

    // The next regular run goes on incrementally from the baseline the named one left alone.
    await g.users.messages.modify({ userId: ANN, id: untouched, requestBody: { addLabelIds: ['STARRED'] } });
    const next = await syncTask('ANN');
    // Incremental: only what history shows since the first run's baseline (the two changes, the deletion, already in the sink).
    const { retries, attempts, ...c } = await countsOf(stack, next, 'ANN');
    void attempts;
    assert.equal(retries, 0);
    assert.deepEqual(c, { seen: 2, added: 0, updated: 1, unchanged: 1, deleted: 0, errors: 0 });
    await assertSinkMirrors(stack, g, 'ANN', ANN);
    assert.notEqual((await stateOf('ANN', ANN))?.historyId, stateBefore?.historyId);
  });

  it('leaves a named held document as a Synchronize leaves it, and fails a message neither in Gmail nor in the sink', async () => {
    const g = testGmail(stack.gmail.url);
    await syncTask('HELD');
    const ids = ((await g.users.messages.list({ userId: HELD })).data.messages ?? []).map((m) => m.id as string);
    const [changed, gone] = ids as [string, string];
    const id = idOf('HELD', HELD);
    await run({ FetchAction: 'Hold', Identifiers: [changed, gone].map(id).join(',') }, 'Finished');
    const before = { changed: await docOf('HELD', HELD, changed), gone: await docOf('HELD', HELD, gone) };
    await g.users.messages.modify({ userId: HELD, id: changed, requestBody: { addLabelIds: ['STARRED'] } });
    await g.users.messages.delete({ userId: HELD, id: gone });
    const stateBefore = await stateOf('HELD', HELD);

    const missing = id('ffffffffffff0000');
    const token = await run({ Identifiers: [id(changed), id(gone), missing].join(',') }, 'Error');
    const view = await statusOf(token);
    assert.deepEqual(list((view.tasks as Json).success).sort(), [id(changed), id(gone)].sort());
    const failed = list((view.tasks as Json).failed) as Json[];
    assert.equal(failed.length, 1);
    assert.equal(failed[0]?.$, missing);
    assert.match(String(failed[0]?.['@message']), /not in mailbox .* nor its document in the sink/);
    assert.deepEqual(await countsOf(stack, token, 'HELD'), { retries: 0, attempts: 2, seen: 3, added: 0, updated: 0, unchanged: 2, deleted: 0, errors: 1 });

    assert.deepEqual(await docOf('HELD', HELD, changed), { ...before.changed, changedInSource: true });
    assert.deepEqual(await docOf('HELD', HELD, gone), { ...before.gone, deletedInSource: true });
    assert.deepEqual(await stateOf('HELD', HELD), stateBefore);
  });

  it('answers a bad identifier, or Identifiers with TaskSections or Schedule=true, with a 400 and queues nothing', async () => {
    const n = await actionCount();
    const good = idOf('ANN', ANN)('abc');
    const cases: [Record<string, string>, RegExp][] = [
      [{ Identifiers: 'not-an-identifier' }, /Identifiers/],
      [{ Identifiers: encodeIdentifier({ task: 'NOPE', address: ANN, messageId: 'abc' }) }, /configured task/],
      [{ Identifiers: encodeIdentifier({ task: 'ANN', address: HELD, messageId: 'abc' }) }, /mailboxes/],
      [{ Identifiers: good, TaskSections: 'ANN' }, /TaskSections/],
      [{ Identifiers: good, Schedule: 'true' }, /Schedule/],
    ];
    for (const [params, why] of cases) {
      const r = await stack.aci({ action: 'Fetch', FetchAction: 'Synchronize', ...params });
      assert.equal(r.status, 400, `${JSON.stringify(params)}: ${r.text}`);
      const err = (((r.json as Json).autnresponse as Json).responsedata as Json).error as Json;
      assert.equal(err.errorid, 'GMAILCONNECTOR-BAD-PARAMETER', r.text);
      assert.match(String(err.errorstring), why);
    }
    assert.equal(await actionCount(), n, 'nothing was queued');
  });
});
