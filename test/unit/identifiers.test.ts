/**
 * Document identifiers (functions/src/aci/identifiers.ts): round-trips over tasks,
 * addresses, message ids and properties needing XML escaping; that a plain base64
 * decoder and a regex can read what we write (as an IDOL client would); every
 * refusal with its exact message; the Identifiers and IdentifiersXML parameters;
 * and fuzzing that nothing but IdentifierError is ever thrown.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  decodeIdentifier,
  encodeIdentifier,
  IdentifierError,
  MAX_IDENTIFIERS,
  MAX_INPUT_BYTES,
  parseIdentifierList,
  parseIdentifiersXml,
  type Identifier,
} from '../../functions/src/aci/identifiers.js';

const b64 = (xml: string): string => Buffer.from(xml, 'utf8').toString('base64');
const R = 'r="jo@example.com/18c2f0a3b4d5e6f7"';

/** Asserts that `fn` throws an IdentifierError with exactly `message`. */
function refuses(fn: () => unknown, message: string): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof IdentifierError, `expected IdentifierError, got ${String(e)}`);
    assert.equal(e.message, message);
    return true;
  });
}

/** Runs `fn`; anything thrown must be an IdentifierError. */
function onlyIdentifierErrors(fn: () => unknown): void {
  try {
    fn();
  } catch (e) {
    if (!(e instanceof IdentifierError)) throw e;
  }
}

const UNSAFE = /[\u0000-\u001F\uFFFE\uFFFF]|\p{Cs}/u;
const task = fc.stringMatching(/^[A-Za-z0-9_-]{1,64}$/);
const atom = fc.stringMatching(/^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]{1,8}$/);
const localPart = fc.array(atom, { minLength: 1, maxLength: 4 }).map((a) => a.join('.')).filter((s) => s.length <= 64);
const label = fc.stringMatching(/^[A-Za-z0-9](?:[A-Za-z0-9-]{0,6}[A-Za-z0-9])?$/);
const domain = fc.array(label, { minLength: 2, maxLength: 4 }).map((a) => a.join('.'));
const address = fc.tuple(localPart, domain).map(([l, d]) => `${l}@${d}`);
const messageId = fc.stringMatching(/^[0-9a-f]{1,32}$/);
const text = fc
  .oneof(
    fc.string({ unit: fc.constantFrom('<', '>', '&', '"', "'", 'é', '😀', '漢', 'a', ' ', '/', ';', '#', '=', '&amp;') }),
    fc.string({ unit: 'grapheme' }),
  )
  .filter((s) => !UNSAFE.test(s));
const props = fc.dictionary(text.filter((s) => s !== ''), text, { maxKeys: 5 });
const identifier = fc.record({ task, address, messageId, props: fc.option(props, { nil: undefined }) }, { requiredKeys: ['task', 'address', 'messageId'] });

/** What decoding an encoded identifier gives back: the address lower-cased, empty props left out. */
function normalized(id: { task: string; address: string; messageId: string; props?: Record<string, string> }): Identifier {
  const props = id.props && Object.keys(id.props).length ? { props: { ...id.props } } : {};
  return { task: id.task, address: id.address.toLowerCase(), messageId: id.messageId, ...props };
}

