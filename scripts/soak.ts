/**
 * `npm run soak -- --minutes N`: plays new seeds of the model-based test
 * (test/support/model.ts) until N minutes have passed, and stops at the first
 * that fails, printing its steps. `npm run soak -- --seed S` replays one seed.
 * Starts its own Firestore emulator unless FIRESTORE_EMULATOR_HOST names one.
 */
import { parseArgs } from 'node:util';
import { startFirestoreEmulator } from '../test/emulators/firestore.js';
import { runSeed, stepsOf } from '../test/support/model.js';
import { runWriteSeed, writeStepsOf } from '../test/support/model-writes.js';

const { values } = parseArgs({
  options: { minutes: { type: 'string', default: '5' }, seed: { type: 'string' }, steps: { type: 'string', default: '16' }, model: { type: 'string', default: 'sync' } },
});
const minutes = Number(values.minutes);
const stepCount = Number(values.steps);
// `sync`: Synchronize, holds and the platform's faults (model.ts); `writes`: the fetch actions that
// change mailboxes and an action's whole life (model-writes.ts).
const MODELS = {
  sync: { run: (seed: number, steps: number) => runSeed(seed, steps), steps: stepsOf },
  writes: { run: (seed: number, steps: number) => runWriteSeed(seed, steps), steps: writeStepsOf },
};
const chosen = values.model === 'writes' || values.model === 'sync' ? MODELS[values.model] : undefined;
if (!(minutes > 0) || !Number.isInteger(stepCount) || stepCount < 1 || !chosen) {
  console.error('usage: npm run soak -- [--model sync|writes] [--minutes N] [--seed S] [--steps K]');
  process.exit(2);
}
const model = chosen;
/** A seed that does not end in 5 minutes fails like one whose check fails. */
async function play(seed: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const stuck = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const steps = model.steps(seed, stepCount).map((c) => JSON.stringify(c));
      reject(new Error(`seed ${seed} did not end within 5 minutes\nsteps:\n  ${steps.join('\n  ')}\nreplay: npm run soak -- --seed ${seed}`));
    }, 5 * 60_000);
  });
  try {
    await Promise.race([model.run(seed, stepCount), stuck]);
  } finally {
    clearTimeout(timer);
  }
}

const firestore = await startFirestoreEmulator();
process.env.FIRESTORE_EMULATOR_HOST ??= firestore.host;
let code = 0;
let runs = 0;
const started = Date.now();
try {
  if (values.seed !== undefined) {
    await play(Number(values.seed));
    runs = 1;
  } else {
    let seed = Math.floor(Math.random() * 2 ** 31);
    while (Date.now() - started < minutes * 60_000) {
      const t = Date.now();
      await play(seed);
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
