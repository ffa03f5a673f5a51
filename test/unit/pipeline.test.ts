/**
 * Fetching ahead while committing (fetch/shared/pipeline.ts): commits stay in order,
 * a batch that did not fully apply commits its prefix and nothing after it, a
 * failed commit ends everything, and nothing of the run goes on once it has
 * returned. Random runs (fast-check) against the plain rule: what is committed
 * is a prefix of the items, in order, each item once; and, through GmailCaller
 * winding down at a random moment, that no call is sent after it and that the
 * answers to calls sent before it are committed up to the first item without one.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { fetchAhead } from '../../functions/src/fetch/shared/pipeline.js';
import { GmailCaller } from '../../functions/src/gmail/caller.js';
import { QuotaPacer, RunAborted } from '../../functions/src/gmail/pacing.js';

const tick = () => new Promise<void>((r) => setImmediate(r));

interface Scenario {
  items: number;
  batchSize: number;
  firstBatchSize?: number | undefined;
  ahead: number;
  concurrency: number;
  /** The item whose apply gives up (the run must end), if any. */
  abandonAt: number | null;
  /** The commit (by count) that fails, if any. */
  failCommit: number | null;
  /** The item after whose apply the run is told to end, if any. */
  endAfter: number | null;
  /** Per item, how many ticks its apply takes. */
  delays: number[];
}

async function play(s: Scenario) {
  const items = Array.from({ length: s.items }, (_, i) => i);
  const committed: number[] = [];
  const applied: number[] = [];
  let inFlight = 0;
  let maxInFlight = 0;
  let commits = 0;
  let returned = false;
  let afterReturn = 0;
  let end = false;
  const run = fetchAhead<number, number>({
    items,
    batchSize: s.batchSize,
    firstBatchSize: s.firstBatchSize,
    ahead: s.ahead,
    concurrency: () => s.concurrency,
    shouldEnd: () => end,
    prepare: async (batch) => {
      await tick();
      return async (item, k) => {
        assert.equal(batch[k], item);
        if (returned) afterReturn++;
        inFlight++;
        maxInFlight = Math.max(maxInFlight, inFlight);
        for (let t = 0; t < (s.delays[item] ?? 0); t++) await tick();
        inFlight--;
        if (item === s.abandonAt) return undefined;
        applied.push(item);
        if (item === s.endAfter) end = true;
        return item;
      };
    },
    commit: async (batch, ready) => {
      if (returned) afterReturn++;
      assert.ok(ready.length > 0 && ready.length <= batch.length);
      assert.deepEqual(ready, batch.slice(0, ready.length), 'a commit holds its batch prefix, in order');
      await tick();
      if (++commits === s.failCommit) throw new Error('lease lost');
      committed.push(...ready);
    },
  });
  let outcome: boolean | Error;
  try {
    outcome = await run;
  } catch (e) {
    outcome = e as Error;
  }
  returned = true;
  for (let t = 0; t < 50; t++) await tick();
  return { outcome, committed, applied, maxInFlight, afterReturn };
}

