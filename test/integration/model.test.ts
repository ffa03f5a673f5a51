/**
 * The model-based test of Synchronize (test/support/model.ts), seeds 1 to 3: every run of `npm test`
 * plays the same sequences, seeds 1 to 6 over model.test.ts and model-seeds-4-6.test.ts, which
 * the runner plays side by side. `npm run soak` plays new ones for as long as it is given.
 */
import { it } from 'node:test';
import { assertHoldsChecked, runSeed, seedTitle } from '../support/model.js';

const SEEDS = [1, 2, 3];
let checksWithHolds = 0;

for (const seed of SEEDS) it(seedTitle(seed), async () => void (checksWithHolds += (await runSeed(seed)).checksWithHolds));

it('the seeds above checked sinks while documents were held (so the hold checks are not vacuous)', () => assertHoldsChecked(SEEDS, checksWithHolds));
