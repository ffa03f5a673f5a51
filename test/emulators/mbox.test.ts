// Unit tests of the Gmail emulator's parts: mbox reading, MIME parsing, queries, quota,
// partial responses, and the mbox generator.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { generateMbox } from '../../scripts/generate-mbox.js';
import { escapeMboxrd, parseFromLine, readMbox, readMessageBytes, unescapeMboxrd } from './gmail/mbox.js';
import {
  decodeBody,
  decodeHeaderValue,
  findPart,
  headersJson,
  leaves,
  parseHeaderBlock,
  parseMime,
  payloadJson,
  snippetOf,
} from './gmail/mime.js';
import { matches, mentionsSpamOrTrash, parseQuery, parseQueryDate, type QueryContext, type Searchable } from './gmail/query.js';
import { QuotaManager } from './gmail/quota.js';
import { applyFields, parseFields } from './gmail/fields.js';
import { mapTakeoutLabel, splitTakeoutLabels } from './gmail/labels.js';

const FIXTURES = new URL('../fixtures/', import.meta.url);

let dir = '';
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mbox-test-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function readAll(path: string) {
  const out = [];
  for await (const e of readMbox(path, 4096)) out.push(e);
  return out;
}

void describe('mbox reader', () => {
  void test('splits messages, unescapes mboxrd lines, and reads the same bytes back from disk', async () => {
    const file = join(dir, 'a.mbox');
    const text =
      'From 1753000000000000001@xxx Wed Jan 04 12:00:00 +0000 2023\r\n' +
      'Subject: one\r\n\r\nline\r\n>From escaped\r\n>>From twice\r\n>Not a from line\r\n\r\n' +
      'From someone@example.org Thu Jan  5 10:00:00 2023\n' +
      'Subject: two\n\nFrom-like but not a separator: From x\n\n' +
      'From 1753000000000000003@xxx Fri Jan 06 12:00:00 +0000 2023\r\n' +
      'Subject: three, no final newline';
    await writeFile(file, text, 'latin1');
    const entries = await readAll(file);
    assert.equal(entries.length, 3);
    assert.equal(entries[0]?.raw.toString(), 'Subject: one\r\n\r\nline\r\nFrom escaped\r\n>From twice\r\n>Not a from line\r\n');
    assert.equal(entries[0]?.escaped, true);
    assert.equal(entries[1]?.raw.toString(), 'Subject: two\n\nFrom-like but not a separator: From x\n');
    assert.equal(entries[1]?.escaped, false);
    assert.equal(entries[2]?.raw.toString(), 'Subject: three, no final newline');
    assert.deepEqual(
      entries.map((e) => e.fromLine),
      [
        'From 1753000000000000001@xxx Wed Jan 04 12:00:00 +0000 2023',
        'From someone@example.org Thu Jan  5 10:00:00 2023',
        'From 1753000000000000003@xxx Fri Jan 06 12:00:00 +0000 2023',
      ],
    );
    const fh = await open(file, 'r');
    try {
      for (const e of entries) assert.deepEqual(await readMessageBytes(fh, e), e.raw);
    } finally {
      await fh.close();
    }
  });

  void test('escape and unescape are inverse, and any escaped message survives a round trip', async () => {
    const line = fc.oneof(
      fc.constantFrom('', 'From ', 'From me', '>From ', '>>From x', 'From: header', '> quoted', 'text'),
      fc.string({ maxLength: 12 }).map((s) => s.replace(/[\r\n]/g, '')),
    );
    const message = fc.array(fc.tuple(line, fc.constantFrom('\n', '\r\n')), { maxLength: 8 }).map((ls) =>
      Buffer.from(ls.map(([l, eol]) => l + eol).join(''), 'latin1'),
    );
    let n = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(message, { minLength: 1, maxLength: 6 }), async (msgs) => {
        for (const m of msgs) assert.deepEqual(unescapeMboxrd(escapeMboxrd(m)), m);
        const file = join(dir, `p${n++}.mbox`);
        const parts: Buffer[] = [];
        msgs.forEach((m, i) => {
          parts.push(Buffer.from(`From ${1000 + i}@xxx Mon Jan 02 03:04:05 +0000 2023\n`), escapeMboxrd(m), Buffer.from('\n'));
        });
        await writeFile(file, Buffer.concat(parts));
        const got = await readAll(file);
        assert.equal(got.length, msgs.length);
        got.forEach((e, i) => assert.deepEqual(e.raw, msgs[i]));
      }),
      { numRuns: 60, seed: 7 },
    );
  });

  void test('parses Takeout and ctime separator lines', () => {
    assert.deepEqual(parseFromLine('From 1783474712482234839@xxx Wed Nov 22 09:13:09 +0000 2023'), {
      sender: '1783474712482234839@xxx',
      date: Date.UTC(2023, 10, 22, 9, 13, 9),
    });
    assert.equal(parseFromLine('From a@b Mon Jan  2 10:00:00 2023').date, Date.UTC(2023, 0, 2, 10, 0, 0));
    assert.equal(parseFromLine('From a@b Mon Jan  2 10:00:00 2023 -0500').date, Date.UTC(2023, 0, 2, 15, 0, 0));
    assert.equal(parseFromLine('From MAILER-DAEMON').date, null);
    assert.equal(parseFromLine('From MAILER-DAEMON').sender, 'MAILER-DAEMON');
  });
});

