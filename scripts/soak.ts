/**
 * `npm run soak -- --minutes N`: plays new seeds of the model-based test
 * (test/support/model.ts) until N minutes have passed, and stops at the first
 * that fails, printing its steps. `npm run soak -- --seed S` replays one seed.
 * Starts its own Firestore emulator unless FIRESTORE_EMULATOR_HOST names one.
 */
import { parseArgs } from 'node:util';
import { startFirestoreEmulator } from '../test/emulators/firestore.js';
import { runSeed } from '../test/support/model.js';

const { values } = parseArgs({
  options: { minutes: { type: 'string', default: '5' }, seed: { type: 'string' }, steps: { type: 'string', default: '16' } },
});
const minutes = Number(values.minutes);
const steps = Number(values.steps);
if (!(minutes > 0) || !Number.isInteger(steps) || steps < 1) {
  console.error('usage: npm run soak -- [--minutes N] [--seed S] [--steps K]');
  process.exit(2);
}
const firestore = await startFirestoreEmulator();
process.env.FIRESTORE_EMULATOR_HOST ??= firestore.host;
let code = 0;
let runs = 0;
const started = Date.now();
try {
  if (values.seed !== undefined) {
    await runSeed(Number(values.seed), steps);
    runs = 1;
  } else {
    let seed = Math.floor(Math.random() * 2 ** 31);
    while (Date.now() - started < minutes * 60_000) {
      const t = Date.now();
      await runSeed(seed, steps);
      runs++;
      console.log(`seed ${seed}: passed in ${((Date.now() - t) / 1000).toFixed(1)} s`);
      seed = (seed + 1) % 2 ** 31;
    }
  }
  console.log(`soak: ${runs} seeds passed in ${((Date.now() - started) / 60_000).toFixed(1)} minutes`);
} catch (e) {
  console.error((e as Error).message);
  code = 1;
} finally {
  await firestore.close();
}
process.exit(code);
