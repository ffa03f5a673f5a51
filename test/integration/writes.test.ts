/**
 * Insert, Update and Delete end to end, and Hold and ReleaseHold against Synchronize: a round trip
 * Insert → Identifiers → View → Update → Delete in each response format (xml, simplejson, json);
 * writes refused for a task without `"writes": true` and for each kind of bad input, changing
 * nothing; writes queued, in flight or half done when the worker is redeployed with `"writes":
 * false` or without the mailbox change nothing more, their items failing with the reason;
 * `DryRun=true` reports what Update and Delete would do and changes nothing; a Workspace grant
 * without the scope fails the items with what to grant; an import whose answer is lost, or whose
 * worker is killed before it commits, is never imported twice; a held document survives its
 * message's deletion and change, is listed by Identifiers Held=true, and goes at the first
 * Synchronize after ReleaseHold (an incremental one included). Real servers: the worker in its own
 * process, so that it can be killed and started again with another configuration.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { XMLParser } from 'fast-xml-parser';
import type { gmail_v1 } from 'googleapis/build/src/apis/gmail/index.js';
import { decodeIdentifier, encodeIdentifier } from '../../functions/src/aci/identifiers.js';
import { assertSinkMirrors, countsOf, until } from '../support/checks.js';
import { testGmail } from '../support/gmail.js';
import { writeMailbox } from '../support/mail.js';
import { DELEGATED_SCOPES, startTestStack, type TestStack } from '../support/stack.js';

const ANN = 'ann@writes.example';
const RO = 'ro@writes.example';
const NOGRANT = 'nogrant@writes.example';
const KEEP = 'keep@writes.example';
/** Mailboxes of task LATE, whose writes the worker is redeployed under: an Update in flight, a Delete half done, a mailbox taken out, an Insert queued. */
const LATE1 = 'late1@writes.example';
const LATE2 = 'late2@writes.example';
const GONE = 'gone@writes.example';
const QUEUED = 'queued@writes.example';
/** Mailboxes of task DRY: one for Delete's dry runs, one for Update's. */
const DRY = 'dry@writes.example';
const DRYU = 'dryu@writes.example';
const CONNECTOR = {
  gmail: { quotaUnitsPerUserPerMinute: 1_000_000 },
  tasks: {
    W: { users: [ANN, NOGRANT], writes: true },
    RO: { users: [RO] },
    KEEP: { users: [KEEP] },
    LATE: { users: [LATE1, LATE2, GONE, QUEUED], writes: true },
    DRY: { users: [DRY, DRYU], writes: true },
  },
};
const G = 'https://www.googleapis.com/auth/';
const WRITE_SCOPES = [`${G}gmail.modify`, `${G}gmail.insert`, 'https://mail.google.com/'];
const ENDED = ['Finished', 'Error', 'Stopped', 'Cancelled'];
type Json = Record<string, unknown>;
type Format = 'xml' | 'simplejson' | 'json';

let stack: TestStack;
let g: gmail_v1.Gmail;

before(async () => {
  const { dir } = writeMailbox(ANN, 5, { prefix: 'a' });
  writeMailbox(RO, 3, { dir, prefix: 'r' });
  writeMailbox(NOGRANT, 2, { dir, prefix: 'n' });
  writeMailbox(KEEP, 12, { dir, prefix: 'k' });
  writeMailbox(LATE1, 3, { dir, prefix: 'l1-' });
  writeMailbox(LATE2, 60, { dir, prefix: 'l2-' });
  writeMailbox(GONE, 3, { dir, prefix: 'g' });
  writeMailbox(QUEUED, 1, { dir, prefix: 'q' });
  writeMailbox(DRY, 6, { dir, prefix: 'd' });
  writeMailbox(DRYU, 3, { dir, prefix: 'du' });
  stack = await startTestStack({
    mailDir: dir,
    workerProcess: true,
    delegation: { scopes: [...DELEGATED_SCOPES, ...WRITE_SCOPES] },
    gmail: { historyRetention: 6 },
    env: { WORKER_LEASE_S: '2', GMAIL_CALL_TIMEOUT_S: '10', GMAIL_BACKOFF_MS: '10' },
    connector: CONNECTOR,
  });
  g = testGmail(stack.gmail.url);
});

after(async () => {
  await stack?.close();
});

/** Text values unwrapped (json wraps each as {"$": ...}), so that the three formats compare equal. */
function unwrap(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(unwrap);
  if (v && typeof v === 'object') {
    const o = v as Json;
    const keys = Object.keys(o);
    if (keys.length === 1 && keys[0] === '$' && typeof o.$ === 'string') return o.$;
    return Object.fromEntries(keys.map((k) => [k, unwrap(o[k])]));
  }
  return v;
}

const xmlParser = new XMLParser({
  ignoreAttributes: false,
  attributeNamePrefix: '@',
  textNodeName: '$',
  parseTagValue: false,
  parseAttributeValue: false,
  isArray: (name) => ['action', 'success', 'failed', 'identifier', 'documentcount'].includes(name),
});

/** An ACI request (POST, form-encoded) in a format: its status and responsedata as one tree. */
async function aci(format: Format, params: Record<string, string>): Promise<{ status: number; data: Json; text: string }> {
  const r = await fetch(stack.actionUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ ...params, ResponseFormat: format }),
    signal: AbortSignal.timeout(60_000),
  });
  const text = await r.text();
  const tree = format === 'xml' ? (xmlParser.parse(text) as Json) : (JSON.parse(text) as Json);
  const root = unwrap(tree) as Json;
  return { status: r.status, data: (root.autnresponse as Json).responsedata as Json, text };
}

async function fetchAction(format: Format, params: Record<string, string>): Promise<string> {
  const r = await aci(format, { action: 'Fetch', ...params });
  assert.equal(r.status, 200, r.text);
  return r.data.token as string;
}

