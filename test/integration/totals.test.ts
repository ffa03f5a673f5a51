/**
 * Per-action totals (store/totals.ts) against the real stack: after random runs in which
 * mailboxes finish, fail, are stopped, are delivered twice and lose their worker, the totals
 * GetStatus's list reads from the shards equal, exactly, the sums over the units; and the list's
 * element of the action is the element GetStatus with its token renders from the units.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { createTasksClient } from '../../functions/src/queue/client.js';
import { ENDED_STATUSES, type Status } from '../../functions/src/store/model.js';
import { TOTAL_SHARDS, totalsOfUnits } from '../../functions/src/store/totals.js';
import { until } from '../support/checks.js';
import { writeMailbox } from '../support/mail.js';
import { startTestStack, type TestStack } from '../support/stack.js';

const A = 'ta@example.com';
const B = 'tb@example.com';
const C = 'tc@example.com';
const D = 'td@example.com';
/** An address without a mailbox: its unit ends `Error`. */
const NONE = 'tnone@example.com';
const TASKS = { X: [A, B, NONE], Y: [C, D], Z: [A, D] } as const;

type Json = Record<string, unknown>;
const rd = (j: unknown): Json => ((j as Json).autnresponse as Json).responsedata as Json;

let stack: TestStack;
const seen = new Map<Status, number>();

before(async () => {
  const { dir } = writeMailbox(A, 60, { prefix: 'a' });
  writeMailbox(B, 40, { dir, prefix: 'b' });
  writeMailbox(C, 80, { dir, prefix: 'c' });
  writeMailbox(D, 30, { dir, prefix: 'd' });
  stack = await startTestStack({
    mailDir: dir,
    workerProcess: true,
    env: { WORKER_LEASE_S: '2', GMAIL_BACKOFF_MS: '10', GMAIL_CALL_TIMEOUT_S: '2' },
    connector: { gmail: { quotaUnitsPerUserPerMinute: 1_000_000 }, tasks: { X: { users: [...TASKS.X] }, Y: { users: [...TASKS.Y] }, Z: { users: [...TASKS.Z] } } },
  });
});

after(async () => {
  await stack?.close();
});

/** A second delivery of a unit's first task, under a name of its own. */
async function redeliver(token: string, unit: string, n: number): Promise<void> {
  const client = createTasksClient({ emulatorHost: stack.tasks.grpcHost });
  try {
    await client.createTask({
      parent: stack.queuePath,
      task: {
        name: `${stack.queuePath}/tasks/${token}-again${n}`,
        httpRequest: {
          url: stack.workerUrl,
          httpMethod: 'POST',
          headers: { 'Content-Type': 'application/json' },
          body: Buffer.from(JSON.stringify({ token, unit, generation: 0 })).toString('base64'),
          oidcToken: { serviceAccountEmail: stack.deps.config.invokerServiceAccount, audience: stack.workerUrl },
        },
      },
    });
  } finally {
    await client.close();
  }
}

async function getStatus(params: Record<string, string>): Promise<Json> {
  const r = await stack.aci({ action: 'QueueInfo', QueueName: 'fetch', QueueAction: 'GetStatus', ...params });
  assert.equal(r.status, 200, r.text);
  const list = (rd(r.json).actions as Json).action as Json[];
  assert.equal(list.length, 1);
  return list[0] as Json;
}

describe('totals', () => {
  it('once an action has ended, its sharded totals equal the sums over its units, exactly', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          sections: fc.subarray(['X', 'Y', 'Z'] as const, { minLength: 1 }),
          latencyMs: fc.integer({ min: 0, max: 4 }),
          stopAfterMs: fc.option(fc.integer({ min: 0, max: 300 }), { nil: null }),
          again: fc.array(fc.nat(10), { maxLength: 3 }),
          kill: fc.boolean(),
        }),
        async (run) => {
          stack.gmail.setLatency(run.latencyMs);
          let token = '';
          try {
            token = await stack.synchronize(run.sections.join(','));
            const units = await until('the fan-out', () => stack.units(token), (u) => u.length > 0);
            for (const [i, pick] of run.again.entries()) {
              const u = units[pick % units.length];
              if (u) await redeliver(token, `${u.task}:${u.user}`, i);
            }
            if (run.kill) {
              await until('a unit running', () => stack.units(token), (u) => u.some((x) => x.status !== 'Queued'), 30_000);
              await stack.worker.kill();
              await stack.worker.start();
            }
            if (run.stopAfterMs !== null) {
              await new Promise((r) => setTimeout(r, run.stopAfterMs ?? 0));
              const s = await stack.aci({ action: 'QueueInfo', QueueName: 'fetch', QueueAction: 'Stop', Token: token });
              assert.ok(s.status === 200 || s.status === 409, s.text);
            }
          } finally {
            stack.gmail.setLatency(0);
          }
          const a = await until(
            'the action ended',
            async () => {
              await stack.reconcile();
              return stack.deps.store.get(token);
            },
            (x) => x !== null && ENDED_STATUSES.has(x.status),
            120_000,
          );
          const units = await stack.units(token);
          for (const u of units) seen.set(u.status, (seen.get(u.status) ?? 0) + 1);
          const shards = await stack.deps.store.ref(token).collection('totals').get();
          assert.ok(shards.size <= TOTAL_SHARDS);
          assert.deepStrictEqual(await stack.deps.store.totals(token), totalsOfUnits(units), `action ${token} (${a?.status}): ${JSON.stringify(run)}`);
          // An action that ended after running keeps them in its record, as GetStatus's list reads them.
          if (a?.status !== 'Cancelled') assert.deepStrictEqual(a?.totals, totalsOfUnits(units), `the record of ${token} (${a?.status})`);
          // The list (shards) and the token (units) render the same element.
          // Runs are one after another: the newest action is this one.
          const listed = await getStatus({ MaxResults: '1' });
          assert.equal(listed.token, token);
          assert.deepStrictEqual(listed, await getStatus({ Token: token }));
        },
      ),
      { numRuns: 10, seed: 15 },
    );
    // The runs did reach the mix they are meant to.
    assert.ok((seen.get('Finished') ?? 0) > 0 && (seen.get('Error') ?? 0) > 0, JSON.stringify([...seen]));
  });
});
