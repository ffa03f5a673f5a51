// The Gmail emulator through the real googleapis client over HTTP.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { google, type gmail_v1 } from 'googleapis';
import iconv from 'iconv-lite';
import { simpleParser } from 'mailparser';
import { parseFromLine, readMbox } from './gmail/mbox.js';
import { parseQueryDate } from './gmail/query.js';
import { OWNER_TOKEN, SCOPES, startGmailEmulator, type GmailEmulator, type GmailEmulatorOptions } from './gmail/index.js';
import { optionsFromEnv } from './gmail/env.js';
import { METHOD_COSTS } from './gmail/quota.js';
import { startGoogleAuthEmulator, type GoogleAuthEmulator } from './google-auth/index.js';

const DEMO_DIR = fileURLToPath(new URL('../fixtures/demo', import.meta.url));
const MESSY_DIR = fileURLToPath(new URL('../fixtures/messy', import.meta.url));
const DEMO = 'demo@example.com';
const MESSY = 'messy@example.com';

interface Expected {
  index: number;
  id: string;
  raw: Buffer;
  labels: string[];
  date: number | null;
  header: string; // header block, Latin-1 text
  messageId: string | null;
}

async function expectedMessages(path: string): Promise<Expected[]> {
  const out: Expected[] = [];
  for await (const e of readMbox(path)) {
    const text = e.raw.toString('latin1');
    const end = text.search(/\r?\n\r?\n/);
    const header = end === -1 ? text : text.slice(0, end);
    const sender = parseFromLine(e.fromLine).sender;
    const labelLine = /^X-Gmail-Labels: (.*)$/m.exec(header)?.[1]?.replace(/\r$/, '') ?? '';
    out.push({
      index: e.index,
      id: /^\d+@xxx$/.test(sender) ? BigInt(sender.slice(0, -4)).toString(16) : '',
      raw: e.raw,
      labels: labelLine === '' ? [] : labelLine.split(','),
      date: parseFromLine(e.fromLine).date,
      header,
      messageId: /^Message-ID:[ \t]*(.*?)\r?$/im.exec(header)?.[1] ?? null,
    });
  }
  return out;
}

const isSpamOrTrash = (e: Expected): boolean => e.labels.includes('Spam') || e.labels.includes('Trash');

function clients(emulator: GmailEmulator, token: string | null = OWNER_TOKEN) {
  const auth = new google.auth.OAuth2();
  if (token) auth.setCredentials({ access_token: token });
  // retry: false, so that the client shows every 429/5xx the emulator answers.
  const gmail = google.gmail({ version: 'v1', rootUrl: emulator.url, auth: token ? auth : undefined, retry: false });
  const admin = google.admin({ version: 'directory_v1', rootUrl: emulator.url, auth, retry: false });
  return { gmail, admin };
}

interface HttpError {
  status: number;
  retryAfter: string | null;
  body: { error: { code: number; message: string; status: string; errors: Array<{ reason: string; domain: string }> } };
}

function httpError(err: unknown): HttpError {
  const e = err as { response?: { status: number; headers: Headers; data: unknown } };
  assert.ok(e.response, `expected an HTTP error, got ${String(err)}`);
  return {
    status: e.response.status,
    retryAfter: e.response.headers.get('retry-after'),
    body: e.response.data as HttpError['body'],
  };
}

async function failure(p: Promise<unknown>): Promise<HttpError> {
  try {
    await p;
  } catch (err) {
    return httpError(err);
  }
  assert.fail('the call succeeded');
}

async function listAll(
  gmail: gmail_v1.Gmail,
  params: gmail_v1.Params$Resource$Users$Messages$List,
): Promise<Array<{ id: string; threadId: string }>> {
  const out: Array<{ id: string; threadId: string }> = [];
  let pageToken: string | undefined;
  do {
    const res = await gmail.users.messages.list({ ...params, pageToken });
    for (const m of res.data.messages ?? []) out.push({ id: m.id as string, threadId: m.threadId as string });
    pageToken = res.data.nextPageToken ?? undefined;
  } while (pageToken);
  return out;
}

function leavesOf(part: gmail_v1.Schema$MessagePart): gmail_v1.Schema$MessagePart[] {
  return part.parts && part.parts.length > 0 ? part.parts.flatMap(leavesOf) : [part];
}

const header = (m: gmail_v1.Schema$Message, name: string): string | undefined =>
  m.payload?.headers?.find((h) => h.name?.toLowerCase() === name.toLowerCase())?.value ?? undefined;

async function withEmulator(opts: GmailEmulatorOptions, fn: (e: GmailEmulator) => Promise<void>): Promise<void> {
  const e = await startGmailEmulator(opts);
  try {
    await fn(e);
  } finally {
    await e.close();
  }
}

const RAW_MESSAGE = (subject: string, extra = ''): string =>
  `From: Tester <tester@example.org>\r\nTo: ${DEMO}\r\nSubject: ${subject}\r\nDate: Tue, 2 Jan 2024 10:00:00 +0000\r\n` +
  `Message-ID: <${subject.replace(/\W/g, '')}@example.org>\r\n${extra}Content-Type: text/plain; charset=UTF-8\r\n\r\nHello from ${subject}.\r\n`;

