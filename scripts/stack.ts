/**
 * `npm start`: the local stack of docs/CONTRACT.md on 127.0.0.1 — the Firestore and Pub/Sub
 * emulators, our Cloud Tasks, Gmail and Cloud Storage emulators, and the `action`, `worker` and
 * `notify` functions through the Functions Framework (the worker as a child process that
 * is started again when it dies, as the platform would). Prints
 * `ready: http://127.0.0.1:<port>/` once when every part answers, and stops
 * everything on SIGINT or SIGTERM (`npm start` execs it, so npm passes both on), leaving nothing
 * running or listening. A port taken before or while it starts stops it before `ready`, with a
 * message naming the port and the variable that sets it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { startCloudTasksEmulator } from '../test/emulators/cloud-tasks/index.js';
import { freePort, startFirestoreEmulator, stopChild } from '../test/emulators/firestore.js';
import { optionsFromEnv } from '../test/emulators/gmail/env.js';
import { startGmailEmulator } from '../test/emulators/gmail/index.js';
import { startGoogleAuthEmulator } from '../test/emulators/google-auth/index.js';
import { startPubsubEmulator } from '../test/emulators/pubsub.js';
import { startStorageEmulator } from '../test/emulators/storage/index.js';
import { callReconcile, callWorkerRoute, createFetchQueue, waitUntilAnswers } from '../test/support/local.js';
import { createPushSubscription, createPushTopic, startPushRelay } from '../test/support/push.js';

const env = process.env;
const note = (s: string) => process.stderr.write(`stack: ${s}\n`);

function intVar(name: string, def: number, max = 65535): number {
  const v = env[name];
  if (v === undefined || v === '') return def;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > max) {
    note(`${name} must be a whole number from 0 to ${max}, got "${v}"`);
    process.exit(2);
  }
  return n;
}
const project = env.GCLOUD_PROJECT || 'demo-gmail-connector';
const children = new Set<ChildProcess>();
let stopping = false;
let stopped: Promise<never> | undefined;
const closers: (() => Promise<void>)[] = [];

/** Ends every child (SIGTERM, then SIGKILL after 5 s) and closes every emulator, once; then exits. */
function shutdown(code: number): Promise<never> {
  stopping = true;
  stopped ??= (async () => {
    await Promise.all([...children].map((c) => stopChild(c)));
    for (const close of closers.reverse()) await close().catch(() => {});
    process.exit(code);
  })();
  return stopped;
}
// `npm start` execs this process, so npm's own SIGINT and SIGTERM reach it, as Ctrl-C does.
process.on('SIGINT', () => void shutdown(0));
process.on('SIGTERM', () => void shutdown(0));

/** Whether nothing listens on 127.0.0.1:`port` yet. */
function portFree(port: number): Promise<boolean> {
  return new Promise((res) => {
    const probe = createServer();
    probe.once('error', () => res(false));
    probe.listen(port, '127.0.0.1', () => probe.close(() => res(true)));
  });
}

/** The variable of each port the stack listens on, for the message when one is taken. */
const portVariables = new Map<number, { variable: string; useExisting?: string }>();

/** The message for a taken port; the stack then stops before `ready`. */
function portTaken(port: number): string {
  const v = portVariables.get(port);
  if (!v) return `port ${port} is already in use`;
  const existing = v.useExisting ? `, or set ${v.useExisting} to use the emulator already there` : '';
  return `port ${port} (${v.variable}) is already in use: stop what holds it, or set ${v.variable} to another port (0 picks a free one)${existing}`;
}

/**
 * Every fixed port the stack will listen on must be free before anything starts: a taken port
 * would otherwise leave the stack talking to whatever holds it (another stack's Firestore, say).
 * A port of 0 is picked free; an emulator named by its *_EMULATOR_HOST variable is used, not started.
 */
async function claimPorts(ports: { variable: string; port: number; useExisting?: string }[]): Promise<void> {
  for (const { variable, port, useExisting } of ports) if (port !== 0) portVariables.set(port, { variable, useExisting });
  for (const { port } of ports) {
    if (port === 0) continue;
    if (await portFree(port)) continue;
    note(portTaken(port));
    process.exit(2);
  }
}

/** A port of the stack that something else took after the check above, while the stack started. */
class PortTaken extends Error {
  constructor(readonly port: number) {
    super(portTaken(port));
  }
}