describe('fetchAhead', () => {
  it('fetches the next batches while one commits, and commits them in order', async () => {
    const events: string[] = [];
    let release: () => void = () => {};
    const gate = new Promise<void>((r) => (release = r));
    const run = fetchAhead<number, number>({
      items: [0, 1, 2, 3, 4, 5],
      batchSize: 2,
      ahead: 1,
      concurrency: () => 4,
      shouldEnd: () => false,
      prepare: async () => async (item) => {
        events.push(`apply ${item}`);
        return item;
      },
      commit: async (batch) => {
        events.push(`commit ${batch.join(',')}`);
        if (batch[0] === 0) await gate;
      },
    });
    for (let t = 0; t < 20; t++) await tick();
    // Batch 0 is committing (held at the gate): batches 1 and 2 were fetched meanwhile, 2 before 0's commit ended.
    assert.ok(events.includes('apply 4'), events.join('; '));
    assert.deepEqual(events.filter((e) => e.startsWith('commit')), ['commit 0,1']);
    release();
    assert.equal(await run, true);
    assert.deepEqual(events.filter((e) => e.startsWith('commit')), ['commit 0,1', 'commit 2,3', 'commit 4,5']);
  });

  it('an abandoned item: its batch commits the prefix before it, nothing after it is committed, and it answers false', async () => {
    const r = await play({ items: 20, batchSize: 5, ahead: 2, concurrency: 3, abandonAt: 7, failCommit: null, endAfter: null, delays: [] });
    assert.equal(r.outcome, false);
    assert.deepEqual(r.committed, [0, 1, 2, 3, 4, 5, 6]);
    assert.equal(r.afterReturn, 0);
  });

  it('a failed commit (a lost lease) ends it with that error; nothing is committed or applied after', async () => {
    const r = await play({ items: 20, batchSize: 5, ahead: 2, concurrency: 3, abandonAt: null, failCommit: 2, endAfter: null, delays: [] });
    assert.ok(r.outcome instanceof Error && r.outcome.message === 'lease lost');
    assert.deepEqual(r.committed, [0, 1, 2, 3, 4]);
    assert.equal(r.afterReturn, 0);
  });

  it('random runs: what is committed is a prefix of the items, each once, in order; nothing runs after it returns', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          items: fc.integer({ min: 0, max: 40 }),
          batchSize: fc.integer({ min: 1, max: 8 }),
          firstBatchSize: fc.option(fc.integer({ min: 1, max: 8 }), { nil: undefined }),
          ahead: fc.integer({ min: 0, max: 3 }),
          concurrency: fc.integer({ min: 1, max: 6 }),
          abandonAt: fc.option(fc.integer({ min: 0, max: 40 })),
          failCommit: fc.option(fc.integer({ min: 1, max: 10 })),
          endAfter: fc.option(fc.integer({ min: 0, max: 40 })),
          delays: fc.array(fc.integer({ min: 0, max: 5 }), { maxLength: 40 }),
        }),
        async (s) => {
          const r = await play(s);
          assert.deepEqual(r.committed, Array.from({ length: r.committed.length }, (_, i) => i), 'a prefix, in order, each once');
          assert.ok(r.maxInFlight <= s.concurrency, `at most ${s.concurrency} at once, saw ${r.maxInFlight}`);
          assert.equal(r.afterReturn, 0, 'nothing applied or committed after it returned');
          const failed = r.outcome instanceof Error;
          if (r.outcome === true) assert.equal(r.committed.length, s.items, 'true only when every item was committed');
          if (s.abandonAt !== null && s.abandonAt < s.items && !failed) {
            assert.ok(r.committed.length <= s.abandonAt, 'nothing at or after an abandoned item is committed');
          }
          if (!failed && r.outcome === false && (s.abandonAt === null || s.abandonAt >= s.items) && (s.endAfter === null || s.endAfter >= s.items)) {
            assert.fail('false without a reason to end');
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it('random runs winding down through GmailCaller: no call is sent after, and what was sent before is committed up to the first item without an answer', async () => {
    const backendError = () => Object.assign(new Error('backend error'), { response: { status: 503, headers: {}, data: {} } });
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          items: fc.integer({ min: 1, max: 40 }),
          batchSize: fc.integer({ min: 1, max: 8 }),
          ahead: fc.integer({ min: 0, max: 3 }),
          concurrency: fc.integer({ min: 1, max: 6 }),
          /** Ticks before the run winds down (the time budget). */
          windDownAt: fc.integer({ min: 0, max: 80 }),
          /** Per item, the ticks its answer takes. */
          delays: fc.array(fc.integer({ min: 0, max: 6 }), { maxLength: 40 }),
          /** Per item, whether its first attempt fails (and is retried, unless the run winds down first). */
          failsOnce: fc.array(fc.boolean(), { maxLength: 40 }),
        }),
        async (s) => {
          const ending = new AbortController();
          const caller = new GmailCaller({ pacer: new QuotaPacer(0), ending: ending.signal, baseBackoffMs: 1, maxBackoffMs: 2 });
          const items = Array.from({ length: s.items }, (_, i) => i);
          const attempts = new Map<number, number>();
          const answered = new Set<number>();
          const committed: number[] = [];
          let sentAfter = 0;
          let over = false;
          const budget = (async () => {
            for (let t = 0; t < s.windDownAt && !over; t++) await tick();
            ending.abort();
          })();
          const outcome = await fetchAhead<number, number>({
            items,
            batchSize: s.batchSize,
            ahead: s.ahead,
            concurrency: () => s.concurrency,
            shouldEnd: () => ending.signal.aborted,
            prepare: async () => async (item) => {
              try {
                return await caller.call('messages.get', `get ${item}`, async () => {
                  if (ending.signal.aborted) sentAfter++;
                  const n = (attempts.get(item) ?? 0) + 1;
                  attempts.set(item, n);
                  for (let t = 0; t < (s.delays[item] ?? 0); t++) await tick();
                  if (n === 1 && s.failsOnce[item]) throw backendError();
                  answered.add(item);
                  return item;
                });
              } catch (e) {
                if (e instanceof RunAborted) return undefined;
                throw e;
              }
            },
            commit: async (_batch, ready) => {
              await tick();
              committed.push(...ready);
            },
          });
          over = true;
          await budget;
          assert.equal(sentAfter, 0, 'no call is sent once the run winds down');
          // Every answer to a call sent before the wind-down counts, up to the first item without one.
          let k = 0;
          while (k < s.items && answered.has(k)) k++;
          assert.deepEqual(committed, items.slice(0, k), 'the answered prefix, in order, each once');
          assert.equal(outcome, k === s.items);
          for (const [item, n] of attempts) assert.ok(n <= (s.failsOnce[item] ? 2 : 1), `item ${item} sent ${n} times`);
        },
      ),
      { numRuns: 300 },
    );
  });
});
