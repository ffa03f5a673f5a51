/**
 * The Cloud Tasks v2 methods as resource routes, shared by the REST and gRPC front ends.
 *
 * Owns the REST routes (resource names in the path, custom methods after a colon), the name of
 * the RPC each route and HTTP method stands for, paging (page sizes, opaque page tokens), the
 * queue list filter, and `dispatchRoute`, which validates a request given as a route, an HTTP
 * method, query parameters and a proto3 JSON body, runs it on the engine and returns the
 * proto3 JSON answer. The gRPC front end turns each call into such a request.
 */
import type { TasksEngine } from './engine.js';
import { invalidArgument, notFound } from './errors.js';
import {
  QUEUE_STATES,
  parseQueueInput,
  parseTaskInput,
  parseUpdateMask,
  parseView,
  renderQueue,
  renderTask,
} from './resources.js';
import { nowMicros, parseEnum, parseInt32, readMessage } from './wire.js';

const MAX_QUEUE_PAGE = 9800;
const MAX_TASK_PAGE = 1000;

/** The Cloud Tasks v2 RPCs both front ends serve. */
export const SERVED_RPCS = [
  'ListQueues',
  'GetQueue',
  'CreateQueue',
  'UpdateQueue',
  'DeleteQueue',
  'PurgeQueue',
  'PauseQueue',
  'ResumeQueue',
  'ListTasks',
  'GetTask',
  'CreateTask',
  'DeleteTask',
  'RunTask',
] as const;
export type ServedRpc = (typeof SERVED_RPCS)[number];

// ---------------------------------------------------------------------------------------------
// Routing.

export type Route =
  | { kind: 'queues'; parent: string }
  | { kind: 'queue'; name: string; verb?: 'pause' | 'resume' | 'purge' | string }
  | { kind: 'tasks'; parent: string }
  | { kind: 'task'; name: string; verb?: 'run' | string };

// Groups: 1 location, 2 queue id, 3 queue verb, 4 "/tasks", 5 task id, 6 task verb.
const ROUTE = new RegExp(
  '^/v2/(projects/[^/:]+/locations/[^/:]+)/queues' +
    '(?:/([^/:]+)(?::([A-Za-z]+)|(/tasks)(?:/([^/:]+)(?::([A-Za-z]+))?)?)?)?$',
);

export function matchRoute(pathname: string): Route | undefined {
  const m = ROUTE.exec(pathname.replace(/%3A/gi, ':'));
  if (!m) return undefined;
  const decode = (s: string): string => {
    try {
      return decodeURIComponent(s);
    } catch {
      throw invalidArgument(`Malformed path segment "${s}"`);
    }
  };
  const location = decode(m[1] as string);
  if (m[2] === undefined) return { kind: 'queues', parent: location };
  const queue = `${location}/queues/${decode(m[2])}`;
  if (m[5] !== undefined) {
    const route: Route = { kind: 'task', name: `${queue}/tasks/${decode(m[5])}` };
    if (m[6] !== undefined) route.verb = m[6];
    return route;
  }
  if (m[4] !== undefined) return { kind: 'tasks', parent: queue };
  const route: Route = { kind: 'queue', name: queue };
  if (m[3] !== undefined) route.verb = m[3];
  return route;
}

/** A query parameter by its lowerCamelCase or snake_case name. */
export function param(query: URLSearchParams, camel: string): string | undefined {
  const snake = camel.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
  return query.get(camel) ?? query.get(snake) ?? undefined;
}

function wantsNumericEnums(query: URLSearchParams): boolean {
  return [...query.getAll('$alt'), ...query.getAll('alt')].some((v) => /enum-encoding=int/i.test(v));
}

function pageSize(query: URLSearchParams, max: number): number {
  const raw = param(query, 'pageSize');
  if (raw === undefined || raw === '') return max;
  const n = parseInt32(raw, 'page_size');
  if (n < 0) throw invalidArgument('page_size must not be negative');
  if (n > max) throw invalidArgument(`page_size must be at most ${max}`);
  return n === 0 ? max : n;
}

/** One page of `items` (sorted by `key`) after the page token's key. */
function page<T>(items: T[], key: (item: T) => string, query: URLSearchParams, max: number): { items: T[]; next?: string } {
  const size = pageSize(query, max);
  const token = param(query, 'pageToken');
  let start = 0;
  if (token) {
    let after: string;
    try {
      after = Buffer.from(token, 'base64url').toString('utf8');
    } catch {
      throw invalidArgument('Invalid page_token');
    }
    if (!after) throw invalidArgument('Invalid page_token');
    start = items.findIndex((item) => key(item) > after);
    if (start < 0) start = items.length;
  }
  const slice = items.slice(start, start + size);
  const last = slice[slice.length - 1];
  if (start + size < items.length && last !== undefined) {
    return { items: slice, next: Buffer.from(key(last), 'utf8').toString('base64url') };
  }
  return { items: slice };
}