void describe('gmail emulator over googleapis', () => {
  let emulator: GmailEmulator;
  let gmail: gmail_v1.Gmail;
  let expected: Expected[];
  const byId = new Map<string, Expected>();

  before(async () => {
    [emulator, expected] = await Promise.all([
      startGmailEmulator({ dataDir: DEMO_DIR, quotaUnitsPerMinute: 0 }),
      expectedMessages(`${DEMO_DIR}/${DEMO}.mbox`),
    ]);
    for (const e of expected) byId.set(e.id, e);
    ({ gmail } = clients(emulator));
  });
  after(async () => {
    await emulator?.close();
  });

  void test('pages through every message exactly once; counts agree with getProfile and includeSpamTrash', async () => {
    assert.equal(expected.length, 1000);
    assert.deepEqual(emulator.mailboxes(), [DEMO]);
    const profile = (await gmail.users.getProfile({ userId: DEMO })).data;
    assert.equal(profile.emailAddress, DEMO);
    assert.equal(profile.messagesTotal, 1000);
    assert.match(profile.historyId ?? '', /^\d+$/);

    const first = await gmail.users.messages.list({ userId: DEMO, maxResults: 500, includeSpamTrash: true });
    assert.equal(first.data.messages?.length, 500);
    assert.equal(first.data.resultSizeEstimate, 1000);
    const all = await listAll(gmail, { userId: DEMO, maxResults: 500, includeSpamTrash: true });
    assert.equal(all.length, profile.messagesTotal);
    assert.equal(new Set(all.map((m) => m.id)).size, 1000);
    // Ids come from Takeout's separator lines ("From <decimal id>@xxx …"), in hex.
    const fromLineIds = expected.map((e) => e.id).filter((id) => id !== '');
    assert.equal(fromLineIds.length, 1000);
    assert.deepEqual(new Set(all.map((m) => m.id)), new Set(fromLineIds));

    const visible = await listAll(gmail, { userId: DEMO, maxResults: 500 });
    const expectedVisible = expected.filter((e) => !isSpamOrTrash(e));
    assert.ok(visible.length < 1000);
    assert.equal(visible.length, expectedVisible.length);
    assert.deepEqual(new Set(visible.map((m) => m.id)), new Set(expectedVisible.map((e) => e.id)));

    // Newest first, as Gmail lists.
    const dates = all.map((m) => byId.get(m.id)?.date ?? 0);
    for (let i = 1; i < dates.length; i++) assert.ok(dates[i - 1]! >= dates[i]!, 'newest first');
    // Default page size.
    assert.equal((await gmail.users.messages.list({ userId: DEMO })).data.messages?.length, 100);
  });

  void test('every format agrees with the mbox: raw bytes, Message-ID, dates, sizes, and the full tree', async () => {
    const sample = expected.filter((e) => e.index % 23 === 0 || e.index % 50 === 7 || e.index % 200 === 123 || e.index % 500 === 311);
    let attachmentsChecked = 0;
    let textsChecked = 0;
    let largeBodies = 0;
    for (const e of sample) {
      const raw = (await gmail.users.messages.get({ userId: DEMO, id: e.id, format: 'raw' })).data;
      assert.deepEqual(Buffer.from(raw.raw ?? '', 'base64url'), e.raw, `raw of message ${e.index}`);
      assert.equal(raw.sizeEstimate, e.raw.length);
      assert.equal(raw.internalDate, String(e.date));
      assert.equal(raw.payload, undefined);

      const minimal = (await gmail.users.messages.get({ userId: DEMO, id: e.id, format: 'minimal' })).data;
      assert.equal(minimal.id, e.id);
      assert.equal(minimal.payload, undefined);
      assert.equal(minimal.raw, undefined);
      assert.equal(typeof minimal.snippet, 'string');
      assert.match(minimal.historyId ?? '', /^\d+$/);
      assert.equal(minimal.threadId, raw.threadId);

      const meta = (
        await gmail.users.messages.get({ userId: DEMO, id: e.id, format: 'metadata', metadataHeaders: ['Message-ID', 'Subject'] })
      ).data;
      const names = (meta.payload?.headers ?? []).map((h) => h.name?.toLowerCase());
      assert.ok(names.every((n) => n === 'message-id' || n === 'subject'), `only the asked headers: ${names.join(',')}`);
      assert.equal(header(meta, 'Message-ID') ?? null, e.messageId);
      assert.equal(meta.payload?.body, undefined);

      const full = (await gmail.users.messages.get({ userId: DEMO, id: e.id })).data;
      assert.ok(full.payload);
      assert.equal(full.payload.partId, '');
      assert.equal(header(full, 'Message-ID') ?? null, e.messageId);
      if (/^X-GM-THRID: (\d+)/m.test(e.header)) {
        assert.equal(full.threadId, BigInt(/^X-GM-THRID: (\d+)/m.exec(e.header)?.[1] ?? '0').toString(16));
      }
      // Compare with an independent parser of the same bytes.
      const parsed = await simpleParser(e.raw);
      const leaves = leavesOf(full.payload);
      for (const att of parsed.attachments) {
        if (!att.filename || att.contentType === 'message/rfc822') continue;
        const part = leaves.find((l) => l.filename === att.filename);
        assert.ok(part, `part for ${att.filename}`);
        assert.ok(part.body?.attachmentId, 'attachments come by attachmentId');
        assert.equal(part.body.data, undefined);
        const got = (
          await gmail.users.messages.attachments.get({ userId: DEMO, messageId: e.id, id: part.body.attachmentId })
        ).data;
        assert.equal(got.size, att.size);
        assert.deepEqual(Buffer.from(got.data ?? '', 'base64url'), att.content);
        attachmentsChecked++;
      }
      const plain = leaves.filter((l) => l.mimeType === 'text/plain' && !l.filename);
      if (plain.length === 1 && plain[0]?.body?.data && !leaves.some((l) => l.mimeType === 'message/rfc822') && parsed.text) {
        const charset = /charset="?([^";\s]+)/i.exec(plain[0].headers?.find((h) => h.name?.toLowerCase() === 'content-type')?.value ?? '')?.[1];
        const bytes = Buffer.from(plain[0].body.data, 'base64url');
        const text = iconv.decode(bytes, charset && iconv.encodingExists(charset) ? charset : 'utf-8');
        assert.equal(text.replace(/\s+/g, ' ').trim(), parsed.text.replace(/\s+/g, ' ').trim(), `text of message ${e.index}`);
        textsChecked++;
      }
      for (const l of leaves) {
        if (!l.filename && l.body?.attachmentId) {
          largeBodies++;
          assert.ok((l.body.size ?? 0) > 64 * 1024);
        }
      }
    }
    assert.ok(sample.length >= 60, `sample of ${sample.length}`);
    assert.ok(attachmentsChecked >= 5, `attachments checked: ${attachmentsChecked}`);
    assert.ok(textsChecked >= 10, `texts checked: ${textsChecked}`);
    assert.ok(largeBodies >= 1, 'a body over 64 KiB is served by attachmentId');
  });

  void test('large attachments (over 100 KB) are fetched by attachmentId', async () => {
    const large = expected.filter((e) => e.index % 200 === 123);
    assert.equal(large.length, 5);
    for (const e of large) {
      const full = (await gmail.users.messages.get({ userId: DEMO, id: e.id, format: 'full' })).data;
      const pdf = leavesOf(full.payload ?? {}).find((l) => l.mimeType === 'application/pdf');
      assert.ok(pdf?.body?.attachmentId);
      assert.ok((pdf.body.size ?? 0) > 100_000);
      const got = (await gmail.users.messages.attachments.get({ userId: DEMO, messageId: e.id, id: pdf.body.attachmentId })).data;
      assert.equal(got.size, pdf.body.size);
      assert.equal(Buffer.from(got.data ?? '', 'base64url').subarray(0, 8).toString('latin1'), '%PDF-1.4');
    }
  });

  void test('q filters, labelIds and includeSpamTrash select what Gmail would', async () => {
    const ids = async (params: gmail_v1.Params$Resource$Users$Messages$List): Promise<Set<string>> =>
      new Set((await listAll(gmail, { userId: DEMO, maxResults: 500, ...params })).map((m) => m.id));
    const want = (pred: (e: Expected) => boolean, spamTrash = false): Set<string> =>
      new Set(expected.filter((e) => (spamTrash || !isSpamOrTrash(e)) && pred(e)).map((e) => e.id));

    const fromBot = await ids({ q: 'from:ci@builds.example.net' });
    assert.ok(fromBot.size > 0);
    assert.deepEqual(fromBot, want((e) => /^From:.*ci@builds\.example\.net/im.test(e.header)));

    const quarterly = await ids({ q: 'subject:"quarterly report"' });
    assert.ok(quarterly.size > 0);
    assert.deepEqual(quarterly, want((e) => /^Subject:.*quarterly report/im.test(e.header)));

    const attachments = await ids({ q: 'has:attachment' });
    assert.ok(attachments.size > 0);
    assert.deepEqual(attachments, want((e) => /^Content-Disposition: attachment/im.test(e.raw.toString('latin1'))));

    const sent = await ids({ labelIds: ['SENT'] });
    assert.ok(sent.size > 0);
    assert.deepEqual(sent, want((e) => e.labels.includes('Sent')));
    assert.deepEqual(await ids({ q: 'in:sent' }), sent);

    const sentImportant = await ids({ labelIds: ['INBOX', 'IMPORTANT'] });
    assert.deepEqual(sentImportant, want((e) => e.labels.includes('Inbox') && e.labels.includes('Important')));

    const spam = await ids({ q: 'in:spam' });
    assert.ok(spam.size > 0);
    assert.deepEqual(spam, want((e) => e.labels.includes('Spam'), true));
    assert.deepEqual(await ids({ labelIds: ['TRASH'] }), want((e) => e.labels.includes('Trash'), true));
    assert.equal((await ids({ labelIds: ['UNREAD'], includeSpamTrash: true })).size, want((e) => e.labels.includes('Unread'), true).size);

    const labels = (await gmail.users.labels.list({ userId: DEMO })).data.labels ?? [];
    const work = labels.find((l) => l.name === 'Work');
    assert.equal(work?.type, 'user');
    assert.match(work?.id ?? '', /^Label_\d+$/);
    const labelled = await ids({ q: 'label:work' });
    assert.ok(labelled.size > 0);
    assert.deepEqual(labelled, want((e) => e.labels.includes('Work')));
    assert.deepEqual(await ids({ labelIds: [work?.id ?? ''] }), labelled);
    assert.deepEqual(await ids({ q: 'label:personal-finance' }), want((e) => e.labels.includes('Personal/Finance')));

    const lo = parseQueryDate('2023/01/01') as number;
    const hi = parseQueryDate('2023/02/01') as number;
    const january = await ids({ q: 'after:2023/01/01 before:2023/02/01' });
    assert.ok(january.size > 0);
    assert.deepEqual(january, want((e) => e.date !== null && e.date >= lo && e.date < hi));
    const hasAttachment = (e: Expected): boolean => /^Content-Disposition: attachment/im.test(e.raw.toString('latin1'));
    const isBot = (e: Expected): boolean => /^From:.*ci@builds\.example\.net/im.test(e.header);
    const isQuarterly = (e: Expected): boolean => /^Subject:.*quarterly report/im.test(e.header);
    assert.deepEqual(await ids({ q: 'from:ci@builds.example.net -has:attachment' }), want((e) => isBot(e) && !hasAttachment(e)));
    assert.deepEqual(
      await ids({ q: 'subject:"quarterly report" OR from:ci@builds.example.net' }),
      want((e) => isBot(e) || isQuarterly(e)),
    );
    assert.equal((await gmail.users.messages.list({ userId: DEMO, q: 'from:nobody-at-all@nowhere' })).data.messages, undefined);

    const inbox = (await gmail.users.labels.get({ userId: DEMO, id: 'INBOX' })).data;
    assert.equal(inbox.messagesTotal, expected.filter((e) => e.labels.includes('Inbox')).length);
    assert.equal(inbox.type, 'system');
  });

  void test('threads.get returns the thread, oldest first', async () => {
    const all = await listAll(gmail, { userId: DEMO, maxResults: 500, includeSpamTrash: true });
    const counts = new Map<string, number>();
    for (const m of all) counts.set(m.threadId, (counts.get(m.threadId) ?? 0) + 1);
    const [threadId, size] = [...counts].sort((a, b) => b[1] - a[1])[0] ?? ['', 0];
    assert.ok(size >= 3);
    const thread = (await gmail.users.threads.get({ userId: DEMO, id: threadId, format: 'metadata' })).data;
    assert.equal(thread.id, threadId);
    assert.equal(thread.messages?.length, size);
    const dates = (thread.messages ?? []).map((m) => Number(m.internalDate));
    assert.deepEqual(dates, [...dates].sort((a, b) => a - b));
    assert.ok((thread.messages ?? []).every((m) => m.threadId === threadId));

    const threads = (await gmail.users.threads.list({ userId: DEMO, maxResults: 5 })).data;
    assert.equal(threads.threads?.length, 5);
    assert.ok(threads.nextPageToken);
    assert.ok(threads.threads?.every((t) => typeof t.snippet === 'string' && /^\d+$/.test(t.historyId ?? '')));
    const next = (await gmail.users.threads.list({ userId: DEMO, maxResults: 5, pageToken: threads.nextPageToken })).data;
    assert.equal(new Set([...(threads.threads ?? []), ...(next.threads ?? [])].map((t) => t.id)).size, 10);
  });

  void test('fields selects a partial response', async () => {
    const res = await gmail.users.messages.list({ userId: DEMO, maxResults: 2, fields: 'messages(id),nextPageToken' });
    assert.deepEqual(Object.keys(res.data).sort(), ['messages', 'nextPageToken']);
    assert.deepEqual(Object.keys(res.data.messages?.[0] ?? {}), ['id']);
    const id = res.data.messages?.[0]?.id as string;
    const msg = await gmail.users.messages.get({ userId: DEMO, id, format: 'metadata', fields: 'id,payload/headers' });
    assert.deepEqual(Object.keys(msg.data).sort(), ['id', 'payload']);
    assert.deepEqual(Object.keys(msg.data.payload ?? {}), ['headers']);
  });

  void test('errors have Google shapes: 401 without a token, 404 unknown ids, 400 for an unknown user', async () => {
    const anonymous = clients(emulator, null).gmail;
    const unauth = await failure(anonymous.users.getProfile({ userId: DEMO }));
    assert.equal(unauth.status, 401);
    assert.equal(unauth.body.error.status, 'UNAUTHENTICATED');
    assert.equal(unauth.body.error.code, 401);

    const missing = await failure(gmail.users.messages.get({ userId: DEMO, id: 'ffffffffffffffff' }));
    assert.equal(missing.status, 404);
    assert.deepEqual(missing.body.error.errors[0], { message: 'Requested entity was not found.', domain: 'global', reason: 'notFound' });
    assert.equal(missing.body.error.status, 'NOT_FOUND');
    const badId = await failure(gmail.users.messages.get({ userId: DEMO, id: 'not-an-id' }));
    assert.equal(badId.status, 400);
    const noThread = await failure(gmail.users.threads.get({ userId: DEMO, id: 'ffffffffffffff0' }));
    assert.equal(noThread.status, 404);
    const someId = expected[0]?.id ?? '';
    const noAttachment = await failure(gmail.users.messages.attachments.get({ userId: DEMO, messageId: someId, id: 'att_nothing' }));
    assert.equal(noAttachment.status, 404);
    const noLabel = await failure(gmail.users.labels.get({ userId: DEMO, id: 'Label_999' }));
    assert.equal(noLabel.status, 404);

    const stranger = await failure(gmail.users.messages.list({ userId: 'nobody@example.com' }));
    assert.equal(stranger.status, 400);
    assert.equal(stranger.body.error.errors[0]?.reason, 'failedPrecondition');
    assert.equal(stranger.body.error.status, 'FAILED_PRECONDITION');

    // The path form with a literal "@" works as well as googleapis' %40.
    const res = await fetch(`${emulator.url}gmail/v1/users/${DEMO}/profile`, { headers: { Authorization: `Bearer ${OWNER_TOKEN}` } });
    assert.equal(res.status, 200);
    const raw401 = await fetch(`${emulator.url}gmail/v1/users/${DEMO}/profile`);
    assert.equal(raw401.status, 401);
    assert.match(raw401.headers.get('www-authenticate') ?? '', /^Bearer/);
  });

  void test('faults at 1.0: every call fails with 429, 403, 500 or 503 and Retry-After', async () => {
    const before = emulator.stats().faults;
    emulator.setFaultRate(1);
    try {
      const statuses = new Set<number>();
      for (let i = 0; i < 24; i++) {
        const call =
          i % 3 === 0
            ? gmail.users.messages.list({ userId: DEMO })
            : i % 3 === 1
              ? gmail.users.getProfile({ userId: DEMO })
              : gmail.users.messages.get({ userId: DEMO, id: expected[i]?.id ?? '' });
        const f = await failure(call);
        statuses.add(f.status);
        assert.ok([429, 403, 500, 503].includes(f.status), `status ${f.status}`);
        assert.match(f.retryAfter ?? '', /^\d+$/);
        const reason = f.body.error.errors[0]?.reason;
        if (f.status === 429 || f.status === 403) assert.equal(reason, 'rateLimitExceeded');
        else assert.equal(reason, 'backendError');
      }
      assert.ok(statuses.size >= 3, `varied statuses: ${[...statuses].join(',')}`);
      assert.equal(emulator.stats().faults - before, 24);
    } finally {
      emulator.setFaultRate(0);
    }
    assert.equal((await gmail.users.getProfile({ userId: DEMO })).status, 200);
    assert.ok((emulator.stats().calls['messages.get'] ?? 0) > 0);
  });
});