describe('encodeIdentifier / decodeIdentifier', () => {
  it('round-trips any valid identifier, as standard base64', () => {
    fc.assert(
      fc.property(identifier, (id) => {
        const encoded = encodeIdentifier(id);
        assert.match(encoded, /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/);
        assert.deepEqual(decodeIdentifier(encoded), normalized(id));
      }),
      { numRuns: 500 },
    );
  });

  it('is deterministic: same identifier, same props in any order, same string', () => {
    const a = encodeIdentifier({ task: 'T', address: 'Jo@Example.com', messageId: 'ab', props: { b: '2', a: '1' } });
    const b = encodeIdentifier({ task: 'T', address: 'jo@example.com', messageId: 'ab', props: { a: '1', b: '2' } });
    assert.equal(a, b);
  });

  it('writes the exact XML an IDOL client expects, readable with Buffer and a regex', () => {
    const encoded = encodeIdentifier({
      task: 'MyTask',
      address: 'Jo.Smith+news@Example.COM',
      messageId: '18c2f0a3b4d5e6f7',
      props: { label: `R&D <"quoted"> it's ünïcode` },
    });
    const xml = Buffer.from(encoded, 'base64').toString('utf8');
    assert.equal(
      xml,
      '<id s="MyTask" r="jo.smith+news@example.com/18c2f0a3b4d5e6f7">' +
        '<p n="label" v="R&amp;D &lt;&quot;quoted&quot;&gt; it&apos;s ünïcode"/></id>',
    );
    // A client with no XML library: one regex per element, then the five entities.
    const unescape = (s: string): string =>
      s.replace(/&(lt|gt|quot|apos|amp);/g, (_, e: string) => ({ lt: '<', gt: '>', quot: '"', apos: "'", amp: '&' })[e] ?? '');
    const root = /^<id s="([^"]*)" r="([^"]*)\/([0-9a-f]+)"(?:\/>|>(.*)<\/id>)$/.exec(xml);
    assert.ok(root);
    assert.deepEqual(root.slice(1, 4), ['MyTask', 'jo.smith+news@example.com', '18c2f0a3b4d5e6f7']);
    const p = [...(root[4] ?? '').matchAll(/<p n="([^"]*)" v="([^"]*)"\/>/g)].map((m) => [unescape(m[1]!), unescape(m[2]!)]);
    assert.deepEqual(p, [['label', `R&D <"quoted"> it's ünïcode`]]);
  });

  it('writes <id .../> with no children when there are no props', () => {
    const encoded = encodeIdentifier({ task: 'T', address: 'a@b.co', messageId: '1', props: {} });
    assert.equal(Buffer.from(encoded, 'base64').toString(), '<id s="T" r="a@b.co/1"/>');
  });

  it('writes a prop whose value is "true" as an attribute value, not a bare name', () => {
    const encoded = encodeIdentifier({ task: 'T', address: 'a@b.co', messageId: '1', props: { true: 'true' } });
    assert.equal(Buffer.from(encoded, 'base64').toString(), '<id s="T" r="a@b.co/1"><p n="true" v="true"/></id>');
  });

  it('reads what other writers may send: declaration, BOM, single quotes, whitespace, character references', () => {
    const xml = `\uFEFF<?xml version="1.0" encoding="UTF-8"?>\n<id  s='T' r = 'A@B.co/1f' >\n  <p n="x" v="&#65;&#x42;&quot;"/>\n</id>\n`;
    assert.deepEqual(decodeIdentifier(b64(xml)), { task: 'T', address: 'a@b.co', messageId: '1f', props: { x: 'AB"' } });
  });

  it('splits r at the last slash, so a local part may hold "/"', () => {
    const id = decodeIdentifier(b64('<id s="T" r="a/b@c.de/ff"/>'));
    assert.deepEqual(id, { task: 'T', address: 'a/b@c.de', messageId: 'ff' });
  });

  it('refuses a value that is not standard, canonical base64', () => {
    const valid = encodeIdentifier({ task: 'T', address: 'a@b.co', messageId: '1' });
    refuses(() => decodeIdentifier(''), 'identifier is empty');
    refuses(() => decodeIdentifier('ab-d'), 'not base64: character "-" at offset 2 (URL-safe base64 is not accepted)');
    refuses(() => decodeIdentifier('ab_d'), 'not base64: character "_" at offset 2 (URL-safe base64 is not accepted)');
    refuses(() => decodeIdentifier(`${valid} `), `not base64: character " " at offset ${valid.length}`);
    refuses(() => decodeIdentifier('ab=d'), 'not base64: misplaced padding');
    refuses(() => decodeIdentifier('a==='), 'not base64: misplaced padding');
    refuses(() => decodeIdentifier('abcde'), 'not base64: length 5 is not a multiple of 4');
    refuses(() => decodeIdentifier('QUI'), 'not base64: length 3 is not a multiple of 4');
    refuses(() => decodeIdentifier('ab=='.replace('b', 'B')), 'not base64: non-zero bits after the last byte');
  });

  it('refuses bytes that are not UTF-8, and inputs over 1 MiB', () => {
    refuses(() => decodeIdentifier(Buffer.from([0x3c, 0xff, 0x3e]).toString('base64')), 'not UTF-8');
    refuses(() => decodeIdentifier(Buffer.from([0xed, 0xa0, 0x80]).toString('base64')), 'not UTF-8');
    refuses(() => decodeIdentifier('A'.repeat(MAX_INPUT_BYTES + 4)), 'identifier is over 1 MiB');
  });

  const refusals: [string, string][] = [
    ['<id s="T"', 'not XML: Unclosed tag \'id\'. (line 1, column 1)'],
    ['', 'identifier is empty'],
    ['<id s="T" s="U" r="a@b.co/1"/>', "not XML: Attribute 's' is repeated. (line 1, column 11)"],
    ['<id s r="a@b.co/1"/>', "not XML: boolean attribute 's' is not allowed. (line 1, column 5)"],
    ['<!DOCTYPE id [<!ENTITY x "xx">]><id s="T" r="a@b.co/1"/>', 'DOCTYPE is not allowed'],
    ['<?xml version="1.0"?><?pi data?><id s="T" r="a@b.co/1"/>', 'processing instructions are not allowed'],
    [' <?xml version="1.0"?><id s="T" r="a@b.co/1"/>', 'processing instructions are not allowed'],
    ['<id s="T" r="a@b.co/1"/><?pi?>', 'processing instructions are not allowed'],
    ['<!-- c --><id s="T" r="a@b.co/1"/>', 'comments are not allowed'],
    ['<id s="T" r="a@b.co/1"><![CDATA[x]]></id>', 'CDATA sections are not allowed'],
    ['<id s="T" r="a@b.co/1">< p/></id>', 'not XML: "< " does not start a tag'],
    ['<id s="T" r="a@b.co/1"/>x', 'not XML: text after the root element'],
    ['<id s="T" r="a@b.co/1"/>\u00A0', 'not XML: text after the root element'],
    ['<id s="T" r="a@b.co/1"/><id s="T" r="a@b.co/2"/>', 'the document must have exactly one root element, got 2'],
    ['<foo/>', 'root element must be <id>, got <foo>'],
    ['<x:id s="T" r="a@b.co/1"/>', 'root element must be <id>, got <x:id>'],
    ['<id s="T" r="a@b.co/1" x="1"/>', '<id> has unexpected attribute "x"'],
    ['<id s="T" r="a@b.co/1" xmlns="urn:x"/>', '<id> has unexpected attribute "xmlns"'],
    ['<id r="a@b.co/1"/>', '<id> has no attribute s'],
    ['<id s="T"/>', '<id> has no attribute r'],
    ['<id s="" r="a@b.co/1"/>', 'attribute s must be a task name: letters, digits, _ and -, 1-64 characters'],
    [`<id s="${'T'.repeat(65)}" r="a@b.co/1"/>`, 'attribute s must be a task name: letters, digits, _ and -, 1-64 characters'],
    ['<id s="a b" r="a@b.co/1"/>', 'attribute s must be a task name: letters, digits, _ and -, 1-64 characters'],
    ['<id s="T" r="a@b.co"/>', 'attribute r must be "address/messageId"'],
    ['<id s="T" r="a@b.co/"/>', 'message id in attribute r must be 1-32 lower-case hex digits, got ""'],
    ['<id s="T" r="a@b.co/XYZ"/>', 'message id in attribute r must be 1-32 lower-case hex digits, got "XYZ"'],
    ['<id s="T" r="a@b.co/18C2"/>', 'message id in attribute r must be 1-32 lower-case hex digits, got "18C2"'],
    [`<id s="T" r="a@b.co/${'a'.repeat(33)}"/>`, `message id in attribute r must be 1-32 lower-case hex digits, got "${'a'.repeat(33)}"`],
    ['<id s="T" r="/1"/>', 'address in attribute r must be an email address, got ""'],
    ['<id s="T" r="nobody/1"/>', 'address in attribute r must be an email address, got "nobody"'],
    ['<id s="T" r="a..b@c.de/1"/>', 'address in attribute r must be an email address, got "a..b@c.de"'],
    ['<id s="T" r="&quot;a b&quot;@c.de/1"/>', 'address in attribute r must be an email address, got "\\"a b\\"@c.de"'],
    ['<id s="T" r="a@localhost/1"/>', 'address in attribute r must be an email address, got "a@localhost"'],
    [`<id s="T" ${R}>text</id>`, '<id> must not contain text'],
    [`<id s="T" ${R}><q/></id>`, '<id> may contain only <p> elements, got <q>'],
    [`<id s="T" ${R}><p n="a" v="1"/><p v="2"/></id>`, '<p> 2 has no attribute n'],
    [`<id s="T" ${R}><p n="a"/></id>`, '<p> 1 has no attribute v'],
    [`<id s="T" ${R}><p n="a" v="1" w="2"/></id>`, '<p> 1 has unexpected attribute "w"'],
    [`<id s="T" ${R}><p n="a" v="1">x</p></id>`, '<p> must not contain text'],
    [`<id s="T" ${R}><p n="a" v="1"><p n="b" v="2"/></p></id>`, '<p> 1 must be empty'],
    [`<id s="T" ${R}><p n="" v="1"/></id>`, '<p> 1 has an empty name'],
    [`<id s="T" ${R}><p n="a" v="1"/><p n="a" v="2"/></id>`, 'property "a" is given twice'],
    [`<id s="T" ${R}><p n="a" v="x\ty"/></id>`, '<p> 1: value holds U+0009, which identifiers cannot carry'],
    [`<id s="T" ${R}><p n="a&#10;" v="1"/></id>`, '<p> 1: name holds U+000A, which identifiers cannot carry'],
    [`<id s="T" ${R}><p n="a" v="&#xD800;"/></id>`, '<p> 1: value holds U+D800, which identifiers cannot carry'],
    [`<id s="T" ${R}><p n="a" v="&#xFFFF;"/></id>`, '<p> 1: value holds U+FFFF, which identifiers cannot carry'],
    [`<id s="T" ${R}><p n="a" v="&nbsp;"/></id>`, 'not XML: bad entity reference "&nbsp;" in attribute v of <p>'],
    [`<id s="T" ${R}><p n="a" v="&constructor;"/></id>`, 'not XML: bad entity reference "&constructor;" in attribute v of <p>'],
    [`<id s="T" ${R}><p n="a" v="a & b"/></id>`, 'not XML: bad entity reference "& b" in attribute v of <p>'],
    [`<id s="T" ${R}><p n="a" v="&#x110000;"/></id>`, 'not XML: bad entity reference "&#x110000;" in attribute v of <p>'],
    [`<id s="T" ${R}><p n="a" v="a<b"/></id>`, 'not XML: "<" in attribute v of <p>'],
  ];
  for (const [xml, message] of refusals) {
    it(`refuses ${JSON.stringify(xml.slice(0, 70))}: ${message}`, () => refuses(() => decodeIdentifier(b64(xml)), message));
  }

  it('refuses to encode what it would refuse to decode', () => {
    const ok = { task: 'T', address: 'a@b.co', messageId: '1' };
    refuses(() => encodeIdentifier({ ...ok, task: 'my task' }), 'task must be a task name: letters, digits, _ and -, 1-64 characters');
    refuses(() => encodeIdentifier({ ...ok, address: 'a@b' }), 'address must be an email address, got "a@b"');
    refuses(() => encodeIdentifier({ ...ok, messageId: 'xyz' }), 'message id must be 1-32 lower-case hex digits, got "xyz"');
    refuses(() => encodeIdentifier({ ...ok, props: { '': 'v' } }), 'property 1 has an empty name');
    refuses(() => encodeIdentifier({ ...ok, props: { a: '1', b: 'x\ny' } }), 'property 2: value holds U+000A, which identifiers cannot carry');
    refuses(() => encodeIdentifier({ ...ok, props: { ['a\u0000']: '1' } }), 'property 1: name holds U+0000, which identifiers cannot carry');
    refuses(() => encodeIdentifier({ ...ok, props: { a: '\uD83D' } }), 'property 1: value holds U+D83D, which identifiers cannot carry');
  });
});

