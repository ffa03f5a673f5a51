/**
 * Gmail and Directory API clients for one user each (googleapis), and the tokens they carry.
 *
 * Each mailbox is read with a token obtained by domain-wide delegation, with no key file: the
 * functions' own identity (the runtime service account, through Application Default
 * Credentials) asks IAM Credentials to `signJwt` a claim for `GMAIL_DELEGATED_SERVICE_ACCOUNT`
 * naming the user and the scopes, and trades the signed claim at the OAuth 2.0 token endpoint
 * (JWT-bearer grant) for a short-lived access token of that user. Tokens are cached per user
 * and scope set and renewed before they expire; a caller that meets a 401 asks for a new one.
 * Against emulators the same flow runs with IAM_CREDENTIALS_ROOT_URL and OAUTH_TOKEN_URL; a
 * local stack without a delegated account uses the emulators' development token `owner`.
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
import { classify, PermanentGmailError } from './errors.js';

export const GMAIL_SCOPES = ['https://www.googleapis.com/auth/gmail.readonly'];
export const DIRECTORY_SCOPES = ['https://www.googleapis.com/auth/admin.directory.user.readonly'];
/** Google's token endpoint: the audience of every delegation claim. */
export const GOOGLE_TOKEN_URL = 'https://oauth2.googleapis.com/token';
/** The development token the emulators accept (as the Firestore emulator does). */
const DEVELOPMENT_TOKEN = 'owner';
/** No IAM or token call may hold a run for long: each has this long to answer. */
const AUTH_TIMEOUT_MS = 30_000;
/** A delegation claim's lifetime; Google accepts at most an hour. */
const CLAIM_LIFETIME_S = 3600;
/** A token is renewed this long before it expires, or after three quarters of a shorter life. */
const RENEW_MARGIN_MS = 120_000;

/** An API client acting as one user, and how to drop its token after a 401. */
export interface UserClient<T> {
  api: T;
  /** Forgets the cached token, so that the next call obtains a new one. */
  renew(): void;
  /** What an administrator must grant when a call lacks a scope. */
  advice: string;
}

/** Builds API clients that act as a given user. */
export interface GoogleAccess {
  /** A Gmail client acting as `user`, with a token for `scopes` (read-only by default). */
  gmail(user: string, scopes?: readonly string[]): UserClient<gmail_v1.Gmail>;
  directory(admin: string): UserClient<admin_directory_v1.Admin>;
}

type OAuth2 = InstanceType<typeof auth.OAuth2>;

interface Token {
  token: string;
  /** When to stop using it (before its real expiry). */
  renewAt: number;
}

/** Where the delegation flow's calls go; production leaves both at Google's. */
export interface DelegationEndpoints {
  /** googleapis' rootUrl for IAM Credentials; undefined for Google's. */
  iamRootUrl: string | undefined;
  tokenUrl: string;
}

/** Signs delegation claims through IAM Credentials and trades them for access tokens. */
export class Delegation {
  private readonly cache = new Map<string, Token>();
  private readonly pending = new Map<string, Promise<Token>>();
  private readonly iam;

  constructor(
    private readonly serviceAccount: string,
    private readonly clientId: string | undefined,
    private readonly endpoints: DelegationEndpoints,
    private readonly now: () => number = Date.now,
  ) {
    this.iam = iamcredentials({
      version: 'v1',
      // The functions' runtime identity, found as Application Default Credentials.
      auth: new auth.GoogleAuth({ scopes: ['https://www.googleapis.com/auth/cloud-platform'] }),
      retry: false,
      ...(endpoints.iamRootUrl ? { rootUrl: endpoints.iamRootUrl } : {}),
    });
  }

  /** A valid token for `user` and `scopes`; one exchange at a time per pair. */
  token(user: string, scopes: string[]): Promise<Token> {
    const key = `${user} ${scopes.join(' ')}`;
    const hit = this.cache.get(key);
    if (hit && hit.renewAt > this.now()) return Promise.resolve(hit);
    let p = this.pending.get(key);
    if (!p) {
      p = this.exchange(user, scopes)
        .then((t) => {
          this.cache.set(key, t);
          return t;
        })
        .finally(() => this.pending.delete(key));
      this.pending.set(key, p);
    }
    return p;
  }

  drop(user: string, scopes: string[]): void {
    this.cache.delete(`${user} ${scopes.join(' ')}`);
  }

  /** What a Workspace admin must authorise, for messages. */
  grantAdvice(scopes: string[]): string {
    const client = this.clientId
      ? `client id ${this.clientId}`
      : `the client id (unique id) of service account ${this.serviceAccount}`;
    return (
      `a Workspace super admin must authorise ${client} for the scopes ${scopes.join(',')} ` +
      '(Admin console: Security > Access and data control > API controls > Domain-wide delegation)'
    );
  }

