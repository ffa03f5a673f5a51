/**
 * Known and unknown parameters (functions/src/aci/parameters.ts): which names a request knows,
 * the warning for each other one with the closest known name, and the near misses a
 * missing-parameter error names.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { knownParameters, nearMisses, unknownParameterWarnings } from '../../functions/src/app/request-parameters.js';
import { createAciParams } from '../../functions/src/aci/request.js';

const params = (q: Record<string, string>) => createAciParams(Object.entries(q));

describe('known parameters', () => {
  it('a request knows the standard ones, its action\'s, and its fetch action\'s or verb\'s', () => {
    const fetch = knownParameters('Fetch', params({ action: 'Fetch', FetchAction: 'delete' }));
    assert.equal(fetch.what, 'Fetch Delete');
    for (const n of ['action', 'ResponseFormat', 'ActionID', 'TaskSections', 'Identifiers', 'Permanent', 'DryRun']) assert.ok(fetch.names.includes(n), n);
    assert.ok(!fetch.names.includes('Destination'));
    const verb = knownParameters('QueueInfo', params({ action: 'QueueInfo', QueueAction: 'getstatus' }));
    assert.equal(verb.what, 'QueueInfo GetStatus');
    assert.ok(verb.names.includes('Sort-By'));
    assert.equal(knownParameters('QueueInfo', params({ QueueAction: 'nope' })).what, 'QueueInfo');
  });

  it('names are matched as requests match them: any case, a= is action=', () => {
    assert.deepEqual(unknownParameterWarnings('GetVersion', params({ a: 'GetVersion', RESPONSEFORMAT: 'xml', actionid: '1' })), []);
  });
});

describe('unknown parameters', () => {
  const closest = (action: string, q: Record<string, string>) =>
    unknownParameterWarnings(action, params(q)).map((w) => /closest known parameter is (.+)\.$/.exec(w)?.[1]);

  it('each is named, in request order, with the closest known one', () => {
    assert.deepEqual(unknownParameterWarnings('QueueInfo', params({ QueueAction: 'GetStatus', Tokn: 'x', Sort: 'y' })), [
      'Unknown parameter "Tokn" for QueueInfo GetStatus, ignored: the closest known parameter is Token.',
      'Unknown parameter "Sort" for QueueInfo GetStatus, ignored: the closest known parameter is Sort-By.',
    ]);
  });

  it('a misspelling, a part of a longer name, a transposition', () => {
    assert.deepEqual(closest('Fetch', { FetchAction: 'Collect', Attachments: 'x', Dest: 'y', Identifer: 'z' }), ['CollectAttachments', 'Destination', 'Identifiers']);
    assert.deepEqual(closest('View', { Fromat: 'xml' }), ['ResponseFormat']);
    assert.deepEqual(closest('Fetch', { FetchAction: 'Identifiers', ShowAtributes: 'true' }), ['ShowAttributes']);
  });

  it("a parameter of another verb is unknown to this one", () => {
    assert.equal(unknownParameterWarnings('QueueInfo', params({ QueueAction: 'Pause', Token: 'x' })).length, 1);
  });
});

describe('near misses of a missing parameter', () => {
  it('sent names one or two letters away, not known ones, not distant ones', () => {
    assert.deepEqual(nearMisses('Fetch', params({ FetchAction: 'Synchronize', TaskSection: 'DEMO', Whatever: 'x' }), 'TaskSections'), ['TaskSection']);
    assert.deepEqual(nearMisses('QueueInfo', params({ QueueAction: 'Stop', tokne: 'x' }), 'Token'), ['tokne']);
    assert.deepEqual(nearMisses('Fetch', params({ FetchAction: 'Delete', IdentifiersXML: 'x' }), 'Identifiers'), []);
    assert.deepEqual(nearMisses(undefined, params({ acton: 'Fetch' }), 'action'), ['acton']);
  });
});