describe('parseIdentifierList', () => {
  it('splits on commas, trims, and drops empty entries', () => {
    assert.deepEqual(parseIdentifierList(' abc= , ,def+/==,,\tghi '), ['abc=', 'def+/==', 'ghi']);
    assert.deepEqual(parseIdentifierList(''), []);
    assert.deepEqual(parseIdentifierList(' , '), []);
  });

  it('round-trips any list of encoded identifiers', () => {
    fc.assert(
      fc.property(fc.array(identifier, { maxLength: 10 }), (ids) => {
        const encoded = ids.map((id) => encodeIdentifier(id));
        assert.deepEqual(parseIdentifierList(encoded.join(',')), encoded);
        assert.deepEqual(parseIdentifierList(encoded.join(',')).map(decodeIdentifier), ids.map(normalized));
      }),
      { numRuns: 100 },
    );
  });

  it(`allows ${MAX_IDENTIFIERS} identifiers and refuses more`, () => {
    assert.equal(parseIdentifierList(Array(MAX_IDENTIFIERS).fill('QQ==').join(',')).length, MAX_IDENTIFIERS);
    refuses(() => parseIdentifierList(Array(MAX_IDENTIFIERS + 1).fill('QQ==').join(',')), 'too many identifiers: 10001, at most 10000');
  });

  it('refuses a value over 1 MiB, counting UTF-8 bytes', () => {
    assert.equal(parseIdentifierList('A'.repeat(MAX_INPUT_BYTES)).length, 1);
    refuses(() => parseIdentifierList('A'.repeat(MAX_INPUT_BYTES + 1)), 'Identifiers is over 1 MiB');
    refuses(() => parseIdentifierList('é'.repeat(MAX_INPUT_BYTES / 2 + 1)), 'Identifiers is over 1 MiB');
  });
});