void describe('mutations and history', () => {
  void test('insert, modify and delete show in history with growing ids; old startHistoryId is 404', async () => {
    await withEmulator({ dataDir: DEMO_DIR, historyRetention: 6 }, async (emulator) => {
      const { gmail } = clients(emulator);
      const start = (await gmail.users.getProfile({ userId: DEMO })).data.historyId as string;

      // Media upload with metadata (uploadType=multipart). googleapis builds upload URLs from the
      // per-call rootUrl only (the one given to google.gmail() is ignored for them), so pass it here.
      const inserted = (
        await gmail.users.messages.insert({
          userId: DEMO,
          requestBody: { labelIds: ['INBOX', 'UNREAD'] },
          media: { mimeType: 'message/rfc822', body: RAW_MESSAGE('Inserted one') },
        }, { rootUrl: emulator.url })
      ).data;
      assert.match(inserted.id ?? '', /^[0-9a-f]{16}$/);
      assert.deepEqual(inserted.labelIds, ['INBOX', 'UNREAD']);
      const got = (await gmail.users.messages.get({ userId: DEMO, id: inserted.id as string, format: 'raw' })).data;
      assert.equal(Buffer.from(got.raw ?? '', 'base64url').toString(), RAW_MESSAGE('Inserted one'));
      assert.equal(Number(got.historyId), Number(start) + 1);
      // Inserted with internalDateSource=receivedTime: newest of all, and newer_than finds it.
      const top = await gmail.users.messages.list({ userId: DEMO, maxResults: 1 });
      assert.equal(top.data.messages?.[0]?.id, inserted.id);
      const recent = await gmail.users.messages.list({ userId: DEMO, q: 'newer_than:1d' });
      assert.deepEqual(recent.data.messages?.map((m) => m.id), [inserted.id]);

      const modified = (
        await gmail.users.messages.modify({
          userId: DEMO,
          id: inserted.id as string,
          requestBody: { addLabelIds: ['STARRED'], removeLabelIds: ['UNREAD'] },
        })
      ).data;
      assert.deepEqual(modified.labelIds?.sort(), ['INBOX', 'STARRED']);

      const victim = (await gmail.users.messages.list({ userId: DEMO, maxResults: 5 })).data.messages?.[3]?.id as string;
      const del = await gmail.users.messages.delete({ userId: DEMO, id: victim });
      assert.equal(del.status, 204);
      assert.equal((await failure(gmail.users.messages.get({ userId: DEMO, id: victim }))).status, 404);

      const history = (await gmail.users.history.list({ userId: DEMO, startHistoryId: start })).data;
      const records = history.history ?? [];
      assert.equal(records.length, 3);
      const ids = records.map((r) => Number(r.id));
      assert.ok(ids[0]! > Number(start) && ids[0]! < ids[1]! && ids[1]! < ids[2]!, 'history ids grow');
      assert.deepEqual(records[0]?.messagesAdded, [{ message: { id: inserted.id, threadId: inserted.threadId, labelIds: ['INBOX', 'UNREAD'] } }]);
      assert.deepEqual(records[1]?.labelsAdded?.[0]?.labelIds, ['STARRED']);
      assert.deepEqual(records[1]?.labelsRemoved?.[0]?.labelIds, ['UNREAD']);
      assert.equal(records[2]?.messagesDeleted?.[0]?.message?.id, victim);
      assert.equal(history.historyId, String(ids[2]));
      const profile = (await gmail.users.getProfile({ userId: DEMO })).data;
      assert.equal(profile.historyId, history.historyId);
      assert.equal(profile.messagesTotal, 1000);

      const onlyAdded = (await gmail.users.history.list({ userId: DEMO, startHistoryId: start, historyTypes: ['labelAdded'] })).data;
      assert.equal(onlyAdded.history?.length, 1);
      const starred = (await gmail.users.history.list({ userId: DEMO, startHistoryId: start, labelId: 'STARRED' })).data;
      assert.deepEqual(starred.history?.map((h) => h.id), [String(ids[1])]);
      const page1 = (await gmail.users.history.list({ userId: DEMO, startHistoryId: start, maxResults: 2 })).data;
      assert.equal(page1.history?.length, 2);
      assert.ok(page1.nextPageToken);
      const page2 = (await gmail.users.history.list({ userId: DEMO, startHistoryId: start, maxResults: 2, pageToken: page1.nextPageToken })).data;
      assert.deepEqual(page2.history?.map((h) => h.id), [String(ids[2])]);
      assert.equal(page2.nextPageToken, undefined);
      const none = (await gmail.users.history.list({ userId: DEMO, startHistoryId: history.historyId as string })).data;
      assert.equal(none.history, undefined);

      // JSON `raw` form of insert and import, trash/untrash, batchModify: more records.
      const rawJson = Buffer.from(RAW_MESSAGE('Imported two')).toString('base64url');
      const imported = (await gmail.users.messages.import({ userId: DEMO, requestBody: { raw: rawJson, labelIds: ['INBOX'] } })).data;
      assert.equal(
        (await gmail.users.messages.get({ userId: DEMO, id: imported.id as string, format: 'minimal' })).data.internalDate,
        String(Date.UTC(2024, 0, 2, 10)),
      );
      await gmail.users.messages.trash({ userId: DEMO, id: imported.id as string });
      await gmail.users.messages.untrash({ userId: DEMO, id: imported.id as string });
      await gmail.users.messages.batchModify({
        userId: DEMO,
        requestBody: { ids: [imported.id as string, inserted.id as string], addLabelIds: ['IMPORTANT'] },
      });
      // Media only (uploadType=media): no labels.
      const bare = (
        await gmail.users.messages.insert(
          { userId: DEMO, media: { mimeType: 'message/rfc822', body: RAW_MESSAGE('Bare three') } },
          { rootUrl: emulator.url },
        )
      ).data;
      assert.equal(bare.labelIds, undefined);

      // 7 more records than the 6 kept: the start point is gone.
      const gone = await failure(gmail.users.history.list({ userId: DEMO, startHistoryId: start }));
      assert.equal(gone.status, 404);
      assert.equal(gone.body.error.errors[0]?.reason, 'notFound');
      const latest = (await gmail.users.getProfile({ userId: DEMO })).data.historyId as string;
      assert.equal((await gmail.users.history.list({ userId: DEMO, startHistoryId: String(Number(latest) - 3) })).data.history?.length, 3);

      const badLabel = await failure(
        gmail.users.messages.modify({ userId: DEMO, id: inserted.id as string, requestBody: { addLabelIds: ['NOPE'] } }),
      );
      assert.equal(badLabel.status, 400);
      assert.equal((await failure(gmail.users.history.list({ userId: DEMO, startHistoryId: 'abc' }))).status, 400);
      assert.equal(emulator.stats().calls['messages.insert'], 2);
      assert.equal(emulator.stats().calls['messages.import'], 1);
    });
  });

  void test('page tokens stay valid while the mailbox changes', async () => {
    await withEmulator({ dataDir: DEMO_DIR }, async (emulator) => {
      const { gmail } = clients(emulator);
      const before = await listAll(gmail, { userId: DEMO, maxResults: 500 });
      const page1 = (await gmail.users.messages.list({ userId: DEMO, maxResults: 100 })).data;
      assert.deepEqual(page1.messages?.map((m) => m.id), before.slice(0, 100).map((m) => m.id));
      // A new newest message, and a deletion inside the next page.
      await gmail.users.messages.insert({ userId: DEMO, requestBody: { raw: Buffer.from(RAW_MESSAGE('Between pages')).toString('base64url') } });
      const deleted = before[150]?.id as string;
      await gmail.users.messages.delete({ userId: DEMO, id: deleted });
      const page2 = (await gmail.users.messages.list({ userId: DEMO, maxResults: 100, pageToken: page1.nextPageToken ?? undefined })).data;
      const wantIds = before.slice(100, 201).map((m) => m.id).filter((id) => id !== deleted);
      assert.deepEqual(page2.messages?.map((m) => m.id), wantIds);
    });
  });
});

