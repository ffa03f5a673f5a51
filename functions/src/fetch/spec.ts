/**
 * What a fetch action is, as the rest of the code sees it: the one interface every fetch action
 * module implements (`FetchActionSpec`), what one unit's run is given (`UnitContext`) and how it
 * ends (`UnitOutcome`). Types only. The list of fetch actions is registry.ts; helpers the modules
 * share are in shared/. A module imports this file and shared/, never another module.
 */
import type { Firestore, Timestamp, WriteBatch } from '@google-cloud/firestore';
import type { Storage } from '@google-cloud/storage';
import type { gmail_v1 } from 'googleapis/build/src/apis/gmail/index.js';
import type { AciParams } from '../aci/request.js';
import type { Config, TaskConfig } from '../config.js';
import type { GmailCaller, GmailMethod } from '../gmail/caller.js';
import type { RunStanding, Selection } from '../store/mailboxes.js';
import type { ResultEntry } from '../store/results.js';
import type { UnitProgress } from '../store/units.js';

/** What a fetch action keeps from its request, stored on the action and handed to each unit. */
export type FetchParams = Record<string, string | number | boolean>;

/** What one unit's run is given. */
export interface UnitContext {
  db: Firestore;
  gmail: gmail_v1.Gmail;
  caller: GmailCaller;
  /** Cloud Storage, for actions that write there (Collect); only the worker's runs have it. */
  storage?: Storage;
  token: string;
  task: string;
  user: string;
  /** The unit's position in its action (orders results across units). */
  index: number;
  taskConfig: TaskConfig;
  params: FetchParams;
  /** The unit's committed progress; replaced in place after each commit. */
  progress: UnitProgress;
  /** True once the run must end (Stop, lost lease, time budget). */
  shouldEnd: () => boolean;
  /**
   * Where this run stands against the mailbox's other runs (only for actions that take the lock);
   * `selection`: the one a run that begins synchronizes with (store/mailboxes.ts `standing`).
   */
  begin: (epoch: number | null, selection?: Selection) => Promise<RunStanding & { begins: boolean }>;
  /** Commits `progress` and the writes of `write` in one batch, if this delivery still holds the unit. */
  commit: (progress: UnitProgress, write?: (b: WriteBatch) => void) => Promise<void>;
  /** When a record this run writes (a result) is to expire, so that it outlives its action. */
  expireWhileRunning: () => Timestamp;
}

/** How a unit's run ended (a transient failure is thrown instead). */
export type UnitOutcome =
  | { kind: 'finished'; epoch?: number; historyId?: string | null; selection?: Selection | null }
  | { kind: 'superseded'; by: string }
  | { kind: 'interrupted' }
  | { kind: 'failed'; error: string };

export interface FetchActionSpec {
  /** The canonical name (`FetchAction=` matches it case-insensitively). */
  readonly name: string;
  /** One line for errors and documentation. */
  readonly summary: string;
  /**
   * The ACI parameters `parse` reads, beyond those of every Fetch (FetchAction, TaskSections,
   * ConfigSection, Schedule, Sync, DryRun: aci/parameters.ts). A parameter a request sends that neither
   * these nor Fetch's own name is unknown for that request: answered with a warning naming it.
   * docs/CONTRACT.md §3 lists each; test/docs/contract.test.ts holds the two together.
   */
  readonly parameters: readonly string[];
  /**
   * Reads the action's own parameters (beyond FetchAction, TaskSections and Schedule), throwing
   * an ACI error that names the parameter when one is wrong. Pure: no I/O.
   */
  parse(p: AciParams, config: Config): FetchParams;
  /**
   * How the action splits into units: one per mailbox of its task sections (`mailboxes`); or,
   * for an action that may be given identifiers instead (`identifiers`), one per mailbox that
   * `namedMailboxes` returns, and its task sections' mailboxes when it returns undefined.
   */
  readonly units: 'mailboxes' | 'identifiers';
  /** The mailboxes the action's identifiers (or a push Synchronize's address) name, by task; undefined when it was given task sections. */
  namedMailboxes?(params: FetchParams): Record<string, string[]> | undefined;
  /** With `units: 'identifiers'`: the request still names its (one) task section, which its items' mailboxes belong to (Insert). */
  readonly takesSections?: boolean;
  /** Whether a unit takes its mailbox's lock, so that no other locking action runs on it at once. */
  readonly lock: boolean;
  /** Whether an action of one task section given `Schedule=true` joins a running one of that task. */
  readonly coalesces: boolean;
  /** The OAuth scopes its Gmail calls need, and the Gmail methods it calls. */
  readonly scopes: readonly string[];
  readonly methods: readonly GmailMethod[];
  /** The scopes of one action when they depend on its parameters (Delete with Permanent=true); `scopes` otherwise. */
  scopesFor?(params: FetchParams): readonly string[];
  /** Its counters, per task section, shown as `documentcount` attributes (zeros included). */
  readonly counters: readonly string[];
  /** Runs (or resumes, from its checkpoint) one unit until it ends or must stop. */
  run(ctx: UnitContext): Promise<UnitOutcome>;
  /**
   * Its results, when it has results to read with GetStatus (kept in store/results.ts): a page of
   * `<identifiers>`, or, for `tasks`, `<tasks><success>ID</success><failed message="why">ID</failed>`
   * (an entry with a `message` attribute failed).
   */
  readonly results?: 'identifiers' | 'tasks';
  /** Its results when they depend on its parameters (Synchronize has them only when given identifiers); `results` otherwise. */
  resultsFor?(params: FetchParams): 'identifiers' | 'tasks' | undefined;
  /** Its inline form (`Sync=true`, see app/inline.ts): one mailbox's results now, or `over` past `cap`. */
  readonly inline?: { cap: number; run(ctx: UnitContext, cap: number): Promise<ResultEntry[] | 'over'> };
  /**
   * Whether it takes `DryRun=true` (parsed by its own `parse`, writes.ts parseDryRun): what it
   * would change is reported and nothing is changed. Any other fetch action refuses `DryRun`
   * unless it is `false`, so that a dry run is never taken for a real one.
   */
  readonly dryRun?: boolean;
}
