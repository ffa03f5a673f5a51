// The Google auth emulator through the real libraries: google-auth-library's GoogleAuth finds the
// metadata server through GCE_METADATA_HOST, googleapis' iamcredentials signs, fetch exchanges.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GoogleAuth } from 'google-auth-library';
import { google } from 'googleapis';
import { CompactSign, createRemoteJWKSet, decodeProtectedHeader, generateKeyPair, jwtVerify } from 'jose';
import { startGoogleAuthEmulator, type GoogleAuthEmulator } from './google-auth/index.js';

const PROJECT = 'auth-test-project';
const RUNTIME = 'fn@auth-test-project.iam.gserviceaccount.com';
const DWD = 'dwd@auth-test-project.iam.gserviceaccount.com';
const OTHER = 'other@auth-test-project.iam.gserviceaccount.com';
/** Exists, and nobody may sign for it. */
const DENIED = 'denied@auth-test-project.iam.gserviceaccount.com';
const USER = 'alice@example.com';
const READONLY = 'https://www.googleapis.com/auth/gmail.readonly';
const MODIFY = 'https://www.googleapis.com/auth/gmail.modify';
const CLOUD = 'https://www.googleapis.com/auth/cloud-platform';

const TIMEFRAME =
  'Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values and use a clock with skew to account for differences in time.';
const UNAUTHORIZED =
  'Client is unauthorized to retrieve access tokens using this method, or client not authorized for any of the scopes requested.';

// This process finds the metadata server only through the emulator: no key file, no gcloud login.
delete process.env['GOOGLE_APPLICATION_CREDENTIALS'];
process.env['CLOUDSDK_CONFIG'] = mkdtempSync(join(tmpdir(), 'no-gcloud-'));

let auth: GoogleAuthEmulator;
/** Moves the emulator's clock, in seconds. */
let offsetS = 0;
const nowS = (): number => Math.floor(Date.now() / 1000) + offsetS;

before(async () => {
  auth = await startGoogleAuthEmulator({
    projectId: PROJECT,
    numericProjectId: '42',
    runtimeServiceAccount: RUNTIME,
    serviceAccounts: [OTHER, DENIED],
    users: [USER],
    now: () => Date.now() + offsetS * 1000,
  });
  auth.allowSigning(RUNTIME, DWD);
  auth.delegate(DWD, { clientId: '100000000000000000001', scopes: [READONLY, MODIFY] });
  process.env['GCE_METADATA_HOST'] = auth.metadataHost;
});

after(async () => {
  await auth.close();
});

interface SignBody {
  status: number;
  body: unknown;
}

/** The runtime token, straight from the metadata server. */
async function runtimeToken(): Promise<string> {
  const res = await fetch(`${auth.url}computeMetadata/v1/instance/service-accounts/default/token`, {
    headers: { 'Metadata-Flavor': 'Google' },
  });
  assert.equal(res.status, 200);
  return ((await res.json()) as { access_token: string }).access_token;
}

async function signRaw(target: string, body: string, token: string | null): Promise<SignBody> {
  const res = await fetch(`${auth.url}v1/projects/-/serviceAccounts/${encodeURIComponent(target)}:signJwt`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', ...(token ? { Authorization: `Bearer ${token}` } : {}) },
    body,
  });
  return { status: res.status, body: await res.json() };
}

async function sign(target: string, claims: Record<string, unknown>): Promise<string> {
  const r = await signRaw(target, JSON.stringify({ payload: JSON.stringify(claims) }), await runtimeToken());
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return (r.body as { signedJwt: string }).signedJwt;
}

async function exchange(assertion: string, grantType = 'urn:ietf:params:oauth:grant-type:jwt-bearer'): Promise<SignBody> {
  const res = await fetch(auth.tokenUrl, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: grantType, assertion }).toString(),
  });
  return { status: res.status, body: await res.json() };
}

const claims = (over: Record<string, unknown> = {}): Record<string, unknown> => {
  const iat = nowS();
  return { iss: DWD, sub: USER, scope: READONLY, aud: auth.tokenUrl, iat, exp: iat + 3600, ...over };
};

