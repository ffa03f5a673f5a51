/**
 * Sink documents built from raw messages: decoded headers, HTML turned into
 * text, attachments listed, and content cut to stay under Firestore's limit.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildDocument, cutUtf8 } from '../../functions/src/fetch/shared/document.js';

function msg(raw: string, extra: Record<string, unknown> = {}) {
  return { id: '18c0ffee', threadId: '18c0ffee', historyId: '42', internalDate: '1700000000000', labelIds: ['INBOX', 'IMPORTANT'], snippet: 's', raw: Buffer.from(raw).toString('base64url'), ...extra };
}

describe('buildDocument', () => {
  it('decodes RFC 2047 headers in UTF-8 and ISO-8859-1, keeps Message-ID as written', async () => {
    const d = await buildDocument('task', 'Alice@Example.com', msg(
      [
        'Message-ID:  <abc.123@example.com>',
        'From: =?ISO-8859-1?Q?Andr=E9_M=FCller?= <andre@example.org>',
        'To: =?UTF-8?B?w4lsb2RpZQ==?= <elodie@example.com>, bob@example.com',
        'Cc: "Team, All" <team@example.com>',
        'Subject: =?UTF-8?Q?Caf=C3=A9_=E2=98=95?= and more',
        'Content-Type: text/plain; charset=ISO-8859-1',
        'Content-Transfer-Encoding: quoted-printable',
        '',
        'Gr=FC=DFe',
      ].join('\r\n'),
    ));
    assert.equal(d.task, 'TASK');
    assert.equal(d.user, 'alice@example.com');
    assert.equal(d.subject, 'Café ☕ and more');
    assert.equal(d.from, 'André Müller <andre@example.org>');
    assert.deepEqual(d.to, ['Élodie <elodie@example.com>', 'bob@example.com']);
    assert.deepEqual(d.cc, ['Team, All <team@example.com>']);
    assert.equal(d.messageIdHeader, '<abc.123@example.com>');
    assert.equal(d.content.trim(), 'Grüße');
    assert.deepEqual(d.labels, ['IMPORTANT', 'INBOX']);
    assert.equal(d.date.toMillis(), 1700000000000);
    assert.equal(d.truncated, false);
  });

  it('turns an HTML-only body into text and lists attachments', async () => {
    const d = await buildDocument('T', 'a@b.co', msg(
      [
        'Subject: html',
        'MIME-Version: 1.0',
        'Content-Type: multipart/mixed; boundary="b1"',
        '',
        '--b1',
        'Content-Type: text/html; charset=UTF-8',
        '',
        '<html><body><h1>Hello</h1><p>World &amp; <b>friends</b></p><img src="x.png"></body></html>',
        '--b1',
        'Content-Type: application/pdf; name="report.pdf"',
        'Content-Disposition: attachment; filename="report.pdf"',
        'Content-Transfer-Encoding: base64',
        '',
        Buffer.alloc(300, 7).toString('base64'),
        '--b1--',
        '',
      ].join('\r\n'),
    ));
    assert.match(d.content, /HELLO|Hello/);
    assert.match(d.content, /World & friends/);
    assert.doesNotMatch(d.content, /<p>|<b>/);
    assert.deepEqual(d.attachments, [{ filename: 'report.pdf', mimeType: 'application/pdf', size: 300 }]);
    assert.equal(d.messageIdHeader, null);
  });

  it('cuts content to stay under 1 MiB and says so', async () => {
    const body = 'é'.repeat(800_000);
    const d = await buildDocument('T', 'a@b.co', msg(`Subject: big\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\n${body}`));
    assert.equal(d.truncated, true);
    assert.ok(Buffer.byteLength(JSON.stringify(d)) < 1_048_576 - 1024);
    assert.ok(d.content.length > 400_000);
    assert.ok(!d.content.includes('\uFFFD'));
  });

  it('a message it cannot parse well still becomes a document', async () => {
    const d = await buildDocument('T', 'a@b.co', msg('garbage without headers\r\n\r\n\u0000\u0001'));
    assert.equal(d.messageId, '18c0ffee');
    assert.equal(typeof d.content, 'string');
  });
});

describe('cutUtf8', () => {
  it('never splits a character', () => {
    for (let n = 0; n < 12; n++) {
      const out = cutUtf8('aé☕😀b', n);
      assert.ok(Buffer.byteLength(out) <= n);
      assert.ok(!out.includes('\uFFFD'));
    }
  });
});
