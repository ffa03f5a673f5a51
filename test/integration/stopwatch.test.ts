/**
 * The worker's stop watch (engine/stopwatch.ts) over the Firestore emulator: however many units of
 * an action a process runs, each pass reads each watched action once; a Stop reaches every unit of
 * its action and no other, and a Cancel too; a unit that stopped watching is not told.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { Firestore, Timestamp } from '@google-cloud/firestore';
import { createStopWatch } from '../../functions/src/engine/stopwatch.js';
import { ActionStore } from '../../functions/src/store/actions.js';
import { startFirestoreEmulator, type FirestoreEmulator } from '../emulators/firestore.js';
import { until } from '../support/checks.js';

let emulator: FirestoreEmulator;
let db: Firestore;
let store: ActionStore;
const project = `stopwatch-${randomBytes(4).toString('hex')}`;

before(async () => {
  emulator = await startFirestoreEmulator();
  process.env.FIRESTORE_EMULATOR_HOST = emulator.host;
  db = new Firestore({ projectId: project });
  store = new ActionStore(db);
});

after(async () => {
  await db?.terminate();
  await emulator?.wipe(project).catch(() => {});
  await emulator?.close();
});

async function running(): Promise<string> {
  const token = randomBytes(16).toString('base64url');
  await store.create({ token, fetchAction: 'Synchronize', tasks: ['T'], scheduleKey: null, params: {}, request: [] });
  assert.equal(await store.markStarted(token, Timestamp.now()), 'Processing');
  return token;
}

describe('stop watch', () => {
  it('reads each action once a pass whatever its units, and tells every unit of a stopped or cancelled action only', async () => {
    const [a, b, c] = [await running(), await running(), randomBytes(16).toString('base64url')];
    await store.create({ token: c, fetchAction: 'Synchronize', tasks: ['T'], scheduleKey: null, params: {}, request: [] });
    const passes: string[][] = [];
    const watch = createStopWatch(async (tokens) => {
      passes.push(tokens);
      return store.stopFlags(tokens);
    }, 50);
    const told = new Map<string, number>();
    const tell = (k: string) => () => told.set(k, (told.get(k) ?? 0) + 1);
    const ends = [
      ...Array.from({ length: 6 }, (_, i) => watch.watch(a, tell(`a${i}`))),
      ...Array.from({ length: 3 }, (_, i) => watch.watch(b, tell(`b${i}`))),
      watch.watch(c, tell('c0')),
    ];
    const gone = watch.watch(a, tell('gone'));
    await until('two passes', async () => passes.length, (n) => n >= 2);
    gone();
    assert.equal(told.size, 0);

    assert.equal((await store.requestStop(a)).kind, 'stopping');
    await until('every unit of the stopped action told', async () => told.size, (n) => n >= 6);
    assert.deepEqual([...told.keys()].sort(), ['a0', 'a1', 'a2', 'a3', 'a4', 'a5']);

    // Cancel of a queued action (as the worker's flag reads it) reaches its unit too.
    await store.ref(c).update({ status: 'Cancelled' });
    await until('the cancelled action told', async () => told.get('c0') ?? 0, (n) => n >= 1);
    assert.equal(told.get('b0'), undefined, 'the action nobody stopped was not told');
    for (const [k, n] of told) assert.equal(n, 1, `${k} was told once`);

    // One read per watched action per pass, never one per unit.
    for (const p of passes) {
      assert.equal(new Set(p).size, p.length, `a pass read an action twice: ${p.join(',')}`);
      assert.ok(p.length <= 3, `a pass read ${p.length} actions`);
    }
    for (const end of ends) end();
    const n = passes.length;
    await new Promise((r) => setTimeout(r, 200));
    assert.ok(passes.length <= n + 1, 'no reads once nothing is watched');
  });
});
