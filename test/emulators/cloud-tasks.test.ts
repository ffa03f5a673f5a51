/**
 * The Cloud Tasks emulator, driven by the real `@google-cloud/tasks` client (from
 * createTasksClient) over REST and over gRPC, dispatching to a small recording target on
 * loopback. Every test starts its own emulator, client and target and closes them afterwards.
 * Tests that do not name a transport use REST; those that matter to callers run on both.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { test, type TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { CloudTasksClient, type protos } from '@google-cloud/tasks';
import * as grpc from '@grpc/grpc-js';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import { createTasksClient } from '../../functions/src/queue/client.js';
import {
  type CloudTasksEmulator,
  type CloudTasksEmulatorOptions,
  retryDelayMs,
  startCloudTasksEmulator,
} from './cloud-tasks/index.js';

type IQueue = protos.google.cloud.tasks.v2.IQueue;
type Transport = 'rest' | 'grpc';
const TRANSPORTS: readonly Transport[] = ['rest', 'grpc'];

const LOCATION = 'projects/test-project/locations/us-central1';
const INVALID_ARGUMENT = 3;
const DEADLINE_EXCEEDED = 4;
const NOT_FOUND = 5;
const ALREADY_EXISTS = 6;
const FAILED_PRECONDITION = 9;
const UNIMPLEMENTED = 12;
const UNAVAILABLE = 14;
const UNAUTHENTICATED = 16;
const BEARER = 'Bearer owner';
const UNAUTHENTICATED_MESSAGE =
  'Request is missing required authentication credential. Expected OAuth 2 access token, login cookie or other ' +
  'valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.';

// ---------------------------------------------------------------------------------------------
// A recording HTTP target.

interface Received {
  method: string;
  path: string;
  headers: http.IncomingHttpHeaders;
  body: string;
  /** When the request had fully arrived (ms). */
  at: number;
}

/**
 * What the target answers: a status, a status with headers, 'hang' to never answer, or 'reset'
 * to drop the connection without answering.
 */
type Reply = number | { status: number; headers: Record<string, string> } | 'hang' | 'reset';

interface Target {
  url: string;
  received: Received[];
  /** Resolves once `count` requests have arrived. */
  waitFor(count: number, timeoutMs?: number): Promise<Received[]>;
  close(): Promise<void>;
}

