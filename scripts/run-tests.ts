/**
 * `npm test`: runs the test files with node's test runner. Builds the functions once, starts one
 * Firestore emulator for the whole run (unless FIRESTORE_EMULATOR_HOST names one) and gives its
 * address to every test process; each test file isolates its data by project id. `npm test --
 * unit` runs the unit tests only, `-- integration` the others, `-- quick` the edit loop's set.
 */
import { spawn, spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join, relative } from 'node:path';
import { startFirestoreEmulator } from '../test/emulators/firestore.js';

function find(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    if (statSync(p).isDirectory()) return f === 'fixtures' ? [] : find(p);
    return f.endsWith('.test.ts') ? [p] : [];
  });
}

/**
 * `npm run test:quick`, for the edit loop: the unit tests, the documentation checks that need no
 * server, and the integration files that take seconds each. Under 90 s on a quiet 2-core machine.
 */
const QUICK = [
  'test/docs/contract.test.ts',
  'test/docs/house.test.ts',
  'test/integration/parameters.test.ts',
  'test/integration/view.test.ts',
  'test/integration/identifiers.test.ts',
  'test/integration/queue-transport.test.ts',
  'test/integration/scheduler-oidc.test.ts',
  'test/integration/delegation-tokens.test.ts',
  'test/integration/retention.test.ts',
];

/**
 * The files that take longest, started first: the runner starts files in the order it is given
 * them, and a long file started last would run alone at the end. The list is the head of the
 * report `npm test` ends with; a file missing from it only starts later.
 */
const SLOW_FIRST = [
  'test/integration/model.test.ts',
  'test/integration/model-seeds-4-6.test.ts',
  'test/integration/model-writes.test.ts',
  'test/integration/drills.test.ts',
  'test/integration/cli.test.ts',
  'test/docs/examples.test.ts',
  'test/integration/collect.test.ts',
  'test/integration/selection.test.ts',
  'test/integration/stack-signals.test.ts',
  'test/integration/stack-ports.test.ts',
];
const which = process.argv[2] ?? 'all';
const all = find('test').map((f) => relative('.', f)).sort();
const missing = [...QUICK, ...SLOW_FIRST].filter((f) => !all.includes(f));
if (missing.length) {
  console.error(`scripts/run-tests.ts names test files that are not there: ${missing.join(', ')}`);
  process.exit(1);
}
const chosen: Record<string, (f: string) => boolean> = {
  all: () => true,
  unit: (f) => f.startsWith('test/unit/'),
  integration: (f) => !f.startsWith('test/unit/'),
  quick: (f) => f.startsWith('test/unit/') || QUICK.includes(f),
};
const choose = chosen[which];
if (!choose) {
  console.error(`npm test takes ${Object.keys(chosen).join(', ')} (or nothing: all), not "${which}"`);
  process.exit(2);
}
const rank = (f: string) => (SLOW_FIRST.includes(f) ? SLOW_FIRST.indexOf(f) : SLOW_FIRST.length);
const files = all.filter(choose).sort((a, b) => rank(a) - rank(b));
if (files.length === 0) {
  console.error(`no test files for "${which}"`);
  process.exit(1);
}

// The functions are built once (incrementally, into functions/lib) so that each worker process a
// test starts loads JavaScript instead of compiling the sources again (test/support/stack.ts).
let built = false;
if (which !== 'unit') {
  const tsc = spawnSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'functions/tsconfig.json'], { stdio: 'inherit' });
  if (tsc.status !== 0) {
    console.error('the functions do not build: see the errors above');
    process.exit(1);
  }
  built = true;
}
const firestore = which === 'unit' ? undefined : await startFirestoreEmulator();
// NODE_ENV=production as on Cloud Functions, where Express never answers with a stack trace.
const env = {
  ...process.env,
  NODE_ENV: 'production',
  ...(firestore ? { FIRESTORE_EMULATOR_HOST: firestore.host } : {}),
  ...(built ? { TEST_FUNCTIONS_BUILT: '1' } : {}),
};
// Most test files spend much of their time waiting on their servers, so more files than cores run
// at once; TEST_CONCURRENCY overrides it.
const concurrency = Number(process.env['TEST_CONCURRENCY']) || availableParallelism() * 2;
const child = spawn(
  process.execPath,
  [
    '--import',
    'tsx',
    '--test',
    `--test-concurrency=${concurrency}`,
    // A stuck test fails after 10 minutes instead of holding the run. The limit also bounds each
    // file: the model-based test's six seeds take 2 to 5 minutes with another run beside it.
    '--test-timeout=600000',
    '--test-reporter=spec',
    '--test-reporter-destination=stdout',
    '--test-reporter=./scripts/test-times.mjs',
    '--test-reporter-destination=stdout',
    ...files,
  ],
  { stdio: 'inherit', env },
);
const stop = () => child.kill('SIGTERM');
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
const code: number = await new Promise((res) => child.on('exit', (c, s) => res(c ?? (s ? 1 : 0))));
await firestore?.close();
process.exit(code);
