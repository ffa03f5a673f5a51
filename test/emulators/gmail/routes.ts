// HTTP routes: the Gmail v1 REST paths googleapis calls (rootUrl + "gmail/v1/users/{userId}/…",
// media uploads under "upload/gmail/v1/…") and the Admin SDK Directory users.list.
//
// Every call goes through the same steps: route → latency → auth (the token "owner" or one the
// token verifier knows; anything else 401, see auth.ts) → scopes (403 insufficientPermissions)
// → user (userId "me" is the token's user; a user token may only name its own user, 403
// "Delegation denied"; then an address with a mailbox, others 400 failedPrecondition, see
// errors.ts) → injected hangs and faults → quota → the method. Before latency come the tests'
// controls: refuseCalls (answered 503 at once), then holdCalls (held at a gate). Directory calls
// get latency, auth, scopes and the admin's domain check only.
// A hung call is never answered: its body is read and dropped and the response is held open
// until the client goes away or the emulator closes (which destroys it); it costs no quota.

import type { IncomingMessage, ServerResponse } from 'node:http';
import { authenticate, checkDirectory, checkScopes, resolveUser, type TokenVerifier } from './auth.js';
import { ApiError, badRequest, invalidArgument, noMailbox, notFound, rateLimited } from './errors.js';
import { parseBatch, serveBatch } from './batch.js';
import { applyFields, parseFields } from './fields.js';
import { fromBase64Url, parseAttachmentId, parseHeaderBlock, splitMultipart } from './mime.js';
import { METHOD_COSTS, type FaultInjector, type HangInjector, type QuotaManager } from './quota.js';
import { hash32 } from './random.js';
import type { HistoryType, Mailbox, MessageFormat } from './store.js';
import type { Watches } from './watch.js';

export interface EmulatorState {
  mailboxes: Map<string, Mailbox>;
  quota: QuotaManager;
  quotaStatus: 429 | 403;
  faults: FaultInjector;
  hangs: HangInjector;
  latencyMs: number;
  calls: Record<string, number>;
  /** Calls by the user their path names, then by method. */
  callsByUser: Map<string, Record<string, number>>;
  rateLimited: number;
  faultCount: number;
  hungCount: number;
  /** Responses of hung calls still open; the emulator destroys them when it closes. */
  hanging: Set<ServerResponse>;
  /** Message ids whose messages.get always answers 500 (a message Gmail cannot serve). */
  failing: Set<string>;
  /** Per method, how many more calls are applied and then never answered (the answer is lost). */
  losing: Map<string, number>;
  /** Calls applied whose answer was then withheld. */
  lostCount: number;
  closed: boolean;
  /** Concurrent Gmail calls allowed per user; more are answered 429 "Too many concurrent requests for user". 0 = no limit. */
  maxConcurrent: number;
  /** Gmail calls in flight, by the user named in the path. */
  inFlight: Map<string, number>;
  /** Calls refused for too many concurrent requests (also counted in rateLimited). */
  concurrencyRefused: number;
  /** The emulator's own root URL: batch parts are served through it. */
  selfUrl: string;
  /** Knows the tokens other than "owner" (the Google auth emulator's verifyAccessToken). */
  tokenVerifier?: TokenVerifier;
  /** Watches and the notifications they publish (watch.ts). */
  watches: Watches;
  /** Calls held back, by gateKey(user, method): the first `left` pass, the rest wait for `opened`. */
  gates: Map<string, Gate>;
  /** Calls waiting at a gate now. */
  heldNow: number;
  /** By gateKey(user, method): the first `left` calls pass, then `count` more are answered 503 at once, unapplied (before any gate). */
  refusing: Map<string, { left: number; count: number }>;
  /** Calls answered 503 that way. */
  refusedCount: number;
  /** Waits `ms`; resolves early (with false) when the emulator closes or `res` closes (the client went away). */
  delay(ms: number, res?: ServerResponse): Promise<boolean>;
}

export interface Gate {
  left: number;
  opened: Promise<void>;
}

export function gateKey(user: string, method: string): string {
  return `${user.toLowerCase()} ${method}`;
}