void describe('quota', () => {
  void test('a burst over the quota gets 429 rateLimitExceeded with Retry-After; waiting that long is enough', async () => {
    // 600 units a minute: a bucket of 600 units refilled at 10 a second; messages.get costs 5.
    await withEmulator({ dataDir: DEMO_DIR, users: ['other@example.com'], quotaUnitsPerMinute: 600 }, async (emulator) => {
      const { gmail } = clients(emulator);
      const id = (await gmail.users.messages.list({ userId: DEMO, maxResults: 1 })).data.messages?.[0]?.id as string;
      let ok = 0;
      let refusal: HttpError | null = null;
      const started = Date.now();
      for (let i = 0; i < 200 && refusal === null; i++) {
        try {
          await gmail.users.messages.get({ userId: DEMO, id, format: 'minimal' });
          ok++;
        } catch (err) {
          refusal = httpError(err);
        }
      }
      assert.ok(refusal, 'the burst was refused');
      // The full bucket (120 calls), plus what it refilled while the burst ran (2 calls a second):
      // exact however slowly a loaded machine sends them.
      const refilled = Math.floor(((Date.now() - started) / 1000) * 2) + 1;
      assert.ok(ok >= 119 && ok <= 120 + refilled, `calls before the refusal: ${ok} (at most ${120 + refilled})`);
      assert.equal(refusal.status, 429);
      assert.equal(refusal.body.error.status, 'RESOURCE_EXHAUSTED');
      assert.deepEqual(
        { reason: refusal.body.error.errors[0]?.reason, domain: refusal.body.error.errors[0]?.domain },
        { reason: 'rateLimitExceeded', domain: 'usageLimits' },
      );
      const wait = Number(refusal.retryAfter);
      assert.ok(wait >= 1 && wait <= 2, `Retry-After ${refusal.retryAfter}`);
      assert.ok(emulator.stats().rateLimited >= 1);
      // Quota is per user: another mailbox is not affected.
      assert.equal((await gmail.users.getProfile({ userId: 'other@example.com' })).status, 200);
      await new Promise((r) => setTimeout(r, wait * 1000));
      assert.equal((await gmail.users.messages.get({ userId: DEMO, id, format: 'minimal' })).status, 200);
      // 0 is unlimited.
      emulator.setQuota(0);
      for (let i = 0; i < 150; i++) await gmail.users.messages.get({ userId: DEMO, id, format: 'minimal' });
    });
  });

  void test('quotaStatus 403 answers userRateLimitExceeded', async () => {
    // The quota's clock stands still: the count is the bucket's, however slow the calls.
    await withEmulator({ dataDir: DEMO_DIR, quotaUnitsPerMinute: 60, quotaStatus: 403, quotaClock: () => 0 }, async (emulator) => {
      const { gmail } = clients(emulator);
      let refusal: HttpError | null = null;
      let ok = 0;
      for (let i = 0; i < 100 && refusal === null; i++) {
        try {
          await gmail.users.getProfile({ userId: DEMO });
          ok++;
        } catch (err) {
          refusal = httpError(err);
        }
      }
      assert.ok(refusal);
      assert.ok(ok >= 59 && ok <= 60, `calls before the refusal: ${ok}`);
      assert.equal(refusal.status, 403);
      assert.equal(refusal.body.error.errors[0]?.reason, 'userRateLimitExceeded');
      assert.equal(refusal.body.error.errors[0]?.domain, 'usageLimits');
      assert.equal(refusal.retryAfter, '1');
    });
  });
});

