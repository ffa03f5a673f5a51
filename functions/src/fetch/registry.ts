/**
 * The fetch actions this connector runs, one registry of them. Each fetch action is one module
 * in this folder that declares, in one object (a `FetchActionSpec`, spec.ts), everything the rest
 * of the code asks of it: the ACI parameters it takes (parsed where requests are parsed), how it
 * splits into units, whether a unit takes its mailbox's lock, the Gmail scopes and methods it
 * needs, its counters, how one unit runs, and its results. The worker, GetStatus, Stop, Cancel and
 * the fan-out use only that interface; adding a fetch action is one module and one line below.
 */
import { badParameter } from '../aci/errors.js';
import { collectAction } from './collect.js';
import { deleteAction, removeAction } from './delete.js';
import { holdAction } from './hold.js';
import { identifiersAction } from './identifiers.js';
import { insertAction } from './insert.js';
import { releaseHoldAction } from './release-hold.js';
import type { FetchActionSpec } from './spec.js';
import { synchronizeAction } from './synchronize.js';
import { updateAction } from './update.js';

/** `spec`, refusing `DryRun` other than `false` when it has no dry run. */
function withDryRunChecked(spec: FetchActionSpec): FetchActionSpec {
  if (spec.dryRun) return spec;
  const dryRunners = ALL.filter((s) => s.dryRun).map((s) => s.name);
  return {
    ...spec,
    parse(p, config) {
      const raw = p.get('DryRun');
      if (p.has('DryRun') && (raw ?? '').trim().toLowerCase() !== 'false') {
        throw badParameter('DryRun', raw ?? '', `left out (or false): ${spec.name} has no dry run; ${dryRunners.join(', ')} have`);
      }
      return spec.parse(p, config);
    },
  };
}

const ALL: readonly FetchActionSpec[] = [
  synchronizeAction,
  identifiersAction,
  collectAction,
  insertAction,
  updateAction,
  deleteAction,
  removeAction,
  holdAction,
  releaseHoldAction,
];

/** Every fetch action, by canonical name. */
export const FETCH_REGISTRY: Readonly<Record<string, FetchActionSpec>> = Object.fromEntries(ALL.map((s) => [s.name, withDryRunChecked(s)]));

export const FETCH_ACTION_NAMES: readonly string[] = Object.keys(FETCH_REGISTRY);

/** The fetch action named `name` (any case), if there is one. */
export function fetchActionNamed(name: string): FetchActionSpec | undefined {
  const key = FETCH_ACTION_NAMES.find((n) => n.toLowerCase() === name.toLowerCase());
  return key === undefined ? undefined : FETCH_REGISTRY[key];
}

/** Why a stored action naming `name` cannot run here (a newer version wrote it, before a rollback). */
export function unknownFetchAction(name: string): string {
  return `unknown fetch action ${name}: this version of the connector runs ${FETCH_ACTION_NAMES.join(', ')}; deploy the version that queued the action to run it`;
}

/** The fetch action of a stored action; throws for a name no longer registered. */
export function fetchActionOf(name: string): FetchActionSpec {
  const spec = fetchActionNamed(name);
  if (!spec) throw new Error(unknownFetchAction(name));
  return spec;
}
