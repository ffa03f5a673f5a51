/**
 * Configuration: the one module that reads the environment (docs/CONTRACT.md).
 *
 * `loadConfig(env)` validates every variable and the connector configuration
 * (`CONNECTOR_CONFIG`, a path or inline JSON) once, and returns a frozen object.
 * Nothing else in the functions reads `process.env`; client libraries still read
 * their own emulator variables.
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { errorMessage } from './error-message.js';

/** Variables the deployed functions read; Terraform sets each on the functions whose code reads it (test/infra/ holds the per-function lists). */
export const PRODUCTION_ENV_VARS = [
  'GCLOUD_PROJECT',
  'CONNECTOR_CONFIG',
  'TASKS_LOCATION',
  'TASKS_QUEUE',
  'WORKER_URL',
  'TASKS_INVOKER_SERVICE_ACCOUNT',
  'WORKER_TIME_BUDGET_S',
  'GMAIL_DELEGATED_SERVICE_ACCOUNT',
  'GMAIL_DELEGATED_CLIENT_ID',
] as const;

/** Optional production variables: left to their defaults, or set by Terraform only on the function (or in the mode) that needs them. */
export const OPTIONAL_ENV_VARS = [
  'ACTION_SHARED_SECRET',
  'WORKER_LEASE_S',
  'GMAIL_CALL_TIMEOUT_S',
  'GMAIL_BACKOFF_MS',
  'TASKS_CALL_TIMEOUT_S',
  'ACTION_RETENTION_DAYS',
  'ACTION_URL',
  'SCHEDULER_SERVICE_ACCOUNT',
  'GMAIL_VIEW_SERVICE_ACCOUNT',
  'GMAIL_VIEW_CLIENT_ID',
  'COLLECT_BUCKETS',
  'PUSH_TOPIC',
  'NOTIFY_URL',
  'PUSH_SERVICE_ACCOUNT',
  'BUILD_COMMIT',
] as const;

/** Variables that point the functions at emulators; never set in production. */
export const EMULATOR_ENV_VARS = [
  'FIRESTORE_EMULATOR_HOST',
  'CLOUD_TASKS_EMULATOR_HOST',
  'GMAIL_API_ROOT_URL',
  'OIDC_JWKS_URL',
  'IAM_CREDENTIALS_ROOT_URL',
  'OAUTH_TOKEN_URL',
  'STORAGE_EMULATOR_HOST',
] as const;

type EnvName =
  | (typeof PRODUCTION_ENV_VARS)[number]
  | (typeof OPTIONAL_ENV_VARS)[number]
  | (typeof EMULATOR_ENV_VARS)[number];

/** The environment as the functions see it; only the names above are read. */
export type Env = Partial<Record<EnvName, string>> & Record<string, string | undefined>;

const email = z.string().regex(/^[^@\s]+@[^@\s]+\.[^@\s]+$/, 'must be an email address');
const taskName = z
  .string()
  .regex(/^[A-Za-z0-9_-]{1,64}$/, 'task names use letters, digits, "_" and "-" (at most 64)');

/** The schedule of a push task that names none: the hourly Synchronize that catches what push missed. */
export const PUSH_SAFETY_NET = Object.freeze({ cron: '0 * * * *', timeZone: 'Etc/UTC' });

/** One task section of the connector configuration. */
const taskSchema = z
  .strictObject({
    /** Mailboxes to read, by address. */
    users: z.array(email).optional(),
    /** A Workspace domain whose users are listed through the Directory API. */
    domain: z.string().regex(/^[a-z0-9.-]+\.[a-z]{2,}$/i, 'must be a domain name').optional(),
    /** The administrator impersonated to list the domain's users. */
    directoryAdmin: email.optional(),
    /** A Gmail search query (`q`) that limits the messages read. */
    query: z.string().max(2048).default(''),
    /** Label ids a message must carry to be read. */
    labels: z.array(z.string().min(1)).default([]),
    /** Whether SPAM and TRASH are read too. */
    includeSpamTrash: z.boolean().default(false),
    /** Whether Insert, Update and Delete may change this task's mailboxes (they also need the write scopes granted). */
    writes: z.boolean().default(false),
    /** When Cloud Scheduler runs a Synchronize of this task. */
    schedule: z
      .strictObject({
        cron: z.string().regex(/^\S+(\s+\S+){4}$/, 'must be a five-field cron expression'),
        timeZone: z.string().min(1).default('Etc/UTC'),
      })
      .optional(),
    /** Gmail push: the task's mailboxes are watched and synchronized when they change; `schedule` (default hourly) is the safety net. */
    push: z.boolean().default(false),
  })
  .transform((t) => (t.push && !t.schedule ? { ...t, schedule: PUSH_SAFETY_NET } : t))
  .superRefine((t, ctx) => {
    const hasUsers = t.users !== undefined && t.users.length > 0;
    if (hasUsers === (t.domain !== undefined)) {
      ctx.addIssue({ code: 'custom', message: 'give either "users" (a non-empty list) or "domain", not both' });
    }
    if (t.domain !== undefined && t.directoryAdmin === undefined) {
      ctx.addIssue({ code: 'custom', path: ['directoryAdmin'], message: 'required with "domain"' });
    }
  });

