/**
 * QueueInfo's Progress, QueueStatus, Duplicate and GetActionParameters, and GetStatus's filters
 * (Queued-After/-Before, Finished-After/-Before, State, Sort-By, Sort-Order, MaxResults), against
 * the emulators in each response format; bad input is a 4xx ACI error that changes nothing.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Timestamp } from '@google-cloud/firestore';
import { XMLParser } from 'fast-xml-parser';
import type { ActionRecord } from '../../functions/src/store/model.js';
import { FIRST_COMMIT_WITHIN } from '../../functions/src/fetch/synchronize.js';
import { writeMailbox } from '../support/mail.js';
import { startTestStack, type TestStack } from '../support/stack.js';

const ANN = 'ann@verbs.example';
const BOB = 'bob@verbs.example';
const SLOW = 'slow@verbs.example';
type Json = Record<string, unknown>;

let stack: TestStack;

before(async () => {
  const { dir } = writeMailbox(ANN, 30, { prefix: 'a' });
  writeMailbox(BOB, 20, { dir, prefix: 'b' });
  writeMailbox(SLOW, 300, { dir, prefix: 's' });
  stack = await startTestStack({
    mailDir: dir,
    connector: {
      gmail: { quotaUnitsPerUserPerMinute: 1_000_000 },
      tasks: { TEAM: { users: [ANN, BOB] }, SLOW: { users: [SLOW] } },
    },
  });
});

after(async () => {
  await stack?.close();
});

const rd = (j: unknown): Json => ((j as Json).autnresponse as Json).responsedata as Json;
const xmlParser = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: '@', parseTagValue: false, parseAttributeValue: false });
const xmlData = (text: string): Json => ((xmlParser.parse(text) as Json).autnresponse as Json).responsedata as Json;
const queue = (verb: string, extra: Record<string, string> = {}) => stack.aci({ action: 'QueueInfo', QueueName: 'fetch', QueueAction: verb, ...extra });

async function actionCount(): Promise<number> {
  return (await stack.db.collection('actions').count().get()).data().count;
}

async function countOf(statuses: string[]): Promise<number> {
  return (await stack.db.collection('actions').where('status', 'in', statuses).count().get()).data().count;
}

/** Asserts a 4xx ACI error with this id whose errorstring matches, and that no action was added. */
async function refused(params: Record<string, string>, status: number, id: string, message: RegExp): Promise<void> {
  const before = await actionCount();
  const r = await queue(params['QueueAction'] ?? '', params);
  assert.equal(r.status, status, r.text);
  const error = rd(r.json).error as Json;
  assert.equal(error.errorid, id, r.text);
  assert.match(error.errorstring as string, message);
  assert.equal(await actionCount(), before);
}

