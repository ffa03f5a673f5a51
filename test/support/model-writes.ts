/**
 * The model-based test of the paths that change mailboxes and of an action's whole life: random
 * sequences of Synchronize, Insert, Update, Delete and Collect, Progress polled through
 * hand-overs, CreateTask failures, answers Gmail loses after it acted, calls that hang, ended unit
 * records expiring, records naming a fetch action this version does not know (a rollback), a
 * change of the task's selection, writes turned off while work is queued, worker kills and
 * dropped tasks, played against the real stack with short leases and budgets. The model is which
 * messages the connector was asked to insert, what each write reported, and when writes were off.
 * The checks:
 * - after every step while writes are off, no mailbox differs from what it was when they went off;
 * - once the queue is drained and reconcile has run, every action ended (those naming an unknown
 *   fetch action `Error`, saying so); reconcile re-enqueued no more tasks than were really lost
 *   (dropped, or left behind by a killed or redeployed worker);
 * - every message Insert was asked for is in its mailbox at most once, and exactly once when
 *   Insert reported it and nothing deleted it for good;
 * - a Synchronize then leaves the sink equal to the mailboxes as the selection reads them, and so
 *   does one after the selection changes again.
 *
 * A sequence comes from its seed alone (fast-check's generator): a failing seed prints its steps
 * and replays with `npm run soak -- --model writes --seed N`.
 */
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { gmail_v1 } from 'googleapis/build/src/apis/gmail/index.js';
import { decodeIdentifier, encodeIdentifier } from '../../functions/src/aci/identifiers.js';
import { ENDED_STATUSES, type ActionRecord } from '../../functions/src/store/model.js';
import { until } from './checks.js';
import { mailboxState, rawMessage, testGmail } from './gmail.js';
import { writeMailbox } from './mail.js';
import { startTestStack, type TestStack } from './stack.js';

const USERS = ['w1@example.com', 'w2@example.com'];
const TASK = 'W';
const BUCKET = 'model-collect';
type Json = Record<string, unknown>;
type Selection = 'all' | 'inbox';
type Kind = 'ok' | 'folded' | 'none';

type Cmd =
  | { k: 'sync'; schedule: boolean }
  | { k: 'insert'; user: number; kinds: Kind[]; lose: boolean }
  | { k: 'update'; user: number; pick: number; dryRun: boolean }
  | { k: 'delete'; user: number; pick: number; dryRun: boolean; permanent: boolean }
  | { k: 'collect'; user: number; pick: number }
  | { k: 'poll'; on: boolean }
  | { k: 'flaky'; on: boolean }
  | { k: 'lose' }
  | { k: 'hang'; on: boolean }
  | { k: 'expire'; pick: number }
  | { k: 'rollback'; pick: number; fresh: boolean }
  | { k: 'select' }
  | { k: 'writes'; on: boolean }
  | { k: 'kill' }
  | { k: 'drop'; pick: number }
  | { k: 'change'; user: number; pick: number }
  | { k: 'wait'; ms: number };

const user = fc.integer({ min: 0, max: USERS.length - 1 });
const pick = fc.nat(1000);
const cmd: fc.Arbitrary<Cmd> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ k: fc.constant('sync' as const), schedule: fc.boolean() }) },
  { weight: 4, arbitrary: fc.record({ k: fc.constant('insert' as const), user, kinds: fc.array(fc.constantFrom<Kind>('ok', 'folded', 'none'), { minLength: 1, maxLength: 3 }), lose: fc.boolean() }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('update' as const), user, pick, dryRun: fc.boolean() }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('delete' as const), user, pick, dryRun: fc.boolean(), permanent: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('collect' as const), user, pick }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('poll' as const), on: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('flaky' as const), on: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('lose' as const) }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('hang' as const), on: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('expire' as const), pick }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('rollback' as const), pick, fresh: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('select' as const) }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('writes' as const), on: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('kill' as const) }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('drop' as const), pick }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('change' as const), user, pick }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('wait' as const), ms: fc.integer({ min: 0, max: 800 }) }) },
);

