/**
 * ActionID against the emulators: echoed in every answer and format, kept on the Fetch's action,
 * shown and filtered by QueueInfo GetStatus; a Fetch repeated with its ActionID (in sequence or at
 * once) makes one action, other parameters are a 409, a malformed ActionID a 400, and Duplicate
 * does not carry the original's. And the server's GetStatus: product, version, build, functions.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { ActionRecord } from '../../functions/src/store/model.js';
import { FUNCTION_NAMES, PRODUCT, VERSION } from '../../functions/src/app/dispatch.js';
import { writeMailbox } from '../support/mail.js';
import { startTestStack, type TestStack } from '../support/stack.js';

const ANN = 'ann@ids.example';
const BOB = 'bob@ids.example';
const COMMIT = '0123456789abcdef0123456789abcdef01234567';
type Json = Record<string, unknown>;

let stack: TestStack;

before(async () => {
  const { dir } = writeMailbox(ANN, 5, { prefix: 'a' });
  writeMailbox(BOB, 5, { dir, prefix: 'b' });
  stack = await startTestStack({
    mailDir: dir,
    connector: { gmail: { quotaUnitsPerUserPerMinute: 1_000_000 }, tasks: { ANN: { users: [ANN] }, BOB: { users: [BOB] } } },
    env: { BUILD_COMMIT: COMMIT },
  });
});

after(async () => {
  await stack?.close();
});

const envelope = (j: unknown): Json => (j as Json).autnresponse as Json;
const rd = (j: unknown): Json => envelope(j).responsedata as Json;
const sync = (task: string, extra: Record<string, string> = {}) => stack.aci({ action: 'Fetch', FetchAction: 'Synchronize', TaskSections: task, ...extra });
const queue = (verb: string, extra: Record<string, string> = {}) => stack.aci({ action: 'QueueInfo', QueueName: 'fetch', QueueAction: verb, ...extra });

async function actionCount(): Promise<number> {
  return (await stack.db.collection('actions').count().get()).data().count;
}

/** The action records that carry this ActionID. */
async function actionsOf(actionId: string): Promise<ActionRecord[]> {
  return (await stack.db.collection('actions').where('actionId', '==', actionId).get()).docs.map((d) => d.data() as ActionRecord);
}

function tokenOf(r: { status: number; text: string; json: unknown }): string {
  assert.equal(r.status, 200, r.text);
  const token = rd(r.json).token;
  assert.equal(typeof token, 'string', r.text);
  return token as string;
}

describe('ActionID is echoed in every answer', () => {
  it('next to action, in xml, simplejson and json', async () => {
    const x = await stack.aci({ action: 'GetVersion', ActionID: 'echo-1', ResponseFormat: 'xml' });
    assert.equal(x.status, 200, x.text);
    assert.match(x.text, /\n {2}<action>GETVERSION<\/action>\n {2}<actionid>echo-1<\/actionid>\n {2}<response>SUCCESS<\/response>\n/);
    const s = await stack.aci({ action: 'GetVersion', ActionID: 'echo-1' });
    assert.deepEqual(Object.keys(envelope(s.json)).slice(0, 3), ['action', 'actionid', 'response']);
    assert.equal(envelope(s.json).actionid, 'echo-1');
    const j = await stack.aci({ action: 'GetVersion', ActionID: 'echo-1', ResponseFormat: 'json' });
    assert.deepEqual(envelope(j.json).actionid, { $: 'echo-1' });
  });

  it('in an error too, trimmed; and left out without one', async () => {
    const e = await queue('GetStatus', { QueueName: 'other', ActionID: ' err.2:x_y-z ', ResponseFormat: 'xml' });
    assert.equal(e.status, 400, e.text);
    assert.match(e.text, /<action>QUEUEINFO<\/action>\n {2}<actionid>err\.2:x_y-z<\/actionid>\n {2}<response>ERROR<\/response>/);
    const none = await stack.aci({ action: 'GetVersion' });
    assert.equal('actionid' in envelope(none.json), false);
  });

  it('a malformed ActionID is a 400 naming it, for any action, and queues nothing', async () => {
    const before = await actionCount();
    for (const bad of ['a b', 'x/y', 'é', 'x'.repeat(129), 'semi;colon']) {
      const r = await sync('ANN', { ActionID: bad });
      assert.equal(r.status, 400, r.text);
      const error = rd(r.json).error as Json;
      assert.equal(error.errorid, 'GMAILCONNECTOR-BAD-PARAMETER');
      assert.match(error.errorstring as string, /for parameter ActionID: expected at most 128 characters of letters, digits and \. _ : -/);
      assert.equal('actionid' in envelope(r.json), false);
    }
    const v = await stack.aci({ action: 'GetVersion', ActionID: 'no good' });
    assert.equal(v.status, 400, v.text);
    assert.equal(await actionCount(), before);
    // 128 characters is the most: accepted.
    assert.equal((await stack.aci({ action: 'GetVersion', ActionID: 'x'.repeat(128) })).status, 200);
  });
});