void describe('MIME parsing', () => {
  const crlf = (s: string): Buffer => Buffer.from(s.replace(/\n/g, '\r\n'), 'utf8');

  void test('builds the part tree with Gmail part ids, decoded bodies and attachment ids', () => {
    const raw = crlf(
      'From: =?UTF-8?Q?M=C3=BCller=2C_Hans?= <h@example.de>\nSubject: =?UTF-8?B?w6l0w6k=?=\n' +
        'Received: by x;\n\tMon, 1 Jan 2024\nContent-Type: multipart/mixed; boundary="b1"\n\n' +
        'preamble\n--b1\nContent-Type: multipart/alternative; boundary=b2\n\n--b2\n' +
        'Content-Type: text/plain; charset=ISO-8859-1\nContent-Transfer-Encoding: quoted-printable\n\nGr=FC=DFe\n' +
        '--b2\nContent-Type: text/html\n\n<p>Hi &amp; bye</p>\n--b2--\n--b1\n' +
        "Content-Type: application/pdf\nContent-Disposition: attachment; filename*=UTF-8''r%C3%A9sum%C3%A9.pdf\n" +
        'Content-Transfer-Encoding: base64\n\nJVBERi0xLjQ=\n--b1--\nepilogue\n',
    );
    const root = parseMime(raw);
    assert.equal(root.mimeType, 'multipart/mixed');
    const ids = [...leaves(root)].map((l) => `${l.partId}:${l.mimeType}:${l.filename}`);
    assert.deepEqual(ids, ['0.0:text/plain:', '0.1:text/html:', '1:application/pdf:résumé.pdf']);
    const plain = findPart(root, '0.0');
    assert.ok(plain);
    assert.deepEqual(decodeBody(raw, plain), Buffer.from([0x47, 0x72, 0xfc, 0xdf, 0x65]));
    const pdf = findPart(root, '1');
    assert.ok(pdf);
    assert.equal(decodeBody(raw, pdf).toString('latin1'), '%PDF-1.4');
    const payload = payloadJson(raw, root, '18c0000000000001');
    assert.equal(payload.partId, '');
    assert.deepEqual(payload.body, { size: 0 });
    // Gmail's base64url keeps the "=" padding.
    assert.equal(payload.parts?.[0]?.parts?.[0]?.body.data, 'R3L832U=');
    assert.match(payload.parts?.[1]?.body.attachmentId ?? '', /^att_/);
    assert.equal(payload.parts?.[1]?.body.data, undefined);
    const headers = headersJson(root.headers);
    assert.deepEqual(headers[0], { name: 'From', value: '"Müller, Hans" <h@example.de>' });
    assert.deepEqual(headers[1], { name: 'Subject', value: 'été' });
    assert.deepEqual(headers[2], { name: 'Received', value: 'by x;\tMon, 1 Jan 2024' });
    assert.equal(snippetOf(raw, root), 'Grüße');
  });

  void test('keeps going on broken input', () => {
    // No header block at all.
    const bare = parseMime(Buffer.from('just text\r\nmore\r\n'));
    assert.deepEqual(bare.headers, []);
    assert.equal(bare.mimeType, 'text/plain');
    assert.equal(bare.bodyStart, 0);
    // Lines that are not headers are skipped; the rest is kept.
    const broken = parseHeaderBlock(crlf('Subject: a\nnot a header\n: nameless\nX-B: b\n  c\n\nbody'));
    assert.deepEqual(broken.headers, [
      { name: 'Subject', value: 'a' },
      { name: 'X-B', value: 'b  c' },
    ]);
    assert.equal(broken.damaged, true);
    // Multipart without boundary, or whose boundary never appears: one text/plain leaf.
    for (const ct of ['multipart/mixed', 'multipart/mixed; boundary=zz']) {
      const m = parseMime(crlf(`Content-Type: ${ct}\n\nhello\n`));
      assert.equal(m.mimeType, 'text/plain');
      assert.equal(m.parts, null);
      assert.equal(snippetOf(crlf(`Content-Type: ${ct}\n\nhello\n`), m), 'hello');
    }
    // Truncated: the last part runs to the end.
    const cut = crlf('Content-Type: multipart/mixed; boundary=q\n\n--q\n\nfirst\n--q\nContent-Transfer-Encoding: base64\n\nSGVsbG8gd29y');
    const t = parseMime(cut);
    assert.equal(t.parts?.length, 2);
    assert.equal(decodeBody(cut, t.parts?.[1] as never).toString(), 'Hello wor');
    // Junk content type and encoded words.
    const junk = crlf('Content-Type: text\nSubject: =?UTF-8?B?###?= =?x-unknown?Q?caf=E9?=\n\nx');
    const j = parseMime(junk);
    assert.equal(j.mimeType, 'text/plain');
    assert.equal(typeof headersJson(j.headers)[1]?.value, 'string');
    // Raw 8-bit Latin-1 header bytes become Latin-1 text; UTF-8 ones stay UTF-8.
    assert.equal(parseHeaderBlock(Buffer.from('Subject: Gr\xfc\xdfe\r\n\r\n', 'latin1')).headers[0]?.value, 'Grüße');
    assert.equal(parseHeaderBlock(Buffer.from('Subject: Grüße\r\n\r\n', 'utf8')).headers[0]?.value, 'Grüße');
    assert.equal(parseMime(Buffer.alloc(0)).mimeType, 'text/plain');
  });

  void test('decodes encoded words and quotes decoded names that hold specials', () => {
    assert.equal(decodeHeaderValue('Subject', '=?ISO-8859-1?Q?J=F6rg?= und =?UTF-8?B?w6k=?='), 'Jörg und é');
    assert.equal(decodeHeaderValue('To', '=?UTF-8?Q?A=2C_B?= <a@b>, c@d'), '"A, B" <a@b>, c@d');
    assert.equal(decodeHeaderValue('To', '"=?UTF-8?Q?A=2C_B?=" <a@b>'), '"A, B" <a@b>');
    assert.equal(decodeHeaderValue('From', '=?UTF-8?Q?J=C3=B6rg?= <j@x>'), 'Jörg <j@x>');
  });
});

