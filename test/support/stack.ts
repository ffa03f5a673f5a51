/**
 * An in-process stack for integration tests: the Firestore emulator (shared by
 * the run, data kept apart by project id), our Cloud Tasks and Gmail emulators
 * on free loopback ports, and both functions served through the Functions
 * Framework, the worker as the queue's real target.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Server } from 'node:http';
import { getTestServer } from '@google-cloud/functions-framework/testing';
import type { Firestore } from '@google-cloud/firestore';
import type { ConnectorConfig, Env } from '../../functions/src/config.js';
import type { Deps } from '../../functions/src/deps.js';
import { silentLogger } from '../../functions/src/log.js';
import { registerFunctions } from '../../functions/src/entry/register.js';
import type { ActionRecord, UnitRecord } from '../../functions/src/store/model.js';
import { startCloudTasksEmulator, type CloudTasksEmulator } from '../emulators/cloud-tasks/index.js';
import { freePort, startFirestoreEmulator, type FirestoreEmulator } from '../emulators/firestore.js';
import { startGmailEmulator, type GmailEmulator, type GmailEmulatorOptions } from '../emulators/gmail/index.js';
import { startGoogleAuthEmulator, type GoogleAuthEmulator } from '../emulators/google-auth/index.js';
import { startStorageEmulator, type StorageEmulator } from '../emulators/storage/index.js';
import { startPubsubEmulator, type PubsubEmulator } from '../emulators/pubsub.js';
import { callReconcile, callWorkerRoute, createFetchQueue, waitUntilAnswers } from './local.js';
import { createPushSubscription, createPushTopic, startPushRelay, type PushRelay } from './push.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const SERVE = resolve(ROOT, 'scripts/serve-function.mjs');
const ENTRY = resolve(ROOT, 'functions/src/index.ts');

/**
 * How a worker process is started: from the functions `npm test` built before the run
 * (TEST_FUNCTIONS_BUILT=1, functions/lib), which starts in two thirds of the CPU time; otherwise
 * (one file run by hand) from the sources, through tsx, so that it never runs stale code.
 */
function workerCommand(port: number): string[] {
  if (process.env['TEST_FUNCTIONS_BUILT'] === '1') return [SERVE, 'worker', String(port)];
  return ['--import', 'tsx', SERVE, 'worker', String(port), ENTRY];
}

export interface StackOptions {
  /** The connector configuration (docs/CONTRACT.md). */
  connector: ConnectorConfig | Record<string, unknown>;
  /** Folder of `<address>.mbox` files. */
  mailDir: string;
  gmail?: Omit<GmailEmulatorOptions, 'dataDir' | 'port'>;
  /** More variables for the functions (e.g. WORKER_TIME_BUDGET_S, WORKER_LEASE_S). */
  env?: Env;
  /** Runs the worker as a child process (as the platform does), so a test can kill it. */
  workerProcess?: boolean;
  /** Buckets made in the stack's Cloud Storage emulator and listed in COLLECT_BUCKETS. */
  collectBuckets?: string[];
  /** Retry settings of the `fetch` queue. */
  retry?: { maxAttempts?: number };
  /**
   * Reads Gmail with tokens from domain-wide delegation, as in production (the default): the
   * functions' runtime identity signs claims for the stack's delegated account through the auth
   * emulator, which grants it the scopes below. `false` uses the development token `owner`.
   */
  delegation?: boolean | { scopes: string[] };
  /** Gmail push: the Pub/Sub emulator, its topic and push subscription (through the relay of push.ts) to `notify`. */
  push?: boolean;
  /** A Firestore emulator to use (and leave running) instead of starting one (the benchmarks share theirs). */
  firestore?: FirestoreEmulator;
}

/**
 * What a worker process may be started with instead of the stack's own settings, as a deployment
 * of the worker alone would change them: another connector configuration (a task's `"writes"`
 * turned off, a mailbox taken out of its `users`), or other variables.
 */