/** The action's results in a format, once it ended as `status`. */
async function results(format: Format, token: string, status = 'Finished'): Promise<Json> {
  const a = await stack.waitFor(token, ENDED, 120_000);
  assert.equal(a.status, status, a.error ?? '');
  const r = await aci(format, { action: 'QueueInfo', QueueName: 'fetch', QueueAction: 'GetStatus', Token: token, MaxResults: '1000' });
  assert.equal(r.status, 200, r.text);
  return ((r.data.actions as Json).action as Json[])[0] as Json;
}

function counts(action: Json): Json {
  return ((action.documentcounts as Json).documentcount as Json[])[0] as Json;
}

function message(to: string, messageId: string, subject: string): Buffer {
  return Buffer.from([`Message-ID: ${messageId}`, 'From: sender@example.org', `To: ${to}`, `Subject: ${subject}`, 'Date: Mon, 30 Nov 2026 10:00:00 +0000', '', `Body of ${subject}.`, ''].join('\r\n'));
}

function insertXml(items: { ref: string; user: string; raw?: Buffer; path?: string; labels?: string; extra?: string }[]): string {
  const one = (i: (typeof items)[number]) =>
    `<insert><reference>${i.ref}</reference><property name="USER_ID" value="${i.user}"/>` +
    (i.labels ? `<property name="LABEL_IDS" value="${i.labels}"/>` : '') +
    (i.extra ?? '') +
    (i.path ? `<file><type>file</type><path>${i.path}</path></file>` : `<file><type>content</type><content>${(i.raw ?? Buffer.alloc(0)).toString('base64')}</content></file>`) +
    '</insert>';
  return `<insertXML>${items.map(one).join('')}</insertXML>`;
}

async function byMessageId(user: string, messageId: string): Promise<string[]> {
  const r = await g.users.messages.list({ userId: user, q: `rfc822msgid:${messageId.replace(/^<|>$/g, '')}`, includeSpamTrash: true });
  return (r.data.messages ?? []).map((m) => m.id ?? '');
}

async function labelsOf(user: string, id: string): Promise<string[]> {
  return [...((await g.users.messages.get({ userId: user, id, format: 'minimal' })).data.labelIds ?? [])].sort();
}

async function actionCount(): Promise<number> {
  return (await stack.db.collection('actions').count().get()).data().count;
}

/** The identifiers of every message of a mailbox of a task, in Gmail's order. */
async function identifiersOf(task: string, user: string): Promise<string[]> {
  const r = await g.users.messages.list({ userId: user, maxResults: 500 });
  return (r.data.messages ?? []).map((m) => encodeIdentifier({ task, address: user, messageId: m.id ?? '' }));
}

/**
 * Everything a write could change in a mailbox: each message's labels (Trash and Spam included),
 * the totals, and the history id, which any change moves on.
 */
async function snapshot(user: string): Promise<Json> {
  const profile = (await g.users.getProfile({ userId: user })).data;
  const r = await g.users.messages.list({ userId: user, maxResults: 500, includeSpamTrash: true });
  assert.equal(r.data.nextPageToken, undefined);
  const messages: Record<string, string[]> = {};
  for (const m of r.data.messages ?? []) messages[m.id ?? ''] = await labelsOf(user, m.id ?? '');
  return { historyId: profile.historyId, messagesTotal: profile.messagesTotal, threadsTotal: profile.threadsTotal, messages };
}

/** Calls of the user that change a mailbox, as the Gmail emulator counted them. */
function changingCalls(user: string): number {
  const calls = stack.gmail.stats().callsByUser[user] ?? {};
  const changing = ['messages.modify', 'messages.batchModify', 'messages.trash', 'messages.untrash', 'messages.delete', 'messages.batchDelete', 'messages.import', 'messages.insert'];
  return changing.reduce((n, m) => n + (calls[m] ?? 0), 0);
}

/** The Cloud Tasks still queued (or being delivered) for an action. */
async function tasksOf(token: string): Promise<number> {
  const r = await fetch(`${stack.tasks.url}v2/${stack.queuePath}/tasks?pageSize=1000`, { headers: { authorization: 'Bearer owner' }, signal: AbortSignal.timeout(10_000) });
  assert.equal(r.status, 200);
  const body = (await r.json()) as { tasks?: { name: string }[] };
  return (body.tasks ?? []).filter((t) => t.name.includes(token)).length;
}

/** The configuration with one task's settings replaced, for a worker deployed with it. */
function configWith(task: keyof typeof CONNECTOR.tasks, settings: Record<string, unknown>): Json {
  return { ...CONNECTOR, tasks: { ...CONNECTOR.tasks, [task]: { ...CONNECTOR.tasks[task], ...settings } } };
}

/** What each refused item of task LATE says when the worker runs with `"writes": false`. */
function writesOff(action: string, scope: string): string {
  return (
    `${action} refused: writes are off for task LATE in the worker's configuration; set "writes": true in the task's configuration ` +
    `(CONNECTOR_CONFIG tasks.LATE.writes), with the scope ${scope} granted, and send the request again`
  );
}

