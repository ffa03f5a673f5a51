/**
 * Insert imports each message at most once, whatever fails and whoever redelivers, and a message's
 * content fails only its own item:
 *
 * - one import failing for good (Gmail answering 503 past the retries) ends the batch: no other
 *   import of it starts or goes on after the delivery answered, and the redelivery, with Gmail's
 *   search lagging, finds the import that landed unanswered in the history and imports each
 *   message once;
 * - an import applied whose answer is lost, and a worker killed between an import and its commit,
 *   are found in the mailbox's history, not by Gmail's search, which lags here;
 * - a folded, malformed Message-ID and a message without one are imported once each, even across a
 *   crash; content that is not a message fails its item alone, and the request's other items go on.
 *
 * Real servers: the worker in its own process, so that it can be killed. Gmail calls time out
 * after 1 s and back off from 1 ms, so that the retries are quick; the tests wait on conditions.
 */
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import type { gmail_v1 } from 'googleapis/build/src/apis/gmail/index.js';
import { encodeIdentifier } from '../../functions/src/aci/identifiers.js';
import { until } from '../support/checks.js';
import { testGmail } from '../support/gmail.js';
import { writeMailbox } from '../support/mail.js';
import { DELEGATED_SCOPES, startTestStack, type TestStack } from '../support/stack.js';

const ANN = 'ann@once.example';
const G = 'https://www.googleapis.com/auth/';
const ENDED = ['Finished', 'Error', 'Stopped', 'Cancelled'];
type Json = Record<string, unknown>;

let stack: TestStack;
let g: gmail_v1.Gmail;

before(async () => {
  const { dir } = writeMailbox(ANN, 3, { prefix: 'o' });
  stack = await startTestStack({
    mailDir: dir,
    workerProcess: true,
    delegation: { scopes: [...DELEGATED_SCOPES, `${G}gmail.modify`, `${G}gmail.insert`] },
    env: { WORKER_LEASE_S: '2', GMAIL_CALL_TIMEOUT_S: '1', GMAIL_BACKOFF_MS: '1' },
    connector: { gmail: { quotaUnitsPerUserPerMinute: 1_000_000 }, tasks: { W: { users: [ANN], writes: true } } },
  });
  g = testGmail(stack.gmail.url);
});

afterEach(() => {
  if (!stack) return;
  stack.gmail.setSearchLag(0);
  stack.gmail.indexSearches();
  stack.gmail.refuseCalls(ANN, 'messages.import', 0);
  stack.gmail.loseAnswers('messages.import', 0);
});

after(async () => {
  await stack?.close();
});

interface Item {
  ref: string;
  raw?: Buffer;
  /** The text of <content> as sent (raw's base64 otherwise). */
  content?: string;
}

function insertXml(items: Item[]): string {
  const one = (i: Item) =>
    `<insert><reference>${i.ref}</reference><property name="USER_ID" value="${ANN}"/>` +
    `<file><type>content</type><content>${i.content ?? (i.raw ?? Buffer.alloc(0)).toString('base64')}</content></file></insert>`;
  return `<insertXML>${items.map(one).join('')}</insertXML>`;
}

/** Sends an Insert of `items` to task W; returns its token. */
async function insert(items: Item[]): Promise<string> {
  const r = await fetch(stack.actionUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ action: 'Fetch', FetchAction: 'Insert', ConfigSection: 'W', InsertXML: insertXml(items), ResponseFormat: 'simplejson' }),
    signal: AbortSignal.timeout(60_000),
  });
  const text = await r.text();
  assert.equal(r.status, 200, text);
  return ((JSON.parse(text) as Json).autnresponse as { responsedata: { token: string } }).responsedata.token;
}