async function startTarget(reply: (n: number, req: Received) => Reply | Promise<Reply> = () => 200): Promise<Target> {
  const received: Received[] = [];
  const waiters = new Set<() => void>();
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const r: Received = {
        method: req.method ?? '',
        path: req.url ?? '',
        headers: req.headers,
        body: Buffer.concat(chunks).toString('utf8'),
        at: Date.now(),
      };
      received.push(r);
      for (const wake of [...waiters]) wake();
      Promise.resolve(reply(received.length, r)).then(
        (answer) => {
          if (answer === 'hang') return;
          if (answer === 'reset') {
            req.socket.destroy();
            return;
          }
          const { status, headers } = typeof answer === 'number' ? { status: answer, headers: {} } : answer;
          res.writeHead(status, headers).end(String(status));
        },
        () => res.writeHead(500).end(),
      );
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/work`,
    received,
    waitFor(count, timeoutMs = 5000) {
      return new Promise((resolve, reject) => {
        const check = (): void => {
          if (received.length < count) return;
          waiters.delete(check);
          clearTimeout(timer);
          resolve(received.slice());
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`expected ${count} requests at the target within ${timeoutMs} ms, got ${received.length}`));
        }, timeoutMs);
        waiters.add(check);
        check();
      });
    },
    close() {
      return new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Per-test setup.

interface Env {
  emulator: CloudTasksEmulator;
  client: CloudTasksClient;
  target: Target;
  queue: string;
}

let queueCounter = 0;

/** The connector's client of the emulator over `transport`, sending the development bearer token. */
function clientFor(emulator: CloudTasksEmulator, transport: Transport): CloudTasksClient {
  return transport === 'rest'
    ? createTasksClient({ emulatorHost: emulator.host, transport: 'rest' })
    : createTasksClient({ emulatorHost: emulator.grpcHost, transport: 'grpc' });
}

/** A client of the emulator over `transport` that sends no credentials at all. */
function anonymousClientFor(emulator: CloudTasksEmulator, transport: Transport): CloudTasksClient {
  if (transport === 'grpc') {
    return new CloudTasksClient({
      servicePath: '127.0.0.1',
      port: emulator.grpcPort,
      sslCreds: grpc.credentials.createInsecure(),
      universeDomain: 'googleapis.com',
    });
  }
  const noCredentials = {
    universeDomain: 'googleapis.com',
    getRequestHeaders: () => Promise.resolve(new Headers()),
    getAccessToken: () => Promise.resolve({}),
    getUniverseDomain: () => Promise.resolve('googleapis.com'),
    fetch: (url: string | URL, init: RequestInit) => fetch(url, init),
  };
  type Options = NonNullable<ConstructorParameters<typeof CloudTasksClient>[0]>;
  return new CloudTasksClient({
    fallback: true,
    protocol: 'http',
    apiEndpoint: '127.0.0.1',
    port: emulator.port,
    authClient: noCredentials as unknown as Options['authClient'],
  });
}

async function setup(
  t: TestContext,
  options: {
    transport?: Transport;
    queue?: Omit<IQueue, 'name'>;
    emulator?: CloudTasksEmulatorOptions;
    reply?: Parameters<typeof startTarget>[0];
  } = {},
): Promise<Env> {
  const emulator = await startCloudTasksEmulator(options.emulator);
  const target = await startTarget(options.reply);
  const client = clientFor(emulator, options.transport ?? 'rest');
  t.after(async () => {
    await client.close();
    await emulator.close();
    await target.close();
  });
  const queue = `${LOCATION}/queues/q-${++queueCounter}`;
  await client.createQueue({ parent: LOCATION, queue: { ...options.queue, name: queue } });
  return { emulator, client, target, queue };
}

const ms = (millis: number): { seconds: number; nanos: number } => ({
  seconds: Math.floor(millis / 1000),
  nanos: (millis % 1000) * 1_000_000,
});

/**
 * A predicate for assert.rejects: the client's error carries this canonical code and, when
 * given, this message (a gRPC error's `details`, a REST error's `message`).
 */
const withCode =
  (code: number, message?: string) =>
  (err: unknown): true => {
    const e = err as { code?: unknown; details?: unknown; message?: unknown };
    assert.equal(e.code, code, `expected code ${code}: ${String(err)}`);
    if (message !== undefined) assert.equal(typeof e.details === 'string' && e.details ? e.details : e.message, message);
    return true;
  };

/** Retries `check` until it passes or `timeoutMs` has passed, then throws its last error. */
async function eventually(check: () => Promise<void>, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await check();
      return;
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await sleep(20);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Names and de-duplication.

for (const transport of TRANSPORTS) {
void test(`${transport}: named tasks: ALREADY_EXISTS while live, after deletion and after execution; get, list, delete`, async (t) => {
  const { client, target, queue } = await setup(t, { transport });
  const later = `${queue}/tasks/later`;
  await client.createTask({
    parent: queue,
    task: { name: later, scheduleTime: ms(Date.now() + 60_000), httpRequest: { url: target.url } },
  });
  await assert.rejects(
    client.createTask({ parent: queue, task: { name: later, httpRequest: { url: target.url } } }),
    withCode(ALREADY_EXISTS),
  );

  const [got] = await client.getTask({ name: later });
  assert.equal(got.name, later);
  assert.equal(got.httpRequest?.url, target.url);
  const [listed] = await client.listTasks({ parent: queue });
  assert.deepEqual(
    listed.map((task) => task.name),
    [later],
  );

  await client.deleteTask({ name: later });
  await assert.rejects(client.getTask({ name: later }), withCode(NOT_FOUND));
  await assert.rejects(client.deleteTask({ name: later }), withCode(NOT_FOUND));
  await assert.rejects(
    client.createTask({ parent: queue, task: { name: later, httpRequest: { url: target.url } } }),
    withCode(ALREADY_EXISTS),
  );

  const now = `${queue}/tasks/now`;
  await client.createTask({ parent: queue, task: { name: now, httpRequest: { url: target.url } } });
  await target.waitFor(1);
  await eventually(() => assert.rejects(client.getTask({ name: now }), withCode(NOT_FOUND)));
  await assert.rejects(
    client.createTask({ parent: queue, task: { name: now, httpRequest: { url: target.url } } }),
    withCode(ALREADY_EXISTS),
  );
  await assert.rejects(client.deleteTask({ name: `${queue}/tasks/never-created` }), withCode(NOT_FOUND));
  await assert.rejects(
    client.createTask({ parent: `${LOCATION}/queues/no-such-queue`, task: { httpRequest: { url: target.url } } }),
    withCode(NOT_FOUND, 'Requested entity was not found.'),
  );
});
}

void test('a deleted task name is reusable once the de-duplication window has passed', async (t) => {
  const { client, target, queue } = await setup(t, { emulator: { dedupWindowMs: 300 } });
  const name = `${queue}/tasks/reused`;
  const task = { name, scheduleTime: ms(Date.now() + 60_000), httpRequest: { url: target.url } };
  await client.createTask({ parent: queue, task });
  await client.deleteTask({ name });
  await assert.rejects(client.createTask({ parent: queue, task }), withCode(ALREADY_EXISTS));
  await sleep(350);
  const [again] = await client.createTask({ parent: queue, task });
  assert.equal(again.name, name);
});

void test('unnamed tasks get generated ids; lists come in pages', async (t) => {
  const { client, target, queue } = await setup(t);
  const names: string[] = [];
  for (let i = 0; i < 3; i++) {
    const [task] = await client.createTask({
      parent: queue,
      task: { scheduleTime: ms(Date.now() + 60_000), httpRequest: { url: target.url } },
    });
    assert.match(task.name ?? '', new RegExp(`^${queue}/tasks/\\d+$`));
    names.push(task.name ?? '');
  }
  assert.equal(new Set(names).size, 3);
  const [first, , firstResponse] = await client.listTasks({ parent: queue, pageSize: 2 }, { autoPaginate: false });
  assert.equal(first.length, 2);
  assert.ok(firstResponse?.nextPageToken);
  const [second, , secondResponse] = await client.listTasks(
    { parent: queue, pageSize: 2, pageToken: firstResponse.nextPageToken },
    { autoPaginate: false },
  );
  assert.equal(second.length, 1);
  assert.ok(!secondResponse?.nextPageToken);
  assert.deepEqual([...first, ...second].map((task) => task.name).sort(), names.sort());
});

// ---------------------------------------------------------------------------------------------
// Dispatch.

for (const transport of TRANSPORTS) {
void test(`${transport}: dispatch carries method, body, headers and an OIDC token that verifies against the JWKS`, async (t) => {
  const { emulator, client, target, queue } = await setup(t, { transport });
  const email = 'tasks-invoker@test-project.iam.gserviceaccount.com';
  const audience = 'https://worker.example.com/';
  const scheduled = Date.now();
  const [created] = await client.createTask({
    parent: queue,
    task: {
      name: `${queue}/tasks/with-audience`,
      scheduleTime: ms(scheduled),
      httpRequest: {
        url: target.url,
        httpMethod: 'PUT',
        headers: { 'Content-Type': 'application/json', 'X-Custom': 'yes' },
        body: Buffer.from('{"hello":"world"}'),
        oidcToken: { serviceAccountEmail: email, audience },
      },
    },
  });
  assert.equal(created.httpRequest?.httpMethod, 'PUT');
  await client.createTask({
    parent: queue,
    task: {
      name: `${queue}/tasks/default-audience`,
      httpRequest: { url: target.url, oidcToken: { serviceAccountEmail: email } },
    },
  });
  const [first, second] = await target.waitFor(2);
  const byName = new Map([first, second].map((r) => [r?.headers['x-cloudtasks-taskname'], r]));
  const put = byName.get('with-audience');
  const post = byName.get('default-audience');
  assert.ok(put && post);

  assert.equal(put.method, 'PUT');
  assert.equal(put.path, '/work');
  assert.equal(put.body, '{"hello":"world"}');
  assert.equal(put.headers['content-type'], 'application/json');
  assert.equal(put.headers['x-custom'], 'yes');
  assert.equal(put.headers['user-agent'], 'Google-Cloud-Tasks');
  assert.equal(put.headers['x-cloudtasks-queuename'], queue.split('/').pop());
  assert.equal(put.headers['x-cloudtasks-taskretrycount'], '0');
  assert.equal(put.headers['x-cloudtasks-taskexecutioncount'], '0');
  assert.ok(Math.abs(Number(put.headers['x-cloudtasks-tasketa']) - scheduled / 1000) < 0.002);
  assert.equal(post.method, 'POST');
  assert.equal(post.body, '');

  const jwks = createRemoteJWKSet(new URL(emulator.jwksUrl));
  const verify = async (r: Received, aud: string): Promise<void> => {
    const header = r.headers.authorization ?? '';
    assert.match(header, /^Bearer /);
    const { payload, protectedHeader } = await jwtVerify(header.slice('Bearer '.length), jwks, {
      issuer: emulator.issuer,
      audience: aud,
    });
    assert.equal(protectedHeader.alg, 'RS256');
    assert.ok(protectedHeader.kid);
    assert.equal(payload.email, email);
    assert.equal(payload.email_verified, true);
    assert.equal(payload.iss, 'https://accounts.google.com');
    assert.ok(payload.sub);
    assert.equal(payload.exp, (payload.iat ?? 0) + 3600);
  };
  await verify(put, audience);
  await verify(post, target.url);
  await assert.rejects(jwtVerify((put.headers.authorization ?? '').slice(7), jwks, { audience: target.url }));
});
}

void test('failed attempts are retried with the queue backoff until a 2xx; counts in headers', async (t) => {
  const replies = [500, 500, 409, 200];
  const { client, target, queue } = await setup(t, {
    queue: { retryConfig: { minBackoff: ms(100), maxBackoff: ms(300), maxAttempts: 10 } },
    reply: (n) => replies[n - 1] ?? 200,
  });
  const name = `${queue}/tasks/flaky`;
  await client.createTask({ parent: queue, task: { name, httpRequest: { url: target.url } } });
  const got = await target.waitFor(4);
  const gaps = got.slice(1).map((r, i) => r.at - (got[i]?.at ?? 0));
  // min_backoff 0.1 s doubling (0.1, 0.2, 0.4) capped by max_backoff 0.3 s.
  [100, 200, 300].forEach((expected, i) => {
    const gap = gaps[i] ?? 0;
    assert.ok(
      gap >= expected - 15 && gap <= expected + 250,
      `retry ${i + 1} came after ${gap} ms, expected ~${expected} ms`,
    );
  });
  assert.deepEqual(
    got.map((r) => r.headers['x-cloudtasks-taskretrycount']),
    ['0', '1', '2', '3'],
  );
  // As documented by Google, the execution count leaves out 5xx answers.
  assert.deepEqual(
    got.map((r) => r.headers['x-cloudtasks-taskexecutioncount']),
    ['0', '0', '0', '1'],
  );
  assert.deepEqual(
    got.map((r) => r.headers['x-cloudtasks-taskpreviousresponse']),
    [undefined, '500', '500', '409'],
  );
  await eventually(() => assert.rejects(client.getTask({ name }), withCode(NOT_FOUND)));
  await sleep(400);
  assert.equal(target.received.length, 4);
});

void test('retry delays follow Google documented example: 10s, 20s, 40s, 80s, 160s, 240s, 300s', () => {
  const config = { minBackoffMs: 10_000, maxBackoffMs: 300_000, maxDoublings: 3 };
  assert.deepEqual(
    [1, 2, 3, 4, 5, 6, 7, 8].map((retry) => retryDelayMs(retry, config) / 1000),
    [10, 20, 40, 80, 160, 240, 300, 300],
  );
});

void test('maxAttempts stops retrying and drops the task; its name stays taken', async (t) => {
  const { client, target, queue } = await setup(t, {
    queue: { retryConfig: { maxAttempts: 3, minBackoff: ms(50), maxBackoff: ms(50) } },
    reply: () => 503,
  });
  const name = `${queue}/tasks/doomed`;
  await client.createTask({ parent: queue, task: { name, httpRequest: { url: target.url } } });
  await target.waitFor(3);
  await eventually(() => assert.rejects(client.getTask({ name }), withCode(NOT_FOUND)));
  await sleep(300);
  assert.equal(target.received.length, 3);
  await assert.rejects(
    client.createTask({ parent: queue, task: { name, httpRequest: { url: target.url } } }),
    withCode(ALREADY_EXISTS),
  );
});

void test('an attempt past its dispatchDeadline fails; the task records it; RunTask dispatches at once', async (t) => {
  const { client, target, queue } = await setup(t, {
    // A long backoff keeps the failed task waiting, so RunTask is what dispatches it again.
    queue: { retryConfig: { minBackoff: ms(60_000), maxBackoff: ms(60_000) } },
    reply: (n) => (n === 1 ? 'hang' : 200),
    // Google accepts 15 s to 30 min; the test-only override lets a 1 s deadline pass.
    emulator: { minDispatchDeadlineMs: 100 },
  });
  const name = `${queue}/tasks/slow`;
  await client.createTask({ parent: queue, task: { name, dispatchDeadline: ms(1000), httpRequest: { url: target.url } } });
  const [first] = await target.waitFor(1);
  let failedAt = 0;
  await eventually(async () => {
    const [task] = await client.getTask({ name });
    assert.equal(task.lastAttempt?.responseStatus?.code, DEADLINE_EXCEEDED);
    assert.equal(task.dispatchCount, 1);
    assert.equal(task.responseCount, 0);
    assert.ok(task.firstAttempt?.dispatchTime);
    failedAt = Date.now();
  });
  assert.ok(failedAt - (first?.at ?? 0) >= 900, `the attempt failed after ${failedAt - (first?.at ?? 0)} ms`);

  const [ran] = await client.runTask({ name });
  assert.equal(ran.dispatchCount, 2);
  const [, second] = await target.waitFor(2);
  assert.equal(second?.headers['x-cloudtasks-taskretrycount'], '1');
  assert.equal(second?.headers['x-cloudtasks-taskexecutioncount'], '0');
  await eventually(() => assert.rejects(client.getTask({ name }), withCode(NOT_FOUND)));
});

void test('a task deleted while its attempt is in flight is never retried', async (t) => {
  const { client, target, queue } = await setup(t, {
    queue: { retryConfig: { minBackoff: ms(50), maxBackoff: ms(50) } },
    reply: () => sleep(300).then(() => 500),
  });
  const name = `${queue}/tasks/in-flight`;
  await client.createTask({ parent: queue, task: { name, httpRequest: { url: target.url } } });
  await target.waitFor(1);
  await client.deleteTask({ name });
  await sleep(600);
  assert.equal(target.received.length, 1);
  await assert.rejects(client.getTask({ name }), withCode(NOT_FOUND));
});

// ---------------------------------------------------------------------------------------------
// Queue state and limits.

for (const transport of TRANSPORTS) {
void test(`${transport}: a paused queue accepts CreateTask (as Google's does) and dispatches nothing until resumed`, async (t) => {
  const { client, target, queue } = await setup(t, { transport });
  const [paused] = await client.pauseQueue({ name: queue });
  assert.equal(paused.state, 'PAUSED');
  const [now] = await client.createTask({ parent: queue, task: { name: `${queue}/tasks/while-paused`, httpRequest: { url: target.url } } });
  assert.equal(now.name, `${queue}/tasks/while-paused`);
  await client.createTask({ parent: queue, task: { scheduleTime: ms(Date.now() + 100), httpRequest: { url: target.url } } });
  const [listed] = await client.listTasks({ parent: queue });
  assert.equal(listed.length, 2);
  const [shown] = await client.getQueue({ name: queue });
  assert.equal(shown.state, 'PAUSED');
  await sleep(400);
  assert.equal(target.received.length, 0);
  const [resumed] = await client.resumeQueue({ name: queue });
  assert.equal(resumed.state, 'RUNNING');
  await target.waitFor(2);
});
}

