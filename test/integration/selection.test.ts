/**
 * A change of a task's selection (`query`, `labels`, `includeSpamTrash`) is applied to what is
 * already synchronized: the mailbox state records the selection it was synchronized with, and a
 * run whose selection is another lists in full and sweeps. Widening brings in the older messages
 * that now match, narrowing (or turning `includeSpamTrash` off) deletes the documents that no longer
 * match (a held one is kept and marked), a reordering of labels is no change, a run in progress
 * keeps the selection it began with, and a run with another selection that did not finish leaves
 * the next run to list in full. Against the real servers; the worker in its own process, restarted
 * with the changed configuration as a deployment would.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { gmail_v1 } from 'googleapis/build/src/apis/gmail/index.js';
import { encodeIdentifier } from '../../functions/src/aci/identifiers.js';
import { FIRST_COMMIT_WITHIN } from '../../functions/src/fetch/synchronize.js';
import { assertSinkMirrors, countsOf, sinkState, until } from '../support/checks.js';
import { testGmail } from '../support/gmail.js';
import { writeMailbox } from '../support/mail.js';
import { startTestStack, type TestStack } from '../support/stack.js';

const WIDE = 'wide@example.com';
const NARROW = 'narrow@example.com';
const SPAM = 'spamtrash@example.com';
const MID = 'midrun@example.com';
const BACK = 'back@example.com';
const ENDED = ['Finished', 'Error', 'Stopped', 'Cancelled'];

interface TaskSelection {
  query?: string;
  labels?: string[];
  includeSpamTrash?: boolean;
}

/** The configuration the worker runs with now; `select` changes a task's selection and restarts the worker with it. */
const connector = {
  gmail: { quotaUnitsPerUserPerMinute: 1_000_000 },
  tasks: {
    WIDE: { users: [WIDE], labels: ['INBOX', 'IMPORTANT'] } as TaskSelection & { users: string[] },
    NARROW: { users: [NARROW] } as TaskSelection & { users: string[] },
    SPAM: { users: [SPAM], includeSpamTrash: true } as TaskSelection & { users: string[] },
    MID: { users: [MID], labels: ['IMPORTANT'] } as TaskSelection & { users: string[] },
    BACK: { users: [BACK], labels: ['IMPORTANT'] } as TaskSelection & { users: string[] },
  },
};
type Task = keyof typeof connector.tasks;

let stack: TestStack;
let g: gmail_v1.Gmail;

before(async () => {
  // Every third message is IMPORTANT (test/support/mail.ts).
  const { dir } = writeMailbox(WIDE, 30, { prefix: 'w' });
  writeMailbox(NARROW, 30, { dir, prefix: 'n' });
  writeMailbox(SPAM, 12, { dir, prefix: 's' });
  writeMailbox(MID, 30, { dir, prefix: 'm' });
  writeMailbox(BACK, FIRST_COMMIT_WITHIN + 40, { dir, prefix: 'b' });
  stack = await startTestStack({
    mailDir: dir,
    workerProcess: true,
    env: { WORKER_LEASE_S: '2', GMAIL_BACKOFF_MS: '10' },
    connector,
  });
  g = testGmail(stack.gmail.url);
});

after(async () => {
  await stack?.close();
});

/** Changes the task's selection and deploys the worker with it. */
async function select(task: Task, selection: TaskSelection): Promise<void> {
  const { users } = connector.tasks[task];
  connector.tasks[task] = { users, ...selection };
  await stack.worker.restart({ connector });
}

async function syncAndWait(task: Task): Promise<string> {
  const token = await stack.synchronize(task);
  const a = await stack.waitFor(token, ENDED, 120_000);
  assert.equal(a.status, 'Finished', `${task}: ${a.status} ${a.error ?? ''}`);
  return token;
}

/** Message id → sorted labels of the messages Gmail lists for this selection. */
async function selected(user: string, s: TaskSelection): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>();
  let pageToken: string | undefined;
  do {
    const r = await g.users.messages.list({ userId: user, maxResults: 500, pageToken, labelIds: s.labels?.length ? s.labels : undefined, includeSpamTrash: s.includeSpamTrash ?? false });
    for (const m of r.data.messages ?? []) {
      const full = await g.users.messages.get({ userId: user, id: m.id ?? '', format: 'minimal' });
      out.set(m.id ?? '', [...(full.data.labelIds ?? [])].sort());
    }
    pageToken = r.data.nextPageToken ?? undefined;
  } while (pageToken);
  return out;
}

/** The selection the mailbox state records, as stored. */
async function recorded(task: Task, user: string): Promise<unknown> {
  return (await stack.db.doc(`state/${task}/mailboxes/${user}`).get()).get('selection');
}

async function unitOf(token: string) {
  const [u] = await stack.units(token);
  assert.ok(u, `action ${token} has a unit`);
  return u;
}