/** Resolves true once the gate opens (the emulator's close opens it too), false when the client goes away. */
function through(state: EmulatorState, gate: Gate, res: ServerResponse): Promise<boolean> {
  if (res.destroyed) return Promise.resolve(false);
  state.heldNow++;
  return new Promise<boolean>((resolve) => {
    let waiting = true;
    const settle = (passed: boolean): void => {
      if (!waiting) return;
      waiting = false;
      state.heldNow--;
      resolve(passed);
    };
    const gone = (): void => settle(false);
    res.once('close', gone);
    void gate.opened.then(() => {
      res.off('close', gone);
      settle(!res.destroyed);
    });
  });
}

const MAX_BODY = 64 * 1024 * 1024;

interface Route {
  name: string;
  method: string;
  pattern: RegExp;
  gmail: boolean;
}

const U = '([^/]+)';
const ROUTES: Route[] = [
  { name: 'getProfile', method: 'GET', pattern: new RegExp(`^/gmail/v1/users/${U}/profile$`), gmail: true },
  { name: 'watch', method: 'POST', pattern: new RegExp(`^/gmail/v1/users/${U}/watch$`), gmail: true },
  { name: 'stop', method: 'POST', pattern: new RegExp(`^/gmail/v1/users/${U}/stop$`), gmail: true },
  { name: 'labels.list', method: 'GET', pattern: new RegExp(`^/gmail/v1/users/${U}/labels$`), gmail: true },
  { name: 'labels.get', method: 'GET', pattern: new RegExp(`^/gmail/v1/users/${U}/labels/${U}$`), gmail: true },
  { name: 'messages.list', method: 'GET', pattern: new RegExp(`^/gmail/v1/users/${U}/messages$`), gmail: true },
  { name: 'messages.insert', method: 'POST', pattern: new RegExp(`^(?:/upload)?/gmail/v1/users/${U}/messages$`), gmail: true },
  { name: 'messages.import', method: 'POST', pattern: new RegExp(`^(?:/upload)?/gmail/v1/users/${U}/messages/import$`), gmail: true },
  { name: 'messages.batchModify', method: 'POST', pattern: new RegExp(`^/gmail/v1/users/${U}/messages/batchModify$`), gmail: true },
  { name: 'messages.batchDelete', method: 'POST', pattern: new RegExp(`^/gmail/v1/users/${U}/messages/batchDelete$`), gmail: true },
  { name: 'messages.attachments.get', method: 'GET', pattern: new RegExp(`^/gmail/v1/users/${U}/messages/${U}/attachments/${U}$`), gmail: true },
  { name: 'messages.get', method: 'GET', pattern: new RegExp(`^/gmail/v1/users/${U}/messages/${U}$`), gmail: true },
  { name: 'messages.delete', method: 'DELETE', pattern: new RegExp(`^/gmail/v1/users/${U}/messages/${U}$`), gmail: true },
  { name: 'messages.modify', method: 'POST', pattern: new RegExp(`^/gmail/v1/users/${U}/messages/${U}/modify$`), gmail: true },
  { name: 'messages.trash', method: 'POST', pattern: new RegExp(`^/gmail/v1/users/${U}/messages/${U}/trash$`), gmail: true },
  { name: 'messages.untrash', method: 'POST', pattern: new RegExp(`^/gmail/v1/users/${U}/messages/${U}/untrash$`), gmail: true },
  { name: 'history.list', method: 'GET', pattern: new RegExp(`^/gmail/v1/users/${U}/history$`), gmail: true },
  { name: 'threads.list', method: 'GET', pattern: new RegExp(`^/gmail/v1/users/${U}/threads$`), gmail: true },
  { name: 'threads.get', method: 'GET', pattern: new RegExp(`^/gmail/v1/users/${U}/threads/${U}$`), gmail: true },
  { name: 'directory.users.list', method: 'GET', pattern: /^\/admin\/directory\/v1\/users$/, gmail: false },
];

function matchRoute(method: string, path: string): { route: Route; args: string[] } | null {
  for (const route of ROUTES) {
    if (route.method !== method) continue;
    const m = route.pattern.exec(path);
    if (m) {
      const args = m.slice(1).map((a) => {
        try {
          return decodeURIComponent(a ?? '');
        } catch {
          return a ?? '';
        }
      });
      return { route, args };
    }
  }
  return null;
}

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.headersSent || res.destroyed) return;
  if (status === 204) {
    res.writeHead(204, headers);
    res.end();
    return;
  }
  const text = JSON.stringify(body, null, 2);
  res.writeHead(status, {
    'Content-Type': 'application/json; charset=UTF-8',
    'Content-Length': String(Buffer.byteLength(text)),
    ...headers,
  });
  res.end(text);
}