void describe('messy mail', () => {
  void test('every message of a broken mbox is listed and served in every format', async () => {
    await withEmulator({ dataDir: MESSY_DIR }, async (emulator) => {
      const { gmail } = clients(emulator);
      const expected = await expectedMessages(`${MESSY_DIR}/${MESSY}.mbox`);
      assert.equal(expected.length, 14);
      const all = await listAll(gmail, { userId: MESSY, includeSpamTrash: true });
      assert.equal(all.length, 14);
      assert.equal(new Set(all.map((m) => m.id)).size, 14, 'a repeated Takeout id still gets its own id');
      assert.equal((await listAll(gmail, { userId: MESSY })).length, 12);
      const rawBodies: Buffer[] = [];
      for (const { id } of all) {
        const raw = (await gmail.users.messages.get({ userId: MESSY, id, format: 'raw' })).data;
        rawBodies.push(Buffer.from(raw.raw ?? '', 'base64url'));
        await gmail.users.messages.get({ userId: MESSY, id, format: 'minimal' });
        await gmail.users.messages.get({ userId: MESSY, id, format: 'metadata' });
        const full = (await gmail.users.messages.get({ userId: MESSY, id })).data;
        assert.ok(full.payload?.mimeType);
        for (const leaf of leavesOf(full.payload)) {
          if (leaf.body?.attachmentId) {
            const att = await gmail.users.messages.attachments.get({ userId: MESSY, messageId: id, id: leaf.body.attachmentId });
            assert.equal(att.status, 200);
          }
        }
      }
      // raw is the message as it was before mbox escaping, byte for byte.
      const sortKey = (b: Buffer): string => b.toString('base64');
      assert.deepEqual(rawBodies.map(sortKey).sort(), expected.map((e) => sortKey(e.raw)).sort());

      const get = async (q: string): Promise<gmail_v1.Schema$Message> => {
        const id = (await gmail.users.messages.list({ userId: MESSY, q, includeSpamTrash: true })).data.messages?.[0]?.id;
        assert.ok(id, `a message for ${q}`);
        return (await gmail.users.messages.get({ userId: MESSY, id })).data;
      };
      const plain = await get('rfc822msgid:plain-1@example.org');
      assert.equal(Buffer.from(plain.payload?.body?.data ?? '', 'base64url').toString(), 'Hello there.\nFrom the mbox writer, escaped once.\n>From escaped twice.\n');
      assert.deepEqual(plain.labelIds?.sort(), ['INBOX', 'UNREAD']);
      const truncated = await get('subject:"Truncated MIME"');
      assert.equal(truncated.payload?.mimeType, 'multipart/mixed');
      assert.equal(truncated.payload?.parts?.length, 2);
      assert.equal(truncated.payload?.parts?.[1]?.filename, 'half.pdf');
      const neverUsed = await get('subject:"Boundary never used"');
      assert.equal(neverUsed.payload?.mimeType, 'text/plain');
      const latin = await get('rfc822msgid:latin1-headers@example.de');
      assert.equal(header(latin, 'Subject'), 'Grüße aus Köln');
      const nested = await get('rfc822msgid:nested@example.com');
      assert.equal(header(nested, 'Subject'), 'Nested – parts');
      assert.deepEqual(
        leavesOf(nested.payload ?? {}).map((l) => `${l.partId} ${l.mimeType} ${l.filename}`),
        ['0.0 text/plain ', '0.1 text/html ', '1 message/rfc822 ', '2 text/plain café.bin'],
      );
      const headersOnly = await get('rfc822msgid:headers-only@example.com');
      assert.deepEqual(headersOnly.payload?.body, { size: 0 });
      const labels = (await gmail.users.labels.list({ userId: MESSY })).data.labels?.map((l) => l.name);
      assert.ok(labels?.includes('Odd, Label'));
      assert.ok(labels?.includes('Übel'));
      // The message without headers: listed, served as text/plain with no headers.
      const noHeaders = (
        await Promise.all(all.map(async ({ id }) => (await gmail.users.messages.get({ userId: MESSY, id, format: 'full' })).data))
      ).find((m) => (m.payload?.headers ?? []).length === 0 && (m.sizeEstimate ?? 0) > 0);
      assert.equal(noHeaders?.payload?.mimeType, 'text/plain');
      assert.equal(noHeaders?.snippet, 'This message has no header block at all. Just text.');
    });
  });
});

void describe('directory', () => {
  void test('users.list answers the mailboxes of a domain, paged', async () => {
    await withEmulator(
      { dataDir: DEMO_DIR, users: ['alice@example.com', 'bob@example.com', 'zed@other.org'] },
      async (emulator) => {
        const { admin } = clients(emulator);
        const first = (await admin.users.list({ domain: 'example.com', maxResults: 2 })).data;
        assert.equal(first.kind, 'admin#directory#users');
        assert.deepEqual(first.users?.map((u) => u.primaryEmail), ['alice@example.com', 'bob@example.com']);
        assert.ok(first.nextPageToken);
        const second = (await admin.users.list({ domain: 'example.com', maxResults: 2, pageToken: first.nextPageToken })).data;
        assert.deepEqual(second.users?.map((u) => u.primaryEmail), [DEMO]);
        assert.equal(second.nextPageToken, undefined);
        const demo = second.users?.[0];
        assert.equal(demo?.suspended, false);
        assert.match(demo?.id ?? '', /^\d{21}$/);
        assert.equal(demo?.name?.fullName, 'Demo User');
        const everyone = (await admin.users.list({ customer: 'my_customer' })).data.users ?? [];
        assert.equal(everyone.length, 4);
        const foreign = await failure(admin.users.list({ domain: 'elsewhere.org' }));
        assert.equal(foreign.status, 403);
        const anonymous = await fetch(`${emulator.url}admin/directory/v1/users?domain=example.com`);
        assert.equal(anonymous.status, 401);
        assert.equal(emulator.stats().calls['directory.users.list'], 5);
        // An empty mailbox is served too.
        const { gmail } = clients(emulator);
        assert.equal((await gmail.users.getProfile({ userId: 'zed@other.org' })).data.messagesTotal, 0);
      },
    );
  });
});

void describe('latency and lifecycle', () => {
  void test('latency delays calls; close ends pending calls and leaves nothing running', async () => {
    const emulator = await startGmailEmulator({ users: [DEMO], latencyMs: 150 });
    const { gmail } = clients(emulator);
    const t0 = performance.now();
    await gmail.users.getProfile({ userId: DEMO });
    assert.ok(performance.now() - t0 >= 140);
    emulator.setLatency(5000);
    const pending = gmail.users.getProfile({ userId: DEMO }).then(
      () => 'answered',
      () => 'failed',
    );
    await new Promise((r) => setTimeout(r, 50));
    const c0 = performance.now();
    await emulator.close();
    assert.ok(performance.now() - c0 < 1000, 'close does not wait for latency timers');
    assert.equal(await pending, 'failed');
    await emulator.close(); // idempotent
  });
});

void describe('held calls', () => {
  void test('holdCalls lets the first calls through, holds the rest until released, and a client that gives up ends its own', async () => {
    const emulator = await startGmailEmulator({ dataDir: DEMO_DIR });
    try {
      const { gmail } = clients(emulator);
      const [first, second] = ((await gmail.users.messages.list({ userId: DEMO, maxResults: 2 })).data.messages ?? []).map((m) => m.id ?? '');
      const release = emulator.holdCalls(DEMO, 'messages.get', 1);
      await gmail.users.messages.get({ userId: DEMO, id: first ?? '', format: 'minimal' });
      let answered = false;
      const held = gmail.users.messages.get({ userId: DEMO, id: second ?? '', format: 'minimal' }).then((r) => {
        answered = true;
        return r.data.id;
      });
      // Other methods and other users are not held.
      assert.equal((await gmail.users.getProfile({ userId: DEMO })).status, 200);
      const gaveUp = new AbortController();
      const abandoned = gmail.users.messages.get({ userId: DEMO, id: first ?? '', format: 'minimal' }, { signal: gaveUp.signal, retry: false }).then(
        () => 'answered',
        () => 'gave up',
      );
      // Both calls have arrived and wait at the gate.
      while ((emulator.stats().calls['messages.get'] ?? 0) < 3) await new Promise((r) => setTimeout(r, 5));
      gaveUp.abort();
      assert.equal(await abandoned, 'gave up');
      assert.equal(answered, false);
      release();
      assert.equal(await held, second);
      // Released: calls go through again.
      assert.equal((await gmail.users.messages.get({ userId: DEMO, id: first ?? '', format: 'minimal' })).status, 200);
    } finally {
      await emulator.close();
    }
  });
});