describe('a Fetch with an ActionID', () => {
  let token: string;

  before(async () => {
    token = tokenOf(await sync('ANN', { ActionID: 'job-1' }));
    await stack.waitFor(token, ['Finished', 'Error', 'Stopped'], 120_000);
  });

  it('keeps it on the action record, and GetStatus shows it after token', async () => {
    const records = await actionsOf('job-1');
    assert.equal(records.length, 1);
    assert.equal(records[0]?.token, token);
    const r = await queue('GetStatus', { Token: token });
    const action = ((rd(r.json).actions as Json).action as Json[])[0] as Json;
    assert.deepEqual(Object.keys(action).slice(0, 3), ['token', 'actionid', 'status']);
    assert.equal(action.actionid, 'job-1');
    assert.equal(envelope(r.json).actionid, undefined);
  });

  it('repeated with the same parameters (names in other case and order, another ResponseFormat): the same token, nothing queued', async () => {
    const before = await actionCount();
    const again = await stack.aci({ tasksections: 'ANN', ActionID: 'job-1', fetchaction: 'Synchronize', a: 'Fetch', ResponseFormat: 'xml' });
    assert.equal(again.status, 200, again.text);
    assert.match(again.text, new RegExp(`<token>${token}</token>`));
    assert.match(again.text, /<actionid>job-1<\/actionid>/);
    assert.doesNotMatch(again.text, /coalesced/);
    const json = await sync('ANN', { ActionID: 'job-1', ResponseFormat: 'json' });
    assert.equal(json.status, 200, json.text);
    assert.deepEqual(rd(json.json).token, { $: token });
    assert.equal(tokenOf(await sync(' ANN ', { ActionID: 'job-1' })), token);
    assert.equal(await actionCount(), before);
    assert.equal((await actionsOf('job-1')).length, 1);
  });

  it('repeated with other parameters: a 409 naming the ActionID, nothing queued', async () => {
    const before = await actionCount();
    for (const other of <Record<string, string>[]>[
      { action: 'Fetch', FetchAction: 'Synchronize', TaskSections: 'BOB', ActionID: 'job-1' },
      { action: 'Fetch', FetchAction: 'Identifiers', TaskSections: 'ANN', ActionID: 'job-1' },
      { action: 'Fetch', FetchAction: 'Synchronize', TaskSections: 'ANN', Schedule: 'false', ActionID: 'job-1' },
    ]) {
      const r = await stack.aci(other);
      assert.equal(r.status, 409, r.text);
      const error = rd(r.json).error as Json;
      assert.equal(error.errorid, 'GMAILCONNECTOR-CONFLICT');
      assert.match(error.errorstring as string, new RegExp(`^ActionID job-1 was sent within the last 24 hours with other parameters \\(action ${token}\\): the parameters differ\\. `));
      assert.equal(envelope(r.json).actionid, 'job-1');
    }
    assert.equal(await actionCount(), before);
    assert.equal((await actionsOf('job-1')).length, 1);
  });

  it('sent several times at once: one token, one action', async () => {
    const before = await actionCount();
    const answers = await Promise.all(Array.from({ length: 6 }, () => sync('BOB', { ActionID: 'burst-1' })));
    const tokens = new Set(answers.map(tokenOf));
    assert.equal(tokens.size, 1, JSON.stringify([...tokens]));
    assert.equal(await actionCount(), before + 1);
    const records = await actionsOf('burst-1');
    assert.equal(records.length, 1);
    assert.equal(records[0]?.token, [...tokens][0]);
    await stack.waitFor([...tokens][0] as string, ['Finished', 'Error', 'Stopped'], 120_000);
  });

  it('without ActionID: each Fetch is a new action, as always', async () => {
    // Paused, so that both stay queued and are cancelled before they run.
    await queue('Pause');
    try {
      const a = tokenOf(await sync('ANN'));
      const b = tokenOf(await sync('ANN'));
      assert.notEqual(a, b);
      const record = (await stack.db.collection('actions').doc(a).get()).data() as ActionRecord;
      assert.equal(record.actionId, undefined);
      for (const t of [a, b]) assert.equal((await queue('Cancel', { Token: t })).status, 200);
    } finally {
      await queue('Resume');
    }
  });

  it('answered 503 (the queue refused its task): the ActionID is released, and the retry queues the action', async () => {
    stack.tasks.injectFault('CreateTask', 'INVALID_ARGUMENT', 1);
    const refused = await sync('ANN', { ActionID: 'flaky-1' });
    assert.equal(refused.status, 503, refused.text);
    const failed = await actionsOf('flaky-1');
    assert.equal(failed.length, 1);
    assert.equal(failed[0]?.status, 'Error');
    const retried = tokenOf(await sync('ANN', { ActionID: 'flaky-1' }));
    assert.notEqual(retried, failed[0]?.token);
    assert.equal((await stack.waitFor(retried, ['Finished', 'Error', 'Stopped'], 120_000)).status, 'Finished');
    assert.equal(tokenOf(await sync('ANN', { ActionID: 'flaky-1' })), retried);
  });
});

