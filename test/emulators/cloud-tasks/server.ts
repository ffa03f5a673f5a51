/**
 * The HTTP front end of the Cloud Tasks emulator and its start function.
 *
 * Owns the Cloud Tasks v2 REST routes as `@google-cloud/tasks` calls them in fallback (REST)
 * mode and as `gcloud tasks` calls them: resource names in the path, custom methods after a
 * colon (`:pause`, `:run`), request messages in JSON bodies or query parameters, enums read
 * as numbers or names and written as numbers only when the caller asks with
 * `$alt=json;enum-encoding=int` (the client library always does), errors in Google's JSON
 * shape. It also serves the OIDC discovery document and JWKS that verify dispatched tokens.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { TasksEngine } from './engine.js';
import { ApiError, invalidArgument, notFound } from './errors.js';
import { GOOGLE_ISSUER, OidcSigner } from './oidc.js';
import {
  QUEUE_STATES,
  parseQueueInput,
  parseTaskInput,
  parseUpdateMask,
  parseView,
  renderQueue,
  renderTask,
} from './resources.js';
import { nowMicros, parseEnum, parseInt32, readMessage } from './wire.js';

/** A running emulator. */
export interface CloudTasksEmulator {
  /** `http://127.0.0.1:PORT/` */
  readonly url: string;
  /** `127.0.0.1:PORT`, the value for CLOUD_TASKS_EMULATOR_HOST. */
  readonly host: string;
  readonly port: number;
  /** Where the public keys of dispatched OIDC tokens are served (`<url>oauth2/v3/certs`). */
  readonly jwksUrl: string;
  /** The `iss` of dispatched OIDC tokens: `https://accounts.google.com`, as Google's. */
  readonly issuer: string;
  /**
   * An OIDC ID token for `serviceAccountEmail` with audience `audience`, signed and shaped exactly
   * like the ones attached to dispatched tasks (same key, claims and cache), so that a local
   * caller such as a scheduler can call an OIDC-protected endpoint.
   */
  mintOidcToken(serviceAccountEmail: string, audience: string): Promise<string>;
  /** Stops the dispatch loop, every attempt in flight and the server. */
  close(): Promise<void>;
}

export interface CloudTasksEmulatorOptions {
  /** Port to listen on; 0 (the default) picks a free one. */
  port?: number;
  /** Address to listen on; 127.0.0.1 by default. */
  host?: string;
  /** How long the name of a deleted or finished task stays taken; Google's ~1 hour by default. */
  dedupWindowMs?: number;
}

const MAX_REQUEST_BYTES = 10 * 1024 * 1024;
const DEFAULT_DEDUP_WINDOW_MS = 3_600_000;
const MAX_QUEUE_PAGE = 9800;
const MAX_TASK_PAGE = 1000;