void describe('labels', () => {
  void test('maps Takeout label names', () => {
    assert.deepEqual(splitTakeoutLabels('Inbox,"Odd, Label",=?UTF-8?Q?=C3=9Cbel?=, Category Updates'), [
      'Inbox',
      'Odd, Label',
      'Übel',
      'Category Updates',
    ]);
    assert.deepEqual(mapTakeoutLabel('Category Promotions'), { kind: 'system', id: 'CATEGORY_PROMOTIONS' });
    assert.deepEqual(mapTakeoutLabel('Opened'), { kind: 'none' });
    assert.deepEqual(mapTakeoutLabel('Unread'), { kind: 'system', id: 'UNREAD' });
    assert.deepEqual(mapTakeoutLabel('Drafts'), { kind: 'system', id: 'DRAFT' });
    assert.deepEqual(mapTakeoutLabel('Work/Projects'), { kind: 'user', name: 'Work/Projects' });
  });
});

void describe('queries', () => {
  const msg = (over: Partial<Searchable>): Searchable => ({
    labelIds: ['INBOX'],
    from: 'alice <alice@example.org>',
    to: 'demo@example.com',
    cc: '',
    bcc: '',
    subject: 'quarterly report',
    deliveredTo: '',
    messageIdHeader: '<a@b>',
    hasAttachment: false,
    filenames: [],
    internalDate: Date.UTC(2023, 5, 1),
    size: 2000,
    ...over,
  });
  const ctx: QueryContext = {
    resolveLabel: (n) => (n === 'work-projects' ? 'Label_1' : n === 'inbox' ? 'INBOX' : null),
    isUserLabel: (id) => id.startsWith('Label_'),
    now: Date.UTC(2023, 5, 10),
  };
  const q = (text: string, m: Searchable): boolean => matches(m, parseQuery(text), ctx);

  void test('evaluates operators, AND, OR, negation and groups', () => {
    const m = msg({});
    assert.equal(q('from:alice subject:quarterly', m), true);
    assert.equal(q('from:bob', m), false);
    assert.equal(q('from:bob OR from:alice', m), true);
    assert.equal(q('{from:bob from:alice} -in:spam', m), true);
    assert.equal(q('-from:alice', m), false);
    assert.equal(q('subject:(quarterly report)', m), true);
    assert.equal(q('subject:"quarterly report"', m), true);
    assert.equal(q('subject:"report quarterly"', m), false);
    assert.equal(q('(from:x OR to:demo) report', m), true);
    assert.equal(q('has:attachment', m), false);
    assert.equal(q('has:attachment filename:pdf', msg({ hasAttachment: true, filenames: ['a.pdf'] })), true);
    assert.equal(q('label:Work/Projects', msg({ labelIds: ['Label_1'] })), true);
    assert.equal(q('label:work-projects has:userlabels', msg({ labelIds: ['Label_1'] })), true);
    assert.equal(q('in:inbox is:unread', m), false);
    assert.equal(q('is:read category:updates', msg({ labelIds: ['CATEGORY_UPDATES'] })), true);
    assert.equal(q('larger:1K smaller:1M', m), true);
    assert.equal(q('rfc822msgid:a@b', m), true);
    assert.equal(q('newer_than:10d', m), true);
    assert.equal(q('newer_than:5d', m), false);
    assert.equal(q('older_than:1m', m), false);
    assert.equal(q('after:2023/05/31 before:2023/06/02', m), true);
    assert.equal(q(`after:${Date.UTC(2023, 5, 1) / 1000 + 1}`, m), false);
    assert.equal(q('quarterly', m), true);
    assert.equal(q('unknownop:x', m), false);
    assert.equal(q('', m), true);
    assert.equal(mentionsSpamOrTrash(parseQuery('in:spam')), true);
    assert.equal(mentionsSpamOrTrash(parseQuery('-in:trash from:x')), false);
  });

  void test('reads dates as midnight in Los Angeles, or epoch seconds', () => {
    assert.equal(parseQueryDate('2023/01/01'), Date.UTC(2023, 0, 1, 8));
    assert.equal(parseQueryDate('2023/07/01'), Date.UTC(2023, 6, 1, 7));
    assert.equal(parseQueryDate('1700000000'), 1_700_000_000_000);
    assert.equal(parseQueryDate('yesterday'), null);
  });
});

