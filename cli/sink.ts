/**
 * Reads the local sink (docs/CONTRACT.md §10) through the Firestore emulator that
 * FIRESTORE_EMULATOR_HOST names; it never reaches a real Firestore.
 */
import { Firestore, Timestamp } from '@google-cloud/firestore';

export interface SinkDoc {
  id: string;
  user?: string;
  date?: string;
  from?: string;
  subject?: string;
  labels?: string[];
  snippet?: string;
}

export async function readSink(q: { project: string; task: string; user?: string; limit: number }): Promise<SinkDoc[]> {
  if (!process.env.FIRESTORE_EMULATOR_HOST) {
    throw new Error('docs reads the local stack only: set FIRESTORE_EMULATOR_HOST (npm start uses 127.0.0.1:8080)');
  }
  // The emulator takes no credentials. Naming the universe domain keeps the client from asking the
  // metadata server for them, which would print a MetadataLookupWarning off Google Cloud.
  const db = new Firestore({ projectId: q.project, universeDomain: 'googleapis.com' });
  try {
    let query = db.collection('documents').where('task', '==', q.task.toUpperCase());
    if (q.user) query = query.where('user', '==', q.user.toLowerCase());
    const snaps = await query.limit(q.limit).get();
    return snaps.docs.map((d) => {
      const v = d.data();
      return {
        id: d.id,
        user: v.user as string | undefined,
        date: v.date instanceof Timestamp ? v.date.toDate().toISOString() : undefined,
        from: v.from as string | undefined,
        subject: v.subject as string | undefined,
        labels: Array.isArray(v.labels) ? (v.labels as string[]) : undefined,
        snippet: v.snippet as string | undefined,
      };
    });
  } finally {
    await db.terminate();
  }
}