describe('parseIdentifiersXml', () => {
  it('reads identifiers with their metadata, in order', () => {
    const xml =
      '<?xml version="1.0" encoding="UTF-8"?>\n<identifiersXML>\n' +
      '  <identifier value=" QQ== "><metadata name="a" value="1"/><metadata name="R&amp;D" value="&lt;&#233;&gt;"/></identifier>\n' +
      '  <identifier value="Qg=="/>\n</identifiersXML>\n';
    assert.deepEqual(parseIdentifiersXml(xml), [
      { identifier: 'QQ==', metadata: { a: '1', 'R&D': '<é>' } },
      { identifier: 'Qg==', metadata: {} },
    ]);
    assert.deepEqual(parseIdentifiersXml('<identifiersXML/>'), []);
  });

  it('round-trips encoded identifiers and escaped metadata', () => {
    const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
    fc.assert(
      fc.property(fc.array(fc.tuple(identifier, props), { maxLength: 5 }), (entries) => {
        const xml = `<identifiersXML>${entries
          .map(([id, meta]) => {
            const m = Object.entries(meta).map(([n, v]) => `<metadata name="${esc(n)}" value="${esc(v)}"/>`);
            return `<identifier value="${encodeIdentifier(id)}">${m.join('')}</identifier>`;
          })
          .join('')}</identifiersXML>`;
        const parsed = parseIdentifiersXml(xml);
        assert.deepEqual(
          parsed,
          entries.map(([id, meta]) => ({ identifier: encodeIdentifier(id), metadata: { ...meta } })),
        );
        assert.deepEqual(parsed.map((e) => decodeIdentifier(e.identifier)), entries.map(([id]) => normalized(id)));
      }),
      { numRuns: 100 },
    );
  });

  const refusals: [string, string][] = [
    ['', 'not XML: Start tag expected. (line 1)'],
    ['<identifiers/>', 'root element must be <identifiersXML>, got <identifiers>'],
    ['<identifiersXML a="1"/>', '<identifiersXML> has unexpected attribute "a"'],
    ['<identifiersXML>x</identifiersXML>', '<identifiersXML> must not contain text'],
    ['<identifiersXML><id value="QQ=="/></identifiersXML>', '<identifiersXML> may contain only <identifier> elements, got <id>'],
    ['<identifiersXML><identifier value="QQ=="/><identifier value="Qg=="/><identifier/></identifiersXML>', 'identifier 3 has no value'],
    ['<identifiersXML><identifier value=" "/></identifiersXML>', 'identifier 1 has no value'],
    ['<identifiersXML><identifier value="QQ==" x="1"/></identifiersXML>', 'identifier 1 has unexpected attribute "x"'],
    ['<identifiersXML><identifier value="QQ==">QQ==</identifier></identifiersXML>', '<identifier> must not contain text'],
    ['<identifiersXML><identifier value="QQ=="><meta/></identifier></identifiersXML>', 'identifier 1 may contain only <metadata> elements, got <meta>'],
    ['<identifiersXML><identifier value="QQ=="><metadata value="1"/></identifier></identifiersXML>', 'identifier 1: metadata 1 has no attribute name'],
    ['<identifiersXML><identifier value="QQ=="><metadata name="a"/></identifier></identifiersXML>', 'identifier 1: metadata 1 has no attribute value'],
    ['<identifiersXML><identifier value="QQ=="><metadata name="" value=""/></identifier></identifiersXML>', 'identifier 1: metadata 1 has an empty name'],
    [
      '<identifiersXML><identifier value="QQ=="><metadata name="a" value="1"/><metadata name="a" value="2"/></identifier></identifiersXML>',
      'identifier 1 has metadata "a" twice',
    ],
    [
      '<identifiersXML><identifier value="QQ=="><metadata name="a" value="1"><x/></metadata></identifier></identifiersXML>',
      'identifier 1: metadata 1 must be empty',
    ],
    ['<identifiersXML><identifier value="QQ=="><metadata name="a" value="&#1;"/></identifier></identifiersXML>', 'identifier 1: metadata 1: value holds U+0001, which identifiers cannot carry'],
    ['<!DOCTYPE lol [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;">]><identifiersXML><identifier value="&lol2;"/></identifiersXML>', 'DOCTYPE is not allowed'],
    ['<identifiersXML><identifier value="&lol;"/></identifiersXML>', 'not XML: bad entity reference "&lol;" in attribute value of <identifier>'],
    ['<?xml-stylesheet href="x"?><identifiersXML/>', 'processing instructions are not allowed'],
    ['<identifiersXML><!-- x --></identifiersXML>', 'comments are not allowed'],
    ['<identifiersXML></identifiersXML><identifiersXML/>', 'the document must have exactly one root element, got 2'],
    ['<identifiersXML><identifier value="QQ=="></identifiersXML>', "not XML: Expected closing tag 'identifier' (opened in line 1, col 17) instead of closing tag 'identifiersXML'. (line 1, column 42)"],
  ];
  for (const [xml, message] of refusals) {
    it(`refuses ${JSON.stringify(xml.slice(0, 70))}: ${message}`, () => refuses(() => parseIdentifiersXml(xml), message));
  }

  it(`allows ${MAX_IDENTIFIERS} identifiers and refuses more`, () => {
    const xml = (n: number): string => `<identifiersXML>${'<identifier value="QQ=="/>'.repeat(n)}</identifiersXML>`;
    assert.equal(parseIdentifiersXml(xml(MAX_IDENTIFIERS)).length, MAX_IDENTIFIERS);
    refuses(() => parseIdentifiersXml(xml(MAX_IDENTIFIERS + 1)), 'too many identifiers: 10001, at most 10000');
  });

  it('refuses a value over 1 MiB', () => {
    refuses(() => parseIdentifiersXml(`<identifiersXML>${' '.repeat(MAX_INPUT_BYTES)}</identifiersXML>`), 'IdentifiersXML is over 1 MiB');
  });
});