  private async exchange(user: string, scopes: string[]): Promise<Token> {
    const iat = Math.floor(this.now() / 1000);
    const claim = { iss: this.serviceAccount, sub: user, scope: scopes.join(' '), aud: this.endpoints.tokenUrl, iat, exp: iat + CLAIM_LIFETIME_S };
    let signedJwt: string;
    try {
      const signed = await this.iam.projects.serviceAccounts.signJwt(
        { name: `projects/-/serviceAccounts/${this.serviceAccount}`, requestBody: { payload: JSON.stringify(claim) } },
        { signal: AbortSignal.timeout(AUTH_TIMEOUT_MS) },
      );
      signedJwt = signed.data.signedJwt ?? '';
    } catch (e) {
      const err = classify(e, `signing a delegation claim for ${user} as ${this.serviceAccount}`);
      if (err instanceof PermanentGmailError) {
        throw new PermanentGmailError(
          `${err.message}; the function's service account needs iam.serviceAccounts.signJwt on ` +
            `${this.serviceAccount} (the deployment grants it with the custom role gmailConnectorJwtSigner)`,
          err.status,
          { cause: e },
        );
      }
      throw err;
    }
    let res: Response;
    let body: { access_token?: string; expires_in?: number; error?: string; error_description?: string };
    try {
      res = await fetch(this.endpoints.tokenUrl, {
        method: 'POST',
        headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ grant_type: 'urn:ietf:params:oauth:grant-type:jwt-bearer', assertion: signedJwt }),
        signal: AbortSignal.timeout(AUTH_TIMEOUT_MS),
      });
      body = (await res.json().catch(() => ({}))) as typeof body;
    } catch (e) {
      throw classify(e, `obtaining a token for ${user}`);
    }
    if (res.ok && body.access_token) {
      const lifeMs = (body.expires_in ?? 3600) * 1000;
      return { token: body.access_token, renewAt: this.now() + lifeMs - Math.min(RENEW_MARGIN_MS, lifeMs / 4) };
    }
    const said = `${body.error ?? res.status}${body.error_description ? `: ${body.error_description}` : ''}`;
    if (res.status >= 500 || res.status === 429) {
      throw classify({ response: { status: res.status, headers: res.headers, data: body } }, `obtaining a token for ${user}`);
    }
    if (body.error === 'unauthorized_client' || body.error === 'access_denied') {
      throw new PermanentGmailError(
        `domain-wide delegation refused for ${user} (${said}): ${this.grantAdvice(scopes)}`,
        res.status,
      );
    }
    if (body.error === 'invalid_grant' && /invalid email or user id/i.test(body.error_description ?? '')) {
      throw new PermanentGmailError(
        `${user} is not a user of the Workspace domain, or is not allowed to use Gmail (${said})`,
        res.status,
      );
    }
    throw new PermanentGmailError(
      `domain-wide delegation refused for ${user} (${said}); if the delegation was removed, ${this.grantAdvice(scopes)}`,
      res.status,
    );
  }

  /** An auth client that asks this delegation for its token, renewed in time. */
  client(user: string, scopes: string[]): UserClient<OAuth2> {
    // The client keeps the token until `renewAt` (given as its expiry), then asks again.
    const c = new auth.OAuth2({ eagerRefreshThresholdMillis: 0 });
    c.refreshHandler = async () => {
      const t = await this.token(user, scopes);
      return { access_token: t.token, expiry_date: t.renewAt };
    };
    return {
      api: c,
      renew: () => {
        this.drop(user, scopes);
        c.setCredentials({});
      },
      advice: this.grantAdvice(scopes),
    };
  }
}

/**
 * Google access for the worker: its delegated account (`GMAIL_DELEGATED_SERVICE_ACCOUNT`), or, with
 * `identity: 'view'`, for the action function's synchronous View: the separate read-only account
 * `GMAIL_VIEW_SERVICE_ACCOUNT`, which the Workspace admin grants gmail.readonly only.
 */
export function createGoogleAccess(config: Config, identity: 'worker' | 'view' = 'worker'): GoogleAccess {
  const rootUrl = config.gmailRootUrl;
  const sa = identity === 'view' ? config.viewServiceAccount : config.delegatedServiceAccount;
  const clientId = identity === 'view' ? config.viewClientId : config.delegatedClientId;
  if (!sa) {
    if (rootUrl === undefined) {
      const missing = (): never => {
        const variable = identity === 'view' ? 'GMAIL_VIEW_SERVICE_ACCOUNT' : 'GMAIL_DELEGATED_SERVICE_ACCOUNT';
        throw new PermanentGmailError(`${variable} is not set: Gmail cannot be read without domain-wide delegation`, undefined);
      };
      return { gmail: missing, directory: missing };
    }
    // A local stack with no delegation configured: the emulators' development token.
    const fixed = new auth.OAuth2();
    fixed.setCredentials({ access_token: DEVELOPMENT_TOKEN, expiry_date: Date.now() + 365 * 24 * 3600_000 });
    const renew = (): void => undefined;
    const advice = 'the development token covers every scope';
    return {
      gmail: () => ({ api: gmail({ version: 'v1', rootUrl, auth: fixed, retry: false }), renew, advice }),
      directory: () => ({ api: admin({ version: 'directory_v1', rootUrl, auth: fixed, retry: false }), renew, advice }),
    };
  }
  const delegation = new Delegation(sa, clientId, {
    iamRootUrl: config.iamCredentialsRootUrl,
    tokenUrl: config.oauthTokenUrl ?? GOOGLE_TOKEN_URL,
  });
  const on = rootUrl === undefined ? {} : { rootUrl };
  return {
    gmail: (user, scopes = GMAIL_SCOPES) => {
      const c = delegation.client(user, [...scopes]);
      return { ...c, api: gmail({ version: 'v1', ...on, auth: c.api, retry: false }) };
    },
    directory: (adminUser) => {
      const c = delegation.client(adminUser, DIRECTORY_SCOPES);
      return { ...c, api: admin({ version: 'directory_v1', ...on, auth: c.api, retry: false }) };
    },
  };
}
