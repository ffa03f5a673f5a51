/**
 * Which ACI parameters a request may carry, and what is said about the others.
 *
 * A request's known parameters are the standard ones (every action: `action`, `ResponseFormat`,
 * `ActionID`), its action's, and for `Fetch` its fetch action's (`parameters` in
 * fetch/registry.ts), for `QueueInfo` its verb's. A parameter outside them is *unknown for that
 * request*: the request still runs, and the answer carries a warning naming the parameter and the
 * closest known one (docs/CONTRACT.md §3). A required parameter that is missing while the request
 * sent a name one or two letters away from it gets that name in its error.
 */
import { distance } from 'fastest-levenshtein';
import { foldCase, parameterKey, type AciParams } from './request.js';

/**
 * The fetch action a `FetchAction=` value names (any case), with its canonical name and the
 * parameters it reads: the registry's answer (fetch/registry.ts), given by the caller so that
 * this module stays protocol only.
 */
export type FetchActionLookup = (name: string) => { readonly name: string; readonly parameters: readonly string[] } | undefined;

/** Parameters every action takes (IDOL's standard action parameters the connector honours). */
export const STANDARD_PARAMETERS: readonly string[] = ['action', 'ResponseFormat', 'ActionID'];

/**
 * Each action's own parameters (for Fetch: those of every fetch action; for QueueInfo: those of
 * every verb). Every fetch action reads `DryRun`: those without a dry run refuse it unless it is
 * `false` (fetch/registry.ts).
 */
export const ACTION_PARAMETERS = {
  Fetch: ['FetchAction', 'TaskSections', 'ConfigSection', 'Schedule', 'Sync', 'DryRun'],
  QueueInfo: ['QueueName', 'QueueAction'],
  GetVersion: [],
  GetStatus: [],
  View: ['Identifier', 'NoACI'],
} as const satisfies Record<string, readonly string[]>;

/** The QueueInfo verbs and the parameters each reads (beyond QueueName and QueueAction). */
export const QUEUE_ACTION_PARAMETERS = {
  GetStatus: ['Token', 'Start', 'MaxResults', 'State', 'Queued-After', 'Queued-Before', 'Finished-After', 'Finished-Before', 'Sort-By', 'Sort-Order', 'Origin'],
  Cancel: ['Token'],
  Stop: ['Token'],
  Pause: [],
  Resume: [],
  Progress: ['Token'],
  QueueStatus: [],
  Duplicate: ['Token'],
  GetActionParameters: ['Token'],
} as const satisfies Record<string, readonly string[]>;

export type QueueActionName = keyof typeof QUEUE_ACTION_PARAMETERS;

/** The value of an enumerated parameter matched as the parsers match it, or undefined. */
function named<T extends string>(p: AciParams, name: string, among: readonly T[]): T | undefined {
  const value = foldCase(p.get(name)?.trim() ?? '');
  return among.find((n) => foldCase(n) === value);
}

/**
 * What the request is, for messages (`Fetch Synchronize`, `QueueInfo GetStatus`, `View`), and the
 * parameters it may carry, in their documented spelling. An unknown fetch action or verb adds
 * nothing (the request fails on it anyway).
 */
export function knownParameters(action: string, p: AciParams, fetchActions: FetchActionLookup): { what: string; names: string[] } {
  const own: readonly string[] = (ACTION_PARAMETERS as Record<string, readonly string[]>)[action] ?? [];
  const names = [...STANDARD_PARAMETERS, ...own];
  let what = action;
  if (action === 'Fetch') {
    const spec = fetchActions(p.get('FetchAction')?.trim() ?? '');
    if (spec) {
      names.push(...spec.parameters);
      what += ` ${spec.name}`;
    }
  } else if (action === 'QueueInfo') {
    const verb = named(p, 'QueueAction', Object.keys(QUEUE_ACTION_PARAMETERS) as QueueActionName[]);
    if (verb) {
      names.push(...QUEUE_ACTION_PARAMETERS[verb]);
      what += ` ${verb}`;
    }
  }
  return { what, names: [...new Set(names)] };
}

/**
 * How far `name` is from `known` (both as names are matched: case-insensitively): the edit distance
 * between them, or one more than the distance to the closest part of `known` about as long as
 * `name`, so that `Fromat` is near `ResponseFormat` and `Attachments` near `CollectAttachments`.
 */
function nameDistance(name: string, known: string): number {
  let best = distance(name, known);
  for (let len = Math.max(1, name.length - 1); len <= name.length + 1 && len < known.length; len++) {
    for (let i = 0; i + len <= known.length; i++) best = Math.min(best, 1 + distance(name, known.slice(i, i + len)));
  }
  return best;
}

/** The known name closest to `name`; the first of them on a tie. */
function closestKnown(name: string, known: readonly string[]): string {
  const key = parameterKey(name);
  let found = known[0] ?? 'action';
  let bestDistance = Infinity;
  for (const k of known) {
    const d = nameDistance(key, parameterKey(k));
    if (d < bestDistance) [found, bestDistance] = [k, d];
  }
  return found;
}

/**
 * One warning per parameter the request sent that is unknown for it, in request order:
 * `Unknown parameter "Tokn" for QueueInfo GetStatus, ignored: the closest known parameter is Token.`
 */
export function unknownParameterWarnings(action: string, p: AciParams, fetchActions: FetchActionLookup): string[] {
  const { what, names } = knownParameters(action, p, fetchActions);
  const keys = new Set(names.map(parameterKey));
  return p
    .names()
    .filter((n) => !keys.has(parameterKey(n)))
    .map((n) => `Unknown parameter ${JSON.stringify(n)} for ${what}, ignored: the closest known parameter is ${closestKnown(n, names)}.`);
}

/**
 * The names the request sent that differ from `missing` by one or two letters (case aside) and
 * are not known parameters of the request: what the client probably meant to send as `missing`.
 */
export function nearMisses(action: string | undefined, p: AciParams, missing: string, fetchActions: FetchActionLookup): string[] {
  const known = new Set(action === undefined ? STANDARD_PARAMETERS.map(parameterKey) : knownParameters(action, p, fetchActions).names.map(parameterKey));
  const want = parameterKey(missing);
  return p.names().filter((n) => {
    const key = parameterKey(n);
    if (known.has(key) || key === want) return false;
    const d = distance(key, want);
    return d >= 1 && d <= 2;
  });
}
