/**
 * Checks that a request comes from the expected Google service account: a
 * Google-signed OIDC token (the emulator's keys locally) for the given audience,
 * issued to that account. The worker checks the queue's invoker account for its
 * URL; `action`, in shared-secret mode, Cloud Scheduler's account for its own URL.
 */
import { createRemoteJWKSet, jwtVerify } from 'jose';
import { errorMessage } from '../error-message.js';

const ISSUERS = ['https://accounts.google.com', 'accounts.google.com'];

/** Why a caller was refused. */
export class CallerRefused extends Error {
  override readonly name = 'CallerRefused';
}

export function createCallerCheck(opts: { jwksUrl: string; audience: string; serviceAccount: string }) {
  const keys = createRemoteJWKSet(new URL(opts.jwksUrl));
  return async function checkCaller(authorization: string | undefined): Promise<void> {
    const m = /^Bearer\s+(\S+)$/i.exec(authorization ?? '');
    if (!m?.[1]) throw new CallerRefused('missing bearer token');
    let payload;
    try {
      ({ payload } = await jwtVerify(m[1], keys, { issuer: ISSUERS, audience: opts.audience }));
    } catch (e) {
      throw new CallerRefused(`token refused: ${errorMessage(e)}`, { cause: e });
    }
    if (payload.email !== opts.serviceAccount || payload.email_verified !== true) {
      throw new CallerRefused('token is not from the expected service account');
    }
  };
}