function sendError(res: ServerResponse, err: ApiError): void {
  const headers: Record<string, string> = { ...(err.options.headers ?? {}) };
  if (err.options.retryAfterSeconds !== undefined) headers['Retry-After'] = String(err.options.retryAfterSeconds);
  send(res, err.code, err.body(), headers);
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY) throw new ApiError(413, 'Request Entity Too Large', 'uploadTooLarge');
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

function parseJson(body: Buffer): Record<string, unknown> {
  if (body.length === 0) return {};
  try {
    const v: unknown = JSON.parse(body.toString('utf8'));
    if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new Error('not an object');
    return v as Record<string, unknown>;
  } catch {
    throw invalidArgument('Invalid JSON payload received.');
  }
}

function stringList(v: unknown, field: string): string[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) {
    throw invalidArgument(`Invalid value at '${field}'`);
  }
  return v as string[];
}

function intParam(params: URLSearchParams, name: string, def: number, max: number): number {
  const v = params.get(name);
  if (v === null || v === '') return def;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw invalidArgument(`Invalid value for ${name}: ${v}`);
  return n === 0 ? def : Math.min(n, max);
}

function boolParam(params: URLSearchParams, name: string): boolean {
  const v = params.get(name);
  if (v === null || v === '' || v === 'false') return false;
  if (v === 'true') return true;
  throw invalidArgument(`Invalid value for ${name}: ${v}`);
}

function formatParam(params: URLSearchParams, allowRaw: boolean): MessageFormat {
  const v = (params.get('format') ?? 'full').toLowerCase();
  if (v === 'minimal' || v === 'metadata' || v === 'full' || (allowRaw && v === 'raw')) return v;
  throw invalidArgument(`Invalid value for format: ${v}`);
}

const HISTORY_TYPES: readonly HistoryType[] = ['messageAdded', 'messageDeleted', 'labelAdded', 'labelRemoved'];

/** The raw message and metadata of an insert or import, from any of the three forms googleapis sends. */
async function messageUpload(
  req: IncomingMessage,
  url: URL,
): Promise<{ raw: Buffer; meta: Record<string, unknown> }> {
  const body = await readBody(req);
  if (url.pathname.startsWith('/upload/')) {
    const uploadType = url.searchParams.get('uploadType') ?? 'media';
    if (uploadType === 'media') return { raw: body, meta: {} };
    if (uploadType === 'multipart') {
      const ct = req.headers['content-type'] ?? '';
      const boundary = /boundary=(?:"([^"]+)"|([^;\s]+))/i.exec(ct);
      const b = boundary?.[1] ?? boundary?.[2];
      if (!b) throw badRequest('Missing multipart boundary');
      const { parts } = splitMultipart(body, 0, body.length, b);
      const [metaPart, mediaPart] = parts;
      if (!metaPart || !mediaPart) throw badRequest('Multipart upload needs a metadata part and a media part');
      const metaBody = parseHeaderBlock(body, metaPart.start, metaPart.end).bodyStart;
      const mediaBody = parseHeaderBlock(body, mediaPart.start, mediaPart.end).bodyStart;
      return {
        meta: parseJson(body.subarray(metaBody, metaPart.end)),
        raw: Buffer.from(body.subarray(mediaBody, mediaPart.end)),
      };
    }
    throw badRequest(`Unsupported uploadType: ${uploadType}`);
  }
  const meta = parseJson(body);
  if (typeof meta['raw'] !== 'string' || meta['raw'] === '') {
    throw invalidArgument("'raw' RFC822 payload message string or uploading message via /upload/* URL required");
  }
  return { raw: fromBase64Url(meta['raw']), meta };
}

function directoryUser(address: string): Record<string, unknown> {
  const local = address.split('@')[0] ?? '';
  const words = local.split(/[._-]+/).filter((w) => w !== '');
  const cap = (w: string): string => w.charAt(0).toUpperCase() + w.slice(1);
  const givenName = cap(words[0] ?? local);
  const familyName = words.length > 1 ? words.slice(1).map(cap).join(' ') : 'User';
  const id = `1${String(hash32(address)).padStart(10, '0')}${String(hash32(`${address}#`)).padStart(10, '0')}`;
  return {
    kind: 'admin#directory#user',
    id,
    etag: `"${hash32(`etag:${address}`).toString(16)}"`,
    primaryEmail: address,
    name: { givenName, familyName, fullName: `${givenName} ${familyName}` },
    isAdmin: false,
    isDelegatedAdmin: false,
    lastLoginTime: '1970-01-01T00:00:00.000Z',
    creationTime: '2020-01-01T00:00:00.000Z',
    agreedToTerms: true,
    suspended: false,
    archived: false,
    changePasswordAtNextLogin: false,
    ipWhitelisted: false,
    emails: [{ address, primary: true }],
    customerId: 'C0emulat0',
    orgUnitPath: '/',
    isMailboxSetup: true,
    isEnrolledIn2Sv: false,
    isEnforcedIn2Sv: false,
    includeInGlobalAddressList: true,
  };
}