/** The action once it ended `status`: its counts and its results by reference (identifier, or the failure's message). */
async function ended(token: string, status: string): Promise<{ counts: Record<string, string>; success: Map<string, string>; failed: Map<string, string> }> {
  const a = await stack.waitFor(token, ENDED, 60_000);
  assert.equal(a.status, status, a.error ?? '');
  const r = await stack.aci({ action: 'QueueInfo', QueueName: 'fetch', QueueAction: 'GetStatus', Token: token, MaxResults: '1000' });
  const action = ((((r.json as Json).autnresponse as Json).responsedata as Json).actions as { action: Json[] }).action[0] as Json;
  const counts = ((action.documentcounts as Json).documentcount as Json[])[0] as Record<string, string>;
  const list = (v: unknown) => (v === undefined ? [] : Array.isArray(v) ? v : [v]) as Json[];
  const tasks = (action.tasks ?? {}) as Json;
  return {
    counts,
    success: new Map(list(tasks.success).map((s) => [s['@insert_id'] as string, s.$ as string])),
    failed: new Map(list(tasks.failed).map((f) => [f['@insert_id'] as string, f['@message'] as string])),
  };
}

function message(messageIdHeader: string | undefined, subject: string): Buffer {
  const headers = [...(messageIdHeader === undefined ? [] : [messageIdHeader]), 'From: sender@example.org', `To: ${ANN}`, `Subject: ${subject}`, 'Date: Mon, 30 Nov 2026 10:00:00 +0000'];
  return Buffer.from([...headers, '', `Body of ${subject}.`, ''].join('\r\n'));
}

/** Ids of the mailbox's messages matching a search, once Gmail's search has caught up. */
async function search(q: string): Promise<string[]> {
  stack.gmail.indexSearches(ANN);
  const r = await g.users.messages.list({ userId: ANN, q, includeSpamTrash: true, maxResults: 50 });
  return (r.data.messages ?? []).map((m) => m.id ?? '');
}

async function total(): Promise<number> {
  return (await g.users.getProfile({ userId: ANN })).data.messagesTotal ?? 0;
}

const imports = (): number => stack.gmail.stats().calls['messages.import'] ?? 0;
const id = (messageId: string): string => encodeIdentifier({ task: 'W', address: ANN, messageId });

describe('an Insert imports each message at most once', () => {
  it('one import failing past its retries while another landed unanswered: the batch stops, and the redelivery imports each message once', async () => {
    const before = await total();
    const { lost, refused } = stack.gmail.stats();
    stack.gmail.setSearchLag(Infinity);
    // The first import lands, but Gmail never answers it (the caller waits past its timeout); the
    // next 9 are refused at once (503): the other item of the pair fails past its retries.
    stack.gmail.loseAnswers('messages.import', 1);
    stack.gmail.refuseCalls(ANN, 'messages.import', 9, 1);
    const items = [0, 1, 2, 3].map((i) => ({ ref: `stop-${i}`, raw: message(`Message-ID: <stop-${i}@once.example>`, `stop ${i}`) }));
    const token = await insert(items);
    const a = await ended(token, 'Finished');
    assert.deepEqual(a.counts, { '@task': 'W', '@inserted': '4', '@existing': '0', '@errors': '0' });
    assert.deepEqual([stack.gmail.stats().lost - lost, stack.gmail.stats().refused - refused], [1, 9]);
    assert.ok(((await stack.units(token))[0]?.attempts ?? 0) >= 2, 'the unit was delivered again');
    for (let i = 0; i < 4; i++) {
      const found = await search(`rfc822msgid:stop-${i}@once.example`);
      assert.ok(found.length === 1, `stop-${i} is in the mailbox once, not ${found.length} times`);
      assert.equal(a.success.get(`stop-${i}`), id(found[0] ?? ''));
    }
    assert.ok((await total()) - before === 4, 'four messages more');
  });

  it('an import applied whose answer is lost, Gmail\'s search lagging: the retry finds it in the history', async () => {
    stack.gmail.setSearchLag(Infinity);
    const calls = imports();
    stack.gmail.loseAnswers('messages.import', 1);
    const a = await ended(await insert([{ ref: 'lost', raw: message('Message-ID: <lost@once.example>', 'lost') }]), 'Finished');
    assert.deepEqual(a.counts, { '@task': 'W', '@inserted': '1', '@existing': '0', '@errors': '0' });
    assert.ok(imports() - calls === 1, `one import call, not ${imports() - calls}`);
    const found = await search('rfc822msgid:lost@once.example');
    assert.ok(found.length === 1, `in the mailbox once, not ${found.length} times`);
    assert.equal(a.success.get('lost'), id(found[0] ?? ''));
  });

  it('a worker killed between the import and its commit, Gmail\'s search lagging: the redelivery finds it in the history', async () => {
    stack.gmail.setSearchLag(Infinity);
    const calls = imports();
    const lost = stack.gmail.stats().lost;
    stack.gmail.loseAnswers('messages.import', 1);
    const token = await insert([{ ref: 'killed', raw: message('Message-ID: <killed@once.example>', 'killed') }]);
    await until('the import was applied', async () => stack.gmail.stats().lost, (n) => n > lost, 30_000);
    await stack.worker.kill();
    await stack.worker.start();
    const a = await ended(token, 'Finished');
    assert.deepEqual(a.counts, { '@task': 'W', '@inserted': '1', '@existing': '0', '@errors': '0' });
    assert.ok(imports() - calls === 1, `one import call, not ${imports() - calls}`);
    const found = await search('rfc822msgid:killed@once.example');
    assert.ok(found.length === 1, `in the mailbox once, not ${found.length} times`);
    assert.ok(((await stack.units(token))[0]?.attempts ?? 0) >= 2, 'the unit was delivered again');
  });
});

