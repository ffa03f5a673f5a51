// Google auth emulator: what a function needs for Gmail domain-wide delegation without key files.
// One HTTP server on 127.0.0.1 serves
//   - the GCE metadata server (GCE_METADATA_HOST=<metadataHost>): the runtime service account's
//     access token, email, project id, universe domain, and the ping google-auth-library sends;
//   - IAM Credentials signJwt (googleapis' iamcredentials with rootUrl = <iamRootUrl>), RS256 with
//     a key pair per service account that the emulator generates, public keys at <jwksUrl>;
//   - the OAuth 2.0 token endpoint (<tokenUrl>), JWT-bearer grant, checked like Google checks a
//     delegated assertion: signature, iss, sub, aud, iat/exp, scope ⊆ what the admin granted.
// Access tokens are opaque; verifyAccessToken() tells another emulator (Gmail) whose they are.
//
//   const auth = await startGoogleAuthEmulator({ runtimeServiceAccount: 'fn@demo.iam.gserviceaccount.com' });
//   auth.allowSigning('fn@demo.iam.gserviceaccount.com', 'dwd@demo.iam.gserviceaccount.com');
//   auth.delegate('dwd@demo.iam.gserviceaccount.com', { clientId: '1001', scopes: [GMAIL_READONLY] });
//   process.env.GCE_METADATA_HOST = auth.metadataHost;
//
// See README.md in this folder for what is modelled and what differs from Google.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import {
  CompactSign,
  compactVerify,
  decodeProtectedHeader,
  exportJWK,
  generateKeyPair,
  type CryptoKey,
  type JWK,
} from 'jose';

export type VerifiedToken =
  | { kind: 'user'; user: string; scopes: string[] }
  | { kind: 'service-account'; email: string }
  | 'expired'
  | undefined;

export interface GoogleAuthEmulatorOptions {
  /** Port to listen on (always on 127.0.0.1); 0, the default, picks a free one. */
  port?: number;
  /** Project id the metadata server reports. Default "demo-project". */
  projectId?: string;
  /** Numeric project id the metadata server reports. Default "123456789012". */
  numericProjectId?: string;
  /** The function's runtime identity (metadata server's default service account). Default `gmail-connector@<projectId>.iam.gserviceaccount.com`. */
  runtimeServiceAccount?: string;
  /** More service accounts that exist (signJwt for any other is 404). Those named in allowSigning and delegate exist too. */
  serviceAccounts?: string[];
  /** Users of the Workspace domain a delegated assertion may name in `sub`. None (the default) = any address. */
  users?: string[];
  /** Lifetime of the access tokens the emulator issues, in seconds. Default 3600. */
  tokenLifetimeS?: number;
  /** Clock skew tolerated on an assertion's iat and exp, in seconds. Default 300. */
  clockSkewS?: number;
  /** Clock, in epoch milliseconds. Default Date.now. */
  now?: () => number;
}

export interface GoogleAuthEmulatorStats {
  /** signJwt calls answered with a signed JWT. */
  signJwt: number;
  /** signJwt calls refused (401, 403, 400, 404). */
  signJwtRefused: number;
  /** Delegated tokens granted, by user. */
  tokenGrants: Record<string, number>;
  /** Tokens granted to service accounts themselves (assertions without sub), by service account. */
  serviceAccountGrants: Record<string, number>;
  /** Token requests refused. */
  tokenRefused: number;
  /** Access tokens the metadata server minted (reused ones are not counted again). */
  metadataTokens: number;
}

