/**
 * The identity matrix: which Google calls each function's code makes, the permission each needs,
 * and the grants the Terraform module gives each service account. docs/deploy.md ("Identity matrix")
 * shows the same table for people; IDENTITY_MATRIX below is the one the tests hold the module to.
 *
 * What the code needs is read from functions/src, not written down by hand: the files reachable
 * from each function's entry file (value imports only), the TaskQueue methods they call (each one
 * Cloud Tasks RPC of queue/tasks.ts), whether they reach Firestore, and whether they read Gmail
 * through domain-wide delegation. A Google client library the table does not know, or an RPC of
 * the Cloud Tasks client it does not know, is reported, so that code needing a new right fails
 * until the matrix says why.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve as resolvePath } from 'node:path';

// --- what the code calls ------------------------------------------------------------------------

/** The Cloud Tasks RPC behind each TaskQueue method (functions/src/queue/tasks.ts). */
export const QUEUE_METHOD_RPC: Readonly<Record<string, string>> = {
  enqueue: 'createTask',
  remove: 'deleteTask',
  exists: 'getTask',
  pause: 'pauseQueue',
  resume: 'resumeQueue',
  isPaused: 'getQueue',
};

/** The permission each Cloud Tasks RPC needs. */
export const RPC_PERMISSION: Readonly<Record<string, string>> = {
  createTask: 'cloudtasks.tasks.create',
  deleteTask: 'cloudtasks.tasks.delete',
  getTask: 'cloudtasks.tasks.get',
  pauseQueue: 'cloudtasks.queues.pause',
  resumeQueue: 'cloudtasks.queues.resume',
  getQueue: 'cloudtasks.queues.get',
};

/**
 * The Google client packages the functions may import, and what they are for. A package not
 * listed here is a Google API the matrix has not considered.
 */
export const KNOWN_GOOGLE_PACKAGES: Readonly<Record<string, string>> = {
  '@google-cloud/functions-framework': 'the HTTP server (no Google call)',
  '@google-cloud/firestore': 'Firestore: requirement "firestore"',
  '@google-cloud/tasks': 'Cloud Tasks: the RPCs of RPC_PERMISSION',
  '@google-cloud/storage': 'Cloud Storage, where Collect writes: requirements "storage.objects.create" and "storage.objects.get" (deps.storage), on var.collect_buckets only',
  'googleapis/build/src/apis/gmail/index.js': 'Gmail, with delegated tokens (no IAM right of its own)',
  'googleapis/build/src/apis/admin/index.js': 'Directory API, with delegated tokens (no IAM right of its own)',
  'googleapis/build/src/apis/iamcredentials/index.js': 'IAM Credentials signJwt: requirements "signJwt:GMAIL_DELEGATED_SERVICE_ACCOUNT" (deps.google) and "signJwt:GMAIL_VIEW_SERVICE_ACCOUNT" (deps.viewGoogle)',
};

/**
 * What one function's code needs. Requirements are permissions (`cloudtasks.tasks.create`),
 * `firestore`, or `actAs:ENV` / `signJwt:ENV`: that permission on the account the function's
 * environment variable ENV names.
 */
export interface CodeNeeds {
  entry: string;
  files: string[];
  needs: Set<string>;
  /** Where each requirement comes from (file: call). */
  evidence: Map<string, string[]>;
}

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const path = join(dir, f);
    return statSync(path).isDirectory() ? filesUnder(path) : path.endsWith('.ts') ? [path] : [];
  });
}

/** Relative imports that load code at run time (`import type` ones do not). */
function valueImports(file: string, text: string): string[] {
  const out: string[] = [];
  for (const m of text.matchAll(/^import\s+(type\s+)?([\s\S]*?)\s+from\s+'([^']+)';/gm)) {
    if (m[1] !== undefined) continue;
    const spec = m[3] ?? '';
    if (!spec.startsWith('.')) continue;
    out.push(resolvePath(dirname(file), spec.replace(/\.js$/, '.ts')));
  }
  for (const m of text.matchAll(/^export\s+(?!type\b)[^;]*?\s+from\s+'(\.[^']+)';/gm)) {
    out.push(resolvePath(dirname(file), (m[1] ?? '').replace(/\.js$/, '.ts')));
  }
  return out;
}

/** The files an entry file loads, itself included. */
export function reachableFiles(entry: string): string[] {
  const seen = new Set<string>();
  const visit = (file: string): void => {
    if (seen.has(file)) return;
    seen.add(file);
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      return;
    }
    for (const next of valueImports(file, text)) visit(next);
  };
  visit(entry);
  return [...seen].sort();
}

function add(n: CodeNeeds, need: string, where: string): void {
  n.needs.add(need);
  n.evidence.set(need, [...(n.evidence.get(need) ?? []), where]);
}

