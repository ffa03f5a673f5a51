// Push notifications: users.watch and users.stop, and the notifications Gmail publishes to a
// Pub/Sub topic when a watched mailbox changes. As at Google: one watch per user (a new
// users.watch replaces it), an expiration (7 days unless the emulator is told otherwise), an
// optional label filter, and at most one notification per second per user; the excess is
// dropped, not delayed. The message's data is base64 of {"emailAddress","historyId"}.
// Publishing goes to the Pub/Sub emulator's REST route (`POST /v1/{topic}:publish`), with a
// timeout; a publish that fails is counted and dropped, as a notification lost in transit.

import { ApiError, invalidArgument } from './errors.js';

/** One user's watch. */
export interface Watch {
  topicName: string;
  labelIds: string[];
  labelFilterBehavior: 'include' | 'exclude';
  /** Milliseconds since the epoch. */
  expiration: number;
}

/** What the emulator did with notifications, per user. */
export interface NotificationStats {
  /** Notifications sent to the topic (counted when sent, before Pub/Sub answers). */
  published: number;
  /** Changes that led to no notification because of the one-per-second limit. */
  dropped: number;
  /** Of those, the publishes the Pub/Sub emulator refused or did not answer. */
  failed: number;
}

export interface WatchOptions {
  /** Root URL of the Pub/Sub emulator (`http://127.0.0.1:8085/`); without it nothing is published. */
  pubsubUrl?: string;
  /** How long a watch lasts. Default 7 days, as at Google. */
  expiryMs?: number;
  /** The least time between two notifications of one user. Default 1000 ms, as at Google. */
  intervalMs?: number;
  now?: () => number;
}

const TOPIC = /^projects\/[a-z][a-z0-9-]{4,28}[a-z0-9]\/topics\/[A-Za-z][A-Za-z0-9._~+%-]{2,254}$/;
const PUBLISH_TIMEOUT_MS = 5000;

export class Watches {
  private readonly watches = new Map<string, Watch>();
  private readonly lastSent = new Map<string, number>();
  private readonly stats = new Map<string, NotificationStats>();
  private readonly inFlight = new Set<AbortController>();
  /** Notifications still to drop, per user (dropNext). */
  private readonly toDrop = new Map<string, number>();
  private readonly now: () => number;
  expiryMs: number;
  readonly intervalMs: number;

  constructor(private readonly opts: WatchOptions = {}) {
    this.now = opts.now ?? Date.now;
    this.expiryMs = opts.expiryMs ?? 7 * 86_400_000;
    this.intervalMs = opts.intervalMs ?? 1000;
  }

  /** users.watch: checks the request as Gmail does and (re)places the user's watch. */
  async watch(user: string, body: Record<string, unknown>, historyId: number): Promise<{ historyId: string; expiration: string }> {
    const topicName = body['topicName'];
    if (typeof topicName !== 'string' || topicName === '') throw invalidArgument('Invalid topicName: it is required');
    if (!TOPIC.test(topicName)) throw invalidArgument(`Invalid topicName does not match projects/SOME_PROJECT/topics/SOME_TOPIC: ${topicName}`);
    const labelIds = body['labelIds'] ?? [];
    if (!Array.isArray(labelIds) || labelIds.some((l) => typeof l !== 'string' || l === '')) throw invalidArgument('Invalid labelIds: a list of label ids');
    const behavior = body['labelFilterBehavior'] ?? body['labelFilterAction'] ?? 'include';
    if (behavior !== 'include' && behavior !== 'exclude') throw invalidArgument(`Invalid value for labelFilterBehavior: ${String(behavior)}`);
    if (this.opts.pubsubUrl) await this.checkTopic(topicName);
    const expiration = this.now() + this.expiryMs;
    this.watches.set(user, { topicName, labelIds: [...(labelIds as string[])], labelFilterBehavior: behavior, expiration });
    return { historyId: String(historyId), expiration: String(expiration) };
  }

  /** Gmail refuses a watch on a topic that does not exist. */
  private async checkTopic(topicName: string): Promise<void> {
    let status: number;
    try {
      const r = await fetch(new URL(`v1/${topicName}`, this.opts.pubsubUrl), { signal: AbortSignal.timeout(PUBLISH_TIMEOUT_MS) });
      await r.arrayBuffer();
      status = r.status;
    } catch {
      throw new ApiError(503, 'The service is currently unavailable.', 'backendError');
    }
    if (status === 404) throw new ApiError(404, `Resource not found (resource=${topicName.split('/').pop() ?? ''}).`, 'notFound');
    if (status >= 400) throw new ApiError(503, 'The service is currently unavailable.', 'backendError');
  }

  /** users.stop: the user's watch ends (also when there was none). */
  stop(user: string): void {
    this.watches.delete(user);
  }

  /** The user's watch, while it has not expired. */
  get(user: string): Watch | undefined {
    const w = this.watches.get(user);
    return w && w.expiration > this.now() ? w : undefined;
  }

  statsOf(user: string): NotificationStats {
    return { ...(this.stats.get(user) ?? { published: 0, dropped: 0, failed: 0 }) };
  }

  /** Milliseconds until a change of `user` would be notified rather than dropped (0: now). */
  quietFor(user: string): number {
    const last = this.lastSent.get(user);
    return last === undefined ? 0 : Math.max(0, last + this.intervalMs - this.now());
  }

  /** A change of `user`'s mailbox, the mailbox's history id after it, and the labels of the message it touched. */
  changed(user: string, historyId: number, labelIds: readonly string[]): void {
    const w = this.get(user);
    if (!w) return;
    if (w.labelIds.length > 0) {
      const touches = labelIds.some((l) => w.labelIds.includes(l));
      if (touches !== (w.labelFilterBehavior === 'include')) return;
    }
    const s = this.stats.get(user) ?? { published: 0, dropped: 0, failed: 0 };
    this.stats.set(user, s);
    const drop = this.toDrop.get(user) ?? 0;
    if (this.quietFor(user) > 0 || drop > 0) {
      if (drop > 0) this.toDrop.set(user, drop - 1);
      s.dropped++;
      return;
    }
    this.lastSent.set(user, this.now());
    if (!this.opts.pubsubUrl) return;
    s.published++;
    const data = Buffer.from(JSON.stringify({ emailAddress: user, historyId })).toString('base64');
    const abort = new AbortController();
    this.inFlight.add(abort);
    // Published after the change's own call has answered, as Gmail's pipeline does.
    setImmediate(() => {
      fetch(new URL(`v1/${w.topicName}:publish`, this.opts.pubsubUrl), {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ messages: [{ data }] }),
        signal: AbortSignal.any([abort.signal, AbortSignal.timeout(PUBLISH_TIMEOUT_MS)]),
      })
        .then(async (r) => {
          await r.arrayBuffer();
          if (!r.ok) s.failed++;
        })
        .catch(() => {
          s.failed++;
        })
        .finally(() => this.inFlight.delete(abort));
    });
  }

  /** Drops the user's next `count` notifications, as Gmail may (a fault to inject). */
  dropNext(user: string, count: number): void {
    this.toDrop.set(user, Math.max(0, Math.floor(count)));
  }

  /** Abandons the publishes still in flight. */
  close(): void {
    for (const a of this.inFlight) a.abort();
    this.inFlight.clear();
  }
}
