/**
 * action=View end to end: one message by its identifier, read synchronously with the action
 * function's own read-only identity, as its original bytes or in an ACI response; bad requests
 * are 4xx ACI errors; `"view": false` turns it off.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { encodeIdentifier } from '../../functions/src/aci/identifiers.js';
import { testGmail } from '../support/gmail.js';
import { writeMailbox } from '../support/mail.js';
import { startTestStack, type TestStack } from '../support/stack.js';

const ANN = 'ann@view.example';
const OUT = 'out@view.example';
type Json = Record<string, unknown>;

let stack: TestStack;
let messageId: string;
let raw: Buffer;

before(async () => {
  const { dir } = writeMailbox(ANN, 4, { prefix: 'v' });
  writeMailbox(OUT, 1, { dir, prefix: 'o' });
  stack = await startTestStack({ mailDir: dir, connector: { tasks: { ANN: { users: [ANN] } } } });
  const g = testGmail(stack.gmail.url);
  const listed = await g.users.messages.list({ userId: ANN });
  messageId = listed.data.messages?.[0]?.id ?? '';
  raw = Buffer.from((await g.users.messages.get({ userId: ANN, id: messageId, format: 'raw' })).data.raw ?? '', 'base64url');
});

after(async () => {
  await stack?.close();
});

const idOf = (task: string, address: string, id: string): string => encodeIdentifier({ task, address, messageId: id });

describe('action=View', () => {
  it('answers the original bytes by default, as a download', async () => {
    const url = `${stack.actionUrl}action=View&Identifier=${encodeURIComponent(idOf('ANN', ANN, messageId))}`;
    const r = await fetch(url);
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('content-type'), 'message/rfc822');
    assert.equal(r.headers.get('content-disposition'), `attachment; filename="${messageId}.eml"`);
    assert.ok(Buffer.from(await r.arrayBuffer()).equals(raw));
    const head = await fetch(url, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(await head.text(), '');
  });

  it('with NoACI=false answers reference, metadata, mime-type, filename and content, in each format', async () => {
    const identifier = idOf('ANN', ANN, messageId);
    const r = await stack.aci({ action: 'View', Identifier: identifier, NoACI: 'false' });
    assert.equal(r.status, 200, r.text);
    const d = ((r.json as Json).autnresponse as Json).responsedata as Json;
    assert.equal(d.reference, identifier);
    assert.equal(d['mime-type'], 'message/rfc822');
    assert.equal(d.filename, `${messageId}.eml`);
    assert.ok(Buffer.from(d.content as string, 'base64').equals(raw));
    const meta = d.metadata as Json;
    assert.equal(meta.user, ANN);
    assert.equal(meta.messageId, messageId);
    assert.match(meta.subject as string, /^Message \d ünïcödé$/);
    const xml = await stack.aci({ action: 'View', Identifier: identifier, NoACI: 'false', ResponseFormat: 'xml' });
    assert.match(xml.text, new RegExp(`<filename>${messageId}\\.eml</filename>`));
    const json = await stack.aci({ action: 'View', Identifier: identifier, NoACI: 'false', ResponseFormat: 'json' });
    assert.equal(json.status, 200);
    assert.match(json.text, /"mime-type":\{"\$":"message\/rfc822"\}/);
  });

  it('reads with its own identity: the worker losing its delegation does not stop View', async () => {
    const d = stack.delegate;
    assert.ok(d);
    stack.auth.revoke(d.serviceAccount);
    try {
      const r = await stack.aci({ action: 'View', Identifier: idOf('ANN', ANN, messageId), NoACI: 'false' });
      assert.equal(r.status, 200, r.text);
    } finally {
      stack.auth.delegate(d.serviceAccount, { clientId: d.clientId, scopes: ['https://www.googleapis.com/auth/gmail.readonly', 'https://www.googleapis.com/auth/admin.directory.user.readonly'] });
    }
  });

  it('refuses bad identifiers with a 4xx ACI error', async () => {
    for (const [identifier, status, pattern] of [
      [undefined, 400, /Identifier/],
      ['not base64!', 400, /Bad value .* for parameter Identifier/],
      [Buffer.from('<doc/>').toString('base64'), 400, /root element must be <id>/],
      [idOf('NOPE', ANN, messageId), 404, /task NOPE is not configured/],
      [idOf('ANN', OUT, messageId), 404, /out@view\.example is not a mailbox of task ANN/],
      [idOf('ANN', ANN, 'ffffffffffffffff'), 404, /no message ffffffffffffffff in ann@view\.example/],
    ] as const) {
      const r = await stack.aci({ action: 'View', ...(identifier === undefined ? {} : { Identifier: identifier }) });
      assert.equal(r.status, status, `${identifier}: ${r.text}`);
      assert.match(r.text, pattern);
    }
  });
});

describe('action=View turned off', () => {
  let off: TestStack;
  before(async () => {
    const { dir } = writeMailbox(ANN, 1, { prefix: 'x' });
    off = await startTestStack({ mailDir: dir, connector: { view: false, tasks: { ANN: { users: [ANN] } } } });
  });
  after(async () => {
    await off?.close();
  });

  it('answers 403 and signs for nothing', async () => {
    const before = off.auth.stats().signJwt;
    const r = await off.aci({ action: 'View', Identifier: idOf('ANN', ANN, 'abc123') });
    assert.equal(r.status, 403, r.text);
    assert.match(r.text, /GMAILCONNECTOR-TURNED-OFF/);
    assert.match(r.text, /View is turned off/);
    assert.equal(off.auth.stats().signJwt, before);
  });
});
