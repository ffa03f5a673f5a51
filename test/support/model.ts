/**
 * The model-based test of the two promises: random sequences of what users,
 * Gmail, the queue and the platform do to a running connector (Fetch, Stop,
 * Cancel, Pause/Resume, duplicate and stale deliveries, dropped tasks, worker
 * kills, leases left to expire, inserts, deletes, label changes, history loss,
 * hung calls, Hold and ReleaseHold of sink documents), played against the real
 * stack with short leases, budgets and backoffs. The model is what the
 * mailboxes should hold and which documents are held; the checks:
 * - after every step, no mailbox's history id went back;
 * - whenever a Synchronize is seen `Finished`, none of its mailboxes changed
 *   since it was asked for, and no Hold or ReleaseHold was open then or sent
 *   since, its task's sink equals those mailboxes plus the held documents,
 *   each marked (`deletedInSource`, `changedInSource`);
 * - once the queue is drained and reconcile has run, every action and unit is
 *   in an end state; a Synchronize of each task leaves its sink equal to its
 *   mailboxes, so does one after Gmail lost the history (a full listing over
 *   a full sink), a further one finds nothing to change, and the task no step
 *   touched kept every document as it was; once every hold is released, one
 *   more Synchronize of each task leaves its sink equal to its mailboxes.
 *
 * A sequence comes from its seed alone (fast-check's generator), so a failing
 * seed prints its steps and replays with `npm run soak -- --seed N`.
 */
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { gmail_v1 } from 'googleapis/build/src/apis/gmail/index.js';
import { ENDED_STATUSES, type ActionRecord, type UnitRecord } from '../../functions/src/store/model.js';
import { totalsOfUnits } from '../../functions/src/store/totals.js';
import { encodeIdentifier } from '../../functions/src/aci/identifiers.js';
import { assertSinkMirrors, assertSinkWithHolds, countsOf, until } from './checks.js';
import { rawMessage, testGmail } from './gmail.js';
import { writeMailbox } from './mail.js';
import { startTestStack, type TestStack } from './stack.js';

const USERS = ['m1@example.com', 'm2@example.com'];
const UNTOUCHED = 'still@example.com';
/** Which mailboxes each task reads: M1 is read by both, so their state must stay apart. */
const TASKS: Record<string, string[]> = { ONE: [USERS[0] as string], BOTH: USERS };
const HISTORY_RETENTION = 6;
type Json = Record<string, unknown>;

type Cmd =
  | { k: 'sync'; task: 'ONE' | 'BOTH'; schedule: boolean }
  | { k: 'stop' | 'cancel' | 'drop'; pick: number }
  | { k: 'duplicate'; pick: number; stale: boolean }
  | { k: 'pause' | 'resume' }
  | { k: 'insert' | 'burst'; user: number }
  | { k: 'delete' | 'label'; user: number; pick: number }
  | { k: 'kill'; down: boolean }
  | { k: 'hang'; on: boolean }
  | { k: 'wait'; ms: number }
  | { k: 'hold'; task: 'ONE' | 'BOTH'; user: number; pick: number }
  | { k: 'release'; pick: number };

const user = fc.integer({ min: 0, max: USERS.length - 1 });
const pick = fc.nat(1000);
const cmd: fc.Arbitrary<Cmd> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ k: fc.constant('sync' as const), task: fc.constantFrom('ONE' as const, 'BOTH' as const), schedule: fc.boolean() }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constantFrom('stop' as const, 'cancel' as const, 'drop' as const), pick }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('duplicate' as const), pick, stale: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constantFrom('pause' as const, 'resume' as const) }) },
  { weight: 3, arbitrary: fc.record({ k: fc.constantFrom('insert' as const, 'burst' as const), user }) },
  { weight: 3, arbitrary: fc.record({ k: fc.constantFrom('delete' as const, 'label' as const), user, pick }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('kill' as const), down: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('hang' as const), on: fc.boolean() }) },
  { weight: 3, arbitrary: fc.record({ k: fc.constant('wait' as const), ms: fc.integer({ min: 0, max: 800 }) }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('hold' as const), task: fc.constantFrom('ONE' as const, 'BOTH' as const), user, pick }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('release' as const), pick }) },
);

/** The steps of a seed. */
export function stepsOf(seed: number, length = 16): Cmd[] {
  const [steps] = fc.sample(fc.array(cmd, { minLength: length, maxLength: length }), { seed, numRuns: 1 });
  return steps ?? [];
}

