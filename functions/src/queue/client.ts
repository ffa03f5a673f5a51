// The Cloud Tasks client factory. This module owns the one decision of which Cloud Tasks the
// project talks to: Google's service (a normal gRPC client with the platform's credentials) or,
// when an emulator host is given, the local Cloud Tasks emulator, reached with the client's
// HTTP/JSON REST transport ("fallback" mode) over plain http and without any Google credentials.
// Nothing else in the project constructs a CloudTasksClient.

import { CloudTasksClient } from '@google-cloud/tasks';

type ClientOptions = NonNullable<ConstructorParameters<typeof CloudTasksClient>[0]>;

/** The subset of a fetch request that the REST transport hands to its auth client. */
interface TransportRequest {
  method?: string;
  headers?: ConstructorParameters<typeof Headers>[0];
  body?: string | Uint8Array;
  signal?: AbortSignal;
}

/**
 * An auth client for the emulator: adds no credentials, asks no metadata server and sends
 * each request with the platform's fetch. It offers the methods the REST transport uses
 * (`getRequestHeaders`, `fetch`) and the few the client itself may touch.
 */
class NoCredentials {
  readonly universeDomain = 'googleapis.com';

  getRequestHeaders(): Promise<Headers> {
    return Promise.resolve(new Headers());
  }

  getAccessToken(): Promise<Record<string, never>> {
    return Promise.resolve({});
  }

  getProjectId(): Promise<string> {
    return Promise.reject(
      new Error('the Cloud Tasks emulator client has no project: use full resource names'),
    );
  }

  fetch(url: string | URL, init: TransportRequest = {}): Promise<Response> {
    const request: RequestInit = { method: init.method ?? 'GET' };
    if (init.headers !== undefined) request.headers = init.headers;
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
      `Cloud Tasks emulator host must be "host:port", such as "127.0.0.1:8123"; got "${value}"`,
    );
  }
  return { host: match[1], port };
}

/**
 * Returns the Cloud Tasks client for this process: with `emulatorHost` ("127.0.0.1:8123"),
 * one that speaks REST over plain http to that emulator with no credentials; without it,
 * the production client.
 */
export function createTasksClient(options: { emulatorHost?: string }): CloudTasksClient {
  const emulatorHost = options.emulatorHost?.trim();
  if (!emulatorHost) return new CloudTasksClient();

  const { host, port } = parseEmulatorHost(emulatorHost);
  const clientOptions: ClientOptions = {
    fallback: true,
    protocol: 'http',
    apiEndpoint: host,
    port,
    // The REST transport sends every call through this object's fetch.
    authClient: new NoCredentials() as unknown as ClientOptions['authClient'],
  };
  return new CloudTasksClient(clientOptions);
}