void describe('hangs', () => {
  /** One Gmail call over plain fetch: its status, or 'timeout' when the client gave up after `timeoutMs`. */
  async function call(e: GmailEmulator, path: string, timeoutMs = 300): Promise<number | 'timeout'> {
    try {
      const res = await fetch(new URL(path, e.url), {
        headers: { Authorization: `Bearer ${OWNER_TOKEN}` },
        signal: AbortSignal.timeout(timeoutMs),
      });
      await res.arrayBuffer();
      return res.status;
    } catch (err) {
      if ((err as Error).name === 'TimeoutError') return 'timeout';
      throw err;
    }
  }
  const list = `gmail/v1/users/${encodeURIComponent(DEMO)}/messages`;
  const profile = `gmail/v1/users/${encodeURIComponent(DEMO)}/profile`;

  /** Waits until `check` holds, polling; fails after `timeoutMs`. */
  async function until(check: () => boolean, timeoutMs = 3000): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    while (!check()) {
      if (performance.now() > deadline) assert.fail('condition not met in time');
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  void test('at 1.0 Gmail calls are never answered until the client gives up; at 0 they answer again', async () => {
    await withEmulator({ dataDir: DEMO_DIR, quotaUnitsPerMinute: 0, hangRate: 1 }, async (emulator) => {
      const t0 = performance.now();
      assert.equal(await call(emulator, list, 300), 'timeout');
      assert.ok(performance.now() - t0 >= 290);
      assert.equal(emulator.stats().hung, 1);
      assert.equal(emulator.stats().calls['messages.list'], 1);
      assert.equal(emulator.stats().faults, 0);
      // The Directory and the health route are not Gmail calls: they answer.
      assert.equal(await call(emulator, 'admin/directory/v1/users?domain=example.com'), 200);
      assert.equal(await call(emulator, ''), 200);
      assert.equal(emulator.stats().hung, 1);

      emulator.setHangRate(0);
      assert.equal(await call(emulator, list), 200);
      assert.equal((await clients(emulator).gmail.users.getProfile({ userId: DEMO })).status, 200);
      assert.equal(emulator.stats().hung, 1);
    });
  });

  void test('close() returns promptly with a hung request open, and ends it', async () => {
    const emulator = await startGmailEmulator({ users: [DEMO], hangRate: 1 });
    const pending = call(emulator, list, 30_000).then(
      (r) => String(r),
      () => 'failed',
    );
    await until(() => emulator.stats().hung === 1);
    const c0 = performance.now();
    await emulator.close();
    assert.ok(performance.now() - c0 < 1000, 'close does not wait for hung calls');
    assert.equal(await pending, 'failed');
  });

  void test('hangs are seeded and leave the sequence of faults unchanged', async () => {
    /** Per call: 'hang', or the status answered. Hung calls are told apart by stats().hung. */
    const run = async (hangRate: number): Promise<string[]> => {
      const out: string[] = [];
      await withEmulator({ users: [DEMO], quotaUnitsPerMinute: 0, faultRate: 0.5, hangRate, seed: 7 }, async (e) => {
        for (let i = 0; i < 12; i++) {
          const before = e.stats().hung;
          const r = await call(e, profile, 250);
          const hung = e.stats().hung > before;
          assert.equal(r === 'timeout', hung, `call ${i}: ${r} but hung ${hung}`);
          out.push(hung ? 'hang' : String(r));
        }
      });
      return out;
    };
    const plain = await run(0);
    const hanging = await run(0.5);
    assert.deepEqual(await run(0.5), hanging, 'same seed, same hangs');
    assert.ok(plain.some((s) => s === '200') && plain.some((s) => s !== '200'), `faults: ${plain.join(',')}`);
    assert.ok(hanging.includes('hang') && hanging.some((s) => s !== 'hang'), `hangs: ${hanging.join(',')}`);
    hanging.forEach((s, i) => {
      if (s !== 'hang') assert.equal(s, plain[i], `call ${i} is answered as without hangs`);
    });
  });
});

void describe('tokens, scopes and me', () => {
  const SA = 'dwd@emulator-test.iam.gserviceaccount.com';
  const RUNTIME = 'fn@emulator-test.iam.gserviceaccount.com';
  const OTHER_USER = 'other@example.com';
  const ADMIN = 'admin@example.com';
  let auth: GoogleAuthEmulator;
  let emulator: GmailEmulator;
  let offsetS = 0;

  before(async () => {
    auth = await startGoogleAuthEmulator({ runtimeServiceAccount: RUNTIME, now: () => Date.now() + offsetS * 1000 });
    auth.allowSigning(RUNTIME, SA);
    auth.delegate(SA, { clientId: '100000000000000000002', scopes: [...Object.values(SCOPES)] });
    emulator = await startGmailEmulator({ dataDir: DEMO_DIR, users: [OTHER_USER, ADMIN], quotaUnitsPerMinute: 0, tokenVerifier: auth.verifyAccessToken });
  });
  after(async () => {
    await emulator.close();
    await auth.close();
  });

  /** A delegated token for `user` with `scopes`, the way the connector gets one: metadata token → signJwt → token endpoint. */
  async function mint(user: string | undefined, scopes: string[]): Promise<string> {
    const meta = await fetch(`${auth.url}computeMetadata/v1/instance/service-accounts/default/token`, { headers: { 'Metadata-Flavor': 'Google' } });
    const runtime = ((await meta.json()) as { access_token: string }).access_token;
    const iat = Math.floor(Date.now() / 1000) + offsetS;
    const claims = { iss: SA, ...(user ? { sub: user } : {}), scope: scopes.join(' '), aud: auth.tokenUrl, iat, exp: iat + 3600 };
    const signed = await fetch(`${auth.iamRootUrl}v1/projects/-/serviceAccounts/${SA}:signJwt`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${runtime}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ payload: JSON.stringify(claims) }),
    });
    const { signedJwt } = (await signed.json()) as { signedJwt: string };
    const res = await fetch(auth.tokenUrl, {
      method: 'POST',
      body: new URLSearchParams({ grant_type: 'urn:ietf:params:oauth:grant-type:jwt-bearer', assertion: signedJwt }),
    });
    assert.equal(res.status, 200);
    return ((await res.json()) as { access_token: string }).access_token;
  }

  const INSUFFICIENT = {
    error: {
      code: 403,
      message: 'Request had insufficient authentication scopes.',
      errors: [{ message: 'Insufficient Permission', domain: 'global', reason: 'insufficientPermissions' }],
      status: 'PERMISSION_DENIED',
    },
  };

  void test('401 for an unknown token and for an expired one, with Google\'s body', async () => {
    const invalid = {
      error: {
        code: 401,
        message:
          'Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.',
        errors: [{ message: 'Invalid Credentials', domain: 'global', reason: 'authError', location: 'Authorization', locationType: 'header' }],
        status: 'UNAUTHENTICATED',
      },
    };
    const unknown = await failure(clients(emulator, 'test-token').gmail.users.getProfile({ userId: DEMO }));
    assert.equal(unknown.status, 401);
    assert.deepEqual(unknown.body, invalid);
    const token = await mint(DEMO, [SCOPES.readonly]);
    assert.equal((await clients(emulator, token).gmail.users.getProfile({ userId: DEMO })).status, 200);
    offsetS += 3601;
    try {
      const expired = await failure(clients(emulator, token).gmail.users.getProfile({ userId: DEMO }));
      assert.equal(expired.status, 401);
      assert.deepEqual(expired.body, invalid);
    } finally {
      offsetS = 0;
    }
    // Without the verifier, a minted token is as unknown as any other.
    await withEmulator({ users: [DEMO] }, async (plain) => {
      assert.equal((await failure(clients(plain, token).gmail.users.getProfile({ userId: DEMO }))).status, 401);
    });
    const none = await failure(clients(emulator, null).gmail.users.getProfile({ userId: DEMO }));
    assert.equal(none.status, 401);
    assert.equal(none.body.error.errors[0]?.reason, 'required');
  });

  void test('a minted token: "me" is its user; another user is 403 Delegation denied', async () => {
    const { gmail } = clients(emulator, await mint(DEMO, [SCOPES.readonly]));
    assert.equal((await gmail.users.getProfile({ userId: 'me' })).data.emailAddress, DEMO);
    assert.equal((await gmail.users.getProfile({ userId: DEMO.toUpperCase() })).data.emailAddress, DEMO);
    const me = await gmail.users.messages.list({ userId: 'me', maxResults: 3 });
    const byAddress = await gmail.users.messages.list({ userId: DEMO, maxResults: 3 });
    assert.deepEqual(me.data, byAddress.data);
    const other = await failure(gmail.users.getProfile({ userId: OTHER_USER }));
    assert.equal(other.status, 403);
    assert.deepEqual(other.body, {
      error: {
        code: 403,
        message: `Delegation denied for ${DEMO}`,
        errors: [{ message: `Delegation denied for ${DEMO}`, domain: 'global', reason: 'forbidden' }],
        status: 'PERMISSION_DENIED',
      },
    });
  });

  void test('"me" with the owner token is 400: it has no user', async () => {
    const r = await failure(clients(emulator).gmail.users.getProfile({ userId: 'me' }));
    assert.equal(r.status, 400);
    const message =
      'userId "me" needs a token that belongs to a user: the development token "owner" has no user. Give the mailbox address as userId.';
    assert.deepEqual(r.body, {
      error: { code: 400, message, errors: [{ message, domain: 'global', reason: 'badRequest' }], status: 'INVALID_ARGUMENT' },
    });
  });

  void test('a method whose scope the token lacks is 403 insufficientPermissions', async () => {
    const readonly = clients(emulator, await mint(DEMO, [SCOPES.readonly])).gmail;
    const id = (await readonly.users.messages.list({ userId: 'me', maxResults: 1 })).data.messages?.[0]?.id as string;
    const modify = await failure(readonly.users.messages.modify({ userId: 'me', id, requestBody: { addLabelIds: ['STARRED'] } }));
    assert.equal(modify.status, 403);
    assert.deepEqual(modify.body, INSUFFICIENT);
    const inserted = await failure(
      readonly.users.messages.insert({ userId: 'me', requestBody: { raw: Buffer.from(RAW_MESSAGE('Scoped')).toString('base64url') } }),
    );
    assert.deepEqual(inserted.body, INSUFFICIENT);

    const modifier = clients(emulator, await mint(DEMO, [SCOPES.modify])).gmail;
    assert.equal((await modifier.users.messages.modify({ userId: 'me', id, requestBody: { addLabelIds: ['STARRED'] } })).status, 200);
    assert.deepEqual((await failure(modifier.users.messages.delete({ userId: 'me', id }))).body, INSUFFICIENT);
    assert.deepEqual((await failure(modifier.users.messages.batchDelete({ userId: 'me', requestBody: { ids: [id] } }))).body, INSUFFICIENT);

    const inserter = clients(emulator, await mint(DEMO, [SCOPES.insert])).gmail;
    const raw = Buffer.from(RAW_MESSAGE('Inserted with gmail.insert')).toString('base64url');
    assert.equal((await inserter.users.messages.insert({ userId: 'me', requestBody: { raw } })).status, 200);
    assert.deepEqual((await failure(inserter.users.messages.list({ userId: 'me' }))).body, INSUFFICIENT);

    const labels = clients(emulator, await mint(DEMO, [SCOPES.labels])).gmail;
    assert.equal((await labels.users.labels.list({ userId: 'me' })).status, 200);
    assert.deepEqual((await failure(labels.users.history.list({ userId: 'me', startHistoryId: '1' }))).body, INSUFFICIENT);

    // gmail.metadata: headers and labels only.
    const metadata = clients(emulator, await mint(DEMO, [SCOPES.metadata])).gmail;
    assert.equal((await metadata.users.messages.get({ userId: 'me', id, format: 'metadata' })).status, 200);
    for (const format of ['full', 'raw'] as const) {
      const r = await failure(metadata.users.messages.get({ userId: 'me', id, format }));
      assert.equal(r.status, 403);
      assert.equal(r.body.error.message, `Metadata scope doesn't allow format ${format.toUpperCase()}`);
      assert.equal(r.body.error.errors[0]?.reason, 'forbidden');
    }
    const q = await failure(metadata.users.messages.list({ userId: 'me', q: 'from:someone' }));
    assert.equal(q.status, 403);
    assert.equal(q.body.error.message, "Metadata scope does not support 'q' parameter");
    assert.equal((await metadata.users.messages.list({ userId: 'me', labelIds: ['INBOX'] })).status, 200);
    const attachment = await failure(metadata.users.messages.attachments.get({ userId: 'me', messageId: id, id: 'x' }));
    assert.deepEqual(attachment.body, INSUFFICIENT);
    // With a full-read scope as well, the metadata limits no longer apply.
    const both = clients(emulator, await mint(DEMO, [SCOPES.metadata, SCOPES.readonly])).gmail;
    assert.equal((await both.users.messages.get({ userId: 'me', id, format: 'raw' })).status, 200);
  });

  void test('Directory: the token\'s user is the admin; it needs a directory scope and lists its own domain', async () => {
    const { admin } = clients(emulator, await mint(ADMIN, [SCOPES.directoryUserReadonly]));
    const users = await admin.users.list({ domain: 'example.com' });
    assert.deepEqual(users.data.users?.map((u) => u.primaryEmail), [ADMIN, DEMO, OTHER_USER]);
    const elsewhere = await failure(admin.users.list({ domain: 'example.org' }));
    assert.equal(elsewhere.status, 403);
    assert.equal(elsewhere.body.error.message, 'Not Authorized to access this resource/api');
    const gmailOnly = clients(emulator, await mint(ADMIN, [SCOPES.readonly])).admin;
    assert.deepEqual((await failure(gmailOnly.users.list({ domain: 'example.com' }))).body, INSUFFICIENT);
    assert.equal((await failure(clients(emulator, 'nope').admin.users.list({ domain: 'example.com' }))).status, 401);
  });

  void test('the scopes of the connector\'s writes: insert and import with gmail.insert, changes with gmail.modify, deleting for good with mail.google.com only', async () => {
    const raw = Buffer.from(['Message-ID: <scoped-write@x>', 'From: a@example.org', `To: ${OTHER_USER}`, 'Subject: scoped', '', 'body', ''].join('\r\n'));
    const inserter = clients(emulator, await mint(OTHER_USER, [SCOPES.insert])).gmail;
    const imported = await inserter.users.messages.import({ userId: 'me', internalDateSource: 'dateHeader', requestBody: { labelIds: ['INBOX'] }, media: { mimeType: 'message/rfc822', body: Readable.from([raw]) } }, { rootUrl: emulator.url });
    const id = imported.data.id ?? '';
    assert.deepEqual(imported.data.labelIds, ['INBOX']);
    // gmail.insert alone cannot read, so a search for an earlier import needs another scope too.
    assert.deepEqual((await failure(inserter.users.messages.list({ userId: 'me', q: 'rfc822msgid:scoped-write@x' }))).body, INSUFFICIENT);
    const modifier = clients(emulator, await mint(OTHER_USER, [SCOPES.modify])).gmail;
    await modifier.users.messages.batchModify({ userId: 'me', requestBody: { ids: [id], addLabelIds: ['STARRED'] } });
    await modifier.users.messages.trash({ userId: 'me', id });
    assert.deepEqual((await modifier.users.messages.list({ userId: 'me', q: 'rfc822msgid:scoped-write@x', includeSpamTrash: true })).data.messages?.map((m) => m.id), [id]);
    assert.deepEqual((await failure(modifier.users.messages.batchDelete({ userId: 'me', requestBody: { ids: [id] } }))).body, INSUFFICIENT);
    assert.deepEqual((await failure(modifier.users.messages.delete({ userId: 'me', id }))).body, INSUFFICIENT);
    const full = clients(emulator, await mint(OTHER_USER, [SCOPES.mail])).gmail;
    await full.users.messages.batchDelete({ userId: 'me', requestBody: { ids: [id] } });
    assert.equal((await failure(full.users.messages.get({ userId: 'me', id }))).status, 404);
  });

  void test('a service account token without delegation is 400 failedPrecondition for Gmail', async () => {
    const token = await mint(undefined, [SCOPES.mail]);
    assert.deepEqual(auth.verifyAccessToken(token), { kind: 'service-account', email: SA });
    const r = await failure(clients(emulator, token).gmail.users.getProfile({ userId: DEMO }));
    assert.equal(r.status, 400);
    assert.equal(r.body.error.errors[0]?.reason, 'failedPrecondition');
  });
});

