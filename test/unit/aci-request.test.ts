/**
 * ACI request parsing (functions/src/aci/request.ts) and the error catalogue
 * (functions/src/aci/errors.ts): example tests pinning docs/CONTRACT.md, and property
 * tests over arbitrary parameter sets, duplicates, invalid UTF-8 and sizes.
 */
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import busboy from 'busboy';
import fc from 'fast-check';
import {
  ACI_ERRORS,
  AciError,
  type AciErrorId,
  internal,
  missingParameter,
  notFound,
  quote,
  tooLarge,
  unavailable,
} from '../../functions/src/aci/errors.js';
import { toAciError } from '../../functions/src/app/failures.js';
import {
  createAciParams,
  parameterKey,
  parseAciRequest,
  parseBoolParam,
  parseEnum,
  parseIntParam,
  parseMultipart,
  requireParam,
  splitRequestTarget,
  type AciParams,
  type AciRequestLike,
} from '../../functions/src/aci/request.js';

// ---------------------------------------------------------------------------
// Encoders (independent of the code under test)
// ---------------------------------------------------------------------------

const UNRESERVED = /^[A-Za-z0-9\-._~]$/;

/** Percent-encodes text as UTF-8; `plus` picks `+` or `%20` for spaces, `lower` the hex case. */
function pct(text: string, plus = true, lower = false): string {
  let out = '';
  for (const byte of Buffer.from(text, 'utf8')) {
    const c = String.fromCharCode(byte);
    if (UNRESERVED.test(c)) out += c;
    else if (byte === 0x20 && plus) out += '+';
    else {
      const hex = byte.toString(16).padStart(2, '0');
      out += `%${lower ? hex : hex.toUpperCase()}`;
    }
  }
  return out;
}

function pctBytes(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => `%${b.toString(16).padStart(2, '0').toUpperCase()}`).join('');
}

type Pair = readonly [string, string];

function urlEncoded(pairs: readonly Pair[], plus = true, lower = false): string {
  return pairs.map(([n, v]) => `${pct(n, plus, lower)}=${pct(v, plus, lower)}`).join('&');
}

const BOUNDARY = '----AciTestBoundary7MA4YWxkTrZu0gW';

interface PartOptions {
  /** Write the name as RFC 8187 `name*=UTF-8''...` instead of a quoted string. */
  readonly extName?: boolean;
  /** Send the part as a file (`filename` and an octet-stream type). */
  readonly file?: boolean;
  /** Declare `Content-Type: text/plain; charset=utf-8`. */
  readonly charset?: boolean;
}

/** One multipart part; `value` is raw bytes or text written as UTF-8. */
function part(name: string | Uint8Array, value: string | Uint8Array, options: PartOptions = {}): Buffer {
  let disposition: Buffer;
  if (typeof name !== 'string') {
    disposition = Buffer.concat([Buffer.from('form-data; name="'), Buffer.from(name), Buffer.from('"')]);
  } else if (options.extName === true || /[\r\n]/.test(name)) {
    disposition = Buffer.from(`form-data; name*=UTF-8''${pct(name, false)}`);
  } else {
    disposition = Buffer.from(`form-data; name="${name.replace(/[\\"]/g, (c) => `\\${c}`)}"`, 'utf8');
  }
  if (options.file === true) disposition = Buffer.concat([disposition, Buffer.from('; filename="value.txt"')]);
  const headers = [Buffer.from('Content-Disposition: '), disposition, Buffer.from('\r\n')];
  if (options.file === true) headers.push(Buffer.from('Content-Type: application/octet-stream\r\n'));
  else if (options.charset === true) headers.push(Buffer.from('Content-Type: text/plain; charset=utf-8\r\n'));
  const content = typeof value === 'string' ? Buffer.from(value, 'utf8') : Buffer.from(value);
  return Buffer.concat([Buffer.from(`--${BOUNDARY}\r\n`), ...headers, Buffer.from('\r\n'), content, Buffer.from('\r\n')]);
}

function multipartBody(parts: readonly Buffer[]): Buffer {
  return Buffer.concat([...parts, Buffer.from(`--${BOUNDARY}--\r\n`)]);
}

const MULTIPART_TYPE = `multipart/form-data; boundary=${BOUNDARY}`;
const URLENCODED_TYPE = 'application/x-www-form-urlencoded';

/** A request; `stream` sends the body as a stream cut into `chunks` pieces instead of `rawBody`. */
function request(url: string, body?: Buffer, contentType?: string, stream?: { chunks: number }): AciRequestLike {
  const headers: Record<string, string> = {};
  if (contentType !== undefined) headers['content-type'] = contentType;
  if (body === undefined) return { method: 'GET', url, headers };
  if (stream === undefined) return { method: 'POST', url, headers, rawBody: body };
  const size = Math.max(1, Math.ceil(body.length / stream.chunks));
  const pieces: Buffer[] = [];
  for (let i = 0; i < body.length; i += size) pieces.push(body.subarray(i, i + size));
  return { method: 'POST', url, headers, body: Readable.from(pieces) };
}