describe('a scheduled Fetch with an ActionID', () => {
  it('a repeat answers as the first did: a new action, or the open one it joined (coalesced)', async () => {
    await queue('Pause');
    try {
      const first = await sync('BOB', { Schedule: 'true', ActionID: 'tick-1' });
      const token = tokenOf(first);
      assert.equal(rd(first.json).coalesced, undefined);
      const repeat = await sync('BOB', { Schedule: 'true', ActionID: 'tick-1' });
      assert.equal(tokenOf(repeat), token);
      assert.equal(rd(repeat.json).coalesced, undefined);
      const joined = await sync('BOB', { Schedule: 'true', ActionID: 'tick-2' });
      assert.equal(tokenOf(joined), token);
      assert.equal(rd(joined.json).coalesced, 'true');
      const again = await sync('BOB', { Schedule: 'true', ActionID: 'tick-2' });
      assert.equal(tokenOf(again), token);
      assert.equal(rd(again.json).coalesced, 'true');
      assert.equal((await actionsOf('tick-1')).length, 1);
      // The action it joined keeps its own ActionID.
      assert.equal((await actionsOf('tick-2')).length, 0);
    } finally {
      await queue('Resume');
    }
  });
});

describe('QueueInfo GetStatus with ActionID', () => {
  it('lists only the actions of that ActionID, filtered and ordered as the others, and echoes it', async () => {
    const t1 = tokenOf(await sync('ANN', { ActionID: 'list-1' }));
    tokenOf(await sync('BOB', { ActionID: 'list-2' }));
    await stack.waitFor(t1, ['Finished', 'Error', 'Stopped'], 120_000);
    const r = await queue('GetStatus', { ActionID: 'list-1' });
    assert.equal(r.status, 200, r.text);
    assert.equal(envelope(r.json).actionid, 'list-1');
    const listed = ((rd(r.json).actions as Json).action as Json[]).map((a) => [a.token, a.actionid]);
    assert.deepEqual(listed, [[t1, 'list-1']]);
    const x = await queue('GetStatus', { ActionID: 'list-1', State: 'Finished', ResponseFormat: 'xml' });
    assert.equal(x.text.match(/<token>/g)?.length, 1, x.text);
    const none = await queue('GetStatus', { ActionID: 'list-1', State: 'Queued' });
    assert.deepEqual(rd(none.json).actions, {});
    const nobody = await queue('GetStatus', { ActionID: 'never-used' });
    assert.deepEqual(rd(nobody.json).actions, {});
  });

  it('a malformed ActionID is a 400, not a list', async () => {
    const r = await queue('GetStatus', { ActionID: 'what?' });
    assert.equal(r.status, 400, r.text);
    assert.equal((rd(r.json).error as Json).errorid, 'GMAILCONNECTOR-BAD-PARAMETER');
  });
});