export interface GoogleAuthEmulator {
  /** "http://127.0.0.1:PORT/" */
  url: string;
  host: string;
  port: number;
  /** The GCE_METADATA_HOST value: "127.0.0.1:PORT". */
  metadataHost: string;
  /** `${url}token`: the OAuth 2.0 token endpoint, and an `aud` the emulator accepts. */
  tokenUrl: string;
  /** rootUrl for googleapis' iamcredentials: the same as url. */
  iamRootUrl: string;
  /** JWKS of every service account's signing keys. Per account: `${url}service_accounts/v1/jwk/<email>`, as at Google. */
  jwksUrl: string;
  /** Lets the caller service account sign JWTs as the target (roles/iam.serviceAccountTokenCreator on the target). */
  allowSigning(callerServiceAccountEmail: string, targetServiceAccountEmail: string): void;
  /** Domain-wide delegation: the Workspace admin grants these scopes to the service account's client id (replaces an earlier grant). */
  delegate(serviceAccountEmail: string, grant: { clientId: string; scopes: string[] }): void;
  /** The admin removes the delegation. Tokens already issued stay valid until they expire, as at Google. */
  revoke(serviceAccountEmail: string): void;
  addUser(address: string): void;
  /** Lifetime of tokens issued from now on. */
  setTokenLifetime(seconds: number): void;
  /**
   * Ends every delegated token of `user` now, as Google does when the user's password changes or
   * an admin signs the user out: they answer 'expired' before their stated lifetime.
   */
  expireTokensOf(user: string): void;
  verifyAccessToken(token: string): VerifiedToken;
  stats(): GoogleAuthEmulatorStats;
  close(): Promise<void>;
}

/** Scopes with which a token may call IAM Credentials. */
const IAM_SCOPES = ['https://www.googleapis.com/auth/cloud-platform', 'https://www.googleapis.com/auth/iam'];
/** What a Cloud Functions / Cloud Run runtime token carries by default. */
const DEFAULT_RUNTIME_SCOPES = ['https://www.googleapis.com/auth/cloud-platform'];
/** The audiences Google's token endpoint accepts; the emulator accepts these and its own tokenUrl. */
const GOOGLE_TOKEN_AUDIENCES = [
  'https://oauth2.googleapis.com/token',
  'https://www.googleapis.com/oauth2/v4/token',
  'https://accounts.google.com/o/oauth2/token',
];
const JWT_BEARER = 'urn:ietf:params:oauth:grant-type:jwt-bearer';
const MAX_ASSERTION_LIFETIME_S = 3600;
/** signJwt refuses an exp further ahead than this. */
const MAX_SIGNED_EXP_S = 12 * 3600;

export const TIMEFRAME_MESSAGE =
  'Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values and use a clock with skew to account for differences in time.';
export const UNAUTHORIZED_CLIENT_MESSAGE =
  'Client is unauthorized to retrieve access tokens using this method, or client not authorized for any of the scopes requested.';
const MISSING_CREDENTIAL_MESSAGE =
  'Request is missing required authentication credential. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.';
const INVALID_CREDENTIAL_MESSAGE =
  'Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.';
const SIGN_JWT_METHOD = 'google.iam.credentials.v1.IAMCredentials.SignJwt';

interface TokenRecord {
  kind: 'user' | 'service-account';
  /** User address or service account email. */
  subject: string;
  scopes: string[];
  expiresAt: number;
}

interface SigningKey {
  kid: string;
  privateKey: CryptoKey;
  publicKey: CryptoKey;
  jwk: JWK;
}

/** One-platform (AIP-193) error body, as IAM Credentials answers. */
class RpcError extends Error {
  constructor(
    readonly code: number,
    readonly status: string,
    message: string,
    readonly details: unknown[] = [],
  ) {
    super(message);
  }
  body(): unknown {
    return { error: { code: this.code, message: this.message, status: this.status, ...(this.details.length > 0 ? { details: this.details } : {}) } };
  }
}

/** The token endpoint's OAuth error body. */
class OAuthError extends Error {
  constructor(
    readonly httpStatus: number,
    readonly error: string,
    description: string,
  ) {
    super(description);
  }
}

const errorInfo = (reason: string, domain: string, metadata: Record<string, string>): unknown => ({
  '@type': 'type.googleapis.com/google.rpc.ErrorInfo',
  reason,
  domain,
  metadata,
});

const isEmail = (s: string): boolean => /^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(s);

