/**
 * The gRPC front end of the Cloud Tasks emulator: `google.cloud.tasks.v2.CloudTasks` over
 * plain-text HTTP/2, as `@google-cloud/tasks` calls it in its default (gRPC) mode.
 *
 * Owns the service definition, read from the .proto files `@google-cloud/tasks` ships (their
 * imports resolved in that package and in google-gax), and the translation of each call into
 * the REST routing: the request message becomes proto3 JSON, runs through `dispatchRoute` as the
 * matching route, method, query and body would, and the JSON answer becomes the response
 * message. So both front ends validate, answer and fail alike; an ApiError's canonical code is
 * the gRPC status, with the same message. RPCs the emulator does not serve (IAM) answer
 * UNIMPLEMENTED.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import protobuf from 'protobufjs';
import { type JSONValue, fromProto3JSON, toProto3JSON } from 'proto3-json-serializer';
import type { AccessControl } from './access.js';
import type { TasksEngine } from './engine.js';
import { ApiError, RPC_CODES, unimplemented } from './errors.js';
import { type Route, SERVED_RPCS, type ServedRpc, dispatchRoute } from './routes.js';

const SERVICE = 'google.cloud.tasks.v2.CloudTasks';
const SERVICE_PROTO = 'google/cloud/tasks/v2/cloudtasks.proto';

/** The directory of the installed package `name`, found from one of its files. */
function packageDir(file: string, name: string): string {
  for (let dir = path.dirname(file); ; dir = path.dirname(dir)) {
    const manifest = path.join(dir, 'package.json');
    if (existsSync(manifest) && (JSON.parse(readFileSync(manifest, 'utf8')) as { name?: unknown }).name === name) {
      return dir;
    }
    if (path.dirname(dir) === dir) throw new Error(`cannot find the package directory of ${name} from ${file}`);
  }
}

let loaded: protobuf.Service | undefined;

/** The CloudTasks service, loaded once from the client library's protos. */
function loadService(): protobuf.Service {
  if (loaded) return loaded;
  const require = createRequire(import.meta.url);
  const tasksDir = packageDir(require.resolve('@google-cloud/tasks'), '@google-cloud/tasks');
  const gaxDir = packageDir(
    createRequire(path.join(tasksDir, 'package.json')).resolve('google-gax'),
    'google-gax',
  );
  const includeDirs = [path.join(tasksDir, 'build', 'protos'), path.join(gaxDir, 'build', 'protos')];
  const root = new protobuf.Root();
  root.resolvePath = (origin, target) => {
    if (path.isAbsolute(target)) return target;
    for (const dir of includeDirs) {
      const candidate = path.join(dir, target);
      if (existsSync(candidate)) return candidate;
    }
    return protobuf.util.path.resolve(origin, target);
  };
  root.loadSync(SERVICE_PROTO, { keepCase: false });
  root.resolveAll();
  loaded = root.lookupService(SERVICE);
  return loaded;
}

type Json = Record<string, unknown>;

/** A request as the REST routing takes it. */
interface RouteRequest {
  route: Route;
  method: string;
  query?: Record<string, unknown>;
  body?: Json;
}

const text = (value: unknown): string => (typeof value === 'string' ? value : '');
const object = (value: unknown): Json =>
  typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Json) : {};
/** `fields` of `json` that are set. */
function pick(json: Json, ...fields: string[]): Json {
  const out: Json = {};
  for (const f of fields) if (json[f] !== undefined && json[f] !== null) out[f] = json[f];
  return out;
}

/** The REST request an RPC's proto3 JSON request stands for. */
function toRouteRequest(rpc: ServedRpc, r: Json): RouteRequest {
  switch (rpc) {
    case 'ListQueues':
      return { route: { kind: 'queues', parent: text(r.parent) }, method: 'GET', query: pick(r, 'filter', 'pageSize', 'pageToken') };
    case 'GetQueue':
      return { route: { kind: 'queue', name: text(r.name) }, method: 'GET' };
    case 'CreateQueue':
      return { route: { kind: 'queues', parent: text(r.parent) }, method: 'POST', body: object(r.queue) };
    case 'UpdateQueue': {
      const queue = object(r.queue);
      return { route: { kind: 'queue', name: text(queue.name) }, method: 'PATCH', query: pick(r, 'updateMask'), body: queue };
    }
    case 'DeleteQueue':
      return { route: { kind: 'queue', name: text(r.name) }, method: 'DELETE' };
    case 'PurgeQueue':
      return { route: { kind: 'queue', name: text(r.name), verb: 'purge' }, method: 'POST', body: {} };
    case 'PauseQueue':
      return { route: { kind: 'queue', name: text(r.name), verb: 'pause' }, method: 'POST', body: {} };
    case 'ResumeQueue':
      return { route: { kind: 'queue', name: text(r.name), verb: 'resume' }, method: 'POST', body: {} };
    case 'ListTasks':
      return {
        route: { kind: 'tasks', parent: text(r.parent) },
        method: 'GET',
        query: pick(r, 'responseView', 'pageSize', 'pageToken'),
      };
    case 'GetTask':
      return { route: { kind: 'task', name: text(r.name) }, method: 'GET', query: pick(r, 'responseView') };
    case 'CreateTask':
      return { route: { kind: 'tasks', parent: text(r.parent) }, method: 'POST', body: pick(r, 'task', 'responseView') };
    case 'DeleteTask':
      return { route: { kind: 'task', name: text(r.name) }, method: 'DELETE' };
    case 'RunTask':
      return { route: { kind: 'task', name: text(r.name), verb: 'run' }, method: 'POST', body: pick(r, 'responseView') };
  }
}

