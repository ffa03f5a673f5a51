/**
 * Gmail and Directory API clients for one user each (googleapis).
 *
 * Against the emulator (`GMAIL_API_ROOT_URL`) a fixed bearer token is used.
 * In production the functions' own service account signs a domain-wide
 * delegation JWT for `GMAIL_DELEGATED_SERVICE_ACCOUNT` through the IAM
 * Credentials `signJwt` API (no key file), and exchanges it for the user's
 * access token, cached until shortly before it expires.
 *
 * The clients' own automatic retries are turned off: the caller retries, paced
 * and counted (gmail/caller.ts), honouring Retry-After, which they would not.
 */
// The per-API entry points of googleapis, so that only these APIs are loaded
// (a cold start does not pay for the whole package).
import { admin, type admin_directory_v1 } from 'googleapis/build/src/apis/admin/index.js';
import { auth, gmail, type gmail_v1 } from 'googleapis/build/src/apis/gmail/index.js';
import { iamcredentials } from 'googleapis/build/src/apis/iamcredentials/index.js';
import type { Config } from '../config.js';

const GMAIL_SCOPES = ['https://www.googleapis.com/auth/gmail.readonly'];
const DIRECTORY_SCOPES = ['https://www.googleapis.com/auth/admin.directory.user.readonly'];
const TOKEN_URL = 'https://oauth2.googleapis.com/token';
const EMULATOR_TOKEN = 'emulator-access-token';
/** No IAM or token call may hold a run for long: each has this long to answer. */
const AUTH_TIMEOUT_MS = 30_000;

/** Builds API clients that act as a given user. */
export interface GoogleAccess {
  gmail(user: string): gmail_v1.Gmail;
  directory(admin: string): admin_directory_v1.Admin;
}

type OAuth2 = InstanceType<typeof auth.OAuth2>;

function staticAuth(token: string, expiry: number): OAuth2 {
  const c = new auth.OAuth2();
  c.setCredentials({ access_token: token, expiry_date: expiry });
  return c;
}

/** Signs delegation JWTs through IAM Credentials and trades them for access tokens. */
class Delegation {
  private readonly cache = new Map<string, { token: string; expiry: number }>();
  private readonly iam = iamcredentials({
    version: 'v1',
    auth: new auth.GoogleAuth({ scopes: ['https://www.googleapis.com/auth/cloud-platform'] }),
  });

  constructor(private readonly serviceAccount: string) {}

  async token(user: string, scopes: string[]): Promise<{ token: string; expiry: number }> {
    const key = `${user} ${scopes.join(' ')}`;
    const hit = this.cache.get(key);
    if (hit && hit.expiry - Date.now() > 120_000) return hit;
    const iat = Math.floor(Date.now() / 1000);
    const payload = { iss: this.serviceAccount, sub: user, scope: scopes.join(' '), aud: TOKEN_URL, iat, exp: iat + 3600 };
    const signed = await this.iam.projects.serviceAccounts.signJwt(
      {
        name: `projects/-/serviceAccounts/${this.serviceAccount}`,
        requestBody: { payload: JSON.stringify(payload) },
      },
      { signal: AbortSignal.timeout(AUTH_TIMEOUT_MS) },
    );
    const res = await fetch(TOKEN_URL, {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: 'urn:ietf:params:oauth:grant-type:jwt-bearer',
        assertion: signed.data.signedJwt ?? '',
      }),
      signal: AbortSignal.timeout(AUTH_TIMEOUT_MS),
    });
    const body = (await res.json()) as { access_token?: string; expires_in?: number; error?: string; error_description?: string };
    if (!res.ok || !body.access_token) {
      // Shaped like a gaxios error so that classify() sees invalid_grant.
      throw Object.assign(new Error(`token exchange for ${user} failed: ${body.error ?? res.status}`), {
        response: { status: res.status, data: body },
      });
    }
    const entry = { token: body.access_token, expiry: Date.now() + (body.expires_in ?? 3600) * 1000 };
    this.cache.set(key, entry);
    return entry;
  }

  auth(user: string, scopes: string[]): OAuth2 {
    const c = new auth.OAuth2();
    c.refreshHandler = async () => {
      const t = await this.token(user, scopes);
      return { access_token: t.token, expiry_date: t.expiry };
    };
    return c;
  }
}

export function createGoogleAccess(config: Config): GoogleAccess {
  const rootUrl = config.gmailRootUrl;
  if (rootUrl !== undefined) {
    const fixed = staticAuth(EMULATOR_TOKEN, Date.now() + 365 * 24 * 3600_000);
    return {
      gmail: () => gmail({ version: 'v1', rootUrl, auth: fixed, retry: false }),
      directory: () => admin({ version: 'directory_v1', rootUrl, auth: fixed, retry: false }),
    };
  }
  const sa = config.delegatedServiceAccount;
  const delegation = sa ? new Delegation(sa) : undefined;
  const need = (): Delegation => {
    if (!delegation) throw new Error('GMAIL_DELEGATED_SERVICE_ACCOUNT is not set: Gmail cannot be read without domain-wide delegation');
    return delegation;
  };
  return {
    gmail: (user) => gmail({ version: 'v1', auth: need().auth(user, GMAIL_SCOPES), retry: false }),
    directory: (adminUser) => admin({ version: 'directory_v1', auth: need().auth(adminUser, DIRECTORY_SCOPES), retry: false }),
  };
}