describe('a message without a usable Message-ID', () => {
  // As found in real archives: folded over three lines, with spaces inside the brackets.
  const FOLDED = 'Message-Id: <000012024583$000011d7$0000742f@\r\n pob23uifesi.cic.org.ar\r\n >';

  it('a folded, malformed Message-ID and none at all are imported once, byte for byte; content that is not a message fails alone', async () => {
    const before = await total();
    const folded = message(FOLDED, 'folded once');
    const none = message(undefined, 'none once');
    const a = await ended(
      await insert([
        { ref: 'folded', raw: folded },
        { ref: 'notmail', raw: Buffer.from('just some text, no header\r\n') },
        { ref: 'none', raw: none },
        { ref: 'notb64', content: '!!!' },
        { ref: 'ok', raw: message('Message-ID: <ok-beside@once.example>', 'ok beside') },
      ]),
      'Error',
    );
    assert.deepEqual(a.counts, { '@task': 'W', '@inserted': '3', '@existing': '0', '@errors': '2' });
    assert.match(a.failed.get('notmail') ?? '', /not an RFC 822 message/);
    assert.match(a.failed.get('notb64') ?? '', /not base64/);
    assert.deepEqual([...a.failed.keys()].sort(), ['notb64', 'notmail']);
    for (const [ref, subject, raw] of [['folded', 'folded once', folded], ['none', 'none once', none]] as const) {
      const found = await search(`subject:"${subject}"`);
      assert.ok(found.length === 1, `${ref} is in the mailbox once, not ${found.length} times`);
      assert.equal(a.success.get(ref), id(found[0] ?? ''));
      const stored = await g.users.messages.get({ userId: ANN, id: found[0] ?? '', format: 'raw' });
      assert.ok(Buffer.from(stored.data.raw ?? '', 'base64url').equals(raw), `${ref}: Gmail has the bytes as sent`);
    }
    assert.ok((await search('rfc822msgid:ok-beside@once.example')).length === 1);
    assert.ok((await total()) - before === 3, 'three messages more');
  });

  it('a worker killed between their imports and the commit: the redelivery finds them by their bytes and imports nothing', async () => {
    const before = await total();
    const calls = imports();
    const lost = stack.gmail.stats().lost;
    stack.gmail.loseAnswers('messages.import', 2);
    const token = await insert([
      { ref: 'folded-crash', raw: message(FOLDED, 'folded crash') },
      { ref: 'none-crash', raw: message(undefined, 'none crash') },
    ]);
    await until('both imports were applied', async () => stack.gmail.stats().lost, (n) => n >= lost + 2, 30_000);
    await stack.worker.kill();
    await stack.worker.start();
    const a = await ended(token, 'Finished');
    assert.deepEqual(a.counts, { '@task': 'W', '@inserted': '2', '@existing': '0', '@errors': '0' });
    assert.ok(imports() - calls === 2, `two import calls, not ${imports() - calls}`);
    for (const subject of ['folded crash', 'none crash']) {
      const found = await search(`subject:"${subject}"`);
      assert.ok(found.length === 1, `"${subject}" is in the mailbox once, not ${found.length} times`);
    }
    assert.ok((await total()) - before === 2, 'two messages more');
  });
});