interface Asked {
  task: string;
  /** Changes to the task's mailboxes when it was asked for. */
  changes: number;
  /** Hold and ReleaseHold actions sent before it was asked for; null when one was still open then. */
  holdOps: number | null;
  checked: boolean;
}

class Run {
  readonly asked = new Map<string, Asked>();
  readonly tokens: string[] = [];
  readonly changes = new Map<string, number>(USERS.map((u) => [u, 0]));
  readonly histories = new Map<string, bigint>();
  readonly deliveries: Promise<unknown>[] = [];
  workerDown = false;
  inserted = 0;
  hangRate = 0;
  /** Held documents, by task and address: message ids, as the ended Hold and ReleaseHold actions left them. */
  readonly held = new Map<string, Set<string>>();
  /** Hold and ReleaseHold actions not yet seen ended. */
  readonly holdsOpen = new Map<string, { release: boolean; doc: string }>();
  readonly holdTokens: string[] = [];
  holdOps = 0;
  checksWithHolds = 0;

  /** The sink check of one task and mailbox, held documents included. */
  async assertSink(task: string, u: string): Promise<void> {
    const held = this.heldOf(task, u);
    await assertSinkWithHolds(this.stack, this.g, task, u, held);
    if (held.size > 0) this.checksWithHolds++;
  }

  constructor(
    readonly stack: TestStack,
    readonly g: gmail_v1.Gmail,
  ) {}

  heldOf(task: string, u: string): Set<string> {
    const key = `${task}/${u}`;
    let set = this.held.get(key);
    if (!set) this.held.set(key, (set = new Set()));
    return set;
  }

  /** Applies the successes of the Hold and ReleaseHold actions that have ended; true when none is open. */
  async settleHolds(): Promise<boolean> {
    for (const [token, op] of [...this.holdsOpen]) {
      const rec = await this.stack.deps.store.get(token);
      if (!rec || !ENDED_STATUSES.has(rec.status)) continue;
      this.holdsOpen.delete(token);
      const r = await this.stack.aci({ action: 'QueueInfo', QueueName: 'fetch', QueueAction: 'GetStatus', Token: token, MaxResults: '1000' });
      const action = ((((r.json as Json).autnresponse as Json).responsedata as Json).actions as { action: Json[] }).action[0] as Json;
      for (const id of (((action.tasks as Json | undefined)?.success as string[] | undefined) ?? [])) {
        const xml = Buffer.from(id, 'base64').toString('utf8');
        const m = /^<id s="([^"]*)" r="([^"]*)\/([0-9a-f]+)"\/>$/.exec(xml);
        assert.ok(m, xml);
        const set = this.heldOf(m[1] as string, m[2] as string);
        if (op.release) set.delete(m[3] as string);
        else set.add(m[3] as string);
      }
    }
    return this.holdsOpen.size === 0;
  }

  /** Sends a Hold or ReleaseHold of one document, unless one is open for it (their order would be unknown). */
  async holdAction(fetchAction: 'Hold' | 'ReleaseHold', task: string, u: string, messageId: string): Promise<void> {
    if ([...this.holdsOpen.values()].some((o) => o.doc === `${task}/${u}/${messageId}`)) return;
    const r = await this.stack.aci({ action: 'Fetch', FetchAction: fetchAction, Identifiers: encodeIdentifier({ task, address: u, messageId }) });
    assert.equal(r.status, 200, r.text);
    const token = (((r.json as Json).autnresponse as Json).responsedata as Json).token as string;
    this.holdsOpen.set(token, { release: fetchAction === 'ReleaseHold', doc: `${task}/${u}/${messageId}` });
    this.holdTokens.push(token);
    this.holdOps++;
  }

  changesOf(task: string): number {
    return (TASKS[task] ?? []).reduce((n, u) => n + (this.changes.get(u) ?? 0), 0);
  }

  token(pickN: number): string | undefined {
    return this.tokens.length ? this.tokens[pickN % this.tokens.length] : undefined;
  }

  async queue(action: string): Promise<void> {
    const r = await this.stack.aci({ action: 'QueueInfo', QueueName: 'fetch', QueueAction: action });
    assert.equal(r.status, 200, r.text);
  }

  async openUnit(pickN: number): Promise<UnitRecord | undefined> {
    const open: UnitRecord[] = [];
    for (const t of this.tokens) open.push(...(await this.stack.deps.units.open(t)));
    return open.length ? open[pickN % open.length] : undefined;
  }

  async someMessage(u: string, pickN: number): Promise<string | undefined> {
    const ids = (await this.g.users.messages.list({ userId: u, maxResults: 100 })).data.messages ?? [];
    return ids.length ? (ids[pickN % ids.length]?.id ?? undefined) : undefined;
  }

