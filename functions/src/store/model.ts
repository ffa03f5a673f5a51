/**
 * The action records in Firestore (DESIGN §3): `actions/{token}` for an action
 * and `actions/{token}/mailboxes/{task}:{address}` for each mailbox it reads.
 *
 * Terminology:
 * - action: one accepted asynchronous request (a Fetch), named by its token.
 * - mailbox unit: one task section and one address within an action; each has
 *   its own Cloud Task, lease, checkpoint, progress and counts.
 * - lease: a holder id and expiry on a unit; only the holder works on it.
 */
import type { Timestamp } from '@google-cloud/firestore';

/** Statuses of actions and of their mailbox units. */
export const STATUSES = ['Queued', 'Processing', 'Finished', 'Cancelled', 'Stopped', 'Error'] as const;
export type Status = (typeof STATUSES)[number];

/** Statuses from which nothing moves on. */
export const ENDED_STATUSES: ReadonlySet<Status> = new Set(['Finished', 'Cancelled', 'Stopped', 'Error']);

/** The counters of a Synchronize (DESIGN §2), per task section. */
export const SYNC_COUNTERS = ['seen', 'added', 'updated', 'unchanged', 'deleted', 'errors'] as const;
export type Counts = Record<(typeof SYNC_COUNTERS)[number], number>;

export function zeroCounts(): Counts {
  return { seen: 0, added: 0, updated: 0, unchanged: 0, deleted: 0, errors: 0 };
}

/** The fetch actions this connector runs. */
export const FETCH_ACTIONS = ['Synchronize'] as const;
export type FetchAction = (typeof FETCH_ACTIONS)[number];

/** `actions/{token}`. */
export interface ActionRecord {
  token: string;
  fetchAction: FetchAction;
  /** Task sections, as configured (canonical spelling). */
  tasks: string[];
  status: Status;
  queuedAt: Timestamp;
  startedAt: Timestamp | null;
  endedAt: Timestamp | null;
  stopRequested: boolean;
  /** The task name when the action reads exactly one task (for coalescing scheduled runs). */
  scheduleKey: string | null;
  /** Deliveries of the action's own Cloud Task. */
  attempts: number;
  /** Mailbox units once the action has fanned out; null before. */
  unitsTotal: number | null;
  /** Why the action failed, naming each failed mailbox. */
  error: string | null;
}

/** Where a unit resumes after a crash, a Stop or a hand-over. */
export interface Checkpoint {
  /** `full`: messages.list pages; `history`: history.list pages. */
  mode: 'full' | 'history';
  /** The next page to read; null: start from the first. */
  pageToken: string | null;
  /** For history mode: the history id the listing started from. */
  startHistoryId: string | null;
  /** The mailbox's history id when this run began: the next run's start once this one finishes. */
  baselineHistoryId: string | null;
  /** Whether this full sync also removes sink documents no longer in the mailbox. */
  sweep: boolean;
}

/** `actions/{token}/mailboxes/{task}:{address}`. */
export interface UnitRecord {
  task: string;
  user: string;
  index: number;
  status: Status;
  /** Name of the unit's newest Cloud Task. */
  taskId: string;
  /** Generation of that task: 0, then one more per continuation or re-enqueue. */
  generation: number;
  startedAt: Timestamp | null;
  endedAt: Timestamp | null;
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
}

export const COLLECTIONS = { actions: 'actions', units: 'mailboxes', documents: 'documents', state: 'state' } as const;

/** A token is 128 random bits in base64url: 22 characters. */
export const TOKEN_PATTERN = /^[A-Za-z0-9_-]{22}$/;

/** The id of a unit document. */
export function unitId(task: string, user: string): string {
  return `${task}:${user.toLowerCase()}`;
}

/** The id of a sink document (DESIGN §6). */
export function documentId(task: string, user: string, messageId: string): string {
  return `${task.toUpperCase()}:${user.toLowerCase()}:${messageId}`;
}
