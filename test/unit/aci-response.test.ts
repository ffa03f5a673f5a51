/**
 * ACI responses (functions/src/aci/response.ts): the exact envelope of docs/CONTRACT.md
 * in xml, simplejson and json, errors, time format, format choice, and property
 * tests that XML output is always well-formed and carries any string back, and
 * that the three formats describe the same tree.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { AciError, badParameter, internal, missingParameter } from '../../functions/src/aci/errors.js';
import { createAciParams } from '../../functions/src/aci/request.js';
import {
  chooseFormat,
  escapeXmlAttribute,
  escapeXmlText,
  formatAciTime,
  renderError,
  renderSuccess,
  type AciField,
  type AciNode,
  type AciTree,
  type ResponseFormat,
} from '../../functions/src/aci/response.js';

const parser = new XMLParser({
  ignoreAttributes: false,
  attributeNamePrefix: '@',
  textNodeName: '$',
  trimValues: false,
  parseTagValue: false,
  parseAttributeValue: false,
  htmlEntities: true, // numeric character references (&#13;)
  ignoreDeclaration: true,
});

/** What XML can carry of a string: characters outside XML 1.0's Char become U+FFFD (checked code point by code point). */
function xmlCarried(text: string): string {
  let out = '';
  for (const c of text) {
    const cp = c.codePointAt(0) ?? 0;
    const ok =
      cp === 0x9 ||
      cp === 0xa ||
      cp === 0xd ||
      (cp >= 0x20 && cp <= 0xd7ff) ||
      (cp >= 0xe000 && cp <= 0xfffd) ||
      (cp >= 0x10000 && cp <= 0x10ffff);
    out += ok ? c : '\uFFFD';
  }
  return out;
}

/** Every character of an XML document is allowed by XML 1.0 (the validator does not check this). */
function assertXmlChars(xml: string): void {
  assert.equal(xmlCarried(xml), xml, 'the document holds a character XML 1.0 does not allow');
}

function assertWellFormedXml(xml: string): void {
  assert.equal(XMLValidator.validate(xml), true, xml);
  assertXmlChars(xml);
  assert.ok(xml.startsWith('<?xml version="1.0" encoding="UTF-8"?>\n<autnresponse xmlns:autn="http://schemas.autonomy.com/aci/">\n'));
}

/** The body survives UTF-8 encoding unchanged (no lone surrogates). */
function assertUtf8Safe(body: string): void {
  assert.equal(Buffer.from(body, 'utf8').toString('utf8'), body);
}

type Parsed = { autnresponse: { responsedata: Record<string, unknown> } & Record<string, unknown> };

function responseData(body: string, format: ResponseFormat): Record<string, unknown> {
  const parsed = (format === 'xml' ? parser.parse(body) : JSON.parse(body)) as Parsed;
  return parsed.autnresponse.responsedata;
}

// ---------------------------------------------------------------------------
// The QueueInfo example of docs/CONTRACT.md
// ---------------------------------------------------------------------------

const QUEUE_INFO: AciTree = {
  actions: {
    action: [
      {
        token: 'Q2F0Y2ggbWUgaWYgeW91IGNhbg',
        status: 'Finished',
        queued_time: '2022-Nov-03 19:19:37',
        time_in_queue: 0,
        process_start_time: '2022-Nov-03 19:19:37',
        time_processing: 2,
        process_end_time: '2022-Nov-03 19:19:39',
        fetchaction: 'SYNCHRONIZE',
        tasks: { success: ['MYTASK'], failed: [] },
        stop_requested: false,
        progress: { percent: 100, pages: 1, messages: 4 },
        documentcounts: {
          documentcount: [{ '@task': 'MYTASK', '@seen': 4, '@added': 4, '@updated': 0, '@unchanged': 0, '@deleted': 0, '@errors': 0 }],
        },
        error: undefined,
      },
    ],
  },
};

