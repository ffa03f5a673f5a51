/**
 * `npm start` owns its ports: with any of them taken, the stack stops before `ready` and names
 * the port and the variable to change, instead of sharing whatever holds the port.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer, type Server } from 'node:net';
import { test } from 'node:test';
import { freePort } from '../emulators/firestore.js';

const VARIABLES = [
  'FIRESTORE_EMULATOR_PORT',
  'CLOUD_TASKS_EMULATOR_PORT',
  'CLOUD_TASKS_EMULATOR_GRPC_PORT',
  'GMAIL_EMULATOR_PORT',
  'STORAGE_EMULATOR_PORT',
  'AUTH_EMULATOR_PORT',
  'ACI_PORT',
  'WORKER_PORT',
  'NOTIFY_PORT',
  'PUBSUB_EMULATOR_PORT',
];

function hold(port: number): Promise<Server> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(port, '127.0.0.1', () => res(s));
  });
}

for (const taken of VARIABLES) {
  test(`a taken ${taken} stops the stack before ready, naming the port and the variable`, async () => {
    const ports = Object.fromEntries(await Promise.all(VARIABLES.map(async (v) => [v, String(await freePort())] as const)));
    const blocker = await hold(Number(ports[taken]));
    try {
      const env: NodeJS.ProcessEnv = { ...process.env, ...ports, RECONCILE_INTERVAL_S: '0' };
      delete env['FIRESTORE_EMULATOR_HOST'];
      delete env['PUBSUB_EMULATOR_HOST'];
      const child = spawn(process.execPath, ['--import', 'tsx', 'scripts/stack.ts'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr.on('data', (d: Buffer) => (err += d.toString()));
      const code = await new Promise<number | null>((res) => child.on('exit', (c) => res(c)));
      assert.equal(code, 2, err);
      assert.doesNotMatch(out, /ready/);
      assert.match(err, new RegExp(`port ${ports[taken]} \\(${taken}\\) is already in use: stop what holds it, or set ${taken} to another port`));
      if (taken === 'FIRESTORE_EMULATOR_PORT') assert.match(err, /or set FIRESTORE_EMULATOR_HOST to use the emulator already there/);
      if (taken === 'PUBSUB_EMULATOR_PORT') assert.match(err, /or set PUBSUB_EMULATOR_HOST to use the emulator already there/);
    } finally {
      await new Promise((res) => blocker.close(res));
    }
  });
}