void describe('metadata server', () => {
  void test('GoogleAuth finds it through GCE_METADATA_HOST and gets the runtime token, email, project and universe', async () => {
    const ga = new GoogleAuth({ scopes: [CLOUD] });
    const token = await ga.getAccessToken();
    assert.ok(token);
    assert.deepEqual(auth.verifyAccessToken(token), { kind: 'service-account', email: RUNTIME });
    assert.equal(await ga.getProjectId(), PROJECT);
    assert.equal((await ga.getCredentials()).client_email, RUNTIME);
    assert.equal(await ga.getUniverseDomain(), 'googleapis.com');
    assert.equal(ga.isGCE, true);
  });

  void test('every path answers with Metadata-Flavor: Google, and refuses requests without it', async () => {
    const get = (path: string, headers: Record<string, string> = { 'Metadata-Flavor': 'Google' }) =>
      fetch(`${auth.url}computeMetadata/v1/${path}`, { headers });
    for (const [path, body] of [
      ['project/project-id', PROJECT],
      ['project/numeric-project-id', '42'],
      ['universe/universe-domain', 'googleapis.com'],
      ['instance/service-accounts/default/email', RUNTIME],
    ] as const) {
      const res = await get(path);
      assert.equal(res.status, 200, path);
      assert.equal(res.headers.get('metadata-flavor'), 'Google');
      assert.equal(await res.text(), body);
    }
    const rec = await get('instance/service-accounts/default/?recursive=true');
    assert.deepEqual(await rec.json(), { aliases: ['default'], email: RUNTIME, scopes: [CLOUD] });
    const tok = await get('instance/service-accounts/default/token');
    const t = (await tok.json()) as Record<string, unknown>;
    assert.deepEqual(Object.keys(t).sort(), ['access_token', 'expires_in', 'token_type']);
    assert.equal(t['token_type'], 'Bearer');
    const refused = await get('instance/service-accounts/default/token', {});
    assert.equal(refused.status, 403);
    assert.equal(refused.headers.get('metadata-flavor'), 'Google');
    const proxied = await get('project/project-id', { 'Metadata-Flavor': 'Google', 'X-Forwarded-For': '10.0.0.1' });
    assert.equal(proxied.status, 403);
    assert.equal((await get('instance/service-accounts/someone-else@x.iam.gserviceaccount.com/token')).status, 404);
  });
});

