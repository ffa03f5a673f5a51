/**
 * A Gmail push notification as Pub/Sub delivers it to `notify` (docs/CONTRACT.md): the push
 * request's JSON body `{"message": {"data", "messageId", ...}, "subscription"}`, whose `data` is
 * base64 of Gmail's `{"emailAddress", "historyId"}`. Parsing only: no I/O.
 */

/** What a notification says: this mailbox changed, and its history id is now at least this. */
export interface PushNotification {
  /** The mailbox, lower-cased. */
  emailAddress: string;
  /** Gmail's history id, as a decimal string. */
  historyId: string;
  /** Pub/Sub's id of the message (for logs), when given. */
  messageId: string | null;
}

const EMAIL = /^[^@\s]+@[^@\s]+\.[^@\s]+$/;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=|[A-Za-z0-9+/]{2,3})?$/;

/** The notification in a push request's body, or a sentence saying what is wrong with it. */
export function parsePushBody(body: unknown): PushNotification | string {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return 'the body must be a Pub/Sub push request: a JSON object with "message"';
  const message = (body as Record<string, unknown>)['message'];
  if (typeof message !== 'object' || message === null || Array.isArray(message)) return '"message" must be an object';
  const m = message as Record<string, unknown>;
  const data = m['data'];
  if (typeof data !== 'string' || data === '') return '"message.data" must be the base64 of Gmail\'s notification';
  // Pub/Sub writes standard base64; URL-safe base64 is read too.
  const standard = data.replace(/-/g, '+').replace(/_/g, '/');
  if (!BASE64.test(standard)) return '"message.data" is not base64';
  let payload: unknown;
  try {
    payload = JSON.parse(Buffer.from(standard, 'base64').toString('utf8'));
  } catch {
    return '"message.data" does not decode to JSON';
  }
  if (typeof payload !== 'object' || payload === null || Array.isArray(payload)) return 'the notification must be a JSON object {"emailAddress","historyId"}';
  const p = payload as Record<string, unknown>;
  const email = p['emailAddress'];
  if (typeof email !== 'string' || !EMAIL.test(email) || email.length > 320) return 'the notification\'s "emailAddress" must be an email address';
  const h = p['historyId'];
  const historyId = typeof h === 'number' && Number.isSafeInteger(h) && h > 0 ? String(h) : typeof h === 'string' && /^[1-9]\d{0,19}$/.test(h) ? h : null;
  if (historyId === null) return 'the notification\'s "historyId" must be a positive whole number';
  const id = m['messageId'] ?? m['message_id'];
  return { emailAddress: email.toLowerCase(), historyId, messageId: typeof id === 'string' ? id : null };
}