function parseQueueFilter(filter: string | undefined): 'RUNNING' | 'PAUSED' | undefined {
  if (filter === undefined || filter.trim() === '') return undefined;
  const m = /^\s*state\s*[:=]\s*"?([A-Z_]+)"?\s*$/.exec(filter);
  if (!m) {
    throw invalidArgument(`Unsupported filter "${filter}": the emulator understands "state: RUNNING" or "state: PAUSED"`);
  }
  const state = parseEnum(m[1], QUEUE_STATES, 'filter');
  if (state !== 'RUNNING' && state !== 'PAUSED') throw invalidArgument(`Unsupported filter "${filter}"`);
  return state;
}

export function dispatchRoute(engine: TasksEngine, route: Route, method: string, query: URLSearchParams, body: unknown): unknown {
  const numeric = wantsNumericEnums(query);
  switch (route.kind) {
    case 'queues': {
      if (method === 'GET') {
        const queues = engine.listQueues(route.parent, parseQueueFilter(param(query, 'filter')));
        const p = page(queues, (q) => q.name, query, MAX_QUEUE_PAGE);
        return { queues: p.items.map((q) => renderQueue(q, numeric)), ...(p.next ? { nextPageToken: p.next } : {}) };
      }
      if (method === 'POST') return renderQueue(engine.createQueue(route.parent, parseQueueInput(body, 'queue')), numeric);
      break;
    }
    case 'queue': {
      if (route.verb !== undefined) {
        if (method !== 'POST') break;
        readMessage(body, 'request', ['name']);
        if (route.verb === 'pause') return renderQueue(engine.pauseQueue(route.name), numeric);
        if (route.verb === 'resume') return renderQueue(engine.resumeQueue(route.name), numeric);
        if (route.verb === 'purge') return renderQueue(engine.purgeQueue(route.name), numeric);
        break;
      }
      if (method === 'GET') return renderQueue(engine.getQueue(route.name), numeric);
      if (method === 'PATCH') {
        const mask = parseUpdateMask(param(query, 'updateMask') ?? param(query, 'updateMask.paths'));
        return renderQueue(engine.updateQueue(route.name, parseQueueInput(body, 'queue'), mask), numeric);
      }
      if (method === 'DELETE') {
        engine.deleteQueue(route.name);
        return {};
      }
      break;
    }
    case 'tasks': {
      if (method === 'GET') {
        const view = parseView(param(query, 'responseView'), 'response_view');
        const p = page(engine.listTasks(route.parent), (t) => t.id, query, MAX_TASK_PAGE);
        return { tasks: p.items.map((t) => renderTask(t, view, numeric)), ...(p.next ? { nextPageToken: p.next } : {}) };
      }
      if (method === 'POST') {
        const request = readMessage(body, 'request', ['parent', 'task', 'responseView']);
        if (request.task === undefined) throw invalidArgument('task is required');
        const view = parseView(request.responseView, 'response_view');
        const task = engine.createTask(route.parent, parseTaskInput(request.task, route.parent, nowMicros(), engine.minDispatchDeadlineMs));
        return renderTask(task, view, numeric);
      }
      break;
    }
    case 'task': {
      if (route.verb !== undefined) {
        if (method !== 'POST' || route.verb !== 'run') break;
        const request = readMessage(body, 'request', ['name', 'responseView']);
        return renderTask(engine.runTask(route.name), parseView(request.responseView, 'response_view'), numeric);
      }
      if (method === 'GET') {
        return renderTask(engine.getTask(route.name), parseView(param(query, 'responseView'), 'response_view'), numeric);
      }
      if (method === 'DELETE') {
        engine.deleteTask(route.name);
        return {};
      }
      break;
    }
  }
  throw notFound(`No Cloud Tasks v2 method for ${method} on this path`);
}

/** The RPC a route and HTTP method stand for, if any. */
export function rpcFor(route: Route, method: string): ServedRpc | undefined {
  switch (route.kind) {
    case 'queues':
      return method === 'GET' ? 'ListQueues' : method === 'POST' ? 'CreateQueue' : undefined;
    case 'queue':
      if (route.verb !== undefined) {
        if (method !== 'POST') return undefined;
        return route.verb === 'pause'
          ? 'PauseQueue'
          : route.verb === 'resume'
            ? 'ResumeQueue'
            : route.verb === 'purge'
              ? 'PurgeQueue'
              : undefined;
      }
      return method === 'GET' ? 'GetQueue' : method === 'PATCH' ? 'UpdateQueue' : method === 'DELETE' ? 'DeleteQueue' : undefined;
    case 'tasks':
      return method === 'GET' ? 'ListTasks' : method === 'POST' ? 'CreateTask' : undefined;
    case 'task':
      if (route.verb !== undefined) return method === 'POST' && route.verb === 'run' ? 'RunTask' : undefined;
      return method === 'GET' ? 'GetTask' : method === 'DELETE' ? 'DeleteTask' : undefined;
  }
}