void test('scheduleTime in the future is honoured', async (t) => {
  const { client, target, queue } = await setup(t);
  const created = Date.now();
  const due = created + 700;
  await client.createTask({ parent: queue, task: { scheduleTime: ms(due), httpRequest: { url: target.url } } });
  const [got] = await target.waitFor(1);
  assert.ok((got?.at ?? 0) >= due - 5, `dispatched ${(got?.at ?? 0) - due} ms relative to its schedule time`);
  assert.ok(Math.abs(Number(got?.headers['x-cloudtasks-tasketa']) - due / 1000) < 0.002);
});

void test('a task deleted before its schedule time is never dispatched; purge and queue deletion', async (t) => {
  const { client, target, queue } = await setup(t);
  const soon = `${queue}/tasks/soon`;
  const at = (delay: number) => ({ scheduleTime: ms(Date.now() + delay), httpRequest: { url: target.url } });
  await client.createTask({ parent: queue, task: { name: soon, ...at(200) } });
  for (let i = 0; i < 3; i++) await client.createTask({ parent: queue, task: at(300) });
  await client.deleteTask({ name: soon });
  const [purged] = await client.purgeQueue({ name: queue });
  assert.ok(purged.purgeTime?.seconds);
  const [left] = await client.listTasks({ parent: queue });
  assert.equal(left.length, 0);
  await sleep(500);
  assert.equal(target.received.length, 0);

  await client.deleteQueue({ name: queue });
  await assert.rejects(client.getQueue({ name: queue }), withCode(NOT_FOUND));
  await assert.rejects(client.pauseQueue({ name: queue }), withCode(NOT_FOUND));
});