async function rejectsWith(promise: Promise<unknown>, id: AciErrorId, status: number): Promise<AciError> {
  try {
    await promise;
  } catch (e) {
    assert.ok(e instanceof AciError, `expected an AciError, got ${String(e)}`);
    assert.equal(e.id, id, e.message);
    assert.equal(e.status, status);
    return e;
  }
  assert.fail(`expected ${id}`);
}

function entries(params: AciParams): Array<[string, string | undefined]> {
  return params.names().map((n) => [n, params.get(n)]);
}

// ---------------------------------------------------------------------------
// Arbitraries
// ---------------------------------------------------------------------------

/** Characters that matter to the encodings, mixed with arbitrary Unicode. */
const tricky = fc.constantFrom('&', '=', '+', '%', ' ', '/', '?', '#', ';', '"', '\\', '\r', '\n', '😀', 'é', 'ß', 'a', 'A', '\0', '%2', '--');
const anyText = (minLength: number, maxLength: number): fc.Arbitrary<string> =>
  fc.oneof(
    fc.string({ unit: 'binary', minLength, maxLength }),
    fc.string({ unit: tricky, minLength, maxLength }),
    fc.string({ unit: fc.oneof(tricky, fc.string({ unit: 'binary', minLength: 1, maxLength: 1 })), minLength, maxLength }),
  );
const paramName = fc.oneof(anyText(1, 10), fc.constantFrom('action', 'a', 'FetchAction', 'TaskSections', 'ResponseFormat'));
const paramValue = anyText(0, 24);
const paramSet = fc.uniqueArray(fc.tuple(paramName, paramValue), { selector: ([n]) => parameterKey(n), maxLength: 8 });

type Place = 'path' | 'query' | 'urlencoded' | 'multipart';
type Transport = 'rawBody' | 'stream';

/** Builds one request carrying `placed` pairs at their places. */
function buildRequest(
  placed: ReadonlyArray<readonly [Pair, Place]>,
  bodyType: 'urlencoded' | 'multipart',
  transport: Transport,
  style: { plus: boolean; lower: boolean; chunks: number; part: PartOptions },
): AciRequestLike {
  const at = (p: Place): Pair[] => placed.filter(([, place]) => place === p).map(([pair]) => pair);
  const pathPairs = at('path');
  const queryPairs = at('query');
  let url = pathPairs.length > 0 ? `/${urlEncoded(pathPairs, style.plus, style.lower)}` : '/';
  if (queryPairs.length > 0) url += `?${urlEncoded(queryPairs, style.plus, style.lower)}`;
  const bodyPairs = at(bodyType);
  if (bodyPairs.length === 0) return request(url);
  const body =
    bodyType === 'urlencoded'
      ? Buffer.from(urlEncoded(bodyPairs, style.plus, style.lower), 'latin1')
      : multipartBody(bodyPairs.map(([n, v]) => part(n, v, style.part)));
  const type = bodyType === 'urlencoded' ? URLENCODED_TYPE : MULTIPART_TYPE;
  return request(url, body, type, transport === 'stream' ? { chunks: style.chunks } : undefined);
}

const placeArb = fc.constantFrom<Place>('path', 'query', 'urlencoded', 'multipart');
const styleArb = fc.record({
  plus: fc.boolean(),
  lower: fc.boolean(),
  chunks: fc.integer({ min: 1, max: 7 }),
  part: fc.record({ extName: fc.boolean(), file: fc.boolean(), charset: fc.boolean() }),
});

/** Byte sequences that are never valid UTF-8 on their own or inside valid text. */
const invalidUtf8Core = fc.oneof(
  fc.integer({ min: 0x80, max: 0xbf }).map((b) => [b]), // lone continuation byte
  fc.integer({ min: 0xc0, max: 0xc1 }).chain((b) => fc.integer({ min: 0x80, max: 0xbf }).map((c) => [b, c])), // overlong
  fc.integer({ min: 0xf5, max: 0xff }).map((b) => [b]), // never in UTF-8
  fc.integer({ min: 0x80, max: 0x9f }).map((c) => [0xe0, c, 0x80]), // overlong 3-byte
  fc.integer({ min: 0xa0, max: 0xbf }).map((c) => [0xed, c, 0x80]), // UTF-16 surrogate
  fc.integer({ min: 0x90, max: 0xbf }).map((c) => [0xf4, c, 0x80, 0x80]), // above U+10FFFF
  fc.integer({ min: 0xc2, max: 0xdf }).map((b) => [b, 0x41]), // lead byte without continuation
  fc.constantFrom([0xe2, 0x82], [0xf0, 0x9f, 0x98], [0xc3]), // truncated sequences
);
const invalidUtf8Bytes = fc
  .tuple(fc.string({ unit: 'binary', maxLength: 6 }), invalidUtf8Core, fc.string({ unit: 'binary', maxLength: 6 }))
  .map(([before, core, after]) => Buffer.concat([Buffer.from(before), Buffer.from(core), Buffer.from(after)]));
