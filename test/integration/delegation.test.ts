/**
 * Domain-wide delegation end to end, against the emulators: the worker's runtime identity
 * (the auth emulator's metadata server) signs a claim for the delegated account through IAM
 * Credentials, trades it at the token endpoint for a token of one user and one scope set, and
 * reads Gmail and the Directory with it. Each failure a first deployment meets ends the mailbox
 * `Error` with a message that tells the Workspace admin what to do.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { GMAIL_SCOPES } from '../../functions/src/gmail/client.js';
import type { UnitRecord } from '../../functions/src/store/model.js';
import { until } from '../support/checks.js';
import { writeMailbox } from '../support/mail.js';
import { DELEGATED_SCOPES, startTestStack, type TestStack } from '../support/stack.js';

const DOMAIN = 'dwd.example';
const ADMIN = `admin@${DOMAIN}`;
const TEAM = [`ann@${DOMAIN}`, `bob@${DOMAIN}`];
const RENEW = 'renew@example.com';
const REVOKED = 'revoked@example.com';
const NOSCOPE = 'noscope@example.com';
const GHOST = 'ghost@example.com';
const ENDED = ['Finished', 'Error', 'Stopped', 'Cancelled'];

let stack: TestStack;
const sizes: Record<string, number> = {};

before(async () => {
  const { dir } = writeMailbox(ADMIN, 2, { prefix: 'a' });
  sizes[ADMIN] = 2;
  TEAM.forEach((u, i) => {
    writeMailbox(u, 5 + i, { dir, prefix: `t${i}` });
    sizes[u] = 5 + i;
  });
  writeMailbox(RENEW, 400, { dir, prefix: 'r' });
  for (const u of [REVOKED, NOSCOPE, GHOST]) writeMailbox(u, 3, { dir, prefix: u.slice(0, 2) });
  stack = await startTestStack({
    mailDir: dir,
    env: { GMAIL_BACKOFF_MS: '10' },
    connector: {
      gmail: { quotaUnitsPerUserPerMinute: 1_000_000 },
      tasks: {
        DOMAIN: { domain: DOMAIN, directoryAdmin: ADMIN },
        RENEW: { users: [RENEW] },
        REVOKED: { users: [REVOKED] },
        NOSCOPE: { users: [NOSCOPE] },
        GHOST: { users: [GHOST] },
      },
    },
  });
  // The Workspace domain's users, as the token endpoint knows them: everyone but GHOST.
  for (const u of [ADMIN, ...TEAM, RENEW, REVOKED, NOSCOPE]) stack.auth.addUser(u);
});

after(async () => {
  await stack?.close();
});

function grants(user: string): number {
  return stack.auth.stats().tokenGrants[user] ?? 0;
}

async function onlyUnit(token: string): Promise<UnitRecord> {
  await stack.waitFor(token, ENDED, 120_000);
  const units = await stack.units(token);
  assert.equal(units.length, 1);
  return units[0] as UnitRecord;
}

describe('domain-wide delegation', () => {
  it('a domain Synchronize lists the domain as its admin and reads each mailbox with its own token', async () => {
    const signedBefore = stack.auth.stats().signJwt;
    const token = await stack.synchronize('DOMAIN');
    const action = await stack.waitFor(token, ENDED, 120_000);
    assert.equal(action.status, 'Finished');
    const units = await stack.units(token);
    assert.deepEqual(units.map((u) => u.user).sort(), [ADMIN, ...TEAM].sort());
    for (const u of units) {
      assert.equal(u.status, 'Finished', `${u.user}: ${u.error ?? ''}`);
      assert.equal((await stack.sink('DOMAIN', u.user)).size, sizes[u.user]);
    }
    // One token for the Directory (the admin, directory scope), one per mailbox (Gmail scope).
    assert.equal(grants(ADMIN), 2);
    for (const u of TEAM) assert.equal(grants(u), 1);
    assert.equal(stack.auth.stats().signJwt - signedBefore, 4);
  });

  it('a token that stops working mid-run is renewed once, and the run goes on', async () => {
    stack.gmail.setLatency(10);
    try {
      const token = await stack.synchronize('RENEW');
      await until('the unit is reading', () => stack.units(token), (us) => us[0]?.status === 'Processing' && (us[0]?.messages ?? 0) >= 20);
      assert.equal(grants(RENEW), 1);
      stack.auth.expireTokensOf(RENEW);
      const unit = await onlyUnit(token);
      assert.equal(unit.status, 'Finished', unit.error ?? '');
      assert.equal(unit.messages, 400);
      assert.equal((await stack.sink('RENEW', RENEW)).size, 400);
      assert.equal(grants(RENEW), 2);
    } finally {
      stack.gmail.setLatency(0);
    }
  });

  it('a delegation the Workspace admin removed ends the mailbox Error, naming the client id and scopes to authorise', async () => {
    const d = stack.delegate;
    assert.ok(d);
    stack.auth.revoke(d.serviceAccount);
    try {
      const unit = await onlyUnit(await stack.synchronize('REVOKED'));
      assert.equal(unit.status, 'Error');
      assert.match(unit.error ?? '', /^domain-wide delegation refused for revoked@example\.com \(unauthorized_client: Client is unauthorized/);
      assert.ok(unit.error?.includes(`authorise client id ${d.clientId} for the scopes ${GMAIL_SCOPES.join(',')}`), unit.error ?? '');
      assert.ok(unit.error?.includes('Domain-wide delegation'), unit.error ?? '');
      assert.equal((await stack.sink('REVOKED', REVOKED)).size, 0);
    } finally {
      stack.auth.delegate(d.serviceAccount, { clientId: d.clientId, scopes: DELEGATED_SCOPES });
    }
  });

  it('a Gmail scope the admin did not grant ends the mailbox Error, naming the missing scope', async () => {
    const d = stack.delegate;
    assert.ok(d);
    stack.auth.delegate(d.serviceAccount, { clientId: d.clientId, scopes: DELEGATED_SCOPES.filter((s) => !GMAIL_SCOPES.includes(s)) });
    try {
      const unit = await onlyUnit(await stack.synchronize('NOSCOPE'));
      assert.equal(unit.status, 'Error');
      assert.match(unit.error ?? '', /^domain-wide delegation refused for noscope@example\.com \(unauthorized_client/);
      assert.ok(unit.error?.includes(`client id ${d.clientId} for the scopes https://www.googleapis.com/auth/gmail.readonly`), unit.error ?? '');
      assert.equal(grants(NOSCOPE), 0);
    } finally {
      stack.auth.delegate(d.serviceAccount, { clientId: d.clientId, scopes: DELEGATED_SCOPES });
    }
  });

  it('an address that is not a user of the domain ends Error as such (invalid_grant)', async () => {
    const unit = await onlyUnit(await stack.synchronize('GHOST'));
    assert.equal(unit.status, 'Error');
    assert.equal(
      unit.error,
      'ghost@example.com is not a user of the Workspace domain, or is not allowed to use Gmail (invalid_grant: Invalid email or User ID)',
    );
  });
});