void describe('signJwt', () => {
  void test('googleapis iamcredentials signs with the emulator key; the JWKS verifies it', async () => {
    const ga = new GoogleAuth({ scopes: [CLOUD] });
    const iam = google.iamcredentials({ version: 'v1', rootUrl: auth.iamRootUrl, auth: ga });
    const before = auth.stats().signJwt;
    const payload = { iss: DWD, sub: USER, aud: 'x', iat: nowS(), exp: nowS() + 60 };
    const res = await iam.projects.serviceAccounts.signJwt({
      name: `projects/-/serviceAccounts/${DWD}`,
      requestBody: { payload: JSON.stringify(payload) },
    });
    assert.equal(res.status, 200);
    const { keyId, signedJwt } = res.data;
    assert.ok(keyId && signedJwt);
    assert.deepEqual(decodeProtectedHeader(signedJwt), { alg: 'RS256', kid: keyId, typ: 'JWT' });
    const verified = await jwtVerify(signedJwt, createRemoteJWKSet(new URL(auth.jwksUrl)), { currentDate: new Date(nowS() * 1000) });
    assert.deepEqual(verified.payload, payload);
    const own = await fetch(`${auth.url}service_accounts/v1/jwk/${DWD}`);
    assert.deepEqual(((await own.json()) as { keys: Array<{ kid: string }> }).keys.map((k) => k.kid), [keyId]);
    assert.equal(auth.stats().signJwt, before + 1);
  });

  void test('401 without a token, with an unknown token and with an expired one', async () => {
    const body = JSON.stringify({ payload: '{}' });
    const none = await signRaw(DWD, body, null);
    assert.equal(none.status, 401);
    assert.deepEqual(none.body, {
      error: {
        code: 401,
        message:
          'Request is missing required authentication credential. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.',
        status: 'UNAUTHENTICATED',
        details: [
          {
            '@type': 'type.googleapis.com/google.rpc.ErrorInfo',
            reason: 'CREDENTIALS_MISSING',
            domain: 'googleapis.com',
            metadata: { service: 'iamcredentials.googleapis.com', method: 'google.iam.credentials.v1.IAMCredentials.SignJwt' },
          },
        ],
      },
    });
    const invalid =
      'Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.';
    const unknown = await signRaw(DWD, body, 'ya29.made-up');
    assert.equal(unknown.status, 401);
    const u = unknown.body as { error: { message: string; status: string; details: Array<{ reason: string }> } };
    assert.equal(u.error.message, invalid);
    assert.equal(u.error.status, 'UNAUTHENTICATED');
    assert.equal(u.error.details[0]?.reason, 'ACCESS_TOKEN_TYPE_UNSUPPORTED');

    const token = await runtimeToken();
    offsetS += 3601;
    try {
      assert.equal(auth.verifyAccessToken(token), 'expired');
      const expired = await signRaw(DWD, body, token);
      assert.equal(expired.status, 401);
      const e = expired.body as { error: { message: string; details: Array<{ reason: string }> } };
      assert.equal(e.error.message, invalid);
      assert.equal(e.error.details[0]?.reason, 'ACCESS_TOKEN_EXPIRED');
    } finally {
      offsetS -= 3601;
    }
  });

  void test('403 when the caller may not sign for the account, 404 for an unknown account, 400 for a payload that is not JSON', async () => {
    const token = await runtimeToken();
    const denied = await signRaw(DENIED, JSON.stringify({ payload: '{}' }), token);
    assert.equal(denied.status, 403);
    assert.deepEqual(denied.body, {
      error: {
        code: 403,
        message: "Permission 'iam.serviceAccounts.signJwt' denied on resource (or it may not exist).",
        status: 'PERMISSION_DENIED',
        details: [
          {
            '@type': 'type.googleapis.com/google.rpc.ErrorInfo',
            reason: 'IAM_PERMISSION_DENIED',
            domain: 'iam.googleapis.com',
            metadata: { permission: 'iam.serviceAccounts.signJwt' },
          },
        ],
      },
    });
    const ghost = 'ghost@auth-test-project.iam.gserviceaccount.com';
    const missing = await signRaw(ghost, JSON.stringify({ payload: '{}' }), token);
    assert.equal(missing.status, 404);
    assert.deepEqual(missing.body, { error: { code: 404, message: `Not found; Gaia id not found for email ${ghost}`, status: 'NOT_FOUND' } });
    for (const payload of ['not json', '[1,2]', '"text"']) {
      const bad = await signRaw(DWD, JSON.stringify({ payload }), token);
      assert.equal(bad.status, 400, payload);
      assert.deepEqual(bad.body, { error: { code: 400, message: 'Payload must be a JSON object.', status: 'INVALID_ARGUMENT' } });
    }
    const tooLong = await signRaw(DWD, JSON.stringify({ payload: JSON.stringify({ exp: nowS() + 13 * 3600 }) }), token);
    assert.equal(tooLong.status, 400);

    // A delegated user token is not the function's identity: it may not sign.
    const userToken = ((await exchange(await sign(DWD, claims()))).body as { access_token: string }).access_token;
    const asUser = await signRaw(DWD, JSON.stringify({ payload: '{}' }), userToken);
    assert.equal(asUser.status, 403);
    assert.equal((asUser.body as { error: { message: string } }).error.message, 'Request had insufficient authentication scopes.');
  });
});

