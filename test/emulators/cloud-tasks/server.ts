/**
 * The HTTP front end of the Cloud Tasks emulator and its start function.
 *
 * Owns the Cloud Tasks v2 REST routes as `@google-cloud/tasks` calls them in fallback (REST)
 * mode and as `gcloud tasks` calls them: resource names in the path, custom methods after a
 * colon (`:pause`, `:run`), request messages in JSON bodies or query parameters, enums read
 * as numbers or names and written as numbers only when the caller asks with
 * `$alt=json;enum-encoding=int` (the client library always does), errors in Google's JSON
 * shape, 401 for calls without a bearer token. It also serves the OIDC discovery document and
 * JWKS that verify dispatched tokens, and starts the gRPC front end on its own port.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { AccessControl, type FaultStatus, WWW_AUTHENTICATE } from './access.js';
import { TasksEngine } from './engine.js';
import { ApiError, invalidArgument, notFound } from './errors.js';
import { startGrpcFront } from './grpc.js';
import { GOOGLE_ISSUER, OidcSigner } from './oidc.js';
import { GOOGLE_MIN_DISPATCH_DEADLINE_MS } from './resources.js';
import { dispatchRoute, matchRoute, rpcFor } from './routes.js';

/** A running emulator. */
export interface CloudTasksEmulator {
  /** `http://127.0.0.1:PORT/`, the REST front end. */
  readonly url: string;
  /** `127.0.0.1:PORT` of the REST front end. */
  readonly host: string;
  /** The REST front end's port. */
  readonly port: number;
  /** `127.0.0.1:PORT` of the gRPC front end. */
  readonly grpcHost: string;
  /** The gRPC front end's port. */
  readonly grpcPort: number;
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
  /**
   * Makes the next `times` calls of `rpc` ("CreateTask", "GetTask", ...) fail with `status`,
   * on either front end (REST answers the matching HTTP status, e.g. 503 for UNAVAILABLE).
   * Faults are counted after authentication and before anything else.
   */
  injectFault(rpc: string, status: FaultStatus, times?: number): void;
  /**
   * The next `times` calls of `rpc` are carried out, then answered UNAVAILABLE: the caller cannot
   * tell they took effect; for CreateTask, each is followed by `then` creations of that task name
   * refused with UNAVAILABLE before they run. `match`: only calls whose task name it matches.
   */
  injectFaultAfter(rpc: string, times?: number, then?: number, match?: RegExp): void;
  /** Whether a task with this id (the last part of its name) was ever created. */
  wasCreated(taskId: string): boolean;
  /** Makes the creation of every new task name fail `times` times with UNAVAILABLE before it goes through (a retried CreateTask then succeeds); 0 turns it off. */
  flakyCreates(times: number): void;
  /** Stops the dispatch loop, every attempt in flight and both servers. */
  close(): Promise<void>;
}

export interface CloudTasksEmulatorOptions {
  /** REST port to listen on; 0 (the default) picks a free one. */
  port?: number;
  /** gRPC port to listen on; 0 (the default) picks a free one. */
  grpcPort?: number;
  /** Address to listen on; 127.0.0.1 by default. */
  host?: string;
  /** How long the name of a deleted or finished task stays taken; Google's ~1 hour by default. */
  dedupWindowMs?: number;
  /** How long the name of a deleted queue stays reserved; Google's 7 days by default. */
  queueNameReservationMs?: number;
  /**
   * The shortest dispatch_deadline CreateTask accepts; Google's 15 s by default. Tests lower it
   * to exercise deadlines quickly.
   */
  minDispatchDeadlineMs?: number;
  /** Accept calls without credentials (false by default: like Google, refuse them as UNAUTHENTICATED). */
  open?: boolean;
}

const MAX_REQUEST_BYTES = 10 * 1024 * 1024;
const DEFAULT_DEDUP_WINDOW_MS = 3_600_000;
const DEFAULT_QUEUE_NAME_RESERVATION_MS = 7 * 24 * 3600 * 1000;

function checkDuration(value: number | undefined, name: string, min: number): void {
  if (value !== undefined && !(Number.isFinite(value) && value >= min)) {
    throw new Error(`startCloudTasksEmulator: ${name} must be a number of milliseconds of at least ${min}; got ${value}`);
  }
}