const QUEUE_INFO_XML = `<?xml version="1.0" encoding="UTF-8"?>
<autnresponse xmlns:autn="http://schemas.autonomy.com/aci/">
  <action>QUEUEINFO</action>
  <response>SUCCESS</response>
  <responsedata>
    <actions>
      <action>
        <token>Q2F0Y2ggbWUgaWYgeW91IGNhbg</token>
        <status>Finished</status>
        <queued_time>2022-Nov-03 19:19:37</queued_time>
        <time_in_queue>0</time_in_queue>
        <process_start_time>2022-Nov-03 19:19:37</process_start_time>
        <time_processing>2</time_processing>
        <process_end_time>2022-Nov-03 19:19:39</process_end_time>
        <fetchaction>SYNCHRONIZE</fetchaction>
        <tasks>
          <success>MYTASK</success>
        </tasks>
        <stop_requested>false</stop_requested>
        <progress>
          <percent>100</percent>
          <pages>1</pages>
          <messages>4</messages>
        </progress>
        <documentcounts>
          <documentcount task="MYTASK" seen="4" added="4" updated="0" unchanged="0" deleted="0" errors="0"/>
        </documentcounts>
      </action>
    </actions>
  </responsedata>
</autnresponse>
`;

const QUEUE_INFO_SIMPLEJSON =
  '{"autnresponse":{"action":"QUEUEINFO","response":"SUCCESS","responsedata":{"actions":{"action":[{' +
  '"token":"Q2F0Y2ggbWUgaWYgeW91IGNhbg","status":"Finished","queued_time":"2022-Nov-03 19:19:37","time_in_queue":"0",' +
  '"process_start_time":"2022-Nov-03 19:19:37","time_processing":"2","process_end_time":"2022-Nov-03 19:19:39",' +
  '"fetchaction":"SYNCHRONIZE","tasks":{"success":["MYTASK"]},"stop_requested":"false",' +
  '"progress":{"percent":"100","pages":"1","messages":"4"},' +
  '"documentcounts":{"documentcount":[{"@task":"MYTASK","@seen":"4","@added":"4","@updated":"0","@unchanged":"0","@deleted":"0","@errors":"0"}]}' +
  '}]}}}}\n';

const QUEUE_INFO_JSON =
  '{"autnresponse":{"action":{"$":"QUEUEINFO"},"response":{"$":"SUCCESS"},"responsedata":{"actions":{"action":[{' +
  '"token":{"$":"Q2F0Y2ggbWUgaWYgeW91IGNhbg"},"status":{"$":"Finished"},"queued_time":{"$":"2022-Nov-03 19:19:37"},' +
  '"time_in_queue":{"$":"0"},"process_start_time":{"$":"2022-Nov-03 19:19:37"},"time_processing":{"$":"2"},' +
  '"process_end_time":{"$":"2022-Nov-03 19:19:39"},"fetchaction":{"$":"SYNCHRONIZE"},"tasks":{"success":[{"$":"MYTASK"}]},' +
  '"stop_requested":{"$":"false"},"progress":{"percent":{"$":"100"},"pages":{"$":"1"},"messages":{"$":"4"}},' +
  '"documentcounts":{"documentcount":[{"@task":"MYTASK","@seen":"4","@added":"4","@updated":"0","@unchanged":"0","@deleted":"0","@errors":"0"}]}' +
  '}]}}}}\n';

describe('renderSuccess: the QueueInfo example', () => {
  it('writes XML exactly', () => {
    const r = renderSuccess('QueueInfo', QUEUE_INFO, 'xml');
    assert.equal(r.status, 200);
    assert.equal(r.contentType, 'application/xml; charset=utf-8');
    assert.equal(r.body, QUEUE_INFO_XML);
    assertWellFormedXml(r.body);
  });

  it('writes simplejson exactly: lists are arrays even of one, attributes are @keys', () => {
    const r = renderSuccess('QueueInfo', QUEUE_INFO, 'simplejson');
    assert.equal(r.status, 200);
    assert.equal(r.contentType, 'application/json; charset=utf-8');
    assert.equal(r.body, QUEUE_INFO_SIMPLEJSON);
  });

  it('writes json exactly: every element text wrapped as {"$": ...}', () => {
    const r = renderSuccess('QueueInfo', QUEUE_INFO, 'json');
    assert.equal(r.contentType, 'application/json; charset=utf-8');
    assert.equal(r.body, QUEUE_INFO_JSON);
  });
});

