/**
 * A `format=raw` answer read as it arrives (gmail/raw.ts) and its source parsed
 * as it arrives (fetch/shared/document.ts): whatever the pieces the answer comes in,
 * the source bytes and the other fields are exactly those of the whole answer;
 * attachments are counted, not kept.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { buildDocument, documentOf, MimeReader } from '../../functions/src/fetch/shared/document.js';
import { RawMessageScanner, readRawMessage } from '../../functions/src/gmail/raw.js';

/** `text` cut at the given points, in order. */
function pieces(text: string, cuts: number[]): string[] {
  const at = [...new Set(cuts.map((c) => c % (text.length + 1)))].sort((a, b) => a - b);
  const out: string[] = [];
  let from = 0;
  for (const c of at) {
    out.push(text.slice(from, c));
    from = c;
  }
  out.push(text.slice(from));
  return out;
}

describe('RawMessageScanner', () => {
  it('any message, in any pieces: the source bytes and the other fields are those of the whole answer', () => {
    const fields = fc.record(
      {
        id: fc.stringMatching(/^[0-9a-f]{1,16}$/),
        threadId: fc.string(),
        labelIds: fc.array(fc.constantFrom('INBOX', 'raw', 'SPAM', '"raw"', 'Label\\"x', 'ünï')),
        // Values that look like the key, quotes, escapes and non-ASCII in what is kept.
        snippet: fc.oneof(fc.constant('raw'), fc.constant('"raw": "x"'), fc.string(), fc.string({ unit: 'binary' })),
        sizeEstimate: fc.integer({ min: 0, max: 1e9 }),
        historyId: fc.string(),
        internalDate: fc.string(),
        payload: fc.option(fc.record({ raw: fc.string(), mimeType: fc.string() }), { nil: undefined }),
      },
      { requiredKeys: ['id'] },
    );
    fc.assert(
      fc.property(fields, fc.uint8Array({ maxLength: 3000 }), fc.array(fc.nat(), { maxLength: 12 }), fc.boolean(), fc.boolean(), (meta, bytes, cuts, rawFirst, spaced) => {
        const raw = Buffer.from(bytes).toString('base64url');
        const whole = rawFirst ? { raw, ...meta } : { ...meta, raw };
        const text = JSON.stringify(whole, null, spaced ? 2 : undefined);
        const scanner = new RawMessageScanner();
        const got: Buffer[] = [];
        for (const p of pieces(text, cuts)) got.push(...scanner.feed(p));
        const { message, last } = scanner.end();
        got.push(last);
        assert.deepEqual(Buffer.concat(got), Buffer.from(bytes));
        assert.deepEqual(message, JSON.parse(JSON.stringify(meta)));
      }),
      { numRuns: 500 },
    );
  });

  it('an answer cut short is an error, not a shorter message', () => {
    const scanner = new RawMessageScanner();
    scanner.feed('{"id":"1","raw":"QUJD');
    assert.throws(() => scanner.end(), /ended early/);
  });

  it('reads a body of bytes split inside a multi-byte character', async () => {
    const text = JSON.stringify({ id: 'x', snippet: 'Grüße', raw: Buffer.from('Subject: hi\r\n\r\nbody').toString('base64url') });
    const bytes = Buffer.from(text, 'utf8');
    const split = bytes.indexOf(0xc3) + 1;
    const got: Buffer[] = [];
    async function* body() {
      yield bytes.subarray(0, split);
      yield bytes.subarray(split);
    }
    const msg = await readRawMessage(body(), (c) => {
      got.push(c);
    });
    assert.equal(msg.snippet, 'Grüße');
    assert.equal(Buffer.concat(got).toString(), 'Subject: hi\r\n\r\nbody');
  });
});

describe('MimeReader', () => {
  const big = Buffer.alloc(3 * 1024 * 1024, 7);
  const source = Buffer.from(
    [
      'From: Ann <ann@example.com>',
      'To: bob@example.com',
      'Subject: =?UTF-8?B?R3LDvMOfZQ==?=',
      'Message-ID: <m1@example.com>',
      'Content-Type: multipart/mixed; boundary="b"',
      '',
      '--b',
      'Content-Type: text/plain; charset=UTF-8',
      '',
      'the body',
      '--b',
      'Content-Type: application/pdf; name="big.pdf"',
      'Content-Disposition: attachment; filename="big.pdf"',
      'Content-Transfer-Encoding: base64',
      '',
      big.toString('base64').replace(/.{76}/g, '$&\r\n'),
      '--b--',
      '',
    ].join('\r\n'),
  );

  it('given the source in small pieces: the same document as given it whole; the attachment counted, its size exact', async () => {
    const msg = { id: 'm1', threadId: 't', labelIds: ['INBOX'], internalDate: '1000', snippet: 's', raw: source.toString('base64url') };
    const whole = await buildDocument('T', 'bob@example.com', msg);
    const reader = new MimeReader();
    for (let at = 0; at < source.length; at += 16_384) await reader.write(source.subarray(at, at + 16_384));
    const parsed = await reader.end();
    const streamed = documentOf('T', 'bob@example.com', { ...msg, raw: undefined }, parsed);
    assert.deepEqual(streamed, whole);
    assert.equal(whole.subject, 'Grüße');
    assert.equal(whole.content.trim(), 'the body');
    assert.deepEqual(whole.attachments, [{ filename: 'big.pdf', mimeType: 'application/pdf', size: big.length }]);
    assert.equal(parsed.bytes, source.length);
  });
});
