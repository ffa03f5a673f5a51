/**
 * ActionID (functions/src/aci/action-id.ts): what it may be, when it is echoed, and when two
 * requests count as the same for it.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AciError } from '../../functions/src/aci/errors.js';
import { echoedActionId, parametersDigest, parseActionId } from '../../functions/src/aci/action-id.js';
import { createAciParams } from '../../functions/src/aci/request.js';

const params = (entries: Record<string, string>) => createAciParams(Object.entries(entries));
const sent = (entries: [string, string][]) => entries.map(([name, value]) => ({ name, value }));

describe('parseActionId', () => {
  it('takes up to 128 letters, digits and . _ : -, trimmed, by any spelling of the name', () => {
    assert.equal(parseActionId(params({ ActionID: 'job-1' })), 'job-1');
    assert.equal(parseActionId(params({ actionid: '  a.b_c:d-E9 ' })), 'a.b_c:d-E9');
    assert.equal(parseActionId(params({ ACTIONID: 'x'.repeat(128) })), 'x'.repeat(128));
  });

  it('absent or empty: none', () => {
    assert.equal(parseActionId(params({ action: 'Fetch' })), undefined);
    assert.equal(parseActionId(params({ ActionID: '  ' })), undefined);
  });

  for (const bad of ['a b', 'x/y', 'é', 'semi;colon', '<x>', 'x'.repeat(129), 'a\nb']) {
    it(`refuses ${JSON.stringify(bad.length > 20 ? `${bad.slice(0, 10)}…(${bad.length})` : bad)} with a 400 naming ActionID`, () => {
      assert.throws(
        () => parseActionId(params({ ActionID: bad })),
        (e: unknown) => e instanceof AciError && e.status === 400 && e.id === 'GMAILCONNECTOR-BAD-PARAMETER' && /parameter ActionID/.test(e.message),
      );
      assert.equal(echoedActionId(params({ ActionID: bad })), undefined);
    });
  }

  it('echoedActionId: the well-formed one, and none without parameters', () => {
    assert.equal(echoedActionId(params({ ActionID: ' r-1 ' })), 'r-1');
    assert.equal(echoedActionId(undefined), undefined);
  });
});

describe('parametersDigest', () => {
  const base = parametersDigest(sent([['action', 'Fetch'], ['FetchAction', 'Synchronize'], ['TaskSections', 'DEMO']]));

  it('the same parameters in any order and case of names, values trimmed, a for action', () => {
    assert.equal(parametersDigest(sent([['tasksections', ' DEMO'], ['a', 'Fetch'], ['FETCHACTION', 'Synchronize']])), base);
  });

  it('ResponseFormat and ActionID are not compared', () => {
    assert.equal(parametersDigest(sent([['action', 'Fetch'], ['ResponseFormat', 'json'], ['FetchAction', 'Synchronize'], ['actionid', 'x'], ['TaskSections', 'DEMO']])), base);
  });

  it('another value, another parameter, or one fewer is another request', () => {
    assert.notEqual(parametersDigest(sent([['action', 'Fetch'], ['FetchAction', 'Synchronize'], ['TaskSections', 'demo']])), base);
    assert.notEqual(parametersDigest(sent([['action', 'Fetch'], ['FetchAction', 'Synchronize'], ['TaskSections', 'DEMO'], ['Schedule', 'false']])), base);
    assert.notEqual(parametersDigest(sent([['action', 'Fetch'], ['FetchAction', 'Synchronize']])), base);
    // Names and values cannot run into each other.
    assert.notEqual(parametersDigest(sent([['ab', 'c']])), parametersDigest(sent([['a', 'bc']])));
  });
});
