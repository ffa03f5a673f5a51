// Gmail API emulator: serves the Gmail v1 REST routes that googleapis calls, plus the Admin
// SDK Directory users.list, from a folder of mbox files (one mailbox per <address>.mbox).
//
//   const emulator = await startGmailEmulator({ dataDir: 'test/fixtures/demo' });
//   const auth = new google.auth.OAuth2();
//   auth.setCredentials({ access_token: OWNER_TOKEN }); // "owner"
//   const gmail = google.gmail({ version: 'v1', rootUrl: emulator.url, auth });
//   await gmail.users.messages.list({ userId: 'demo@example.com' });
//   await emulator.close();
//
// Bearer tokens: "owner" (every user, every scope; userId must be an address) or a token that
// `tokenVerifier` knows (the Google auth emulator's verifyAccessToken): it covers its own user
// ("me" or the address) and its own scopes. See auth.ts and README.md.

import { createServer, type Server } from 'node:http';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import type { TokenVerifier } from './auth.js';
import { FaultInjector, HangInjector, QuotaManager } from './quota.js';
import { createHandler, gateKey, type EmulatorState } from './routes.js';
import { Mailbox } from './store.js';
import { Watches, type NotificationStats, type Watch } from './watch.js';

export type { NotificationStats, Watch } from './watch.js';

export interface GmailEmulatorOptions {
  /** Port to listen on; 0 (the default) picks a free one. */
  port?: number;
  /** Interface to bind; only loopback addresses make sense. Default 127.0.0.1. */
  host?: string;
  /** Folder of <address>.mbox files (Google Takeout format), one mailbox each. */
  dataDir?: string;
  /** More addresses to serve, with empty mailboxes. */
  users?: string[];
  /** Per-user quota in units per minute, refilled continuously. Default 15000; 0 = unlimited. */
  quotaUnitsPerMinute?: number;
  /** Seconds of quota a user may burst (the bucket's size). Default 60: a minute's worth. */
  quotaBurstSeconds?: number;
  /**
   * The clock the quota refills by, in milliseconds (default: performance.now). A test that counts
   * the calls a bucket admits stops it, so that a slow machine does not refill it meanwhile.
   */
  quotaClock?: () => number;
  /**
   * Gmail calls one user may have in flight at once (counted from arrival to answer); more are
   * answered 429 "Too many concurrent requests for user", which costs no quota. Default 0: no limit.
   */
  maxConcurrentPerUser?: number;
  /** Status of quota refusals: 429 rateLimitExceeded (default) or 403 userRateLimitExceeded. */
  quotaStatus?: 429 | 403;
  /** Added to every call, in milliseconds. Default 0. */
  latencyMs?: number;
  /** Fraction (0..1) of Gmail calls answered with 429, 403 rate limit, 500 or 503. Default 0. */
  faultRate?: number;
  /** The Retry-After of those answers, in seconds (fractions allowed). Default: 1 or 2, at random. */
  faultRetryAfterS?: number;
  /**
   * Fraction (0..1) of Gmail calls (not Directory or health calls) that are never answered: the
   * request is read and the response held open until the client gives up or the emulator closes.
   * Drawn from its own seeded stream, so it leaves the sequence of faults unchanged. Default 0.
   */
  hangRate?: number;
  /** How many history records each mailbox keeps; an older startHistoryId is 404. Default: all. */
  historyRetention?: number;
  /**
   * Gmail's search-index lag, in milliseconds: a message inserted or imported is seen by `q=`
   * searches (messages.list, threads.list) only this long after it was added; listings by label,
   * messages.get and history see it at once. Default 0 (searches see it at once); see setSearchLag.
   */
  searchLagMs?: number;
  /** Seed of the fault and hang generators. Default 1. */
  seed?: number;
  /**
   * Knows the bearer tokens other than "owner": returns the token's user and scopes, a service
   * account, 'expired' or undefined (unknown). Pass the Google auth emulator's verifyAccessToken.
   * Without it only "owner" is accepted.
   */
  tokenVerifier?: TokenVerifier;
  /**
   * Root URL of the Pub/Sub emulator (`http://127.0.0.1:8085/`): users.watch checks the topic there
   * and notifications are published to it. Without it watches are kept but nothing is published.
   */
  pubsubUrl?: string;
  /** How long a watch lasts, in milliseconds. Default 7 days, as at Google. */
  watchExpiryMs?: number;
}

export { OWNER_TOKEN, METHOD_SCOPES, SCOPES, type TokenInfo, type TokenVerifier } from './auth.js';

