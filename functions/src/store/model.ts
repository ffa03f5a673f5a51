/**
 * The action records in Firestore (docs/CONTRACT.md): `actions/{token}` for an action
 * and `actions/{token}/mailboxes/{task}:{address}` for each mailbox it reads.
 *
 * Terminology:
 * - action: one accepted asynchronous request (a Fetch), named by its token.
 * - mailbox unit: one task section and one address within an action; each has
 *   its own Cloud Task, lease, checkpoint, progress and counts.
 * - lease: a holder id and expiry on a unit; only the holder works on it.
 */
import { createHash } from 'node:crypto';
import type { Timestamp } from '@google-cloud/firestore';

/** Statuses of actions and of their mailbox units. */
export const STATUSES = ['Queued', 'Processing', 'Finished', 'Cancelled', 'Stopped', 'Error'] as const;
export type Status = (typeof STATUSES)[number];

/** Statuses from which nothing moves on. */
export const ENDED_STATUSES: ReadonlySet<Status> = new Set(['Finished', 'Cancelled', 'Stopped', 'Error']);

/** A unit's counters, by name (each fetch action declares its own; see fetch/registry.ts). */
export type Counts = Record<string, number>;

export function zeroCounts(counters: readonly string[]): Counts {
  return Object.fromEntries(counters.map((c) => [c, 0]));
}

/** A fetch action's canonical name (see fetch/registry.ts). */
export type FetchAction = string;

/** `actions/{token}`. */
export interface ActionRecord {
  token: string;
  fetchAction: FetchAction;
  /** The fetch action's own parameters, as it parsed them (see fetch/registry.ts). */
  params?: Record<string, string | number | boolean>;
  /** The request's parameters as sent (for GetActionParameters and Duplicate), ResponseFormat and ActionID left out. */
  request?: { name: string; value: string }[];
  /** The client's ActionID, when the Fetch gave one (GetStatus shows it and filters by it). */
  actionId?: string;
  /** Task sections, as configured (canonical spelling). */
  tasks: string[];
  status: Status;
  queuedAt: Timestamp;
  startedAt: Timestamp | null;
  endedAt: Timestamp | null;
  /** When Firestore's TTL policy may delete the ended record (endedAt + ACTION_RETENTION_DAYS); absent while it runs. */
  expireAt?: Timestamp;
  stopRequested: boolean;
  /** The task name when the action reads exactly one task (for coalescing scheduled runs). */
  scheduleKey: string | null;
  /** Deliveries of the action's own Cloud Task. */
  attempts: number;
  /** Mailbox units once the action has fanned out; null before. */
  unitsTotal: number | null;
  /** Generation of the action's fan-out task (reconcile re-enqueues a lost one). */
  fanOutGeneration: number;
  /** When reconcile last re-enqueued the fan-out task; absent: never (the task was asked for at `queuedAt`). */
  fanOutAt?: Timestamp;
  /** Why the action failed, naming each failed mailbox. */
  error: string | null;
  /** Its totals as its shards held them when it ended (store/totals.ts); absent before, and for an action cancelled or failed without running. */
  totals?: ActionTotals;
  /** `push`: queued by a Gmail push notification (notify.ts); absent for what clients and the scheduler sent. */
  origin?: 'push';
}

/**
 * Where a run of a unit stands:
 * - `listing`: the page `pageToken` (null: the first) is to be listed next;
 * - `fetching`: a page was listed; its changes are `items` (a message id, or
 *   `-id` for a deletion), of which the first `done` are applied, and `next` is
 *   the page after it;
 * - `sweeping`: a full listing is complete; sink documents not marked with this
 *   run's epoch are deleted (held ones marked), a page at a time until none is
 *   left; after an incremental run, the released documents after `sweepAfter`
 *   are examined;
 * - `done`: the run's work is complete; only ending the unit remains.
 * Counts are saved with the checkpoint in one write, so a take-over never
 * counts or lists again what was already counted or listed.
 */
export interface Checkpoint {
  /** `full`: messages.list pages; `history`: history.list pages. */
  mode: 'full' | 'history';
  phase: 'listing' | 'fetching' | 'sweeping' | 'done';
  /** This run's epoch of the mailbox (the sweep marker; see MailboxStore). */
  epoch: number;
  /** The page to list next (phase `listing`); null: the first. */
  pageToken: string | null;
  /** The listed page's changes (phase `fetching`). */
  items: string[];
  /** How many of `items` are applied. */
  done: number;
  /** The page token after the listed page; null: it was the last. */
  next: string | null;
  /** For history mode: the history id the listing started from. */
  startHistoryId: string | null;
  /** The mailbox's history id when this run began: the next run's start once this one finishes. */
  baselineHistoryId: string | null;
  /** Phase `sweeping` of an incremental run: the last released document id examined. */
  sweepAfter: string | null;
  /**
   * Synchronize: the selection the run synchronizes with, the task's when it began; every
   * continuation keeps to it. Absent on checkpoints written before it was kept.
   */
  selection?: Selection;
}