export interface WorkerSettings {
  connector?: ConnectorConfig | Record<string, unknown>;
  env?: Env;
}

/** The account the push subscription's OIDC tokens are issued to. */
export const PUSH_SERVICE_ACCOUNT = 'gmail-push@test-stacks.iam.gserviceaccount.com';

/** The runtime identity of every stack's functions (the auth emulator's metadata server). */
export const RUNTIME_SERVICE_ACCOUNT = 'functions@test-stacks.iam.gserviceaccount.com';
export const DELEGATED_SCOPES = [
  'https://www.googleapis.com/auth/gmail.readonly',
  'https://www.googleapis.com/auth/admin.directory.user.readonly',
];

/**
 * One auth emulator per test process, shared by its stacks: the metadata server is found through
 * the process-wide GCE_METADATA_HOST, as the platform's is. Each stack has its own delegated
 * account, so their grants never meet. Closed when the last stack using it closes.
 */
let sharedAuth: { emulator: Promise<GoogleAuthEmulator>; users: number } | undefined;

function acquireAuth(): Promise<GoogleAuthEmulator> {
  if (!sharedAuth) {
    const emulator = startGoogleAuthEmulator({ projectId: 'test-stacks', runtimeServiceAccount: RUNTIME_SERVICE_ACCOUNT }).then((a) => {
      process.env['GCE_METADATA_HOST'] = a.metadataHost;
      return a;
    });
    sharedAuth = { emulator, users: 0 };
  }
  sharedAuth.users++;
  return sharedAuth.emulator;
}

async function releaseAuth(): Promise<void> {
  const shared = sharedAuth;
  if (!shared || --shared.users > 0) return;
  sharedAuth = undefined;
  await (await shared.emulator).close();
}

export interface AciAnswer {
  status: number;
  text: string;
  /** The parsed body when the response is JSON. */
  json: unknown;
}

export interface TestStack {
  project: string;
  actionUrl: string;
  workerUrl: string;
  deps: Deps;
  db: Firestore;
  tasks: CloudTasksEmulator;
  gmail: GmailEmulator;
  /** The Cloud Storage emulator (STORAGE_EMULATOR_HOST of the functions). */
  storage: StorageEmulator;
  /** The auth emulator (IAM Credentials, the token endpoint, the metadata server). */
  auth: GoogleAuthEmulator;
  /** The delegated account and client id of this stack, when it uses delegation. */
  delegate: { serviceAccount: string; clientId: string } | undefined;
  /** The action function's read-only account for View (gmail.readonly only), when delegation is used. */
  viewDelegate: { serviceAccount: string; clientId: string } | undefined;
  firestore: FirestoreEmulator;
  queuePath: string;
  /**
   * With `workerProcess`: the child's pid, a SIGKILL of it, and a new one on the same port. `start`
   * and `restart` take `WorkerSettings` for that process (the action function keeps the stack's):
   * `restart({ connector })` is a deployment of the worker with another configuration, the
   * deliveries in flight cut off and delivered again by the queue to the new process. Without
   * settings, the stack's own are used again.
   */
  worker: { pid(): number | undefined; kill(): Promise<void>; start(settings?: WorkerSettings): Promise<void>; restart(settings?: WorkerSettings): Promise<void> };
  /** Every answer the worker gave: the delivering task's name and the HTTP status. */
  deliveries: { task: string; status: number }[];
  /** Sends an ACI GET with these parameters (simplejson unless ResponseFormat is given). */
  aci(params: Record<string, string>, init?: RequestInit): Promise<AciAnswer>;
  /** Submits a Synchronize and returns its token. */
  synchronize(task: string, extra?: Record<string, string>): Promise<string>;
  /** Polls until the action has one of the statuses; returns its record. */
  waitFor(token: string, statuses: string[], timeoutMs?: number): Promise<ActionRecord>;
  units(token: string): Promise<UnitRecord[]>;
  /** With `push`: `notify`'s URL, the Pub/Sub emulator, the topic Gmail publishes to, and the relay that signs pushes. */
  push: { notifyUrl: string; pubsub: PubsubEmulator; topic: string; relay: PushRelay } | undefined;
  /** Runs the worker's watch renewal (`POST /watches`), as Cloud Scheduler does; returns its report. */
  renewWatches(): Promise<Record<string, number>>;
  /** Runs one reconcile pass through the worker's route, as Cloud Scheduler does; returns its report. */
  reconcile(): Promise<Record<string, number>>;
  /** Sink documents of a task and user: id → data. */
  sink(task: string, user: string): Promise<Map<string, FirebaseFirestore.DocumentData>>;
  close(): Promise<void>;
}

