/**
 * The Queue and Task resources of Cloud Tasks v2: their names, their validated input and their
 * JSON views.
 *
 * Owns Google's defaults and bounds (rate limits, retry configuration, task names, HTTP
 * requests, dispatch deadlines, schedule times), field-mask updates of a queue, and rendering
 * as the REST API shows the resources (BASIC or FULL task view, enums as names or numbers).
 * It keeps no state: the engine holds queues and tasks.
 */
import { invalidArgument } from './errors.js';
import {
  type Micros,
  formatDuration,
  formatEnum,
  formatTimestamp,
  parseBytes,
  parseDouble,
  parseDuration,
  parseEnum,
  parseInt32,
  parseString,
  parseTimestamp,
  readMessage,
  snakeToCamel,
} from './wire.js';

// ---------------------------------------------------------------------------------------------
// Enums (the index of a name is its number in the API).

export const HTTP_METHODS = [
  'HTTP_METHOD_UNSPECIFIED',
  'POST',
  'GET',
  'HEAD',
  'PUT',
  'DELETE',
  'PATCH',
  'OPTIONS',
] as const;
export type HttpMethod = Exclude<(typeof HTTP_METHODS)[number], 'HTTP_METHOD_UNSPECIFIED'>;

export const TASK_VIEWS = ['VIEW_UNSPECIFIED', 'BASIC', 'FULL'] as const;
export type TaskView = (typeof TASK_VIEWS)[number];

export const QUEUE_STATES = ['STATE_UNSPECIFIED', 'RUNNING', 'PAUSED', 'DISABLED'] as const;
export type QueueState = 'RUNNING' | 'PAUSED';

export function parseView(value: unknown, field: string): 'BASIC' | 'FULL' {
  if (value === undefined || value === null || value === '') return 'BASIC';
  return parseEnum(value, TASK_VIEWS, field) === 'FULL' ? 'FULL' : 'BASIC';
}

// ---------------------------------------------------------------------------------------------
// Names.

const LOCATION_NAME = /^projects\/([^/]+)\/locations\/([^/]+)$/;
const QUEUE_ID = /^[A-Za-z0-9-]{1,100}$/;
const TASK_ID = /^[A-Za-z0-9_-]{1,500}$/;

/** Checks `projects/P/locations/L`. */
export function checkLocationName(name: string): void {
  if (!LOCATION_NAME.test(name)) {
    throw invalidArgument(`Invalid resource field value in the request: parent "${name}"`);
  }
}

/** Splits a queue name, `projects/P/locations/L/queues/Q`, checking the queue id. */
export function splitQueueName(name: string): { parent: string; id: string } {
  const at = name.lastIndexOf('/queues/');
  const parent = at < 0 ? '' : name.slice(0, at);
  const id = at < 0 ? '' : name.slice(at + '/queues/'.length);
  if (!LOCATION_NAME.test(parent) || !QUEUE_ID.test(id)) {
    throw invalidArgument(
      `Queue name must be "projects/PROJECT_ID/locations/LOCATION_ID/queues/QUEUE_ID" where QUEUE_ID ` +
        `has 1 to 100 letters, digits or hyphens; got "${name}"`,
    );
  }
  return { parent, id };
}

/** Splits a task name, `<queue>/tasks/T`, checking the task id. */
export function splitTaskName(name: string): { queue: string; id: string } {
  const at = name.lastIndexOf('/tasks/');
  const queue = at < 0 ? '' : name.slice(0, at);
  const id = at < 0 ? '' : name.slice(at + '/tasks/'.length);
  if (!TASK_ID.test(id)) {
    throw invalidArgument(
      `Task name must be "projects/PROJECT_ID/locations/LOCATION_ID/queues/QUEUE_ID/tasks/TASK_ID" ` +
        `where TASK_ID has 1 to 500 letters, digits, hyphens or underscores; got "${name}"`,
    );
  }
  splitQueueName(queue);
  return { queue, id };
}

// ---------------------------------------------------------------------------------------------
// Queues.