/** `actions/{token}/mailboxes/{task}:{address}`. */
export interface UnitRecord {
  task: string;
  user: string;
  /**
   * Whether the unit takes its mailbox's lock (`state/{TASK}/mailboxes/{address}`); absent means
   * it does. A unit that does not works under a lock document of its own, which no other action
   * shares, with the same lease and fence.
   */
  mailboxLock?: boolean;
  /** Position in the action's list of units (for display order only). */
  index: number;
  /** The unit's key in task ids: derived from task and address (see unitKey). */
  key: string;
  status: Status;
  /** Name of the unit's newest Cloud Task. */
  taskId: string;
  /**
   * When `taskId` was recorded: the task is created just before or just after, so until
   * TaskQueue.longestEnqueueMs after this its absence from the queue is no loss (reconcile). Absent on
   * records written before it was kept.
   */
  taskAt?: Timestamp;
  /** Generation of that task: 0, then one more per continuation or re-enqueue. */
  generation: number;
  startedAt: Timestamp | null;
  endedAt: Timestamp | null;
  /** When Firestore's TTL policy may delete the ended record (endedAt + ACTION_RETENTION_DAYS); absent while it runs. */
  expireAt?: Timestamp;
  lease: { holder: string; expiresAt: Timestamp } | null;
  attempts: number;
  retries: number;
  pages: number;
  messages: number;
  /** Messages expected, when known (for the percentage). */
  total: number | null;
  counts: Counts;
  checkpoint: Checkpoint | null;
  error: string | null;
  /** Messages that failed after retries, each named. */
  messageErrors: string[];
  /** The newest delivery, as Cloud Tasks described it (its headers). */
  delivery: { retryCount: number; previousResponse: number | null; at: Timestamp } | null;
  /** The worker's own last error on this unit (a busy lease, an interruption). */
  lastError: string | null;
  /** Times reconcile re-enqueued the unit after its task disappeared. */
  requeues: number;
  /** The names of the tasks reconcile found lost (the last 10), for whoever asks what was lost. */
  lostTasks?: string[];
  /** Why the unit ended as it did, when that needs saying (another run synchronized the mailbox since). */
  note: string | null;
  /** The unit's figures as already added to its action's totals (store/totals.ts); absent until first added. */
  rolled?: UnitTally;
}

export const COLLECTIONS = {
  actions: 'actions',
  units: 'mailboxes',
  documents: 'documents',
  state: 'state',
  locks: 'locks',
  results: 'results',
  totals: 'totals',
  watches: 'watches',
  actionIds: 'actionIds',
} as const;

/**
 * `actionIds/{key}`: which action a Fetch's ActionID answered, for a day. A retry of the Fetch
 * with the same ActionID and parameters answers that action's token; other parameters are refused.
 */
export interface ActionIdRecord {
  actionId: string;
  /** The action answered (a new one, or the open scheduled one it joined). */
  token: string;
  /** Whether the answer joined an open scheduled action (`coalesced`). */
  coalesced: boolean;
  /** The digest of the request's parameters (aci/action-id.ts parametersDigest). */
  digest: string;
  claimedAt: Timestamp;
  /** A day after claimedAt: a later Fetch with the ActionID is a new action; the TTL policy deletes it. */
  expireAt: Timestamp;
}

/** How long an ActionID answers its first action's token. */
export const ACTION_ID_LIFETIME_MS = 24 * 60 * 60 * 1000;

/**
 * The id of an ActionID's document: the base64url SHA-256 of the ActionID, since an ActionID may
 * be a name Firestore refuses as a document id (`.`, `..`, `__x__`).
 */
export function actionIdKey(actionId: string): string {
  return createHash('sha256').update(actionId).digest('base64url');
}

/** A token is 128 random bits in base64url: 22 characters. */
export const TOKEN_PATTERN = /^[A-Za-z0-9_-]{22}$/;

/** The id of a unit document. */
export function unitId(task: string, user: string): string {
  return `${task}:${user.toLowerCase()}`;
}

/**
 * A unit's key in Cloud Task ids: derived from its task and address (never a
 * list position), in the characters task ids allow (letters, digits, `-`, `_`).
 */
export function unitKey(task: string, user: string): string {
  return createHash('sha256').update(unitId(task.toUpperCase(), user)).digest('base64url').slice(0, 22);
}

/** The Cloud Task id of a unit's task generation. */
export function unitTaskId(token: string, key: string, generation: number): string {
  return `${token}-${key}-${generation}`;
}

/** The Cloud Task id of an action's fan-out task: the token itself, then `{token}-f{n}` when reconcile re-enqueues it. */
export function fanOutTaskId(token: string, generation: number): string {
  return generation === 0 ? token : `${token}-f${generation}`;
}

/** The id of a sink document (docs/CONTRACT.md). */
export function documentId(task: string, user: string, messageId: string): string {
  return `${task.toUpperCase()}:${user.toLowerCase()}:${messageId}`;
}

/** What a task selects of a mailbox, in canonical form: two equal selections are equal field by field. */
export interface Selection {
  query: string;
  /** Sorted, each once. */
  labels: string[];
  includeSpamTrash: boolean;
}

/** One unit's share of its action's totals. */
export interface UnitTally {
  pages: number;
  messages: number;
  retries: number;
  attempts: number;
  /** Sum of the known `total`s, and 1 when the unit's total is known. */
  total: number;
  known: number;
  finished: number;
  failed: number;
  /** 1 once the unit has ended, whatever its end. */
  ended: number;
  counts: Counts;
}

/** An action's totals over its units. */
export interface ActionTotals {
  /** Units counted (every unit, once the action has ended). */
  units: number;
  pages: number;
  messages: number;
  retries: number;
  attempts: number;
  total: number;
  /** Units whose total is known. */
  known: number;
  /** Units that have ended: once they are every unit, the action should end too. */
  ended: number;
  tasks: Record<string, { units: number; finished: number; failed: number; counts: Counts }>;
}
