/**
 * Unknown and misspelt parameters against the real servers (docs/CONTRACT.md §3): a parameter
 * that neither the action, its fetch action or verb, nor a standard ACI parameter reads is named in
 * a warning, with the closest known one, in every response format, and the request still runs; a
 * missing required parameter's error names a sent parameter one or two letters away from it.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { XMLParser } from 'fast-xml-parser';
import { writeMailbox } from '../support/mail.js';
import { startTestStack, type TestStack } from '../support/stack.js';

const USER = 'params@example.com';
type Json = Record<string, unknown>;

let stack: TestStack;
let token: string;

before(async () => {
  const { dir } = writeMailbox(USER, 5);
  stack = await startTestStack({ mailDir: dir, connector: { gmail: { quotaUnitsPerUserPerMinute: 1_000_000 }, tasks: { DEMO: { users: [USER] } } } });
  token = await stack.synchronize('DEMO');
  await stack.waitFor(token, ['Finished']);
});

after(async () => {
  await stack?.close();
});

/** A GET of the action endpoint with exactly these parameters (no ResponseFormat added). */
async function get(query: string): Promise<{ status: number; text: string; warning: string | null }> {
  const r = await fetch(`${stack.actionUrl}?${query}`, { signal: AbortSignal.timeout(30_000) });
  return { status: r.status, text: await r.text(), warning: r.headers.get('warning') };
}

const TOKN = 'Unknown parameter "Tokn" for QueueInfo GetStatus, ignored: the closest known parameter is Token.';

describe('a parameter the request does not read', () => {
  it('GetStatus&Tokn=... still answers the queue, with a warning naming Tokn and Token, in simplejson', async () => {
    const r = await get('action=QueueInfo&QueueName=fetch&QueueAction=GetStatus&Tokn=abc&ResponseFormat=simplejson');
    assert.equal(r.status, 200, r.text);
    const a = (JSON.parse(r.text) as Json).autnresponse as Json;
    assert.equal(a.response, 'SUCCESS');
    assert.deepEqual(a.warning, [TOKN]);
    const actions = ((a.responsedata as Json).actions as Json).action as Json[];
    assert.ok(actions.some((x) => x.token === token));
    assert.match(r.warning ?? '', /^299 gmail-connector "Unknown parameter \\"Tokn\\" for QueueInfo GetStatus/);
  });

  it('in xml, a <warning> element; in json, {"$": ...}', async () => {
    const xml = await get('action=QueueInfo&QueueName=fetch&QueueAction=GetStatus&Tokn=abc');
    assert.equal(xml.status, 200);
    const parsed = new XMLParser().parse(xml.text) as Json;
    assert.equal((parsed.autnresponse as Json).warning, TOKN);
    const json = await get('action=QueueInfo&QueueName=fetch&QueueAction=GetStatus&Tokn=abc&ResponseFormat=json');
    assert.deepEqual(((JSON.parse(json.text) as Json).autnresponse as Json).warning, [{ $: TOKN }]);
  });

  it('a known parameter of another verb or fetch action is unknown here; standard ones never are', async () => {
    const r = await get(`action=QueueInfo&QueueName=fetch&QueueAction=Pause&Token=${token}&ActionID=42&ResponseFormat=simplejson`);
    const a = (JSON.parse(r.text) as Json).autnresponse as Json;
    assert.deepEqual(a.warning, ['Unknown parameter "Token" for QueueInfo Pause, ignored: the closest known parameter is action.']);
    await get('action=QueueInfo&QueueName=fetch&QueueAction=Resume');
    const v = await get('action=GetVersion&ActionID=7&ResponseFormat=simplejson');
    assert.equal(((JSON.parse(v.text) as Json).autnresponse as Json).warning, undefined);
    assert.equal(v.warning, null);
  });

  it('a Fetch with a misspelt parameter of its fetch action runs, and says so', async () => {
    const r = await get('action=Fetch&FetchAction=Identifiers&TaskSections=DEMO&ShowAtributes=true&ResponseFormat=simplejson');
    assert.equal(r.status, 200, r.text);
    const a = (JSON.parse(r.text) as Json).autnresponse as Json;
    assert.deepEqual(a.warning, ['Unknown parameter "ShowAtributes" for Fetch Identifiers, ignored: the closest known parameter is ShowAttributes.']);
    await stack.waitFor(String((a.responsedata as Json).token), ['Finished']);
  });

  it("View's raw bytes carry the warning in the Warning header", async () => {
    const ids = await get(`action=Fetch&FetchAction=Identifiers&TaskSections=DEMO&Sync=true&ResponseFormat=simplejson`);
    const list = (((JSON.parse(ids.text) as Json).autnresponse as Json).responsedata as Json).identifiers as Json;
    const id = String(((list.identifier as Json[])[0] as Json).$);
    const r = await get(`action=View&Identifier=${encodeURIComponent(id)}&NoAci=true&Fromat=xml`);
    assert.equal(r.status, 200, r.text);
    assert.match(r.text, /^Message-ID: /m);
    assert.match(r.warning ?? '', /Unknown parameter \\"Fromat\\" for View, ignored: the closest known parameter is ResponseFormat\./);
  });
});

describe('a missing parameter, with a near miss sent', () => {
  it('TaskSection=DEMO: the error names TaskSection and asks for TaskSections', async () => {
    const r = await get('action=Fetch&FetchAction=Synchronize&TaskSection=DEMO&ResponseFormat=simplejson');
    assert.equal(r.status, 400);
    const e = ((((JSON.parse(r.text) as Json).autnresponse as Json).responsedata as Json).error as Json);
    assert.equal(e.errorid, 'GMAILCONNECTOR-MISSING-PARAMETER');
    assert.match(String(e.errorstring), /^Missing parameter TaskSections: .* The request sent "TaskSection": did you mean TaskSections\?$/);
  });

  it('QueueActon and Tokne: each near miss is named; a distant name is not', async () => {
    const verb = await get('action=QueueInfo&QueueName=fetch&QueueActon=Stop&ResponseFormat=simplejson');
    assert.match(verb.text, /The request sent \\"QueueActon\\": did you mean QueueAction\?/);
    const tok = await get('action=QueueInfo&QueueName=fetch&QueueAction=Stop&Tokne=x&Whatever=y&ResponseFormat=simplejson');
    assert.equal(tok.status, 400);
    assert.match(tok.text, /Missing parameter Token: .*The request sent \\"Tokne\\": did you mean Token\?"/);
    assert.doesNotMatch(tok.text, /Whatever/);
  });

  it('without a near miss the error is as before', async () => {
    const r = await get('action=Fetch&FetchAction=Synchronize&ResponseFormat=simplejson');
    assert.equal(r.status, 400);
    assert.doesNotMatch(r.text, /did you mean/);
  });
});