/** Google's defaults for a queue whose fields are unset. */
export const QUEUE_DEFAULTS = {
  maxDispatchesPerSecond: 500,
  maxConcurrentDispatches: 1000,
  maxAttempts: 100,
  minBackoffMs: 100,
  maxBackoffMs: 3_600_000,
  maxDoublings: 16,
  maxRetryDurationMs: 0,
} as const;

const MAX_DISPATCHES_PER_SECOND = 500;
const MAX_CONCURRENT_DISPATCHES = 5000;

export interface RateLimits {
  maxDispatchesPerSecond: number;
  /** Output only: the token bucket's size, picked from the rate. */
  maxBurstSize: number;
  maxConcurrentDispatches: number;
}

export interface RetryConfig {
  /** -1: unlimited. */
  maxAttempts: number;
  /** 0: unlimited task age. */
  maxRetryDurationMs: number;
  minBackoffMs: number;
  maxBackoffMs: number;
  maxDoublings: number;
}

export interface QueueConfig {
  rateLimits: RateLimits;
  retryConfig: RetryConfig;
  stackdriverLoggingConfig?: { samplingRatio: number };
  appEngineRoutingOverride?: Record<string, string>;
}

/** The queue fields a create or update request gave (absent = not given or default). */
export interface QueueInput {
  name?: string;
  rateLimits?: { maxDispatchesPerSecond?: number; maxConcurrentDispatches?: number };
  retryConfig?: Partial<Omit<RetryConfig, 'maxBurstSize'>>;
  stackdriverLoggingConfig?: { samplingRatio?: number };
  appEngineRoutingOverride?: Record<string, string>;
}

/** The burst size the emulator picks for a rate: 100 at the default 500/s, at least 1. */
export function burstSizeFor(maxDispatchesPerSecond: number): number {
  return Math.max(1, Math.min(100, Math.ceil(maxDispatchesPerSecond / 5)));
}

/** Reads a Queue message. Output-only fields (state, purgeTime, maxBurstSize) are ignored. */
export function parseQueueInput(json: unknown, where: string): QueueInput {
  const q = readMessage(json, where, [
    'name',
    'appEngineRoutingOverride',
    'rateLimits',
    'retryConfig',
    'state',
    'purgeTime',
    'stackdriverLoggingConfig',
  ]);
  const input: QueueInput = {};
  if (q.name !== undefined) input.name = parseString(q.name, `${where}.name`);
  if (q.rateLimits !== undefined) {
    const at = `${where}.rate_limits`;
    const r = readMessage(q.rateLimits, at, [
      'maxDispatchesPerSecond',
      'maxBurstSize',
      'maxConcurrentDispatches',
    ]);
    input.rateLimits = {};
    if (r.maxDispatchesPerSecond !== undefined) {
      input.rateLimits.maxDispatchesPerSecond = parseDouble(r.maxDispatchesPerSecond, `${at}.max_dispatches_per_second`);
    }
    if (r.maxConcurrentDispatches !== undefined) {
      input.rateLimits.maxConcurrentDispatches = parseInt32(r.maxConcurrentDispatches, `${at}.max_concurrent_dispatches`);
    }
    if (r.maxBurstSize !== undefined) parseInt32(r.maxBurstSize, `${at}.max_burst_size`);
  }
  if (q.retryConfig !== undefined) {
    const at = `${where}.retry_config`;
    const r = readMessage(q.retryConfig, at, [
      'maxAttempts',
      'maxRetryDuration',
      'minBackoff',
      'maxBackoff',
      'maxDoublings',
    ]);
    input.retryConfig = {};
    if (r.maxAttempts !== undefined) input.retryConfig.maxAttempts = parseInt32(r.maxAttempts, `${at}.max_attempts`);
    if (r.maxRetryDuration !== undefined) {
      input.retryConfig.maxRetryDurationMs = parseDuration(r.maxRetryDuration, `${at}.max_retry_duration`);
    }
    if (r.minBackoff !== undefined) input.retryConfig.minBackoffMs = parseDuration(r.minBackoff, `${at}.min_backoff`);
    if (r.maxBackoff !== undefined) input.retryConfig.maxBackoffMs = parseDuration(r.maxBackoff, `${at}.max_backoff`);
    if (r.maxDoublings !== undefined) input.retryConfig.maxDoublings = parseInt32(r.maxDoublings, `${at}.max_doublings`);
  }
  if (q.stackdriverLoggingConfig !== undefined) {
    const at = `${where}.stackdriver_logging_config`;
    const s = readMessage(q.stackdriverLoggingConfig, at, ['samplingRatio']);
    input.stackdriverLoggingConfig = {};
    if (s.samplingRatio !== undefined) {
      input.stackdriverLoggingConfig.samplingRatio = parseDouble(s.samplingRatio, `${at}.sampling_ratio`);
    }
  }
  if (q.appEngineRoutingOverride !== undefined) {
    const at = `${where}.app_engine_routing_override`;
    const a = readMessage(q.appEngineRoutingOverride, at, ['service', 'version', 'instance', 'host']);
    input.appEngineRoutingOverride = {};
    for (const [k, v] of Object.entries(a)) input.appEngineRoutingOverride[k] = parseString(v, `${at}.${k}`);
  }
  return input;
}

