/**
 * Scale without hot spots (docs/CONTRACT.md, "Totals" and "Stop"):
 * - a domain of 1,000 mailboxes fans out: from Fetch to the worker's "fanned out" (every unit's
 *   task created), with the units' own tasks dispatched and running meanwhile;
 * - GetStatus of 100 actions over 10,000 units: the documents it reads (counted in the action
 *   function's process, bench/lib/count-reads.mjs) and its latency;
 * - the Firestore reads per minute of one action over 200 mailboxes, counted in both functions'
 *   processes, and what they cost at docs/operations.md's prices.
 * The machine is shared: each figure carries the load average when it was taken.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Timestamp } from '@google-cloud/firestore';
import { COLLECTIONS, unitId, unitKey, unitTaskId, zeroCounts, type ActionRecord, type UnitRecord } from '../functions/src/store/model.js';
import { TOTAL_SHARDS, tallyOf, totalsOfUnits } from '../functions/src/store/totals.js';
import { generatedMail } from './lib/mail.js';
import { below, info, type Benchmark, type Outcome } from './lib/report.js';
import { ROOT, startBenchStack, type BenchStack } from './lib/stack.js';
import { fmt, median, note, poll, round, sleep } from './lib/util.js';

const DOMAIN = 'big.example';
const DOMAIN_MAILBOXES = 1_000;
const STATUS_ACTIONS = 100;
const UNITS_EACH = 100;
const RUN_MAILBOXES = 200;
const RUN_MESSAGES = 50;
const QUOTA = 15_000;
/** docs/operations.md's assumed Firestore price: $0.06 per 100,000 reads. */
const READ_PRICE = 0.06 / 100_000;
const COUNTERS = ['seen', 'added', 'updated', 'unchanged', 'deleted', 'errors'];
const COUNT_READS = join(ROOT, 'bench', 'lib', 'count-reads.mjs');

const load = (): string => loadavg().map((l) => l.toFixed(2)).join(' ');

/** Documents read so far by the processes whose argv includes `target` (see count-reads.mjs). */
async function readsOf(dir: string, target: 'action' | 'worker'): Promise<number> {
  await sleep(400);
  let n = 0;
  for (const f of await readdir(dir)) {
    const c = JSON.parse(await readFile(join(dir, f), 'utf8')) as { argv: string[]; documents: number };
    if (c.argv.includes(target)) n += c.documents;
  }
  return n;
}

/** When the worker logged that `token` fanned out (its log line's time). */
async function fannedOutAt(logFile: string, token: string): Promise<number | undefined> {
  const text = await readFile(logFile, 'utf8').catch(() => '');
  for (const line of text.split('\n')) {
    if (!line.includes('"fanned out"') || !line.includes(token)) continue;
    return Date.parse((JSON.parse(line) as { time: string }).time);
  }
  return undefined;
}

function token(): string {
  return randomBytes(16).toString('base64url');
}

/**
 * 100 actions of 100 units each, with their totals' shards as the units' writes leave them:
 * `Finished` (queued in 2001, their totals in their record as their end wrote them), or
 * `Processing` (queued in 2002, every unit running under a live lease).
 */
async function seedActions(stack: BenchStack, running: boolean): Promise<void> {
  const writer = stack.db.bulkWriter();
  const day = Date.UTC(running ? 2002 : 2001, 0, 1);
  const live = { holder: 'bench', expiresAt: Timestamp.fromMillis(Date.now() + 3_600_000) };
  for (let i = 0; i < STATUS_ACTIONS; i++) {
    const t = token();
    const at = Timestamp.fromMillis(day + i * 60_000);
    const aRef = stack.db.collection(COLLECTIONS.actions).doc(t);
    const units: UnitRecord[] = Array.from({ length: UNITS_EACH }, (_, j) => {
      const user = `u${j}@seed.example`;
      const key = unitKey('SEED', user);
      const counts = zeroCounts(COUNTERS);
      counts['seen'] = 10 + j;
      counts['added'] = 10 + j;
      return {
        task: 'SEED', user, index: j, key, status: running ? 'Processing' : 'Finished', taskId: unitTaskId(t, key, 0), generation: 0, startedAt: at,
        endedAt: running ? null : at, lease: running ? live : null,
        attempts: 1, retries: 0, pages: 1, messages: 10 + j, total: 10 + j, counts, checkpoint: null, error: null, messageErrors: [], delivery: null,
        lastError: null, requeues: 0, note: null,
      };
    });
    for (const u of units) void writer.create(aRef.collection(COLLECTIONS.units).doc(unitId(u.task, u.user)), { ...u, rolled: tallyOf(u) });
    for (let s = 0; s < TOTAL_SHARDS; s++) {
      const t = totalsOfUnits(units.filter((u) => u.index % TOTAL_SHARDS === s));
      void writer.create(aRef.collection(COLLECTIONS.totals).doc(String(s)), { ...t });
    }
    const a: ActionRecord = {
      token: t, fetchAction: 'Synchronize', tasks: ['SEED'], status: running ? 'Processing' : 'Finished', queuedAt: at, startedAt: at,
      endedAt: running ? null : at, stopRequested: false, scheduleKey: 'SEED', attempts: 1, unitsTotal: UNITS_EACH, fanOutGeneration: 0, error: null,
      ...(running ? {} : { totals: totalsOfUnits(units) }),
    };
    void writer.create(aRef, a);
  }
  await writer.close();
}