void describe('standalone settings', () => {
  void test('GMAIL_EMULATOR_HISTORY_RETENTION keeps that many records: an older startHistoryId is 404', async () => {
    const env = { GMAIL_EMULATOR_PORT: '0', GMAIL_EMULATOR_DATA: DEMO_DIR, GMAIL_EMULATOR_HISTORY_RETENTION: '3' };
    const opts = optionsFromEnv(env, '/nonexistent');
    assert.equal(opts.historyRetention, 3);
    assert.equal('historyRetention' in optionsFromEnv({}, DEMO_DIR), false, 'unlimited by default');
    for (const bad of ['0', '-1', 'abc', '1.5']) {
      assert.throws(() => optionsFromEnv({ GMAIL_EMULATOR_HISTORY_RETENTION: bad }, DEMO_DIR), /GMAIL_EMULATOR_HISTORY_RETENTION/);
    }
    await withEmulator(opts, async (e) => {
      const { gmail } = clients(e);
      const start = (await gmail.users.getProfile({ userId: DEMO })).data.historyId as string;
      const id = (await gmail.users.messages.list({ userId: DEMO, maxResults: 1 })).data.messages?.[0]?.id as string;
      for (let i = 0; i < 4; i++) {
        const labels = i % 2 === 0 ? { addLabelIds: ['STARRED'] } : { removeLabelIds: ['STARRED'] };
        await gmail.users.messages.modify({ userId: DEMO, id, requestBody: labels });
      }
      const old = await failure(gmail.users.history.list({ userId: DEMO, startHistoryId: start }));
      assert.equal(old.status, 404);
      const latest = (await gmail.users.getProfile({ userId: DEMO })).data.historyId as string;
      const recent = await gmail.users.history.list({ userId: DEMO, startHistoryId: String(Number(latest) - 2) });
      assert.equal(recent.status, 200);
    });
  });
});