function toQuery(values: Record<string, unknown> = {}): URLSearchParams {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(values)) query.set(key, String(value));
  return query;
}

const isServed = (name: string): name is ServedRpc => (SERVED_RPCS as readonly string[]).includes(name);

/** A running gRPC front end. */
export interface GrpcFront {
  readonly port: number;
  /** Stops accepting calls; calls still running after a short grace period are cancelled. */
  close(): Promise<void>;
}

const SHUTDOWN_GRACE_MS = 250;

/** Serves the engine over gRPC on `host:port` (0: a free port). */
export async function startGrpcFront(
  engine: TasksEngine,
  access: AccessControl,
  opts: { host: string; port: number },
): Promise<GrpcFront> {
  const service = loadService();
  const definition: Record<string, grpc.MethodDefinition<protobuf.Message, protobuf.Message>> = {};
  const implementation: grpc.UntypedServiceImplementation = {};
  for (const method of service.methodsArray) {
    method.resolve();
    const requestType = method.resolvedRequestType;
    const responseType = method.resolvedResponseType;
    if (!requestType || !responseType) throw new Error(`${SERVICE}.${method.name}: unresolved message types`);
    definition[method.name] = {
      path: `/${SERVICE}/${method.name}`,
      requestStream: false,
      responseStream: false,
      requestSerialize: (message: protobuf.Message) => Buffer.from(requestType.encode(message).finish()),
      requestDeserialize: (bytes: Buffer) => requestType.decode(bytes),
      responseSerialize: (message: protobuf.Message) => Buffer.from(responseType.encode(message).finish()),
      responseDeserialize: (bytes: Buffer) => responseType.decode(bytes),
      originalName: method.name.charAt(0).toLowerCase() + method.name.slice(1),
    };
    const name = method.name;
    const handler: grpc.handleUnaryCall<protobuf.Message, protobuf.Message> = (call, callback) => {
      try {
        const authorization = call.metadata.get('authorization')[0];
        access.authenticate(typeof authorization === 'string' ? authorization : authorization?.toString('utf8'));
        if (!isServed(name)) throw unimplemented(`The Cloud Tasks emulator does not implement ${SERVICE}.${name}`);
        access.takeFault(name);
        const json = object(toProto3JSON(call.request));
        if (name === 'CreateTask') access.takeCreateFault((json['task'] as { name?: unknown } | undefined)?.name);
        const request = toRouteRequest(name, json);
        const answer = dispatchRoute(engine, request.route, request.method, toQuery(request.query), request.body);
        access.takeAfterFault(name, (json['task'] as { name?: unknown } | undefined)?.name);
        const message = fromProto3JSON(responseType, answer as JSONValue);
        if (!message) throw new ApiError('INTERNAL', `${name}: the answer could not be encoded`);
        callback(null, message);
      } catch (err) {
        const error = err instanceof ApiError ? err : new ApiError('INTERNAL', err instanceof Error ? err.message : String(err));
        callback({ code: RPC_CODES[error.status], details: error.message });
      }
    };
    implementation[name] = handler as grpc.UntypedHandleCall;
  }

  const server = new grpc.Server();
  server.addService(definition as grpc.ServiceDefinition, implementation);
  const address = `${opts.host.includes(':') ? `[${opts.host}]` : opts.host}:${opts.port}`;
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(address, grpc.ServerCredentials.createInsecure(), (err, bound) => (err ? reject(err) : resolve(bound)));
  });

  let closing: Promise<void> | undefined;
  return {
    port,
    close() {
      closing ??= new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, SHUTDOWN_GRACE_MS);
        server.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
      });
      return closing;
    },
  };
}
