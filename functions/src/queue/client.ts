// The Cloud Tasks client factory. This module owns the one decision of which Cloud Tasks the
// project talks to and how:
// - Google's service: the client library's default, gRPC with the platform's credentials.
// - An emulator (`emulatorHost`): by default the same gRPC transport over a plain-text channel,
//   so tests take the path production takes; or, with `transport: 'rest'`, the library's
//   HTTP/JSON transport ("fallback" mode) over plain http. Either way no Google credential is
//   looked up and every call carries the development bearer token `owner` (as the Firestore
//   emulator accepts), because the emulator, like Google, refuses calls without credentials.
// Nothing else in the project constructs a CloudTasksClient.

import { CloudTasksClient } from '@google-cloud/tasks';
import { credentials, type CallProperties } from '@grpc/grpc-js';

type ClientOptions = NonNullable<ConstructorParameters<typeof CloudTasksClient>[0]>;

/** The transports the client library offers. */
export type TasksTransport = 'grpc' | 'rest';

/** The bearer token sent to emulators. */
export const EMULATOR_BEARER = 'Bearer owner';

/** The subset of a fetch request that the REST transport hands to its auth client. */
interface TransportRequest {
  method?: string;
  headers?: ConstructorParameters<typeof Headers>[0];
  body?: string | Uint8Array;
  signal?: AbortSignal;
}

/**
 * An auth client for an emulator: asks no metadata server, adds the development token and, for
 * the REST transport, sends each request with the platform's fetch. It offers the methods the
 * transports use (`getRequestHeaders`, `fetch`) and the few the client itself may touch.
 */
class EmulatorCredentials {
  readonly universeDomain = 'googleapis.com';

  getRequestHeaders(): Promise<Headers> {
    return Promise.resolve(new Headers({ authorization: EMULATOR_BEARER }));
  }

  getAccessToken(): Promise<{ token: string }> {
    return Promise.resolve({ token: 'owner' });
  }

  getUniverseDomain(): Promise<string> {
    return Promise.resolve(this.universeDomain);
  }

  getProjectId(): Promise<string> {
    return Promise.reject(
      new Error('the Cloud Tasks emulator client has no project: use full resource names'),
    );
  }

  fetch(url: string | URL, init: TransportRequest = {}): Promise<Response> {
    const headers = new Headers(init.headers);
    if (!headers.has('authorization')) headers.set('authorization', EMULATOR_BEARER);
    const request: RequestInit = { method: init.method ?? 'GET', headers };
    if (init.body !== undefined) request.body = init.body;
    if (init.signal !== undefined) request.signal = init.signal;
    return fetch(url, request);
  }
}

/** Splits "host:port" (an optional "http://" prefix and trailing "/" are tolerated). */
function parseEmulatorHost(value: string): { host: string; port: number } {
  const bare = value.trim().replace(/^http:\/\//i, '').replace(/\/+$/, '');
  const match = /^(\[[^\]]+\]|[^:/]+):(\d{1,5})$/.exec(bare);
  const port = match ? Number(match[2]) : NaN;
  if (!match || !match[1] || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new Error(
      `Cloud Tasks emulator host must be "host:port", such as "127.0.0.1:8122"; got "${value}"`,
    );
  }
  return { host: match[1], port };
}

/** Adds the development token to every gRPC call (a plain-text channel carries no call credentials). */
function withEmulatorToken(call: CallProperties<unknown, unknown>): CallProperties<unknown, unknown> {
  call.metadata.set('authorization', EMULATOR_BEARER);
  return call;
}

/**
 * Returns the Cloud Tasks client for this process: without `emulatorHost`, the production
 * client (gRPC); with it ("127.0.0.1:8122"), a client of that emulator over `transport`
 * (gRPC unless told otherwise; give the emulator's REST port for 'rest').
 */
export function createTasksClient(options: { emulatorHost?: string; transport?: TasksTransport }): CloudTasksClient {
  const emulatorHost = options.emulatorHost?.trim();
  if (!emulatorHost) return new CloudTasksClient();

  const { host, port } = parseEmulatorHost(emulatorHost);
  const authClient = new EmulatorCredentials() as unknown as ClientOptions['authClient'];
  if (options.transport === 'rest') {
    return new CloudTasksClient({ fallback: true, protocol: 'http', apiEndpoint: host, port, authClient });
  }
  const grpcOptions: ClientOptions = {
    servicePath: host,
    port,
    sslCreds: credentials.createInsecure(),
    universeDomain: 'googleapis.com',
    authClient,
    // google-gax hands `grpc.*` options to the gRPC client; this one names its call transformer.
    'grpc.callInvocationTransformer': withEmulatorToken,
  };
  return new CloudTasksClient(grpcOptions);
}