/** The steps of a seed. */
export function writeStepsOf(seed: number, length = 16): Cmd[] {
  const [steps] = fc.sample(fc.array(cmd, { minLength: length, maxLength: length }), { seed, numRuns: 1 });
  return steps ?? [];
}

function connector(writes: boolean, selection: Selection): Record<string, unknown> {
  return {
    gmail: { quotaUnitsPerUserPerMinute: 1_000_000 },
    tasks: { [TASK]: { users: USERS, writes, ...(selection === 'inbox' ? { labels: ['INBOX'] } : {}) } },
  };
}

/** A message as Insert is given it: with a Message-ID, with one folded and malformed, or with none. */
function messageOf(to: string, subject: string, kind: Kind): Buffer {
  const id = kind === 'ok' ? [`Message-ID: <${subject}@model>`] : kind === 'folded' ? [`Message-Id: <0000${subject}$0000`, `  11d7$0000742f@model.example`, `  .org.ar`] : [];
  return Buffer.from([...id, 'From: sender@example.org', `To: ${to}`, `Subject: ${subject}`, `Date: ${new Date().toUTCString()}`, '', `Body of ${subject}.`, ''].join('\r\n'));
}

function insertXml(items: { ref: string; user: string; raw: Buffer }[]): string {
  const one = (i: (typeof items)[number]) =>
    `<insert><reference>${i.ref}</reference><property name="USER_ID" value="${i.user}"/><property name="LABEL_IDS" value="INBOX"/>` +
    `<file><type>content</type><content>${i.raw.toString('base64')}</content></file></insert>`;
  return `<insertXML>${items.map(one).join('')}</insertXML>`;
}

/** Every message of a mailbox, Spam and Trash included: id → its sorted labels, joined. */
async function wholeMailbox(g: gmail_v1.Gmail, u: string): Promise<Map<string, string>> {
  const state = await mailboxState(g, u, { includeSpamTrash: true });
  return new Map([...state].map(([id, labels]) => [id, labels.join(',')]));
}

/** The model's own record of one Insert item. */
interface Inserted {
  user: string;
  subject: string;
  token: string;
}

class WriteRun {
  readonly tokens: string[] = [];
  /** Actions whose record names a fetch action this version does not know. */
  readonly unknown = new Set<string>();
  readonly inserted: Inserted[] = [];
  /** Messages a permanent Delete was asked to delete: they may be gone. */
  readonly deletedForGood = new Set<string>();
  writes = true;
  hangRate = 0;
  selection: Selection = 'all';
  /** Tasks really lost: dropped, or left behind by a worker killed or redeployed mid-run. */
  interruptions = 0;
  /** The tasks the model removed from the queue. */
  readonly dropped = new Set<string>();
  /** The mailboxes as they were when writes went off. */
  offSnapshot: Map<string, Map<string, string>> | undefined;
  inserts = 0;

  constructor(
    readonly stack: TestStack,
    readonly g: gmail_v1.Gmail,
    readonly seed: number,
  ) {}

  async fetch(params: Record<string, string>): Promise<string> {
    const r = await this.stack.aci({ action: 'Fetch', ...params });
    assert.equal(r.status, 200, `${params.FetchAction}: ${r.text}`);
    const token = (((r.json as Json).autnresponse as Json).responsedata as Json).token as string;
    this.tokens.push(token);
    return token;
  }

  async messageOf(u: string, pickN: number): Promise<string | undefined> {
    const ids = (await this.g.users.messages.list({ userId: u, maxResults: 100 })).data.messages ?? [];
    return ids.length ? (ids[pickN % ids.length]?.id ?? undefined) : undefined;
  }

  async openTokens(): Promise<string[]> {
    const recs = await Promise.all(this.tokens.map((t) => this.stack.deps.store.get(t)));
    return recs.filter((a): a is ActionRecord => a !== null && !ENDED_STATUSES.has(a.status)).map((a) => a.token);
  }

  private polling: { stop: boolean; done: Promise<void>; error?: unknown } | undefined;

