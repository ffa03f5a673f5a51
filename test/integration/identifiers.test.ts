/**
 * FetchAction=Identifiers end to end: every message of the task's mailboxes as an identifier an
 * IDOL client can decode with plain base64 and XML, read with QueueInfo GetStatus in pages, in
 * each response format; bad requests change nothing.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { XMLParser } from 'fast-xml-parser';
import { testGmail } from '../support/gmail.js';
import { writeMailbox } from '../support/mail.js';
import { startTestStack, type TestStack } from '../support/stack.js';

const ANN = 'ann@ids.example';
const BOB = 'bob@ids.example';
const BIG = 'big@ids.example';
const SIZES = { [ANN]: 70, [BOB]: 55 };
type Json = Record<string, unknown>;

let stack: TestStack;

before(async () => {
  const { dir } = writeMailbox(ANN, SIZES[ANN], { prefix: 'a' });
  writeMailbox(BOB, SIZES[BOB], { dir, prefix: 'b' });
  writeMailbox(BIG, 1001, { dir, prefix: 'g' });
  stack = await startTestStack({
    mailDir: dir,
    connector: { gmail: { quotaUnitsPerUserPerMinute: 1_000_000 }, tasks: { TEAM: { users: [ANN, BOB] }, ANN: { users: [ANN] }, BIG: { users: [BIG] } } },
  });
});

after(async () => {
  await stack?.close();
});

/** What a plain base64 + XML reader makes of an identifier. */
function decodePlain(id: string): { s: string; r: string } {
  const xml = Buffer.from(id, 'base64').toString('utf8');
  const m = /^<id s="([^"]*)" r="([^"]*)"\/>$/.exec(xml);
  assert.ok(m, xml);
  return { s: m[1] as string, r: m[2] as string };
}

async function identifiersOf(token: string, extra: Record<string, string> = {}): Promise<Json> {
  const r = await stack.aci({ action: 'QueueInfo', QueueName: 'fetch', QueueAction: 'GetStatus', Token: token, ...extra });
  assert.equal(r.status, 200, r.text);
  const action = (((((r.json as Json).autnresponse as Json).responsedata as Json).actions as Json).action as Json[])[0] as Json;
  return action;
}

async function actionCount(): Promise<number> {
  return (await stack.db.collection('actions').count().get()).data().count;
}

describe('FetchAction=Identifiers', () => {
  let token: string;
  let all: { name: string; id: string }[];

  it('lists every message of the task as an identifier with its subject, and writes no sink document', async () => {
    const r = await stack.aci({ action: 'Fetch', FetchAction: 'identifiers', TaskSections: 'team' });
    assert.equal(r.status, 200, r.text);
    token = ((((r.json as Json).autnresponse as Json).responsedata as Json).token as string);
    const a = await stack.waitFor(token, ['Finished', 'Error'], 120_000);
    assert.equal(a.status, 'Finished', a.error ?? '');
    const view = await identifiersOf(token, { MaxResults: '1000' });
    assert.equal(view.fetchaction, 'IDENTIFIERS');
    assert.deepEqual((view.documentcounts as Json).documentcount, [{ '@task': 'TEAM', '@identifiers': '125', '@errors': '0' }]);
    const ids = view.identifiers as Json;
    assert.equal(ids['@start'], '1');
    assert.equal(ids['@total'], '125');
    assert.equal(ids['@count'], '125');
    all = (ids.identifier as Json[]).map((e) => ({ name: e['@name'] as string, id: e.$ as string }));
    assert.equal(all.length, 125);
    const g = testGmail(stack.gmail.url);
    for (const [user, size] of Object.entries(SIZES)) {
      const mine = all.filter((e) => decodePlain(e.id).r.startsWith(`${user}/`));
      assert.equal(mine.length, size);
      const listed = await g.users.messages.list({ userId: user, maxResults: 500 });
      const gmailIds = new Set((listed.data.messages ?? []).map((m) => m.id));
      assert.deepEqual(new Set(mine.map((e) => decodePlain(e.id).r.slice(user.length + 1))), gmailIds);
      for (const e of mine) {
        assert.equal(decodePlain(e.id).s, 'TEAM');
        assert.match(e.name, /^Message \d+ ünïcödé$/);
        assert.equal(e.name, `${e.name}`);
      }
    }
    assert.equal((await stack.sink('TEAM', ANN)).size, 0);
    assert.equal((await stack.sink('TEAM', BOB)).size, 0);
  });

  it('pages results with Start (1-based) and MaxResults, across mailboxes', async () => {
    const page = await identifiersOf(token, { Start: '51', MaxResults: '40' });
    const ids = page.identifiers as Json;
    assert.equal(ids['@start'], '51');
    assert.equal(ids['@count'], '40');
    assert.deepEqual((ids.identifier as Json[]).map((e) => e.$), all.slice(50, 90).map((e) => e.id));
    const last = await identifiersOf(token, { Start: '121', MaxResults: '40' });
    assert.deepEqual(((last.identifiers as Json).identifier as Json[]).map((e) => e.$), all.slice(120).map((e) => e.id));
    const beyond = await identifiersOf(token, { Start: '500' });
    assert.equal((beyond.identifiers as Json)['@count'], '0');
  });

  it('answers the same results in xml and json', async () => {
    const q = { action: 'QueueInfo', QueueName: 'fetch', QueueAction: 'GetStatus', Token: token, Start: '1', MaxResults: '3' };
    const xml = await stack.aci({ ...q, ResponseFormat: 'xml' });
    const parsed = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: '@' }).parse(xml.text) as Json;
    const action = (((parsed.autnresponse as Json).responsedata as Json).actions as Json).action as Json;
    const list = (action.identifiers as Json).identifier as Json[];
    assert.deepEqual(list.map((e) => e['#text']), all.slice(0, 3).map((e) => e.id));
    assert.deepEqual(list.map((e) => e['@name']), all.slice(0, 3).map((e) => e.name));
    const json = await stack.aci({ ...q, ResponseFormat: 'json' });
    assert.match(json.text, new RegExp(all[0]?.id.replace(/[+/=]/g, (c) => `\\${c}`) ?? 'x'));
  });

  it('ShowAttributes adds the sender, date and labels of each message', async () => {
    const r = await stack.aci({ action: 'Fetch', FetchAction: 'Identifiers', ConfigSection: 'ANN', ShowAttributes: 'true' });
    const t = ((((r.json as Json).autnresponse as Json).responsedata as Json).token as string);
    assert.equal((await stack.waitFor(t, ['Finished', 'Error'], 120_000)).status, 'Finished');
    const first = (((await identifiersOf(t, { MaxResults: '1' })).identifiers as Json).identifier as Json[])[0] as Json;
    assert.match(first['@from'] as string, /<sender\d@example\.org>$/);
    assert.match(first['@date'] as string, /^2025-01-01T/);
    assert.match(first['@labels'] as string, /INBOX/);
  });

  it('Sync=true answers the same identifiers inline, and queues nothing', async () => {
    const before = await actionCount();
    const r = await stack.aci({ action: 'Fetch', FetchAction: 'Identifiers', TaskSections: 'TEAM', Sync: 'true' });
    assert.equal(r.status, 200, r.text);
    const ids = (((r.json as Json).autnresponse as Json).responsedata as Json).identifiers as Json;
    assert.equal(ids['@count'], '125');
    const inline = (ids.identifier as Json[]).map((e) => ({ name: e['@name'] as string, id: e.$ as string }));
    assert.deepEqual(new Set(inline.map((e) => `${e.id} ${e.name}`)), new Set(all.map((e) => `${e.id} ${e.name}`)));
    assert.equal(await actionCount(), before);
  });

  it('Sync=true over the cap is a 400 before any message is read', async () => {
    const before = await actionCount();
    const gets = stack.gmail.stats().calls['messages.get'] ?? 0;
    const r = await stack.aci({ action: 'Fetch', FetchAction: 'Identifiers', TaskSections: 'BIG', Sync: 'true' });
    assert.equal(r.status, 400, r.text);
    assert.match(r.text, /Sync=true answers at most 1000 identifiers and these tasks hold more/);
    assert.equal(stack.gmail.stats().calls['messages.get'] ?? 0, gets);
    assert.equal(await actionCount(), before);
    const sync = await stack.aci({ action: 'Fetch', FetchAction: 'Synchronize', TaskSections: 'ANN', Sync: 'true' });
    assert.equal(sync.status, 400, sync.text);
    assert.match(sync.text, /Synchronize runs only as an action/);
    assert.equal(await actionCount(), before);
  });

  it('refuses bad requests with a 4xx ACI error that changes nothing', async () => {
    const before = await actionCount();
    for (const [params, status, pattern] of [
      [{ action: 'Fetch', FetchAction: 'Identifiers', TaskSections: 'NOPE' }, 400, /TaskSections/],
      [{ action: 'Fetch', FetchAction: 'Identifiers', TaskSections: 'ANN', ConfigSection: 'ANN' }, 400, /TaskSections or ConfigSection/],
      [{ action: 'Fetch', FetchAction: 'Identifiers', TaskSections: 'ANN', Schedule: 'true' }, 400, /Schedule/],
      [{ action: 'Fetch', FetchAction: 'Identifiers', TaskSections: 'ANN', ShowAttributes: 'maybe' }, 400, /ShowAttributes/],
      [{ action: 'Fetch', FetchAction: 'Bogus', TaskSections: 'ANN' }, 400, /Synchronize, Identifiers, Collect, Insert/],
      [{ action: 'QueueInfo', QueueName: 'fetch', QueueAction: 'GetStatus', Token: token, Start: '0' }, 400, /Start/],
      [{ action: 'QueueInfo', QueueName: 'fetch', QueueAction: 'GetStatus', Token: token, MaxResults: '1001' }, 400, /MaxResults/],
    ] as const) {
      const r = await stack.aci(params as unknown as Record<string, string>);
      assert.equal(r.status, status, r.text);
      assert.match(r.text, pattern);
    }
    assert.equal(await actionCount(), before);
  });
});
