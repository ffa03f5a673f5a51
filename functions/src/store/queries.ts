/**
 * The Firestore queries the functions make that need a composite index.
 *
 * Store code builds these queries from the shapes below, and the deployment
 * checks prove that `firestore.indexes.json` holds an index for each, so a new
 * query cannot ship without its index.
 */

/** One field of a composite query: equality filters first, then the order. */
export interface QueryField {
  readonly fieldPath: string;
  readonly order: 'ASCENDING' | 'DESCENDING';
}

/** A composite query on one collection (or collection group). */
export interface QueryShape {
  readonly collectionGroup: string;
  readonly queryScope: 'COLLECTION' | 'COLLECTION_GROUP';
  readonly fields: readonly QueryField[];
}

/** Actions of one status, ordered by one of their times (a range on that time uses the same index). */
function statusOrdered(fieldPath: 'queuedAt' | 'startedAt' | 'endedAt', order: QueryField['order']) {
  return {
    collectionGroup: 'actions',
    queryScope: 'COLLECTION',
    fields: [
      { fieldPath: 'status', order: 'ASCENDING' },
      { fieldPath, order },
    ],
  } as const satisfies QueryShape;
}

export const QUERIES = {
  /** QueueInfo GetStatus with `State`: the queue's actions of one status, newest first. */
  actionsByStatus: {
    collectionGroup: 'actions',
    queryScope: 'COLLECTION',
    fields: [
      { fieldPath: 'status', order: 'ASCENDING' },
      { fieldPath: 'queuedAt', order: 'DESCENDING' },
    ],
  },
  /** The same, oldest first (`Sort-Order=ascending`). */
  actionsByStatusQueuedAscending: statusOrdered('queuedAt', 'ASCENDING'),
  /** QueueInfo GetStatus with `State` and `Sort-By=start-time`, latest first, then earliest first. */
  actionsByStatusStarted: statusOrdered('startedAt', 'DESCENDING'),
  actionsByStatusStartedAscending: statusOrdered('startedAt', 'ASCENDING'),
  /** QueueInfo GetStatus with `State` and `Sort-By=finish-time`, latest first, then earliest first. */
  actionsByStatusEnded: statusOrdered('endedAt', 'DESCENDING'),
  actionsByStatusEndedAscending: statusOrdered('endedAt', 'ASCENDING'),
  /** Scheduled Synchronize: an action of this task still queued or running, newest first. */
  activeSyncOfTask: {
    collectionGroup: 'actions',
    queryScope: 'COLLECTION',
    fields: [
      { fieldPath: 'scheduleKey', order: 'ASCENDING' },
      { fieldPath: 'status', order: 'ASCENDING' },
      { fieldPath: 'queuedAt', order: 'DESCENDING' },
    ],
  },
  /**
   * A full listing's sweep: the task's documents of one mailbox whose epoch is not the run's. It
   * reads only what it deletes or marks, so a sweep of an unchanged mailbox reads nothing.
   */
  staleDocumentsOfMailbox: {
    collectionGroup: 'documents',
    queryScope: 'COLLECTION',
    fields: [
      { fieldPath: 'task', order: 'ASCENDING' },
      { fieldPath: 'user', order: 'ASCENDING' },
      { fieldPath: 'epoch', order: 'ASCENDING' },
    ],
  },
} as const satisfies Record<string, QueryShape>;

/** The query of actions of one status ordered by `field` (QueueInfo GetStatus with `State`). */
export function statusQueryShape(field: 'queuedAt' | 'startedAt' | 'endedAt', descending: boolean): QueryShape {
  const shapes = {
    queuedAt: [QUERIES.actionsByStatus, QUERIES.actionsByStatusQueuedAscending],
    startedAt: [QUERIES.actionsByStatusStarted, QUERIES.actionsByStatusStartedAscending],
    endedAt: [QUERIES.actionsByStatusEnded, QUERIES.actionsByStatusEndedAscending],
  } as const;
  return shapes[field][descending ? 0 : 1];
}