describe('fuzz: nothing but IdentifierError is ever thrown', () => {
  const xmlish = fc.string({
    unit: fc.constantFrom(
      '<', '>', '/', '=', '"', "'", ' ', '\n', '&', ';', '#', 'x', '?', '!', '-', '[', ']',
      'id', 'p', 's', 'r', 'n', 'v', ' s="T"', ' r="a@b.co/1"', ' n="a"', ' v="b"', '<p', '</id>', '<id', '/>',
      '&amp;', '&#65;', '&#xD800;', '&lt;', '<!--', '-->', '<?xml version="1.0"?>', '<!DOCTYPE', '<![CDATA[',
      'identifiersXML', 'identifier', 'metadata', ' value="QQ=="', ' name="m"', '__proto__', 'constructor', 'é', '\u0000',
    ),
    maxLength: 40,
  });

  it('for arbitrary strings', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary' }), (s) => {
        onlyIdentifierErrors(() => decodeIdentifier(s));
        onlyIdentifierErrors(() => parseIdentifierList(s));
        onlyIdentifierErrors(() => parseIdentifiersXml(s));
      }),
      { numRuns: 2000 },
    );
  });

  it('for base64 of arbitrary bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        onlyIdentifierErrors(() => decodeIdentifier(Buffer.from(bytes).toString('base64')));
      }),
      { numRuns: 2000 },
    );
  });

  it('for XML-like text, raw and as base64', () => {
    fc.assert(
      fc.property(xmlish, (s) => {
        onlyIdentifierErrors(() => decodeIdentifier(b64(s)));
        onlyIdentifierErrors(() => parseIdentifiersXml(s));
      }),
      { numRuns: 5000 },
    );
  });

  it('for valid identifiers with one character changed', () => {
    fc.assert(
      fc.property(identifier, fc.nat(), fc.string({ minLength: 1, maxLength: 1, unit: 'binary' }), (id, at, ch) => {
        const xml = Buffer.from(encodeIdentifier(id), 'base64').toString();
        const i = at % xml.length;
        onlyIdentifierErrors(() => decodeIdentifier(b64(xml.slice(0, i) + ch + xml.slice(i + 1))));
      }),
      { numRuns: 2000 },
    );
  });

  it('for deeply nested elements', () => {
    refuses(() => decodeIdentifier(b64(`${'<id>'.repeat(500)}${'</id>'.repeat(500)}`)), 'not XML: Maximum nested tags exceeded');
    onlyIdentifierErrors(() => parseIdentifiersXml(`${'<a>'.repeat(100000)}${'</a>'.repeat(100000)}`));
  });
});