const connectorSchema = z.strictObject({
  gmail: z
    .strictObject({
      /** Gmail's per-user quota; 6,000 for projects created since May 2026, 15,000 before. */
      quotaUnitsPerUserPerMinute: z.number().int().min(60).max(1_000_000).default(6000),
    })
    .default({ quotaUnitsPerUserPerMinute: 6000 }),
  tasks: z
    .record(taskName, taskSchema)
    .refine((t) => Object.keys(t).length > 0, 'configure at least one task'),
  /** Whether `action=View` reads messages (with the action function's own read-only identity). */
  view: z.boolean().default(true),
});

/** The connector configuration (docs/CONTRACT.md). */
export type ConnectorConfig = z.infer<typeof connectorSchema>;
/** One task section. */
export type TaskConfig = z.infer<typeof taskSchema>;

/** Everything the functions need, validated. */
export interface Config {
  readonly project: string;
  readonly connector: ConnectorConfig;
  readonly tasksLocation: string;
  readonly tasksQueue: string;
  /** The worker's URL: the target of every task and the audience of its OIDC token. */
  readonly workerUrl: string;
  readonly invokerServiceAccount: string;
  /** Seconds a worker runs before it hands over to a continuation task. */
  readonly workerTimeBudgetS: number;
  /** Seconds a worker's lease lasts without renewal. */
  readonly leaseS: number;
  /** Seconds one Gmail or Directory call may take before it is abandoned and retried. */
  readonly gmailCallTimeoutS: number;
  /** Seconds one Cloud Tasks call may take; reconcile's grace for a task on its way is three of them. */
  readonly tasksCallTimeoutS: number;
  /** The first backoff after a transient Gmail failure, in milliseconds; it doubles up to 60 times this (at most 30 s). */
  readonly gmailBackoffMs: number;
  /** The service account whose client id is authorised for domain-wide delegation. */
  readonly delegatedServiceAccount: string | undefined;
  /** That account's OAuth client id (its unique id), named in messages to the Workspace admin. */
  readonly delegatedClientId: string | undefined;
  /** When set, `action` requires this secret in the `X-ACI-Secret` header (or the scheduler's OIDC token). */
  readonly actionSharedSecret: string | undefined;
  /** Days an ended action and its units are kept before Firestore's TTL policy deletes them. */
  readonly actionRetentionDays: number;
  /** `action`'s own URL: the audience of the scheduler's OIDC token, checked in shared-secret mode. */
  readonly actionUrl: string | undefined;
  /** The account Cloud Scheduler calls `action` as; in shared-secret mode its OIDC token replaces the secret. */
  readonly schedulerServiceAccount: string | undefined;
  /** The read-only delegated account `action` signs claims as for a synchronous View (gmail.readonly only). */
  readonly viewServiceAccount: string | undefined;
  /** That account's OAuth client id (its unique id). */
  readonly viewClientId: string | undefined;
  readonly firestoreEmulatorHost: string | undefined;
  readonly tasksEmulatorHost: string | undefined;
  /** The Cloud Storage emulator (`host:port` or `http://host:port`); undefined for Google's. */
  readonly storageEmulatorHost: string | undefined;
  /** The buckets `FetchAction=Collect` may write to (COLLECT_BUCKETS, comma-separated); the worker is granted these only. */
  readonly collectBuckets: readonly string[];
  readonly gmailRootUrl: string | undefined;
  /** IAM Credentials' root URL for googleapis; undefined for Google's. */
  readonly iamCredentialsRootUrl: string | undefined;
  /** The OAuth 2.0 token endpoint; undefined for Google's. */
  readonly oauthTokenUrl: string | undefined;
  /** Where the worker finds the keys that sign its callers' OIDC tokens. */
  readonly oidcJwksUrl: string;
  /** The Pub/Sub topic Gmail publishes push notifications to (`projects/P/topics/T`); needed to watch mailboxes. */
  readonly pushTopic: string | undefined;
  /** `notify`'s own URL: the audience of the push subscription's OIDC token. */
  readonly notifyUrl: string | undefined;
  /** The account the push subscription's OIDC tokens are issued to. */
  readonly pushServiceAccount: string | undefined;
  /** The commit the deployment built the functions from, for GetStatus (the deployed source has no .git). */
  readonly buildCommit: string | undefined;
}