  startPolling(): void {
    if (this.polling) return;
    const p: { stop: boolean; done: Promise<void>; error?: unknown } = { stop: false, done: Promise.resolve() };
    p.done = (async () => {
      while (!p.stop) {
        for (const token of await this.openTokens()) {
          const r = await this.stack.aci({ action: 'QueueInfo', QueueName: 'fetch', QueueAction: 'GetStatus', Token: token });
          assert.equal(r.status, 200, r.text);
        }
        await new Promise((r) => setTimeout(r, 100));
      }
    })().catch((e: unknown) => {
      p.error = e;
    });
    this.polling = p;
  }

  async stopPolling(): Promise<void> {
    const p = this.polling;
    this.polling = undefined;
    if (!p) return;
    p.stop = true;
    await p.done;
    if (p.error !== undefined) throw p.error;
  }

  /** Expiries asked for and not yet made. */
  expireWanted = 0;

  /** Deletes, as many times as asked for, the record of an ended unit of an action still running. */
  async tryExpire(pickN = 0): Promise<void> {
    for (const token of await this.openTokens()) {
      if (this.expireWanted === 0) return;
      const ended = (await this.stack.units(token)).filter((u) => ENDED_STATUSES.has(u.status));
      const u = ended[pickN % Math.max(1, ended.length)];
      if (!u) continue;
      await this.stack.deps.units.ref(token, `${u.task}:${u.user}`).delete();
      this.expireWanted--;
    }
  }

  /** Deploys the worker again with the model's writes switch and selection. */
  async deploy(): Promise<void> {
    this.interruptions++;
    await this.stack.worker.restart({ connector: connector(this.writes, this.selection) });
  }

  async snapshot(): Promise<Map<string, Map<string, string>>> {
    return new Map(await Promise.all(USERS.map(async (u) => [u, await wholeMailbox(this.g, u)] as const)));
  }

  /** Runs a step; the model's own Gmail calls are answered whatever hangs the step leaves for the worker's. */
  async step(c: Cmd): Promise<void> {
    this.stack.gmail.setHangRate(0);
    try {
      await this.play(c);
      if (this.expireWanted > 0) await this.tryExpire();
    } finally {
      this.stack.gmail.setHangRate(this.hangRate);
    }
  }

