// Who may call what: bearer tokens, the scopes each method accepts, and userId resolution.
//
// Tokens: the development token "owner" (every user, every scope, no user of its own, like the
// Firestore emulator's "owner"), or a token the optional verifier knows (the Google auth
// emulator's verifyAccessToken). Anything else, expired tokens included, is 401.
// A minted user token covers its own user and its own scopes only.

import { ApiError, badRequest, noMailbox } from './errors.js';

export const OWNER_TOKEN = 'owner';

export type TokenInfo =
  | { kind: 'user'; user: string; scopes: string[] }
  | { kind: 'service-account'; email: string }
  | 'expired'
  | undefined;

export type TokenVerifier = (token: string) => TokenInfo;

/** Who is calling: the development owner, a delegated user, or a service account as itself. */
export type Caller = { kind: 'owner' } | { kind: 'user'; user: string; scopes: Set<string> } | { kind: 'service-account'; email: string };

const MAIL = 'https://mail.google.com/';
const G = 'https://www.googleapis.com/auth/';
export const SCOPES = {
  mail: MAIL,
  modify: `${G}gmail.modify`,
  readonly: `${G}gmail.readonly`,
  metadata: `${G}gmail.metadata`,
  insert: `${G}gmail.insert`,
  labels: `${G}gmail.labels`,
  compose: `${G}gmail.compose`,
  addonsRead: `${G}gmail.addons.current.message.readonly`,
  addonsMetadata: `${G}gmail.addons.current.message.metadata`,
  addonsAction: `${G}gmail.addons.current.message.action`,
  directoryUser: `${G}admin.directory.user`,
  directoryUserReadonly: `${G}admin.directory.user.readonly`,
  cloudPlatform: `${G}cloud-platform`,
} as const;

const S = SCOPES;
/** Scopes that give the whole message (not metadata only). */
const FULL_READ = [S.mail, S.modify, S.readonly];

/**
 * Per method, the scopes Google's API reference lists as accepting it ("Authorization scopes"
 * of each method page). gmail.metadata (and the add-on metadata scope) has extra limits checked
 * in checkScopes: no format=full/raw, no `q`.
 */
export const METHOD_SCOPES: Record<string, readonly string[]> = {
  getProfile: [S.mail, S.modify, S.compose, S.readonly, S.metadata],
  'labels.list': [S.mail, S.modify, S.readonly, S.labels, S.metadata],
  'labels.get': [S.mail, S.modify, S.readonly, S.labels, S.metadata],
  'messages.list': [S.mail, S.modify, S.readonly, S.metadata],
  'messages.get': [S.mail, S.modify, S.readonly, S.metadata, S.addonsRead, S.addonsMetadata, S.addonsAction],
  'messages.attachments.get': [S.mail, S.modify, S.readonly, S.addonsRead, S.addonsAction],
  'messages.insert': [S.mail, S.modify, S.insert],
  'messages.import': [S.mail, S.modify, S.insert],
  'messages.modify': [S.mail, S.modify],
  'messages.batchModify': [S.mail, S.modify],
  'messages.trash': [S.mail, S.modify],
  'messages.untrash': [S.mail, S.modify],
  'messages.delete': [S.mail],
  'messages.batchDelete': [S.mail],
  'history.list': [S.mail, S.modify, S.readonly, S.metadata],
  'threads.list': [S.mail, S.modify, S.readonly, S.metadata],
  'threads.get': [S.mail, S.modify, S.readonly, S.metadata],
  watch: [S.mail, S.modify, S.readonly, S.metadata],
  stop: [S.mail, S.modify, S.readonly, S.metadata],
  'directory.users.list': [S.directoryUser, S.directoryUserReadonly, S.cloudPlatform],
};

const WWW_AUTH = 'Bearer realm="https://accounts.google.com/"';

export const unauthenticated = (): ApiError =>
  new ApiError(
    401,
    'Request is missing required authentication credential. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.',
    'required',
    { location: 'Authorization', locationType: 'header', headers: { 'WWW-Authenticate': WWW_AUTH }, itemMessage: 'Login Required.' },
  );

export const invalidCredentials = (): ApiError =>
  new ApiError(
    401,
    'Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.',
    'authError',
    {
      location: 'Authorization',
      locationType: 'header',
      headers: { 'WWW-Authenticate': `${WWW_AUTH}, error=invalid_token` },
      itemMessage: 'Invalid Credentials',
    },
  );