void describe('quota bucket', () => {
  void test('bursts a minute of units, then refills continuously and says how long to wait', () => {
    let now = 0;
    const quota = new QuotaManager(600, 60, () => now); // 10 units per second, bucket of 600
    let ok = 0;
    while (quota.take('u', 5).ok) ok++;
    assert.equal(ok, 120);
    assert.deepEqual(quota.take('u', 5), { ok: false, retryAfterSeconds: 1 });
    assert.deepEqual(quota.take('u', 50), { ok: false, retryAfterSeconds: 5 });
    assert.equal(quota.take('other', 5).ok, true); // per user
    now += 500;
    assert.equal(quota.take('u', 5).ok, true);
    assert.equal(quota.take('u', 5).ok, false);
    quota.setRate(0);
    assert.equal(quota.take('u', 1000).ok, true);
  });
});

void describe('partial responses', () => {
  void test('selects fields like Google APIs', () => {
    const v = { messages: [{ id: '1', threadId: '2', x: 3 }], nextPageToken: 't', resultSizeEstimate: 1 };
    assert.deepEqual(applyFields(v, parseFields('messages(id),nextPageToken')), { messages: [{ id: '1' }], nextPageToken: 't' });
    assert.deepEqual(applyFields({ payload: { headers: [1], body: 2 }, id: 'a' }, parseFields('payload/headers,id')), {
      payload: { headers: [1] },
      id: 'a',
    });
    assert.deepEqual(applyFields(v, parseFields('*')), v);
  });
});