void test('maxConcurrentDispatches=1 serialises dispatch; the default does not', async (t) => {
  const overlap = async (env: Env, active: { now: number; max: number }): Promise<number> => {
    const task = { httpRequest: { url: env.target.url } };
    for (let i = 0; i < 3; i++) await env.client.createTask({ parent: env.queue, task });
    await env.target.waitFor(3);
    await eventually(async () => assert.equal(active.now, 0));
    return active.max;
  };
  const holding = (active: { now: number; max: number }) => async (): Promise<number> => {
    active.now++;
    active.max = Math.max(active.max, active.now);
    await sleep(150);
    active.now--;
    return 200;
  };
  const serialActive = { now: 0, max: 0 };
  const serial = await setup(t, { queue: { rateLimits: { maxConcurrentDispatches: 1 } }, reply: holding(serialActive) });
  const [shown] = await serial.client.getQueue({ name: serial.queue });
  assert.equal(shown.rateLimits?.maxConcurrentDispatches, 1);
  assert.equal(await overlap(serial, serialActive), 1);

  const parallelActive = { now: 0, max: 0 };
  const parallel = await setup(t, { reply: holding(parallelActive) });
  assert.ok((await overlap(parallel, parallelActive)) > 1);
});

void test('maxDispatchesPerSecond paces dispatch through a token bucket', async (t) => {
  const { client, target, queue } = await setup(t, { queue: { rateLimits: { maxDispatchesPerSecond: 10 } } });
  const [shown] = await client.getQueue({ name: queue });
  assert.equal(shown.rateLimits?.maxDispatchesPerSecond, 10);
  assert.equal(shown.rateLimits?.maxBurstSize, 2);
  for (let i = 0; i < 6; i++) await client.createTask({ parent: queue, task: { httpRequest: { url: target.url } } });
  const got = await target.waitFor(6);
  const span = (got[5]?.at ?? 0) - (got[0]?.at ?? 0);
  // Two tokens at once, then one every 100 ms.
  assert.ok(span >= 330, `six dispatches at 10/s with a burst of 2 took ${span} ms`);
});