/** Starts the emulator; it listens only on loopback unless told otherwise. */
export async function startCloudTasksEmulator(opts: CloudTasksEmulatorOptions = {}): Promise<CloudTasksEmulator> {
  const bindHost = opts.host ?? '127.0.0.1';
  const signer = await OidcSigner.create(GOOGLE_ISSUER);
  const engine = new TasksEngine({ dedupWindowMs: opts.dedupWindowMs ?? DEFAULT_DEDUP_WINDOW_MS, signer });
  let baseUrl = '';

  const server = http.createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      const error =
        err instanceof ApiError ? err : new ApiError('INTERNAL', err instanceof Error ? err.message : String(err));
      send(res, error.httpStatus, error.toJSON());
    });
  });

  async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://emulator');
    const method = req.method ?? 'GET';
    const body = method === 'GET' || method === 'DELETE' || method === 'HEAD' ? undefined : await readJson(req);
    if (method === 'GET' && url.pathname === '/oauth2/v3/certs') return send(res, 200, signer.jwks);
    if (method === 'GET' && url.pathname === '/.well-known/openid-configuration') {
      return send(res, 200, {
        issuer: signer.issuer,
        jwks_uri: `${baseUrl}oauth2/v3/certs`,
        id_token_signing_alg_values_supported: ['RS256'],
        response_types_supported: ['id_token'],
        subject_types_supported: ['public'],
      });
    }
    if (method === 'GET' && url.pathname === '/') {
      return send(res, 200, { service: 'cloudtasks', version: 'v2', jwks_uri: `${baseUrl}oauth2/v3/certs` });
    }
    const route = matchRoute(url.pathname);
    if (!route) throw notFound(`No Cloud Tasks v2 method at ${method} ${url.pathname}`);
    send(res, 200, dispatchRoute(engine, route, method, url.searchParams, body));
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, bindHost, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const hostName = bindHost.includes(':') ? `[${bindHost}]` : bindHost;
  const host = `${hostName}:${port}`;
  baseUrl = `http://${host}/`;

  let closing: Promise<void> | undefined;
  return {
    url: baseUrl,
    host,
    port,
    jwksUrl: `${baseUrl}oauth2/v3/certs`,
    issuer: signer.issuer,
    async mintOidcToken(serviceAccountEmail, audience) {
      if (!serviceAccountEmail) throw new Error('mintOidcToken: serviceAccountEmail is required');
      if (!audience) throw new Error('mintOidcToken: audience is required');
      return signer.sign(serviceAccountEmail, audience);
    },
    close() {
      closing ??= (async () => {
        await engine.close();
        await new Promise<void>((resolve) => {
          server.close(() => resolve());
          server.closeAllConnections();
        });
      })();
      return closing;
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Routing.

type Route =
  | { kind: 'queues'; parent: string }
  | { kind: 'queue'; name: string; verb?: 'pause' | 'resume' | 'purge' | string }
  | { kind: 'tasks'; parent: string }
  | { kind: 'task'; name: string; verb?: 'run' | string };

// Groups: 1 location, 2 queue id, 3 queue verb, 4 "/tasks", 5 task id, 6 task verb.
const ROUTE = new RegExp(
  '^/v2/(projects/[^/:]+/locations/[^/:]+)/queues' +
    '(?:/([^/:]+)(?::([A-Za-z]+)|(/tasks)(?:/([^/:]+)(?::([A-Za-z]+))?)?)?)?$',
);

function matchRoute(pathname: string): Route | undefined {
  const m = ROUTE.exec(pathname.replace(/%3A/gi, ':'));
  if (!m) return undefined;
  const decode = (s: string): string => {
    try {
      return decodeURIComponent(s);
    } catch {
      throw invalidArgument(`Malformed path segment "${s}"`);
    }
  };
  const location = decode(m[1] as string);
  if (m[2] === undefined) return { kind: 'queues', parent: location };
  const queue = `${location}/queues/${decode(m[2])}`;
  if (m[5] !== undefined) {
    const route: Route = { kind: 'task', name: `${queue}/tasks/${decode(m[5])}` };
    if (m[6] !== undefined) route.verb = m[6];
    return route;
  }
  if (m[4] !== undefined) return { kind: 'tasks', parent: queue };
  const route: Route = { kind: 'queue', name: queue };
  if (m[3] !== undefined) route.verb = m[3];
  return route;
}

/** A query parameter by its lowerCamelCase or snake_case name. */
function param(query: URLSearchParams, camel: string): string | undefined {
  const snake = camel.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
  return query.get(camel) ?? query.get(snake) ?? undefined;
}

function wantsNumericEnums(query: URLSearchParams): boolean {
  return [...query.getAll('$alt'), ...query.getAll('alt')].some((v) => /enum-encoding=int/i.test(v));
}

function pageSize(query: URLSearchParams, max: number): number {
  const raw = param(query, 'pageSize');
  if (raw === undefined || raw === '') return max;
  const n = parseInt32(raw, 'page_size');
  if (n < 0) throw invalidArgument('page_size must not be negative');
  if (n > max) throw invalidArgument(`page_size must be at most ${max}`);
  return n === 0 ? max : n;
}

/** One page of `items` (sorted by `key`) after the page token's key. */
function page<T>(items: T[], key: (item: T) => string, query: URLSearchParams, max: number): { items: T[]; next?: string } {
  const size = pageSize(query, max);
  const token = param(query, 'pageToken');
  let start = 0;
  if (token) {
    let after: string;
    try {
      after = Buffer.from(token, 'base64url').toString('utf8');
    } catch {
      throw invalidArgument('Invalid page_token');
    }
    if (!after) throw invalidArgument('Invalid page_token');
    start = items.findIndex((item) => key(item) > after);
    if (start < 0) start = items.length;
  }
  const slice = items.slice(start, start + size);
  const last = slice[slice.length - 1];
  if (start + size < items.length && last !== undefined) {
    return { items: slice, next: Buffer.from(key(last), 'utf8').toString('base64url') };
  }
  return { items: slice };
}

function parseQueueFilter(filter: string | undefined): 'RUNNING' | 'PAUSED' | undefined {
  if (filter === undefined || filter.trim() === '') return undefined;
  const m = /^\s*state\s*[:=]\s*"?([A-Z_]+)"?\s*$/.exec(filter);
  if (!m) {
    throw invalidArgument(`Unsupported filter "${filter}": the emulator understands "state: RUNNING" or "state: PAUSED"`);
  }
  const state = parseEnum(m[1], QUEUE_STATES, 'filter');
  if (state !== 'RUNNING' && state !== 'PAUSED') throw invalidArgument(`Unsupported filter "${filter}"`);
  return state;
}

function dispatchRoute(engine: TasksEngine, route: Route, method: string, query: URLSearchParams, body: unknown): unknown {
  const numeric = wantsNumericEnums(query);
  switch (route.kind) {
    case 'queues': {
      if (method === 'GET') {
        const queues = engine.listQueues(route.parent, parseQueueFilter(param(query, 'filter')));
        const p = page(queues, (q) => q.name, query, MAX_QUEUE_PAGE);
        return { queues: p.items.map((q) => renderQueue(q, numeric)), ...(p.next ? { nextPageToken: p.next } : {}) };
      }
      if (method === 'POST') return renderQueue(engine.createQueue(route.parent, parseQueueInput(body, 'queue')), numeric);
      break;
    }
    case 'queue': {
      if (route.verb !== undefined) {
        if (method !== 'POST') break;
        readMessage(body, 'request', ['name']);
        if (route.verb === 'pause') return renderQueue(engine.pauseQueue(route.name), numeric);
        if (route.verb === 'resume') return renderQueue(engine.resumeQueue(route.name), numeric);
        if (route.verb === 'purge') return renderQueue(engine.purgeQueue(route.name), numeric);
        break;
      }
      if (method === 'GET') return renderQueue(engine.getQueue(route.name), numeric);
      if (method === 'PATCH') {
        const mask = parseUpdateMask(param(query, 'updateMask') ?? param(query, 'updateMask.paths'));
        return renderQueue(engine.updateQueue(route.name, parseQueueInput(body, 'queue'), mask), numeric);
      }
      if (method === 'DELETE') {
        engine.deleteQueue(route.name);
        return {};
      }
      break;
    }
    case 'tasks': {
      if (method === 'GET') {
        const view = parseView(param(query, 'responseView'), 'response_view');
        const p = page(engine.listTasks(route.parent), (t) => t.id, query, MAX_TASK_PAGE);
        return { tasks: p.items.map((t) => renderTask(t, view, numeric)), ...(p.next ? { nextPageToken: p.next } : {}) };
      }
      if (method === 'POST') {
        const request = readMessage(body, 'request', ['parent', 'task', 'responseView']);
        if (request.task === undefined) throw invalidArgument('task is required');
        const view = parseView(request.responseView, 'response_view');
        const task = engine.createTask(route.parent, parseTaskInput(request.task, route.parent, nowMicros()));
        return renderTask(task, view, numeric);
      }
      break;
    }
    case 'task': {
      if (route.verb !== undefined) {
        if (method !== 'POST' || route.verb !== 'run') break;
        const request = readMessage(body, 'request', ['name', 'responseView']);
        return renderTask(engine.runTask(route.name), parseView(request.responseView, 'response_view'), numeric);
      }
      if (method === 'GET') {
        return renderTask(engine.getTask(route.name), parseView(param(query, 'responseView'), 'response_view'), numeric);
      }
      if (method === 'DELETE') {
        engine.deleteTask(route.name);
        return {};
      }
      break;
    }
  }
  throw notFound(`No Cloud Tasks v2 method for ${method} on this path`);
}

// ---------------------------------------------------------------------------------------------
// HTTP plumbing.

async function readJson(req: http.IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_REQUEST_BYTES) {
      throw invalidArgument(`Request payload size exceeds the limit: ${MAX_REQUEST_BYTES} bytes.`);
    }
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString('utf8').trim();
  if (text === '') return {};
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw invalidArgument('Invalid JSON payload received.');
  }
}

function send(res: http.ServerResponse, status: number, json: unknown): void {
  const body = JSON.stringify(json);
  res.writeHead(status, {
    'Content-Type': 'application/json; charset=UTF-8',
    'Content-Length': Buffer.byteLength(body),
  });
  res.end(body);
}
