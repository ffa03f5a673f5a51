/**
 * Launcher for the official Cloud Pub/Sub emulator (a Java jar), and the few REST calls the
 * stacks make to it (topics and push subscriptions, as Terraform makes them in production).
 *
 * Finds the jar (PUBSUB_EMULATOR_JAR, the Google Cloud CLI's `platform/pubsub-emulator/lib/` by
 * pattern, then ../shared/emulators/), starts it on loopback, waits until it answers and stops it
 * on close. Where PUBSUB_EMULATOR_HOST is already set, that emulator is used instead.
 */
import { existsSync, readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { answersOk, freePort, gcloudSdkRoots, launchJavaEmulator } from './firestore.js';

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const CALL_TIMEOUT_MS = 10_000;

/** A running (or borrowed) Pub/Sub emulator. */
export interface PubsubEmulator {
  /** `127.0.0.1:PORT`, the value for PUBSUB_EMULATOR_HOST. */
  readonly host: string;
  /** `http://127.0.0.1:PORT/`. */
  readonly url: string;
  readonly owned: boolean;
  /** Creates a topic (an existing one is kept); `name` is `projects/P/topics/T`. */
  createTopic(name: string): Promise<void>;
  /** Creates a push subscription of `topic` to `endpoint` (an existing one is kept). */
  createPushSubscription(name: string, topic: string, endpoint: string, opts?: { ackDeadlineSeconds?: number }): Promise<void>;
  close(): Promise<void>;
}

/** No emulator jar anywhere we look. */
export class PubsubEmulatorNotFound extends Error {
  override readonly name = 'PubsubEmulatorNotFound';
}

/** The versioned jars of a Google Cloud CLI's pubsub-emulator component, newest first. */
function sdkJars(root: string): string[] {
  const dir = join(root, 'platform', 'pubsub-emulator', 'lib');
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => /^cloud-pubsub-emulator-[\d.]+(-SNAPSHOT)?\.jar$/.test(f))
    .sort((a, b) => b.localeCompare(a, undefined, { numeric: true }))
    .map((f) => join(dir, f));
}

/** Where the jar is, looked for in the documented order. */
export function findPubsubEmulatorJar(env: NodeJS.ProcessEnv = process.env): string {
  const candidates = [
    ...(env.PUBSUB_EMULATOR_JAR ? [env.PUBSUB_EMULATOR_JAR] : []),
    ...gcloudSdkRoots(env).flatMap(sdkJars),
    resolve(REPO_ROOT, '..', 'shared', 'emulators', 'cloud-pubsub-emulator.jar'),
  ];
  const found = candidates.find((c) => existsSync(c));
  if (found === undefined) {
    throw new PubsubEmulatorNotFound(
      'The Cloud Pub/Sub emulator was not found. Install it with `gcloud components install pubsub-emulator` ' +
        '(needs Java 17+), or set PUBSUB_EMULATOR_JAR to its jar, or set PUBSUB_EMULATOR_HOST to a running emulator. ' +
        `Looked in: ${candidates.join(', ')} and <sdk>/platform/pubsub-emulator/lib/`,
    );
  }
  return found;
}

/** A PUT of a resource; 409 (it exists) is fine. */
async function put(url: string, body: unknown): Promise<void> {
  const r = await fetch(url, {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(CALL_TIMEOUT_MS),
  });
  const text = await r.text();
  if (!r.ok && r.status !== 409) throw new Error(`PUT ${url} answered ${r.status}: ${text}`);
}

function client(host: string, owned: boolean, close: () => Promise<void>): PubsubEmulator {
  const url = `http://${host}/`;
  return {
    host,
    url,
    owned,
    createTopic: (name) => put(`${url}v1/${name}`, {}),
    createPushSubscription: (name, topic, endpoint, opts = {}) =>
      put(`${url}v1/${name}`, { topic, pushConfig: { pushEndpoint: endpoint }, ackDeadlineSeconds: opts.ackDeadlineSeconds ?? 10 }),
    close,
  };
}

/** Starts the emulator on 127.0.0.1:`port` (0: a free port), or borrows the one PUBSUB_EMULATOR_HOST names. */
export async function startPubsubEmulator(opts: { port?: number; env?: NodeJS.ProcessEnv; log?: (line: string) => void } = {}): Promise<PubsubEmulator> {
  const env = opts.env ?? process.env;
  const existing = env.PUBSUB_EMULATOR_HOST;
  if (existing) {
    if (!(await answersOk(existing))) throw new Error(`PUBSUB_EMULATOR_HOST is ${existing}, but no Pub/Sub emulator answers there`);
    return client(existing, false, async () => {});
  }
  const jar = findPubsubEmulatorJar(env);
  const port = opts.port || (await freePort());
  const host = `127.0.0.1:${port}`;
  const { stop } = await launchJavaEmulator('Pub/Sub', host, ['-Duser.language=en', '-Xms32m', '-Xmx512m', '-jar', jar, '--host=127.0.0.1', `--port=${port}`], opts.log);
  return client(host, true, stop);
}