export const scaleBench: Benchmark = {
  name: 'scale',
  title: 'fan-out of 1,000 mailboxes, GetStatus over 10,000 units, Firestore reads of a 200-mailbox run',
  async run(ctx): Promise<Outcome> {
    const domainUsers = Array.from({ length: DOMAIN_MAILBOXES }, (_, i) => `u${String(i).padStart(4, '0')}@${DOMAIN}`);
    const runUsers = Array.from({ length: RUN_MAILBOXES }, (_, i) => `r${String(i).padStart(3, '0')}@example.com`);
    const mail = await generatedMail([
      ...domainUsers.map((address, i) => ({ address, count: 1, seed: 9000 + i })),
      ...runUsers.map((address, i) => ({ address, count: RUN_MESSAGES, seed: 7000 + i })),
    ]);
    const readsDir = await mkdtemp(join(tmpdir(), 'gmail-connector-reads-'));
    const before = process.env['FIRESTORE_READS_DIR'];
    process.env['FIRESTORE_READS_DIR'] = readsDir;
    try {
      const stack = await startBenchStack({
        name: 'scale',
        firestore: ctx.firestore,
        logDir: ctx.logDir,
        mailDir: mail.dir,
        workerNodeArgs: ['--import', COUNT_READS],
        actionNodeArgs: ['--import', COUNT_READS],
        connector: {
          gmail: { quotaUnitsPerUserPerMinute: QUOTA },
          tasks: { DOMAIN: { domain: DOMAIN, directoryAdmin: `u0000@${DOMAIN}` }, RUN: { users: runUsers, includeSpamTrash: true } },
        },
        gmail: { quotaUnitsPerMinute: QUOTA, quotaBurstSeconds: 1 },
      });
      try {
        // 1. The domain's fan-out.
        note(`scale: a domain of ${DOMAIN_MAILBOXES} mailboxes fans out`);
        const loadFan = load();
        const t0 = Date.now();
        const { token: domainToken } = await stack.synchronize('DOMAIN');
        const workerLog = join(ctx.logDir, `${stack.project}-worker.log`);
        const fannedAt = await poll('the domain fanned out', () => fannedOutAt(workerLog, domainToken), 300_000, 200);
        const fanOutS = (fannedAt - t0) / 1000;
        const units = (await stack.units(domainToken)).length;
        // Its units need not all run: stop it, and let the worker settle before the next figure.
        await stack.aci({ action: 'QueueInfo', QueueName: 'fetch', QueueAction: 'Stop', Token: domainToken });
        await stack.waitFor(domainToken, ['Stopped', 'Finished', 'Error'], 300_000, 500);

        // 2. GetStatus of 100 actions over 10,000 units.
        note(`scale: GetStatus of ${STATUS_ACTIONS} actions over ${STATUS_ACTIONS * UNITS_EACH} units`);
        await seedActions(stack, false);
        await seedActions(stack, true);
        const loadStatus = load();
        const measureStatus = async (from: string, to: string): Promise<{ latencies: number[]; docs: number[] }> => {
          const query = { action: 'QueueInfo', QueueName: 'fetch', QueueAction: 'GetStatus', 'Queued-After': from, 'Queued-Before': to, MaxResults: String(STATUS_ACTIONS) };
          const out = { latencies: [] as number[], docs: [] as number[] };
          for (let i = 0; i < 5; i++) {
            const r0 = await readsOf(readsDir, 'action');
            const r = await stack.aci(query);
            if (r.status !== 200) throw new Error(`GetStatus answered ${r.status}: ${r.text.slice(0, 300)}`);
            const listed = (((r.json as Record<string, Record<string, Record<string, Record<string, unknown>>>>).autnresponse?.responsedata?.actions?.action ?? []) as unknown[]).length;
            if (listed !== STATUS_ACTIONS) throw new Error(`GetStatus listed ${listed} actions, not ${STATUS_ACTIONS}`);
            out.latencies.push(r.ms);
            out.docs.push((await readsOf(readsDir, 'action')) - r0);
          }
          return out;
        };
        const { latencies, docs } = await measureStatus('2001-01-01', '2001-12-31');
        const open = await measureStatus('2002-01-01', '2002-12-31');

        // 3. Reads per minute of one action over 200 mailboxes.
        note(`scale: one action over ${RUN_MAILBOXES} mailboxes of ${RUN_MESSAGES} messages`);
        const loadRun = load();
        const [w0, a0] = [await readsOf(readsDir, 'worker'), await readsOf(readsDir, 'action')];
        const s0 = Date.now();
        const { token: runToken } = await stack.synchronize('RUN');
        const ended = await stack.waitFor(runToken, ['Finished', 'Stopped', 'Error'], 900_000, 500);
        const runS = (Date.now() - s0) / 1000;
        if (ended.status !== 'Finished') throw new Error(`the ${RUN_MAILBOXES}-mailbox run ended ${ended.status}: ${ended.error ?? ''}`);
        const [w1, a1] = [await readsOf(readsDir, 'worker'), await readsOf(readsDir, 'action')];
        const reads = w1 - w0 + (a1 - a0);
        const perMinute = reads / (runS / 60);
        const messages = RUN_MAILBOXES * RUN_MESSAGES;
        // What polling the flag per unit every 400 ms read on top, for comparison.
        const perUnitPolling = RUN_MAILBOXES * (60 / 0.4);

        // The median call: a reconcile pass or a flush of the counter file can fall inside one call.
        const typical = median(docs);
        return {
          rows: [
            below(`${DOMAIN_MAILBOXES}-mailbox domain: Fetch → every unit task created`, fanOutS, 's', 30, 1),
            below(`GetStatus of ${STATUS_ACTIONS} ended actions / ${STATUS_ACTIONS * UNITS_EACH} units: documents read, median`, typical, 'docs', STATUS_ACTIONS, 0, true),
            info(`GetStatus of ${STATUS_ACTIONS} ended actions / ${STATUS_ACTIONS * UNITS_EACH} units: latency, median`, median(latencies), 'ms', 0),
            below(
              `GetStatus of ${STATUS_ACTIONS} running actions / ${STATUS_ACTIONS * UNITS_EACH} units: documents read, median`,
              median(open.docs),
              'docs',
              STATUS_ACTIONS * (1 + TOTAL_SHARDS),
              0,
              true,
            ),
            info(`GetStatus of ${STATUS_ACTIONS} running actions / ${STATUS_ACTIONS * UNITS_EACH} units: latency, median`, median(open.latencies), 'ms', 0),
            info(`${RUN_MAILBOXES}-mailbox run: Firestore reads per minute`, perMinute, 'reads/min', 0, `$${fmt(perMinute * 60 * READ_PRICE, 3)} per hour`),
            info(`${RUN_MAILBOXES}-mailbox run: Firestore reads per message`, reads / messages, 'reads', 2),
          ],
          notes: [
            `fan-out: ${units} units; from the Fetch to the worker's "fanned out" log line (written once every unit's task was created), ` +
              `the units' own tasks being dispatched and run meanwhile; load average ${loadFan}.`,
            `GetStatus: ${STATUS_ACTIONS} actions of ${UNITS_EACH} units each, ended (totals in the record: 1 document each) or running ` +
              `(the action as listed and up to ${TOTAL_SHARDS} shards, which count the units ended, so no count query: at most ${1 + TOTAL_SHARDS} each), whatever the units; ` +
              `documents counted in the action function's process (1 per document, at least 1 per query or count); ` +
              `ended, per call: ${docs.join(', ')} documents, ${latencies.map((l) => fmt(l, 0)).join(', ')} ms; ` +
              `running: ${open.docs.join(', ')} documents, ${open.latencies.map((l) => fmt(l, 0)).join(', ')} ms; ` +
              `reading every unit instead would be ${STATUS_ACTIONS * (1 + UNITS_EACH)}; load average ${loadStatus}.`,
            `${RUN_MAILBOXES}-mailbox run: ${messages} messages in ${fmt(runS, 1)} s, ${reads} documents read by both functions ` +
              `(sink documents read to tell added from unchanged, checkpoints, leases, the stop flag once per process every 0.4 s); ` +
              `polling the flag per unit would add ${fmt(perUnitPolling, 0)} reads/min ($${fmt(perUnitPolling * 60 * READ_PRICE, 2)} per hour); ` +
              `cost at README's $0.06 per 100,000 reads; load average ${loadRun}.`,
          ],
          details: {
            fanOut: { mailboxes: DOMAIN_MAILBOXES, units, seconds: round(fanOutS, 2), load: loadFan },
            getStatus: {
              actions: STATUS_ACTIONS,
              unitsEach: UNITS_EACH,
              ended: { documents: docs, latencyMs: latencies.map((l) => round(l, 1)) },
              running: { documents: open.docs, latencyMs: open.latencies.map((l) => round(l, 1)) },
              load: loadStatus,
            },
            run: { mailboxes: RUN_MAILBOXES, messages, seconds: round(runS, 1), reads, readsPerMinute: round(perMinute, 0), load: loadRun },
          },
        };
      } finally {
        await stack.close();
      }
    } finally {
      if (before === undefined) delete process.env['FIRESTORE_READS_DIR'];
      else process.env['FIRESTORE_READS_DIR'] = before;
      await rm(readsDir, { recursive: true, force: true });
      await mail.remove();
    }
  },
};
