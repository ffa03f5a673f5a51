/**
 * Gmail push on the local stacks (`npm start` and the test stack): the Pub/Sub emulator's topic
 * that the Gmail emulator publishes to, and its push subscription to `notify`.
 *
 * The Pub/Sub emulator attaches no OIDC token to its pushes, and `notify` accepts none without
 * one (docs/CONTRACT.md, "Push"). So the subscription pushes to a small loopback relay that
 * stands in for Google's push service: it adds an OIDC token for `notify`'s URL, issued to the
 * push service account and signed with the Cloud Tasks emulator's keys (which the local
 * functions trust as Google's, through OIDC_JWKS_URL), forwards the request and answers with
 * `notify`'s status, so acknowledgement and redelivery work as in production. `notify` itself
 * has no local mode: the check it makes is the production one.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { PubsubEmulator } from '../emulators/pubsub.js';

/** The topic and subscription names, as Terraform names them in production. */
export const PUSH_TOPIC_ID = 'gmail-connector-push';
export const PUSH_SUBSCRIPTION_ID = 'gmail-connector-push-notify';
const FORWARD_TIMEOUT_MS = 60_000;

export interface PushRelay {
  url: string;
  /** Statuses `notify` answered, in order. */
  answers: number[];
  close(): Promise<void>;
}

function readAll(req: IncomingMessage): Promise<Buffer> {
  return new Promise((res, rej) => {
    const parts: Buffer[] = [];
    req.on('data', (c: Buffer) => parts.push(c));
    req.on('end', () => res(Buffer.concat(parts)));
    req.on('error', rej);
  });
}

/** Starts the relay on a free loopback port: each POST goes to `target` with a fresh token from `sign`. */
export async function startPushRelay(target: string, sign: () => Promise<string>): Promise<PushRelay> {
  const answers: number[] = [];
  const server: Server = createServer((req, res) => {
    void (async () => {
      try {
        const body = await readAll(req);
        const r = await fetch(target, {
          method: 'POST',
          headers: { 'content-type': req.headers['content-type'] ?? 'application/json', authorization: `Bearer ${await sign()}` },
          body,
          signal: AbortSignal.timeout(FORWARD_TIMEOUT_MS),
        });
        const text = await r.text();
        answers.push(r.status);
        res.writeHead(r.status, { 'content-type': r.headers.get('content-type') ?? 'text/plain' }).end(text);
      } catch (e) {
        answers.push(502);
        if (!res.headersSent) res.writeHead(502).end(`relay: ${(e as Error).message}`);
      }
    })();
  });
  await new Promise<void>((res, rej) => {
    server.once('error', rej);
    server.listen(0, '127.0.0.1', () => res());
  });
  const a = server.address();
  const port = typeof a === 'object' && a ? a.port : 0;
  return {
    url: `http://127.0.0.1:${port}/`,
    answers,
    close: () =>
      new Promise<void>((res) => {
        server.closeAllConnections();
        server.close(() => res());
      }),
  };
}

/** Creates the push topic of `project` (an existing one is kept) and returns its name. */
export async function createPushTopic(pubsub: PubsubEmulator, project: string): Promise<string> {
  const topic = `projects/${project}/topics/${PUSH_TOPIC_ID}`;
  await pubsub.createTopic(topic);
  return topic;
}

/** The push subscription of the topic to `endpoint` (the relay). */
export async function createPushSubscription(pubsub: PubsubEmulator, project: string, topic: string, endpoint: string): Promise<void> {
  await pubsub.createPushSubscription(`projects/${project}/subscriptions/${PUSH_SUBSCRIPTION_ID}`, topic, endpoint);
}
