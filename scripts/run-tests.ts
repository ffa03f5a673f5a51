/**
 * `npm test`: runs the test files with node's test runner. Starts one Firestore
 * emulator for the whole run (unless FIRESTORE_EMULATOR_HOST names one) and
 * gives its address to every test process; each test file isolates its data
 * by project id. `npm test -- unit` runs the unit tests only.
 */
import { spawn } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { startFirestoreEmulator } from '../test/emulators/firestore.js';

function find(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    if (statSync(p).isDirectory()) return f === 'fixtures' ? [] : find(p);
    return f.endsWith('.test.ts') ? [p] : [];
  });
}

const which = process.argv[2] ?? 'all';
const all = find('test').map((f) => relative('.', f)).sort();
const files = all.filter((f) => (which === 'unit' ? f.startsWith('test/unit/') : which === 'integration' ? !f.startsWith('test/unit/') : true));
if (files.length === 0) {
  console.error(`no test files for "${which}"`);
  process.exit(1);
}

const firestore = which === 'unit' ? undefined : await startFirestoreEmulator();
// NODE_ENV=production as on Cloud Functions, where Express never answers with a stack trace.
const env = { ...process.env, NODE_ENV: 'production', ...(firestore ? { FIRESTORE_EMULATOR_HOST: firestore.host } : {}) };
const child = spawn(
  process.execPath,
  [
    '--import',
    'tsx',
    '--test',
    '--test-concurrency=2',
    // A stuck test fails after 10 minutes instead of holding the run. The limit also bounds each
    // file: the model-based test's six seeds take 2 to 5 minutes with another run beside it.
    '--test-timeout=600000',
    '--test-reporter=spec',
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
