/**
 * The configuration module: what it reads from the environment, and that every
 * bad value is refused with a message naming the field.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import {
  ConfigError,
  EMULATOR_ENV_VARS,
  OPTIONAL_ENV_VARS,
  PRODUCTION_ENV_VARS,
  loadConfig,
  parseConnectorConfig,
  type Env,
} from '../../functions/src/config.js';

const GOOD = {
  GCLOUD_PROJECT: 'p',
  CONNECTOR_CONFIG: JSON.stringify({ tasks: { T: { users: ['a@example.com'] } } }),
  TASKS_LOCATION: 'europe-west1',
  TASKS_QUEUE: 'fetch',
  WORKER_URL: 'https://worker.example.com/',
  TASKS_INVOKER_SERVICE_ACCOUNT: 'tasks@p.iam.gserviceaccount.com',
  WORKER_TIME_BUDGET_S: '1500',
  GMAIL_DELEGATED_SERVICE_ACCOUNT: 'delegate@p.iam.gserviceaccount.com',
};

describe('loadConfig', () => {
  it('reads exactly the documented variables, and every production one', () => {
    const read = new Set<string>();
    const env = new Proxy({ ...GOOD } as Env, {
      get(target, key) {
        if (typeof key === 'string') read.add(key);
        return target[key as string];
      },
    });
    const c = loadConfig(env);
    assert.equal(c.connector.gmail.quotaUnitsPerUserPerMinute, 6000);
    assert.ok(Object.isFrozen(c) && Object.isFrozen(c.connector.tasks));
    const known = new Set<string>([...PRODUCTION_ENV_VARS, ...OPTIONAL_ENV_VARS, ...EMULATOR_ENV_VARS]);
    for (const k of read) assert.ok(known.has(k), `reads undocumented ${k}`);
    for (const k of PRODUCTION_ENV_VARS) assert.ok(read.has(k), `never reads ${k}`);
  });

  it('no other module of the functions reads process.env', () => {
    const files = (dir: string): string[] =>
      readdirSync(dir).flatMap((f) => (statSync(join(dir, f)).isDirectory() ? files(join(dir, f)) : [join(dir, f)]));
    const readers = files('functions/src').filter((f) => /process\.env[.[),]/.test(readFileSync(f, 'utf8')));
    assert.deepEqual(readers, ['functions/src/index.ts']);
  });

  it('BUILD_COMMIT: the commit GetStatus reports; unset or empty, none', () => {
    assert.equal(loadConfig({ ...GOOD, BUILD_COMMIT: '3fdff56c0a1b' }).buildCommit, '3fdff56c0a1b');
    assert.equal(loadConfig({ ...GOOD, BUILD_COMMIT: '' }).buildCommit, undefined);
    assert.equal(loadConfig(GOOD).buildCommit, undefined);
  });

  const bad: [Partial<Env>, RegExp][] = [
    [{ GCLOUD_PROJECT: '' }, /GCLOUD_PROJECT/],
    [{ WORKER_URL: 'ftp://x' }, /WORKER_URL/],
    [{ WORKER_URL: undefined }, /WORKER_URL/],
    [{ TASKS_INVOKER_SERVICE_ACCOUNT: 'nobody' }, /TASKS_INVOKER_SERVICE_ACCOUNT/],
    [{ WORKER_TIME_BUDGET_S: '1800' }, /WORKER_TIME_BUDGET_S/],
    [{ WORKER_TIME_BUDGET_S: 'soon' }, /WORKER_TIME_BUDGET_S/],
    [{ FIRESTORE_EMULATOR_HOST: 'localhost' }, /FIRESTORE_EMULATOR_HOST/],
    [{ ACTION_SHARED_SECRET: 'short' }, /ACTION_SHARED_SECRET/],
    [{ GMAIL_DELEGATED_SERVICE_ACCOUNT: 'x' }, /GMAIL_DELEGATED_SERVICE_ACCOUNT/],
    [{ BUILD_COMMIT: 'abc 123' }, /BUILD_COMMIT must be a commit id/],
    [{ BUILD_COMMIT: 'x'.repeat(65) }, /BUILD_COMMIT/],
    [{ CONNECTOR_CONFIG: '{nope' }, /not valid JSON/],
    [{ CONNECTOR_CONFIG: '/no/such/file.json' }, /cannot be read/],
    [{ CONNECTOR_CONFIG: '{"tasks":{}}' }, /at least one task/],
    [{ CONNECTOR_CONFIG: '{"tasks":{"T":{}}}' }, /tasks\.T.*users.*domain/],
    [{ CONNECTOR_CONFIG: '{"tasks":{"T":{"users":["not-an-address"]}}}' }, /tasks\.T\.users\.0/],
    [{ CONNECTOR_CONFIG: '{"tasks":{"T":{"domain":"example.com"}}}' }, /tasks\.T\.directoryAdmin/],
    [{ CONNECTOR_CONFIG: '{"tasks":{"T":{"users":["a@b.co"],"schedule":{"cron":"often"}}}}' }, /tasks\.T\.schedule\.cron/],
    [{ CONNECTOR_CONFIG: '{"tasks":{"T":{"users":["a@b.co"],"colour":"red"}}}' }, /tasks\.T.*colour/],
    [{ CONNECTOR_CONFIG: '{"gmail":{"quotaUnitsPerUserPerMinute":-5},"tasks":{"T":{"users":["a@b.co"]}}}' }, /gmail\.quotaUnitsPerUserPerMinute/],
    [{ CONNECTOR_CONFIG: '{"tasks":{"a/b":{"users":["a@b.co"]}}}' }, /tasks\.a\/b|task names/],
    [{ CONNECTOR_CONFIG: '{"tasks":{"T":{"users":["a@b.co"]},"t":{"users":["a@b.co"]}}}' }, /case-insensitive/],
  ];
  for (const [change, message] of bad) {
    it(`refuses ${JSON.stringify(change)}`, () => {
      assert.throws(() => loadConfig({ ...GOOD, ...change }), (e: unknown) => e instanceof ConfigError && message.test(e.message));
    });
  }

  it('the shipped configurations are valid', () => {
    for (const f of readdirSync('config')) parseConnectorConfig(join('config', f));
  });
});

describe('the writes switch', () => {
  it('is off unless a task says "writes": true, and must be a boolean', () => {
    const c = parseConnectorConfig(JSON.stringify({ tasks: { A: { users: ['a@example.com'] }, B: { users: ['b@example.com'], writes: true } } }));
    assert.equal(c.tasks['A']?.writes, false);
    assert.equal(c.tasks['B']?.writes, true);
    assert.throws(() => parseConnectorConfig(JSON.stringify({ tasks: { A: { users: ['a@example.com'], writes: 'yes' } } })), /tasks\.A\.writes/);
  });
});