/** Starts the emulator; it listens only on loopback unless told otherwise. */
export async function startCloudTasksEmulator(opts: CloudTasksEmulatorOptions = {}): Promise<CloudTasksEmulator> {
  const bindHost = opts.host ?? '127.0.0.1';
  checkDuration(opts.dedupWindowMs, 'dedupWindowMs', 0);
  checkDuration(opts.queueNameReservationMs, 'queueNameReservationMs', 0);
  checkDuration(opts.minDispatchDeadlineMs, 'minDispatchDeadlineMs', 1);
  const signer = await OidcSigner.create(GOOGLE_ISSUER);
  const engine = new TasksEngine({
    dedupWindowMs: opts.dedupWindowMs ?? DEFAULT_DEDUP_WINDOW_MS,
    queueNameReservationMs: opts.queueNameReservationMs ?? DEFAULT_QUEUE_NAME_RESERVATION_MS,
    minDispatchDeadlineMs: opts.minDispatchDeadlineMs ?? GOOGLE_MIN_DISPATCH_DEADLINE_MS,
    signer,
  });
  const access = new AccessControl(opts.open ?? false);
  let baseUrl = '';

  const server = http.createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      const error =
        err instanceof ApiError ? err : new ApiError('INTERNAL', err instanceof Error ? err.message : String(err));
      send(res, error.httpStatus, error.toJSON(), error.status === 'UNAUTHENTICATED' ? { 'WWW-Authenticate': WWW_AUTHENTICATE } : {});
    });
  });

  async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://emulator');
    const method = req.method ?? 'GET';
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
    access.authenticate(req.headers.authorization);
    const route = matchRoute(url.pathname);
    if (!route) throw notFound(`No Cloud Tasks v2 method at ${method} ${url.pathname}`);
    const rpc = rpcFor(route, method);
    if (!rpc) throw notFound(`No Cloud Tasks v2 method for ${method} on this path`);
    access.takeFault(rpc);
    const body = method === 'GET' || method === 'DELETE' || method === 'HEAD' ? undefined : await readJson(req);
    if (rpc === 'CreateTask') access.takeCreateFault((body as { task?: { name?: unknown } } | undefined)?.task?.name);
    const answer = dispatchRoute(engine, route, method, url.searchParams, body);
    access.takeAfterFault(rpc, (body as { task?: { name?: unknown } } | undefined)?.task?.name);
    send(res, 200, answer);
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
  const closeHttp = (): Promise<void> =>
    new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });

  const grpcServer = await startGrpcFront(engine, access, { host: bindHost, port: opts.grpcPort ?? 0 }).catch(
    async (err: unknown) => {
      await engine.close();
      await closeHttp();
      throw err;
    },
  );

  let closing: Promise<void> | undefined;
  return {
    url: baseUrl,
    host,
    port,
    grpcHost: `${hostName}:${grpcServer.port}`,
    grpcPort: grpcServer.port,
    jwksUrl: `${baseUrl}oauth2/v3/certs`,
    issuer: signer.issuer,
    async mintOidcToken(serviceAccountEmail, audience) {
      if (!serviceAccountEmail) throw new Error('mintOidcToken: serviceAccountEmail is required');
      if (!audience) throw new Error('mintOidcToken: audience is required');
      return signer.sign(serviceAccountEmail, audience);
    },
    injectFault(rpc, status, times = 1) {
      access.inject(rpc, status, times);
    },
    injectFaultAfter(rpc, times = 1, then = 0, match) {
      access.injectAfter(rpc, times, then, match);
    },
    wasCreated(taskId) {
      return engine.wasCreated(taskId);
    },
    flakyCreates(times) {
      access.flakyCreates(times);
    },
    close() {
      closing ??= (async () => {
        await engine.close();
        await Promise.all([grpcServer.close(), closeHttp()]);
      })();
      return closing;
    },
  };
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

function send(res: http.ServerResponse, status: number, json: unknown, headers: Record<string, string> = {}): void {
  const body = JSON.stringify(json);
  res.writeHead(status, {
    ...headers,
    'Content-Type': 'application/json; charset=UTF-8',
    'Content-Length': Buffer.byteLength(body),
  });
  res.end(body);
}