  /** Runs the test's own Gmail calls with Gmail answering every call (the worker's calls meanwhile too). */
  async unhung<T>(f: () => Promise<T>): Promise<T> {
    this.stack.gmail.setHangRate(0);
    try {
      return await f();
    } finally {
      this.stack.gmail.setHangRate(this.hangRate);
    }
  }

  changed(u: string): void {
    this.changes.set(u, (this.changes.get(u) ?? 0) + 1);
  }

  async step(c: Cmd): Promise<void> {
    if (['insert', 'burst', 'delete', 'label'].includes(c.k)) return this.unhung(() => this.play(c));
    return this.play(c);
  }

  private async play(c: Cmd): Promise<void> {
    const s = this.stack;
    switch (c.k) {
      case 'sync': {
        const token = await s.synchronize(c.task, c.schedule ? { Schedule: 'true' } : {});
        if (!this.asked.has(token)) {
          const settled = await this.settleHolds();
          this.asked.set(token, { task: c.task, changes: this.changesOf(c.task), holdOps: settled ? this.holdOps : null, checked: false });
          this.tokens.push(token);
        }
        return;
      }
      case 'stop':
      case 'cancel': {
        const token = this.token(c.pick);
        if (!token) return;
        const r = await s.aci({ action: 'QueueInfo', QueueName: 'fetch', QueueAction: c.k === 'stop' ? 'Stop' : 'Cancel', Token: token });
        assert.ok([200, 409].includes(r.status), `${c.k}: ${r.status} ${r.text}`);
        return;
      }
      case 'drop': {
        const u = await this.openUnit(c.pick);
        if (u) await s.deps.queue.remove(u.taskId);
        return;
      }
      case 'duplicate': {
        const u = await this.openUnit(c.pick);
        if (!u || this.workerDown) return;
        const token = this.tokens.find((t) => u.taskId.startsWith(`${t}-`));
        if (!token) return;
        const oidc = await s.tasks.mintOidcToken(`tasks-invoker@${s.project}.iam.gserviceaccount.com`, s.workerUrl);
        const body = JSON.stringify({ token, unit: `${u.task}:${u.user}`, generation: c.stale ? 0 : u.generation });
        // A delivery the queue did not make: it runs beside the queue's own, as a duplicate would.
        this.deliveries.push(
          fetch(s.workerUrl, { method: 'POST', headers: { authorization: `Bearer ${oidc}`, 'content-type': 'application/json' }, body, signal: AbortSignal.timeout(60_000) })
            .then((r) => r.text())
            .catch(() => undefined),
        );
        return;
      }
      case 'pause':
        return this.queue('Pause');
      case 'resume':
        return this.queue('Resume');
      case 'insert': {
        const u = USERS[c.user] as string;
        this.inserted++;
        await this.g.users.messages.insert({ userId: u, requestBody: { raw: rawMessage(u, `<model-${this.inserted}-${Date.now()}@x>`, 'inserted'), labelIds: ['INBOX'] } });
        this.changed(u);
        return;
      }
      case 'burst': {
        // More changes than Gmail keeps history for: the next incremental run falls back to a full one.
        const u = USERS[c.user] as string;
        for (let i = 0; i <= 2 * HISTORY_RETENTION; i++) {
          const id = await this.someMessage(u, i * 7);
          if (id) await this.g.users.messages.modify({ userId: u, id, requestBody: { addLabelIds: i % 2 ? ['STARRED'] : ['IMPORTANT'], removeLabelIds: i % 2 ? ['IMPORTANT'] : ['STARRED'] } });
        }
        this.changed(u);
        return;
      }
      case 'delete':
      case 'label': {
        const u = USERS[c.user] as string;
        const id = await this.someMessage(u, c.pick);
        if (!id) return;
        if (c.k === 'delete') await this.g.users.messages.delete({ userId: u, id });
        else await this.g.users.messages.modify({ userId: u, id, requestBody: c.pick % 2 ? { addLabelIds: ['STARRED'] } : { removeLabelIds: ['INBOX'] } });
        this.changed(u);
        return;
      }
      case 'kill': {
        if (this.workerDown) {
          await s.worker.start();
          this.workerDown = false;
          return;
        }
        await s.worker.kill();
        // Left down, the holders' leases expire before a new worker comes.
        if (c.down) this.workerDown = true;
        else await s.worker.start();
        return;
      }
      case 'hold': {
        const u = (TASKS[c.task] ?? [])[c.user % (TASKS[c.task] ?? []).length] as string;
        const docs = [...(await s.sink(c.task, u)).values()].map((d) => d.messageId as string).sort();
        const id = docs[c.pick % Math.max(1, docs.length)];
        if (id) await this.holdAction('Hold', c.task, u, id);
        return;
      }
      case 'release': {
        const all = [...this.held].flatMap(([key, ids]) => [...ids].map((id) => [key, id] as const)).sort();
        const one = all[c.pick % Math.max(1, all.length)];
        if (!one) return;
        const [task, u] = one[0].split('/') as [string, string];
        await this.holdAction('ReleaseHold', task, u, one[1]);
        return;
      }
      case 'hang':
        this.hangRate = c.on ? 0.15 : 0;
        s.gmail.setHangRate(this.hangRate);
        return;
      case 'wait':
        await new Promise((r) => setTimeout(r, c.ms));
        return;
      default: {
        const never: never = c;
        throw new Error(`unknown step ${JSON.stringify(never)}`);
      }
    }
  }

