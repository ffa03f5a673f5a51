/**
 * `npm start` owns its ports: with any of them taken, before or while it starts, the stack stops
 * before `ready` and names the port and the variable to change, instead of sharing whatever holds
 * the port.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer as createHttpServer } from 'node:http';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { after, test } from 'node:test';
import { startFirestoreEmulator, type FirestoreEmulator } from '../emulators/firestore.js';
import { STACK_PORT_VARIABLES, portFree, portsFor } from '../support/ports.js';

const VARIABLES = STACK_PORT_VARIABLES;

function hold(port: number): Promise<Server> {
  return new Promise((res, rej) => {
    // Reads what connects (the stack's readiness probes), so that it sees them end and can close.
    const s = createServer((socket) => socket.resume().on('error', () => {}));
    s.once('error', rej);
    s.listen(port, '127.0.0.1', () => res(s));
  });
}

for (const taken of VARIABLES) {
  test(`a taken ${taken} stops the stack before ready, naming the port and the variable`, async () => {
    const ports = await portsFor(VARIABLES);
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

/**
 * A port taken while the stack starts, after its check: a stand-in Pub/Sub emulator
 * (PUBSUB_EMULATOR_HOST) takes it when the stack creates its topic, which the stack does before
 * it starts the Gmail emulator (in process) and the functions (child processes), then answers.
 */
let sharedFirestore: Promise<FirestoreEmulator> | undefined;
after(async () => (await sharedFirestore)?.close());

for (const taken of ['GMAIL_EMULATOR_PORT', 'ACI_PORT', 'WORKER_PORT'] as const) {
  test(`${taken} taken while the stack starts: it stops before ready, naming the port and the variable`, { timeout: 180_000 }, async (t) => {
    const firestore = await (sharedFirestore ??= startFirestoreEmulator());
    const ports = await portsFor(VARIABLES.filter((v) => v !== 'FIRESTORE_EMULATOR_PORT' && v !== 'PUBSUB_EMULATOR_PORT'));
    let blocker: Server | undefined;
    const pubsub = createHttpServer((req, res) => {
      void (async () => {
        // The topic's creation: the moment to take the port.
        if (req.method === 'PUT' && blocker === undefined) blocker = await hold(Number(ports[taken]));
        res.writeHead(200, { 'content-type': req.method === 'GET' ? 'text/plain' : 'application/json' }).end(req.method === 'GET' ? 'Ok\n' : '{}');
      })();
    });
    await new Promise<void>((res) => pubsub.listen(0, '127.0.0.1', res));
    t.after(() => new Promise((res) => pubsub.close(res)));
    t.after(() => new Promise((res) => (blocker ? blocker.close(res) : res(undefined))));
    const address = pubsub.address() as AddressInfo;
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      ...ports,
      RECONCILE_INTERVAL_S: '0',
      FIRESTORE_EMULATOR_HOST: firestore.host,
      PUBSUB_EMULATOR_HOST: `127.0.0.1:${address.port}`,
    };
    const child = spawn(process.execPath, ['--import', 'tsx', 'scripts/stack.ts'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const code = await new Promise<number | null>((res) => child.on('exit', (c) => res(c)));
    assert.ok(blocker, 'the stack never created its topic');
    assert.equal(code, 2, err);
    assert.doesNotMatch(out, /ready/);
    assert.match(err, new RegExp(`port ${ports[taken]} \\(${taken}\\) is already in use: stop what holds it, or set ${taken} to another port \\(0 picks a free one\\)`));
    assert.doesNotMatch(err, /EADDRINUSE/);
    // The worker is restarted when it dies, but not for a taken port.
    assert.doesNotMatch(err, /worker exited/);
    // Nothing of the stack is left listening.
    for (const [variable, port] of Object.entries(ports)) if (variable !== taken) assert.ok(await portFree(Number(port)), `${variable} is still bound`);
  });
}
