/**
 * The parameter checks of aci/parameters.ts bound to this connector's fetch actions: which
 * parameters a request may carry, the warnings for the others, and the near misses of a missing one.
 */
import * as aci from '../aci/parameters.js';
import type { AciParams } from '../aci/request.js';
import { fetchActionNamed } from '../fetch/registry.js';

/** What the request is, for messages, and the parameters it may carry (aci/parameters.ts). */
export function knownParameters(action: string, p: AciParams): { what: string; names: string[] } {
  return aci.knownParameters(action, p, fetchActionNamed);
}

/** One warning per parameter the request sent that is unknown for it, in request order. */
export function unknownParameterWarnings(action: string, p: AciParams): string[] {
  return aci.unknownParameterWarnings(action, p, fetchActionNamed);
}

/** The names the request sent one or two letters away from `missing` that are not known parameters. */
export function nearMisses(action: string | undefined, p: AciParams, missing: string): string[] {
  return aci.nearMisses(action, p, missing, fetchActionNamed);
}
