/**
 * A Gmail client for tests (googleapis against the Gmail emulator) and the
 * mailbox's state as a sink should mirror it.
 */
import { auth, gmail, type gmail_v1 } from 'googleapis/build/src/apis/gmail/index.js';

export function testGmail(rootUrl: string): gmail_v1.Gmail {
  const c = new auth.OAuth2();
  c.setCredentials({ access_token: 'owner', expiry_date: Date.now() + 3600_000 });
  return gmail({ version: 'v1', rootUrl, auth: c, retry: false });
}

/**
 * Message id → sorted label ids of every message outside SPAM and TRASH; with `labels`, only of
 * the messages that carry them all; with `includeSpamTrash`, of those in SPAM and TRASH too.
 */
export async function mailboxState(g: gmail_v1.Gmail, user: string, opts: { labels?: string[]; includeSpamTrash?: boolean } = {}): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>();
  let pageToken: string | undefined;
  do {
    const r = await g.users.messages.list({ userId: user, maxResults: 500, pageToken, labelIds: opts.labels?.length ? opts.labels : undefined, includeSpamTrash: opts.includeSpamTrash ?? false });
    for (const m of r.data.messages ?? []) {
      const full = await g.users.messages.get({ userId: user, id: m.id ?? '', format: 'minimal' });
      out.set(m.id ?? '', [...(full.data.labelIds ?? [])].sort());
    }
    pageToken = r.data.nextPageToken ?? undefined;
  } while (pageToken);
  return out;
}

/** A simple RFC 822 message, base64url, for messages.insert. */
export function rawMessage(to: string, messageId: string, subject: string): string {
  return Buffer.from(
    [`Message-ID: ${messageId}`, `From: someone@example.org`, `To: ${to}`, `Subject: ${subject}`, `Date: ${new Date().toUTCString()}`, '', 'Inserted body.', ''].join('\r\n'),
  ).toString('base64url');
}