export const insufficientScopes = (method: string): ApiError =>
  new ApiError(403, 'Request had insufficient authentication scopes.', 'insufficientPermissions', {
    itemMessage: 'Insufficient Permission',
    headers: {
      'WWW-Authenticate': `${WWW_AUTH}, error=insufficient_scope, scope="${(METHOD_SCOPES[method] ?? []).join(' ')}"`,
    },
  });

export const delegationDenied = (user: string): ApiError => new ApiError(403, `Delegation denied for ${user}`, 'forbidden');

export const directoryNotAuthorized = (): ApiError => new ApiError(403, 'Not Authorized to access this resource/api', 'forbidden');

/** The caller behind an Authorization header; throws the 401 Google answers. */
export function authenticate(header: string | string[] | undefined, verifier: TokenVerifier | undefined): Caller {
  if (typeof header !== 'string') throw unauthenticated();
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
  if (!m?.[1]) throw unauthenticated();
  const token = m[1];
  if (token === OWNER_TOKEN) return { kind: 'owner' };
  const info = verifier?.(token);
  if (info === undefined || info === 'expired') throw invalidCredentials();
  if (info.kind === 'service-account') return { kind: 'service-account', email: info.email };
  return { kind: 'user', user: info.user.toLowerCase(), scopes: new Set(info.scopes) };
}

/**
 * Throws 403 insufficientPermissions unless the caller's scopes allow this call. The metadata
 * scopes allow messages.get and threads.get only in formats minimal and metadata, and
 * messages.list and threads.list only without `q` (Google: 403 forbidden).
 */
export function checkScopes(caller: Caller, method: string, params: URLSearchParams): void {
  if (caller.kind !== 'user') return;
  const accepted = METHOD_SCOPES[method] ?? [];
  if (!accepted.some((s) => caller.scopes.has(s))) throw insufficientScopes(method);
  if (FULL_READ.some((s) => caller.scopes.has(s))) return;
  if (method === 'messages.get' || method === 'threads.get') {
    const format = (params.get('format') ?? 'full').toLowerCase();
    const metadataOnly = caller.scopes.has(S.metadata) || caller.scopes.has(S.addonsMetadata);
    const readOnlyAddon = caller.scopes.has(S.addonsRead) || caller.scopes.has(S.addonsAction);
    if (metadataOnly && !readOnlyAddon && (format === 'full' || format === 'raw')) {
      throw new ApiError(403, `Metadata scope doesn't allow format ${format.toUpperCase()}`, 'forbidden');
    }
  }
  if ((method === 'messages.list' || method === 'threads.list') && (params.get('q') ?? '') !== '') {
    throw new ApiError(403, "Metadata scope does not support 'q' parameter", 'forbidden');
  }
}

/**
 * The mailbox address a Gmail call is for. `me` is the token's user; the owner token has no
 * user, so `me` with it is 400. A user token may only name its own user (403 "Delegation
 * denied for <token user>"). A service account calling as itself has no mailbox: 400
 * failedPrecondition, as Gmail answers.
 */
export function resolveUser(caller: Caller, userId: string): string {
  const asked = userId.toLowerCase();
  switch (caller.kind) {
    case 'owner':
      if (asked === 'me') {
        throw badRequest(
          'userId "me" needs a token that belongs to a user: the development token "owner" has no user. Give the mailbox address as userId.',
        );
      }
      return asked;
    case 'service-account':
      throw noMailbox();
    case 'user':
      if (asked === 'me' || asked === caller.user) return caller.user;
      throw delegationDenied(caller.user);
  }
}

/**
 * Directory users.list: the owner may list any domain; a user token is the admin's and may list
 * its own domain (or the customer, my_customer). A service account without delegation is not an
 * admin: 403, as Google answers.
 */
export function checkDirectory(caller: Caller, params: URLSearchParams): void {
  if (caller.kind === 'owner') return;
  if (caller.kind === 'service-account') throw directoryNotAuthorized();
  const domain = params.get('domain')?.toLowerCase();
  if (domain && domain !== caller.user.split('@')[1]) throw directoryNotAuthorized();
}