const randomInvalidUtf8 = fc.uint8Array({ minLength: 1, maxLength: 16 }).filter((bytes) => {
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    return false;
  } catch {
    return true;
  }
});

// ---------------------------------------------------------------------------
// Examples
// ---------------------------------------------------------------------------

describe('parseAciRequest: forms of a request', () => {
  it('reads the path form, as IDOL servers write it', async () => {
    const p = await parseAciRequest(request('/action=Fetch&FetchAction=Synchronize&TaskSections=MYTASK'));
    assert.deepEqual(entries(p), [
      ['action', 'Fetch'],
      ['FetchAction', 'Synchronize'],
      ['TaskSections', 'MYTASK'],
    ]);
  });

  it('reads the query form, and path and query together, as the same request', async () => {
    const query = await parseAciRequest(request('/?action=Fetch&FetchAction=Synchronize&TaskSections=MYTASK'));
    const both = await parseAciRequest(request('/action=Fetch&FetchAction=Synchronize?TaskSections=MYTASK'));
    assert.deepEqual(entries(query), entries(both));
  });

  it('matches names case-insensitively, with a= as action=', async () => {
    const p = await parseAciRequest(request('/a=QueueInfo&QUEUENAME=fetch&queueaction=GetStatus'));
    assert.equal(p.get('action'), 'QueueInfo');
    assert.equal(p.get('ACTION'), 'QueueInfo');
    assert.equal(p.get('a'), 'QueueInfo');
    assert.equal(p.get('QueueName'), 'fetch');
    assert.equal(p.get('QueueAction'), 'GetStatus');
    assert.ok(p.has('Action') && p.has('A') && !p.has('Token'));
    assert.deepEqual(p.names(), ['a', 'QUEUENAME', 'queueaction']);
  });

  it('decodes + as a space and percent escapes as UTF-8', async () => {
    const p = await parseAciRequest(request('/?x=a+b%20c%2Bd%26e%3Df&y=%F0%9F%98%80%c3%a9'));
    assert.equal(p.get('x'), 'a b c+d&e=f');
    assert.equal(p.get('y'), '😀é');
  });

  it('ignores empty names and empty pieces; a name without = has an empty value', async () => {
    const p = await parseAciRequest(request('/?&&=ignored&flag&action=GetVersion&'));
    assert.deepEqual(entries(p), [
      ['flag', ''],
      ['action', 'GetVersion'],
    ]);
  });

  it('takes the path form from the first segment with =, after any prefix', async () => {
    const p = await parseAciRequest(request('/action/action=Fetch&Path=a/b'));
    assert.deepEqual(entries(p), [
      ['action', 'Fetch'],
      ['Path', 'a/b'],
    ]);
    assert.deepEqual(splitRequestTarget('/plain/path'), { path: '', query: '' });
    assert.deepEqual(splitRequestTarget('http://host:7700/action=X?y=1'), { path: 'action=X', query: 'y=1' });
  });

  it('accepts an absolute URL as request target', async () => {
    const p = await parseAciRequest(request('https://example.com/action=GetVersion?ResponseFormat=json'));
    assert.deepEqual(entries(p), [
      ['action', 'GetVersion'],
      ['ResponseFormat', 'json'],
    ]);
  });

  it('reads urlencoded and multipart POST bodies with the URL', async () => {
    const form = await parseAciRequest(
      request('/?action=Fetch', Buffer.from('FetchAction=Synchronize&TaskSections=MYTASK'), `${URLENCODED_TYPE}; charset=UTF-8`),
    );
    const multi = await parseAciRequest(
      request('/?action=Fetch', multipartBody([part('FetchAction', 'Synchronize'), part('TaskSections', 'MYTASK')]), MULTIPART_TYPE),
    );
    assert.deepEqual(entries(form), entries(multi));
    assert.deepEqual(entries(form), [
      ['action', 'Fetch'],
      ['FetchAction', 'Synchronize'],
      ['TaskSections', 'MYTASK'],
    ]);
  });

  it('reads a body stream when there is no rawBody', async () => {
    const body = Buffer.from('action=GetStatus&x=%E2%82%AC');
    const p = await parseAciRequest(request('/', body, URLENCODED_TYPE, { chunks: 5 }));
    assert.deepEqual(entries(p), [
      ['action', 'GetStatus'],
      ['x', '€'],
    ]);
  });

  it('ignores the content type of an empty body, and a stream already read', async () => {
    const empty = await parseAciRequest({ method: 'POST', url: '/?a=x', headers: { 'content-type': 'text/plain' }, rawBody: Buffer.alloc(0) });
    assert.equal(empty.get('action'), 'x');
    const consumed = Readable.from([Buffer.from('b=1')]);
    for await (const chunk of consumed) void chunk;
    const p = await parseAciRequest({ method: 'POST', url: '/?a=x', headers: { 'content-type': URLENCODED_TYPE }, body: consumed });
    assert.deepEqual(p.names(), ['a']);
  });

  it('reads Content-Type whatever the case of the header name', async () => {
    const p = await parseAciRequest({ method: 'POST', url: '/', headers: { 'Content-Type': URLENCODED_TYPE }, rawBody: Buffer.from('a=x') });
    assert.equal(p.get('action'), 'x');
  });
});

