/**
 * Launcher for the official Cloud Firestore emulator (a Java jar).
 *
 * Finds the jar (FIRESTORE_EMULATOR_JAR, the Google Cloud CLI's install folder,
 * firebase-tools' download cache, then ../shared/emulators/), starts it on
 * loopback, waits until it answers, wipes one project's data on request and
 * stops it on exit. Where FIRESTORE_EMULATOR_HOST is already set (as
 * `firebase emulators:exec` does) that emulator is used instead.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, realpathSync } from 'node:fs';
import { createServer } from 'node:net';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const JAR = 'cloud-firestore-emulator.jar';

/** A running (or borrowed) Firestore emulator. */
export interface FirestoreEmulator {
  /** `127.0.0.1:PORT`, the value for FIRESTORE_EMULATOR_HOST. */
  readonly host: string;
  /** Whether this process started it (and so stops it on close). */
  readonly owned: boolean;
  /** The emulator's process id when this process started it, else null. */
  readonly pid: number | null;
  /** Deletes every document of one project. */
  wipe(project: string): Promise<void>;
  close(): Promise<void>;
}

/** No emulator jar anywhere we look. */
export class FirestoreEmulatorNotFound extends Error {
  override readonly name = 'FirestoreEmulatorNotFound';
}

export function gcloudSdkRoots(env: NodeJS.ProcessEnv): string[] {
  const roots: string[] = [];
  if (env.CLOUDSDK_ROOT_DIR) roots.push(env.CLOUDSDK_ROOT_DIR);
  const which = spawnSync('sh', ['-c', 'command -v gcloud'], { encoding: 'utf8' });
  const bin = which.status === 0 ? which.stdout.trim() : '';
  if (bin) {
    try {
      // <sdk>/bin/gcloud, possibly behind a symlink from /usr/bin.
      roots.push(dirname(dirname(realpathSync(bin))));
    } catch {
      // A dangling link: nothing to find there.
    }
  }
  roots.push('/usr/lib/google-cloud-sdk', '/usr/share/google-cloud-sdk', join(homedir(), 'google-cloud-sdk'));
  return roots;
}

function firebaseCacheJars(): string[] {
  const dir = join(homedir(), '.cache', 'firebase', 'emulators');
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => /^cloud-firestore-emulator-v[\d.]+\.jar$/.test(f))
    .sort((a, b) => b.localeCompare(a, undefined, { numeric: true }))
    .map((f) => join(dir, f));
}

/** Where the jar is, looked for in the documented order. */
export function findFirestoreEmulatorJar(env: NodeJS.ProcessEnv = process.env): string {
  const candidates = [
    ...(env.FIRESTORE_EMULATOR_JAR ? [env.FIRESTORE_EMULATOR_JAR] : []),
    ...gcloudSdkRoots(env).map((r) => join(r, 'platform', 'cloud-firestore-emulator', JAR)),
    ...firebaseCacheJars(),
    resolve(REPO_ROOT, '..', 'shared', 'emulators', JAR),
  ];
  const found = candidates.find((c) => existsSync(c));
  if (found === undefined) {
    throw new FirestoreEmulatorNotFound(
      'The Cloud Firestore emulator was not found. Install it with ' +
        '`gcloud components install cloud-firestore-emulator` (needs Java 17+), ' +
        'or set FIRESTORE_EMULATOR_JAR to the path of cloud-firestore-emulator.jar, ' +
        'or set FIRESTORE_EMULATOR_HOST to a running emulator. Looked in: ' +
        candidates.join(', '),
    );
  }
  return found;
}

/** A free TCP port on loopback. */
export function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', rej);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => res(port));
    });
  });
}

/** Whether an official emulator (Firestore, Pub/Sub) answers `Ok` at `host`. */
export async function answersOk(host: string): Promise<boolean> {
  try {
    const r = await fetch(`http://${host}/`, { signal: AbortSignal.timeout(1000) });
    return r.ok && (await r.text()).startsWith('Ok');
  } catch {
    return false;
  }
}

async function wipe(host: string, project: string): Promise<void> {
  const r = await fetch(
    `http://${host}/emulator/v1/projects/${encodeURIComponent(project)}/databases/(default)/documents`,
    { method: 'DELETE' },
  );
  if (!r.ok) throw new Error(`wiping project ${project} failed: HTTP ${r.status}`);
}

/** Stops an emulator's process: SIGTERM, then SIGKILL after 5 s. */
export function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((res) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    child.once('exit', () => {
      clearTimeout(timer);
      res();
    });
    child.kill('SIGTERM');
  });
}

/**
 * Starts the emulator on 127.0.0.1:`port` (0: a free port), or borrows the one
 * FIRESTORE_EMULATOR_HOST names.
 */
export async function startFirestoreEmulator(
  opts: { port?: number; env?: NodeJS.ProcessEnv; log?: (line: string) => void } = {},
): Promise<FirestoreEmulator> {
  const env = opts.env ?? process.env;
  const existing = env.FIRESTORE_EMULATOR_HOST;
  if (existing) {
    if (!(await answersOk(existing))) {
      throw new Error(`FIRESTORE_EMULATOR_HOST is ${existing}, but no Firestore emulator answers there`);
    }
    return { host: existing, owned: false, pid: null, wipe: (p) => wipe(existing, p), close: async () => {} };
  }
  const jar = findFirestoreEmulatorJar(env);
  const port = opts.port || (await freePort());
  const host = `127.0.0.1:${port}`;
  const { stop, pid } = await launchJavaEmulator(
    'Firestore',
    host,
    ['-Duser.language=en', '-Xms64m', '-Xmx1g', '-cp', jar, 'com.google.cloud.datastore.emulator.firestore.CloudFirestore', '--host', '127.0.0.1', '--port', String(port)],
    opts.log,
  );
  return {
    host,
    owned: true,
    pid,
    wipe: (p) => wipe(host, p),
    close: stop,
  };
}

/**
 * Starts one of Google's Java emulators with `javaArgs` and waits until it answers on `host`
 * (at most 60 s; its last output is in the error otherwise); answers how to stop it, and its
 * process id. It is killed if this process exits first.
 */
export async function launchJavaEmulator(
  name: string,
  host: string,
  javaArgs: string[],
  log?: (line: string) => void,
): Promise<{ stop: () => Promise<void>; pid: number | null }> {
  const child = spawn('java', javaArgs, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const keep = (b: Buffer) => {
    output = (output + b.toString()).slice(-4000);
    if (log) for (const l of b.toString().split('\n')) if (l.trim()) log(l);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);
  const stop = async () => {
    await stopChild(child);
    process.removeListener('exit', killOnExit);
  };
  const started = Date.now();
  while (!(await answersOk(host))) {
    if (child.exitCode !== null) {
      process.removeListener('exit', killOnExit);
      throw new Error(`the ${name} emulator exited with code ${child.exitCode}:\n${output}`);
    }
    if (Date.now() - started > 60_000) {
      await stop();
      throw new Error(`the ${name} emulator did not answer on ${host} within 60 s:\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 150));
  }
  return { stop, pid: child.pid ?? null };
}