describe('renderSuccess: tree rules', () => {
  it('writes a Fetch answer as in docs/CONTRACT.md', () => {
    assert.equal(
      renderSuccess('Fetch', { token: 'abc' }, 'xml').body,
      '<?xml version="1.0" encoding="UTF-8"?>\n<autnresponse xmlns:autn="http://schemas.autonomy.com/aci/">\n' +
        '  <action>FETCH</action>\n  <response>SUCCESS</response>\n  <responsedata>\n    <token>abc</token>\n  </responsedata>\n</autnresponse>\n',
    );
    assert.equal(
      renderSuccess('Fetch', { token: 'abc' }, 'simplejson').body,
      '{"autnresponse":{"action":"FETCH","response":"SUCCESS","responsedata":{"token":"abc"}}}\n',
    );
  });

  it('writes an empty responsedata when there is no data', () => {
    for (const data of [undefined, {}]) {
      assert.match(renderSuccess('Resume', data, 'xml').body, /\n {2}<responsedata\/>\n/);
      assert.equal(renderSuccess('Resume', data, 'simplejson').body, '{"autnresponse":{"action":"RESUME","response":"SUCCESS","responsedata":{}}}\n');
      assert.equal(
        renderSuccess('Resume', data, 'json').body,
        '{"autnresponse":{"action":{"$":"RESUME"},"response":{"$":"SUCCESS"},"responsedata":{}}}\n',
      );
    }
  });

  it('leaves out null, undefined and empty lists in every format', () => {
    const data: AciTree = { a: null, b: undefined, c: [], d: [null, undefined], e: 'kept', '@f': null };
    assert.deepEqual(responseData(renderSuccess('X', data, 'simplejson').body, 'simplejson'), { e: 'kept' });
    assert.deepEqual(responseData(renderSuccess('X', data, 'json').body, 'json'), { e: { $: 'kept' } });
    assert.match(renderSuccess('X', data, 'xml').body, /<responsedata>\n {4}<e>kept<\/e>\n {2}<\/responsedata>/);
  });

  it('writes numbers and booleans as strings, and empty text as an empty element', () => {
    const data: AciTree = { n: -1.5, t: true, f: false, z: 0, s: '', list: [1, 'two', { '@k': 3 }] };
    assert.deepEqual(responseData(renderSuccess('X', data, 'simplejson').body, 'simplejson'), {
      n: '-1.5',
      t: 'true',
      f: 'false',
      z: '0',
      s: '',
      list: ['1', 'two', { '@k': '3' }],
    });
    assert.match(renderSuccess('X', data, 'xml').body, /<s\/>\n {4}<list>1<\/list>\n {4}<list>two<\/list>\n {4}<list k="3"\/>/);
  });

  it('writes $ as the text of an element with attributes, and alone as plain text', () => {
    const data: AciTree = { e: { '@id': 'x', $: 'text' }, plain: { $: 'only' }, mixed: { $: 'a', c: 'b' } };
    const xml = renderSuccess('X', data, 'xml').body;
    assert.match(xml, /<e id="x">text<\/e>/);
    assert.match(xml, /<plain>only<\/plain>/);
    assert.match(xml, /<mixed>a<c>b<\/c><\/mixed>/); // mixed content stays on one line
    assert.deepEqual(responseData(renderSuccess('X', data, 'simplejson').body, 'simplejson'), {
      e: { '@id': 'x', $: 'text' },
      plain: 'only',
      mixed: { $: 'a', c: 'b' },
    });
    assert.deepEqual(responseData(renderSuccess('X', data, 'json').body, 'json'), {
      e: { '@id': 'x', $: 'text' },
      plain: { $: 'only' },
      mixed: { $: 'a', c: { $: 'b' } },
    });
  });

  it('keeps a key named __proto__ as an ordinary key in JSON', () => {
    const data = JSON.parse('{"__proto__":"v"}') as AciTree;
    assert.equal(renderSuccess('X', data, 'simplejson').body, '{"autnresponse":{"action":"X","response":"SUCCESS","responsedata":{"__proto__":"v"}}}\n');
  });

  it('refuses what is not a tree: bad names, nested lists, class instances', () => {
    const bad: unknown[] = [{ 'bad name': 'x' }, { '1abc': 'x' }, { '@a b': 'x' }, { l: [[1]] }, { d: new Date(0) }, { '@a': { x: 1 } }, { $: {} }];
    for (const data of bad) {
      assert.throws(() => renderSuccess('X', data as AciTree, 'xml'), TypeError, JSON.stringify(data));
      assert.throws(() => renderSuccess('X', data as AciTree, 'simplejson'), TypeError, JSON.stringify(data));
    }
  });

  it('upper-cases the action name and escapes it', () => {
    assert.match(renderSuccess('Get<Status>', undefined, 'xml').body, /<action>GET&lt;STATUS&gt;<\/action>/);
  });
});