/** Field-mask paths a queue update may name (lowerCamelCase). */
const UPDATABLE_PATHS = new Set([
  'rateLimits',
  'rateLimits.maxDispatchesPerSecond',
  'rateLimits.maxConcurrentDispatches',
  'retryConfig',
  'retryConfig.maxAttempts',
  'retryConfig.maxRetryDuration',
  'retryConfig.minBackoff',
  'retryConfig.maxBackoff',
  'retryConfig.maxDoublings',
  'stackdriverLoggingConfig',
  'stackdriverLoggingConfig.samplingRatio',
  'appEngineRoutingOverride',
]);
const OUTPUT_ONLY_PATHS = new Set(['name', 'state', 'purgeTime', 'rateLimits.maxBurstSize']);
const ALL_TOP_LEVEL = ['rateLimits', 'retryConfig', 'stackdriverLoggingConfig', 'appEngineRoutingOverride'];

/** Reads an update mask ("a,b.c", snake_case or lowerCamelCase) into lowerCamelCase paths. */
export function parseUpdateMask(raw: string | undefined): string[] | undefined {
  if (raw === undefined || raw.trim() === '') return undefined;
  const paths = raw.split(',').map((p) => p.trim().split('.').map(snakeToCamel).join('.'));
  for (const path of paths) {
    if (OUTPUT_ONLY_PATHS.has(path)) {
      throw invalidArgument(`update_mask names "${path}", which UpdateQueue cannot change`);
    }
    if (!UPDATABLE_PATHS.has(path)) throw invalidArgument(`update_mask names an unknown field "${path}"`);
  }
  return paths;
}

/** The configuration of a queue created with nothing set. */
export function defaultQueueConfig(): QueueConfig {
  return applyQueueInput(undefined, {}, undefined);
}

/**
 * Returns `current` with the fields named by `mask` taken from `input` (a masked field absent
 * from `input` gets its default); without a mask every field is taken from `input`, as
 * UpdateQueue does with an empty mask (and CreateQueue always).
 */