const IMPORTANT_ONLY = { labels: ['IMPORTANT'] };

describe('a change of a task selection', () => {
  it('widened labels bring in the older messages that now match; a reordering of labels is no change', async () => {
    await syncAndWait('WIDE');
    const narrow = await selected(WIDE, { labels: ['INBOX', 'IMPORTANT'] });
    assert.equal(narrow.size, 10);
    assert.deepEqual(await sinkState(stack, 'WIDE', WIDE), narrow);

    // The same labels in another order, one twice: the same selection, so the run is incremental.
    await select('WIDE', { labels: ['IMPORTANT', 'INBOX', 'IMPORTANT'] });
    const same = await syncAndWait('WIDE');
    assert.equal((await unitOf(same)).checkpoint?.mode, 'history');
    assert.deepEqual(await sinkState(stack, 'WIDE', WIDE), narrow);
    const reordered = await recorded('WIDE', WIDE);

    await select('WIDE', { labels: [] });
    const wide = await syncAndWait('WIDE');
    assert.equal((await unitOf(wide)).checkpoint?.mode, 'full');
    const all = await selected(WIDE, {});
    assert.equal(all.size, 30);
    assert.deepEqual(await sinkState(stack, 'WIDE', WIDE), all);
    const c = await countsOf(stack, wide, 'WIDE');
    assert.deepEqual([c.seen, c.added, c.unchanged, c.updated, c.deleted, c.errors], [30, 20, 10, 0, 0, 0]);
    assert.deepEqual(reordered, { query: '', labels: ['IMPORTANT', 'INBOX'], includeSpamTrash: false });
    assert.deepEqual(await recorded('WIDE', WIDE), { query: '', labels: [], includeSpamTrash: false });
  });

  it('narrowed labels delete the documents of messages no longer selected; a held one is kept and marked', async () => {
    await syncAndWait('NARROW');
    const before = await stack.sink('NARROW', NARROW);
    assert.equal(before.size, 30);
    const important = await selected(NARROW, IMPORTANT_ONLY);
    assert.equal(important.size, 10);
    const ids = [...(await selected(NARROW, {})).keys()];
    const leaving = ids.find((id) => !important.has(id)) ?? '';
    const staying = [...important.keys()][0] ?? '';
    const idOf = (messageId: string) => encodeIdentifier({ task: 'NARROW', address: NARROW, messageId });
    const hold = await stack.aci({ action: 'Fetch', FetchAction: 'Hold', Identifiers: `${idOf(leaving)},${idOf(staying)}` });
    assert.equal(hold.status, 200, hold.text);
    const holdToken = ((hold.json as { autnresponse: { responsedata: { token: string } } }).autnresponse.responsedata.token);
    assert.equal((await stack.waitFor(holdToken, ENDED)).status, 'Finished');

    await select('NARROW', IMPORTANT_ONLY);
    const token = await syncAndWait('NARROW');
    const docOf = (messageId: string) => `NARROW:${NARROW}:${messageId}`;
    const sink = await stack.sink('NARROW', NARROW);
    assert.deepEqual([...sink.keys()].sort(), [...important.keys(), leaving].map(docOf).sort());
    for (const [id, labels] of important) assert.deepEqual(sink.get(docOf(id))?.labels, labels, `labels of ${id}`);
    // The held document whose message left the selection is kept as it was, marked.
    const kept = sink.get(docOf(leaving));
    assert.deepEqual({ ...kept, epoch: undefined, deletedInSource: undefined }, { ...before.get(docOf(leaving)), held: true, heldBy: holdToken, heldAt: kept?.heldAt, epoch: undefined, deletedInSource: undefined });
    assert.equal(kept?.deletedInSource, true);
    const still = sink.get(docOf(staying));
    assert.deepEqual([still?.held, still?.deletedInSource, still?.changedInSource], [true, undefined, undefined]);
    const c = await countsOf(stack, token, 'NARROW');
    assert.deepEqual([c.seen, c.added, c.unchanged, c.updated, c.deleted, c.errors], [10, 0, 10, 0, 19, 0]);
    assert.deepEqual(await recorded('NARROW', NARROW), { query: '', labels: ['IMPORTANT'], includeSpamTrash: false });
  });

  it('includeSpamTrash turned off deletes the documents of messages in SPAM and TRASH', async () => {
    const ids = [...(await selected(SPAM, {})).keys()];
    await g.users.messages.modify({ userId: SPAM, id: ids[0] ?? '', requestBody: { addLabelIds: ['SPAM'], removeLabelIds: ['INBOX'] } });
    await g.users.messages.modify({ userId: SPAM, id: ids[1] ?? '', requestBody: { addLabelIds: ['SPAM'], removeLabelIds: ['INBOX'] } });
    await g.users.messages.trash({ userId: SPAM, id: ids[2] ?? '' });
    await g.users.messages.trash({ userId: SPAM, id: ids[3] ?? '' });
    await syncAndWait('SPAM');
    const withSpam = await selected(SPAM, { includeSpamTrash: true });
    assert.equal(withSpam.size, 12);
    assert.deepEqual(await sinkState(stack, 'SPAM', SPAM), withSpam);

    await select('SPAM', { includeSpamTrash: false });
    const token = await syncAndWait('SPAM');
    await assertSinkMirrors(stack, g, 'SPAM', SPAM);
    assert.equal((await stack.sink('SPAM', SPAM)).size, 8);
    const c = await countsOf(stack, token, 'SPAM');
    assert.deepEqual([c.seen, c.added, c.unchanged, c.deleted, c.errors], [8, 0, 8, 4, 0]);
    assert.deepEqual(await recorded('SPAM', SPAM), { query: '', labels: [], includeSpamTrash: false });
  });

  it('a run in history mode when the selection changes keeps its own; the next run applies the new one', async () => {
    await syncAndWait('MID');
    const important = await selected(MID, IMPORTANT_ONLY);
    const others = [...(await selected(MID, {})).keys()].filter((id) => !important.has(id));
    const starred = [...[...important.keys()].slice(0, 2), ...others.slice(0, 2)];
    for (const id of starred) await g.users.messages.modify({ userId: MID, id, requestBody: { addLabelIds: ['STARRED'] } });
    // The run lists the history and commits it, then waits on its first messages.get.
    const release = stack.gmail.holdCalls(MID, 'messages.get', 0);
    let token: string;
    try {
      token = await stack.synchronize('MID');
      await until('the history page is listed', () => stack.units(token), ([u]) => u?.checkpoint?.mode === 'history' && u.checkpoint.phase === 'fetching' && u.checkpoint.items.length === 4);
      await select('MID', { labels: [] });
    } finally {
      release();
    }
    const a = await stack.waitFor(token, ENDED, 120_000);
    assert.equal(a.status, 'Finished', a.error ?? '');
    const u = await unitOf(token);
    assert.ok(u.attempts >= 2, 'the unit was delivered again, to the new worker');
    // Finished with the selection it began with: the two starred IMPORTANT messages updated, no other added.
    assert.deepEqual(await sinkState(stack, 'MID', MID), await selected(MID, IMPORTANT_ONLY));
    assert.deepEqual(u.counts, { seen: 4, added: 0, updated: 2, unchanged: 0, deleted: 0, errors: 0 });
    assert.deepEqual(await recorded('MID', MID), { query: '', labels: ['IMPORTANT'], includeSpamTrash: false });

    const next = await syncAndWait('MID');
    assert.equal((await unitOf(next)).checkpoint?.mode, 'full');
    assert.deepEqual(await sinkState(stack, 'MID', MID), await selected(MID, {}));
    assert.deepEqual(await recorded('MID', MID), { query: '', labels: [], includeSpamTrash: false });
  });

  it('a Stopped run with another selection leaves the next run to list in full, even with the first selection back', async () => {
    await syncAndWait('BACK');
    const important = await selected(BACK, IMPORTANT_ONLY);
    assert.deepEqual(await sinkState(stack, 'BACK', BACK), important);

    await select('BACK', { labels: [] });
    // The wider run commits its first messages, then waits on the next ones until it is stopped.
    const release = stack.gmail.holdCalls(BACK, 'messages.get', FIRST_COMMIT_WITHIN);
    let stopped: string;
    try {
      stopped = await stack.synchronize('BACK');
      const [running] = await until('the wider run committed or ended', () => stack.units(stopped), ([u]) => u !== undefined && (u.messages >= 10 || ENDED.includes(u.status)));
      assert.deepEqual([running?.status, running?.checkpoint?.mode], ['Processing', 'full'], 'the wider run lists in full');
      assert.equal(await recorded('BACK', BACK), undefined, 'a run with another selection cleared the recorded one when it began');
      const r = await stack.aci({ action: 'QueueInfo', QueueName: 'fetch', QueueAction: 'Stop', Token: stopped });
      assert.equal(r.status, 200, r.text);
      assert.equal((await stack.waitFor(stopped, ENDED)).status, 'Stopped');
    } finally {
      release();
    }
    const added = (await unitOf(stopped)).counts['added'] ?? 0;
    assert.ok(added > 0, 'the stopped run wrote documents of its own selection');
    assert.equal((await stack.sink('BACK', BACK)).size, important.size + added);

    await select('BACK', IMPORTANT_ONLY);
    const token = await syncAndWait('BACK');
    assert.equal((await unitOf(token)).checkpoint?.mode, 'full');
    assert.deepEqual(await sinkState(stack, 'BACK', BACK), important);
    assert.equal((await countsOf(stack, token, 'BACK')).deleted, added);
    assert.deepEqual(await recorded('BACK', BACK), { query: '', labels: ['IMPORTANT'], includeSpamTrash: false });
  });
});