  /** The checks that hold after every step. */
  check(): Promise<void> {
    return this.unhung(() => this.checkNow());
  }

  private async checkNow(): Promise<void> {
    const s = this.stack;
    for (const task of Object.keys(TASKS)) {
      for (const u of TASKS[task] ?? []) {
        const h = (await s.db.doc(`state/${task}/mailboxes/${u}`).get()).get('historyId') as string | undefined;
        if (h === undefined) continue;
        const key = `${task}/${u}`;
        const before = this.histories.get(key);
        assert.ok(before === undefined || BigInt(h) >= before, `${key}: history id went back from ${before} to ${h}`);
        this.histories.set(key, BigInt(h));
      }
    }
    for (const [token, a] of this.asked) {
      if (a.checked) continue;
      const rec = await s.deps.store.get(token);
      if (!rec || !ENDED_STATUSES.has(rec.status)) continue;
      a.checked = true;
      if (rec.status !== 'Finished' || this.changesOf(a.task) !== a.changes) continue;
      // Holds taken or released while the run worked make its outcome depend on their order.
      if (a.holdOps === null || a.holdOps !== this.holdOps) continue;
      for (const u of TASKS[a.task] ?? []) await this.assertSink(a.task, u);
    }
  }

  /** Lets everything end: Gmail answers again, the queue runs, reconcile repairs. */
  async drain(): Promise<ActionRecord[]> {
    const s = this.stack;
    this.hangRate = 0;
    s.gmail.setHangRate(0);
    if (this.workerDown) {
      await s.worker.start();
      this.workerDown = false;
    }
    await this.queue('Resume');
    await Promise.all(this.deliveries);
    return until(
      'every action ended',
      async () => {
        await s.reconcile();
        const all = await Promise.all([...this.tokens, ...this.holdTokens].map((t) => s.deps.store.get(t)));
        return all.filter((a): a is ActionRecord => a !== null);
      },
      (all) => all.every((a) => ENDED_STATUSES.has(a.status)),
      120_000,
    );
  }
}

/** Plays one seed on a new stack; throws with the seed and its steps when a check fails. */
/** How much of a seed's checking involved held documents. */
export interface SeedReport {
  /** Sink checks made while at least one of the checked mailboxes' documents was held. */
  checksWithHolds: number;
}