export function applyQueueInput(
  current: QueueConfig | undefined,
  input: QueueInput,
  mask: string[] | undefined,
): QueueConfig {
  const paths = new Set(mask ?? ALL_TOP_LEVEL);
  const base = current ?? {
    rateLimits: { maxDispatchesPerSecond: 0, maxBurstSize: 0, maxConcurrentDispatches: 0 },
    retryConfig: { maxAttempts: 0, maxRetryDurationMs: 0, minBackoffMs: -1, maxBackoffMs: -1, maxDoublings: 0 },
  };
  const rate = { ...base.rateLimits };
  const retry = { ...base.retryConfig };
  const take = (group: string, field: string): boolean => paths.has(group) || paths.has(`${group}.${field}`);

  const r = input.rateLimits ?? {};
  if (take('rateLimits', 'maxDispatchesPerSecond')) rate.maxDispatchesPerSecond = r.maxDispatchesPerSecond ?? 0;
  if (take('rateLimits', 'maxConcurrentDispatches')) rate.maxConcurrentDispatches = r.maxConcurrentDispatches ?? 0;

  const t = input.retryConfig ?? {};
  if (take('retryConfig', 'maxAttempts')) retry.maxAttempts = t.maxAttempts ?? 0;
  if (take('retryConfig', 'maxRetryDuration')) retry.maxRetryDurationMs = t.maxRetryDurationMs ?? 0;
  if (take('retryConfig', 'minBackoff')) retry.minBackoffMs = t.minBackoffMs ?? -1;
  if (take('retryConfig', 'maxBackoff')) retry.maxBackoffMs = t.maxBackoffMs ?? -1;
  if (take('retryConfig', 'maxDoublings')) retry.maxDoublings = t.maxDoublings ?? 0;

  // Zero (proto3's "unset") picks Google's default; a negative backoff marks an unset one.
  if (rate.maxDispatchesPerSecond === 0) rate.maxDispatchesPerSecond = QUEUE_DEFAULTS.maxDispatchesPerSecond;
  if (rate.maxConcurrentDispatches === 0) rate.maxConcurrentDispatches = QUEUE_DEFAULTS.maxConcurrentDispatches;
  if (retry.maxAttempts === 0) retry.maxAttempts = QUEUE_DEFAULTS.maxAttempts;
  if (retry.maxDoublings === 0) retry.maxDoublings = QUEUE_DEFAULTS.maxDoublings;
  if (retry.minBackoffMs < 0) retry.minBackoffMs = QUEUE_DEFAULTS.minBackoffMs;
  if (retry.maxBackoffMs < 0) retry.maxBackoffMs = QUEUE_DEFAULTS.maxBackoffMs;
  validateQueueConfig(rate, retry, t);
  rate.maxBurstSize = burstSizeFor(rate.maxDispatchesPerSecond);

  const config: QueueConfig = { rateLimits: rate, retryConfig: retry };
  const logging = paths.has('stackdriverLoggingConfig') || paths.has('stackdriverLoggingConfig.samplingRatio')
    ? input.stackdriverLoggingConfig && { samplingRatio: input.stackdriverLoggingConfig.samplingRatio ?? 0 }
    : base.stackdriverLoggingConfig;
  if (logging) {
    if (logging.samplingRatio < 0 || logging.samplingRatio > 1) {
      throw invalidArgument('stackdriver_logging_config.sampling_ratio must be between 0.0 and 1.0');
    }
    config.stackdriverLoggingConfig = logging;
  }
  const routing = paths.has('appEngineRoutingOverride') ? input.appEngineRoutingOverride : base.appEngineRoutingOverride;
  if (routing) config.appEngineRoutingOverride = routing;
  return config;
}

function validateQueueConfig(rate: RateLimits, retry: RetryConfig, given: QueueInput['retryConfig'] = {}): void {
  const check = (ok: boolean, message: string): void => {
    if (!ok) throw invalidArgument(message);
  };
  const { maxDispatchesPerSecond: perSecond, maxConcurrentDispatches: concurrent } = rate;
  check(
    perSecond > 0 && perSecond <= MAX_DISPATCHES_PER_SECOND,
    `rate_limits.max_dispatches_per_second must be above 0 and at most ${MAX_DISPATCHES_PER_SECOND}; got ${perSecond}`,
  );
  check(
    concurrent >= 1 && concurrent <= MAX_CONCURRENT_DISPATCHES,
    `rate_limits.max_concurrent_dispatches must be from 1 to ${MAX_CONCURRENT_DISPATCHES}; got ${concurrent}`,
  );
  check(retry.maxAttempts >= -1, `retry_config.max_attempts must be -1 (unlimited) or positive; got ${retry.maxAttempts}`);
  check(retry.maxDoublings >= 0, `retry_config.max_doublings must not be negative; got ${retry.maxDoublings}`);
  check(retry.maxRetryDurationMs >= 0, 'retry_config.max_retry_duration must not be negative');
  check((given.minBackoffMs ?? 0) >= 0, 'retry_config.min_backoff must not be negative');
  check((given.maxBackoffMs ?? 0) >= 0, 'retry_config.max_backoff must not be negative');
  check(
    retry.minBackoffMs <= retry.maxBackoffMs,
    `retry_config.min_backoff (${formatDuration(retry.minBackoffMs)}) must not exceed ` +
      `max_backoff (${formatDuration(retry.maxBackoffMs)})`,
  );
}