void describe('answers lost after Gmail acted', () => {
  void test('loseAnswers: the import is applied but never answered; the next one answers, and the costs are Gmail\'s', async () => {
    await withEmulator({ users: ['lost@example.com'], quotaUnitsPerMinute: 0 }, async (emulator) => {
      const { gmail } = clients(emulator);
      const raw = (n: number) => Buffer.from([`Message-ID: <lost-${n}@x>`, 'From: a@example.org', 'Subject: lost', '', 'body', ''].join('\r\n'));
      emulator.loseAnswers('messages.import', 1);
      await assert.rejects(
        gmail.users.messages.import({ userId: 'lost@example.com', requestBody: {}, media: { mimeType: 'message/rfc822', body: Readable.from([raw(1)]) } }, { rootUrl: emulator.url, signal: AbortSignal.timeout(300) }),
        (e: Error) => /abort|timeout/i.test(`${e.name} ${e.message}`),
      );
      assert.equal(emulator.stats().lost, 1);
      const found = await gmail.users.messages.list({ userId: 'lost@example.com', q: 'rfc822msgid:<lost-1@x>', includeSpamTrash: true });
      assert.equal(found.data.messages?.length, 1, 'the import was applied');
      const next = await gmail.users.messages.import({ userId: 'lost@example.com', requestBody: {}, media: { mimeType: 'message/rfc822', body: Readable.from([raw(2)]) } }, { rootUrl: emulator.url });
      assert.match(next.data.id ?? '', /^[0-9a-f]+$/);
      assert.equal(emulator.stats().lost, 1);
      assert.deepEqual(
        ['messages.import', 'messages.insert', 'messages.trash', 'messages.modify', 'messages.batchModify', 'messages.delete', 'messages.batchDelete'].map((m) => METHOD_COSTS[m]),
        [25, 25, 5, 5, 50, 10, 50],
      );
    });
  });
});

void describe('search-index lag and refused calls', () => {
  const USER = 'lag@example.com';
  const raw = (n: number) => Buffer.from([`Message-ID: <lag-${n}@x>`, 'From: a@example.org', `Subject: lag ${n}`, '', 'body', ''].join('\r\n'));

  void test('a message imported while the index lags is missing from q= searches only, until the index catches up', async () => {
    await withEmulator({ users: [USER], quotaUnitsPerMinute: 0 }, async (emulator) => {
      const { gmail } = clients(emulator);
      const start = (await gmail.users.getProfile({ userId: USER })).data.historyId as string;
      emulator.setSearchLag(Infinity);
      const id = (await gmail.users.messages.import({ userId: USER, requestBody: { labelIds: ['INBOX'] }, media: { mimeType: 'message/rfc822', body: Readable.from([raw(1)]) } }, { rootUrl: emulator.url })).data.id as string;
      const search = async (q: string) => ((await gmail.users.messages.list({ userId: USER, q, includeSpamTrash: true })).data.messages ?? []).map((m) => m.id);
      assert.deepEqual(await search('rfc822msgid:lag-1@x'), []);
      assert.deepEqual(await search('subject:lag'), []);
      assert.deepEqual(((await gmail.users.threads.list({ userId: USER, q: 'subject:lag' })).data.threads ?? []).length, 0);
      assert.equal(emulator.stats().unindexed, 1);
      // Everything but search sees it at once.
      assert.deepEqual(((await gmail.users.messages.list({ userId: USER, labelIds: ['INBOX'] })).data.messages ?? []).map((m) => m.id), [id]);
      assert.equal((await gmail.users.messages.get({ userId: USER, id, format: 'minimal' })).data.id, id);
      const history = (await gmail.users.history.list({ userId: USER, startHistoryId: start, historyTypes: ['messageAdded'] })).data.history ?? [];
      assert.deepEqual(history.flatMap((h) => (h.messagesAdded ?? []).map((a) => a.message?.id)), [id]);
      emulator.indexSearches(USER);
      assert.deepEqual(await search('rfc822msgid:lag-1@x'), [id]);
      assert.equal(emulator.stats().unindexed, 0);
      // A lag in milliseconds passes with time; 0 turns it off for later messages.
      emulator.setSearchLag(1);
      await gmail.users.messages.import({ userId: USER, requestBody: {}, media: { mimeType: 'message/rfc822', body: Readable.from([raw(2)]) } }, { rootUrl: emulator.url });
      while ((await search('rfc822msgid:lag-2@x')).length === 0) await new Promise((r) => setTimeout(r, 5));
      emulator.setSearchLag(0);
      await gmail.users.messages.import({ userId: USER, requestBody: {}, media: { mimeType: 'message/rfc822', body: Readable.from([raw(3)]) } }, { rootUrl: emulator.url });
      assert.equal((await search('rfc822msgid:lag-3@x')).length, 1);
    });
    assert.equal(optionsFromEnv({}, DEMO_DIR).searchLagMs, 0);
    assert.equal(optionsFromEnv({ GMAIL_EMULATOR_SEARCH_LAG_MS: '250' }, DEMO_DIR).searchLagMs, 250);
    assert.throws(() => optionsFromEnv({ GMAIL_EMULATOR_SEARCH_LAG_MS: '-1' }, DEMO_DIR), /GMAIL_EMULATOR_SEARCH_LAG_MS/);
  });

  void test('refuseCalls lets the first calls through, then answers 503 unapplied, then lets calls through again', async () => {
    await withEmulator({ users: [USER], quotaUnitsPerMinute: 0 }, async (emulator) => {
      const { gmail } = clients(emulator);
      const upload = (n: number) => gmail.users.messages.import({ userId: USER, requestBody: {}, media: { mimeType: 'message/rfc822', body: Readable.from([raw(n)]) } }, { rootUrl: emulator.url });
      emulator.refuseCalls(USER, 'messages.import', 2, 1);
      assert.equal((await upload(1)).status, 200);
      assert.equal((await failure(upload(2))).status, 503);
      assert.equal((await failure(upload(3))).status, 503);
      assert.equal((await upload(4)).status, 200);
      assert.equal(emulator.stats().refused, 2);
      assert.equal((await gmail.users.getProfile({ userId: USER })).data.messagesTotal, 2, 'the refused imports changed nothing');
      // Refused calls come before held ones; stats().held counts the calls waiting at a gate.
      const release = emulator.holdCalls(USER, 'messages.import', 0);
      emulator.refuseCalls(USER, 'messages.import', 1);
      assert.equal((await failure(upload(5))).status, 503);
      const held = upload(6);
      while (emulator.stats().held < 1) await new Promise((r) => setTimeout(r, 5));
      release();
      assert.equal((await held).status, 200);
      assert.equal(emulator.stats().held, 0);
    });
  });
});
