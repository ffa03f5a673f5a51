/**
 * How Firestore refuses a conditional write whose condition no longer holds:
 * the stores read again and decide again instead of failing.
 */

/** gRPC codes of a refused conditional write. */
export const CODES = {
  /** A `lastUpdateTime` precondition failed: the document changed since it was read. */
  FAILED_PRECONDITION: 9,
  /** An update found the document gone. */
  NOT_FOUND: 5,
  /** A create found the document there. */
  ALREADY_EXISTS: 6,
} as const;

/** Whether `e` is a refusal with one of `codes`. */
export function refusedWith(e: unknown, ...codes: number[]): boolean {
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === 'number' && codes.includes(code);
}