void test('updateQueue changes only the fields in its update mask', async (t) => {
  const { client, queue } = await setup(t, {
    queue: {
      rateLimits: { maxDispatchesPerSecond: 10, maxConcurrentDispatches: 7 },
      retryConfig: { maxAttempts: 5, minBackoff: ms(1000), maxBackoff: ms(10_000) },
    },
  });
  const [created] = await client.getQueue({ name: queue });
  assert.equal(created.state, 'RUNNING');
  assert.equal(created.retryConfig?.maxDoublings, 16);

  const [masked] = await client.updateQueue({
    queue: {
      name: queue,
      rateLimits: { maxDispatchesPerSecond: 99, maxConcurrentDispatches: 3 },
      retryConfig: { maxAttempts: 9 },
    },
    updateMask: { paths: ['rate_limits.max_concurrent_dispatches'] },
  });
  assert.equal(masked.rateLimits?.maxConcurrentDispatches, 3);
  assert.equal(masked.rateLimits?.maxDispatchesPerSecond, 10);
  assert.equal(masked.retryConfig?.maxAttempts, 5);
  assert.equal(Number(masked.retryConfig?.minBackoff?.seconds), 1);

  // A whole message in the mask is replaced: its unset fields return to Google's defaults.
  const [replaced] = await client.updateQueue({
    queue: { name: queue, retryConfig: { maxAttempts: 9 } },
    updateMask: { paths: ['retryConfig'] },
  });
  assert.equal(replaced.retryConfig?.maxAttempts, 9);
  assert.equal(replaced.retryConfig?.minBackoff?.nanos, 100_000_000);
  assert.equal(Number(replaced.retryConfig?.maxBackoff?.seconds), 3600);
  assert.equal(replaced.rateLimits?.maxConcurrentDispatches, 3);

  const [got] = await client.getQueue({ name: queue });
  assert.equal(got.retryConfig?.maxAttempts, 9);
  await assert.rejects(
    client.updateQueue({ queue: { name: queue }, updateMask: { paths: ['state'] } }),
    withCode(INVALID_ARGUMENT),
  );
  await assert.rejects(
    client.updateQueue({
      queue: { name: queue, rateLimits: { maxDispatchesPerSecond: 501 } },
      updateMask: { paths: ['rate_limits'] },
    }),
    withCode(INVALID_ARGUMENT),
  );
  await assert.rejects(client.createQueue({ parent: LOCATION, queue: { name: queue } }), withCode(ALREADY_EXISTS));
});

// ---------------------------------------------------------------------------------------------
// The REST surface as other callers (gcloud) use it.

void test('REST routes accept enum names and snake_case as gcloud sends them, and answer Google errors', async (t) => {
  const { emulator, target, queue } = await setup(t);
  type Answer = { status: number; json: Record<string, unknown> };
  const call = async (method: string, path: string, body?: unknown): Promise<Answer> => {
    const init: RequestInit = { method, headers: { 'Content-Type': 'application/json', Authorization: BEARER } };
    if (body !== undefined) init.body = JSON.stringify(body);
    const res = await fetch(`${emulator.url}${path}`, init);
    return { status: res.status, json: (await res.json()) as Record<string, unknown> };
  };

  const created = await call('POST', `v2/${queue}/tasks?alt=json`, {
    task: {
      http_request: {
        url: target.url,
        http_method: 'PUT',
        headers: { 'X-From': 'gcloud' },
        body: Buffer.from('raw body').toString('base64'),
      },
      dispatch_deadline: '30s',
    },
    response_view: 'FULL',
  });
  assert.equal(created.status, 200);
  const http = created.json.httpRequest as Record<string, unknown>;
  assert.equal(http.httpMethod, 'PUT');
  assert.equal(http.body, Buffer.from('raw body').toString('base64'));
  assert.equal(created.json.view, 'FULL');
  assert.equal(created.json.dispatchDeadline, '30s');
  const [got] = await target.waitFor(1);
  assert.equal(got?.method, 'PUT');
  assert.equal(got?.body, 'raw body');
  assert.equal(got?.headers['x-from'], 'gcloud');

  assert.equal((await call('GET', `v2/${queue}`)).json.state, 'RUNNING');
  assert.equal((await call('GET', `v2/${queue}?$alt=json%3Benum-encoding=int`)).json.state, 1);
  assert.equal((await call('POST', `v2/${queue}:pause`, {})).json.state, 'PAUSED');

  const missing = await call('GET', `v2/${queue}/tasks/nope`);
  assert.equal(missing.status, 404);
  assert.deepEqual(missing.json, { error: { code: 404, message: 'Requested entity was not found.', status: 'NOT_FOUND' } });
  const unknownField = await call('POST', `v2/${queue}/tasks`, { task: { httpRequest: { url: target.url, verb: 'POST' } } });
  assert.equal(unknownField.status, 400);
  assert.equal((unknownField.json.error as Record<string, unknown>).status, 'INVALID_ARGUMENT');
  const badBody = await call('POST', `v2/${queue}/tasks`, {
    task: { httpRequest: { url: target.url, httpMethod: 'GET', body: Buffer.from('x').toString('base64') } },
  });
  assert.equal(badBody.status, 400);
});

// ---------------------------------------------------------------------------------------------
// GetTask over REST through a task's life, retry headers, tokens minted for local callers.

/** A promise and the function that resolves it. */
function gate(): { opened: Promise<void>; open: () => void } {
  let open = (): void => {};
  const opened = new Promise<void>((resolve) => (open = resolve));
  return { opened, open };
}

/** GetTask as gcloud sends it: REST GET v2/{name}. */
async function restGetTask(emulator: CloudTasksEmulator, name: string): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(`${emulator.url}v2/${name}`, { headers: { Authorization: BEARER } });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

const NOT_FOUND_BODY = { error: { code: 404, message: 'Requested entity was not found.', status: 'NOT_FOUND' } };

void test('GetTask (REST) answers a task while its attempt is in flight, and 404 once the target answered 2xx', async (t) => {
  const release = gate();
  const { emulator, target, queue } = await setup(t, { reply: () => release.opened.then(() => 200) });
  const name = `${queue}/tasks/in-dispatch`;
  await restGetTask(emulator, name).then((r) => assert.equal(r.status, 404));
  const created = await fetch(`${emulator.url}v2/${queue}/tasks`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: BEARER },
    body: JSON.stringify({ task: { name, httpRequest: { url: target.url } } }),
  });
  assert.equal(created.status, 200);
  await target.waitFor(1);

  // The target holds the request: the task is being dispatched, and still there.
  const during = await restGetTask(emulator, name);
  assert.equal(during.status, 200);
  assert.equal(during.json.name, name);
  assert.equal(during.json.dispatchCount, 1);
  assert.equal(during.json.responseCount, undefined);
  const attempt = during.json.lastAttempt as Record<string, unknown> | undefined;
  assert.ok(attempt?.dispatchTime, 'the attempt in flight has a dispatch time');
  assert.equal(attempt.responseTime, undefined);
  assert.equal(attempt.responseStatus, undefined);

  release.open();
  await eventually(async () => {
    const after = await restGetTask(emulator, name);
    assert.equal(after.status, 404);
    assert.deepEqual(after.json, NOT_FOUND_BODY);
  });
  assert.equal(target.received.length, 1);
});