/** Whether an error is a failure to listen on a taken address: Node's, a Java emulator's, gRPC's. */
function addressInUse(e: unknown): boolean {
  const err = e as { code?: string; message?: string };
  return err.code === 'EADDRINUSE' || /EADDRINUSE|address already in use|BindException|No address added/i.test(String(err.message ?? e));
}

/**
 * Starts what listens on `port` (and, for the Cloud Tasks emulator, a second port): a failure to
 * listen becomes {@link PortTaken} for the port it names (Node's errors carry it), else `port`.
 */
async function listening<T>(port: number, start: () => Promise<T>): Promise<T> {
  try {
    return await start();
  } catch (e) {
    if (!addressInUse(e)) throw e;
    const named = (e as { port?: unknown }).port;
    throw new PortTaken(typeof named === 'number' && named !== 0 ? named : port);
  }
}

try {
  await claimPorts([
    ...(env.FIRESTORE_EMULATOR_HOST ? [] : [{ variable: 'FIRESTORE_EMULATOR_PORT', port: intVar('FIRESTORE_EMULATOR_PORT', 8080), useExisting: 'FIRESTORE_EMULATOR_HOST' }]),
    { variable: 'CLOUD_TASKS_EMULATOR_PORT', port: intVar('CLOUD_TASKS_EMULATOR_PORT', 8123) },
    { variable: 'CLOUD_TASKS_EMULATOR_GRPC_PORT', port: intVar('CLOUD_TASKS_EMULATOR_GRPC_PORT', 8122) },
    { variable: 'GMAIL_EMULATOR_PORT', port: intVar('GMAIL_EMULATOR_PORT', 8124) },
    { variable: 'STORAGE_EMULATOR_PORT', port: intVar('STORAGE_EMULATOR_PORT', 8125) },
    { variable: 'AUTH_EMULATOR_PORT', port: intVar('AUTH_EMULATOR_PORT', 8126) },
    { variable: 'ACI_PORT', port: intVar('ACI_PORT', 7700) },
    { variable: 'WORKER_PORT', port: intVar('WORKER_PORT', 7701) },
    { variable: 'NOTIFY_PORT', port: intVar('NOTIFY_PORT', 7702) },
    ...(env.PUBSUB_EMULATOR_HOST ? [] : [{ variable: 'PUBSUB_EMULATOR_PORT', port: intVar('PUBSUB_EMULATOR_PORT', 8085), useExisting: 'PUBSUB_EMULATOR_HOST' }]),
  ]);
  const firestore = await listening(intVar('FIRESTORE_EMULATOR_PORT', 8080), () => startFirestoreEmulator({ port: intVar('FIRESTORE_EMULATOR_PORT', 8080) }));
  closers.push(() => firestore.close());
  const tasks = await listening(intVar('CLOUD_TASKS_EMULATOR_GRPC_PORT', 8122), () =>
    startCloudTasksEmulator({ port: intVar('CLOUD_TASKS_EMULATOR_PORT', 8123), grpcPort: intVar('CLOUD_TASKS_EMULATOR_GRPC_PORT', 8122) }),
  );
  closers.push(() => tasks.close());
  // Domain-wide delegation as in production: the functions' runtime identity (this emulator's
  // metadata server) signs claims for the delegated account, traded for per-user tokens.
  const runtimeAccount = `gmail-connector@${project}.iam.gserviceaccount.com`;
  const delegatedAccount = `gmail-delegate@${project}.iam.gserviceaccount.com`;
  const delegatedClientId = '100000000000000000001';
  const auth = await listening(intVar('AUTH_EMULATOR_PORT', 8126), () =>
    startGoogleAuthEmulator({ port: intVar('AUTH_EMULATOR_PORT', 8126), projectId: project, runtimeServiceAccount: runtimeAccount }),
  );
  closers.push(() => auth.close());
  auth.allowSigning(runtimeAccount, delegatedAccount);
  // View's read-only identity, signed for by the action function, granted gmail.readonly only.
  const viewAccount = `gmail-view@${project}.iam.gserviceaccount.com`;
  const viewClientId = '100000000000000000002';
  auth.allowSigning(runtimeAccount, viewAccount);
  auth.delegate(viewAccount, { clientId: viewClientId, scopes: ['https://www.googleapis.com/auth/gmail.readonly'] });
  // What the Workspace admin granted: the Gmail scopes of GMAIL_GRANT_MODE (infra's gmail_mode), and the Directory's.
  const grantMode = env.GMAIL_GRANT_MODE || 'permanent-delete';
  const grants: Record<string, string[]> = {
    'read-only': ['https://www.googleapis.com/auth/gmail.readonly'],
    writes: ['https://www.googleapis.com/auth/gmail.readonly', 'https://www.googleapis.com/auth/gmail.modify', 'https://www.googleapis.com/auth/gmail.insert'],
    'permanent-delete': ['https://www.googleapis.com/auth/gmail.readonly', 'https://www.googleapis.com/auth/gmail.modify', 'https://www.googleapis.com/auth/gmail.insert', 'https://mail.google.com/'],
  };
  const granted = grants[grantMode];
  if (!granted) {
    note(`GMAIL_GRANT_MODE must be one of ${Object.keys(grants).join(', ')}, not ${grantMode}`);
    process.exit(2);
  }
  auth.delegate(delegatedAccount, { clientId: delegatedClientId, scopes: [...granted, 'https://www.googleapis.com/auth/admin.directory.user.readonly'] });
  let gmailOptions;
  try {
    gmailOptions = optionsFromEnv(env, resolve('test/fixtures/demo'));
  } catch (e) {
    note((e as Error).message);
    process.exit(2);
  }
  // Gmail push: the official Pub/Sub emulator and the topic the Gmail emulator publishes to.
  const pubsub = await listening(intVar('PUBSUB_EMULATOR_PORT', 8085), () => startPubsubEmulator({ port: intVar('PUBSUB_EMULATOR_PORT', 8085) }));
  closers.push(() => pubsub.close());
  const pushTopic = await createPushTopic(pubsub, project);
  const gmail = await listening(gmailOptions.port ?? 0, () =>
    startGmailEmulator({
      ...gmailOptions,
      pubsubUrl: pubsub.url,
      dataDir: resolve(gmailOptions.dataDir ?? 'test/fixtures/demo'),
      tokenVerifier: auth.verifyAccessToken,
    }),
  );
  closers.push(() => gmail.close());
  // Cloud Storage, where Collect writes: COLLECT_BUCKETS (default `collect-local`) exist from the start.
  const collectBuckets = (env.COLLECT_BUCKETS || 'collect-local').split(',').map((b) => b.trim()).filter((b) => b !== '');
  const storage = await listening(intVar('STORAGE_EMULATOR_PORT', 8125), () => startStorageEmulator({ port: intVar('STORAGE_EMULATOR_PORT', 8125), buckets: collectBuckets }));
  closers.push(() => storage.close());

  const actionPort = intVar('ACI_PORT', 7700) || (await freePort());
  const workerPort = intVar('WORKER_PORT', 7701) || (await freePort());
  const workerUrl = `http://127.0.0.1:${workerPort}/`;
  const notifyPort = intVar('NOTIFY_PORT', 7702) || (await freePort());
  for (const [variable, port] of [['ACI_PORT', actionPort], ['WORKER_PORT', workerPort], ['NOTIFY_PORT', notifyPort]] as const) portVariables.set(port, { variable });
  const notifyUrl = `http://127.0.0.1:${notifyPort}/`;
  const pushAccount = `gmail-push@${project}.iam.gserviceaccount.com`;
  const fnEnv: NodeJS.ProcessEnv = {
    ...env,
    GCLOUD_PROJECT: project,
    CONNECTOR_CONFIG: env.CONNECTOR_CONFIG || resolve('config/demo.json'),
    TASKS_LOCATION: env.TASKS_LOCATION || 'us-central1',
    TASKS_QUEUE: 'fetch',
    WORKER_URL: workerUrl,
    TASKS_INVOKER_SERVICE_ACCOUNT: env.TASKS_INVOKER_SERVICE_ACCOUNT || `tasks-invoker@${project}.iam.gserviceaccount.com`,
    WORKER_TIME_BUDGET_S: env.WORKER_TIME_BUDGET_S || '1500',
    FIRESTORE_EMULATOR_HOST: firestore.host,
    CLOUD_TASKS_EMULATOR_HOST: tasks.grpcHost,
    GMAIL_API_ROOT_URL: gmail.url,
    OIDC_JWKS_URL: tasks.jwksUrl,
    STORAGE_EMULATOR_HOST: storage.url,
    COLLECT_BUCKETS: collectBuckets.join(','),
    GCE_METADATA_HOST: auth.metadataHost,
    IAM_CREDENTIALS_ROOT_URL: auth.iamRootUrl,
    OAUTH_TOKEN_URL: auth.tokenUrl,
    GMAIL_DELEGATED_SERVICE_ACCOUNT: delegatedAccount,
    GMAIL_DELEGATED_CLIENT_ID: delegatedClientId,
    GMAIL_VIEW_SERVICE_ACCOUNT: viewAccount,
    GMAIL_VIEW_CLIENT_ID: viewClientId,
    PUSH_TOPIC: pushTopic,
    NOTIFY_URL: notifyUrl,
    PUSH_SERVICE_ACCOUNT: pushAccount,
  };

  await createFetchQueue(tasks.grpcHost, project, fnEnv.TASKS_LOCATION ?? 'us-central1', {
    maxAttempts: -1,
    minBackoffS: 1,
    maxBackoffS: 60,
    maxDoublings: 5,
  });

  const serveScript = resolve('scripts/serve-function.mjs');
  const EXIT_PORT_TAKEN = 98;
  const serve = (target: string, port: number, restart: boolean): ChildProcess => {
    const child = spawn(process.execPath, [serveScript, target, String(port)], {
      env: fnEnv,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.add(child);
    for (const s of [child.stdout, child.stderr]) {
      if (s) createInterface({ input: s }).on('line', (l) => process.stderr.write(`${target}: ${l}\n`));
    }
    if (target === 'worker') process.stdout.write(`worker: pid ${child.pid}\n`);
    child.on('exit', (code, signal) => {
      children.delete(child);
      if (stopping) return;
      // serve-function.mjs exits with EADDRINUSE's number when its port is taken: no restart.
      if (code === EXIT_PORT_TAKEN) {
        note(portTaken(port));
        void shutdown(2);
        return;
      }
      note(`${target} exited (${signal ?? code})`);
      if (restart) setTimeout(() => !stopping && serve(target, port, restart), 200);
      else void shutdown(1);
    });
    return child;
  };
  serve('action', actionPort, false);
  serve('worker', workerPort, true);
  serve('notify', notifyPort, false);

  await Promise.all([waitUntilAnswers(`http://127.0.0.1:${actionPort}/action=GetVersion`), waitUntilAnswers(workerUrl), waitUntilAnswers(notifyUrl)]);
  // The Pub/Sub emulator attaches no OIDC token: its subscription pushes to a relay that adds the
  // push account's, as Google's push service does (test/support/push.ts).
  const relay = await startPushRelay(notifyUrl, () => tasks.mintOidcToken(pushAccount, notifyUrl));
  closers.push(() => relay.close());
  await createPushSubscription(pubsub, project, pushTopic, relay.url);
  // Production runs reconcile from a Cloud Scheduler job; here, a timer does.
  const reconcileEveryS = intVar('RECONCILE_INTERVAL_S', 120, 86_400);
  if (reconcileEveryS > 0) {
    const timer = setInterval(() => {
      callReconcile(tasks, workerUrl, fnEnv.TASKS_INVOKER_SERVICE_ACCOUNT ?? '').then(
        (r) => {
          if (r.status !== 200) note(`reconcile answered ${r.status}: ${JSON.stringify(r.body)}`);
        },
        (e: unknown) => note(`reconcile failed: ${(e as Error).message}`),
      );
    }, reconcileEveryS * 1000);
    closers.push(async () => clearInterval(timer));
  }
  // Production renews the Gmail watches from a daily Cloud Scheduler job; here, a daily timer does.
  const renewal = setInterval(() => {
    callWorkerRoute(tasks, workerUrl, fnEnv.TASKS_INVOKER_SERVICE_ACCOUNT ?? '', 'watches').then(
      (r) => {
        if (r.status !== 200) note(`watch renewal answered ${r.status}: ${JSON.stringify(r.body)}`);
      },
      (e: unknown) => note(`watch renewal failed: ${(e as Error).message}`),
    );
  }, 86_400_000);
  closers.push(async () => clearInterval(renewal));
  note(
    `Firestore emulator ${firestore.host}, Cloud Tasks emulator ${tasks.grpcHost} (gRPC) and ${tasks.host} (REST), ` +
      `Gmail emulator ${gmail.url}, Cloud Storage emulator ${storage.url}, auth emulator ${auth.url}, Pub/Sub emulator ${pubsub.host}, ` +
      `worker ${workerUrl}, notify ${notifyUrl}`,
  );
  // A function whose port was taken meanwhile is stopping the stack: no `ready` then.
  if (stopping) await stopped;
  process.stdout.write(`ready: http://127.0.0.1:${actionPort}/\n`);
} catch (e) {
  note((e as Error).message);
  await shutdown(e instanceof PortTaken ? 2 : 1);
}
