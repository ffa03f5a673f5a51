/**
 * InsertXML, read strictly: what each item becomes, and each refusal naming the item and the
 * fault, so that a refused request is a 400 that changes nothing.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { InsertXmlError, keyOf, messageIdOf, messageKey, parseInsertXml, usableMessageId } from '../../functions/src/aci/insert-xml.js';

const RAW = Buffer.from('Message-ID:\r\n <one@example.org>\r\nSubject: hi\r\n\r\nbody\r\n');
const b64 = RAW.toString('base64');
const item = (inner: string) => `<insertXML><insert>${inner}</insert></insertXML>`;
const content = (b: string) => `<file><type>content</type><content>${b}</content></file>`;
const user = '<property name="USER_ID" value="Ann@Example.com"/>';

describe('parseInsertXml', () => {
  it('reads content and gs:// items, properties case-insensitively, base64 wrapped over lines', () => {
    const wrapped = b64.replace(/(.{20})/g, '$1\n');
    const xml = `<?xml version="1.0"?><insertXML>
      <insert><reference>r1</reference>${user}<property name="label_ids" value=" INBOX , STARRED "/>${content(wrapped)}</insert>
      <insert><reference>r2</reference>${user}<property name="INSERT_METHOD" value="Insert"/><file><type>file</type><path>gs://my-bucket/a/b.eml</path></file></insert>
    </insertXML>`;
    const items = parseInsertXml(xml);
    assert.equal(items.length, 2);
    const [a, b] = items;
    assert.deepEqual({ ...a, source: undefined }, { reference: 'r1', user: 'ann@example.com', labels: ['INBOX', 'STARRED'], method: 'import', messageId: '<one@example.org>', source: undefined });
    assert.ok(a?.source.kind === 'content' && a.source.raw.equals(RAW));
    assert.deepEqual(b, { reference: 'r2', user: 'ann@example.com', labels: [], method: 'insert', source: { kind: 'gs', bucket: 'my-bucket', object: 'a/b.eml' } });
  });

  it('refuses, naming the item and the fault', () => {
    const cases: [string, RegExp][] = [
      ['<insertXML>', /not XML/],
      ['<other/>', /root element must be <insertXML>/],
      ['<insertXML></insertXML>', /has no <insert>/],
      ['<!DOCTYPE x [<!ENTITY a "b">]><insertXML/>', /DOCTYPE/],
      [item(`${user}${content(b64)}`), /<insert> 1 has no <reference>/],
      [`<insertXML><insert><reference>a</reference>${user}${content(b64)}</insert><insert><reference>a</reference>${user}${content(b64)}</insert></insertXML>`, /<insert> 2: reference "a" is given twice/],
      [item(`<reference>a</reference>${content(b64)}`), /USER_ID must be the mailbox's address/],
      [item(`<reference>a</reference>${user}<property name="COLOUR" value="x"/>${content(b64)}`), /unknown property "COLOUR"/],
      [item(`<reference>a</reference>${user}<property name="INSERT_METHOD" value="smtp"/>${content(b64)}`), /INSERT_METHOD must be import or insert/],
      [item(`<reference>a</reference>${user}`), /exactly one <file>/],
      [item(`<reference>a</reference>${user}<file><type>file</type><path>/etc/passwd</path></file>`), /gs:\/\/bucket\/object/],
      [item(`<reference>a</reference>${user}<file><type>url</type><path>x</path></file>`), /<type> must be content .* or file/],
      [item(`<reference>a</reference>${user}${content(b64)}<extra/>`), /unexpected <extra>/],
    ];
    for (const [xml, why] of cases) assert.throws(() => parseInsertXml(xml), (e: unknown) => e instanceof InsertXmlError && why.test(e.message), xml);
  });

  it('a fault of one message\'s content is that item\'s, not the request\'s; a message without a usable Message-ID is no fault', () => {
    const noId = Buffer.from('Subject: x\r\n\r\nb');
    const folded = Buffer.from('Message-Id: <0000120$0000@\r\n pob23uifesi.cic.org.ar\r\n >\r\nSubject: x\r\n\r\nb');
    const items = parseInsertXml(
      `<insertXML>${[content('!!!'), content(Buffer.from('just text').toString('base64')), content(''), content(noId.toString('base64')), content(folded.toString('base64'))]
        .map((c, i) => `<insert><reference>r${i}</reference>${user}${c}</insert>`)
        .join('')}</insertXML>`,
    );
    assert.deepEqual(
      items.map((i) => i.fault),
      ['<content> is not base64', 'the decoded <content> is not an RFC 822 message (it does not start with a header)', '<content> is empty', undefined, undefined],
    );
    assert.deepEqual(items.map((i) => i.messageId), [undefined, undefined, undefined, undefined, undefined]);
    assert.ok(items[3]?.source.kind === 'content' && items[3].source.raw.equals(noId), 'the bytes as sent');
    assert.ok(items[4]?.source.kind === 'content' && items[4].source.raw.equals(folded), 'the bytes as sent');
  });

  it('finds a folded Message-ID, and none when the header is absent or malformed', () => {
    assert.deepEqual(messageIdOf(RAW), { messageId: '<one@example.org>' });
    assert.deepEqual(messageIdOf(Buffer.from('From: a@b.c\n\nMessage-ID: <in-body@x>\n')), { messageId: undefined });
    assert.deepEqual(messageIdOf(Buffer.from('Message-Id: <0000120$0000@\r\n\tpob23.cic.org.ar\r\n\t>\r\n\r\nb')), { messageId: undefined });
    assert.deepEqual(messageIdOf(Buffer.from('Message-Id: <unclosed@x\r\n\r\nb')), { messageId: undefined });
    assert.equal(usableMessageId(' <a@b>'), '<a@b>');
    assert.equal(usableMessageId('<a@\r\n b>'), undefined);
  });

  it('keys a message by its Message-ID, else by its bytes with line ends and any Message-ID left out', () => {
    assert.deepEqual(keyOf(RAW), { key: 'id <one@example.org>', messageId: '<one@example.org>' });
    assert.equal(messageKey(Buffer.alloc(0), '<One@Example.org>'), 'id <one@example.org>');
    const lf = Buffer.from('Message-Id: <bad@\n x>\nSubject: s\n\nbody\n');
    const crlf = Buffer.from('Subject: s\r\n\r\nbody\r\n');
    const gmailId = Buffer.from('Subject: s\r\nMessage-ID: <given@mail.gmail.com>\r\n\r\nbody\r\n');
    const key = keyOf(lf);
    assert.ok('key' in key && key.key.startsWith('sha256 ') && key.messageId === undefined);
    assert.equal(messageKey(crlf), key.key);
    assert.equal(messageKey(gmailId), key.key);
    assert.notEqual(messageKey(Buffer.from('Subject: s\r\n\r\nbody!\r\n')), key.key);
    assert.deepEqual(keyOf(Buffer.from('no header here')), { error: 'is not an RFC 822 message (it does not start with a header)' });
  });
});