void test('GetTask (REST) answers 404 for a task whose retries are exhausted (maxAttempts=2, target always 500)', async (t) => {
  const release = gate();
  const { emulator, client, target, queue } = await setup(t, {
    queue: { retryConfig: { maxAttempts: 2, minBackoff: ms(50), maxBackoff: ms(50) } },
    // The first attempt fails at once; the second waits for the test before failing too.
    reply: (n) => (n === 1 ? 500 : release.opened.then(() => 500)),
  });
  const name = `${queue}/tasks/exhausted`;
  await client.createTask({ parent: queue, task: { name, httpRequest: { url: target.url } } });
  await target.waitFor(2);
  const during = await restGetTask(emulator, name);
  assert.equal(during.status, 200);
  assert.equal(during.json.dispatchCount, 2);
  assert.equal(during.json.responseCount, 1);

  release.open();
  await eventually(async () => {
    const after = await restGetTask(emulator, name);
    assert.equal(after.status, 404);
    assert.deepEqual(after.json, NOT_FOUND_BODY);
  });
  // Gone means no further attempt can come: the decision not to retry is what removed it.
  assert.equal(target.received.length, 2);
  const [left] = await client.listTasks({ parent: queue });
  assert.equal(left.length, 0);
});

void test('each retry carries its retry count, the HTTP status of the attempt before it and why it failed', async (t) => {
  const replies: Reply[] = [500, 404, 'hang', 'reset', 429, 200];
  const { client, target, queue } = await setup(t, {
    queue: { retryConfig: { maxAttempts: 10, minBackoff: ms(50), maxBackoff: ms(50) } },
    reply: (n) => replies[n - 1] ?? 200,
    emulator: { minDispatchDeadlineMs: 100 },
  });
  const name = `${queue}/tasks/retried`;
  await client.createTask({ parent: queue, task: { name, dispatchDeadline: ms(300), httpRequest: { url: target.url } } });
  const got = await target.waitFor(6);
  assert.deepEqual(
    got.map((r) => r.headers['x-cloudtasks-taskretrycount']),
    ['0', '1', '2', '3', '4', '5'],
  );
  assert.deepEqual(
    got.map((r) => r.headers['x-cloudtasks-taskpreviousresponse']),
    [undefined, '500', '404', undefined, undefined, '429'],
  );
  assert.deepEqual(
    got.map((r) => r.headers['x-cloudtasks-taskretryreason']),
    [undefined, 'HTTP status code 500', 'HTTP status code 404', 'DEADLINE_EXCEEDED', 'UNAVAILABLE', 'HTTP status code 429'],
  );
  await eventually(() => assert.rejects(client.getTask({ name }), withCode(NOT_FOUND)));
  assert.equal(target.received.length, 6);
});

void test('mintOidcToken signs tokens exactly like those of dispatched tasks', async (t) => {
  const { emulator, client, target, queue } = await setup(t);
  const email = 'scheduler@test-project.iam.gserviceaccount.com';
  const audience = 'https://aci.example.com/sync';
  await client.createTask({
    parent: queue,
    task: { httpRequest: { url: target.url, oidcToken: { serviceAccountEmail: email, audience } } },
  });
  const [dispatched] = await target.waitFor(1);
  const dispatchedToken = (dispatched?.headers.authorization ?? '').replace(/^Bearer /, '');
  assert.ok(dispatchedToken);

  const jwks = createRemoteJWKSet(new URL(emulator.jwksUrl));
  const minted = await emulator.mintOidcToken(email, audience);
  const a = await jwtVerify(minted, jwks, { issuer: emulator.issuer, audience });
  const b = await jwtVerify(dispatchedToken, jwks, { issuer: emulator.issuer, audience });
  assert.deepEqual(a.protectedHeader, b.protectedHeader);
  assert.deepEqual(Object.keys(a.payload).sort(), Object.keys(b.payload).sort());
  for (const claim of ['iss', 'aud', 'sub', 'azp', 'email', 'email_verified'] as const) {
    assert.deepEqual(a.payload[claim], b.payload[claim], claim);
  }

  const other = await emulator.mintOidcToken(email, 'https://other.example.com/');
  const { payload } = await jwtVerify(other, jwks, { issuer: 'https://accounts.google.com', audience: 'https://other.example.com/' });
  assert.equal(payload.email, email);
  assert.equal(payload.exp, (payload.iat ?? 0) + 3600);
  await assert.rejects(jwtVerify(other, jwks, { audience }));
  await assert.rejects(emulator.mintOidcToken('', audience));
  await assert.rejects(emulator.mintOidcToken(email, ''));
});

// ---------------------------------------------------------------------------------------------
// What Google refuses, on both transports.

