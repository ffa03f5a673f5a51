/**
 * IDOL's `ActionID`: a label the client gives a request, echoed in its answer (docs/CONTRACT.md
 * §3). Beyond IDOL, a Fetch keeps it, and a second Fetch with the same ActionID and the same
 * parameters within a day answers the first one's token (app/verbs.ts), so this module also says
 * when two requests have the same parameters.
 */
import { createHash } from 'node:crypto';
import { badParameter } from './errors.js';
import { parameterKey, type AciParams } from './request.js';

/** At most 128 letters, digits and `._:-`: safe in logs, headers and every response format. */
export const ACTION_ID_PATTERN = /^[A-Za-z0-9._:-]{1,128}$/;

/** The request's ActionID (trimmed); undefined when absent or empty; a 400 naming it when malformed. */
export function parseActionId(p: AciParams): string | undefined {
  const value = p.get('ActionID')?.trim();
  if (value === undefined || value === '') return undefined;
  if (!ACTION_ID_PATTERN.test(value)) throw badParameter('ActionID', value, 'at most 128 characters of letters, digits and . _ : -');
  return value;
}

/** The request's ActionID when it is well-formed, for echoing in any answer, an error's included. */
export function echoedActionId(p: AciParams | undefined): string | undefined {
  if (p === undefined) return undefined;
  try {
    return parseActionId(p);
  } catch {
    return undefined;
  }
}

/** The parameters that say nothing about what a request does: how it is answered, and its label. */
const NOT_COMPARED = new Set(['responseformat', 'actionid']);

/**
 * A digest of a request's parameters as compared for an ActionID: names matched as names are
 * (case-insensitively, `a` as `action`), in any order, values trimmed as they are read;
 * ResponseFormat and ActionID left out.
 */
export function parametersDigest(sent: readonly { name: string; value: string }[]): string {
  const canonical = sent
    .map((s) => [parameterKey(s.name), s.value.trim()] as const)
    .filter(([k]) => !NOT_COMPARED.has(k))
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return createHash('sha256').update(JSON.stringify(canonical)).digest('base64url');
}