void describe('mbox generator', () => {
  void test('is deterministic and writes the requested number of Takeout-style messages', async () => {
    const a = join(dir, 'gen-a.mbox');
    const b = join(dir, 'gen-b.mbox');
    const c = join(dir, 'gen-c.mbox');
    await generateMbox({ output: a, count: 400, seed: 5, address: 'x@example.com' });
    await generateMbox({ output: b, count: 400, seed: 5, address: 'x@example.com' });
    await generateMbox({ output: c, count: 400, seed: 6, address: 'x@example.com' });
    const [ba, bb, bc] = await Promise.all([readFile(a), readFile(b), readFile(c)]);
    assert.deepEqual(ba, bb);
    assert.notDeepEqual(ba, bc);
    const entries = await readAll(a);
    assert.equal(entries.length, 400);
    for (const e of entries) assert.match(e.fromLine, /^From \d{19}@xxx \w{3} \w{3} \d\d \d\d:\d\d:\d\d \+0000 \d{4}$/);
    const withThread = entries.filter((e) => /^X-GM-THRID: \d+\r?$/m.test(e.raw.toString('latin1')));
    // One message in fifty is messy; of the first 400, one is the kind without any header block.
    assert.equal(withThread.length, 399);
    const text = ba.toString('latin1');
    assert.match(text, /^>From my point of view/m);
    assert.match(text, /=\?UTF-8\?B\?/);
    assert.match(text, /=\?UTF-8\?Q\?/);
    assert.match(text, /=\?ISO-8859-1\?Q\?/);
    assert.match(text, /Content-Type: multipart\/alternative/);
    assert.match(text, /X-Gmail-Labels: .*Category /);
  });

  void test('the demo fixture is what the generator writes for its documented arguments', async () => {
    const out = join(dir, 'demo.mbox');
    await generateMbox({ output: out, count: 1000, seed: 42, address: 'demo@example.com' });
    const sha = async (p: string | URL): Promise<string> => createHash('sha256').update(await readFile(p)).digest('hex');
    assert.equal(await sha(out), await sha(new URL('demo/demo@example.com.mbox', FIXTURES)));
  });
});
