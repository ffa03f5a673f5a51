/**
 * InsertXML, read strictly: what each item becomes, and each refusal naming the item and the
 * fault, so that a refused request is a 400 that changes nothing.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { InsertXmlError, messageIdOf, parseInsertXml } from '../../functions/src/aci/insert-xml.js';

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
      [item(`<reference>a</reference>${user}${content('!!!')}`), /not base64/],
      [item(`<reference>a</reference>${user}${content(Buffer.from('just text').toString('base64'))}`), /not an RFC 822 message/],
      [item(`<reference>a</reference>${user}${content(Buffer.from('Subject: x\r\n\r\nb').toString('base64'))}`), /no Message-ID header/],
      [item(`<reference>a</reference>${user}<file><type>file</type><path>/etc/passwd</path></file>`), /gs:\/\/bucket\/object/],
      [item(`<reference>a</reference>${user}<file><type>url</type><path>x</path></file>`), /<type> must be content .* or file/],
      [item(`<reference>a</reference>${user}${content(b64)}<extra/>`), /unexpected <extra>/],
    ];
    for (const [xml, why] of cases) assert.throws(() => parseInsertXml(xml), (e: unknown) => e instanceof InsertXmlError && why.test(e.message), xml);
  });

  it('finds a folded Message-ID, and none when the header is absent', () => {
    assert.deepEqual(messageIdOf(RAW), { messageId: '<one@example.org>' });
    assert.deepEqual(messageIdOf(Buffer.from('From: a@b.c\n\nMessage-ID: <in-body@x>\n')), { messageId: undefined });
  });
});
