/**
 * Shared-secret mode: Cloud Run lets everyone reach `action`, which therefore checks its callers
 * itself. Clients send the secret; Cloud Scheduler sends no secret but an OIDC token of
 * SCHEDULER_SERVICE_ACCOUNT for ACTION_URL, which `action` verifies (signature, issuer, audience,
 * account). Tokens are minted by the Cloud Tasks emulator exactly like the ones it attaches to
 * deliveries, against its JWKS (OIDC_JWKS_URL), as the worker's tests do.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ConfigError, loadConfig } from '../../functions/src/config.js';
import { startTestStack, type TestStack } from '../support/stack.js';
import { writeMailbox } from '../support/mail.js';

const SECRET = 'a-shared-secret-of-some-length';
const ACTION_URL = 'https://gmail-connector-action-123456789.us-central1.run.app';
const USER = 'sched@example.com';

let stack: TestStack;
let scheduler: string;

before(async () => {
  const { dir } = writeMailbox(USER, 3);
  scheduler = 'gmail-connector-scheduler@oidc-test.iam.gserviceaccount.com';
  stack = await startTestStack({
    mailDir: dir,
    connector: { gmail: { quotaUnitsPerUserPerMinute: 1_000_000 }, tasks: { NIGHTLY: { users: [USER] } } },
    env: { ACTION_SHARED_SECRET: SECRET, ACTION_URL, SCHEDULER_SERVICE_ACCOUNT: scheduler },
  });
});

after(async () => {
  await stack?.close();
});

const version = { action: 'GetVersion' };
const bearer = (token: string): RequestInit => ({ headers: { authorization: `Bearer ${token}` } });

describe('action in shared-secret mode', () => {
  it('refuses a caller with neither the secret nor a token', async () => {
    assert.equal((await stack.aci(version)).status, 401);
  });

  it('admits the secret, and refuses a wrong one', async () => {
    assert.equal((await stack.aci(version, { headers: { 'x-aci-secret': SECRET } })).status, 200);
    assert.equal((await stack.aci(version, { headers: { 'x-aci-secret': `${SECRET}x` } })).status, 401);
  });

  it("admits the scheduler's OIDC token for ACTION_URL, and runs its scheduled Synchronize", async () => {
    const token = await stack.tasks.mintOidcToken(scheduler, ACTION_URL);
    assert.equal((await stack.aci(version, bearer(token))).status, 200);
    const r = await stack.aci({ action: 'Fetch', FetchAction: 'Synchronize', TaskSections: 'NIGHTLY', Schedule: 'true' }, bearer(token));
    assert.equal(r.status, 200, r.text);
    const t = (r.json as { autnresponse: { responsedata: { token: string } } }).autnresponse.responsedata.token;
    assert.equal((await stack.waitFor(t, ['Finished', 'Error', 'Stopped', 'Cancelled'])).status, 'Finished');
  });

  it('refuses a token of another account, for another audience, or not signed by the issuer', async () => {
    const other = await stack.tasks.mintOidcToken('someone@oidc-test.iam.gserviceaccount.com', ACTION_URL);
    assert.equal((await stack.aci(version, bearer(other))).status, 401);
    const elsewhere = await stack.tasks.mintOidcToken(scheduler, 'https://other.example.com');
    assert.equal((await stack.aci(version, bearer(elsewhere))).status, 401);
    const good = await stack.tasks.mintOidcToken(scheduler, ACTION_URL);
    const [head, body] = good.split('.');
    assert.equal((await stack.aci(version, bearer(`${head}.${body}.${'A'.repeat(86)}`))).status, 401);
    assert.equal((await stack.aci(version, bearer(`${head}.${body}.`))).status, 401);
  });

  it('the worker does not accept the scheduler token (another audience and account)', async () => {
    const token = await stack.tasks.mintOidcToken(scheduler, ACTION_URL);
    const r = await fetch(stack.workerUrl, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: '{}' });
    assert.equal(r.status, 401);
  });

  it('a wrong secret is refused even with a valid token', async () => {
    const token = await stack.tasks.mintOidcToken(scheduler, ACTION_URL);
    const r = await stack.aci(version, { headers: { authorization: `Bearer ${token}`, 'x-aci-secret': 'wrong-secret-but-long-enough' } });
    assert.equal(r.status, 401);
  });
});

describe('configuration of the checks', () => {
  const base = {
    GCLOUD_PROJECT: 'p',
    CONNECTOR_CONFIG: JSON.stringify({ tasks: { T: { users: ['a@example.com'] } } }),
    WORKER_URL: 'https://worker.example.com/',
    TASKS_INVOKER_SERVICE_ACCOUNT: 'tasks@p.iam.gserviceaccount.com',
  };

  it('reads ACTION_URL, SCHEDULER_SERVICE_ACCOUNT and the View account', () => {
    const c = loadConfig({
      ...base,
      ACTION_URL,
      SCHEDULER_SERVICE_ACCOUNT: scheduler,
      GMAIL_VIEW_SERVICE_ACCOUNT: 'gmail-connector-view@p.iam.gserviceaccount.com',
      GMAIL_VIEW_CLIENT_ID: '123456789012345678901',
    });
    assert.equal(c.actionUrl, ACTION_URL);
    assert.equal(c.schedulerServiceAccount, scheduler);
    assert.equal(c.viewServiceAccount, 'gmail-connector-view@p.iam.gserviceaccount.com');
    assert.equal(c.viewClientId, '123456789012345678901');
    const none = loadConfig(base);
    assert.equal(none.actionUrl, undefined);
    assert.equal(none.viewServiceAccount, undefined);
  });

  it('refuses malformed values, naming the variable', () => {
    const bad: [Record<string, string>, RegExp][] = [
      [{ ACTION_URL: 'ftp://x' }, /ACTION_URL/],
      [{ SCHEDULER_SERVICE_ACCOUNT: 'nobody' }, /SCHEDULER_SERVICE_ACCOUNT/],
      [{ GMAIL_VIEW_SERVICE_ACCOUNT: 'x' }, /GMAIL_VIEW_SERVICE_ACCOUNT/],
      [{ GMAIL_VIEW_CLIENT_ID: 'abc' }, /GMAIL_VIEW_CLIENT_ID/],
    ];
    for (const [change, message] of bad) {
      assert.throws(() => loadConfig({ ...base, ...change }), (e: unknown) => e instanceof ConfigError && message.test(e.message), JSON.stringify(change));
    }
  });
});