export interface GmailEmulatorStats {
  /** Calls received, by method name ("messages.get", "getProfile", "directory.users.list", …). */
  calls: Record<string, number>;
  /** The same, by the user (lower case) each call's path names. */
  callsByUser: Record<string, Record<string, number>>;
  /** Calls refused for quota or for too many concurrent requests. */
  rateLimited: number;
  /** Of those, the calls refused for too many concurrent requests. */
  concurrencyRefused: number;
  /** Calls answered with an injected fault. */
  faults: number;
  /** Calls picked to hang (never answered), including those the client has since given up on. */
  hung: number;
  /** Calls applied whose answer was withheld (see loseAnswers). */
  lost: number;
  /** Calls waiting at a gate of holdCalls now. */
  held: number;
  /** Calls answered 503 by refuseCalls. */
  refused: number;
  /** Messages, over all mailboxes, that `q=` searches do not see yet (see setSearchLag). */
  unindexed: number;
}

export interface GmailEmulator {
  /** Root URL for googleapis (`rootUrl`), e.g. "http://127.0.0.1:8124/". */
  url: string;
  port: number;
  close(): Promise<void>;
  setQuota(unitsPerMinute: number): void;
  setLatency(ms: number): void;
  setFaultRate(f: number): void;
  /** Fraction (0..1) of later Gmail calls that hang; calls already hung stay open. */
  setHangRate(f: number): void;
  /** Makes messages.get of these message ids answer 500 until called again without them. */
  failMessages(ids: string[]): void;
  /**
   * The next `count` calls of `method` ("messages.import", say) are applied, then never answered:
   * the change is made but the client hears nothing, as when a connection drops after Gmail acted.
   */
  loseAnswers(method: string, count: number): void;
  /**
   * Holds the user's calls of `method` after the next `after`: they wait, unanswered, until the
   * returned function opens the gate (or their client gives up). One gate per user and method.
   */
  holdCalls(user: string, method: string, after: number): () => void;
  /**
   * After the user's next `after` calls of `method` (default 0), the `count` calls that follow are
   * answered 503 backendError at once, unapplied (before any gate of holdCalls), as a Gmail failing
   * for a while: the retries of one call meet it again. A new setting replaces the user's last one.
   */
  refuseCalls(user: string, method: string, count: number, after?: number): void;
  /**
   * Gmail's search-index lag for messages added from now on, in milliseconds: they are seen by
   * `q=` searches only this long after they were added (Infinity: not until indexSearches). 0
   * turns it off for later messages. Tests use Infinity and indexSearches, so that what they
   * check does not depend on the clock.
   */
  setSearchLag(ms: number): void;
  /** Searches see every message from now on (of `user`, or of every mailbox): the index caught up. */
  indexSearches(user?: string): void;
  stats(): GmailEmulatorStats;
  /** Addresses served, sorted. */
  mailboxes(): string[];
  /** The user's watch while it has not expired. */
  watchOf(user: string): Watch | undefined;
  /** Notifications published and dropped for the user. */
  notifications(user: string): NotificationStats;
  /** Milliseconds until a change of the user would be notified rather than dropped (0: now). */
  notifyQuietFor(user: string): number;
  /** How long later watches last, in milliseconds. */
  setWatchExpiry(ms: number): void;
  /** Drops the user's next `count` notifications (counted as dropped), as Gmail may. */
  dropNotifications(user: string, count: number): void;
}

function fraction(f: number): number {
  return Number.isFinite(f) ? Math.min(1, Math.max(0, f)) : 0;
}