  private async play(c: Cmd): Promise<void> {
    const s = this.stack;
    switch (c.k) {
      case 'sync': {
        const token = await s.synchronize(TASK, c.schedule ? { Schedule: 'true' } : {});
        if (!this.tokens.includes(token)) this.tokens.push(token);
        return;
      }
      case 'insert': {
        const u = USERS[c.user] as string;
        // A lost answer is found again by the history, whatever the message; by search only with a Message-ID.
        const kinds: Kind[] = c.lose ? ['ok', ...c.kinds.slice(1)] : c.kinds;
        const items = kinds.map((kind) => {
          const subject = `ins-${this.seed}-${++this.inserts}`;
          return { ref: subject, user: u, raw: messageOf(u, subject, kind) };
        });
        // Its first import is made and its answer lost: the retry must find it without searching.
        if (c.lose) s.gmail.loseAnswers('messages.import', 1);
        const token = await this.fetch({ FetchAction: 'Insert', ConfigSection: TASK, InsertXML: insertXml(items) });
        for (const i of items) this.inserted.push({ user: u, subject: i.ref, token });
        return;
      }
      case 'update': {
        const u = USERS[c.user] as string;
        const id = await this.messageOf(u, c.pick);
        if (!id) return;
        const identifier = encodeIdentifier({ task: TASK, address: u, messageId: id });
        const op = c.pick % 2 ? 'ADD_LABELS' : 'REMOVE_LABELS';
        await this.fetch({
          FetchAction: 'Update',
          IdentifiersXML: `<identifiersXML><identifier value="${identifier}"><metadata name="${op}" value="${c.pick % 3 ? 'STARRED' : 'INBOX'}"/></identifier></identifiersXML>`,
          ...(c.dryRun ? { DryRun: 'true' } : {}),
        });
        return;
      }
      case 'delete': {
        const u = USERS[c.user] as string;
        const id = await this.messageOf(u, c.pick);
        if (!id) return;
        if (c.permanent && !c.dryRun) this.deletedForGood.add(id);
        await this.fetch({
          FetchAction: 'Delete',
          Identifiers: encodeIdentifier({ task: TASK, address: u, messageId: id }),
          ...(c.permanent ? { Permanent: 'true' } : {}),
          ...(c.dryRun ? { DryRun: 'true' } : {}),
        });
        return;
      }
      case 'collect': {
        const u = USERS[c.user] as string;
        const id = await this.messageOf(u, c.pick);
        if (!id) return;
        await this.fetch({ FetchAction: 'Collect', Destination: `gs://${BUCKET}/seed-${this.seed}`, Identifiers: encodeIdentifier({ task: TASK, address: u, messageId: id }) });
        return;
      }
      case 'poll':
        // The queue page's poll: GetStatus of each open action (its lazy reconcile) every 100 ms, while runs hand over.
        if (c.on) this.startPolling();
        else await this.stopPolling();
        return;
      case 'flaky':
        s.tasks.flakyCreates(c.on ? 2 : 0);
        return;
      case 'lose':
        // The next import is made, and its answer lost: the retry must find it without searching.
        s.gmail.loseAnswers('messages.import', 1);
        return;
      case 'hang':
        this.hangRate = c.on ? 0.1 : 0;
        s.gmail.setHangRate(this.hangRate);
        return;
      case 'expire':
        // Firestore's TTL policy deletes an ended unit record of an action still running: now, or
        // as soon as a step finds one (see tryExpire).
        this.expireWanted++;
        await this.tryExpire(c.pick);
        return;
      case 'rollback': {
        const { store, queue } = s.deps;
        if (c.fresh) {
          // A newer version queued it; this one is deployed again before it runs.
          const token = `ROLLBACK${String(this.seed).padStart(4, '0')}${String(this.tokens.length).padStart(10, '0')}`;
          await store.create({ token, fetchAction: 'Frobnicate', tasks: [TASK], scheduleKey: null });
          await queue.enqueue(token, { token });
          this.tokens.push(token);
          this.unknown.add(token);
          return;
        }
        const open = await this.openTokens();
        const token = open[c.pick % Math.max(1, open.length)];
        if (!token || this.unknown.has(token)) return;
        await store.ref(token).update({ fetchAction: 'Frobnicate' });
        this.unknown.add(token);
        return;
      }
      case 'select':
        this.selection = this.selection === 'all' ? 'inbox' : 'all';
        return this.deploy();
      case 'writes': {
        if (c.on === this.writes) return;
        if (c.on) await this.checkWritesOff();
        this.writes = c.on;
        await this.deploy();
        this.offSnapshot = c.on ? undefined : await this.snapshot();
        return;
      }
      case 'kill':
        return this.deploy();
      case 'drop': {
        const open: { taskId: string }[] = [];
        for (const t of await this.openTokens()) open.push(...(await s.deps.units.open(t)));
        const u = open[c.pick % Math.max(1, open.length)];
        if (u && (await s.deps.queue.remove(u.taskId))) {
          this.interruptions++;
          this.dropped.add(u.taskId);
        }
        return;
      }
      case 'change': {
        // The mailbox's owner changes it (not while writes are off: that window checks the connector alone).
        if (!this.writes) return;
        const u = USERS[c.user] as string;
        if (c.pick % 2) {
          await this.g.users.messages.insert({ userId: u, requestBody: { raw: rawMessage(u, `<own-${this.seed}-${c.pick}-${Date.now()}@x>`, 'own'), labelIds: ['INBOX'] } });
        } else {
          const id = await this.messageOf(u, c.pick);
          if (id) await this.g.users.messages.modify({ userId: u, id, requestBody: { removeLabelIds: ['INBOX'] } });
        }
        return;
      }
      case 'wait':
        await new Promise((r) => setTimeout(r, c.ms));
        return;
      default: {
        const never: never = c;
        throw new Error(`unknown step ${JSON.stringify(never)}`);
      }
    }
  }