/** A configuration that cannot be used; the message names the field. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

const GOOGLE_JWKS = 'https://www.googleapis.com/oauth2/v3/certs';

function positiveInt(env: Env, name: EnvName, def: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return def;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > max) {
    throw new ConfigError(`${name} must be a whole number from 1 to ${max}, got "${raw}"`);
  }
  return n;
}

function required(env: Env, name: EnvName, def?: string): string {
  const v = env[name];
  if (v !== undefined && v !== '') return v;
  if (def !== undefined) return def;
  throw new ConfigError(`${name} is not set`);
}

function hostPort(env: Env, name: EnvName): string | undefined {
  const v = env[name];
  if (v === undefined || v === '') return undefined;
  if (!/^[A-Za-z0-9.[\]:-]+:\d{1,5}$/.test(v)) throw new ConfigError(`${name} must be host:port, got "${v}"`);
  return v;
}

/** A comma-separated list of Cloud Storage bucket names. */
function bucketList(env: Env, name: EnvName): string[] {
  const names = (env[name] ?? '').split(',').map((b) => b.trim()).filter((b) => b !== '');
  for (const b of names) {
    if (!/^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$/.test(b)) throw new ConfigError(`${name} must list bucket names, got "${b}"`);
  }
  return [...new Set(names)];
}

function url(env: Env, name: EnvName): string | undefined {
  const v = env[name];
  if (v === undefined || v === '') return undefined;
  try {
    const u = new URL(v);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error('not http');
  } catch {
    throw new ConfigError(`${name} must be an http(s) URL, got "${v}"`);
  }
  return v;
}

/** An optional service account email. */
function serviceAccount(env: Env, name: EnvName): string | undefined {
  const v = env[name];
  if (v === undefined || v === '') return undefined;
  if (!email.safeParse(v).success) throw new ConfigError(`${name} must be a service account email, got "${v}"`);
  return v;
}

/** An optional Pub/Sub topic name. */
function topic(env: Env, name: EnvName): string | undefined {
  const v = env[name];
  if (v === undefined || v === '') return undefined;
  if (!/^projects\/[a-z][a-z0-9-]{4,28}[a-z0-9]\/topics\/[A-Za-z][A-Za-z0-9._~+%-]{2,254}$/.test(v)) {
    throw new ConfigError(`${name} must be a Pub/Sub topic, projects/PROJECT/topics/TOPIC, got "${v}"`);
  }
  return v;
}

/** An optional OAuth client id: a service account's numeric unique id. */
function clientIdOf(env: Env, name: EnvName): string | undefined {
  const v = env[name];
  if (v === undefined || v === '') return undefined;
  if (!/^\d{10,30}$/.test(v)) throw new ConfigError(`${name} must be the service account's numeric client id (unique id), got "${v}"`);
  return v;
}

/** An optional build label: a commit id, or a name such as `v0.1.0-3-gabc1234`. */
function buildLabel(env: Env, name: EnvName): string | undefined {
  const v = env[name];
  if (v === undefined || v === '') return undefined;
  if (!/^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$/.test(v)) {
    throw new ConfigError(`${name} must be a commit id (at most 64 letters, digits and . _ + -), got "${v}"`);
  }
  return v;
}

