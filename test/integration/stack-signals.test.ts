/**
 * `npm start` stops on a signal and leaves nothing behind: SIGINT or SIGTERM sent to the npm
 * process alone (as a process manager or `kill` sends it), and Ctrl-C (SIGINT to the terminal's
 * whole process group). Each run starts the real stack (Firestore and Pub/Sub emulators included)
 * on free ports, waits for `ready`, sends the signal, and checks that every process of the group
 * has exited and every port of the stack is free again.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { resolve } from 'node:path';
import { test } from 'node:test';
import { STACK_PORT_VARIABLES, portFree, portsFor } from '../support/ports.js';

const ROOT = resolve(import.meta.dirname, '../..');
const PORTS = STACK_PORT_VARIABLES;

/** Whether any process of the group `pgid` is still running. */
function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

for (const [how, signal, group] of [
  ['SIGINT to the npm process', 'SIGINT', false],
  ['SIGTERM to the npm process', 'SIGTERM', false],
  ['Ctrl-C (SIGINT to the process group)', 'SIGINT', true],
] as const) {
  test(`npm start: ${how} stops the stack, with nothing left running or listening`, { timeout: 300_000 }, async () => {
    const ports = await portsFor(PORTS);
    const env: NodeJS.ProcessEnv = { ...process.env, ...ports, RECONCILE_INTERVAL_S: '0' };
    delete env['FIRESTORE_EMULATOR_HOST'];
    delete env['PUBSUB_EMULATOR_HOST'];
    // Its own process group, as a terminal gives a command line.
    const npm = spawn('npm', ['start'], { cwd: ROOT, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    const pgid = npm.pid as number;
    let out = '';
    let err = '';
    npm.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const exited = new Promise<number | null>((res) => npm.on('exit', (code) => res(code)));
    try {
      await new Promise<void>((res, rej) => {
        npm.stdout.on('data', (d: Buffer) => {
          out += d.toString();
          if (/^ready: /m.test(out)) res();
        });
        void exited.then((code) => rej(new Error(`npm start exited (${code}) before ready:\n${err}`)));
      });
      if (group) process.kill(-pgid, signal);
      else npm.kill(signal);
      const code = await exited;
      assert.ok(code === 0 || code === null || code === 130 || code === 143, `npm start exited ${code}\n${err}`);
      // Everything the stack started exits before it does; give stray processes no grace.
      assert.equal(groupAlive(pgid), false, 'a process of the stack is still running');
      for (const [variable, port] of Object.entries(ports)) assert.ok(await portFree(Number(port)), `${variable} (${port}) is still bound`);
    } finally {
      if (groupAlive(pgid)) process.kill(-pgid, 'SIGKILL');
    }
  });
}
