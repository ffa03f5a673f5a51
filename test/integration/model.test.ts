/**
 * The model-based test (test/support/model.ts) for a fixed set of seeds, so
 * that every run of `npm test` plays the same sequences; `npm run soak` plays
 * new ones for as long as it is given.
 */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { runSeed } from '../support/model.js';

const SEEDS = [1, 2, 3, 4, 5, 6];
let checksWithHolds = 0;

for (const seed of SEEDS) {
  it(`seed ${seed}: every action ends and every Finished Synchronize leaves the sink equal to the mailbox plus the held documents`, async () => {
    checksWithHolds += (await runSeed(seed)).checksWithHolds;
  });
}

it('the seeds above checked sinks while documents were held (so the hold checks are not vacuous)', () => {
  assert.ok(checksWithHolds > 0, `no sink check of seeds ${SEEDS.join(', ')} had a held document`);
});