export async function startGoogleAuthEmulator(opts: GoogleAuthEmulatorOptions = {}): Promise<GoogleAuthEmulator> {
  const now = opts.now ?? Date.now;
  const projectId = opts.projectId ?? 'demo-project';
  const numericProjectId = opts.numericProjectId ?? '123456789012';
  const runtimeSa = (opts.runtimeServiceAccount ?? `gmail-connector@${projectId}.iam.gserviceaccount.com`).toLowerCase();
  const clockSkewS = Math.max(0, opts.clockSkewS ?? 300);
  let tokenLifetimeS = positive(opts.tokenLifetimeS ?? 3600, 'tokenLifetimeS');

  const serviceAccounts = new Set<string>([runtimeSa, ...(opts.serviceAccounts ?? []).map((s) => s.toLowerCase())]);
  const signers = new Map<string, Set<string>>(); // target → callers
  const delegations = new Map<string, { clientId: string; scopes: Set<string> }>();
  const users = new Set<string>((opts.users ?? []).map((u) => u.toLowerCase()));
  const tokens = new Map<string, TokenRecord>();
  const keys = new Map<string, Promise<SigningKey>>();
  let runtimeToken: { token: string; scopesKey: string } | undefined;
  const counters: GoogleAuthEmulatorStats = {
    signJwt: 0,
    signJwtRefused: 0,
    tokenGrants: {},
    serviceAccountGrants: {},
    tokenRefused: 0,
    metadataTokens: 0,
  };

  const keyOf = (email: string): Promise<SigningKey> => {
    let k = keys.get(email);
    if (!k) {
      k = (async () => {
        const { privateKey, publicKey } = await generateKeyPair('RS256', { extractable: true });
        const kid = randomBytes(20).toString('hex');
        const jwk = { ...(await exportJWK(publicKey)), kid, alg: 'RS256', use: 'sig' };
        return { kid, privateKey, publicKey, jwk };
      })();
      keys.set(email, k);
    }
    return k;
  };

  const nowS = (): number => Math.floor(now() / 1000);

  const mint = (kind: TokenRecord['kind'], subject: string, scopes: string[]): { token: string; expiresIn: number } => {
    // Forget tokens that expired more than a day ago; the rest still answer 'expired'.
    const t = now();
    for (const [k, v] of tokens) if (v.expiresAt < t - 86_400_000) tokens.delete(k);
    const token = `ya29.emu.${randomBytes(32).toString('base64url')}`;
    tokens.set(token, { kind, subject, scopes: [...scopes], expiresAt: t + tokenLifetimeS * 1000 });
    return { token, expiresIn: tokenLifetimeS };
  };

  const verifyAccessToken = (token: string): VerifiedToken => {
    const rec = tokens.get(token);
    if (!rec) return undefined;
    if (rec.expiresAt <= now()) return 'expired';
    return rec.kind === 'user' ? { kind: 'user', user: rec.subject, scopes: [...rec.scopes] } : { kind: 'service-account', email: rec.subject };
  };

  // ---------------------------------------------------------------- metadata server

  const metadataToken = (scopesParam: string | null): unknown => {
    const scopes = scopesParam ? scopesParam.split(/[,\s]+/).filter((s) => s !== '') : DEFAULT_RUNTIME_SCOPES;
    const scopesKey = [...scopes].sort().join(' ');
    const current = runtimeToken ? tokens.get(runtimeToken.token) : undefined;
    // Like the real metadata server, hand out the cached token until it nears expiry.
    const reuseMarginMs = Math.min(300, tokenLifetimeS / 2) * 1000;
    if (runtimeToken && current && runtimeToken.scopesKey === scopesKey && current.expiresAt - now() > reuseMarginMs) {
      return { access_token: runtimeToken.token, expires_in: Math.floor((current.expiresAt - now()) / 1000), token_type: 'Bearer' };
    }
    const { token, expiresIn } = mint('service-account', runtimeSa, scopes);
    runtimeToken = { token, scopesKey };
    counters.metadataTokens++;
    return { access_token: token, expires_in: expiresIn, token_type: 'Bearer' };
  };

  const handleMetadata = (req: IncomingMessage, res: ServerResponse, url: URL): void => {
    const text = (status: number, body: string, type = 'application/text'): void => {
      res.writeHead(status, { 'Metadata-Flavor': 'Google', 'Content-Type': type, 'Content-Length': String(Buffer.byteLength(body)) });
      res.end(body);
    };
    const json = (body: unknown): void => text(200, JSON.stringify(body), 'application/json');
    if (req.headers['metadata-flavor'] !== 'Google') {
      text(403, 'Missing required header "Metadata-Flavor": "Google"\n', 'text/plain; charset=utf-8');
      return;
    }
    if (req.headers['x-forwarded-for'] !== undefined) {
      text(403, 'Request denied: the metadata server refuses requests with an X-Forwarded-For header.\n', 'text/plain; charset=utf-8');
      return;
    }
    if (req.method !== 'GET') {
      text(405, 'Method not allowed\n', 'text/plain; charset=utf-8');
      return;
    }
    const path = url.pathname.slice('/computeMetadata/v1'.length);
    const recursive = url.searchParams.get('recursive') === 'true';
    const sa = /^\/instance\/service-accounts\/([^/]+)(\/.*)?$/.exec(path);
    if (sa) {
      const who = decodeURIComponent(sa[1] ?? '').toLowerCase();
      if (who !== 'default' && who !== runtimeSa) {
        text(404, 'Not Found\n', 'text/plain; charset=utf-8');
        return;
      }
      const rest = sa[2] ?? '/';
      const scopes = runtimeToken ? (tokens.get(runtimeToken.token)?.scopes ?? DEFAULT_RUNTIME_SCOPES) : DEFAULT_RUNTIME_SCOPES;
      switch (rest) {
        case '/':
          if (recursive) json({ aliases: ['default'], email: runtimeSa, scopes });
          else text(200, 'aliases\nemail\nidentity\nscopes\ntoken\n');
          return;
        case '/email':
          text(200, runtimeSa);
          return;
        case '/aliases':
          text(200, 'default\n');
          return;
        case '/scopes':
          text(200, `${scopes.join('\n')}\n`);
          return;
        case '/token':
          json(metadataToken(url.searchParams.get('scopes')));
          return;
        default:
          text(404, 'Not Found\n', 'text/plain; charset=utf-8');
          return;
      }
    }
    switch (path) {
      case '':
      case '/':
        text(200, 'instance/\nproject/\nuniverse/\n');
        return;
      case '/instance':
      case '/instance/':
        // google-auth-library's availability ping (gcp-metadata isAvailable).
        if (recursive) json({ id: numericProjectId, serviceAccounts: { default: { email: runtimeSa }, [runtimeSa]: { email: runtimeSa } } });
        else text(200, 'id\nservice-accounts/\nzone\n');
        return;
      case '/instance/id':
        text(200, numericProjectId);
        return;
      case '/instance/zone':
        text(200, `projects/${numericProjectId}/zones/us-central1-1`);
        return;
      case '/instance/service-accounts':
      case '/instance/service-accounts/':
        text(200, `default/\n${runtimeSa}/\n`);
        return;
      case '/project/project-id':
        text(200, projectId);
        return;
      case '/project/numeric-project-id':
        text(200, numericProjectId);
        return;
      case '/universe/universe-domain':
        text(200, 'googleapis.com');
        return;
      default:
        text(404, 'Not Found\n', 'text/plain; charset=utf-8');
    }
  };

  // ---------------------------------------------------------------- IAM Credentials signJwt

  const signJwt = async (req: IncomingMessage, target: string): Promise<unknown> => {
    const auth = req.headers['authorization'];
    const bearer = typeof auth === 'string' ? /^Bearer\s+(\S+)\s*$/i.exec(auth)?.[1] : undefined;
    const unauth = (message: string, reason: string): RpcError =>
      new RpcError(401, 'UNAUTHENTICATED', message, [
        errorInfo(reason, 'googleapis.com', { service: 'iamcredentials.googleapis.com', method: SIGN_JWT_METHOD }),
      ]);
    if (!bearer) throw unauth(MISSING_CREDENTIAL_MESSAGE, 'CREDENTIALS_MISSING');
    const rec = tokens.get(bearer);
    if (!rec) throw unauth(INVALID_CREDENTIAL_MESSAGE, 'ACCESS_TOKEN_TYPE_UNSUPPORTED');
    if (rec.expiresAt <= now()) throw unauth(INVALID_CREDENTIAL_MESSAGE, 'ACCESS_TOKEN_EXPIRED');
    if (!rec.scopes.some((s) => IAM_SCOPES.includes(s))) {
      throw new RpcError(403, 'PERMISSION_DENIED', 'Request had insufficient authentication scopes.', [
        errorInfo('ACCESS_TOKEN_SCOPE_INSUFFICIENT', 'googleapis.com', { service: 'iamcredentials.googleapis.com', method: SIGN_JWT_METHOD }),
      ]);
    }
    const body = await readBody(req);
    let parsed: unknown;
    try {
      parsed = body.length === 0 ? {} : JSON.parse(body.toString('utf8'));
    } catch {
      throw new RpcError(400, 'INVALID_ARGUMENT', 'Invalid JSON payload received. Unexpected token.');
    }
    if (!serviceAccounts.has(target)) {
      throw new RpcError(404, 'NOT_FOUND', `Not found; Gaia id not found for email ${target}`);
    }
    const caller = rec.kind === 'service-account' ? rec.subject : undefined;
    if (!caller || !(signers.get(target)?.has(caller) ?? false)) {
      throw new RpcError(403, 'PERMISSION_DENIED', "Permission 'iam.serviceAccounts.signJwt' denied on resource (or it may not exist).", [
        errorInfo('IAM_PERMISSION_DENIED', 'iam.googleapis.com', { permission: 'iam.serviceAccounts.signJwt' }),
      ]);
    }
    const payload = parsed !== null && typeof parsed === 'object' ? (parsed as Record<string, unknown>)['payload'] : undefined;
    if (typeof payload !== 'string' || payload === '') {
      throw new RpcError(400, 'INVALID_ARGUMENT', 'Payload must be a JSON object.');
    }
    let claims: unknown;
    try {
      claims = JSON.parse(payload);
    } catch {
      throw new RpcError(400, 'INVALID_ARGUMENT', 'Payload must be a JSON object.');
    }
    if (claims === null || typeof claims !== 'object' || Array.isArray(claims)) {
      throw new RpcError(400, 'INVALID_ARGUMENT', 'Payload must be a JSON object.');
    }
    const exp = (claims as Record<string, unknown>)['exp'];
    if (exp !== undefined && (typeof exp !== 'number' || exp > nowS() + MAX_SIGNED_EXP_S)) {
      throw new RpcError(400, 'INVALID_ARGUMENT', 'Payload exp must be an integer timestamp no more than 12 hours in the future.');
    }
    const key = await keyOf(target);
    const signedJwt = await new CompactSign(new TextEncoder().encode(payload))
      .setProtectedHeader({ alg: 'RS256', kid: key.kid, typ: 'JWT' })
      .sign(key.privateKey);
    counters.signJwt++;
    return { keyId: key.kid, signedJwt };
  };

  // ---------------------------------------------------------------- OAuth 2.0 token endpoint

  const grant = async (req: IncomingMessage): Promise<unknown> => {
    const form = new URLSearchParams((await readBody(req)).toString('utf8'));
    const grantType = form.get('grant_type') ?? '';
    if (grantType !== JWT_BEARER) throw new OAuthError(400, 'unsupported_grant_type', `Invalid grant_type: ${grantType}`);
    const assertion = form.get('assertion');
    if (!assertion) throw new OAuthError(400, 'invalid_request', 'Missing required parameter: assertion');
    let claims: Record<string, unknown>;
    let kid: string | undefined;
    try {
      const header = decodeProtectedHeader(assertion);
      if (header.alg !== 'RS256') throw new Error('alg');
      kid = header.kid;
      const [, payloadPart] = assertion.split('.');
      const decoded: unknown = JSON.parse(Buffer.from(payloadPart ?? '', 'base64url').toString('utf8'));
      if (decoded === null || typeof decoded !== 'object' || Array.isArray(decoded)) throw new Error('payload');
      claims = decoded as Record<string, unknown>;
    } catch {
      throw new OAuthError(400, 'invalid_grant', 'Invalid JWT Signature.');
    }
    const iss = typeof claims['iss'] === 'string' ? claims['iss'].toLowerCase() : '';
    if (!serviceAccounts.has(iss)) throw new OAuthError(400, 'invalid_grant', 'Invalid grant: account not found');
    const key = await keyOf(iss);
    try {
      if (kid !== undefined && kid !== key.kid) throw new Error('kid');
      await compactVerify(assertion, key.publicKey, { algorithms: ['RS256'] });
    } catch {
      throw new OAuthError(400, 'invalid_grant', 'Invalid JWT Signature.');
    }
    const iat = claims['iat'];
    const exp = claims['exp'];
    const t = nowS();
    if (
      typeof iat !== 'number' ||
      typeof exp !== 'number' ||
      !Number.isFinite(iat) ||
      !Number.isFinite(exp) ||
      exp <= iat ||
      exp - iat > MAX_ASSERTION_LIFETIME_S ||
      iat > t + clockSkewS ||
      exp < t - clockSkewS
    ) {
      throw new OAuthError(400, 'invalid_grant', TIMEFRAME_MESSAGE);
    }
    const aud = claims['aud'];
    if (typeof aud !== 'string' || !(aud === tokenUrl || GOOGLE_TOKEN_AUDIENCES.includes(aud))) {
      throw new OAuthError(400, 'invalid_grant', `Invalid JWT: Failed audience check. The right audience is ${tokenUrl}`);
    }
    const scopes = [...new Set((typeof claims['scope'] === 'string' ? claims['scope'] : '').split(' ').filter((s) => s !== ''))];
    if (scopes.length === 0) throw new OAuthError(400, 'invalid_scope', 'Invalid OAuth scope or ID token audience provided.');
    const sub = claims['sub'] ?? claims['prn'];
    if (sub === undefined || (typeof sub === 'string' && sub.toLowerCase() === iss)) {
      // No delegation: a token for the service account itself.
      const { token, expiresIn } = mint('service-account', iss, scopes);
      counters.serviceAccountGrants[iss] = (counters.serviceAccountGrants[iss] ?? 0) + 1;
      return { access_token: token, expires_in: expiresIn, token_type: 'Bearer' };
    }
    const user = typeof sub === 'string' ? sub.toLowerCase() : '';
    if (!isEmail(user) || (users.size > 0 && !users.has(user))) {
      throw new OAuthError(400, 'invalid_grant', 'Invalid email or User ID');
    }
    const d = delegations.get(iss);
    if (!d || scopes.some((s) => !d.scopes.has(s))) throw new OAuthError(401, 'unauthorized_client', UNAUTHORIZED_CLIENT_MESSAGE);
    const { token, expiresIn } = mint('user', user, scopes);
    counters.tokenGrants[user] = (counters.tokenGrants[user] ?? 0) + 1;
    return { access_token: token, expires_in: expiresIn, token_type: 'Bearer' };
  };

  // ---------------------------------------------------------------- server

  const sendJson = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void => {
    if (res.headersSent || res.destroyed) return;
    const text = JSON.stringify(body, null, 2);
    res.writeHead(status, {
      'Content-Type': 'application/json; charset=utf-8',
      'Content-Length': String(Buffer.byteLength(text)),
      ...headers,
    });
    res.end(text);
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const path = url.pathname;
    if (path === '/computeMetadata/v1' || path.startsWith('/computeMetadata/v1/')) {
      handleMetadata(req, res, url);
      return;
    }
    const sign = /^\/v1\/projects\/([^/]+)\/serviceAccounts\/([^/:]+):signJwt$/.exec(path);
    if (sign) {
      if (req.method !== 'POST') {
        sendJson(res, 405, new RpcError(405, 'METHOD_NOT_ALLOWED', `Method ${req.method ?? ''} not allowed`).body());
        return;
      }
      try {
        sendJson(res, 200, await signJwt(req, safeDecode(sign[2] ?? '').toLowerCase()));
      } catch (err) {
        if (!(err instanceof RpcError)) throw err;
        counters.signJwtRefused++;
        sendJson(res, err.code, err.body(), err.code === 401 ? { 'WWW-Authenticate': 'Bearer realm="https://accounts.google.com/"' } : {});
      }
      return;
    }
    if (path === '/token') {
      if (req.method !== 'POST') {
        sendJson(res, 405, { error: 'invalid_request', error_description: 'Token requests must be POSTs.' });
        return;
      }
      try {
        sendJson(res, 200, await grant(req), { 'Cache-Control': 'no-cache, no-store, max-age=0, must-revalidate', Pragma: 'no-cache' });
      } catch (err) {
        if (!(err instanceof OAuthError)) throw err;
        counters.tokenRefused++;
        sendJson(res, err.httpStatus, { error: err.error, error_description: err.message });
      }
      return;
    }
    if (req.method === 'GET' && (path === '/service_accounts/v1/jwk' || path.startsWith('/service_accounts/v1/jwk/'))) {
      const who = path.length > '/service_accounts/v1/jwk/'.length ? safeDecode(path.slice('/service_accounts/v1/jwk/'.length)).toLowerCase() : undefined;
      if (who !== undefined && !serviceAccounts.has(who)) {
        sendJson(res, 404, new RpcError(404, 'NOT_FOUND', `Not found; Gaia id not found for email ${who}`).body());
        return;
      }
      const accounts = who !== undefined ? [who] : [...serviceAccounts].sort();
      const jwks = await Promise.all(accounts.map(async (a) => (await keyOf(a)).jwk));
      sendJson(res, 200, { keys: jwks });
      return;
    }
    if (req.method === 'GET' && path === '/') {
      sendJson(res, 200, { service: 'google-auth-emulator', runtimeServiceAccount: runtimeSa, projectId });
      return;
    }
    sendJson(res, 404, new RpcError(404, 'NOT_FOUND', `Not Found: ${req.method ?? ''} ${path}`).body());
  };

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      process.emitWarning(`google auth emulator: ${(err as Error)?.stack ?? String(err)}`);
      if (!res.headersSent) sendJson(res, 500, new RpcError(500, 'INTERNAL', 'Internal error encountered.').body());
      else res.destroy();
    });
  });
  server.keepAliveTimeout = 5000;
  const host = '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const url = `http://${host}:${port}/`;
  const tokenUrl = `${url}token`;
  // Generate the runtime account's key now, so the first signJwt is not slow.
  await keyOf(runtimeSa);

  let closing: Promise<void> | undefined;
  return {
    url,
    host,
    port,
    metadataHost: `${host}:${port}`,
    tokenUrl,
    iamRootUrl: url,
    jwksUrl: `${url}service_accounts/v1/jwk`,
    allowSigning(caller, target) {
      const c = caller.toLowerCase();
      const t = target.toLowerCase();
      serviceAccounts.add(c);
      serviceAccounts.add(t);
      let set = signers.get(t);
      if (!set) signers.set(t, (set = new Set()));
      set.add(c);
    },
    delegate(sa, g) {
      if (!g.clientId) throw new Error('delegate: clientId is required');
      const e = sa.toLowerCase();
      serviceAccounts.add(e);
      delegations.set(e, { clientId: g.clientId, scopes: new Set(g.scopes) });
    },
    revoke(sa) {
      delegations.delete(sa.toLowerCase());
    },
    addUser(address) {
      users.add(address.toLowerCase());
    },
    expireTokensOf(user) {
      const t = now();
      for (const rec of tokens.values()) {
        if (rec.kind === 'user' && rec.subject === user.toLowerCase()) rec.expiresAt = Math.min(rec.expiresAt, t - 1);
      }
    },
    setTokenLifetime(seconds) {
      tokenLifetimeS = positive(seconds, 'setTokenLifetime');
    },
    verifyAccessToken,
    stats() {
      return {
        ...counters,
        tokenGrants: { ...counters.tokenGrants },
        serviceAccountGrants: { ...counters.serviceAccountGrants },
      };
    },
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closing;
    },
  };
}

function positive(n: number, what: string): number {
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${what} must be a positive number of seconds, got ${n}`);
  return n;
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

const MAX_BODY = 1024 * 1024;

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY) throw new Error('request body too large');
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}
