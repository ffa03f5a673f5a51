/**
 * One benchmark's stack on 127.0.0.1: our Cloud Tasks and Gmail emulators in
 * this process, and the `action` and `worker` functions as child processes
 * serving the built code (scripts/serve-function.mjs), so that the worker's own
 * CPU time and peak memory can be read from /proc. The Firestore emulator is
 * shared by the whole run; each stack keeps its data apart by project id and
 * deletes it when it closes.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Firestore } from '@google-cloud/firestore';
import { createTasksClient } from '../../functions/src/queue/client.js';
import { ActionStore } from '../../functions/src/store/actions.js';
import type { ActionRecord, UnitRecord } from '../../functions/src/store/model.js';
import { startCloudTasksEmulator, type CloudTasksEmulator } from '../../test/emulators/cloud-tasks/index.js';
import { freePort, type FirestoreEmulator } from '../../test/emulators/firestore.js';
import { startGmailEmulator, type GmailEmulator } from '../../test/emulators/gmail/index.js';
import { onCleanup } from './cleanup.js';
import { poll } from './util.js';

export const ROOT = resolve(import.meta.dirname, '../..');
const SERVE = join(ROOT, 'scripts', 'serve-function.mjs');

export interface BenchStackOptions {
  /** A short name for the project id and the log files. */
  name: string;
  firestore: FirestoreEmulator;
  /** The connector configuration (docs/CONTRACT.md). */
  connector: Record<string, unknown>;
  /** Folder of `<address>.mbox` files. */
  mailDir: string;
  gmail: { quotaUnitsPerMinute: number; quotaBurstSeconds?: number; latencyMs?: number; maxConcurrentPerUser?: number };
  /** Where the functions' output goes (one file per function). */
  logDir: string;
  /** Extra node options for the worker child (e.g. --cpu-prof). */
  workerNodeArgs?: string[];
  /** Extra node options for the action child. */
  actionNodeArgs?: string[];
  /** A Cloud Storage emulator and the buckets Collect may write to there. */
  collect?: { storageUrl: string; buckets: string[] };
}

export interface AciResult {
  status: number;
  text: string;
  json: unknown;
  /** Wall time of the request, as the client saw it, in milliseconds. */
  ms: number;
}

type Json = Record<string, unknown>;

export interface BenchStack {
  project: string;
  actionUrl: string;
  gmail: GmailEmulator;
  tasks: CloudTasksEmulator;
  store: ActionStore;
  db: Firestore;
  /** pid of the worker child process. */
  workerPid: number;
  actionPid: number;
  aci(params: Record<string, string>): Promise<AciResult>;
  /** Submits a Synchronize of `task`; answers its token and the request's time. */
  synchronize(task: string): Promise<{ token: string; ms: number }>;
  /** A QueueInfo request that must succeed. */
  queue(queueAction: string, token?: string): Promise<AciResult>;
  /** Polls Firestore until the action has one of `statuses`. */
  waitFor(token: string, statuses: string[], timeoutMs: number, everyMs?: number): Promise<ActionRecord>;
  units(token: string): Promise<UnitRecord[]>;
  close(): Promise<void>;
}

function responseData(json: unknown): Json {
  return ((json as Json).autnresponse as Json).responsedata as Json;
}

/** Waits for a child to exit, SIGTERM first, SIGKILL after `graceMs`. */
function stopChild(child: ChildProcess, graceMs = 5000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((res) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    child.once('exit', () => {
      clearTimeout(timer);
      res();
    });
    child.kill('SIGTERM');
  });
}

async function answers(url: string): Promise<boolean> {
  try {
    await (await fetch(url, { signal: AbortSignal.timeout(1000) })).arrayBuffer();
    return true;
  } catch {
    return false;
  }
}