/** What the engine knows of a queue, for rendering. */
export interface QueueSnapshot {
  name: string;
  config: QueueConfig;
  state: QueueState;
  purgeTime?: Micros;
}

/** A Queue as the REST API shows it (proto3 JSON: zero values left out). */
export function renderQueue(queue: QueueSnapshot, numericEnums: boolean): Record<string, unknown> {
  const { rateLimits: rate, retryConfig: retry } = queue.config;
  const retryJson: Record<string, unknown> = {
    maxAttempts: retry.maxAttempts,
    minBackoff: formatDuration(retry.minBackoffMs),
    maxBackoff: formatDuration(retry.maxBackoffMs),
    maxDoublings: retry.maxDoublings,
  };
  if (retry.maxRetryDurationMs > 0) retryJson.maxRetryDuration = formatDuration(retry.maxRetryDurationMs);
  const json: Record<string, unknown> = {
    name: queue.name,
    rateLimits: {
      maxDispatchesPerSecond: rate.maxDispatchesPerSecond,
      maxBurstSize: rate.maxBurstSize,
      maxConcurrentDispatches: rate.maxConcurrentDispatches,
    },
    retryConfig: retryJson,
    state: formatEnum(queue.state, QUEUE_STATES, numericEnums),
  };
  if (queue.purgeTime !== undefined) json.purgeTime = formatTimestamp(queue.purgeTime);
  if (queue.config.stackdriverLoggingConfig) json.stackdriverLoggingConfig = { ...queue.config.stackdriverLoggingConfig };
  if (queue.config.appEngineRoutingOverride) json.appEngineRoutingOverride = { ...queue.config.appEngineRoutingOverride };
  return json;
}

// ---------------------------------------------------------------------------------------------
// Tasks.

/** Google's default dispatch deadline for HTTP tasks, and its upper bound. */
export const DEFAULT_DISPATCH_DEADLINE_MS = 600_000;
export const MAX_DISPATCH_DEADLINE_MS = 1_800_000;
/** Google rejects deadlines under 15 s; an emulator option lowers this bound for fast tests. */
export const GOOGLE_MIN_DISPATCH_DEADLINE_MS = 15_000;
/** How far ahead a task may be scheduled. */
export const MAX_SCHEDULE_AHEAD_MS = 30 * 24 * 3600 * 1000;
/** Largest task (URL, headers and body). */
export const MAX_TASK_BYTES = 1024 * 1024;
const MAX_URL_LENGTH = 2083;

const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
// Cloud Tasks sets or ignores these itself.
const IGNORED_HEADER = /^(host|content-length|user-agent|x-google-.*|x-appengine-.*|x-cloudtasks-.*)$/i;

export interface HttpTarget {
  url: string;
  httpMethod: HttpMethod;
  headers: Record<string, string>;
  body?: Buffer;
  oidcToken?: { serviceAccountEmail: string; audience?: string };
  oauthToken?: { serviceAccountEmail: string; scope?: string };
}

export interface TaskInput {
  /** The task id, when the request named the task. */
  id?: string;
  httpRequest: HttpTarget;
  scheduleTime?: Micros;
  dispatchDeadlineMs: number;
}

/**
 * Reads the `task` of a CreateTask request made on `queueName`; a dispatch_deadline must lie
 * from `minDispatchDeadlineMs` (Google: 15 s) to 30 minutes.
 */
