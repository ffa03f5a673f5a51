/**
 * `npm run test:firebase [-- FILE...]`: runs the tests under `firebase emulators:exec --only
 * firestore` (firebase-tools 14.27.0, pinned), with the Firestore emulator firebase.json
 * configures. Offline: firebase-tools' emulator jar is a wrapper made here around the emulator
 * jar the project finds (test/firebase/wrapper-jar.ts), put where FIREBASE_EMULATORS_PATH points.
 * Without files it runs `npm test` (the whole suite); with files, node's test runner on them.
 */
import { spawn } from 'node:child_process';
import { resolve } from 'node:path';
import { findFirestoreEmulatorJar } from '../test/emulators/firestore.js';
import { writeWrapperJar } from '../test/firebase/wrapper-jar.js';

const ROOT = resolve(import.meta.dirname, '..');
const files = process.argv.slice(2);
for (const f of files) {
  if (!/^[\w./-]+\.test\.ts$/.test(f)) {
    console.error(`test:firebase: "${f}" is not a test file path (letters, digits, . / _ - only, ending .test.ts)`);
    process.exit(2);
  }
}
const env = { ...process.env };
// Where another emulator is named, firebase's own must be the one the tests use.
delete env.FIRESTORE_EMULATOR_HOST;
const emulators = resolve(ROOT, 'node_modules/.cache/gmail-connector/firebase-emulators');
const jar = writeWrapperJar(emulators, findFirestoreEmulatorJar(env));
console.error(`test:firebase: ${jar} wraps ${findFirestoreEmulatorJar(env)}`);

const inner = files.length
  ? `node --import tsx --test --test-concurrency=2 --test-timeout=300000 --test-reporter=spec ${files.join(' ')}`
  : 'npm test';
const child = spawn(
  resolve(ROOT, 'node_modules/.bin/firebase'),
  ['emulators:exec', '--only', 'firestore', '--project', 'demo-gmail-connector', inner],
  {
    cwd: ROOT,
    stdio: 'inherit',
    env: {
      ...env,
      FIREBASE_EMULATORS_PATH: emulators,
      NODE_ENV: 'production',
      // No update check or usage reporting: the run is offline.
      NO_UPDATE_NOTIFIER: '1',
      FIREBASE_CLI_EXPERIMENTS: env.FIREBASE_CLI_EXPERIMENTS ?? '',
      CI: env.CI ?? 'true',
    },
  },
);
// A stuck run fails after 20 minutes instead of holding CI.
const timer = setTimeout(() => {
  console.error('test:firebase: no end after 20 minutes; stopping firebase');
  child.kill('SIGTERM');
}, 20 * 60_000);
const stop = () => child.kill('SIGTERM');
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
const code: number = await new Promise((res) => child.on('exit', (c, s) => res(c ?? (s ? 1 : 0))));
clearTimeout(timer);
process.exit(code);