function listDirectoryUsers(state: EmulatorState, params: URLSearchParams): unknown {
  const domain = params.get('domain')?.toLowerCase();
  const customer = params.get('customer');
  if (!domain && !customer) throw badRequest('Bad Request');
  let users = [...state.mailboxes.keys()].sort();
  if (domain) {
    users = users.filter((a) => a.endsWith(`@${domain}`));
    // The Directory API refuses domains outside the customer's account.
    if (users.length === 0) throw new ApiError(403, 'Not Authorized to access this resource/api', 'forbidden');
  }
  const max = intParam(params, 'maxResults', 100, 500);
  let start = 0;
  const token = params.get('pageToken');
  if (token) {
    start = Number(Buffer.from(token, 'base64url').toString('latin1').replace(/^u/, ''));
    if (!Number.isInteger(start) || start < 0) throw invalidArgument('Invalid pageToken');
  }
  const page = users.slice(start, start + max);
  const out: Record<string, unknown> = { kind: 'admin#directory#users', etag: `"${hash32(users.join(','))}"` };
  if (page.length > 0) {
    out['users'] = page.map(directoryUser);
  }
  if (start + max < users.length) {
    out['nextPageToken'] = Buffer.from(`u${start + max}`, 'latin1').toString('base64url');
  }
  return out;
}

async function gmailCall(
  name: string,
  args: string[],
  mb: Mailbox,
  req: IncomingMessage,
  url: URL,
  watches: Watches,
): Promise<{ status: number; body: unknown }> {
  const p = url.searchParams;
  switch (name) {
    case 'getProfile':
      return { status: 200, body: mb.profile() };
    case 'watch':
      return { status: 200, body: await watches.watch(mb.address, parseJson(await readBody(req)), mb.historyId) };
    case 'stop':
      await readBody(req);
      watches.stop(mb.address);
      return { status: 204, body: null };
    case 'labels.list':
      return { status: 200, body: { labels: mb.labelsJson() } };
    case 'labels.get':
      return { status: 200, body: mb.labelJson(args[1] ?? '') };
    case 'messages.list':
      return { status: 200, body: mb.list(listOptions(p)) };
    case 'threads.list':
      return { status: 200, body: await mb.listThreads(listOptions(p)) };
    case 'messages.get': {
      const rec = mb.get(args[1] ?? '');
      return { status: 200, body: await mb.messageJson(rec, formatParam(p, true), p.getAll('metadataHeaders')) };
    }
    case 'threads.get': {
      return { status: 200, body: await mb.threadJson(args[1] ?? '', formatParam(p, false), p.getAll('metadataHeaders')) };
    }
    case 'messages.attachments.get': {
      const rec = mb.get(args[1] ?? '');
      const ref = parseAttachmentId(args[2] ?? '');
      if (!ref || ref.messageId !== rec.id) throw notFound();
      return { status: 200, body: await mb.attachment(rec, ref.partId) };
    }
    case 'messages.insert':
    case 'messages.import': {
      const { raw, meta } = await messageUpload(req, url);
      const source = p.get('internalDateSource') ?? (name === 'messages.import' ? 'dateHeader' : 'receivedTime');
      if (source !== 'dateHeader' && source !== 'receivedTime') {
        throw invalidArgument(`Invalid value for internalDateSource: ${source}`);
      }
      const rec = mb.addMessage(raw, {
        labelIds: stringList(meta['labelIds'], 'labelIds'),
        threadId: typeof meta['threadId'] === 'string' ? meta['threadId'] : undefined,
        internalDateSource: source,
      });
      return { status: 200, body: shortMessage(rec) };
    }
    case 'messages.delete':
      mb.deleteMessage(args[1] ?? '');
      return { status: 204, body: null };
    case 'messages.modify': {
      const body = parseJson(await readBody(req));
      const rec = mb.modify(
        args[1] ?? '',
        stringList(body['addLabelIds'], 'addLabelIds'),
        stringList(body['removeLabelIds'], 'removeLabelIds'),
      );
      return { status: 200, body: shortMessage(rec) };
    }
    case 'messages.trash':
      await readBody(req);
      return { status: 200, body: shortMessage(mb.trash(args[1] ?? '')) };
    case 'messages.untrash':
      await readBody(req);
      return { status: 200, body: shortMessage(mb.untrash(args[1] ?? '')) };
    case 'messages.batchModify': {
      const body = parseJson(await readBody(req));
      const ids = stringList(body['ids'], 'ids');
      if (ids.length > 1000) throw invalidArgument('Too many ids: at most 1000');
      mb.batchModify(ids, stringList(body['addLabelIds'], 'addLabelIds'), stringList(body['removeLabelIds'], 'removeLabelIds'));
      return { status: 204, body: null };
    }
    case 'messages.batchDelete': {
      const body = parseJson(await readBody(req));
      const ids = stringList(body['ids'], 'ids');
      if (ids.length > 1000) throw invalidArgument('Too many ids: at most 1000');
      mb.batchDelete(ids);
      return { status: 204, body: null };
    }
    case 'history.list': {
      const start = p.get('startHistoryId');
      if (start === null || !/^\d+$/.test(start)) throw invalidArgument('Invalid startHistoryId');
      const types = p.getAll('historyTypes');
      for (const t of types) {
        if (!(HISTORY_TYPES as readonly string[]).includes(t)) throw invalidArgument(`Invalid value for historyTypes: ${t}`);
      }
      return {
        status: 200,
        body: mb.historyList({
          startHistoryId: Number(start),
          historyTypes: types as HistoryType[],
          labelId: p.get('labelId') || undefined,
          maxResults: intParam(p, 'maxResults', 100, 500),
          pageToken: p.get('pageToken') || undefined,
        }),
      };
    }
    default:
      throw notFound();
  }
}