export async function runSeed(seed: number, length = 16): Promise<SeedReport> {
  const steps = stepsOf(seed, length);
  const { dir } = writeMailbox(USERS[0] as string, 60, { prefix: `a${seed}-` });
  writeMailbox(USERS[1] as string, 40, { dir, prefix: `b${seed}-` });
  writeMailbox(UNTOUCHED, 15, { dir, prefix: `c${seed}-` });
  const stack = await startTestStack({
    mailDir: dir,
    workerProcess: true,
    gmail: { historyRetention: HISTORY_RETENTION, latencyMs: 2 },
    env: { WORKER_LEASE_S: '2', WORKER_TIME_BUDGET_S: '2', GMAIL_CALL_TIMEOUT_S: '1', GMAIL_BACKOFF_MS: '10' },
    connector: {
      gmail: { quotaUnitsPerUserPerMinute: 1_000_000 },
      tasks: { ONE: { users: TASKS.ONE }, BOTH: { users: TASKS.BOTH }, STILL: { users: [UNTOUCHED] } },
    },
  });
  const done: string[] = [];
  try {
    const g = testGmail(stack.gmail.url);
    const still = await stack.synchronize('STILL');
    assert.equal((await stack.waitFor(still, [...ENDED_STATUSES])).status, 'Finished');
    const untouched = await stack.sink('STILL', UNTOUCHED);
    const run = new Run(stack, g);
    // Every seed starts with one held document in each task, which its steps may change, delete or release.
    for (const [task, u] of [['ONE', USERS[0]], ['BOTH', USERS[1]]] as const) {
      const t = await stack.synchronize(task);
      assert.equal((await stack.waitFor(t, [...ENDED_STATUSES], 120_000)).status, 'Finished');
      const first = [...(await stack.sink(task, u as string)).values()].map((d) => d.messageId as string).sort()[0];
      if (first) await run.holdAction('Hold', task, u as string, first);
    }
    await until('the first holds ended', () => run.settleHolds(), (ok) => ok, 120_000);
    assert.equal(run.heldOf('ONE', USERS[0] as string).size + run.heldOf('BOTH', USERS[1] as string).size, 2, 'the first holds took');
    for (const c of steps) {
      done.push(JSON.stringify(c));
      await run.step(c);
      await run.check();
    }
    done.push('drain');
    const ended = await run.drain();
    for (const a of ended) {
      for (const u of await stack.units(a.token)) assert.ok(ENDED_STATUSES.has(u.status), `${a.token} ${u.task}/${u.user} is ${u.status}`);
      if (a.status === 'Finished') assert.equal((await stack.units(a.token)).length, a.unitsTotal, `${a.token} finished with every unit`);
      // GetStatus's list reads the totals' shards: once ended, they are the units' sums exactly.
      assert.deepStrictEqual(await stack.deps.store.totals(a.token), totalsOfUnits(await stack.units(a.token)), `${a.token}: totals`);
    }
    await run.check();
    assert.equal(await run.settleHolds(), true, 'every Hold and ReleaseHold ended');
    const finish = async (task: string, what: string): Promise<string> => {
      done.push(`${what} ${task}`);
      const token = await stack.synchronize(task);
      const a = await stack.waitFor(token, [...ENDED_STATUSES], 120_000);
      assert.equal(a.status, 'Finished', a.error ?? '');
      for (const u of TASKS[task] ?? []) await run.assertSink(task, u);
      return token;
    };
    // Whatever the steps left, one run brings each task's sink level with its mailboxes...
    for (const task of Object.keys(TASKS)) await finish(task, 'final');
    // ...and so does a full listing over a full sink, once Gmail has lost the history...
    for (let i = 0; i < USERS.length; i++) await run.step({ k: 'burst', user: i });
    for (const task of Object.keys(TASKS)) await finish(task, 'after lost history');
    // ...after which a run finds nothing to change.
    for (const task of Object.keys(TASKS)) {
      const c = await countsOf(stack, await finish(task, 'again'), task);
      assert.deepEqual([c.added, c.updated, c.deleted, c.errors], [0, 0, 0, 0], `a further run of ${task} changed nothing: ${JSON.stringify(c)}`);
    }
    assert.deepEqual(await stack.sink('STILL', UNTOUCHED), untouched, 'no step touched another task’s documents');
    // Released, every held document is brought level with its mailbox by the next (incremental) run.
    for (const [key, ids] of run.held) {
      const [task, u] = key.split('/') as [string, string];
      for (const id of ids) await run.holdAction('ReleaseHold', task, u, id);
    }
    done.push('release every hold');
    await until('every ReleaseHold ended', () => run.settleHolds(), (ok) => ok, 120_000);
    for (const task of Object.keys(TASKS)) {
      await finish(task, 'after release');
      for (const u of TASKS[task] ?? []) await assertSinkMirrors(stack, g, task, u);
    }
    return { checksWithHolds: run.checksWithHolds };
  } catch (e) {
    const msg = (e as Error).message;
    throw new Error(`seed ${seed} failed at step ${done.length}: ${msg}\nsteps:\n  ${done.join('\n  ')}\nreplay: npm run soak -- --seed ${seed}`, { cause: e });
  } finally {
    await stack.close();
  }
}

/** The title of a seed's test. */
export function seedTitle(seed: number): string {
  return `seed ${seed}: every action ends and every Finished Synchronize leaves the sink equal to the mailbox plus the held documents`;
}

/** The last check of a file of seeds: they met held documents, so that the hold checks are not vacuous. */
export function assertHoldsChecked(seeds: readonly number[], checksWithHolds: number): void {
  assert.ok(checksWithHolds > 0, `no sink check of seeds ${seeds.join(', ')} had a held document`);
}