for (const transport of TRANSPORTS) {
  void test(`${transport}: a call without credentials is UNAUTHENTICATED unless the emulator is open`, async (t) => {
    const closed = await startCloudTasksEmulator();
    const open = await startCloudTasksEmulator({ open: true });
    const anonymous = anonymousClientFor(closed, transport);
    const anonymousOfOpen = anonymousClientFor(open, transport);
    const owner = clientFor(closed, transport);
    t.after(async () => {
      await Promise.all([anonymous.close(), anonymousOfOpen.close(), owner.close()]);
      await Promise.all([closed.close(), open.close()]);
    });
    const queue = { parent: LOCATION, queue: { name: `${LOCATION}/queues/auth` } };
    await assert.rejects(anonymous.createQueue(queue), withCode(UNAUTHENTICATED, UNAUTHENTICATED_MESSAGE));
    await assert.rejects(anonymous.listQueues({ parent: LOCATION }), withCode(UNAUTHENTICATED, UNAUTHENTICATED_MESSAGE));
    await assert.rejects(anonymous.getTask({ name: `${LOCATION}/queues/auth/tasks/t` }), withCode(UNAUTHENTICATED));
    // Any non-empty bearer token is accepted.
    const [created] = await owner.createQueue(queue);
    assert.equal(created.name, queue.queue.name);
    const [openCreated] = await anonymousOfOpen.createQueue(queue);
    assert.equal(openCreated.name, queue.queue.name);
  });

  void test(`${transport}: dispatch_deadline must lie from 15 s to 30 min unless the test override lowers the minimum`, async (t) => {
    const { client, target, queue } = await setup(t, { transport });
    const create = (deadlineMs: number) =>
      client.createTask({
        parent: queue,
        task: { scheduleTime: ms(Date.now() + 60_000), dispatchDeadline: ms(deadlineMs), httpRequest: { url: target.url } },
      });
    await assert.rejects(create(14_999), withCode(INVALID_ARGUMENT, 'task.dispatch_deadline must be from 15s to 1800s; got 14.999s'));
    await assert.rejects(create(1_000), withCode(INVALID_ARGUMENT, 'task.dispatch_deadline must be from 15s to 1800s; got 1s'));
    await assert.rejects(create(1_801_000), withCode(INVALID_ARGUMENT, 'task.dispatch_deadline must be from 15s to 1800s; got 1801s'));
    const [shortest] = await create(15_000);
    assert.equal(Number(shortest.dispatchDeadline?.seconds), 15);
    const [longest] = await create(1_800_000);
    assert.equal(Number(longest.dispatchDeadline?.seconds), 1800);
    const [unset] = await client.createTask({ parent: queue, task: { scheduleTime: ms(Date.now() + 60_000), httpRequest: { url: target.url } } });
    assert.equal(Number(unset.dispatchDeadline?.seconds), 600);

    const fast = await setup(t, { transport, emulator: { minDispatchDeadlineMs: 100 } });
    const [quick] = await fast.client.createTask({ parent: fast.queue, task: { dispatchDeadline: ms(1_000), httpRequest: { url: fast.target.url } } });
    assert.equal(Number(quick.dispatchDeadline?.seconds), 1);
    await assert.rejects(
      fast.client.createTask({ parent: fast.queue, task: { dispatchDeadline: ms(50), httpRequest: { url: fast.target.url } } }),
      withCode(INVALID_ARGUMENT, 'task.dispatch_deadline must be from 0.100s to 1800s; got 0.050s'),
    );
  });

  void test(`${transport}: a deleted queue's name stays reserved (FAILED_PRECONDITION) for the reservation window`, async (t) => {
    const { client, queue } = await setup(t, { transport, emulator: { queueNameReservationMs: 400 } });
    const reserved = 'The queue cannot be created because a queue with this name existed too recently.';
    await assert.rejects(client.createQueue({ parent: LOCATION, queue: { name: queue } }), withCode(ALREADY_EXISTS));
    // Taken before the call: the deletion happens after this moment, so the name frees no earlier than 400 ms after it.
    const deletedAt = Date.now();
    await client.deleteQueue({ name: queue });
    await assert.rejects(client.getQueue({ name: queue }), withCode(NOT_FOUND));
    await assert.rejects(client.createQueue({ parent: LOCATION, queue: { name: queue } }), withCode(FAILED_PRECONDITION, reserved));
    // UpdateQueue creates a missing queue, but not under a reserved name.
    await assert.rejects(
      client.updateQueue({ queue: { name: queue, rateLimits: { maxDispatchesPerSecond: 5 } } }),
      withCode(FAILED_PRECONDITION, reserved),
    );
    const [other] = await client.createQueue({ parent: LOCATION, queue: { name: `${queue}-other` } });
    assert.equal(other.state, 'RUNNING');

    let recreated: IQueue | undefined;
    await eventually(async () => {
      [recreated] = await client.createQueue({ parent: LOCATION, queue: { name: queue } });
    }, 5000);
    assert.ok(Date.now() - deletedAt >= 400, 'the name came free before the window had passed');
    assert.equal(recreated?.name, queue);
    // UpdateQueue on a deleted queue's name once it is free creates it.
    await client.deleteQueue({ name: `${queue}-other` });
    await eventually(async () => {
      const [updated] = await client.updateQueue({ queue: { name: `${queue}-other`, rateLimits: { maxDispatchesPerSecond: 5 } } });
      assert.equal(updated.rateLimits?.maxDispatchesPerSecond, 5);
    }, 5000);
  });

  void test(`${transport}: injectFault makes the next calls of an RPC fail with the status asked for`, async (t) => {
    const { emulator, client, target, queue } = await setup(t, { transport });
    const task = { httpRequest: { url: target.url }, scheduleTime: ms(Date.now() + 60_000) };
    emulator.injectFault('CreateTask', 'UNAVAILABLE', 2);
    await assert.rejects(client.createTask({ parent: queue, task }), withCode(UNAVAILABLE, 'The service is currently unavailable.'));
    await assert.rejects(client.createTask({ parent: queue, task }), withCode(UNAVAILABLE, 'The service is currently unavailable.'));
    const [created] = await client.createTask({ parent: queue, task });
    assert.ok(created.name);
    // Faults count calls, not retries: GetTask is retried by the client on UNAVAILABLE.
    emulator.injectFault('GetTask', 'UNAVAILABLE');
    const [got] = await client.getTask({ name: created.name ?? '' });
    assert.equal(got.name, created.name);
    emulator.injectFault('DeleteTask', 'INVALID_ARGUMENT');
    await assert.rejects(
      client.deleteTask({ name: created.name ?? '' }),
      withCode(INVALID_ARGUMENT, 'DeleteTask failed: INVALID_ARGUMENT (injected fault)'),
    );
    await client.deleteTask({ name: created.name ?? '' });
    assert.throws(() => emulator.injectFault('UpdateTask', 'UNAVAILABLE'), /not a Cloud Tasks RPC/);
    assert.throws(() => emulator.injectFault('GetTask', 'OK' as 'UNAVAILABLE'), /not a canonical error status/);
  });

  void test(`${transport}: INVALID_ARGUMENT names the bad field, as the REST and gRPC front ends share validation`, async (t) => {
    const { client, queue } = await setup(t, { transport });
    await assert.rejects(
      client.createTask({ parent: queue, task: { httpRequest: { url: 'ftp://example.com/x' } } }),
      withCode(INVALID_ARGUMENT, 'task.http_request.url must be an absolute http:// or https:// URL of at most 2083 characters; got "ftp://example.com/x"'),
    );
    await assert.rejects(
      client.createTask({ parent: queue, task: { httpRequest: { url: 'http://127.0.0.1/x', httpMethod: 'GET', body: Buffer.from('x') } } }),
      withCode(INVALID_ARGUMENT, 'task.http_request.body is allowed only with http_method POST, PUT or PATCH; got GET'),
    );
    await assert.rejects(
      client.getTask({ name: `${queue}/tasks/bad name` }),
      withCode(INVALID_ARGUMENT),
    );
    await assert.rejects(
      client.updateQueue({ queue: { name: queue }, updateMask: { paths: ['state'] } }),
      withCode(INVALID_ARGUMENT, 'update_mask names "state", which UpdateQueue cannot change'),
    );
  });
}