describe('parseAciRequest: rejected requests', () => {
  it('rejects a parameter given twice, in any spelling and place, naming it', async () => {
    const e = await rejectsWith(parseAciRequest(request('/action=Fetch?ACTION=Fetch')), 'GMAILCONNECTOR-DUPLICATE-PARAMETER', 400);
    assert.match(e.message, /"ACTION"/);
    await rejectsWith(parseAciRequest(request('/?a=x&action=y')), 'GMAILCONNECTOR-DUPLICATE-PARAMETER', 400);
    await rejectsWith(parseAciRequest(request('/?x=1&X=1')), 'GMAILCONNECTOR-DUPLICATE-PARAMETER', 400);
    await rejectsWith(
      parseAciRequest(request('/?x=1', Buffer.from('x=2'), URLENCODED_TYPE)),
      'GMAILCONNECTOR-DUPLICATE-PARAMETER',
      400,
    );
  });

  it('rejects malformed percent escapes', async () => {
    for (const url of ['/?x=%', '/?x=%4', '/?x=%zz', '/?%g1=1', '/x=100%']) {
      const e = await rejectsWith(parseAciRequest(request(url)), 'GMAILCONNECTOR-MALFORMED-REQUEST', 400);
      assert.match(e.message, /percent escape/);
    }
  });

  it('rejects invalid UTF-8, naming the parameter', async () => {
    const e = await rejectsWith(parseAciRequest(request('/?Token=%C0%AF')), 'GMAILCONNECTOR-INVALID-UTF8', 400);
    assert.match(e.message, /parameter "Token"/);
    const n = await rejectsWith(parseAciRequest(request('/?%FF=1')), 'GMAILCONNECTOR-INVALID-UTF8', 400);
    assert.match(n.message, /parameter name "%FF"/);
  });

  it('rejects bodies of other content types, naming the supported ones', async () => {
    for (const type of ['text/plain', 'application/json', undefined]) {
      const e = await rejectsWith(
        parseAciRequest(request('/', Buffer.from('a=x'), type)),
        'GMAILCONNECTOR-UNSUPPORTED-CONTENT-TYPE',
        400,
      );
      assert.match(e.message, /application\/x-www-form-urlencoded or multipart\/form-data/);
    }
  });

  it('rejects a request over the limit with 413, URL and body together', async () => {
    const max = 100;
    const url = `/?x=${'a'.repeat(60)}`; // 64 bytes
    await parseAciRequest(request(url, Buffer.from(`y=${'b'.repeat(34)}`), URLENCODED_TYPE), { maxBytes: max });
    await rejectsWith(
      parseAciRequest(request(url, Buffer.from(`y=${'b'.repeat(35)}`), URLENCODED_TYPE), { maxBytes: max }),
      'GMAILCONNECTOR-REQUEST-TOO-LARGE',
      413,
    );
    await rejectsWith(parseAciRequest(request(`/?x=${'a'.repeat(97)}`), { maxBytes: max }), 'GMAILCONNECTOR-REQUEST-TOO-LARGE', 413);
  });

  it('applies the 1 MiB default limit', async () => {
    const body = Buffer.alloc(1024 * 1024, 0x61);
    body.write('x=', 0);
    await rejectsWith(parseAciRequest(request('/', body, URLENCODED_TYPE)), 'GMAILCONNECTOR-REQUEST-TOO-LARGE', 413);
    const p = await parseAciRequest(request('/', body.subarray(0, 1024 * 1024 - 1), URLENCODED_TYPE));
    assert.equal(p.get('x')?.length, 1024 * 1024 - 3);
  });

  it('stops reading a stream at the limit, and trusts a too-large Content-Length', async () => {
    let produced = 0;
    const endless = new Readable({
      read() {
        // Asynchronous, as a socket is: a flowing stream that pushes synchronously never yields.
        setImmediate(() => {
          produced += 1024;
          this.push(Buffer.alloc(1024, 0x61));
        });
      },
    });
    await rejectsWith(
      parseAciRequest({ method: 'POST', url: '/', headers: { 'content-type': URLENCODED_TYPE }, body: endless }, { maxBytes: 10_000 }),
      'GMAILCONNECTOR-REQUEST-TOO-LARGE',
      413,
    );
    assert.ok(produced < 100_000, `read ${produced} bytes of an endless body`);
    endless.destroy();
    const declared = Readable.from([Buffer.from('a=x')]);
    await rejectsWith(
      parseAciRequest(
        { method: 'POST', url: '/', headers: { 'content-type': URLENCODED_TYPE, 'content-length': '20000' }, body: declared },
        { maxBytes: 10_000 },
      ),
      'GMAILCONNECTOR-REQUEST-TOO-LARGE',
      413,
    );
  });

  it('rejects a body stream that fails', async () => {
    const failing = new Readable({
      read() {
        this.destroy(new Error('socket hang up'));
      },
    });
    await rejectsWith(
      parseAciRequest({ method: 'POST', url: '/', headers: { 'content-type': URLENCODED_TYPE }, body: failing }),
      'GMAILCONNECTOR-MALFORMED-REQUEST',
      400,
    );
  });
});