async function until<T>(read: () => Promise<T>, ok: (v: T) => boolean, ms = 60_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await read();
    if (ok(v)) return v;
    if (Date.now() > end) throw new Error(`timed out; last ${JSON.stringify(v)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('Progress, Duplicate and GetActionParameters of a finished Synchronize', () => {
  let token: string;
  let record: ActionRecord;

  before(async () => {
    const r = await stack.aci({ action: 'Fetch', FetchAction: 'Synchronize', TaskSections: 'team' });
    assert.equal(r.status, 200, r.text);
    token = rd(r.json).token as string;
    record = await stack.waitFor(token, ['Finished', 'Error', 'Stopped'], 120_000);
    assert.equal(record.status, 'Finished', record.error ?? '');
  });

  it('Progress: one Finished stage per mailbox, 100 percent, nothing remaining (simplejson)', async () => {
    const r = await queue('progress', { Token: token });
    assert.equal(r.status, 200, r.text);
    const seconds = Math.floor(((record.endedAt?.toMillis() ?? 0) - (record.startedAt?.toMillis() ?? 0)) / 1000);
    assert.deepEqual(rd(r.json), {
      progress: {
        percent: '100',
        time_processing: String(seconds),
        estimated_time_remaining: '0',
        stage: [
          { '@title': ANN, '@status': 'Finished', '@percent': '100', '@progress': '30', '@maximum': '30', '@task': 'TEAM' },
          { '@title': BOB, '@status': 'Finished', '@percent': '100', '@progress': '20', '@maximum': '20', '@task': 'TEAM' },
        ],
      },
    });
  });

  it('Progress in xml and json', async () => {
    const x = await queue('Progress', { Token: token, ResponseFormat: 'xml' });
    assert.equal(x.status, 200);
    assert.match(x.text, /<stage title="ann@verbs\.example" status="Finished" percent="100" progress="30" maximum="30" task="TEAM"\/>/);
    const p = xmlData(x.text).progress as Json;
    assert.equal(p.percent, '100');
    assert.equal(p.estimated_time_remaining, '0');
    assert.deepEqual((p.stage as Json[]).map((s) => s['@title']), [ANN, BOB]);
    const j = await queue('Progress', { Token: token, ResponseFormat: 'json' });
    const jp = rd(j.json).progress as Json;
    assert.deepEqual(jp.percent, { $: '100' });
    assert.deepEqual(jp.estimated_time_remaining, { $: '0' });
    assert.deepEqual((jp.stage as Json[])[1], { '@title': BOB, '@status': 'Finished', '@percent': '100', '@progress': '20', '@maximum': '20', '@task': 'TEAM' });
  });

  it('GetActionParameters answers the parameters as sent, ResponseFormat left out, in all three formats', async () => {
    const r = await queue('GetActionParameters', { Token: token });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(rd(r.json), {
      parameters: {
        parameter: [
          { '@name': 'action', $: 'Fetch' },
          { '@name': 'FetchAction', $: 'Synchronize' },
          { '@name': 'TaskSections', $: 'team' },
        ],
      },
    });
    const x = await queue('getactionparameters', { Token: token, ResponseFormat: 'xml' });
    assert.match(
      x.text,
      /<parameters>\s*<parameter name="action">Fetch<\/parameter>\s*<parameter name="FetchAction">Synchronize<\/parameter>\s*<parameter name="TaskSections">team<\/parameter>\s*<\/parameters>/,
    );
    const j = await queue('GetActionParameters', { Token: token, ResponseFormat: 'json' });
    assert.deepEqual(((rd(j.json).parameters as Json).parameter as Json[])[2], { '@name': 'TaskSections', $: 'team' });
  });

  it('Duplicate queues a new action with the same parameters, which runs', async () => {
    const before = await actionCount();
    const r = await queue('Duplicate', { Token: token });
    assert.equal(r.status, 200, r.text);
    const data = rd(r.json);
    assert.deepEqual(Object.keys(data), ['token']);
    const copy = data.token as string;
    assert.match(copy, /^[A-Za-z0-9_-]{22}$/);
    assert.notEqual(copy, token);
    assert.equal(await actionCount(), before + 1);
    const a = await stack.waitFor(copy, ['Finished', 'Error', 'Stopped'], 120_000);
    assert.equal(a.status, 'Finished', a.error ?? '');
    assert.equal(a.fetchAction, 'Synchronize');
    assert.deepEqual(a.tasks, ['TEAM']);
    assert.deepEqual(a.request, record.request);
    const params = await queue('GetActionParameters', { Token: copy });
    assert.deepEqual(rd(params.json), {
      parameters: { parameter: record.request?.map((p) => ({ '@name': p.name, $: p.value })) },
    });
    // In xml and json too.
    const x = await queue('duplicate', { Token: copy, ResponseFormat: 'xml' });
    const xt = xmlData(x.text).token as string;
    assert.match(xt, /^[A-Za-z0-9_-]{22}$/);
    const j = await queue('Duplicate', { Token: copy, ResponseFormat: 'json' });
    const jt = (rd(j.json).token as Json).$ as string;
    assert.match(jt, /^[A-Za-z0-9_-]{22}$/);
    assert.equal(await actionCount(), before + 3);
    for (const t of [xt, jt]) assert.equal((await stack.waitFor(t, ['Finished', 'Error', 'Stopped'], 120_000)).status, 'Finished');
  });

  it('bad Tokens for Progress, Duplicate and GetActionParameters: 400 missing, 400 malformed, 404 unknown', async () => {
    for (const verb of ['Progress', 'Duplicate', 'GetActionParameters']) {
      await refused({ QueueAction: verb }, 400, 'GMAILCONNECTOR-MISSING-PARAMETER', /Token/);
      await refused({ QueueAction: verb, Token: '' }, 400, 'GMAILCONNECTOR-MISSING-PARAMETER', /Token/);
      await refused({ QueueAction: verb, Token: 'short' }, 400, 'GMAILCONNECTOR-BAD-PARAMETER', /Token/);
      await refused({ QueueAction: verb, Token: 'AAAAAAAAAAAAAAAAAAAAAA' }, 404, 'GMAILCONNECTOR-NOT-FOUND', /action AAAAAAAAAAAAAAAAAAAAAA/);
    }
  });

  it('an action stored without its request cannot be duplicated (409); one whose task is gone is refused as Fetch would (400)', async () => {
    const old = 'OLDOLDOLDOLDOLDOLDOLD0';
    await stack.db.collection('actions').doc(old).set(crafted(old, 'Finished', { queued: Date.UTC(2000, 5, 1), started: Date.UTC(2000, 5, 1), ended: Date.UTC(2000, 5, 1, 0, 1) }));
    await refused({ QueueAction: 'Duplicate', Token: old }, 409, 'GMAILCONNECTOR-CONFLICT', /stored without the parameters/);
    await refused({ QueueAction: 'GetActionParameters', Token: old }, 409, 'GMAILCONNECTOR-CONFLICT', /stored without the parameters/);
    const gone = 'GONEGONEGONEGONEGONE00';
    await stack.db
      .collection('actions')
      .doc(gone)
      .set({
        ...crafted(gone, 'Finished', { queued: Date.UTC(2000, 5, 2), started: Date.UTC(2000, 5, 2), ended: Date.UTC(2000, 5, 2, 0, 1) }),
        request: [
          { name: 'action', value: 'Fetch' },
          { name: 'FetchAction', value: 'Synchronize' },
          { name: 'TaskSections', value: 'RETIRED' },
        ],
      });
    await refused({ QueueAction: 'Duplicate', Token: gone }, 400, 'GMAILCONNECTOR-BAD-PARAMETER', /"RETIRED" for parameter TaskSections: expected one of the configured tasks: TEAM, SLOW/);
    await stack.db.collection('actions').doc(old).delete();
    await stack.db.collection('actions').doc(gone).delete();
  });
});

describe('Progress while running and while waiting; QueueStatus', () => {
  it('a running action has a Processing stage, a percentage from its maximum and an estimate; one waiting for the mailbox is Pending', async () => {
    // The running action (300 messages) reads enough for its first commit and is then held by the
    // emulator: it is still running when its twin, which waits for the mailbox, is cancelled,
    // and when it is stopped.
    const release = stack.gmail.holdCalls(SLOW, 'messages.get', FIRST_COMMIT_WITHIN);
    let running = '';
    let waiting = '';
    try {
      running = await stack.synchronize('SLOW');
      await until(() => stack.units(running), (u) => u[0]?.status === 'Processing' && u[0].total !== null && u[0].messages > 0);
      const r = await queue('Progress', { Token: running });
      const p = rd(r.json).progress as Json;
      const stage = (p.stage as Json[])[0] as Json;
      assert.equal(stage['@title'], SLOW);
      assert.equal(stage['@status'], 'Processing');
      assert.equal(stage['@maximum'], '300');
      const done = Number(stage['@progress']);
      assert.ok(done > 0 && done < 300, String(done));
      assert.equal(stage['@percent'], String(Math.floor((done * 100) / 300)));
      assert.equal(p.percent, stage['@percent']);
      assert.match(p.estimated_time_remaining as string, /^\d+$/);
      assert.match(p.time_processing as string, /^\d+$/);

      // A second action of the same task waits for the mailbox: its unit is Pending.
      waiting = await stack.synchronize('SLOW');
      await until(() => stack.units(waiting), (u) => u.length === 1);
      const w = await queue('Progress', { Token: waiting });
      assert.deepEqual(rd(w.json), {
        progress: { percent: '0', time_processing: '0', stage: [{ '@title': SLOW, '@status': 'Pending', '@percent': '0', '@progress': '0', '@task': 'SLOW' }] },
      });

      // QueueStatus counts what Firestore holds, in all three formats.
      const pending = await countOf(['Queued']);
      const runningCount = await countOf(['Processing']);
      const completed = await countOf(['Finished', 'Cancelled', 'Stopped', 'Error']);
      assert.ok(pending >= 1 && runningCount >= 1);
      const s = await queue('QueueStatus');
      assert.deepEqual(rd(s.json), {
        queue: { '@name': 'fetch', '@paused': 'false', pending: String(pending), running: String(runningCount), completed: String(completed) },
      });
      const x = await queue('queuestatus', { ResponseFormat: 'xml' });
      assert.match(
        x.text,
        new RegExp(`<queue name="fetch" paused="false">\\s*<pending>${pending}</pending>\\s*<running>${runningCount}</running>\\s*<completed>${completed}</completed>\\s*</queue>`),
      );
      const j = await queue('QueueStatus', { ResponseFormat: 'json' });
      assert.deepEqual(rd(j.json), {
        queue: { '@name': 'fetch', '@paused': 'false', pending: { $: String(pending) }, running: { $: String(runningCount) }, completed: { $: String(completed) } },
      });

      // Cancelled while waiting, stopped while running: both end, with nothing left to estimate.
      assert.equal((await queue('Cancel', { Token: waiting })).status, 200);
      const c = rd((await queue('Progress', { Token: waiting })).json).progress as Json;
      assert.equal(c.estimated_time_remaining, '0');
      assert.equal(((c.stage as Json[])[0] as Json)['@status'], 'Cancelled');
      assert.equal((await queue('Stop', { Token: running })).status, 200);
      await stack.waitFor(running, ['Stopped', 'Finished', 'Error'], 60_000);
      const units = await stack.units(running);
      const after = rd((await queue('Progress', { Token: running })).json).progress as Json;
      const last = (after.stage as Json[])[0] as Json;
      assert.equal(units[0]?.status, 'Stopped');
      assert.equal(last['@status'], 'Stopped');
      assert.equal(last['@progress'], String(units[0]?.messages));
      assert.equal(after.estimated_time_remaining, '0');
      assert.equal(after.percent, String(Math.floor(((units[0]?.messages ?? 0) * 100) / 300)));
    } finally {
      release();
      if (waiting) await queue('Cancel', { Token: waiting });
      if (running) await queue('Stop', { Token: running });
    }
  });

  it('QueueStatus shows a paused queue', async () => {
    assert.equal((await queue('Pause')).status, 200);
    try {
      const s = rd((await queue('QueueStatus')).json).queue as Json;
      assert.equal(s['@paused'], 'true');
      assert.equal(s.completed, String(await countOf(['Finished', 'Cancelled', 'Stopped', 'Error'])));
    } finally {
      assert.equal((await queue('Resume')).status, 200);
    }
    assert.equal((rd((await queue('QueueStatus')).json).queue as Json)['@paused'], 'false');
  });

  it('HEAD answers the verbs that read, and refuses Duplicate', async () => {
    const url = (q: string) => `${stack.actionUrl}?action=QueueInfo&QueueName=fetch&${q}`;
    for (const q of ['QueueAction=QueueStatus', 'QueueAction=Progress&Token=AAAAAAAAAAAAAAAAAAAAAA', 'QueueAction=GetActionParameters&Token=AAAAAAAAAAAAAAAAAAAAAA']) {
      const [get, head] = [await fetch(url(q)), await fetch(url(q), { method: 'HEAD' })];
      assert.equal(head.status, get.status, q);
      assert.equal(await head.text(), '', q);
    }
    const before = await actionCount();
    const dup = await fetch(url('QueueAction=Duplicate&Token=AAAAAAAAAAAAAAAAAAAAAA'), { method: 'HEAD' });
    assert.equal(dup.status, 405);
    assert.equal(await actionCount(), before);
  });
});

/** An ended action record with chosen times (ms), without units or request (as older actions were stored). */
function crafted(token: string, status: ActionRecord['status'], t: { queued: number; started: number | null; ended: number }): ActionRecord {
  return {
    token,
    fetchAction: 'Synchronize',
    tasks: ['TEAM'],
    status,
    queuedAt: Timestamp.fromMillis(t.queued),
    startedAt: t.started === null ? null : Timestamp.fromMillis(t.started),
    endedAt: Timestamp.fromMillis(t.ended),
    stopRequested: status === 'Stopped',
    scheduleKey: 'TEAM',
    attempts: 1,
    unitsTotal: 0,
    fanOutGeneration: 0,
    error: status === 'Error' ? 'TEAM/x@verbs.example: failed' : null,
  };
}

describe('GetStatus filters', () => {
  // Actions of 2001, apart from every action the other tests start.
  const day = (d: number, h = 0, m = 0, s = 0) => Date.UTC(2001, 0, d, h, m, s);
  const T = {
    t1: 'T1T1T1T1T1T1T1T1T1T1T1',
    t2: 'T2T2T2T2T2T2T2T2T2T2T2',
    t3: 'T3T3T3T3T3T3T3T3T3T3T3',
    t4: 'T4T4T4T4T4T4T4T4T4T4T4',
    t5: 'T5T5T5T5T5T5T5T5T5T5T5',
  };

  before(async () => {
    const records = [
      crafted(T.t1, 'Finished', { queued: day(1), started: day(1, 0, 0, 10), ended: day(1, 0, 5) }),
      crafted(T.t2, 'Finished', { queued: day(2), started: day(2, 0, 0, 5), ended: day(3) }),
      crafted(T.t3, 'Cancelled', { queued: day(3), started: null, ended: day(3, 0, 1) }),
      crafted(T.t4, 'Error', { queued: day(4), started: day(4, 0, 0, 1), ended: day(4, 0, 0, 30) }),
      crafted(T.t5, 'Stopped', { queued: day(5), started: day(5, 0, 0, 2), ended: day(5, 12) }),
    ];
    await Promise.all(records.map((r) => stack.db.collection('actions').doc(r.token).set(r)));
  });

  async function tokens(params: Record<string, string>): Promise<string[]> {
    const r = await queue('GetStatus', params);
    assert.equal(r.status, 200, r.text);
    const list = (rd(r.json).actions as Json).action as Json[] | undefined;
    return (list ?? []).map((a) => a.token as string);
  }

  it('Queued-After and Queued-Before (ISO 8601, IDOL form, epoch seconds): from After included, to Before excluded, newest first', async () => {
    assert.deepEqual(await tokens({ 'Queued-After': '2001-01-02T00:00:00Z', 'Queued-Before': '2001-Jan-05 00:00:00' }), [T.t4, T.t3, T.t2]);
    assert.deepEqual(await tokens({ 'queued-after': String(day(2) / 1000), 'QUEUED-BEFORE': String(day(5) / 1000) }), [T.t4, T.t3, T.t2]);
    assert.deepEqual(await tokens({ 'Queued-After': '2001-01-02', 'Queued-Before': '2001-01-04T01:00:00+01:00' }), [T.t3, T.t2]);
    assert.deepEqual(await tokens({ 'Queued-Before': '2001-01-06', 'Sort-Order': 'ascending' }), [T.t1, T.t2, T.t3, T.t4, T.t5]);
  });

  it('Finished-After and Finished-Before, ordered by queue time or by finish time', async () => {
    const range = { 'Finished-After': '2001-01-03T00:00:00Z', 'Finished-Before': '2001-01-05T00:00:00Z' };
    assert.deepEqual(await tokens(range), [T.t4, T.t3, T.t2]);
    assert.deepEqual(await tokens({ ...range, 'Sort-By': 'finish-time', 'Sort-Order': 'ascending' }), [T.t2, T.t3, T.t4]);
    assert.deepEqual(await tokens({ 'Finished-After': '2001-Jan-04 00:00:00', 'Queued-Before': '2001-01-06', MaxResults: '1' }), [T.t5]);
  });

  it('Sort-By=start-time: actions that never started come last when descending', async () => {
    assert.deepEqual(await tokens({ 'Queued-Before': '2001-01-06', 'Sort-By': 'start-time' }), [T.t5, T.t4, T.t2, T.t1, T.t3]);
    assert.deepEqual(await tokens({ 'Queued-Before': '2001-01-06', 'Sort-By': 'START-TIME', 'Sort-Order': 'Ascending' }), [T.t3, T.t1, T.t2, T.t4, T.t5]);
  });

  it('State with the filters and each order; MaxResults', async () => {
    assert.deepEqual(await tokens({ State: 'finished', 'Queued-Before': '2001-01-06' }), [T.t2, T.t1]);
    assert.deepEqual(await tokens({ State: 'Finished', 'Queued-Before': '2001-01-06', 'Sort-Order': 'ascending' }), [T.t1, T.t2]);
    assert.deepEqual(await tokens({ State: 'Error', 'Sort-By': 'finish-time', 'Finished-Before': '2002-01-01' }), [T.t4]);
    assert.deepEqual(await tokens({ State: 'Stopped', 'Sort-By': 'start-time', 'Queued-Before': '2002-01-01' }), [T.t5]);
    assert.deepEqual(await tokens({ 'Queued-Before': '2001-01-06', MaxResults: '2' }), [T.t5, T.t4]);
    assert.deepEqual(await tokens({ 'Queued-After': '2001-01-06', 'Queued-Before': '2001-01-07' }), []);
  });

  it('answers in xml, simplejson and json with the action as GetStatus shows it', async () => {
    const q = { 'Queued-After': '2001-01-01', 'Queued-Before': '2001-01-02' };
    const s = await queue('GetStatus', q);
    const one = ((rd(s.json).actions as Json).action as Json[])[0] as Json;
    assert.equal(one.token, T.t1);
    assert.equal(one.status, 'Finished');
    assert.equal(one.queued_time, '2001-Jan-01 00:00:00');
    assert.equal(one.process_start_time, '2001-Jan-01 00:00:10');
    assert.equal(one.process_end_time, '2001-Jan-01 00:05:00');
    assert.equal(one.time_in_queue, '10');
    assert.equal(one.time_processing, '290');
    const x = await queue('GetStatus', { ...q, ResponseFormat: 'xml' });
    const xa = (xmlData(x.text).actions as Json).action as Json;
    assert.equal(xa.token, T.t1);
    assert.equal(xa.process_end_time, '2001-Jan-01 00:05:00');
    const j = await queue('GetStatus', { ...q, ResponseFormat: 'json' });
    const ja = ((rd(j.json).actions as Json).action as Json[])[0] as Json;
    assert.deepEqual(ja.token, { $: T.t1 });
    assert.deepEqual(ja.time_processing, { $: '290' });
    // The path form, as docs/using.md's example sends it: the IDOL time's space percent-encoded.
    const path = await fetch(`${stack.actionUrl}action=QueueInfo&QueueName=fetch&QueueAction=GetStatus&Queued-Before=2001-Jan-02%2000:00:00&ResponseFormat=simplejson`);
    assert.equal(path.status, 200);
    assert.deepEqual(((rd(await path.json()).actions as Json).action as Json[]).map((a) => a.token), [T.t1]);
    const none = await queue('GetStatus', { 'Queued-Before': '1999-01-01', ResponseFormat: 'xml' });
    assert.match(none.text, /<actions\/>/);
  });

  it('a filter value that is not a time, an unknown Sort-By or Sort-Order: 400 naming the parameter, nothing changed', async () => {
    for (const [name, value] of [
      ['Queued-After', 'yesterday'],
      ['Queued-Before', '2001-13-01'],
      ['Finished-After', '2001-Feb-30 00:00:00'],
      ['Finished-Before', '2001-01-01T25:00:00Z'],
      ['Queued-After', '-5'],
      ['Finished-After', '99999999999999'],
    ] as const) {
      await refused({ QueueAction: 'GetStatus', [name]: value }, 400, 'GMAILCONNECTOR-BAD-PARAMETER', new RegExp(`${name}.*a time`));
    }
    await refused({ QueueAction: 'GetStatus', 'Sort-By': 'size' }, 400, 'GMAILCONNECTOR-BAD-PARAMETER', /Sort-By.*queue-time, start-time, finish-time/);
    await refused({ QueueAction: 'GetStatus', 'Sort-Order': 'up' }, 400, 'GMAILCONNECTOR-BAD-PARAMETER', /Sort-Order.*descending, ascending/);
    await refused({ QueueAction: 'GetStatus', MaxResults: '0' }, 400, 'GMAILCONNECTOR-BAD-PARAMETER', /MaxResults/);
    await refused({ QueueAction: 'GetStatus', State: 'Running' }, 400, 'GMAILCONNECTOR-BAD-PARAMETER', /State/);
    const x = await queue('GetStatus', { 'Queued-After': 'soon', ResponseFormat: 'xml' });
    assert.equal(x.status, 400);
    assert.match(x.text, /<errorid>GMAILCONNECTOR-BAD-PARAMETER<\/errorid>/);
    const j = await queue('GetStatus', { 'Sort-By': 'size', ResponseFormat: 'json' });
    assert.equal(j.status, 400);
    assert.deepEqual((rd(j.json).error as Json).errorid, { $: 'GMAILCONNECTOR-BAD-PARAMETER' });
  });
});