  /** While writes are off, the mailboxes are as they were when they went off. */
  async checkWritesOff(): Promise<void> {
    if (!this.offSnapshot) return;
    this.stack.gmail.setHangRate(0);
    try {
      assert.deepEqual(await this.snapshot(), this.offSnapshot, 'a mailbox changed while writes were off');
    } finally {
      this.stack.gmail.setHangRate(this.hangRate);
    }
  }

  /** Lets everything end: Gmail answers, the queue creates tasks at once, reconcile repairs. */
  async drain(): Promise<ActionRecord[]> {
    const s = this.stack;
    this.hangRate = 0;
    s.gmail.setHangRate(0);
    s.tasks.flakyCreates(0);
    await this.stopPolling();
    return until(
      'every action ended',
      async () => {
        if (this.expireWanted > 0) await this.tryExpire();
        await s.reconcile();
        const all = await Promise.all(this.tokens.map((t) => s.deps.store.get(t)));
        return all.filter((a): a is ActionRecord => a !== null);
      },
      (all) => all.length === this.tokens.length && all.every((a) => ENDED_STATUSES.has(a.status)),
      120_000,
    );
  }

  /** Each message Insert was asked for is in its mailbox at most once, and once when reported and not deleted for good. */
  async checkInserted(): Promise<void> {
    const reported = new Map<string, string>();
    for (const token of new Set(this.inserted.map((i) => i.token))) {
      const r = await this.stack.aci({ action: 'QueueInfo', QueueName: 'fetch', QueueAction: 'GetStatus', Token: token, MaxResults: '1000' });
      const action = ((((r.json as Json).autnresponse as Json).responsedata as Json).actions as { action: Json[] }).action[0] as Json;
      const success = ((action.tasks as Json | undefined)?.success ?? []) as Json[] | Json;
      for (const e of Array.isArray(success) ? success : [success]) reported.set(String(e['@insert_id']), String(e['$']));
    }
    for (const u of USERS) {
      const mine = this.inserted.filter((i) => i.user === u);
      if (!mine.length) continue;
      const bySubject = new Map<string, string[]>();
      let pageToken: string | undefined;
      do {
        const r = await this.g.users.messages.list({ userId: u, maxResults: 500, pageToken, includeSpamTrash: true });
        for (const m of r.data.messages ?? []) {
          const got = await this.g.users.messages.get({ userId: u, id: m.id ?? '', format: 'metadata', metadataHeaders: ['Subject'] });
          const subject = got.data.payload?.headers?.find((h) => h.name?.toLowerCase() === 'subject')?.value ?? '';
          bySubject.set(subject, [...(bySubject.get(subject) ?? []), m.id ?? '']);
        }
        pageToken = r.data.nextPageToken ?? undefined;
      } while (pageToken);
      for (const i of mine) {
        const ids = bySubject.get(i.subject) ?? [];
        assert.ok(ids.length <= 1, `${i.subject} is in ${u} ${ids.length} times`);
        const id = reported.get(i.subject);
        if (id === undefined || this.deletedForGood.has(decodeIdentifier(id).messageId)) continue;
        assert.equal(ids.length, 1, `${i.subject} was reported inserted as ${decodeIdentifier(id).messageId} but is in ${u} ${ids.length} times`);
      }
    }
  }
}

/** The sink equals the mailboxes as the selection reads them (outside Spam and Trash). */
async function assertSinkIsSelection(run: WriteRun): Promise<void> {
  for (const u of USERS) {
    const want = new Map<string, string>();
    for (const [id, labels] of await wholeMailbox(run.g, u)) {
      const l = labels.split(',');
      if (l.includes('SPAM') || l.includes('TRASH')) continue;
      if (run.selection === 'inbox' && !l.includes('INBOX')) continue;
      want.set(id, labels);
    }
    const sink = await run.stack.sink(TASK, u);
    const got = new Map([...sink.values()].map((d) => [d.messageId as string, [...(d.labels as string[])].sort().join(',')]));
    assert.deepEqual(got, want, `${TASK}/${u}: the sink is the ${run.selection} selection of the mailbox`);
  }
}