describe('multipart/form-data', () => {
  it('reads file parts as text values', async () => {
    const body = multipartBody([part('action', 'Fetch'), part('TaskSections', 'MYTASK\nOTHER', { file: true })]);
    const p = await parseAciRequest(request('/', body, MULTIPART_TYPE));
    assert.equal(p.get('tasksections'), 'MYTASK\nOTHER');
  });

  it('accepts a quoted boundary, a preamble, an epilogue, empty values and header folding', async () => {
    const body = Buffer.from(
      'preamble\r\n' +
        '--b1\r\nContent-Disposition: form-data;\r\n name="x"\r\n\r\n\r\n' +
        '--b1  \r\ncontent-disposition: form-data; name=y\r\n\r\nvalue\r\n' +
        '--b1--\r\nepilogue --b1',
    );
    assert.deepEqual(parseMultipart(body, 'b1'), [
      ['x', ''],
      ['y', 'value'],
    ]);
    const p = await parseAciRequest(request('/', body, 'multipart/form-data; boundary="b1"'));
    assert.deepEqual(entries(p), [
      ['x', ''],
      ['y', 'value'],
    ]);
  });

  it('decodes a part in the charset it declares', () => {
    const latin1 = Buffer.concat([
      Buffer.from('--b\r\nContent-Disposition: form-data; name="x"\r\nContent-Type: text/plain; charset=ISO-8859-1\r\n\r\n'),
      Buffer.from([0x63, 0x61, 0x66, 0xe9]),
      Buffer.from('\r\n--b--'),
    ]);
    assert.deepEqual(parseMultipart(latin1, 'b'), [['x', 'café']]);
    const unknown = Buffer.from('--b\r\nContent-Disposition: form-data; name="x"\r\nContent-Type: text/plain; charset=x-nope\r\n\r\nv\r\n--b--');
    assert.throws(() => parseMultipart(unknown, 'b'), (e: unknown) => e instanceof AciError && /charset "x-nope"/.test(e.message));
  });

  it('rejects malformed bodies with 400', async () => {
    const cases: Array<[string, string]> = [
      ['no closing boundary', '--b\r\nContent-Disposition: form-data; name="x"\r\n\r\nv'],
      ['no boundary at all', 'just text'],
      ['no blank line after headers', '--b\r\nContent-Disposition: form-data; name="x"\r\n--b--'],
      ['no Content-Disposition', '--b\r\nContent-Type: text/plain\r\n\r\nv\r\n--b--'],
      ['not form-data', '--b\r\nContent-Disposition: attachment; name="x"\r\n\r\nv\r\n--b--'],
      ['no name', '--b\r\nContent-Disposition: form-data\r\n\r\nv\r\n--b--'],
      ['bad header line', '--b\r\nnot a header\r\n\r\nv\r\n--b--'],
      ['garbage after boundary', '--b\r\nContent-Disposition: form-data; name="x"\r\n\r\nv\r\n--bX\r\n--b--'],
      ['base64 part', '--b\r\nContent-Disposition: form-data; name="x"\r\nContent-Transfer-Encoding: base64\r\n\r\ndg==\r\n--b--'],
      ['unterminated quoted name', '--b\r\nContent-Disposition: form-data; name="x\r\n\r\nv\r\n--b--'],
    ];
    for (const [what, text] of cases) {
      await assert.rejects(parseAciRequest(request('/', Buffer.from(text), 'multipart/form-data; boundary=b')), (e: unknown) => {
        assert.ok(e instanceof AciError, what);
        assert.equal(e.status, 400, what);
        return true;
      });
    }
    await rejectsWith(parseAciRequest(request('/', Buffer.from('x'), 'multipart/form-data')), 'GMAILCONNECTOR-MALFORMED-REQUEST', 400);
  });

  it('rejects invalid UTF-8 in a part name or value', async () => {
    await rejectsWith(
      parseAciRequest(request('/', multipartBody([part('x', new Uint8Array([0x61, 0xff]))]), MULTIPART_TYPE)),
      'GMAILCONNECTOR-INVALID-UTF8',
      400,
    );
    await rejectsWith(
      parseAciRequest(request('/', multipartBody([part(new Uint8Array([0xc3]), 'v')]), MULTIPART_TYPE)),
      'GMAILCONNECTOR-INVALID-UTF8',
      400,
    );
  });

  it('frames parts like busboy does (busboy as an oracle)', async () => {
    const simpleName = fc.string({ unit: fc.constantFrom('a', 'B', '1', '_', '-', 'é', '😀'), minLength: 1, maxLength: 8 });
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(simpleName, fc.string({ unit: 'binary', maxLength: 40 })), { maxLength: 6 }),
        async (pairs) => {
          fc.pre(pairs.every(([, v]) => !v.includes(BOUNDARY)));
          const body = multipartBody(pairs.map(([n, v]) => part(n, v)));
          const expected = await new Promise<Array<[string, string]>>((resolve, reject) => {
            const seen: Array<[string, string]> = [];
            const bb = busboy({ headers: { 'content-type': MULTIPART_TYPE }, defParamCharset: 'utf8' });
            bb.on('field', (name, value) => seen.push([name, value]));
            bb.on('close', () => resolve(seen));
            bb.on('error', reject);
            bb.end(body);
          });
          assert.deepEqual(parseMultipart(body, BOUNDARY), expected);
        },
      ),
    );
  });
});

