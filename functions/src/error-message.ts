/** The one way the code turns something thrown into words. */

/** The message of an unknown error: an Error's own, anything else as a string. */
export function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