void test('REST: 401 in Google\'s shape with a WWW-Authenticate challenge; JWKS, discovery and health stay public', async (t) => {
  const emulator = await startCloudTasksEmulator();
  t.after(() => emulator.close());
  const body = {
    error: { code: 401, message: UNAUTHENTICATED_MESSAGE, status: 'UNAUTHENTICATED' },
  };
  for (const authorization of [undefined, 'Bearer', 'Bearer  ', 'Basic b3duZXI6']) {
    const res = await fetch(`${emulator.url}v2/${LOCATION}/queues`, authorization === undefined ? {} : { headers: { Authorization: authorization } });
    assert.equal(res.status, 401, String(authorization));
    assert.equal(res.headers.get('www-authenticate'), 'Bearer realm="https://accounts.google.com/"');
    assert.deepEqual(await res.json(), body);
  }
  const listed = await fetch(`${emulator.url}v2/${LOCATION}/queues`, { headers: { Authorization: 'Bearer anything' } });
  assert.equal(listed.status, 200);
  assert.deepEqual(await listed.json(), { queues: [] });
  for (const path of ['', 'oauth2/v3/certs', '.well-known/openid-configuration']) {
    const res = await fetch(`${emulator.url}${path}`);
    assert.equal(res.status, 200, path);
    await res.arrayBuffer();
  }
  emulator.injectFault('ListQueues', 'UNAVAILABLE');
  const refused = await fetch(`${emulator.url}v2/${LOCATION}/queues`, { headers: { Authorization: BEARER } });
  assert.equal(refused.status, 503);
  assert.deepEqual(await refused.json(), {
    error: { code: 503, message: 'The service is currently unavailable.', status: 'UNAVAILABLE' },
  });
});

void test('gRPC: RPCs the emulator does not serve answer UNIMPLEMENTED', async (t) => {
  const { client, queue } = await setup(t, { transport: 'grpc' });
  await assert.rejects(
    client.getIamPolicy({ resource: queue }),
    withCode(UNIMPLEMENTED, 'The Cloud Tasks emulator does not implement google.cloud.tasks.v2.CloudTasks.GetIamPolicy'),
  );
});

void test('a 429 or 503 with Retry-After delays the next attempt to at least then; other statuses keep the backoff', async (t) => {
  // The HTTP-date form has whole seconds: name the second after next, so it lies 1-2 s ahead.
  let dateAt = 0;
  const replies = (n: number): Reply => {
    if (n === 1) return { status: 503, headers: { 'Retry-After': '1' } };
    if (n === 2) {
      dateAt = (Math.floor(Date.now() / 1000) + 2) * 1000;
      return { status: 429, headers: { 'Retry-After': new Date(dateAt).toUTCString() } };
    }
    if (n === 3) return { status: 500, headers: { 'Retry-After': '30' } };
    return 200;
  };
  const { client, target, queue } = await setup(t, {
    queue: { retryConfig: { minBackoff: ms(100), maxBackoff: ms(100), maxAttempts: 10 } },
    reply: replies,
  });
  const name = `${queue}/tasks/throttled`;
  await client.createTask({ parent: queue, task: { name, httpRequest: { url: target.url } } });
  const got = await target.waitFor(4, 10_000);
  const at = got.map((r) => r.at);
  const gap = (i: number): number => (at[i] ?? 0) - (at[i - 1] ?? 0);
  assert.ok(gap(1) >= 1000, `the retry after "Retry-After: 1" came after ${gap(1)} ms`);
  assert.ok((at[2] ?? 0) >= dateAt, `the retry after an HTTP-date came ${dateAt - (at[2] ?? 0)} ms early`);
  assert.ok(gap(3) < 1000, `a 500's Retry-After is not honoured: the retry came after ${gap(3)} ms`);
  assert.deepEqual(
    got.map((r) => r.headers['x-cloudtasks-taskpreviousresponse']),
    [undefined, '503', '429', '500'],
  );
  await eventually(() => assert.rejects(client.getTask({ name }), withCode(NOT_FOUND)));
});

void test('main.ts serves REST and gRPC on the ports of its environment and prints both addresses', async (t) => {
  const main = fileURLToPath(new URL('./cloud-tasks/main.ts', import.meta.url));
  const child = spawn(process.execPath, ['--import', 'tsx', main], {
    env: { ...process.env, CLOUD_TASKS_EMULATOR_PORT: '0', CLOUD_TASKS_EMULATOR_GRPC_PORT: '0' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  t.after(async () => {
    if (child.exitCode === null) child.kill('SIGTERM');
    await exited;
  });
  let out = '';
  child.stdout.setEncoding('utf8');
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`main.ts printed only ${JSON.stringify(out)}`)), 20_000);
    child.stdout.on('data', (chunk: string) => {
      out += chunk;
      if (out.split('\n').length > 2) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  const [restLine, grpcLine] = out.split('\n');
  const rest = /^cloud-tasks emulator: http:\/\/127\.0\.0\.1:(\d+)\/$/.exec(restLine ?? '');
  const grpcMatch = /^cloud-tasks emulator grpc: 127\.0\.0\.1:(\d+)$/.exec(grpcLine ?? '');
  assert.ok(rest && grpcMatch, out);
  const restClient = createTasksClient({ emulatorHost: `127.0.0.1:${rest[1]}`, transport: 'rest' });
  const grpcClient = createTasksClient({ emulatorHost: `127.0.0.1:${grpcMatch[1]}`, transport: 'grpc' });
  try {
    await grpcClient.createQueue({ parent: LOCATION, queue: { name: `${LOCATION}/queues/standalone` } });
    const [queues] = await restClient.listQueues({ parent: LOCATION });
    assert.deepEqual(queues.map((q) => q.name), [`${LOCATION}/queues/standalone`]);
  } finally {
    await Promise.all([restClient.close(), grpcClient.close()]);
  }
  child.kill('SIGTERM');
  assert.equal(await exited, 0);
});