/** Parses and validates the connector configuration: inline JSON (starting with `{`) or a file path. */
export function parseConnectorConfig(value: string): ConnectorConfig {
  let text = value;
  let where = 'CONNECTOR_CONFIG';
  if (!value.trimStart().startsWith('{')) {
    where = `CONNECTOR_CONFIG file ${value}`;
    try {
      text = readFileSync(value, 'utf8');
    } catch (e) {
      throw new ConfigError(`${where} cannot be read: ${errorMessage(e)}`, { cause: e });
    }
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new ConfigError(`${where} is not valid JSON: ${errorMessage(e)}`, { cause: e });
  }
  const parsed = connectorSchema.safeParse(json);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.length ? i.path.join('.') : '(top)'}: ${i.message}`);
    throw new ConfigError(`${where} is invalid: ${problems.join('; ')}`);
  }
  const lower = new Map<string, string>();
  for (const name of Object.keys(parsed.data.tasks)) {
    const other = lower.get(name.toLowerCase());
    if (other !== undefined) throw new ConfigError(`${where} is invalid: tasks.${name}: same name as ${other} (names are case-insensitive)`);
    lower.set(name.toLowerCase(), name);
  }
  return deepFreeze(parsed.data);
}

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object') {
    for (const v of Object.values(o)) deepFreeze(v);
    Object.freeze(o);
  }
  return o;
}

/** Reads and validates the whole environment once. */
export function loadConfig(env: Env): Config {
  const budget = positiveInt(env, 'WORKER_TIME_BUDGET_S', 1500, 1740);
  const secret = env.ACTION_SHARED_SECRET;
  if (secret !== undefined && secret !== '' && secret.length < 16) {
    throw new ConfigError('ACTION_SHARED_SECRET must be at least 16 characters');
  }
  const delegated = serviceAccount(env, 'GMAIL_DELEGATED_SERVICE_ACCOUNT');
  const clientId = clientIdOf(env, 'GMAIL_DELEGATED_CLIENT_ID');
  const viewAccount = serviceAccount(env, 'GMAIL_VIEW_SERVICE_ACCOUNT');
  const viewClientId = clientIdOf(env, 'GMAIL_VIEW_CLIENT_ID');
  const scheduler = serviceAccount(env, 'SCHEDULER_SERVICE_ACCOUNT');
  const actionUrl = url(env, 'ACTION_URL');
  const invoker = required(env, 'TASKS_INVOKER_SERVICE_ACCOUNT');
  if (!email.safeParse(invoker).success) {
    throw new ConfigError(`TASKS_INVOKER_SERVICE_ACCOUNT must be a service account email, got "${invoker}"`);
  }
  const workerUrl = url(env, 'WORKER_URL');
  if (workerUrl === undefined) throw new ConfigError('WORKER_URL is not set');
  return Object.freeze({
    project: required(env, 'GCLOUD_PROJECT'),
    connector: parseConnectorConfig(required(env, 'CONNECTOR_CONFIG')),
    tasksLocation: required(env, 'TASKS_LOCATION', 'us-central1'),
    tasksQueue: required(env, 'TASKS_QUEUE', 'fetch'),
    workerUrl,
    invokerServiceAccount: invoker,
    workerTimeBudgetS: budget,
    leaseS: positiveInt(env, 'WORKER_LEASE_S', 60, 600),
    gmailCallTimeoutS: positiveInt(env, 'GMAIL_CALL_TIMEOUT_S', 60, 600),
    gmailBackoffMs: positiveInt(env, 'GMAIL_BACKOFF_MS', 500, 10_000),
    tasksCallTimeoutS: positiveInt(env, 'TASKS_CALL_TIMEOUT_S', 30, 60),
    delegatedServiceAccount: delegated,
    delegatedClientId: clientId,
    actionSharedSecret: secret || undefined,
    actionRetentionDays: positiveInt(env, 'ACTION_RETENTION_DAYS', 30, 3650),
    actionUrl,
    schedulerServiceAccount: scheduler,
    viewServiceAccount: viewAccount,
    viewClientId,
    firestoreEmulatorHost: hostPort(env, 'FIRESTORE_EMULATOR_HOST'),
    tasksEmulatorHost: hostPort(env, 'CLOUD_TASKS_EMULATOR_HOST'),
    storageEmulatorHost: /^https?:\/\//.test(env.STORAGE_EMULATOR_HOST ?? '') ? url(env, 'STORAGE_EMULATOR_HOST') : hostPort(env, 'STORAGE_EMULATOR_HOST'),
    collectBuckets: bucketList(env, 'COLLECT_BUCKETS'),
    gmailRootUrl: url(env, 'GMAIL_API_ROOT_URL'),
    iamCredentialsRootUrl: url(env, 'IAM_CREDENTIALS_ROOT_URL'),
    oauthTokenUrl: url(env, 'OAUTH_TOKEN_URL'),
    oidcJwksUrl: url(env, 'OIDC_JWKS_URL') ?? GOOGLE_JWKS,
    pushTopic: topic(env, 'PUSH_TOPIC'),
    notifyUrl: url(env, 'NOTIFY_URL'),
    pushServiceAccount: serviceAccount(env, 'PUSH_SERVICE_ACCOUNT'),
    buildCommit: buildLabel(env, 'BUILD_COMMIT'),
  });
}
