/**
 * Registers the functions (action, worker, notify) with the Functions Framework from an environment.
 * `index.ts` calls it with the process environment; tests call it with theirs.
 */
import * as functions from '@google-cloud/functions-framework';
import { createActionHandler } from './aci.js';
import { loadConfig, type Env } from '../config.js';
import { createDeps, type Deps } from '../deps.js';
import { outsideDomain } from './outside-domain.js';
import type { Logger } from '../log.js';
import { createNotifyHandler } from './notify.js';
import { createWorkerHandler } from './worker.js';

export function registerFunctions(env: Env, overrides: { log?: Logger } = {}): Deps {
  const deps = createDeps(loadConfig(env), overrides);
  functions.http('action', outsideDomain(createActionHandler(deps)));
  functions.http('worker', outsideDomain(createWorkerHandler(deps)));
  functions.http('notify', outsideDomain(createNotifyHandler(deps)));
  return deps;
}