/** What the code reachable from `entry` (e.g. functions/src/entry/aci.ts) needs. */
export function codeNeeds(root: string, entry: string): CodeNeeds {
  const n: CodeNeeds = { entry, files: [], needs: new Set(), evidence: new Map() };
  const files = reachableFiles(resolvePath(root, entry));
  n.files = files.map((f) => relative(root, f));
  for (const file of files) {
    const rel = relative(root, file);
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(/\bqueue\.(\w+)\(/g)) {
      const rpc = QUEUE_METHOD_RPC[m[1] ?? ''];
      if (!rpc) continue;
      const permission = RPC_PERMISSION[rpc] ?? `unknown RPC ${rpc}`;
      add(n, permission, `${rel}: queue.${m[1]} (${rpc})`);
      // Every task carries an OIDC token of TASKS_INVOKER_SERVICE_ACCOUNT (queue/tasks.ts).
      if (rpc === 'createTask') add(n, 'actAs:TASKS_INVOKER_SERVICE_ACCOUNT', `${rel}: queue.${m[1]} (oidcToken)`);
    }
    if (/\b(?:store|units|db)\.\w+\(/.test(text)) add(n, 'firestore', `${rel}: Firestore reads and writes`);
    // deps.google: the worker's delegated account; deps.viewGoogle: the read-only View account.
    for (const m of text.matchAll(/\bdeps\.google\b(?:\.(\w+))?|\{[^}]*\bgoogle\b[^}]*\}\s*=\s*deps\b/g)) {
      add(n, 'signJwt:GMAIL_DELEGATED_SERVICE_ACCOUNT', `${rel}: ${m[0].replace(/\s+/g, ' ')} (domain-wide delegation)`);
    }
    // deps.storage: Collect's copies (an existence check, then a conditional create).
    for (const m of text.matchAll(/\bdeps\.storage\b/g)) {
      add(n, 'storage.objects.create', `${rel}: ${m[0]} (Collect's uploads)`);
      add(n, 'storage.objects.get', `${rel}: ${m[0]} (Collect's check for an object already there)`);
    }
    for (const m of text.matchAll(/\bdeps\.viewGoogle\b(?:\.(\w+))?|\{[^}]*\bviewGoogle\b[^}]*\}\s*=\s*deps\b/g)) {
      add(n, 'signJwt:GMAIL_VIEW_SERVICE_ACCOUNT', `${rel}: ${m[0].replace(/\s+/g, ' ')} (the read-only View account)`);
    }
  }
  return n;
}

/**
 * Calls the table does not know: a Google package outside KNOWN_GOOGLE_PACKAGES anywhere in
 * functions/src, or a Cloud Tasks client method outside RPC_PERMISSION in queue/tasks.ts.
 */
export function unknownGoogleCalls(root: string): string[] {
  const problems: string[] = [];
  const src = join(root, 'functions', 'src');
  for (const file of filesUnder(src)) {
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(/from\s+'((?:@google-cloud\/|googleapis|google-auth-library|@googleapis\/)[^']*)'/g)) {
      const spec = m[1] ?? '';
      if (!(spec in KNOWN_GOOGLE_PACKAGES)) {
        problems.push(`${relative(root, file)} imports ${spec}: a Google API the identity matrix does not cover (add its calls and their permissions)`);
      }
    }
  }
  const tasks = readFileSync(join(src, 'queue', 'tasks.ts'), 'utf8');
  for (const m of tasks.matchAll(/\bclient\.(\w+)\(/g)) {
    const method = m[1] ?? '';
    if (method !== 'queuePath' && !(method in RPC_PERMISSION)) {
      problems.push(`functions/src/queue/tasks.ts calls Cloud Tasks ${method}: not in the identity matrix (RPC_PERMISSION)`);
    }
  }
  for (const [method, rpc] of Object.entries(QUEUE_METHOD_RPC)) {
    if (!new RegExp(`\\b${method}\\b[\\s\\S]*?client\\.${rpc}\\(`).test(tasks)) {
      problems.push(`functions/src/queue/tasks.ts: TaskQueue.${method} no longer calls ${rpc}; update QUEUE_METHOD_RPC`);
    }
  }
  return problems;
}

// --- the matrix -----------------------------------------------------------------------------------

/** One grant of the matrix: as the checks render it (see grantsByAccount), what code needs it covers, and why. */
export interface MatrixGrant {
  grant: string;
  /** Code requirements this grant satisfies; empty for a grant the code does not show (then `why` says what). */
  covers: string[];
  why: string;
  /** A grant for code that is coming (named in `why`): its requirements need not be in the code yet. */
  planned?: boolean;
}