describe('renderSuccess and renderError: the ActionID', () => {
  it('is echoed as actionid right after action, in every format; left out when undefined', () => {
    assert.match(renderSuccess('Fetch', { token: 't' }, 'xml', [], 'job-1').body, /\n {2}<action>FETCH<\/action>\n {2}<actionid>job-1<\/actionid>\n {2}<response>SUCCESS<\/response>\n/);
    assert.equal(
      renderSuccess('Fetch', { token: 't' }, 'simplejson', ['w'], 'job-1').body,
      '{"autnresponse":{"action":"FETCH","actionid":"job-1","response":"SUCCESS","warning":["w"],"responsedata":{"token":"t"}}}\n',
    );
    assert.equal(
      renderSuccess('Fetch', { token: 't' }, 'json', [], 'job-1').body,
      '{"autnresponse":{"action":{"$":"FETCH"},"actionid":{"$":"job-1"},"response":{"$":"SUCCESS"},"responsedata":{"token":{"$":"t"}}}}\n',
    );
    assert.doesNotMatch(renderSuccess('Fetch', { token: 't' }, 'xml').body, /actionid/);
    const now = new Date(Date.UTC(2022, 10, 3, 19, 19, 37));
    const e = renderError('Fetch', new AciError(409, 'GMAILCONNECTOR-CONFLICT', 'no'), 'simplejson', now, 'job-1');
    assert.match(e.body, /^\{"autnresponse":\{"action":"FETCH","actionid":"job-1","response":"ERROR",/);
    assert.doesNotMatch(renderError(undefined, new AciError(409, 'GMAILCONNECTOR-CONFLICT', 'no'), 'xml', now).body, /actionid/);
  });
});

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

describe('renderError', () => {
  const now = new Date(Date.UTC(2022, 10, 3, 19, 19, 37, 512));
  const error = missingParameter('Token', 'pass the token that Fetch returned');

  it('writes the XML error envelope with the error status', () => {
    const r = renderError('QueueInfo', error, 'xml', now);
    assert.equal(r.status, 400);
    assert.equal(r.contentType, 'application/xml; charset=utf-8');
    assert.equal(
      r.body,
      `<?xml version="1.0" encoding="UTF-8"?>
<autnresponse xmlns:autn="http://schemas.autonomy.com/aci/">
  <action>QUEUEINFO</action>
  <response>ERROR</response>
  <responsedata>
    <error>
      <errorid>GMAILCONNECTOR-MISSING-PARAMETER</errorid>
      <errorstring>Missing parameter Token: pass the token that Fetch returned.</errorstring>
      <errordescription>Missing parameter Token: pass the token that Fetch returned.</errordescription>
      <errorcode>-1</errorcode>
      <errortime>2022-Nov-03 19:19:37</errortime>
    </error>
  </responsedata>
</autnresponse>
`,
    );
  });

  it('writes the same envelope in simplejson and json', () => {
    const error = new AciError(409, 'GMAILCONNECTOR-CONFLICT', 'The action is running: use Stop.', { description: 'Longer text.' });
    const simple = renderError('QueueInfo', error, 'simplejson', now);
    assert.equal(simple.status, 409);
    assert.equal(
      simple.body,
      '{"autnresponse":{"action":"QUEUEINFO","response":"ERROR","responsedata":{"error":{"errorid":"GMAILCONNECTOR-CONFLICT",' +
        '"errorstring":"The action is running: use Stop.","errordescription":"Longer text.","errorcode":"-10",' +
        '"errortime":"2022-Nov-03 19:19:37"}}}}\n',
    );
    const json = renderError('QueueInfo', error, 'json', now);
    assert.equal(
      json.body,
      '{"autnresponse":{"action":{"$":"QUEUEINFO"},"response":{"$":"ERROR"},"responsedata":{"error":{"errorid":{"$":"GMAILCONNECTOR-CONFLICT"},' +
        '"errorstring":{"$":"The action is running: use Stop."},"errordescription":{"$":"Longer text."},"errorcode":{"$":"-10"},' +
        '"errortime":{"$":"2022-Nov-03 19:19:37"}}}}}\n',
    );
  });

  it('leaves out the action when it is not known', () => {
    const r = renderError(undefined, error, 'simplejson', now);
    assert.deepEqual(Object.keys((JSON.parse(r.body) as Parsed).autnresponse), ['response', 'responsedata']);
  });

  it('never writes the cause of an internal error', () => {
    const r = renderError('Fetch', internal('the store failed', new Error('password=hunter2')), 'xml', now);
    assert.equal(r.status, 500);
    assert.doesNotMatch(r.body, /hunter2|at .*\.ts/);
  });
});

// ---------------------------------------------------------------------------
// Time and format
// ---------------------------------------------------------------------------

describe('formatAciTime', () => {
  it('writes UTC in IDOL form, zero-padded', () => {
    assert.equal(formatAciTime(new Date(Date.UTC(2022, 10, 3, 19, 19, 37))), '2022-Nov-03 19:19:37');
    assert.equal(formatAciTime(new Date(Date.UTC(2000, 0, 1, 0, 0, 0, 999))), '2000-Jan-01 00:00:00');
    assert.equal(formatAciTime(new Date('2024-12-31T23:59:59+02:00')), '2024-Dec-31 21:59:59');
    assert.throws(() => formatAciTime(new Date(Number.NaN)), RangeError);
  });

  it('round-trips any second through Date.parse', () => {
    fc.assert(
      fc.property(fc.integer({ min: Date.UTC(1970, 0, 1), max: Date.UTC(9999, 11, 31) }), (ms) => {
        const text = formatAciTime(new Date(ms));
        assert.match(text, /^\d{4}-(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)-\d{2} \d{2}:\d{2}:\d{2}$/);
        assert.equal(Date.parse(`${text.replace(' ', 'T')}Z`.replace(/-(\w{3})-/, (_, m: string) => `-${monthNumber(m)}-`)), ms - (ms % 1000));
      }),
    );
  });
});

function monthNumber(name: string): string {
  return String(['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'].indexOf(name) + 1).padStart(2, '0');
}

describe('chooseFormat', () => {
  it('reads ResponseFormat case-insensitively, xml by default', () => {
    assert.equal(chooseFormat(undefined), 'xml');
    assert.equal(chooseFormat(createAciParams([])), 'xml');
    assert.equal(chooseFormat(createAciParams([['responseformat', 'SimpleJSON']])), 'simplejson');
    assert.equal(chooseFormat(createAciParams([['ResponseFormat', 'JSON']])), 'json');
    assert.equal(chooseFormat(createAciParams([['ResponseFormat', 'xml']])), 'xml');
  });

  it('throws a 400 for an unknown format, which callers render in xml', () => {
    let error: unknown;
    try {
      chooseFormat(createAciParams([['ResponseFormat', 'yaml']]));
    } catch (e) {
      error = e;
    }
    assert.ok(error instanceof AciError);
    assert.equal(error.status, 400);
    assert.match(error.message, /xml, simplejson, json/);
    const r = renderError('GetVersion', error, 'xml', new Date(0));
    assert.equal(r.status, 400);
    assertWellFormedXml(r.body);
  });
});

// ---------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------

/** Any UTF-16 string: lone surrogates and control characters included. */
const anyUtf16 = fc.oneof(
  fc.string({ unit: fc.integer({ min: 0, max: 0xffff }).map((u) => String.fromCharCode(u)), maxLength: 30 }),
  fc.string({ unit: 'binary', maxLength: 30 }),
  fc.string({
    unit: fc.constantFrom('&', '<', '>', '"', "'", '\r', '\n', '\t', '\r\n', ']]>', '&amp;', '&#13;', '\0', '\uFFFE', '\uFFFF', '\uD800', '\uDC00', '😀', ' ', 'a'),
    maxLength: 20,
  }),
);

describe('escaping: properties', () => {
  it('XML is well-formed and carries any string back, as text and as attribute', () => {
    fc.assert(
      fc.property(anyUtf16, (s) => {
        const data: AciTree = { echo: s, attr: { '@value': s }, both: { '@value': s, $: s }, list: [s, s] };
        const r = renderSuccess(s, data, 'xml');
        assertWellFormedXml(r.body);
        assertUtf8Safe(r.body);
        const carried = xmlCarried(s);
        const parsed = parser.parse(r.body) as Parsed;
        assert.equal(parsed.autnresponse.action, xmlCarried(s.toUpperCase()));
        const { $: indentation, ...data2 } = parsed.autnresponse.responsedata;
        assert.equal(typeof indentation === 'string' ? indentation.trim() : '', '');
        assert.deepEqual(data2, {
          echo: carried,
          attr: { '@value': carried },
          both: carried === '' ? { '@value': carried } : { '@value': carried, $: carried },
          list: [carried, carried],
        });
      }),
      { numRuns: 500 },
    );
  });

  it('escape functions leave nothing XML would misread', () => {
    fc.assert(
      fc.property(anyUtf16, (s) => {
        for (const escaped of [escapeXmlText(s), escapeXmlAttribute(s)]) {
          assertXmlChars(escaped);
          assert.doesNotMatch(escaped, /[<>"'\r]|&(?!(amp|lt|gt|quot|apos|#9|#10|#13);)/);
        }
        assert.doesNotMatch(escapeXmlAttribute(s), /[\t\n]/);
      }),
    );
  });

  it('simplejson and json carry any string exactly', () => {
    fc.assert(
      fc.property(anyUtf16, (s) => {
        const data: AciTree = { echo: s, attr: { '@value': s }, list: [s] };
        const simple = renderSuccess('X', data, 'simplejson').body;
        const json = renderSuccess('X', data, 'json').body;
        assertUtf8Safe(simple);
        assertUtf8Safe(json);
        assert.deepEqual(responseData(simple, 'simplejson'), { echo: s, attr: { '@value': s }, list: [s] });
        assert.deepEqual(responseData(json, 'json'), { echo: { $: s }, attr: { '@value': s }, list: [{ $: s }] });
      }),
      { numRuns: 500 },
    );
  });

  it('error messages of any text render well-formed in every format', () => {
    fc.assert(
      fc.property(anyUtf16, anyUtf16, (name, value) => {
        const error = badParameter(name, value, 'anything else');
        assert.doesNotMatch(error.message, /[\r\n]/);
        for (const format of ['xml', 'simplejson', 'json'] as const) {
          const r = renderError(name, error, format, new Date(0));
          assertUtf8Safe(r.body);
          if (format === 'xml') assertWellFormedXml(r.body);
          else JSON.parse(r.body);
        }
      }),
    );
  });
});

// Random trees: the three formats describe the same tree.

const elementName = fc.constantFrom('a', 'b', 'item', 'token', '_x', 'n-1', 'A.b');
const attributeName = fc.constantFrom('x', 'y', 'task', 'added');
const textValue = fc.oneof(anyUtf16, fc.integer(), fc.boolean(), fc.double());

function attributes(dict: Record<string, string | number | boolean | null>): Record<string, string | number | boolean | null> {
  return Object.fromEntries(Object.entries(dict).map(([k, v]) => [`@${k}`, v]));
}

const { tree: treeArb } = fc.letrec<{ node: AciNode; field: AciField; tree: AciTree }>((tie) => ({
  node: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    textValue,
    fc
      .tuple(fc.dictionary(attributeName, fc.option(textValue, { nil: null }), { maxKeys: 2 }), fc.option(textValue, { nil: undefined }))
      .map(([attrs, text]): AciTree => (text === undefined ? attributes(attrs) : { ...attributes(attrs), $: text })),
    tie('tree'),
  ),
  field: fc.oneof(
    { depthSize: 'small' },
    tie('node'),
    fc.constant(null),
    fc.constant(undefined),
    fc.array(fc.oneof(tie('node'), fc.constant(null)), { maxLength: 3 }),
  ),
  tree: fc
    .tuple(fc.dictionary(elementName, tie('field'), { maxKeys: 4 }), fc.dictionary(attributeName, textValue, { maxKeys: 2 }))
    .map(([children, attrs]) => ({ ...children, ...attributes(attrs) }) as AciTree),
}));

/** simplejson in the shape an XML parser gives: one-item lists unwrapped, empty text and empty elements as ''. */
function normalizeSimple(value: unknown): unknown {
  if (typeof value === 'string') return xmlCarried(value);
  if (Array.isArray(value)) return value.length === 1 ? normalizeSimple(value[0]) : value.map(normalizeSimple);
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    const n = normalizeSimple(v);
    if (!(k === '$' && n === '')) out[k] = n;
  }
  return Object.keys(out).length === 0 ? '' : out;
}

/** Parsed XML without indentation text and empty text. */
function normalizeParsed(value: unknown): unknown {
  if (typeof value === 'string') return value;
  if (Array.isArray(value)) return value.map(normalizeParsed);
  const entries = Object.entries(value as Record<string, unknown>);
  const hasChildren = entries.some(([k]) => k !== '$' && !k.startsWith('@'));
  const out: Record<string, unknown> = {};
  for (const [k, v] of entries) {
    if (k === '$' && (v === '' || (hasChildren && typeof v === 'string' && v.trim() === ''))) continue;
    out[k] = normalizeParsed(v);
  }
  return Object.keys(out).length === 0 ? '' : out;
}

/** json with every `{"$": text}` unwrapped: what simplejson writes. */
function unwrapJson(value: unknown): unknown {
  if (typeof value === 'string') return value;
  if (Array.isArray(value)) return value.map(unwrapJson);
  const entries = Object.entries(value as Record<string, unknown>);
  if (entries.length === 1 && entries[0]?.[0] === '$') return entries[0][1];
  return Object.fromEntries(entries.map(([k, v]) => [k, unwrapJson(v)]));
}

describe('random trees: properties', () => {
  it('xml, simplejson and json describe the same tree', () => {
    fc.assert(
      fc.property(treeArb, (tree) => {
        const xml = renderSuccess('X', tree, 'xml').body;
        const simple = renderSuccess('X', tree, 'simplejson').body;
        const json = renderSuccess('X', tree, 'json').body;
        assertWellFormedXml(xml);
        for (const body of [xml, simple, json]) assertUtf8Safe(body);
        const simpleData = responseData(simple, 'simplejson');
        assert.deepEqual(unwrapJson(responseData(json, 'json')), simpleData);
        assert.deepEqual(normalizeParsed(responseData(xml, 'xml')), normalizeSimple(simpleData));
      }),
      { numRuns: 500 },
    );
  });

  it('lists are arrays in JSON whatever their length, and absent when empty', () => {
    fc.assert(
      fc.property(fc.array(fc.oneof(fc.string(), fc.constant(null)), { maxLength: 4 }), (items) => {
        const kept = items.filter((i): i is string => i !== null);
        const data = responseData(renderSuccess('X', { list: items }, 'simplejson').body, 'simplejson');
        assert.deepEqual(data, kept.length === 0 ? {} : { list: kept });
      }),
    );
  });
});
