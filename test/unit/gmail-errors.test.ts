/**
 * How Gmail's refusals read once classified: a missing scope carries what the Workspace admin
 * must grant; other errors are left as they are.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { withScopeAdvice } from '../../functions/src/gmail/caller.js';
import { classify, PermanentGmailError } from '../../functions/src/gmail/errors.js';

const ADVICE = 'a Workspace super admin must authorise client id 123 for the scopes https://www.googleapis.com/auth/gmail.readonly';

function gmailError(status: number, reason: string, message: string): unknown {
  return { response: { status, data: { error: { code: status, message, errors: [{ reason, message }] } } } };
}

test('a 403 for a missing scope names what to authorise', () => {
  const err = classify(gmailError(403, 'insufficientPermissions', 'Request had insufficient authentication scopes.'), 'reading a@example.com');
  assert.ok(err instanceof PermanentGmailError);
  assert.equal(
    withScopeAdvice(err, ADVICE).message,
    `reading a@example.com: 403 insufficientPermissions: Request had insufficient authentication scopes.; ${ADVICE}`,
  );
});

test('other refusals are left as they are', () => {
  const forbidden = classify(gmailError(403, 'forbidden', 'Delegation denied for b@example.com'), 'reading a@example.com');
  assert.ok(forbidden instanceof PermanentGmailError);
  assert.equal(withScopeAdvice(forbidden, ADVICE), forbidden);
  const unauthorized = classify(gmailError(401, 'authError', 'Invalid Credentials'), 'reading a@example.com');
  assert.ok(unauthorized instanceof PermanentGmailError);
  assert.equal(unauthorized.status, 401);
  assert.equal(withScopeAdvice(unauthorized, ADVICE), unauthorized);
});