export async function startGmailEmulator(opts: GmailEmulatorOptions = {}): Promise<GmailEmulator> {
  const mailboxes = new Map<string, Mailbox>();
  const closeMailboxes = async (): Promise<void> => {
    await Promise.all([...mailboxes.values()].map((m) => m.close()));
  };
  try {
    if (opts.dataDir) {
      const files = (await readdir(opts.dataDir)).filter((f) => f.toLowerCase().endsWith('.mbox') && f.includes('@')).sort();
      for (const file of files) {
        const address = file.slice(0, -'.mbox'.length).toLowerCase();
        mailboxes.set(address, await Mailbox.load(join(opts.dataDir, file), address, opts.historyRetention));
      }
    }
    for (const u of opts.users ?? []) {
      const address = u.toLowerCase();
      if (!mailboxes.has(address)) mailboxes.set(address, new Mailbox(address, opts.historyRetention));
    }
  } catch (err) {
    await closeMailboxes();
    throw err;
  }

  const watches = new Watches({ pubsubUrl: opts.pubsubUrl, expiryMs: opts.watchExpiryMs });
  const searchLag = (ms: number): number => (Number.isNaN(ms) ? 0 : Math.max(0, ms));
  for (const mb of mailboxes.values()) mb.searchLagMs = searchLag(opts.searchLagMs ?? 0);
  for (const mb of mailboxes.values()) mb.onChange = (historyId, labelIds) => watches.changed(mb.address, historyId, labelIds);
  const timers = new Map<NodeJS.Timeout, (done: boolean) => void>();
  const state: EmulatorState = {
    mailboxes,
    quota: new QuotaManager(opts.quotaUnitsPerMinute ?? 15000, opts.quotaBurstSeconds ?? 60, opts.quotaClock),
    quotaStatus: opts.quotaStatus ?? 429,
    faults: new FaultInjector(fraction(opts.faultRate ?? 0), opts.seed ?? 1, opts.faultRetryAfterS),
    hangs: new HangInjector(fraction(opts.hangRate ?? 0), opts.seed ?? 1),
    latencyMs: Math.max(0, opts.latencyMs ?? 0),
    calls: {},
    callsByUser: new Map(),
    rateLimited: 0,
    faultCount: 0,
    hungCount: 0,
    hanging: new Set(),
    failing: new Set(),
    losing: new Map(),
    lostCount: 0,
    closed: false,
    maxConcurrent: Math.max(0, Math.floor(opts.maxConcurrentPerUser ?? 0)),
    inFlight: new Map(),
    concurrencyRefused: 0,
    selfUrl: '',
    tokenVerifier: opts.tokenVerifier,
    watches,
    gates: new Map(),
    heldNow: 0,
    refusing: new Map(),
    refusedCount: 0,
    delay: (ms, res) =>
      new Promise<boolean>((resolve) => {
        if (res?.destroyed) {
          resolve(false);
          return;
        }
        const settle = (done: boolean): void => {
          clearTimeout(t);
          timers.delete(t);
          res?.off('close', gone);
          resolve(done);
        };
        const gone = (): void => settle(false);
        const t = setTimeout(() => settle(true), ms);
        t.unref();
        timers.set(t, settle);
        res?.once('close', gone);
      }),
  };

  const server: Server = createServer(createHandler(state));
  server.keepAliveTimeout = 5000;
  const host = opts.host ?? '127.0.0.1';
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(opts.port ?? 0, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (err) {
    await closeMailboxes();
    throw err;
  }
  const port = (server.address() as AddressInfo).port;
  const urlHost = host.includes(':') ? `[${host}]` : host;
  state.selfUrl = `http://${urlHost}:${port}/`;

  let closing: Promise<void> | null = null;
  const gateOpeners = new Set<() => void>();
  return {
    url: `http://${urlHost}:${port}/`,
    port,
    close() {
      closing ??= (async () => {
        state.closed = true;
        watches.close();
        for (const open of gateOpeners) open();
        gateOpeners.clear();
        for (const settle of [...timers.values()]) settle(false);
        timers.clear();
        for (const res of state.hanging) res.destroy();
        state.hanging.clear();
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeAllConnections();
        await closed;
        await closeMailboxes();
      })();
      return closing;
    },
    setQuota(unitsPerMinute) {
      state.quota.setRate(unitsPerMinute);
    },
    setLatency(ms) {
      state.latencyMs = Math.max(0, ms);
    },
    setFaultRate(f) {
      state.faults.rate = fraction(f);
    },
    failMessages(ids) {
      state.failing = new Set(ids);
    },
    loseAnswers(method, count) {
      state.losing.set(method, Math.max(0, Math.floor(count)));
    },
    setHangRate(f) {
      state.hangs.rate = fraction(f);
    },
    holdCalls(user, method, after) {
      const key = gateKey(user, method);
      let open = (): void => {};
      const opened = new Promise<void>((r) => (open = r));
      state.gates.set(key, { left: Math.max(0, Math.floor(after)), opened });
      gateOpeners.add(open);
      return () => {
        if (state.gates.get(key)?.opened === opened) state.gates.delete(key);
        gateOpeners.delete(open);
        open();
      };
    },
    refuseCalls(user, method, count, after = 0) {
      state.refusing.set(gateKey(user, method), { left: Math.max(0, Math.floor(after)), count: Math.max(0, Math.floor(count)) });
    },
    setSearchLag(ms) {
      for (const mb of mailboxes.values()) mb.searchLagMs = searchLag(ms);
    },
    indexSearches(user) {
      for (const mb of mailboxes.values()) if (user === undefined || mb.address === user.toLowerCase()) mb.indexSearches();
    },
    stats() {
      return {
        calls: { ...state.calls },
        callsByUser: Object.fromEntries([...state.callsByUser].map(([u, c]) => [u, { ...c }])),
        rateLimited: state.rateLimited,
        concurrencyRefused: state.concurrencyRefused,
        faults: state.faultCount,
        hung: state.hungCount,
        lost: state.lostCount,
        held: state.heldNow,
        refused: state.refusedCount,
        unindexed: [...mailboxes.values()].reduce((n, mb) => n + mb.unindexedCount(), 0),
      };
    },
    mailboxes() {
      return [...mailboxes.keys()].sort();
    },
    watchOf: (user) => watches.get(user.toLowerCase()),
    notifications: (user) => watches.statsOf(user.toLowerCase()),
    notifyQuietFor: (user) => watches.quietFor(user.toLowerCase()),
    dropNotifications: (user, count) => watches.dropNext(user.toLowerCase(), count),
    setWatchExpiry(ms) {
      watches.expiryMs = Math.max(1, ms);
    },
  };
}
