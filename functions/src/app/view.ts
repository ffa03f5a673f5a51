/**
 * The View action's work: one message's original bytes, read synchronously from Gmail with the
 * action function's own read-only identity (never the worker's), and the sink fields that
 * describe it. The identifier has been decoded and checked by the caller; this module checks
 * that it names a mailbox of a configured task, and reads.
 */
import type { Config } from '../config.js';
import type { Identifier } from '../aci/identifiers.js';
import { buildDocument, type SinkDocument } from '../fetch/shared/document.js';
import { classify, PermanentGmailError } from '../gmail/errors.js';
import type { GoogleAccess } from '../gmail/client.js';

/** Why a View cannot be answered, in terms the ACI layer maps to its errors. */
export class ViewRefused extends Error {
  constructor(
    readonly kind: 'off' | 'unknown' | 'gmail',
    message: string,
    readonly status?: number,
  ) {
    super(message);
    this.name = 'ViewRefused';
  }
}

export interface ViewedMessage {
  raw: Buffer;
  document: SinkDocument;
}

/** Whether `address` is one of the task's mailboxes, as configured (its users, or its domain). */
function inTask(config: Config, task: string, address: string): boolean {
  const t = config.connector.tasks[task];
  if (!t) return false;
  if (t.users?.length) return t.users.some((u) => u.toLowerCase() === address);
  return t.domain !== undefined && address.endsWith(`@${t.domain.toLowerCase()}`);
}

export async function viewMessage(config: Config, google: GoogleAccess, id: Identifier, timeoutMs: number): Promise<ViewedMessage> {
  if (!config.connector.view) throw new ViewRefused('off', 'View is turned off in the connector configuration ("view": false)');
  const task = Object.keys(config.connector.tasks).find((t) => t.toLowerCase() === id.task.toLowerCase());
  if (!task) throw new ViewRefused('unknown', `the identifier's task ${id.task} is not configured`);
  if (!inTask(config, task, id.address)) throw new ViewRefused('unknown', `${id.address} is not a mailbox of task ${task}`);
  let gmail;
  try {
    gmail = google.gmail(id.address);
  } catch (e) {
    // A deployment without View's account (view_enabled = false) while the configuration leaves View on.
    if (e instanceof PermanentGmailError) throw new ViewRefused('off', `View has no identity to read Gmail with: ${e.message}`);
    throw e;
  }
  const get = () =>
    gmail.api.users.messages.get({ userId: id.address, id: id.messageId, format: 'raw' }, { signal: AbortSignal.timeout(timeoutMs) });
  let res;
  try {
    try {
      res = await get();
    } catch (e) {
      // A token that expired or was revoked early: one new token, then the call again.
      if (classify(e, 'View').status !== 401) throw e;
      gmail.renew();
      res = await get();
    }
  } catch (e) {
    const err = classify(e, `message ${id.messageId} of ${id.address}`);
    if (err instanceof PermanentGmailError && (err.status === 404 || err.status === 400)) {
      throw new ViewRefused('unknown', `no message ${id.messageId} in ${id.address}`, 404);
    }
    throw new ViewRefused('gmail', err.message, err.status);
  }
  const raw = Buffer.from(res.data.raw ?? '', 'base64url');
  return { raw, document: await buildDocument(task, id.address, res.data) };
}