export function parseTaskInput(
  json: unknown,
  queueName: string,
  now: Micros,
  minDispatchDeadlineMs: number = GOOGLE_MIN_DISPATCH_DEADLINE_MS,
): TaskInput {
  const t = readMessage(json, 'task', [
    'name',
    'appEngineHttpRequest',
    'httpRequest',
    'scheduleTime',
    'createTime',
    'dispatchDeadline',
    'dispatchCount',
    'responseCount',
    'firstAttempt',
    'lastAttempt',
    'view',
  ]);
  let id: string | undefined;
  if (t.name !== undefined && t.name !== '') {
    const name = parseString(t.name, 'task.name');
    const parts = splitTaskName(name);
    if (parts.queue !== queueName) {
      throw invalidArgument(`Task name "${name}" is not in the queue of the request, "${queueName}"`);
    }
    id = parts.id;
  }
  if (t.appEngineHttpRequest !== undefined) {
    throw invalidArgument('The emulator dispatches HTTP tasks only: set task.http_request, not app_engine_http_request');
  }
  if (t.httpRequest === undefined) throw invalidArgument('task.http_request is required');
  const httpRequest = parseHttpRequest(t.httpRequest);

  let scheduleTime: Micros | undefined;
  if (t.scheduleTime !== undefined) {
    scheduleTime = parseTimestamp(t.scheduleTime, 'task.schedule_time');
    if (scheduleTime > now + MAX_SCHEDULE_AHEAD_MS * 1000) {
      throw invalidArgument('task.schedule_time must be at most 30 days in the future');
    }
  }
  let dispatchDeadlineMs = DEFAULT_DISPATCH_DEADLINE_MS;
  if (t.dispatchDeadline !== undefined) {
    dispatchDeadlineMs = parseDuration(t.dispatchDeadline, 'task.dispatch_deadline');
    if (dispatchDeadlineMs === 0) dispatchDeadlineMs = DEFAULT_DISPATCH_DEADLINE_MS;
    if (!(dispatchDeadlineMs >= minDispatchDeadlineMs && dispatchDeadlineMs <= MAX_DISPATCH_DEADLINE_MS)) {
      throw invalidArgument(
        `task.dispatch_deadline must be from ${formatDuration(minDispatchDeadlineMs)} to ` +
          `${formatDuration(MAX_DISPATCH_DEADLINE_MS)}; got ${formatDuration(dispatchDeadlineMs)}`,
      );
    }
  }
  const result: TaskInput = { httpRequest, dispatchDeadlineMs };
  if (id !== undefined) result.id = id;
  if (scheduleTime !== undefined) result.scheduleTime = scheduleTime;
  return result;
}