const ACTION_QUEUE = ['cloudtasks.queues.get', 'cloudtasks.queues.pause', 'cloudtasks.queues.resume', 'cloudtasks.tasks.create', 'cloudtasks.tasks.delete', 'cloudtasks.tasks.get'];
const WORKER_QUEUE = ['cloudtasks.tasks.create', 'cloudtasks.tasks.get'];

/** Each service account of the module (by resource name) and exactly what it is granted. */
export const IDENTITY_MATRIX: Readonly<Record<string, readonly MatrixGrant[]>> = {
  action: [
    { grant: 'project roles/datastore.user', covers: ['firestore'], why: 'actions, units and sync state in Firestore' },
    {
      grant: `queue:fetch {${ACTION_QUEUE.join(',')}}`,
      covers: ACTION_QUEUE,
      why: 'Fetch (createTask), Cancel (deleteTask), lazy reconcile (getTask, createTask), GetStatus (getQueue), Pause/Resume',
    },
    { grant: 'serviceAccount:tasks_invoker {iam.serviceAccounts.actAs}', covers: ['actAs:TASKS_INVOKER_SERVICE_ACCOUNT'], why: "tasks carry the tasks account's OIDC token" },
    {
      grant: 'serviceAccount:gmail_view {iam.serviceAccounts.signJwt} if var.view_enabled',
      covers: ['signJwt:GMAIL_VIEW_SERVICE_ACCOUNT'],
      why: 'the synchronous View (and Sync=true) read Gmail as the read-only View account (gmail.readonly only)',
    },
    {
      grant: 'secret:action_shared_secret roles/secretmanager.secretAccessor if var.action_shared_secret_enabled',
      covers: [],
      why: 'Cloud Run reads ACTION_SHARED_SECRET as the function\'s account when an instance starts (opt-in mode)',
    },
  ],
  worker: [
    { grant: 'project roles/datastore.user', covers: ['firestore'], why: 'actions, units, sync state and the sink in Firestore' },
    { grant: `queue:fetch {${WORKER_QUEUE.join(',')}}`, covers: WORKER_QUEUE, why: 'fan-out, continuations and re-queues (createTask), reconcile (getTask)' },
    { grant: 'serviceAccount:tasks_invoker {iam.serviceAccounts.actAs}', covers: ['actAs:TASKS_INVOKER_SERVICE_ACCOUNT'], why: "tasks carry the tasks account's OIDC token" },
    {
      grant: 'serviceAccount:gmail_delegate {iam.serviceAccounts.signJwt}',
      covers: ['signJwt:GMAIL_DELEGATED_SERVICE_ACCOUNT'],
      why: 'Gmail and Directory tokens through domain-wide delegation, without key files',
    },
    {
      grant: 'bucket:${each.value} {storage.objects.create,storage.objects.get}',
      covers: ['storage.objects.create', 'storage.objects.get'],
      why: 'Collect creates objects, and reads one already there, on each bucket of var.collect_buckets and no other',
    },
  ],
  notify: [
    { grant: 'project roles/datastore.user', covers: ['firestore'], why: "the mailbox's history id, the queued push Synchronize and its action record in Firestore" },
    { grant: 'queue:fetch {cloudtasks.tasks.create}', covers: ['cloudtasks.tasks.create'], why: 'the task of each push Synchronize it queues' },
    { grant: 'serviceAccount:tasks_invoker {iam.serviceAccounts.actAs}', covers: ['actAs:TASKS_INVOKER_SERVICE_ACCOUNT'], why: "tasks carry the tasks account's OIDC token" },
  ],
  push: [{ grant: 'function:notify roles/run.invoker', covers: [], why: 'the Pub/Sub push subscription calls notify as this account' }],
  tasks_invoker: [{ grant: 'function:worker roles/run.invoker', covers: [], why: 'Cloud Tasks deliveries and the reconcile job call the worker as this account' }],
  scheduler: [{ grant: 'function:action roles/run.invoker', covers: [], why: 'the scheduled Synchronize jobs call action as this account' }],
  gmail_delegate: [],
  gmail_view: [],
  build: [
    { grant: 'project roles/logging.logWriter', covers: [], why: 'Cloud Build writes its logs' },
    { grant: 'repository:functions roles/artifactregistry.writer', covers: [], why: 'Cloud Build pushes the function images' },
    { grant: 'bucket:source roles/storage.objectViewer', covers: [], why: 'Cloud Build reads the source zip' },
    { grant: 'project roles/storage.objectAdmin when gcf-staging-buckets', covers: [], why: "Cloud Build reads the gcf-v2-* staging buckets Cloud Functions creates" },
  ],
};

/** The function each runtime account serves (by entry point). */
export const FUNCTION_ACCOUNTS: Readonly<Record<string, string>> = { action: 'action', worker: 'worker', notify: 'notify' };