export async function startBenchStack(opts: BenchStackOptions): Promise<BenchStack> {
  const project = `bench-${opts.name}-${randomBytes(4).toString('hex')}`;
  // Closed in this order: dispatching stops first, then the functions, then the
  // Gmail emulator, and the project's data goes last.
  const steps: Record<'tasks' | 'worker' | 'action' | 'gmail' | 'data', (() => Promise<void>) | undefined> = {
    tasks: undefined,
    worker: undefined,
    action: undefined,
    gmail: undefined,
    data: undefined,
  };
  const release = async () => {
    for (const k of ['tasks', 'worker', 'action', 'gmail', 'data'] as const) await steps[k]?.();
  };
  let failure: string | undefined;
  try {
    const tasks = await startCloudTasksEmulator({ port: 0 });
    steps.tasks = onCleanup(`Cloud Tasks emulator of ${project}`, () => tasks.close());
    const gmail = await startGmailEmulator({
      port: 0,
      dataDir: opts.mailDir,
      quotaUnitsPerMinute: opts.gmail.quotaUnitsPerMinute,
      quotaBurstSeconds: opts.gmail.quotaBurstSeconds ?? 60,
      latencyMs: opts.gmail.latencyMs ?? 0,
      maxConcurrentPerUser: opts.gmail.maxConcurrentPerUser ?? 0,
    });
    steps.gmail = onCleanup(`Gmail emulator of ${project}`, () => gmail.close());

    const [actionPort, workerPort] = [await freePort(), await freePort()];
    const workerUrl = `http://127.0.0.1:${workerPort}/`;
    const actionUrl = `http://127.0.0.1:${actionPort}/`;
    const queueName = 'fetch';
    const location = 'us-central1';
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      // As on Cloud Functions.
      NODE_ENV: 'production',
      GCLOUD_PROJECT: project,
      CONNECTOR_CONFIG: JSON.stringify(opts.connector),
      TASKS_LOCATION: location,
      TASKS_QUEUE: queueName,
      WORKER_URL: workerUrl,
      TASKS_INVOKER_SERVICE_ACCOUNT: `tasks-invoker@${project}.iam.gserviceaccount.com`,
      WORKER_TIME_BUDGET_S: '1500',
      FIRESTORE_EMULATOR_HOST: opts.firestore.host,
      CLOUD_TASKS_EMULATOR_HOST: tasks.grpcHost,
      GMAIL_API_ROOT_URL: gmail.url,
      OIDC_JWKS_URL: tasks.jwksUrl,
      ...(opts.collect ? { STORAGE_EMULATOR_HOST: opts.collect.storageUrl, COLLECT_BUCKETS: opts.collect.buckets.join(',') } : {}),
    };

    const client = createTasksClient({ emulatorHost: tasks.grpcHost });
    await client.createQueue({
      parent: client.locationPath(project, location),
      queue: {
        name: client.queuePath(project, location, queueName),
        retryConfig: { maxAttempts: -1, minBackoff: { seconds: 0, nanos: 100_000_000 }, maxBackoff: { seconds: 1 }, maxDoublings: 4 },
      },
    });
    await client.close();

    const db = new Firestore({ projectId: project, host: opts.firestore.host, ssl: false, universeDomain: 'googleapis.com' });
    steps.data = onCleanup(`Firestore data of ${project}`, async () => {
      await db.terminate();
      // The data lives only in the emulator: when it has gone already (Ctrl-C reaches it too), so has the data.
      await opts.firestore.wipe(project).catch(() => {});
    });
    const store = new ActionStore(db);

    mkdirSync(opts.logDir, { recursive: true });
    let closing = false;
    const serve = (target: 'action' | 'worker', port: number, nodeArgs: string[]): ChildProcess => {
      const log = createWriteStream(join(opts.logDir, `${project}-${target}.log`));
      const child = spawn(process.execPath, [...nodeArgs, SERVE, target, String(port)], {
        cwd: ROOT,
        env,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      child.stdout?.pipe(log, { end: false });
      child.stderr?.pipe(log, { end: false });
      child.on('exit', (code, signal) => {
        if (!closing && failure === undefined) failure = `the ${target} process exited (${signal ?? code}); see ${opts.logDir}/${project}-${target}.log`;
      });
      steps[target] = onCleanup(`${target} process ${child.pid}`, async () => {
        closing = true;
        await stopChild(child);
        log.end();
      });
      return child;
    };
    const action = serve('action', actionPort, opts.actionNodeArgs ?? []);
    const worker = serve('worker', workerPort, opts.workerNodeArgs ?? []);
    if (action.pid === undefined || worker.pid === undefined) throw new Error('a function process could not be started');

    await poll(
      'the functions answering',
      async () => {
        if (failure !== undefined) throw new Error(failure);
        return (await answers(`${actionUrl}action=GetVersion`)) && (await answers(workerUrl)) ? true : undefined;
      },
      60_000,
      100,
    );


    const aci = async (params: Record<string, string>): Promise<AciResult> => {
      const q = new URLSearchParams({ ResponseFormat: 'simplejson', ...params });
      const t0 = performance.now();
      const r = await fetch(`${actionUrl}?${q}`);
      const text = await r.text();
      const ms = performance.now() - t0;
      const json: unknown = (r.headers.get('content-type') ?? '').includes('json') ? JSON.parse(text) : undefined;
      return { status: r.status, text, json, ms };
    };

    let closed: Promise<void> | undefined;
    const stack: BenchStack = {
      project,
      actionUrl,
      gmail,
      tasks,
      store,
      db,
      workerPid: worker.pid,
      actionPid: action.pid,
      aci,
      async synchronize(task) {
        const r = await aci({ action: 'Fetch', FetchAction: 'Synchronize', TaskSections: task });
        if (r.status !== 200) throw new Error(`Synchronize of ${task} answered ${r.status}: ${r.text.slice(0, 400)}`);
        return { token: String(responseData(r.json).token), ms: r.ms };
      },
      async queue(queueAction, token) {
        const r = await aci({ action: 'QueueInfo', QueueName: 'fetch', QueueAction: queueAction, ...(token ? { Token: token } : {}) });
        if (r.status !== 200) throw new Error(`QueueInfo ${queueAction} answered ${r.status}: ${r.text.slice(0, 400)}`);
        return r;
      },
      async waitFor(token, statuses, timeoutMs, everyMs = 50) {
        return poll(
          `action ${token} reaching ${statuses.join('/')}`,
          async () => {
            if (failure !== undefined) throw new Error(failure);
            const a = await store.get(token);
            return a && statuses.includes(a.status) ? a : undefined;
          },
          timeoutMs,
          everyMs,
        );
      },
      units: (token) => store.units(token),
      close() {
        closed ??= release();
        return closed;
      },
    };
    return stack;
  } catch (e) {
    await release();
    throw e;
  }
}