function shortMessage(rec: { id: string; threadId: string; labelIds: string[] }): Record<string, unknown> {
  return { id: rec.id, threadId: rec.threadId, ...(rec.labelIds.length > 0 ? { labelIds: [...rec.labelIds] } : {}) };
}

/** Holds a call open without ever answering it; no timer is involved. */
function hang(state: EmulatorState, req: IncomingMessage, res: ServerResponse): void {
  state.hungCount++;
  if (res.destroyed || state.closed) {
    res.destroy();
    return;
  }
  state.hanging.add(res);
  res.once('close', () => state.hanging.delete(res));
  // Drop whatever body the client sends, so that it finishes its upload and waits for an answer.
  req.resume();
}

export function createHandler(state: EmulatorState): (req: IncomingMessage, res: ServerResponse) => void {
  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (url.pathname === '/' && req.method === 'GET') {
      send(res, 200, { service: 'gmail-emulator', mailboxes: [...state.mailboxes.keys()].sort() });
      return;
    }
    if (url.pathname === '/batch/gmail/v1' && req.method === 'POST') {
      state.calls['batch'] = (state.calls['batch'] ?? 0) + 1;
      try {
        const parts = parseBatch(await readBody(req), req.headers['content-type']);
        const out = await serveBatch(parts, state.selfUrl, req.headers['authorization']);
        if (res.headersSent || res.destroyed) return;
        res.writeHead(200, { 'Content-Type': out.contentType, 'Content-Length': String(out.body.length) });
        res.end(out.body);
      } catch (err) {
        sendError(res, err instanceof ApiError ? err : new ApiError(500, 'Backend Error', 'backendError'));
      }
      return;
    }
    const matched = matchRoute(req.method ?? 'GET', url.pathname);
    if (!matched) {
      send(res, 404, new ApiError(404, `Not Found: ${req.method} ${url.pathname}`, 'notFound').body());
      return;
    }
    const { route, args } = matched;
    state.calls[route.name] = (state.calls[route.name] ?? 0) + 1;
    if (route.gmail) {
      const byUser = state.callsByUser.get((args[0] ?? '').toLowerCase()) ?? {};
      byUser[route.name] = (byUser[route.name] ?? 0) + 1;
      state.callsByUser.set((args[0] ?? '').toLowerCase(), byUser);
    }
    // Concurrency is counted from a call's arrival to its answer, by the user its path names.
    let tooMany = false;
    if (route.gmail && state.maxConcurrent > 0) {
      const key = (args[0] ?? '').toLowerCase();
      const n = state.inFlight.get(key) ?? 0;
      if (n >= state.maxConcurrent) tooMany = true;
      else {
        state.inFlight.set(key, n + 1);
        res.once('close', () => {
          const left = (state.inFlight.get(key) ?? 1) - 1;
          if (left <= 0) state.inFlight.delete(key);
          else state.inFlight.set(key, left);
        });
      }
    }
    // Refused at once, unapplied, before any gate: a failure that retries meet again and again.
    const refuse = route.gmail ? state.refusing.get(gateKey(args[0] ?? '', route.name)) : undefined;
    if (refuse && refuse.left > 0) refuse.left--;
    else if (refuse && refuse.count > 0) {
      refuse.count--;
      state.refusedCount++;
      sendError(res, new ApiError(503, 'The service is currently unavailable.', 'backendError'));
      return;
    }
    const gate = route.gmail ? state.gates.get(gateKey(args[0] ?? '', route.name)) : undefined;
    if (gate) {
      if (gate.left > 0) gate.left--;
      else if (!(await through(state, gate, res)) || state.closed) {
        res.destroy();
        return;
      }
    }
    if (state.latencyMs > 0) {
      const waited = await state.delay(state.latencyMs, res);
      if (!waited || state.closed) {
        res.destroy();
        return;
      }
    }
    try {
      const caller = authenticate(req.headers['authorization'], state.tokenVerifier);
      checkScopes(caller, route.name, url.searchParams);
      if (!route.gmail) {
        checkDirectory(caller, url.searchParams);
        const body = listDirectoryUsers(state, url.searchParams);
        send(res, 200, applyFields(body, parseFields(url.searchParams.get('fields') ?? '')));
        return;
      }
      const user = resolveUser(caller, args[0] ?? '');
      const mb = state.mailboxes.get(user);
      if (!mb) throw noMailbox();
      if (tooMany) {
        state.rateLimited++;
        state.concurrencyRefused++;
        throw new ApiError(429, 'Too many concurrent requests for user', 'rateLimitExceeded', { domain: 'usageLimits' });
      }
      // Both streams draw on every call, so the n-th call's fault is the same whatever the hang rate.
      const injected = state.faults.maybeFault();
      if (state.hangs.maybeHang()) {
        hang(state, req, res);
        return;
      }
      if (injected) {
        state.faultCount++;
        throw injected;
      }
      if (route.name === 'messages.get' && state.failing.has(args[1] ?? '')) throw new ApiError(500, 'Backend Error', 'backendError');
      const taken = state.quota.take(user, METHOD_COSTS[route.name] ?? 1);
      if (!taken.ok) {
        state.rateLimited++;
        throw rateLimited(state.quotaStatus, taken.retryAfterSeconds);
      }
      const { status, body } = await gmailCall(route.name, args, mb, req, url, state.watches);
      const lose = state.losing.get(route.name) ?? 0;
      if (lose > 0) {
        // Applied, but the client never hears so: as when a connection drops after Gmail acted.
        state.losing.set(route.name, lose - 1);
        state.lostCount++;
        if (res.destroyed || state.closed) res.destroy();
        else {
          state.hanging.add(res);
          res.once('close', () => state.hanging.delete(res));
        }
        return;
      }
      send(res, status, status === 204 ? null : applyFields(body, parseFields(url.searchParams.get('fields') ?? '')));
    } catch (err) {
      if (err instanceof ApiError) sendError(res, err);
      else {
        sendError(res, new ApiError(500, 'Backend Error', 'backendError'));
        process.emitWarning(`gmail emulator: ${route.name} failed: ${(err as Error)?.stack ?? String(err)}`);
      }
    }
  };
  return (req, res) => {
    handle(req, res).catch((err: unknown) => {
      process.emitWarning(`gmail emulator: ${(err as Error)?.stack ?? String(err)}`);
      if (!res.headersSent) res.destroy();
    });
  };
}

/** The query parameters messages.list and threads.list share. */
function listOptions(p: URLSearchParams) {
  return {
    labelIds: p.getAll('labelIds'),
    q: p.get('q') ?? undefined,
    includeSpamTrash: boolParam(p, 'includeSpamTrash'),
    pageToken: p.get('pageToken') || undefined,
    maxResults: intParam(p, 'maxResults', 100, 500),
  };
}
