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
} as const satisfies Record<string, QueryShape>;