// ---------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------

describe('parseAciRequest: properties', () => {
  it('returns exactly the values of any parameter set, however it is encoded and split', async () => {
    await fc.assert(
      fc.asyncProperty(
        paramSet.chain((pairs) => fc.tuple(fc.constant(pairs), fc.array(placeArb, { minLength: pairs.length, maxLength: pairs.length }))),
        fc.constantFrom<Transport>('rawBody', 'stream'),
        styleArb,
        async ([pairs, places], transport, style) => {
          const placed = pairs.map((pair, i) => [pair, places[i] ?? 'query'] as const);
          // One body type per request: multipart pairs go to the query when the body is urlencoded, and back.
          const bodyType = placed.some(([, p]) => p === 'multipart') ? 'multipart' : 'urlencoded';
          const normalized = placed.map(([pair, p]) =>
            [pair, p === 'urlencoded' || p === 'multipart' ? (p === bodyType ? p : 'query') : p] as const,
          );
          const p = await parseAciRequest(buildRequest(normalized, bodyType, transport, style));
          const order: Place[] = ['path', 'query', 'urlencoded', 'multipart'];
          const expectedNames = order.flatMap((place) => normalized.filter(([, at]) => at === place).map(([[n]]) => n));
          assert.deepEqual(p.names(), expectedNames);
          for (const [name, value] of pairs) {
            assert.equal(p.get(name), value);
            assert.equal(p.get(name.toUpperCase()), value);
            assert.equal(p.get(name.toLowerCase()), value);
            assert.ok(p.has(name));
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it('matches any case variation of a name', async () => {
    await fc.assert(
      fc.asyncProperty(paramSet, fc.infiniteStream(fc.boolean()), async (pairs, flips) => {
        const p = await parseAciRequest(request(`/?${urlEncoded(pairs)}`));
        for (const [name, value] of pairs) {
          const variant = Array.from(name, (c) => (flips.next().value ? c.toUpperCase() : c.toLowerCase())).join('');
          assert.equal(p.get(variant), value, `variant ${JSON.stringify(variant)} of ${JSON.stringify(name)}`);
        }
      }),
      { numRuns: 300 },
    );
    await fc.assert(
      fc.property(fc.mixedCase(fc.string({ unit: 'binary', minLength: 1, maxLength: 10 })), fc.string(), (name, value) => {
        const params = createAciParams([[name, value]]);
        assert.equal(params.get(name.toUpperCase()), value);
        assert.equal(params.get(name.toLowerCase()), value);
      }),
    );
  });

  it('rejects a duplicated name in any combination of places and spellings', async () => {
    await fc.assert(
      fc.asyncProperty(
        paramSet.filter((pairs) => pairs.length > 0),
        fc.nat(),
        fc.constantFrom('same', 'upper', 'lower', 'alias'),
        placeArb,
        placeArb,
        fc.constantFrom<Transport>('rawBody', 'stream'),
        styleArb,
        async (pairs, index, spelling, firstPlace, secondPlace, transport, style) => {
          const [name, value] = pairs[index % pairs.length] as Pair;
          const alias = name.length === 1 ? 'ACTION' : 'A'; // the other spelling of action
          const again =
            spelling === 'upper'
              ? name.toUpperCase()
              : spelling === 'lower'
                ? name.toLowerCase()
                : spelling === 'alias' && parameterKey(name) === 'action'
                  ? alias
                  : name;
          const bodyType = firstPlace === 'multipart' || secondPlace === 'multipart' ? 'multipart' : 'urlencoded';
          const fix = (p: Place): Place => (p === 'urlencoded' || p === 'multipart' ? (p === bodyType ? p : 'query') : p);
          const placed: Array<readonly [Pair, Place]> = pairs.map((pair) => [pair, fix(firstPlace)] as const);
          placed.push([[again, value], fix(secondPlace)]);
          const e = await rejectsWith(
            parseAciRequest(buildRequest(placed, bodyType, transport, style)),
            'GMAILCONNECTOR-DUPLICATE-PARAMETER',
            400,
          );
          assert.ok(e.message.includes(quote(name)) || e.message.includes(quote(again)), e.message);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('rejects any invalid UTF-8, in any name or value, in any place', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(invalidUtf8Bytes, randomInvalidUtf8),
        fc.constantFrom('name', 'value'),
        fc.constantFrom('path', 'query', 'urlencoded', 'multipart', 'multipart-file'),
        async (bad, where, place) => {
          const goodName = 'Param';
          let req: AciRequestLike;
          if (place === 'multipart' || place === 'multipart-file') {
            const file = place === 'multipart-file';
            const body = multipartBody([part('action', 'Fetch'), where === 'name' ? part(bad, 'v', { file }) : part(goodName, bad, { file })]);
            req = request('/', body, MULTIPART_TYPE);
          } else {
            const piece = where === 'name' ? `${pctBytes(bad)}=v` : `${goodName}=${pctBytes(bad)}`;
            if (place === 'path') req = request(`/action=Fetch&${piece}`);
            else if (place === 'query') req = request(`/?action=Fetch&${piece}`);
            else req = request('/?action=Fetch', Buffer.from(piece), URLENCODED_TYPE);
          }
          const e = await rejectsWith(parseAciRequest(req), 'GMAILCONNECTOR-INVALID-UTF8', 400);
          if (where === 'value') assert.match(e.message, /"Param"/);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('accepts a request up to the limit and rejects one byte more with 413', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 0, max: 300 }),
        fc.integer({ min: 0, max: 300 }),
        fc.oneof(fc.integer({ min: -2, max: 2 }), fc.integer({ min: -300, max: 300 })),
        fc.constantFrom<Transport>('rawBody', 'stream'),
        async (urlExtra, bodyExtra, margin, transport) => {
          const url = `/?u=${'a'.repeat(urlExtra)}`;
          const body = Buffer.from(`b=${'c'.repeat(bodyExtra)}`);
          const size = Buffer.byteLength(url) + body.length;
          const maxBytes = Math.max(1, size + margin);
          const req = request(url, body, URLENCODED_TYPE, transport === 'stream' ? { chunks: 3 } : undefined);
          if (size <= maxBytes) {
            const p = await parseAciRequest(req, { maxBytes });
            assert.equal(p.get('b')?.length, bodyExtra);
          } else {
            await rejectsWith(parseAciRequest(req, { maxBytes }), 'GMAILCONNECTOR-REQUEST-TOO-LARGE', 413);
          }
        },
      ),
    );
  });
});

// ---------------------------------------------------------------------------
// Typed readers
// ---------------------------------------------------------------------------

describe('typed parameter readers', () => {
  const params = (query: Record<string, string>): AciParams => createAciParams(Object.entries(query));

  it('parseEnum returns the canonical spelling, the default, or a 400', () => {
    const allowed = ['GetStatus', 'Cancel', 'Stop'] as const;
    assert.equal(parseEnum(params({ QueueAction: 'getstatus' }), 'queueaction', allowed), 'GetStatus');
    assert.equal(parseEnum(params({ QueueAction: ' STOP ' }), 'QueueAction', allowed), 'Stop');
    assert.equal(parseEnum(params({}), 'QueueAction', allowed, 'Cancel'), 'Cancel');
    assert.equal(parseEnum(params({ QueueAction: '' }), 'QueueAction', allowed, 'Cancel'), 'Cancel');
    assert.throws(
      () => parseEnum(params({ QueueAction: 'Pause' }), 'QueueAction', allowed),
      (e: unknown) => e instanceof AciError && e.id === 'GMAILCONNECTOR-BAD-PARAMETER' && /GetStatus, Cancel, Stop/.test(e.message),
    );
    assert.throws(
      () => parseEnum(params({}), 'QueueAction', allowed),
      (e: unknown) => e instanceof AciError && e.id === 'GMAILCONNECTOR-MISSING-PARAMETER' && /QueueAction/.test(e.message),
    );
  });

  it('parseIntParam reads decimal integers within bounds', () => {
    const o = { min: 1, max: 1000, default: 100 };
    assert.equal(parseIntParam(params({}), 'MaxResults', o), 100);
    assert.equal(parseIntParam(params({ maxresults: '1000' }), 'MaxResults', o), 1000);
    assert.equal(parseIntParam(params({ maxresults: ' +007 ' }), 'MaxResults', o), 7);
    assert.ok(Object.is(parseIntParam(params({ n: '-0' }), 'n'), 0));
    for (const bad of ['0', '1001', '1.5', '1e3', '0x10', 'ten', '--1', '99999999999999999999']) {
      assert.throws(
        () => parseIntParam(params({ MaxResults: bad }), 'MaxResults', o),
        (e: unknown) => e instanceof AciError && e.status === 400 && /from 1 to 1000/.test(e.message),
        bad,
      );
    }
    assert.throws(() => parseIntParam(params({}), 'n', { min: 0 }), (e: unknown) => e instanceof AciError && e.id === 'GMAILCONNECTOR-MISSING-PARAMETER');
  });

  it('parseBoolParam reads true/false, yes/no, on/off, 1/0', () => {
    for (const t of ['true', 'TRUE', 'yes', 'on', '1', ' True ']) assert.equal(parseBoolParam(params({ b: t }), 'B', false), true, t);
    for (const f of ['false', 'False', 'no', 'off', '0']) assert.equal(parseBoolParam(params({ b: f }), 'B', true), false, f);
    assert.equal(parseBoolParam(params({}), 'b', true), true);
    assert.equal(parseBoolParam(params({ b: '' }), 'b', false), false);
    assert.throws(() => parseBoolParam(params({ b: 'maybe' }), 'b', false), (e: unknown) => e instanceof AciError && /true or false/.test(e.message));
  });

  it('requireParam returns the value as sent, or a 400 when absent or empty', () => {
    assert.equal(requireParam(params({ token: ' abc ' }), 'Token'), ' abc ');
    for (const p of [params({}), params({ Token: '' }), params({ Token: '  ' })]) {
      assert.throws(
        () => requireParam(p, 'Token', 'pass the token Fetch returned'),
        (e: unknown) => e instanceof AciError && e.message === 'Missing parameter Token: pass the token Fetch returned.',
      );
    }
  });

  it('createAciParams applies the request rules', () => {
    assert.throws(() => createAciParams([['a', '1'], ['Action', '2']]), (e: unknown) => e instanceof AciError && e.status === 400);
    assert.deepEqual(createAciParams([['', 'x'], ['y', '1']]).names(), ['y']);
  });
});

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

describe('AciError', () => {
  it('has stable, unique, negative codes', () => {
    const codes = Object.values(ACI_ERRORS);
    assert.equal(new Set(codes).size, codes.length);
    assert.ok(codes.every((c) => Number.isInteger(c) && c < 0));
    assert.equal(ACI_ERRORS['GMAILCONNECTOR-MISSING-PARAMETER'], -1);
  });

  it('carries status, id, code, name and a one-line message', () => {
    const e = missingParameter('Token');
    assert.ok(e instanceof Error);
    assert.equal(e.name, 'AciError');
    assert.equal(e.status, 400);
    assert.equal(e.code, -1);
    assert.equal(e.message, 'Missing parameter Token: add Token=... to the request.');
    assert.equal(tooLarge(1024).status, 413);
    assert.equal(notFound('action "x"').status, 404);
    assert.doesNotMatch(notFound('a\nb').message + missingParameter('x').message, /\n/);
  });

  it('never puts a cause into the message of a 5xx', () => {
    const cause = new Error('secret: db password wrong');
    for (const e of [internal('the store failed', cause), unavailable('Firestore is unavailable', cause), toAciError(cause)]) {
      assert.ok(e.status >= 500);
      assert.doesNotMatch(e.message, /secret/);
      assert.equal(e.description, undefined);
    }
    assert.equal(internal('x', cause).cause, cause);
    const known = missingParameter('x');
    assert.equal(toAciError(known), known);
  });

  it('answers 503 when Firestore or Cloud Tasks says it is busy, 500 for anything else', () => {
    const grpc = (code: number) => Object.assign(new Error(`${code} gRPC failure`), { code });
    // DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, ABORTED (a transaction that lost to others), UNAVAILABLE.
    for (const code of [4, 8, 10, 14]) {
      const e = toAciError(grpc(code));
      assert.equal(e.status, 503);
      assert.equal(e.id, 'GMAILCONNECTOR-UNAVAILABLE');
    }
    assert.equal(toAciError(new Error('Cloud Tasks deleteTask x: unavailable', { cause: grpc(14) })).status, 503);
    // A transaction refused as gone after its fresh runs (store/conflicts.ts): contention too.
    assert.equal(toAciError(Object.assign(new Error('3 INVALID_ARGUMENT: Transaction is invalid or closed.'), { code: 3 })).status, 503);
    // INVALID_ARGUMENT, PERMISSION_DENIED, INTERNAL; and a plain error.
    for (const e of [grpc(3), grpc(7), grpc(13), new Error('bug')]) assert.equal(toAciError(e).status, 500);
  });
});