describe('Insert → Identifiers → View → Update → Delete', () => {
  for (const format of ['xml', 'simplejson', 'json'] as const) {
    it(`round trip in ${format}`, async () => {
      const mid = `<round-${format}@writes.example>`;
      const raw = message(ANN, mid, `round trip ${format}`);
      const token = await fetchAction(format, { FetchAction: 'Insert', ConfigSection: 'W', InsertXML: insertXml([{ ref: `r-${format}`, user: ANN, raw, labels: 'INBOX,UNREAD' }]) });
      const inserted = await results(format, token);
      assert.equal(inserted.fetchaction, 'INSERT');
      assert.deepEqual(counts(inserted), { '@task': 'W', '@inserted': '1', '@existing': '0', '@errors': '0' });
      const [messageId] = await byMessageId(ANN, mid);
      assert.ok(messageId);
      const identifier = encodeIdentifier({ task: 'W', address: ANN, messageId });
      assert.deepEqual(inserted.tasks, { success: [{ '@insert_id': `r-${format}`, $: identifier }] });
      assert.deepEqual(await labelsOf(ANN, messageId), ['INBOX', 'UNREAD']);

      const ids = await results(format, await fetchAction(format, { FetchAction: 'Identifiers', TaskSections: 'W' }));
      assert.ok(((ids.identifiers as Json).identifier as Json[]).some((e) => e.$ === identifier), 'Identifiers lists the new message');

      const view = await aci(format, { action: 'View', Identifier: identifier, NoACI: 'false' });
      assert.equal(view.status, 200, view.text);
      assert.ok(Buffer.from(view.data.content as string, 'base64').equals(raw), 'View answers the inserted bytes');

      const updateXml = `<identifiersXML><identifier value="${identifier}"><metadata name="ADD_LABELS" value="STARRED"/><metadata name="REMOVE_LABELS" value="INBOX"/></identifier></identifiersXML>`;
      const updated = await results(format, await fetchAction(format, { FetchAction: 'Update', IdentifiersXML: updateXml }));
      assert.deepEqual(counts(updated), { '@task': 'W', '@updated': '1', '@errors': '0' });
      assert.deepEqual(updated.tasks, { success: [identifier] });
      assert.deepEqual(await labelsOf(ANN, messageId), ['STARRED', 'UNREAD']);

      const permanent = format === 'xml';
      const deleted = await results(format, await fetchAction(format, { FetchAction: format === 'json' ? 'Remove' : 'Delete', Identifiers: identifier, ...(permanent ? { Permanent: 'true' } : {}) }));
      assert.deepEqual(counts(deleted), { '@task': 'W', '@deleted': '1', '@absent': '0', '@errors': '0' });
      assert.deepEqual(deleted.tasks, { success: [identifier] });
      if (permanent) assert.deepEqual(await byMessageId(ANN, mid), []);
      else assert.deepEqual(await labelsOf(ANN, messageId), ['STARRED', 'TRASH', 'UNREAD']);
    });
  }

  it('batches: Update of many messages with one change is one batchModify; a message not in the mailbox fails by itself', async () => {
    const listed = (await g.users.messages.list({ userId: ANN, maxResults: 3 })).data.messages ?? [];
    const ids = listed.map((m) => encodeIdentifier({ task: 'W', address: ANN, messageId: m.id ?? '' }));
    const ghost = encodeIdentifier({ task: 'W', address: ANN, messageId: 'abcdef0123' });
    const xml = `<identifiersXML>${[...ids, ghost].map((id) => `<identifier value="${id}"><metadata name="ADD_LABELS" value="IMPORTANT"/></identifier>`).join('')}</identifiersXML>`;
    const before = stack.gmail.stats().calls['messages.batchModify'] ?? 0;
    const a = await results('simplejson', await fetchAction('simplejson', { FetchAction: 'Update', IdentifiersXML: xml }), 'Error');
    assert.deepEqual(counts(a), { '@task': 'W', '@updated': '3', '@errors': '1' });
    assert.deepEqual((a.tasks as Json).success, ids);
    const failed = (a.tasks as Json).failed as Json[];
    assert.equal(failed.length, 1);
    assert.equal(failed[0]?.$, ghost);
    assert.match(failed[0]?.['@message'] as string, /not in ann@writes\.example's mailbox/);
    assert.equal((stack.gmail.stats().calls['messages.batchModify'] ?? 0) - before, 1);
    for (const m of listed) assert.ok((await labelsOf(ANN, m.id ?? '')).includes('IMPORTANT'));
  });
});

describe('writes are off unless configured, and bad input changes nothing', () => {
  it('a task without "writes": true is refused 403 naming the setting and the scope, before anything is queued', async () => {
    const [m] = (await g.users.messages.list({ userId: RO })).data.messages ?? [];
    const id = encodeIdentifier({ task: 'RO', address: RO, messageId: m?.id ?? '' });
    const n = await actionCount();
    const labels = await labelsOf(RO, m?.id ?? '');
    const cases: [Record<string, string>, RegExp][] = [
      [{ FetchAction: 'Insert', ConfigSection: 'RO', InsertXML: insertXml([{ ref: 'x', user: RO, raw: message(RO, '<ro@x>', 'ro') }]) }, /gmail\.insert/],
      [{ FetchAction: 'Update', IdentifiersXML: `<identifiersXML><identifier value="${id}"><metadata name="ADD_LABELS" value="STARRED"/></identifier></identifiersXML>` }, /gmail\.modify/],
      [{ FetchAction: 'Delete', Identifiers: id }, /gmail\.modify/],
      [{ FetchAction: 'Delete', Identifiers: id, Permanent: 'true' }, /https:\/\/mail\.google\.com\//],
    ];
    for (const [params, scope] of cases) {
      const r = await aci('simplejson', { action: 'Fetch', ...params });
      assert.equal(r.status, 403, r.text);
      const err = r.data.error as Json;
      assert.equal(err.errorid, 'GMAILCONNECTOR-TURNED-OFF');
      assert.match(err.errorstring as string, /writes are off for task RO: set "writes": true/);
      assert.match(err.errorstring as string, scope);
    }
    assert.equal(await actionCount(), n, 'nothing was queued');
    assert.deepEqual(await labelsOf(RO, m?.id ?? ''), labels);
    assert.equal((await g.users.messages.list({ userId: RO })).data.messages?.length, 3);
  });

  it('bad input for each is a 400 naming what was wrong, and changes nothing', async () => {
    const [m] = (await g.users.messages.list({ userId: ANN, maxResults: 1 })).data.messages ?? [];
    const id = encodeIdentifier({ task: 'W', address: ANN, messageId: m?.id ?? '' });
    const n = await actionCount();
    const total = (await g.users.getProfile({ userId: ANN })).data.messagesTotal;
    const labels = await labelsOf(ANN, m?.id ?? '');
    const cases: [Record<string, string>, string, RegExp][] = [
      [{ FetchAction: 'Insert', ConfigSection: 'W' }, 'GMAILCONNECTOR-MISSING-PARAMETER', /InsertXML/],
      [{ FetchAction: 'Insert', ConfigSection: 'W', InsertXML: '<insertXML><insert>' }, 'GMAILCONNECTOR-BAD-PARAMETER', /not XML/],
      [{ FetchAction: 'Insert', ConfigSection: 'W', InsertXML: insertXml([{ ref: 'a', user: 'not-an-address', raw: message(ANN, '<a@x>', 'a') }]) }, 'GMAILCONNECTOR-BAD-PARAMETER', /USER_ID must be the mailbox's address/],
      // The request's shape refuses it whole; a message's content (no Message-ID, not a message) fails its item alone (insert-once.test.ts).
      [{ FetchAction: 'Insert', ConfigSection: 'W', InsertXML: insertXml([{ ref: 'a', user: ANN, raw: message(ANN, '<a@x>', 'a') }, { ref: 'b', user: ANN, raw: message(ANN, '<b@x>', 'b'), extra: '<property name="COLOUR" value="x"/>' }]) }, 'GMAILCONNECTOR-BAD-PARAMETER', /<insert> 2: unknown property "COLOUR"/],
      [{ FetchAction: 'Insert', ConfigSection: 'W', InsertXML: insertXml([{ ref: 'a', user: ANN, path: 'http://elsewhere/x' }]) }, 'GMAILCONNECTOR-BAD-PARAMETER', /gs:\/\/bucket\/object/],
      [{ FetchAction: 'Insert', InsertXML: insertXml([{ ref: 'a', user: ANN, raw: message(ANN, '<a@x>', 'a') }]) }, 'GMAILCONNECTOR-MISSING-PARAMETER', /ConfigSection/],
      [{ FetchAction: 'Insert', ConfigSection: 'W', InsertXML: insertXml([{ ref: 'a', user: ANN, raw: message(ANN, '<dup@x>', 'a') }, { ref: 'b', user: ANN, raw: message(ANN, '<dup@x>', 'b') }]) }, 'GMAILCONNECTOR-BAD-PARAMETER', /b and a are the same message/],
      [{ FetchAction: 'Insert', ConfigSection: 'W', InsertXML: 'x'.repeat(460 * 1024) }, 'GMAILCONNECTOR-BAD-PARAMETER', /give larger messages as gs:\/\/bucket\/object/],
      [{ FetchAction: 'Update', Identifiers: id }, 'GMAILCONNECTOR-BAD-PARAMETER', /IdentifiersXML/],
      [{ FetchAction: 'Update', IdentifiersXML: `<identifiersXML><identifier value="${id}"/></identifiersXML>` }, 'GMAILCONNECTOR-BAD-PARAMETER', /ADD_LABELS/],
      [{ FetchAction: 'Update', IdentifiersXML: `<identifiersXML><identifier value="${id}"><metadata name="ADD_LABELS" value="bad label"/></identifier></identifiersXML>` }, 'GMAILCONNECTOR-BAD-PARAMETER', /label ids/],
      [{ FetchAction: 'Delete' }, 'GMAILCONNECTOR-MISSING-PARAMETER', /Identifiers/],
      [{ FetchAction: 'Delete', Identifiers: 'not-an-identifier' }, 'GMAILCONNECTOR-BAD-PARAMETER', /identifier/],
      [{ FetchAction: 'Delete', Identifiers: id, Permanent: 'maybe' }, 'GMAILCONNECTOR-BAD-PARAMETER', /Permanent/],
      [{ FetchAction: 'Hold' }, 'GMAILCONNECTOR-MISSING-PARAMETER', /Identifiers/],
      [{ FetchAction: 'ReleaseHold', Identifiers: encodeIdentifier({ task: 'NOPE', address: ANN, messageId: 'ab' }) }, 'GMAILCONNECTOR-BAD-PARAMETER', /configured task/],
      [{ FetchAction: 'Identifiers', TaskSections: 'W', Held: 'true', Sync: 'true' }, 'GMAILCONNECTOR-BAD-PARAMETER', /Held=true/],
    ];
    for (const [params, errorid, why] of cases) {
      const r = await aci('simplejson', { action: 'Fetch', ...params });
      assert.equal(r.status, 400, `${JSON.stringify(params).slice(0, 120)}: ${r.text}`);
      const err = r.data.error as Json;
      assert.equal(err.errorid, errorid, r.text);
      assert.match(err.errorstring as string, why);
    }
    assert.equal(await actionCount(), n, 'nothing was queued');
    assert.equal((await g.users.getProfile({ userId: ANN })).data.messagesTotal, total);
    assert.deepEqual(await labelsOf(ANN, m?.id ?? ''), labels);
  });

  it('per item: a mailbox outside the task, an unreadable gs:// source and a label Gmail refuses fail alone; the rest is written', async () => {
    const xml = insertXml([
      { ref: 'ok', user: ANN, raw: message(ANN, '<per-item-ok@x>', 'ok') },
      { ref: 'outside', user: RO, raw: message(RO, '<per-item-outside@x>', 'outside') },
      { ref: 'missing', user: ANN, path: 'gs://no-such-bucket-here/x.eml' },
      { ref: 'badlabel', user: ANN, raw: message(ANN, '<per-item-label@x>', 'label'), labels: 'Label_nope' },
    ]);
    const a = await results('simplejson', await fetchAction('simplejson', { FetchAction: 'Insert', ConfigSection: 'W', InsertXML: xml }), 'Error');
    assert.deepEqual(counts(a), { '@task': 'W', '@inserted': '1', '@existing': '0', '@errors': '3' });
    const [okId] = await byMessageId(ANN, '<per-item-ok@x>');
    assert.deepEqual((a.tasks as Json).success, [{ '@insert_id': 'ok', $: encodeIdentifier({ task: 'W', address: ANN, messageId: okId ?? '' }) }]);
    const failed = new Map(((a.tasks as Json).failed as Json[]).map((f) => [f['@insert_id'], f['@message'] as string]));
    assert.match(failed.get('outside') ?? '', /ro@writes\.example is not a mailbox of task W/);
    assert.match(failed.get('missing') ?? '', /gs:\/\/no-such-bucket-here\/x\.eml cannot be read/);
    assert.match(failed.get('badlabel') ?? '', /Invalid label/);
    assert.deepEqual(await byMessageId(RO, '<per-item-outside@x>'), []);
    assert.deepEqual(await byMessageId(ANN, '<per-item-label@x>'), []);
  });

  it('a gs:// source is read from Cloud Storage; Insert again finds it there and counts it existing', async () => {
    stack.storage.createBucket('insert-sources');
    const raw = message(ANN, '<from-storage@x>', 'from storage');
    await stack.deps.storage.bucket('insert-sources').file('m/1.eml').save(raw);
    const xml = insertXml([{ ref: 'gs', user: ANN, path: 'gs://insert-sources/m/1.eml' }]);
    const first = await results('simplejson', await fetchAction('simplejson', { FetchAction: 'Insert', ConfigSection: 'W', InsertXML: xml }));
    assert.deepEqual(counts(first), { '@task': 'W', '@inserted': '1', '@existing': '0', '@errors': '0' });
    const again = await results('simplejson', await fetchAction('simplejson', { FetchAction: 'Insert', ConfigSection: 'W', InsertXML: xml }));
    assert.deepEqual(counts(again), { '@task': 'W', '@inserted': '0', '@existing': '1', '@errors': '0' });
    assert.deepEqual((again.tasks as Json).success, (first.tasks as Json).success);
    assert.equal((await byMessageId(ANN, '<from-storage@x>')).length, 1);
  });

  it('a Workspace grant without the write scope fails each item with what the admin must grant', async () => {
    const d = stack.delegate;
    assert.ok(d);
    stack.auth.delegate(d.serviceAccount, { clientId: d.clientId, scopes: DELEGATED_SCOPES });
    try {
      const [m] = (await g.users.messages.list({ userId: NOGRANT })).data.messages ?? [];
      const id = encodeIdentifier({ task: 'W', address: NOGRANT, messageId: m?.id ?? '' });
      const a = await results('simplejson', await fetchAction('simplejson', { FetchAction: 'Delete', Identifiers: id }), 'Error');
      const failed = ((a.tasks as Json).failed as Json[])[0] as Json;
      assert.equal(failed.$, id);
      assert.match(failed['@message'] as string, /domain-wide delegation refused for nogrant@writes\.example .*authorise .* for the scopes https:\/\/www\.googleapis\.com\/auth\/gmail\.modify/);
      assert.ok(!(await labelsOf(NOGRANT, m?.id ?? '')).includes('TRASH'));
    } finally {
      stack.auth.delegate(d.serviceAccount, { clientId: d.clientId, scopes: [...DELEGATED_SCOPES, ...WRITE_SCOPES] });
    }
  });
});

describe('the worker checks writes again before each batch', () => {
  const MODIFY = `${G}gmail.modify`;

  it('an Update in flight when the worker is redeployed with "writes": false changes nothing; its items fail naming the setting, and the unit ends', async () => {
    const ids = await identifiersOf('LATE', LATE1);
    assert.equal(ids.length, 3);
    const before = await snapshot(LATE1);
    const changing = changingCalls(LATE1);
    // The worker's batchModify reaches Gmail and waits there, unanswered, until the worker is gone.
    const open = stack.gmail.holdCalls(LATE1, 'messages.batchModify', 0);
    try {
      const xml = `<identifiersXML>${ids.map((id) => `<identifier value="${id}"><metadata name="ADD_LABELS" value="STARRED"/></identifier>`).join('')}</identifiersXML>`;
      const token = await fetchAction('simplejson', { FetchAction: 'Update', IdentifiersXML: xml });
      await until('the batchModify reached Gmail', async () => changingCalls(LATE1), (n) => n === changing + 1);
      await stack.worker.restart({ connector: configWith('LATE', { writes: false }) });
      open();
      const a = await results('simplejson', token, 'Error');
      const why = writesOff('Update', MODIFY);
      assert.deepEqual(counts(a), { '@task': 'LATE', '@updated': '0', '@errors': '3' });
      assert.deepEqual(a.tasks, { failed: ids.map((id) => ({ '@message': why, $: id })) });
      assert.deepEqual(await snapshot(LATE1), before, 'the mailbox is as it was');
      assert.equal(changingCalls(LATE1), changing + 1, 'no other call that changes the mailbox');
      const [unit] = await stack.units(token);
      assert.equal(unit?.status, 'Error');
      assert.equal(unit?.error, `3 items failed: ${why}; ${why}; ${why}`);
      await until('the queue holds no task of the action', () => tasksOf(token), (n) => n === 0);
    } finally {
      open();
      await stack.worker.restart();
    }
  });

  it('a Delete half done when the worker is redeployed with "writes": false keeps its committed batch and changes nothing more', async () => {
    const ids = await identifiersOf('LATE', LATE2);
    assert.equal(ids.length, 60);
    const before = await snapshot(LATE2);
    // The first batch (50 messages) is trashed; the second's calls wait at Gmail.
    const open = stack.gmail.holdCalls(LATE2, 'messages.trash', 50);
    try {
      const token = await fetchAction('simplejson', { FetchAction: 'Delete', Identifiers: ids.join(',') });
      await until('the first batch is committed', async () => (await stack.units(token))[0]?.messages ?? 0, (n) => n === 50);
      await until('the second batch reached Gmail', async () => stack.gmail.stats().callsByUser[LATE2]?.['messages.trash'] ?? 0, (n) => n > 50);
      await stack.worker.restart({ connector: configWith('LATE', { writes: false }) });
      open();
      const a = await results('simplejson', token, 'Error');
      const why = writesOff('Delete', MODIFY);
      assert.deepEqual(counts(a), { '@task': 'LATE', '@deleted': '50', '@absent': '0', '@errors': '10' });
      assert.deepEqual(a.tasks, { success: ids.slice(0, 50), failed: ids.slice(50).map((id) => ({ '@message': why, $: id })) });
      const after = await snapshot(LATE2);
      const trashed = new Set(ids.slice(0, 50).map((id) => decodeIdentifier(id).messageId));
      const want = Object.fromEntries(Object.entries(before.messages as Record<string, string[]>).map(([m, l]) => [m, trashed.has(m) ? [...l, 'TRASH'].sort() : l]));
      assert.deepEqual(after.messages, want, 'the first batch in the Trash, the rest as it was');
      assert.equal(after.messagesTotal, before.messagesTotal);
      await until('the queue holds no task of the action', () => tasksOf(token), (n) => n === 0);
    } finally {
      open();
      await stack.worker.restart();
    }
  });

  it('a Delete queued for a mailbox the worker\'s configuration has since taken out of the task changes nothing', async () => {
    const ids = await identifiersOf('LATE', GONE);
    const before = await snapshot(GONE);
    const changing = changingCalls(GONE);
    await stack.worker.kill();
    try {
      const token = await fetchAction('simplejson', { FetchAction: 'Delete', Identifiers: ids.join(','), Permanent: 'true' });
      await stack.worker.start({ connector: configWith('LATE', { users: [LATE1, LATE2, QUEUED] }) });
      const a = await results('simplejson', token, 'Error');
      const why = `Delete with Permanent=true refused: ${GONE} is not a mailbox of task LATE in the worker's configuration (CONNECTOR_CONFIG tasks.LATE.users or domain)`;
      assert.deepEqual(counts(a), { '@task': 'LATE', '@deleted': '0', '@absent': '0', '@errors': '3' });
      assert.deepEqual(a.tasks, { failed: ids.map((id) => ({ '@message': why, $: id })) });
      assert.deepEqual(await snapshot(GONE), before);
      assert.equal(changingCalls(GONE), changing, 'no call that changes the mailbox');
    } finally {
      await stack.worker.restart();
    }
  });

  it('an Insert queued before "writes": false is deployed imports nothing; its item fails naming the setting', async () => {
    const before = await snapshot(QUEUED);
    await stack.worker.kill();
    try {
      const token = await fetchAction('simplejson', { FetchAction: 'Insert', ConfigSection: 'LATE', InsertXML: insertXml([{ ref: 'queued', user: QUEUED, raw: message(QUEUED, '<queued@x>', 'queued') }]) });
      await stack.worker.start({ connector: configWith('LATE', { writes: false }) });
      const a = await results('simplejson', token, 'Error');
      assert.deepEqual(counts(a), { '@task': 'LATE', '@inserted': '0', '@existing': '0', '@errors': '1' });
      const [failed] = (a.tasks as Json).failed as Json[];
      assert.deepEqual([failed?.['@insert_id'], failed?.['@message']], ['queued', writesOff('Insert', `${G}gmail.insert and ${G}gmail.readonly`)]);
      assert.deepEqual(await byMessageId(QUEUED, '<queued@x>'), []);
      assert.deepEqual(await snapshot(QUEUED), before);
    } finally {
      await stack.worker.restart();
    }
  });
});

describe('DryRun=true', () => {
  it('Delete and Remove report what they would do, per identifier, and change nothing', async () => {
    const ids = await identifiersOf('DRY', DRY);
    assert.equal(ids.length, 6);
    const ghost = encodeIdentifier({ task: 'DRY', address: DRY, messageId: 'abcdef0123' });
    const before = await snapshot(DRY);
    const changing = changingCalls(DRY);
    const runs: [Format, Record<string, string>, string][] = [
      ['xml', { FetchAction: 'Delete', DryRun: 'true' }, 'wouldTrash'],
      ['json', { FetchAction: 'Remove', DryRun: 'True', Permanent: 'true' }, 'wouldDelete'],
      ['simplejson', { FetchAction: 'Delete', DryRun: 'TRUE', Permanent: 'false' }, 'wouldTrash'],
    ];
    for (const [format, params, would] of runs) {
      const a = await results(format, await fetchAction(format, { ...params, Identifiers: [...ids, ghost].join(',') }));
      assert.deepEqual(counts(a), { '@task': 'DRY', '@deleted': '6', '@absent': '1', '@errors': '0' }, format);
      assert.deepEqual(a.tasks, { success: [...ids.map((id) => ({ '@dryrun': would, $: id })), { '@dryrun': 'absent', $: ghost }] }, format);
    }
    assert.deepEqual(await snapshot(DRY), before, 'the mailbox is exactly as it was');
    assert.equal(changingCalls(DRY), changing, 'no call that changes the mailbox');
  });

  it('Update reports what it would do, as the real Update then does, and changes nothing', async () => {
    const ids = await identifiersOf('DRY', DRYU);
    assert.equal(ids.length, 3);
    const [a1, a2, a3] = ids as [string, string, string];
    const ghost = encodeIdentifier({ task: 'DRY', address: DRYU, messageId: 'abcdef0123' });
    const item = (id: string, add: string, remove?: string) =>
      `<identifier value="${id}"><metadata name="ADD_LABELS" value="${add}"/>${remove ? `<metadata name="REMOVE_LABELS" value="${remove}"/>` : ''}</identifier>`;
    const xml = `<identifiersXML>${item(a1, 'STARRED', 'INBOX')}${item(a2, 'STARRED', 'INBOX')}${item(a3, 'Label_nope')}${item(ghost, 'STARRED')}</identifiersXML>`;
    const before = await snapshot(DRYU);
    const changing = changingCalls(DRYU);
    const dry = await results('simplejson', await fetchAction('simplejson', { FetchAction: 'Update', IdentifiersXML: xml, DryRun: 'true' }), 'Error');
    assert.deepEqual(counts(dry), { '@task': 'DRY', '@updated': '2', '@errors': '2' });
    assert.deepEqual(dry.tasks, {
      success: [
        { '@dryrun': 'wouldUpdate', $: a1 },
        { '@dryrun': 'wouldUpdate', $: a2 },
      ],
      failed: [
        { '@message': `changing the labels of 1 messages of ${DRYU} would be refused: Invalid label: Label_nope (not a label id of the mailbox)`, $: a3 },
        { '@dryrun': 'absent', '@message': `message abcdef0123 is not in ${DRYU}'s mailbox`, $: ghost },
      ],
    });
    assert.deepEqual(await snapshot(DRYU), before, 'the mailbox is exactly as it was');
    assert.equal(changingCalls(DRYU), changing, 'no call that changes the mailbox');

    // The real Update does what the dry run said.
    const real = await results('simplejson', await fetchAction('simplejson', { FetchAction: 'Update', IdentifiersXML: xml }), 'Error');
    assert.deepEqual(counts(real), counts(dry));
    assert.deepEqual((real.tasks as Json).success, [a1, a2]);
    assert.deepEqual(((real.tasks as Json).failed as Json[]).map((f) => f.$), [a3, ghost]);
    const labels = before.messages as Record<string, string[]>;
    for (const id of [a1, a2]) {
      const m = decodeIdentifier(id).messageId;
      assert.deepEqual(await labelsOf(DRYU, m), [...(labels[m] ?? []).filter((l) => l !== 'INBOX'), 'STARRED'].sort());
    }
  });

  it('is parsed strictly, needs what the real action needs, and is refused by actions without one', async () => {
    // Requests are refused before any message is looked for: identifiers of no message will do.
    const id = encodeIdentifier({ task: 'DRY', address: DRY, messageId: 'abcdef0123' });
    const roId = encodeIdentifier({ task: 'RO', address: RO, messageId: 'abcdef0123' });
    const n = await actionCount();
    const before = await snapshot(DRY);
    const bad = (v: string) => `Bad value "${v}" for parameter DryRun: expected true or false (DryRun=true shows what the action would change and changes nothing).`;
    const cases: [Record<string, string>, number, string, string | RegExp][] = [
      [{ FetchAction: 'Delete', Identifiers: id, DryRun: 'maybe' }, 400, 'GMAILCONNECTOR-BAD-PARAMETER', bad('maybe')],
      [{ FetchAction: 'Delete', Identifiers: id, DryRun: 'yes' }, 400, 'GMAILCONNECTOR-BAD-PARAMETER', bad('yes')],
      [{ FetchAction: 'Remove', Identifiers: id, DryRun: '' }, 400, 'GMAILCONNECTOR-BAD-PARAMETER', bad('')],
      [{ FetchAction: 'Update', IdentifiersXML: `<identifiersXML><identifier value="${id}"><metadata name="ADD_LABELS" value="STARRED"/></identifier></identifiersXML>`, DryRun: '1' }, 400, 'GMAILCONNECTOR-BAD-PARAMETER', bad('1')],
      [{ FetchAction: 'Insert', ConfigSection: 'DRY', InsertXML: insertXml([{ ref: 'x', user: DRY, raw: message(DRY, '<dry@x>', 'dry') }]), DryRun: 'true' }, 400, 'GMAILCONNECTOR-BAD-PARAMETER',
        'Bad value "true" for parameter DryRun: expected left out (or false): Insert has no dry run; Update, Delete, Remove have.'],
      [{ FetchAction: 'Hold', Identifiers: id, DryRun: 'true' }, 400, 'GMAILCONNECTOR-BAD-PARAMETER', /Hold has no dry run/],
      [{ FetchAction: 'Delete', Identifiers: roId, DryRun: 'true' }, 403, 'GMAILCONNECTOR-TURNED-OFF',
        /^Delete, as a dry run \(DryRun=true\), needs what the real one needs, and writes are off for task RO: set "writes": true .*gmail\.modify/],
      [{ FetchAction: 'Delete', Identifiers: roId, DryRun: 'true', Permanent: 'true' }, 403, 'GMAILCONNECTOR-TURNED-OFF', /^Delete with Permanent=true, as a dry run \(DryRun=true\), .*https:\/\/mail\.google\.com\//],
    ];
    for (const [params, status, errorid, why] of cases) {
      const r = await aci('simplejson', { action: 'Fetch', ...params });
      assert.equal(r.status, status, `${JSON.stringify(params).slice(0, 120)}: ${r.text}`);
      const err = r.data.error as Json;
      assert.equal(err.errorid, errorid, r.text);
      if (typeof why === 'string') assert.equal(err.errorstring, why);
      else assert.match(err.errorstring as string, why);
    }
    assert.equal(await actionCount(), n, 'nothing was queued');
    assert.deepEqual(await snapshot(DRY), before);
  });
});

describe('never imported twice', () => {
  it('an import whose answer is lost is looked for before it is retried', async () => {
    const before = stack.gmail.stats().calls['messages.import'] ?? 0;
    stack.gmail.loseAnswers('messages.import', 1);
    const a = await results('simplejson', await fetchAction('simplejson', { FetchAction: 'Insert', ConfigSection: 'W', InsertXML: insertXml([{ ref: 'lost', user: ANN, raw: message(ANN, '<lost-answer@x>', 'lost') }]) }));
    assert.equal(stack.gmail.stats().lost, 1);
    assert.deepEqual(counts(a), { '@task': 'W', '@inserted': '1', '@existing': '0', '@errors': '0' });
    assert.equal((stack.gmail.stats().calls['messages.import'] ?? 0) - before, 1, 'one import call');
    assert.equal((await byMessageId(ANN, '<lost-answer@x>')).length, 1);
  });

  it('a worker killed between the import and its commit: the redelivery finds the message and imports nothing', async () => {
    const before = stack.gmail.stats().calls['messages.import'] ?? 0;
    const lost = stack.gmail.stats().lost;
    stack.gmail.loseAnswers('messages.import', 1);
    const token = await fetchAction('simplejson', { FetchAction: 'Insert', ConfigSection: 'W', InsertXML: insertXml([{ ref: 'killed', user: ANN, raw: message(ANN, '<killed@x>', 'killed') }]) });
    await until('the import was applied', async () => stack.gmail.stats().lost, (n) => n > lost, 60_000);
    await stack.worker.kill();
    await stack.worker.start();
    const a = await results('simplejson', token);
    assert.deepEqual(counts(a), { '@task': 'W', '@inserted': '1', '@existing': '0', '@errors': '0' });
    const found = await byMessageId(ANN, '<killed@x>');
    assert.equal(found.length, 1, 'one message');
    assert.deepEqual((a.tasks as Json).success, [{ '@insert_id': 'killed', $: encodeIdentifier({ task: 'W', address: ANN, messageId: found[0] ?? '' }) }]);
    assert.equal((stack.gmail.stats().calls['messages.import'] ?? 0) - before, 1, 'one import call');
    const [unit] = await stack.units(token);
    assert.ok((unit?.attempts ?? 0) >= 2, 'the unit was delivered again');
  });
});

describe('Hold and ReleaseHold', () => {
  it('a held document survives its message\'s deletion and change, is listed as held, and goes at the first sync after ReleaseHold', async () => {
    const sync = async () => {
      const t = await stack.synchronize('KEEP');
      const a = await stack.waitFor(t, ENDED, 120_000);
      assert.equal(a.status, 'Finished', a.error ?? '');
      return t;
    };
    await sync();
    const ids = ((await g.users.messages.list({ userId: KEEP })).data.messages ?? []).map((m) => m.id ?? '');
    const [gone, changed, ...rest] = ids;
    const idOf = (messageId: string) => encodeIdentifier({ task: 'KEEP', address: KEEP, messageId });
    const hold = await results('simplejson', await fetchAction('simplejson', { FetchAction: 'Hold', Identifiers: [gone, changed].map((x) => idOf(x ?? '')).join(',') }));
    assert.deepEqual(counts(hold), { '@task': 'KEEP', '@holds': '2', '@errors': '0' });
    const before = await stack.sink('KEEP', KEEP);
    const docOf = (messageId: string) => `KEEP:${KEEP}:${messageId}`;

    await g.users.messages.delete({ userId: KEEP, id: gone ?? '' });
    await g.users.messages.modify({ userId: KEEP, id: changed ?? '', requestBody: { addLabelIds: ['STARRED'] } });
    await g.users.messages.delete({ userId: KEEP, id: rest[0] ?? '' });
    const t1 = await sync();
    let sink = await stack.sink('KEEP', KEEP);
    assert.equal(sink.has(docOf(rest[0] ?? '')), false, 'an unheld document goes');
    assert.deepEqual({ ...sink.get(docOf(gone ?? '')), deletedInSource: undefined, epoch: undefined }, { ...before.get(docOf(gone ?? '')), deletedInSource: undefined, epoch: undefined });
    assert.equal(sink.get(docOf(gone ?? ''))?.deletedInSource, true);
    assert.deepEqual(sink.get(docOf(changed ?? ''))?.labels, before.get(docOf(changed ?? ''))?.labels, 'a held document is not overwritten');
    assert.equal(sink.get(docOf(changed ?? ''))?.changedInSource, true);
    const c1 = await countsOf(stack, t1, 'KEEP');
    assert.deepEqual([c1.deleted, c1.updated, c1.unchanged], [1, 0, 2]);

    // A full listing (the history lost) keeps them too, its sweep included.
    for (let i = 0; i < 8; i++) await g.users.messages.modify({ userId: KEEP, id: rest[1] ?? '', requestBody: i % 2 ? { removeLabelIds: ['IMPORTANT'] } : { addLabelIds: ['IMPORTANT'] } });
    await sync();
    sink = await stack.sink('KEEP', KEEP);
    assert.equal(sink.get(docOf(gone ?? ''))?.deletedInSource, true);
    assert.equal(sink.get(docOf(changed ?? ''))?.changedInSource, true);

    const listed = await results('simplejson', await fetchAction('simplejson', { FetchAction: 'Identifiers', TaskSections: 'KEEP', Held: 'true' }));
    assert.deepEqual(
      ((listed.identifiers as Json).identifier as Json[]).map((e) => [e.$, e['@deletedInSource'], e['@changedInSource']]).sort(),
      [[idOf(gone ?? ''), 'true', 'false'], [idOf(changed ?? ''), 'false', 'true']].sort(),
    );

    const release = await results('simplejson', await fetchAction('simplejson', { FetchAction: 'ReleaseHold', Identifiers: [gone, changed].map((x) => idOf(x ?? '')).join(',') }));
    assert.deepEqual(counts(release), { '@task': 'KEEP', '@releasedholds': '2', '@errors': '0' });
    // The next run is incremental: Gmail's history has nothing new, yet the released documents are examined again.
    const t2 = await sync();
    await assertSinkMirrors(stack, g, 'KEEP', KEEP);
    sink = await stack.sink('KEEP', KEEP);
    for (const d of sink.values()) assert.deepEqual([d.held, d.released, d.deletedInSource, d.changedInSource], [undefined, undefined, undefined, undefined]);
    const c2 = await countsOf(stack, t2, 'KEEP');
    assert.deepEqual([c2.deleted, c2.updated], [1, 1]);
    const again = await results('simplejson', await fetchAction('simplejson', { FetchAction: 'ReleaseHold', Identifiers: idOf(changed ?? '') }), 'Error');
    assert.match((((again.tasks as Json).failed as Json[])[0] as Json)['@message'] as string, /not on hold/);
  });
});