function listen(server: Server, port: number): Promise<number> {
  return new Promise((res, rej) => {
    server.once('error', rej);
    server.listen(port, '127.0.0.1', () => {
      const a = server.address();
      res(typeof a === 'object' && a ? a.port : port);
    });
  });
}

/** Waits for `p` at most `ms`; a part that does not close in time is reported, not waited for. */
async function bounded(what: string, p: Promise<unknown>, ms = 10_000): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<void>((res) => {
    timer = setTimeout(() => {
      process.stderr.write(`test stack: ${what} did not close within ${ms} ms\n`);
      res();
    }, ms);
    timer.unref();
  });
  await Promise.race([p.then(() => undefined, () => undefined), timeout]);
  clearTimeout(timer);
}

function closeServer(server: Server): Promise<void> {
  return new Promise((res) => {
    server.closeAllConnections?.();
    server.close(() => res());
  });
}

export async function startTestStack(opts: StackOptions): Promise<TestStack> {
  const firestore = opts.firestore ?? (await startFirestoreEmulator());
  const project = `test-${randomBytes(6).toString('hex')}`;
  const tasks = await startCloudTasksEmulator({ port: 0 });
  const auth = await acquireAuth();
  const pubsub = opts.push ? await startPubsubEmulator() : undefined;
  const pushTopic = pubsub ? await createPushTopic(pubsub, project) : undefined;
  const gmail = await startGmailEmulator({
    port: 0,
    pubsubUrl: pubsub?.url,
    quotaUnitsPerMinute: 0,
    tokenVerifier: auth.verifyAccessToken,
    ...opts.gmail,
    dataDir: opts.mailDir,
  });
  const storage = await startStorageEmulator({ buckets: opts.collectBuckets ?? [] });
  let delegate: TestStack['delegate'];
  let viewDelegate: TestStack['viewDelegate'];
  const delegationEnv: Env = {};
  if (opts.delegation !== false) {
    const scopes = typeof opts.delegation === 'object' ? opts.delegation.scopes : DELEGATED_SCOPES;
    delegate = {
      serviceAccount: `gmail-delegate@${project}.iam.gserviceaccount.com`,
      clientId: `1${BigInt(`0x${randomBytes(8).toString('hex')}`).toString().padStart(20, '0')}`,
    };
    auth.allowSigning(RUNTIME_SERVICE_ACCOUNT, delegate.serviceAccount);
    auth.delegate(delegate.serviceAccount, { clientId: delegate.clientId, scopes });
    viewDelegate = { serviceAccount: `gmail-view@${project}.iam.gserviceaccount.com`, clientId: `2${delegate.clientId.slice(1)}` };
    auth.allowSigning(RUNTIME_SERVICE_ACCOUNT, viewDelegate.serviceAccount);
    auth.delegate(viewDelegate.serviceAccount, { clientId: viewDelegate.clientId, scopes: ['https://www.googleapis.com/auth/gmail.readonly'] });
    Object.assign(delegationEnv, {
      GMAIL_DELEGATED_SERVICE_ACCOUNT: delegate.serviceAccount,
      GMAIL_DELEGATED_CLIENT_ID: delegate.clientId,
      GMAIL_VIEW_SERVICE_ACCOUNT: viewDelegate.serviceAccount,
      GMAIL_VIEW_CLIENT_ID: viewDelegate.clientId,
      IAM_CREDENTIALS_ROOT_URL: auth.iamRootUrl,
      OAUTH_TOKEN_URL: auth.tokenUrl,
    });
  }
  const workerPort = await freePort();
  const workerUrl = `http://127.0.0.1:${workerPort}/`;
  const notifyUrl = pubsub ? `http://127.0.0.1:${await freePort()}/` : undefined;
  const env: Env = {
    GCLOUD_PROJECT: project,
    CONNECTOR_CONFIG: JSON.stringify(opts.connector),
    TASKS_LOCATION: 'us-central1',
    TASKS_QUEUE: 'fetch',
    WORKER_URL: workerUrl,
    TASKS_INVOKER_SERVICE_ACCOUNT: `tasks-invoker@${project}.iam.gserviceaccount.com`,
    FIRESTORE_EMULATOR_HOST: firestore.host,
    CLOUD_TASKS_EMULATOR_HOST: tasks.grpcHost,
    GMAIL_API_ROOT_URL: gmail.url,
    OIDC_JWKS_URL: tasks.jwksUrl,
    STORAGE_EMULATOR_HOST: storage.url,
    COLLECT_BUCKETS: (opts.collectBuckets ?? []).join(','),
    // The local queue answers at once: a short call timeout keeps reconcile's grace for a task on
    // its way (three calls' worth) to seconds, so that tests of lost tasks do not wait 90 s.
    TASKS_CALL_TIMEOUT_S: '2',
    ...(notifyUrl && pushTopic ? { PUSH_TOPIC: pushTopic, NOTIFY_URL: notifyUrl, PUSH_SERVICE_ACCOUNT } : {}),
    ...delegationEnv,
    ...opts.env,
  };
  const deps = registerFunctions(env, { log: silentLogger });
  let child: ChildProcess | undefined;
  const startChild = async (settings: WorkerSettings = {}) => {
    if (!opts.workerProcess) throw new Error('the worker runs in this process: start the stack with workerProcess: true to start it with other settings');
    const own: Env = { ...env, ...settings.env, ...(settings.connector ? { CONNECTOR_CONFIG: JSON.stringify(settings.connector) } : {}) };
    child = spawn(process.execPath, workerCommand(workerPort), {
      env: { ...process.env, ...own },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    child.stderr?.resume();
    // Two test files on two shared cores: a new worker process (tsx compiling it) may take a while to answer.
    await waitUntilAnswers(workerUrl, 60_000, 50);
  };
  const killChild = async () => {
    const c = child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    await new Promise<void>((res) => {
      c.once('exit', () => res());
      c.kill('SIGKILL');
    });
  };
  const worker = getTestServer('worker');
  const deliveries: { task: string; status: number }[] = [];
  let inFlight = 0;
  worker.on('request', (req, res) => {
    inFlight++;
    res.on('close', () => {
      inFlight--;
      deliveries.push({ task: String(req.headers['x-cloudtasks-taskname'] ?? ''), status: res.statusCode });
    });
  });
  if (opts.workerProcess) await startChild();
  else await listen(worker, workerPort);
  const action = getTestServer('action');
  const actionPort = await listen(action, 0);
  const actionUrl = `http://127.0.0.1:${actionPort}/`;
  const queuePath = deps.queue.queuePath;
  let push: TestStack['push'];
  const notify = getTestServer('notify');
  if (pubsub && pushTopic && notifyUrl) {
    await listen(notify, Number(new URL(notifyUrl).port));
    const relay = await startPushRelay(notifyUrl, () => tasks.mintOidcToken(PUSH_SERVICE_ACCOUNT, notifyUrl));
    await createPushSubscription(pubsub, project, pushTopic, relay.url);
    push = { notifyUrl, pubsub, topic: pushTopic, relay };
  }
  await createFetchQueue(tasks.grpcHost, project, 'us-central1', {
    maxAttempts: opts.retry?.maxAttempts ?? -1,
    minBackoffS: 0.1,
    maxBackoffS: 1,
    maxDoublings: 4,
  });

  const aci = async (params: Record<string, string>, init?: RequestInit): Promise<AciAnswer> => {
    const q = new URLSearchParams({ ResponseFormat: 'simplejson', ...params });
    const r = await fetch(`${actionUrl}?${q}`, { signal: AbortSignal.timeout(60_000), ...init });
    const text = await r.text();
    let json: unknown;
    if ((r.headers.get('content-type') ?? '').includes('json')) json = JSON.parse(text);
    return { status: r.status, text, json };
  };
  const stack: TestStack = {
    project,
    actionUrl,
    workerUrl,
    deps,
    db: deps.db,
    tasks,
    gmail,
    storage,
    auth,
    delegate,
    viewDelegate,
    firestore,
    queuePath,
    deliveries,
    worker: {
      pid: () => child?.pid,
      kill: killChild,
      start: startChild,
      async restart(settings) {
        await killChild();
        await startChild(settings);
      },
    },
    aci,
    async synchronize(task, extra = {}) {
      const r = await aci({ action: 'Fetch', FetchAction: 'Synchronize', TaskSections: task, ...extra });
      if (r.status !== 200) throw new Error(`Synchronize answered ${r.status}: ${r.text}`);
      return (r.json as { autnresponse: { responsedata: { token: string } } }).autnresponse.responsedata.token;
    },
    async waitFor(token, statuses, timeoutMs = 60_000) {
      const until = Date.now() + timeoutMs;
      for (;;) {
        const a = await deps.store.get(token);
        if (a && statuses.includes(a.status)) return a;
        if (Date.now() > until) throw new Error(`action ${token} is ${a?.status ?? 'missing'}, not ${statuses.join('/')} after ${timeoutMs} ms`);
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    units: (token) => deps.store.units(token),
    push,
    async renewWatches() {
      const r = await callWorkerRoute(tasks, workerUrl, env.TASKS_INVOKER_SERVICE_ACCOUNT ?? '', 'watches');
      if (r.status !== 200) throw new Error(`watch renewal answered ${r.status}: ${JSON.stringify(r.body)}`);
      return r.body as Record<string, number>;
    },
    async reconcile() {
      const r = await callReconcile(tasks, workerUrl, env.TASKS_INVOKER_SERVICE_ACCOUNT ?? '');
      if (r.status !== 200) throw new Error(`reconcile answered ${r.status}: ${JSON.stringify(r.body)}`);
      return r.body as Record<string, number>;
    },
    async sink(task, user) {
      const snaps = await deps.db.collection('documents').where('task', '==', task.toUpperCase()).where('user', '==', user.toLowerCase()).get();
      return new Map(snaps.docs.map((d) => [d.id, d.data()]));
    },
    async close() {
      // Stop dispatching, then let running deliveries end before their clients go.
      // Each step is bounded, so that one stuck part cannot keep the test process alive.
      await bounded('the Cloud Tasks emulator', tasks.close());
      for (let i = 0; i < 100 && inFlight > 0; i++) await new Promise((r) => setTimeout(r, 50));
      await bounded('the action server', closeServer(action));
      if (child && child.exitCode === null) await bounded('the worker process', new Promise((res) => { child?.once('exit', res); child?.kill('SIGTERM'); }));
      if (worker.listening) await bounded('the worker server', closeServer(worker));
      if (push) await bounded('the push relay', push.relay.close());
      if (notify.listening) await bounded('the notify server', closeServer(notify));
      await bounded('the Gmail emulator', gmail.close());
      if (pubsub) await bounded('the Pub/Sub emulator', pubsub.close());
      await bounded('the Cloud Storage emulator', storage.close());
      await bounded('the auth emulator', releaseAuth());
      await bounded('the Firestore client', deps.db.terminate());
      if (!opts.firestore) await bounded('the Firestore emulator', firestore.close());
    },
  };
  return stack;
}