function parseHttpRequest(json: unknown): HttpTarget {
  const at = 'task.http_request';
  const h = readMessage(json, at, ['url', 'httpMethod', 'headers', 'body', 'oauthToken', 'oidcToken']);
  if (h.url === undefined || h.url === '') throw invalidArgument(`${at}.url is required`);
  const url = parseString(h.url, `${at}.url`);
  let parsed: URL | undefined;
  try {
    parsed = new URL(url);
  } catch {
    parsed = undefined;
  }
  if (!parsed || (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') || url.length > MAX_URL_LENGTH) {
    throw invalidArgument(
      `${at}.url must be an absolute http:// or https:// URL of at most ${MAX_URL_LENGTH} characters; got "${url}"`,
    );
  }
  const method =
    h.httpMethod === undefined ? 'HTTP_METHOD_UNSPECIFIED' : parseEnum(h.httpMethod, HTTP_METHODS, `${at}.http_method`);
  const httpMethod: HttpMethod = method === 'HTTP_METHOD_UNSPECIFIED' ? 'POST' : method;

  const headers: Record<string, string> = {};
  let size = url.length;
  if (h.headers !== undefined) {
    if (typeof h.headers !== 'object' || h.headers === null || Array.isArray(h.headers)) {
      throw invalidArgument(`Invalid value at '${at}.headers', expected a map of strings`);
    }
    for (const [name, value] of Object.entries(h.headers as Record<string, unknown>)) {
      const text = parseString(value, `${at}.headers[${name}]`);
      if (!HEADER_NAME.test(name) || /[\r\n\0]/.test(text)) {
        throw invalidArgument(`${at}.headers has an invalid header "${name}"`);
      }
      size += name.length + text.length;
      if (!IGNORED_HEADER.test(name)) headers[name] = text;
    }
  }
  const target: HttpTarget = { url, httpMethod, headers };
  if (h.body !== undefined) {
    const body = parseBytes(h.body, `${at}.body`);
    if (body.length > 0) {
      if (httpMethod !== 'POST' && httpMethod !== 'PUT' && httpMethod !== 'PATCH') {
        throw invalidArgument(`${at}.body is allowed only with http_method POST, PUT or PATCH; got ${httpMethod}`);
      }
      target.body = body;
      size += body.length;
    }
  }
  if (size > MAX_TASK_BYTES) throw invalidArgument(`Task size too large: ${size} bytes (at most ${MAX_TASK_BYTES})`);
  if (h.oidcToken !== undefined && h.oauthToken !== undefined) {
    throw invalidArgument(`${at}: set at most one of oidc_token and oauth_token`);
  }
  if (h.oidcToken !== undefined) {
    const o = readMessage(h.oidcToken, `${at}.oidc_token`, ['serviceAccountEmail', 'audience']);
    target.oidcToken = { serviceAccountEmail: requiredEmail(o.serviceAccountEmail, `${at}.oidc_token`) };
    if (o.audience !== undefined && o.audience !== '') {
      target.oidcToken.audience = parseString(o.audience, `${at}.oidc_token.audience`);
    }
  }
  if (h.oauthToken !== undefined) {
    const o = readMessage(h.oauthToken, `${at}.oauth_token`, ['serviceAccountEmail', 'scope']);
    target.oauthToken = { serviceAccountEmail: requiredEmail(o.serviceAccountEmail, `${at}.oauth_token`) };
    if (o.scope !== undefined && o.scope !== '') {
      target.oauthToken.scope = parseString(o.scope, `${at}.oauth_token.scope`);
    }
  }
  return target;
}

function requiredEmail(value: unknown, where: string): string {
  const email = value === undefined ? '' : parseString(value, `${where}.service_account_email`);
  if (!email) throw invalidArgument(`${where}.service_account_email is required`);
  return email;
}

export interface AttemptRecord {
  scheduleTime?: Micros;
  dispatchTime?: Micros;
  responseTime?: Micros;
  responseStatus?: { code: number; message: string };
}

/** What the engine knows of a task, for rendering. */
export interface TaskSnapshot {
  name: string;
  httpRequest: HttpTarget;
  scheduleTime: Micros;
  createTime: Micros;
  dispatchDeadlineMs: number;
  dispatchCount: number;
  responseCount: number;
  firstAttempt?: AttemptRecord;
  lastAttempt?: AttemptRecord;
}

function renderAttempt(a: AttemptRecord): Record<string, unknown> {
  const json: Record<string, unknown> = {};
  if (a.scheduleTime !== undefined) json.scheduleTime = formatTimestamp(a.scheduleTime);
  if (a.dispatchTime !== undefined) json.dispatchTime = formatTimestamp(a.dispatchTime);
  if (a.responseTime !== undefined) json.responseTime = formatTimestamp(a.responseTime);
  if (a.responseStatus) {
    const status: Record<string, unknown> = { message: a.responseStatus.message };
    if (a.responseStatus.code !== 0) status.code = a.responseStatus.code;
    json.responseStatus = status;
  }
  return json;
}

/** A Task as the REST API shows it; the BASIC view leaves out the body. */
export function renderTask(task: TaskSnapshot, view: 'BASIC' | 'FULL', numericEnums: boolean): Record<string, unknown> {
  const req = task.httpRequest;
  const http: Record<string, unknown> = {
    url: req.url,
    httpMethod: formatEnum(req.httpMethod, HTTP_METHODS, numericEnums),
  };
  if (Object.keys(req.headers).length > 0) http.headers = { ...req.headers };
  if (view === 'FULL' && req.body) http.body = req.body.toString('base64');
  if (req.oidcToken) http.oidcToken = { ...req.oidcToken };
  if (req.oauthToken) http.oauthToken = { ...req.oauthToken };
  const json: Record<string, unknown> = {
    name: task.name,
    httpRequest: http,
    scheduleTime: formatTimestamp(task.scheduleTime),
    createTime: formatTimestamp(task.createTime),
    dispatchDeadline: formatDuration(task.dispatchDeadlineMs),
  };
  if (task.dispatchCount) json.dispatchCount = task.dispatchCount;
  if (task.responseCount) json.responseCount = task.responseCount;
  if (task.firstAttempt) json.firstAttempt = renderAttempt(task.firstAttempt);
  if (task.lastAttempt) json.lastAttempt = renderAttempt(task.lastAttempt);
  json.view = formatEnum(view, TASK_VIEWS, numericEnums);
  return json;
}
