/**
 * The dependencies of both functions, built once from the configuration.
 * Clients are constructed here and in the entry files only; the modules that
 * do the work receive them.
 */
import { Firestore } from '@google-cloud/firestore';
import type { Config } from './config.js';
import { createGoogleAccess, type GoogleAccess } from './gmail/client.js';
import { createLogger, type Logger } from './log.js';
import { createTasksClient } from './queue/client.js';
import { createTaskQueue, type TaskQueue } from './queue/tasks.js';
import { ActionStore } from './store/actions.js';
import { UnitStore } from './store/units.js';
import { createStorageClient } from './storage/client.js';
import type { Storage } from '@google-cloud/storage';

export interface Deps {
  config: Config;
  db: Firestore;
  store: ActionStore;
  units: UnitStore;
  queue: TaskQueue;
  google: GoogleAccess;
  /** Cloud Storage, where Collect writes (the client is lazy: no call until used). */
  storage: Storage;
  /** Gmail as the action function's read-only View identity. */
  viewGoogle: GoogleAccess;
  log: Logger;
  now: () => number;
  /** When the process started (for GetStatus's uptime). */
  startedAt: number;
}

export function createDeps(config: Config, overrides: Partial<Pick<Deps, 'log' | 'now'>> = {}): Deps {
  const db = new Firestore({
    projectId: config.project,
    ignoreUndefinedProperties: true,
    // Against the emulator, name the universe so that no credential lookup (and no
    // metadata-server probe) happens.
    ...(config.firestoreEmulatorHost ? { host: config.firestoreEmulatorHost, ssl: false, universeDomain: 'googleapis.com' } : {}),
  });
  const now = overrides.now ?? Date.now;
  const store = new ActionStore(db, now, config.actionRetentionDays);
  return {
    config,
    db,
    store,
    units: new UnitStore(db, store, now),
    queue: createTaskQueue(createTasksClient({ emulatorHost: config.tasksEmulatorHost }), config),
    google: createGoogleAccess(config),
    storage: createStorageClient({ project: config.project, emulatorHost: config.storageEmulatorHost }),
    viewGoogle: createGoogleAccess(config, 'view'),
    log: overrides.log ?? createLogger(),
    now,
    startedAt: now(),
  };
}