/** Plays one seed on a new stack; throws with the seed and its steps when a check fails. */
export async function runWriteSeed(seed: number, length = 16): Promise<{ requeues: number; interruptions: number }> {
  const steps = writeStepsOf(seed, length);
  const { dir } = writeMailbox(USERS[0] as string, 150, { prefix: `w${seed}-` });
  writeMailbox(USERS[1] as string, 80, { dir, prefix: `v${seed}-` });
  const stack = await startTestStack({
    mailDir: dir,
    workerProcess: true,
    delegation: false,
    collectBuckets: [BUCKET],
    gmail: { latencyMs: 5, searchLagMs: 3_000 },
    // A one-second budget: a Synchronize of either mailbox hands over to continuations.
    env: { WORKER_LEASE_S: '2', WORKER_TIME_BUDGET_S: '1', GMAIL_CALL_TIMEOUT_S: '1', GMAIL_BACKOFF_MS: '10' },
    connector: connector(true, 'all'),
  });
  const done: string[] = [];
  let run: WriteRun | undefined;
  try {
    const g = testGmail(stack.gmail.url);
    const r = new WriteRun(stack, g, seed);
    run = r;
    const first = await stack.synchronize(TASK);
    assert.equal((await stack.waitFor(first, [...ENDED_STATUSES], 120_000)).status, 'Finished');
    // Every seed starts as a production queue often is: its page polling each open action, and
    // Cloud Tasks answering each creation UNAVAILABLE twice; the steps may turn either off and on.
    r.startPolling();
    stack.tasks.flakyCreates(2);
    for (const c of steps) {
      done.push(JSON.stringify(c));
      await r.step(c);
      if (!r.writes) await r.checkWritesOff();
    }
    done.push('drain');
    const ended = await r.drain();
    await r.checkWritesOff();
    for (const a of ended) {
      if (r.unknown.has(a.token) && a.status === 'Error') assert.match(a.error ?? '', /unknown fetch action Frobnicate/, `${a.token}`);
    }
    for (const t of r.tokens.filter((x) => r.unknown.has(x) && x.startsWith('ROLLBACK'))) {
      const a = ended.find((x) => x.token === t);
      assert.equal(a?.status, 'Error', `${t} names an unknown fetch action`);
    }
    const allUnits = (await Promise.all(ended.map((a) => stack.units(a.token)))).flat();
    const requeues = allUnits.reduce((n, u) => n + u.requeues, 0);
    assert.ok(requeues <= r.interruptions, `reconcile re-enqueued ${requeues} tasks; only ${r.interruptions} were lost`);
    // A task counts as lost only when it really was: never created (a worker killed between a
    // hand-over and its task), or removed from the queue.
    for (const u of allUnits) {
      for (const lost of u.lostTasks ?? []) assert.ok(!stack.tasks.wasCreated(lost) || r.dropped.has(lost), `reconcile counted task ${lost} lost, but it was created and nobody removed it`);
    }
    await r.checkInserted();
    // With writes on and the current selection, one run brings the sink level with the mailboxes...
    done.push('final');
    if (!r.writes) await r.step({ k: 'writes', on: true });
    const syncs = async (what: string) => {
      done.push(what);
      const t = await stack.synchronize(TASK);
      const a = await stack.waitFor(t, [...ENDED_STATUSES], 120_000);
      assert.equal(a.status, 'Finished', a.error ?? '');
      await assertSinkIsSelection(r);
    };
    await syncs('final');
    // ...and so does one after the selection changes again.
    await r.step({ k: 'select' });
    await syncs('after the selection changed');
    return { requeues, interruptions: r.interruptions };
  } catch (e) {
    const msg = (e as Error).message;
    throw new Error(`seed ${seed} failed at step ${done.length}: ${msg}\nsteps:\n  ${done.join('\n  ')}\nreplay: npm run soak -- --model writes --seed ${seed}`, { cause: e });
  } finally {
    await run?.stopPolling().catch(() => undefined);
    await stack.close();
  }
}