void describe('token endpoint', () => {
  void test('a delegated assertion gets a token bound to its user and scopes, with the configured lifetime', async () => {
    const before = auth.stats().tokenGrants[USER] ?? 0;
    const r = await exchange(await sign(DWD, claims({ scope: `${READONLY} ${MODIFY}` })));
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const b = r.body as { access_token: string; expires_in: number; token_type: string };
    assert.deepEqual(Object.keys(b).sort(), ['access_token', 'expires_in', 'token_type']);
    assert.equal(b.token_type, 'Bearer');
    assert.equal(b.expires_in, 3600);
    assert.deepEqual(auth.verifyAccessToken(b.access_token), { kind: 'user', user: USER, scopes: [READONLY, MODIFY] });
    assert.equal(auth.verifyAccessToken('ya29.unknown'), undefined);
    assert.equal(auth.stats().tokenGrants[USER], before + 1);

    // Google's own audience is accepted as well as the emulator's URL.
    const google = await exchange(await sign(DWD, claims({ aud: 'https://oauth2.googleapis.com/token' })));
    assert.equal(google.status, 200);

    auth.setTokenLifetime(120);
    try {
      const short = await exchange(await sign(DWD, claims()));
      const s = short.body as { access_token: string; expires_in: number };
      assert.equal(s.expires_in, 120);
      offsetS += 121;
      assert.equal(auth.verifyAccessToken(s.access_token), 'expired');
    } finally {
      offsetS = 0;
      auth.setTokenLifetime(3600);
    }
  });

  void test('invalid_grant: bad signature, wrong issuer key, times, audience, unknown user', async () => {
    const good = await sign(DWD, claims());
    const [h, , s] = good.split('.');
    const tampered = `${h}.${Buffer.from(JSON.stringify(claims({ sub: 'admin@example.com' }))).toString('base64url')}.${s}`;
    const expectGrant = async (assertion: string, description: string): Promise<void> => {
      const r = await exchange(assertion);
      assert.equal(r.status, 400, description);
      assert.deepEqual(r.body, { error: 'invalid_grant', error_description: description });
    };
    await expectGrant(tampered, 'Invalid JWT Signature.');
    // Signed by a key that is not the issuer's own.
    const { privateKey } = await generateKeyPair('RS256');
    const forged = await new CompactSign(new TextEncoder().encode(JSON.stringify(claims())))
      .setProtectedHeader({ alg: 'RS256', typ: 'JWT' })
      .sign(privateKey);
    await expectGrant(forged, 'Invalid JWT Signature.');
    // The runtime account may sign for DWD only; a JWT it signs as DWD but claiming iss=OTHER fails.
    auth.allowSigning(RUNTIME, OTHER);
    await expectGrant(await sign(DWD, claims({ iss: OTHER })), 'Invalid JWT Signature.');
    await expectGrant('not-a-jwt', 'Invalid JWT Signature.');

    const t = nowS();
    await expectGrant(await sign(DWD, claims({ iat: t, exp: t + 3601 })), TIMEFRAME);
    await expectGrant(await sign(DWD, claims({ iat: t - 7200, exp: t - 3600 })), TIMEFRAME);
    await expectGrant(await sign(DWD, claims({ iat: t + 1200, exp: t + 1800 })), TIMEFRAME);
    await expectGrant(await sign(DWD, claims({ iat: undefined })), TIMEFRAME);
    // Within the tolerated skew (300 s) both ways.
    assert.equal((await exchange(await sign(DWD, claims({ iat: t + 200, exp: t + 1800 })))).status, 200);

    await expectGrant(await sign(DWD, claims({ aud: 'https://example.com/token' })), `Invalid JWT: Failed audience check. The right audience is ${auth.tokenUrl}`);
    await expectGrant(await sign(DWD, claims({ sub: 'mallory@example.com' })), 'Invalid email or User ID');
    await expectGrant(await sign(DWD, claims({ iss: 'nobody@auth-test-project.iam.gserviceaccount.com' })), 'Invalid grant: account not found');
    auth.addUser('bob@example.com');
    assert.equal((await exchange(await sign(DWD, claims({ sub: 'Bob@Example.com' })))).status, 200);
  });

  void test('401 unauthorized_client: no delegation for the client, a scope not granted, delegation revoked', async () => {
    const expectUnauthorized = async (assertion: string): Promise<void> => {
      const r = await exchange(assertion);
      assert.equal(r.status, 401);
      assert.deepEqual(r.body, { error: 'unauthorized_client', error_description: UNAUTHORIZED });
    };
    auth.allowSigning(RUNTIME, OTHER);
    await expectUnauthorized(await sign(OTHER, claims({ iss: OTHER })));
    await expectUnauthorized(await sign(DWD, claims({ scope: `${READONLY} https://mail.google.com/` })));
    auth.revoke(DWD);
    try {
      await expectUnauthorized(await sign(DWD, claims()));
    } finally {
      auth.delegate(DWD, { clientId: '100000000000000000001', scopes: [READONLY, MODIFY] });
    }
    assert.equal((await exchange(await sign(DWD, claims()))).status, 200);
  });

  void test('other refusals: grant type, missing assertion, no scope; without sub the token is the service account own', async () => {
    const wrongGrant = await exchange('x', 'refresh_token');
    assert.equal(wrongGrant.status, 400);
    assert.deepEqual(wrongGrant.body, { error: 'unsupported_grant_type', error_description: 'Invalid grant_type: refresh_token' });
    const res = await fetch(auth.tokenUrl, {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: 'grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer',
    });
    assert.equal(res.status, 400);
    assert.deepEqual(await res.json(), { error: 'invalid_request', error_description: 'Missing required parameter: assertion' });
    const noScope = await exchange(await sign(DWD, claims({ scope: undefined })));
    assert.equal(noScope.status, 400);
    assert.deepEqual(noScope.body, { error: 'invalid_scope', error_description: 'Invalid OAuth scope or ID token audience provided.' });
    const own = await exchange(await sign(DWD, claims({ sub: undefined, scope: CLOUD })));
    assert.equal(own.status, 200);
    assert.deepEqual(auth.verifyAccessToken((own.body as { access_token: string }).access_token), { kind: 'service-account', email: DWD });
    const stats = auth.stats();
    assert.ok(stats.tokenRefused > 0 && stats.signJwtRefused > 0 && stats.metadataTokens > 0);
  });
});
