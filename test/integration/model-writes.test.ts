/**
 * The model-based test of writes and of an action's whole life (test/support/model-writes.ts)
 * for a fixed set of seeds, so that every run of `npm test` plays the same sequences; `npm run
 * soak -- --model writes` plays new ones.
 */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { runWriteSeed } from '../support/model-writes.js';

const SEEDS = [1, 2, 3];
let interruptions = 0;

for (const seed of SEEDS) {
  it(`seed ${seed}: every action ends, each inserted message is in its mailbox once, nothing changes while writes are off, and the sink is the selection`, async () => {
    interruptions += (await runWriteSeed(seed)).interruptions;
  });
}

it('the seeds above lost tasks (so the re-enqueue count is checked against real losses)', () => {
  assert.ok(interruptions > 0, `no seed of ${SEEDS.join(', ')} dropped a task or restarted the worker`);
});
