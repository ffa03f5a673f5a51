/**
 * The connector's token source (functions/src/gmail/client.ts `Delegation`) against the auth
 * emulator, on a clock the test moves: one exchange per user and scope set, renewed before the
 * token expires, one exchange at a time, and a clear error when the runtime identity may not sign.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Delegation, GMAIL_SCOPES } from '../../functions/src/gmail/client.js';
import { PermanentGmailError } from '../../functions/src/gmail/errors.js';
import { startGoogleAuthEmulator, type GoogleAuthEmulator } from '../emulators/google-auth/index.js';

const RUNTIME = 'fn@tokens-test.iam.gserviceaccount.com';
const DELEGATE = 'dwd@tokens-test.iam.gserviceaccount.com';
const NOT_MINE = 'elsewhere@tokens-test.iam.gserviceaccount.com';
const CLIENT_ID = '112233445566778899001';
const USER = 'carol@example.com';
const LIFETIME_S = 600;

let clock = Date.UTC(2026, 10, 30, 12);
const now = (): number => clock;
let auth: GoogleAuthEmulator;

before(async () => {
  auth = await startGoogleAuthEmulator({ projectId: 'tokens-test', runtimeServiceAccount: RUNTIME, tokenLifetimeS: LIFETIME_S, now });
  // The runtime identity is found through the metadata server, as on Cloud Functions.
  process.env['GCE_METADATA_HOST'] = auth.metadataHost;
  auth.allowSigning(RUNTIME, DELEGATE);
  auth.delegate(DELEGATE, { clientId: CLIENT_ID, scopes: GMAIL_SCOPES });
  auth.delegate(NOT_MINE, { clientId: '998877665544332211009', scopes: GMAIL_SCOPES });
});

after(async () => {
  await auth?.close();
});

describe('delegated tokens', () => {
  it('are obtained once per user, renewed two minutes before they expire, and accepted as that user', async () => {
    const d = new Delegation(DELEGATE, CLIENT_ID, { iamRootUrl: auth.iamRootUrl, tokenUrl: auth.tokenUrl }, now);
    const [a, b] = await Promise.all([d.token(USER, GMAIL_SCOPES), d.token(USER, GMAIL_SCOPES)]);
    assert.equal(a.token, b.token);
    assert.equal(auth.stats().tokenGrants[USER], 1);
    assert.deepEqual(auth.verifyAccessToken(a.token), { kind: 'user', user: USER, scopes: GMAIL_SCOPES });
    assert.equal(a.renewAt, clock + (LIFETIME_S - 120) * 1000);

    clock += (LIFETIME_S - 121) * 1000;
    assert.equal((await d.token(USER, GMAIL_SCOPES)).token, a.token);
    assert.equal(auth.stats().tokenGrants[USER], 1);

    clock += 2000; // now within two minutes of the expiry: a new token, while the old one still works
    const c = await d.token(USER, GMAIL_SCOPES);
    assert.notEqual(c.token, a.token);
    assert.equal(auth.stats().tokenGrants[USER], 2);
    assert.deepEqual(auth.verifyAccessToken(a.token), { kind: 'user', user: USER, scopes: GMAIL_SCOPES });

    d.drop(USER, GMAIL_SCOPES);
    assert.notEqual((await d.token(USER, GMAIL_SCOPES)).token, c.token);
    assert.equal(auth.stats().tokenGrants[USER], 3);
  });

  it('a runtime identity that may not sign for the delegated account is told which role it lacks', async () => {
    const d = new Delegation(NOT_MINE, undefined, { iamRootUrl: auth.iamRootUrl, tokenUrl: auth.tokenUrl }, now);
    await assert.rejects(d.token(USER, GMAIL_SCOPES), (e: unknown) => {
      assert.ok(e instanceof PermanentGmailError);
      assert.equal(e.status, 403);
      assert.match(e.message, /^signing a delegation claim for carol@example\.com as elsewhere@tokens-test\.iam\.gserviceaccount\.com: 403/);
      assert.match(e.message, /Permission 'iam\.serviceAccounts\.signJwt' denied/);
      assert.ok(e.message.endsWith(`needs iam.serviceAccounts.signJwt on ${NOT_MINE} (the deployment grants it with the custom role gmailConnectorJwtSigner)`), e.message);
      return true;
    });
  });
});
