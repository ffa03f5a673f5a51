/**
 * The scripts a user would write instead of the connector, with googleapis:
 * list every message id, then fetch each message as `format=raw`.
 * - `one`: one get at a time, googleapis' own retries;
 * - `ten`: ten gets at a time (p-limit), googleapis' own retries;
 * - `batch50`: Gmail's batch endpoint, 50 gets a request, one request at a
 *   time; googleapis has no batch support, so the multipart/mixed body is built
 *   and read by hand, and refused parts go again in a later batch after a
 *   backoff, as users do.
 */
import { google, type gmail_v1 } from 'googleapis';
import pLimit from 'p-limit';

export type PeerName = 'one' | 'ten' | 'batch50';
export const PEERS: PeerName[] = ['one', 'ten', 'batch50'];

export interface PeerRun {
  messages: number;
  seconds: number;
}

/** googleapis' retries, as a user turns them on: 429 and 5xx, exponential backoff. */
const RETRY = { retry: true, retryConfig: { retry: 10, statusCodesToRetry: [[429, 429], [500, 599]] as [number, number][], httpMethodsToRetry: ['GET'] } };

function client(rootUrl: string, token: string): gmail_v1.Gmail {
  const auth = new google.auth.OAuth2();
  auth.setCredentials({ access_token: token });
  return google.gmail({ version: 'v1', rootUrl, auth });
}

async function listIds(gmail: gmail_v1.Gmail, user: string): Promise<string[]> {
  const ids: string[] = [];
  let pageToken: string | undefined;
  do {
    const res = await gmail.users.messages.list({ userId: user, maxResults: 500, includeSpamTrash: true, pageToken }, RETRY);
    for (const m of res.data.messages ?? []) if (m.id) ids.push(m.id);
    pageToken = res.data.nextPageToken ?? undefined;
  } while (pageToken);
  return ids;
}

async function batchGet(rootUrl: string, token: string, user: string, ids: string[]): Promise<{ ok: number; retry: string[] }> {
  const boundary = `peer_${Math.random().toString(36).slice(2)}`;
  const body =
    ids
      .map(
        (id, i) =>
          `--${boundary}\r\nContent-Type: application/http\r\nContent-ID: <${i}>\r\n\r\n` +
          `GET /gmail/v1/users/${encodeURIComponent(user)}/messages/${id}?format=raw\r\n\r\n`,
      )
      .join('') + `--${boundary}--\r\n`;
  const res = await fetch(new URL('batch/gmail/v1', rootUrl), {
    method: 'POST',
    headers: { 'Content-Type': `multipart/mixed; boundary=${boundary}`, Authorization: `Bearer ${token}` },
    body,
  });
  const text = await res.text();
  if (res.status !== 200) return { ok: 0, retry: ids };
  const b = /boundary=("?)([^";]+)\1/.exec(res.headers.get('content-type') ?? '')?.[2] ?? '';
  let ok = 0;
  const retry: string[] = [];
  for (const part of text.split(`--${b}`).slice(1)) {
    if (part.startsWith('--')) break;
    const id = Number(/Content-ID: <response-(\d+)>/i.exec(part)?.[1]);
    const status = Number(/HTTP\/1\.1 (\d{3})/.exec(part)?.[1]);
    if (status === 200) ok++;
    else if (Number.isInteger(id) && ids[id]) retry.push(ids[id]);
  }
  return { ok, retry };
}

/** Runs peer `name` over `user`'s whole mailbox; answers the messages fetched and the time taken. */
export async function runPeer(name: PeerName, rootUrl: string, token: string, user: string): Promise<PeerRun> {
  const t0 = performance.now();
  const gmail = client(rootUrl, token);
  const ids = await listIds(gmail, user);
  let messages = 0;
  const get = async (id: string) => {
    const r = await gmail.users.messages.get({ userId: user, id, format: 'raw' }, RETRY);
    if (r.data.raw) messages++;
  };
  if (name === 'one') {
    for (const id of ids) await get(id);
  } else if (name === 'ten') {
    const limit = pLimit(10);
    await Promise.all(ids.map((id) => limit(() => get(id))));
  } else {
    let queue = ids;
    let backoff = 1000;
    while (queue.length) {
      const next: string[] = [];
      for (let i = 0; i < queue.length; i += 50) {
        const r = await batchGet(rootUrl, token, user, queue.slice(i, i + 50));
        messages += r.ok;
        next.push(...r.retry);
      }
      if (next.length) {
        await new Promise((r) => setTimeout(r, backoff));
        backoff = Math.min(32_000, backoff * 2);
      }
      queue = next;
    }
  }
  return { messages, seconds: (performance.now() - t0) / 1000 };
}