describe('Duplicate and GetActionParameters', () => {
  let original: string;

  before(async () => {
    original = tokenOf(await sync('ANN', { ActionID: 'orig-1' }));
    await stack.waitFor(original, ['Finished', 'Error', 'Stopped'], 120_000);
  });

  it('GetActionParameters leaves ActionID out, as ResponseFormat', async () => {
    const r = await queue('GetActionParameters', { Token: original });
    const names = (((rd(r.json).parameters as Json).parameter as Json[]) ?? []).map((p) => p['@name']);
    assert.deepEqual(names, ['action', 'FetchAction', 'TaskSections']);
  });

  it("Duplicate is a new action without the original's ActionID", async () => {
    const dup = tokenOf(await queue('Duplicate', { Token: original }));
    assert.notEqual(dup, original);
    const record = (await stack.db.collection('actions').doc(dup).get()).data() as ActionRecord;
    assert.equal(record.actionId, undefined);
    assert.equal((await actionsOf('orig-1')).length, 1);
    await stack.waitFor(dup, ['Finished', 'Error', 'Stopped'], 120_000);
  });

  it("Duplicate with its own ActionID: the duplicate takes it, and a repeat answers the same token", async () => {
    const before = await actionCount();
    const dup = tokenOf(await queue('Duplicate', { Token: original, ActionID: 'dup-1' }));
    assert.equal(tokenOf(await queue('Duplicate', { Token: original, ActionID: 'dup-1' })), dup);
    assert.equal(await actionCount(), before + 1);
    const records = await actionsOf('dup-1');
    assert.deepEqual(records.map((a) => a.token), [dup]);
    await stack.waitFor(dup, ['Finished', 'Error', 'Stopped'], 120_000);
  });
});

describe('the server GetStatus', () => {
  it('names the product, its version and build, the functions and the Cloud Tasks queue', async () => {
    const r = await stack.aci({ action: 'GetStatus' });
    assert.equal(r.status, 200, r.text);
    const data = rd(r.json);
    assert.equal(data.product, PRODUCT);
    assert.equal(data.version, VERSION);
    assert.equal(data.build, COMMIT);
    assert.deepEqual(data.functions, { action: 'gmail-connector-action', worker: 'gmail-connector-worker', notify: 'gmail-connector-notify' });
    assert.deepEqual(data.functions, { ...FUNCTION_NAMES });
    const q = ((data.queues as Json).queue as Json[])[0] as Json;
    assert.equal(q.name, 'fetch');
    assert.equal(q.tasks_queue, `projects/${stack.project}/locations/us-central1/queues/fetch`);
    assert.deepEqual(Object.keys(data).slice(0, 6), ['product', 'version', 'build', 'uptime', 'functions', 'queues']);
  });
});
