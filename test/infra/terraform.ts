/**
 * Static checks of the Terraform module in infra/ (and of firestore.indexes.json and
 * firestore.rules), run without a terraform binary: every .tf file is parsed to JSON with
 * @cdktf/hcl2json (HCL's own parser, compiled to WebAssembly), and each invariant is a function
 * of that JSON that returns the problems it finds, so a test can run it on a deliberately broken
 * copy and see it fail.
 *
 * How hcl2json renders HCL: blocks are arrays of objects (`resource.TYPE.NAME[0]`), literal
 * values stay JSON, and any other expression is a string `${...}`; `dynamic "x"` blocks appear as
 * `dynamic.x[i].{for_each, content}`.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };

/** One node of an HCL expression's syntax tree, as hcl2json returns it. */
export interface AstNode {
  type: string;
  meta: Record<string, unknown>;
  children: AstNode[];
}

interface Hcl2Json {
  parse(filename: string, contents: string): Promise<Record<string, unknown>>;
  getReferencesInExpression(filename: string, expression: string): Promise<{ value: string }[]>;
  getExpressionAst(filename: string, expression: string): Promise<AstNode | null>;
}

// Loaded through require: the package's type declarations pull in the DOM library, which the
// project's TypeScript configuration deliberately leaves out.
const hcl = createRequire(import.meta.url)('@cdktf/hcl2json') as Hcl2Json;

/** A Terraform module as hcl2json renders it, all files merged. */
export interface TfModule {
  resource: Record<string, Record<string, JsonObject[]>>;
  data: Record<string, Record<string, JsonObject[]>>;
  variable: Record<string, JsonObject[]>;
  output: Record<string, JsonObject[]>;
  module: Record<string, JsonObject[]>;
  check: Record<string, JsonObject[]>;
  provider: Record<string, JsonObject[]>;
  locals: JsonObject;
  terraform: JsonObject[];
}

/** A resource or data block. */
export interface Block {
  kind: 'resource' | 'data';
  type: string;
  name: string;
  address: string;
  body: JsonObject;
}

/** The names of the production, optional and emulator environment variables (functions/src/config.ts). */
export interface EnvLists {
  production: readonly string[];
  optional: readonly string[];
  emulator: readonly string[];
}

/** A connector configuration used as example data. */
export interface ExampleConfig {
  source: string;
  config: unknown;
}

/** A composite query shape (functions/src/store/queries.ts). */
export interface QueryShapeLike {
  readonly collectionGroup: string;
  readonly queryScope: string;
  readonly fields: readonly { readonly fieldPath: string; readonly order: string }[];
}

// --- parsing --------------------------------------------------------------------------------------

export function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Parses one HCL file (.tf or .tfvars) to JSON. */
export async function parseHcl(filename: string, text: string): Promise<JsonObject> {
  return (await hcl.parse(filename, text)) as JsonObject;
}

function emptyModule(): TfModule {
  return { resource: {}, data: {}, variable: {}, output: {}, module: {}, check: {}, provider: {}, locals: {}, terraform: [] };
}

/** Parses and merges the given .tf files (name → text) into one module. */
export async function parseModuleTexts(files: Record<string, string>): Promise<TfModule> {
  const merged = emptyModule();
  for (const [filename, text] of Object.entries(files)) {
    const json = await parseHcl(filename, text);
    for (const [key, value] of Object.entries(json)) {
      if (key === 'resource' || key === 'data') {
        for (const [type, byName] of Object.entries(value as Record<string, Record<string, JsonObject[]>>)) {
          const into = (merged[key][type] ??= {});
          for (const [name, blocks] of Object.entries(byName)) into[name] = [...(into[name] ?? []), ...blocks];
        }
      } else if (key === 'locals') {
        for (const block of value as JsonObject[]) Object.assign(merged.locals, block);
      } else if (key === 'terraform') {
        merged.terraform.push(...(value as JsonObject[]));
      } else if (key in merged) {
        const into = merged[key as 'variable' | 'output' | 'module' | 'check' | 'provider'];
        for (const [name, blocks] of Object.entries(value as Record<string, JsonObject[]>)) {
          into[name] = [...(into[name] ?? []), ...blocks];
        }
      } else {
        throw new Error(`${filename}: unexpected top-level block "${key}"`);
      }
    }
  }
  return merged;
}

/** Reads every .tf file of a directory. */
export function readModuleTexts(dir: string): Record<string, string> {
  const files: Record<string, string> = {};
  for (const name of readdirSync(dir).filter((f) => f.endsWith('.tf')).sort()) {
    files[name] = readFileSync(join(dir, name), 'utf8');
  }
  return files;
}

/** The example connector configurations: infra/terraform.tfvars.example and config/*.json. */
export async function loadExampleConfigs(root: string): Promise<ExampleConfig[]> {
  const examples: ExampleConfig[] = [];
  const tfvarsPath = join(root, 'infra', 'terraform.tfvars.example');
  const tfvars = await parseHcl('terraform.tfvars.example', readFileSync(tfvarsPath, 'utf8'));
  const raw = tfvars['connector_config'];
  if (raw !== undefined) {
    examples.push({ source: 'infra/terraform.tfvars.example', config: typeof raw === 'string' ? JSON.parse(raw) : raw });
  }
  let configFiles: string[] = [];
  try {
    configFiles = readdirSync(join(root, 'config')).filter((f) => f.endsWith('.json')).sort();
  } catch {
    configFiles = [];
  }
  for (const file of configFiles) {
    const config: unknown = JSON.parse(readFileSync(join(root, 'config', file), 'utf8'));
    if (isObject(config) && isObject(config['tasks'])) examples.push({ source: `config/${file}`, config });
  }
  return examples;
}

// --- navigation -----------------------------------------------------------------------------------

/** The first (normally only) object of a block list. */
export function first(value: Json | undefined): JsonObject | undefined {
  if (Array.isArray(value)) return isObject(value[0]) ? value[0] : undefined;
  return isObject(value) ? value : undefined;
}

/** Every resource block (of one type, if given). */
export function resources(m: TfModule, type?: string): Block[] {
  return blocksOf(m, 'resource', type);
}

function blocksOf(m: TfModule, kind: 'resource' | 'data', type?: string): Block[] {
  const out: Block[] = [];
  for (const [t, byName] of Object.entries(m[kind])) {
    if (type !== undefined && t !== type) continue;
    for (const [name, bodies] of Object.entries(byName)) {
      const body = bodies[0];
      if (body) out.push({ kind, type: t, name, body, address: `${kind === 'data' ? 'data.' : ''}${t}.${name}` });
    }
  }
  return out;
}

/** Follows `${local.X}` (the whole value) to the local's own value. */
export function resolve(m: TfModule, value: Json | undefined, depth = 0): Json | undefined {
  if (depth > 20 || typeof value !== 'string') return value;
  const match = /^\$\{local\.([\w-]+)\}$/.exec(value);
  if (!match?.[1] || !(match[1] in m.locals)) return value;
  return resolve(m, m.locals[match[1]], depth + 1);
}

/**
 * Substitutes, inside a string, each interpolation that is just a traversal to a known literal:
 * `${local.X}` with the local's value and `${TYPE.NAME.ATTR}` with a resource's literal attribute,
 * repeatedly. Anything else stays as written, so two expansions compare equal exactly when they
 * denote the same thing.
 */
export function expand(m: TfModule, value: Json | undefined): string {
  if (value === undefined || value === null) return '';
  let text = typeof value === 'string' ? value : JSON.stringify(value);
  for (let i = 0; i < 20; i++) {
    const next = text.replace(/\$\{([A-Za-z_][\w-]*(?:\.[\w-]+)+)\}/g, (whole, path: string) => {
      const parts = path.split('.');
      if (parts[0] === 'local' && parts.length === 2) {
        const local = m.locals[parts[1] ?? ''];
        return typeof local === 'string' || typeof local === 'number' ? String(local) : whole;
      }
      if (parts.length === 3) {
        const body = m.resource[parts[0] ?? '']?.[parts[1] ?? '']?.[0];
        const attr = body?.[parts[2] ?? ''];
        return typeof attr === 'string' || typeof attr === 'number' ? String(attr) : whole;
      }
      return whole;
    });
    if (next === text) return text;
    text = next;
  }
  return text;
}

/** The text of a value together with every local it mentions, transitively (for "does it come from" questions). */
export function closure(m: TfModule, value: Json | undefined): string {
  const seen = new Set<string>();
  const parts: string[] = [];
  const visit = (v: Json | undefined): void => {
    const text = v === undefined ? '' : typeof v === 'string' ? v : JSON.stringify(v);
    parts.push(text);
    for (const match of text.matchAll(/local\.([\w-]+)/g)) {
      const name = match[1] ?? '';
      if (!seen.has(name) && name in m.locals) {
        seen.add(name);
        visit(m.locals[name]);
      }
    }
  };
  visit(value);
  return parts.join('\n');
}

function strip(expression: string): string {
  const match = /^\$\{([\s\S]*)\}$/.exec(expression.trim());
  return match?.[1] !== undefined ? match[1] : expression;
}

// --- expressions and references -------------------------------------------------------------------

/** An expression somewhere in the module, with the names a `dynamic` block defines around it. */
export interface Expression {
  text: string;
  where: string;
  scope: readonly string[];
}

function walk(value: Json | undefined, where: string, scope: readonly string[], out: Expression[]): void {
  if (typeof value === 'string') {
    if (value.includes('${') || value.includes('%{')) out.push({ text: value, where, scope });
  } else if (Array.isArray(value)) {
    value.forEach((item, i) => walk(item, `${where}[${i}]`, scope, out));
  } else if (isObject(value)) {
    for (const [key, child] of Object.entries(value)) {
      if (key === 'dynamic' && isObject(child)) {
        for (const [label, items] of Object.entries(child)) {
          for (const item of Array.isArray(items) ? items : []) {
            if (!isObject(item)) continue;
            const iterator = typeof item['iterator'] === 'string' ? item['iterator'] : label;
            for (const [k, v] of Object.entries(item)) {
              const inner = k === 'content' ? [...scope, iterator] : scope;
              walk(v, `${where}.dynamic.${label}.${k}`, inner, out);
            }
          }
        }
      } else {
        walk(child, `${where}.${key}`, scope, out);
      }
    }
  }
}

/** Every expression of the module. Variable types (`string`, `any`) are not expressions. */
export function expressions(m: TfModule): Expression[] {
  const out: Expression[] = [];
  for (const block of [...blocksOf(m, 'resource'), ...blocksOf(m, 'data')]) walk(block.body, block.address, [], out);
  for (const [name, bodies] of Object.entries(m.variable)) {
    for (const body of bodies) {
      const rest: JsonObject = { ...body };
      delete rest['type'];
      walk(rest, `variable.${name}`, [], out);
    }
  }
  for (const [name, value] of Object.entries(m.locals)) walk(value, `local.${name}`, [], out);
  for (const kind of ['output', 'module', 'check', 'provider'] as const) {
    for (const [name, bodies] of Object.entries(m[kind])) walk(bodies, `${kind}.${name}`, [], out);
  }
  return out;
}

const referenceCache = new Map<string, Promise<string[]>>();

/** The references (`var.x`, `local.y`, `google_z.n.attr`, ...) an expression makes. */
export function referencesIn(text: string): Promise<string[]> {
  let refs = referenceCache.get(text);
  if (!refs) {
    refs = hcl.getReferencesInExpression('main.tf', text).then((list) => list.map((r) => r.value));
    referenceCache.set(text, refs);
  }
  return refs;
}

interface Reference {
  ref: string;
  where: string;
  scope: readonly string[];
}

async function allReferences(m: TfModule): Promise<Reference[]> {
  const out: Reference[] = [];
  for (const e of expressions(m)) {
    for (const ref of await referencesIn(e.text)) out.push({ ref, where: e.where, scope: e.scope });
  }
  return out;
}

const BUILTIN_ROOTS = new Set(['each', 'count', 'path', 'self', 'terraform']);

// --- invariant: variables -------------------------------------------------------------------------

/** Every `var.X` used is declared, and every declared variable is used. */
export async function checkVariables(m: TfModule): Promise<string[]> {
  const problems: string[] = [];
  const used = new Set<string>();
  for (const { ref, where } of await allReferences(m)) {
    const [root, name] = ref.split('.');
    if (root !== 'var' || name === undefined) continue;
    used.add(name);
    if (!(name in m.variable)) problems.push(`var.${name} is used in ${where} but not declared`);
  }
  for (const name of Object.keys(m.variable)) {
    if (!used.has(name)) problems.push(`variable "${name}" is declared but never used`);
  }
  return [...new Set(problems)];
}

// --- invariant: references ------------------------------------------------------------------------

/** Every resource, data source, local and module reference names something the module defines. */
export async function checkReferences(m: TfModule): Promise<string[]> {
  const problems: string[] = [];
  for (const { ref, where, scope } of await allReferences(m)) {
    const [root = '', a, b] = ref.split('.');
    if (root === 'var' || BUILTIN_ROOTS.has(root) || scope.includes(root)) continue;
    if (root in m.provider && where.endsWith('.provider')) {
      // `provider = google.alias`: a provider block with that alias must exist.
      if (!(m.provider[root] ?? []).some((p) => p['alias'] === a)) problems.push(`${ref} (in ${where}) names no provider alias`);
      continue;
    }
    let ok: boolean;
    let target: JsonObject | undefined;
    let next: string | undefined;
    if (root === 'local') ok = a !== undefined && a in m.locals;
    else if (root === 'module') ok = a !== undefined && a in m.module;
    else if (root === 'data') {
      target = a !== undefined && b !== undefined ? m.data[a]?.[b]?.[0] : undefined;
      next = ref.split('.')[3];
      ok = target !== undefined;
    } else {
      target = a !== undefined ? m.resource[root]?.[a]?.[0] : undefined;
      next = b;
      ok = target !== undefined;
    }
    if (!ok) {
      problems.push(`${ref} (in ${where}) does not resolve`);
    } else if (target && next !== undefined) {
      // A resource with count or for_each is a list or map of instances: an attribute needs an
      // index first, and a single resource has no index.
      const multiple = target['count'] !== undefined || target['for_each'] !== undefined;
      const indexed = /^(\d+|".*")$/.test(next);
      if (multiple && !indexed) problems.push(`${ref} (in ${where}) needs an instance index: the resource has count or for_each`);
      if (!multiple && indexed) problems.push(`${ref} (in ${where}) indexes a resource that has neither count nor for_each`);
    }
  }
  return [...new Set(problems)];
}

// --- functions, accounts and invoker grants -------------------------------------------------------

/** The functions by entry point ("action", "worker"). */
export function functionsByEntryPoint(m: TfModule): Map<string, Block> {
  const out = new Map<string, Block>();
  for (const fn of resources(m, 'google_cloudfunctions2_function')) {
    const entry = expand(m, first(fn.body['build_config'])?.['entry_point']);
    if (entry) out.set(entry, fn);
  }
  return out;
}

/** A function's plain environment: the variables always set, and those set only when a bool variable is true. */
export interface FunctionEnv {
  always: JsonObject;
  /** Variable name → the variables added when it is true. */
  gated: Map<string, JsonObject>;
}

/** Splits the arguments of a call's text at its top-level commas. */
function splitArgs(text: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let quoted = false;
  let current = '';
  for (let i = 0; i < text.length; i++) {
    const c = text[i] ?? '';
    if (c === '"' && text[i - 1] !== '\\') quoted = !quoted;
    if (!quoted) {
      if ('([{'.includes(c)) depth++;
      if (')]}'.includes(c)) depth--;
      if (c === ',' && depth === 0) {
        out.push(current.trim());
        current = '';
        continue;
      }
    }
    current += c;
  }
  if (current.trim()) out.push(current.trim());
  return out;
}

/**
 * Reads an environment map: a literal map, `local.X`, or `merge(...)` of those and of
 * `var.V ? local.X : {}` (added when V is true). Anything else is undefined: the checks cannot
 * read it, and say so.
 */
export function readEnv(m: TfModule, value: Json | undefined, depth = 0): FunctionEnv | undefined {
  if (depth > 10) return undefined;
  const resolved = resolve(m, value);
  if (isObject(resolved)) return { always: resolved, gated: new Map() };
  if (typeof resolved !== 'string') return undefined;
  const call = /^\$\{merge\(([\s\S]*)\)\}$/.exec(resolved.trim())?.[1];
  if (call === undefined) return undefined;
  const env: FunctionEnv = { always: {}, gated: new Map() };
  for (const arg of splitArgs(call)) {
    if (arg === '{}') continue;
    const local = /^local\.([\w-]+)$/.exec(arg)?.[1];
    if (local !== undefined) {
      const inner = readEnv(m, `\${local.${local}}`, depth + 1);
      if (!inner) return undefined;
      Object.assign(env.always, inner.always);
      for (const [k, v] of inner.gated) env.gated.set(k, { ...(env.gated.get(k) ?? {}), ...v });
      continue;
    }
    const gated = /^var\.([\w-]+)\s*\?\s*local\.([\w-]+)\s*:\s*\{\}$/.exec(arg);
    if (gated?.[1] !== undefined && gated[2] !== undefined) {
      const inner = m.locals[gated[2]];
      if (!isObject(inner)) return undefined;
      env.gated.set(gated[1], { ...(env.gated.get(gated[1]) ?? {}), ...inner });
      continue;
    }
    return undefined;
  }
  return env;
}

export function functionEnv(m: TfModule, fn: Block): FunctionEnv | undefined {
  return readEnv(m, first(fn.body['service_config'])?.['environment_variables']);
}

/** Every plain variable a function may get (always, or when some variable is true). */
function envOf(m: TfModule, fn: Block): JsonObject | undefined {
  const env = functionEnv(m, fn);
  if (!env) return undefined;
  const all: JsonObject = { ...env.always };
  for (const extra of env.gated.values()) Object.assign(all, extra);
  return all;
}

/** `${google_service_account.X.email|member|name|id}` (or serviceAccount:${...email}) → X. */
export function serviceAccountOf(text: string): string | undefined {
  const match = /^(?:serviceAccount:)?\$\{(?:one\()?google_service_account\.([\w-]+)(?:\[(?:\d+|\*)\])?\.(?:email|member|name|id)\)?\}$/.exec(text.trim());
  return match?.[1];
}

const INVOKER_TARGET: Record<string, string> = {
  google_cloud_run_service_iam_member: 'service',
  google_cloud_run_v2_service_iam_member: 'name',
  google_cloudfunctions2_function_iam_member: 'cloud_function',
};

/** A grant of the invoker role on one of the functions. */
export interface InvokerGrant {
  block: Block;
  /** The function resource's name in the module ("action", "worker"), when the target is one. */
  target: string | undefined;
  member: string;
  /** The google_service_account the member is, if it is one. */
  account: string | undefined;
}

export function invokerGrants(m: TfModule): InvokerGrant[] {
  const out: InvokerGrant[] = [];
  const fns = resources(m, 'google_cloudfunctions2_function');
  for (const [type, attr] of Object.entries(INVOKER_TARGET)) {
    for (const block of resources(m, type)) {
      const role = expand(m, block.body['role']);
      if (role !== 'roles/run.invoker' && role !== 'roles/cloudfunctions.invoker') continue;
      const targetText = expand(m, block.body[attr]);
      const byRef = /^\$\{google_cloudfunctions2_function\.([\w-]+)\.(?:name|id)\}$/.exec(targetText)?.[1];
      const byName = fns.find((fn) => expand(m, fn.body['name']) === targetText)?.name;
      const member = expand(m, block.body['member']);
      out.push({ block, target: byRef ?? byName, member, account: serviceAccountOf(member) });
    }
  }
  return out;
}

function fnRef(fn: Block): string {
  return `google_cloudfunctions2_function.${fn.name}`;
}

// --- invariant: the queue, the worker and the invoker account -------------------------------------

/**
 * The tasks' target and identity are the worker and the invoker account: both functions' WORKER_URL
 * denotes the worker; the queue is the TASKS_QUEUE in TASKS_LOCATION; a queue-level http target,
 * if any, routes to that URL with an OIDC token of TASKS_INVOKER_SERVICE_ACCOUNT for that
 * audience; that account has run.invoker on the worker and not on action; and each function's
 * account may act as it (createTask with its OIDC token).
 */
export async function checkTaskWiring(m: TfModule): Promise<string[]> {
  const problems: string[] = [];
  const fns = functionsByEntryPoint(m);
  const action = fns.get('action');
  const worker = fns.get('worker');
  if (!action || !worker) return ['the module must define functions with entry points "action" and "worker"'];
  const workerName = expand(m, worker.body['name']);

  const urls = new Set<string>();
  const invokers = new Set<string>();
  const queues = new Set<string>();
  const locations = new Set<string>();
  for (const fn of [action, worker]) {
    const env = envOf(m, fn);
    if (!env) {
      problems.push(`${fn.address}: environment_variables is not a map the checks can read`);
      continue;
    }
    const url = expand(m, env['WORKER_URL']);
    urls.add(url);
    if (!url.startsWith('https://')) problems.push(`${fn.address}: WORKER_URL must be an https URL, got ${url}`);
    const selfRef = url.includes(`${fnRef(worker)}.`);
    if (!url.includes(workerName) && !(selfRef && fn !== worker)) {
      problems.push(`${fn.address}: WORKER_URL ${url} does not denote the worker (${workerName})`);
    }
    if (selfRef && fn === worker) problems.push(`${fn.address}: WORKER_URL refers to the worker resource itself (a cycle)`);
    invokers.add(expand(m, env['TASKS_INVOKER_SERVICE_ACCOUNT']));
    queues.add(expand(m, env['TASKS_QUEUE']));
    locations.add(expand(m, env['TASKS_LOCATION']));
  }
  if (urls.size > 1) problems.push(`action and worker disagree on WORKER_URL: ${[...urls].join(' vs ')}`);
  if (invokers.size > 1) problems.push(`action and worker disagree on TASKS_INVOKER_SERVICE_ACCOUNT: ${[...invokers].join(' vs ')}`);
  const workerUrl = [...urls][0] ?? '';
  const invokerText = [...invokers][0] ?? '';

  const queueBlocks = resources(m, 'google_cloud_tasks_queue');
  if (queueBlocks.length !== 1) problems.push(`expected one google_cloud_tasks_queue, found ${queueBlocks.length}`);
  const queue = queueBlocks[0];
  if (queue) {
    const name = expand(m, queue.body['name']);
    if (name !== 'fetch') problems.push(`${queue.address}: the queue must be named "fetch", got ${name}`);
    for (const q of queues) if (q !== name) problems.push(`TASKS_QUEUE (${q}) is not the queue's name (${name})`);
    const location = expand(m, queue.body['location']);
    for (const l of locations) if (l !== location) problems.push(`TASKS_LOCATION (${l}) is not the queue's location (${location})`);

    const target = first(queue.body['http_target']);
    if (target) {
      const override = first(target['uri_override']);
      if (override) {
        const host = expand(m, override['host']);
        const scheme = expand(m, override['scheme']) || 'HTTPS';
        const path = expand(m, first(override['path_override'])?.['path']);
        const routed = `${scheme.toLowerCase()}://${host}${path}`;
        if (workerUrl !== routed && !workerUrl.startsWith(`${routed}/`)) {
          problems.push(`${queue.address}: http_target routes tasks to ${routed}, not to WORKER_URL ${workerUrl}`);
        }
      }
      if (target['oauth_token'] !== undefined) problems.push(`${queue.address}: tasks to the worker need an OIDC token, not an OAuth token`);
      const oidc = first(target['oidc_token']);
      if (oidc) {
        const email = expand(m, oidc['service_account_email']);
        if (email !== invokerText) problems.push(`${queue.address}: the queue's OIDC account ${email} is not TASKS_INVOKER_SERVICE_ACCOUNT ${invokerText}`);
        const audience = expand(m, oidc['audience']);
        if (audience !== workerUrl) problems.push(`${queue.address}: the queue's OIDC audience ${audience} is not WORKER_URL ${workerUrl}`);
      }
    }
  }

  const invoker = serviceAccountOf(invokerText);
  if (!invoker) {
    problems.push(`TASKS_INVOKER_SERVICE_ACCOUNT (${invokerText}) is not a google_service_account of the module`);
    return problems;
  }
  const grants = invokerGrants(m);
  if (!grants.some((g) => g.target === worker.name && g.account === invoker)) {
    problems.push(`google_service_account.${invoker} (TASKS_INVOKER_SERVICE_ACCOUNT) has no run.invoker grant on the worker`);
  }
  for (const g of grants.filter((g) => g.target === action.name && g.account === invoker)) {
    problems.push(`${g.block.address}: the tasks invoker account may invoke the worker only, not action`);
  }

  // Both functions create tasks carrying the invoker account's OIDC token: each function's account
  // needs iam.serviceAccounts.actAs on that account.
  for (const fn of [action, worker]) {
    const account = serviceAccountOf(expand(m, first(fn.body['service_config'])?.['service_account_email']));
    if (!account) {
      problems.push(`${fn.address}: service_account_email is not a google_service_account of the module`);
      continue;
    }
    const actsAs = resources(m, 'google_service_account_iam_member').some(
      (b) =>
        serviceAccountOf(expand(m, b.body['service_account_id'])) === invoker &&
        (permissionsOf(m, expand(m, b.body['role'])) ?? []).includes('iam.serviceAccounts.actAs') &&
        serviceAccountOf(expand(m, b.body['member'])) === account,
    );
    if (!actsAs) {
      problems.push(`${fn.address}'s account (google_service_account.${account}) needs iam.serviceAccounts.actAs on google_service_account.${invoker} to create tasks with its OIDC token`);
    }
  }
  return problems;
}

// --- invariant: nothing public but the opt-in -----------------------------------------------------

async function varsIn(text: Json | undefined): Promise<string[]> {
  if (typeof text !== 'string' || !text.includes('${')) return [];
  return (await referencesIn(text)).filter((r) => r.startsWith('var.')).map((r) => r.split('.')[1] ?? '');
}

/** The opt-in variable: the one that gates action's secret environment variable. */
export async function optInVariable(m: TfModule): Promise<string | undefined> {
  const action = functionsByEntryPoint(m).get('action');
  const dyn = first(action?.body['service_config'])?.['dynamic'];
  const items = isObject(dyn) ? dyn['secret_environment_variables'] : undefined;
  for (const item of Array.isArray(items) ? items : []) {
    if (!isObject(item)) continue;
    const [name] = await varsIn(item['for_each']);
    if (name !== undefined) return name;
  }
  return undefined;
}

function isOffByDefault(m: TfModule, name: string): boolean {
  const variable = m.variable[name]?.[0];
  return variable !== undefined && variable['default'] === false && expand(m, variable['type']) === '${bool}';
}

const PUBLIC = /\b(allUsers|allAuthenticatedUsers)\b/;

/**
 * No IAM grant in the module names allUsers or allAuthenticatedUsers, except run.invoker for
 * allUsers on action, counted only when the opt-in variable (the one that also gives action its
 * ACTION_SHARED_SECRET) is true; and every member that comes from a variable is a variable whose
 * validation rejects both.
 */
export async function checkPublicAccess(m: TfModule): Promise<string[]> {
  const problems: string[] = [];
  const action = functionsByEntryPoint(m).get('action');
  const optIn = await optInVariable(m);
  const iamBlocks = [...blocksOf(m, 'resource'), ...blocksOf(m, 'data')].filter(
    (b) => /_iam_(member|binding|policy)$/.test(b.type) || b.type === 'google_iam_policy',
  );
  const grants = invokerGrants(m);
  for (const block of iamBlocks) {
    const text = JSON.stringify(block.body);
    if (PUBLIC.test(text)) {
      const grant = grants.find((g) => g.block.address === block.address);
      const gated = optIn !== undefined && (await varsIn(block.body['count'])).includes(optIn);
      const allowed =
        grant !== undefined &&
        action !== undefined &&
        grant.target === action.name &&
        grant.member === 'allUsers' &&
        block.body['for_each'] === undefined &&
        gated &&
        optIn !== undefined &&
        isOffByDefault(m, optIn);
      if (!allowed) {
        problems.push(
          `${block.address} grants ${PUBLIC.exec(text)?.[1]}: only run.invoker for allUsers on action, counted on the opt-in variable${optIn ? ` var.${optIn}` : ''} (off by default), is allowed`,
        );
      }
    }
    const memberVars = [
      ...(await varsIn(block.body['member'])),
      ...(await varsIn(block.body['members'])),
      ...(typeof block.body['member'] === 'string' && block.body['member'].includes('each.') ? await varsIn(block.body['for_each']) : []),
    ];
    for (const name of new Set(memberVars)) {
      const validations = (m.variable[name]?.[0]?.['validation'] ?? []) as Json[];
      const guarded = validations.some((v) => {
        const condition = JSON.stringify(isObject(v) ? v['condition'] : '');
        return condition.includes('allUsers') && condition.includes('allAuthenticatedUsers');
      });
      if (!guarded) problems.push(`${block.address} takes members from var.${name}, whose validation does not reject allUsers and allAuthenticatedUsers`);
    }
  }
  return problems;
}

// --- invariant: the functions' environment --------------------------------------------------------

/** Each function's plain environment variables: always set, and set only when a bool variable is true. */
export type EnvMatrix = Readonly<Record<string, { always: readonly string[]; gated?: Readonly<Record<string, readonly string[]>> }>>;

/**
 * The plain environment variables of each function are exactly the matrix's (always, and under
 * each gate exactly the gated ones); every name is one the functions read (PRODUCTION_ENV_VARS or
 * OPTIONAL_ENV_VARS), and every production variable is set on some function; the only secret
 * environment variable is ACTION_SHARED_SECRET, on action, inside a dynamic block gated by an
 * off-by-default bool variable; no emulator variable is set anywhere (runtime or build
 * environment).
 */
export async function checkFunctionEnvironment(m: TfModule, lists: EnvLists, matrix: EnvMatrix): Promise<string[]> {
  const problems: string[] = [];
  const fns = resources(m, 'google_cloudfunctions2_function');
  if (fns.length === 0) return ['no google_cloudfunctions2_function in the module'];
  const known = new Set([...lists.production, ...lists.optional]);
  for (const [entry, spec] of Object.entries(matrix)) {
    for (const name of [...spec.always, ...Object.values(spec.gated ?? {}).flat()]) {
      if (!known.has(name)) problems.push(`the environment matrix gives ${entry} ${name}, which is not a variable the functions read (config.ts)`);
    }
  }
  const setSomewhere = new Set(Object.values(matrix).flatMap((spec) => [...spec.always, ...Object.values(spec.gated ?? {}).flat()]));
  for (const name of lists.production) if (!setSomewhere.has(name)) problems.push(`production variable ${name} is set on no function in the environment matrix`);
  for (const fn of fns) {
    const service = first(fn.body['service_config']);
    const entry = expand(m, first(fn.body['build_config'])?.['entry_point']);
    const env = functionEnv(m, fn);
    if (!env) {
      problems.push(`${fn.address}: environment_variables is not a map (or merge of maps) the checks can read`);
      continue;
    }
    const spec = matrix[entry];
    if (!spec) {
      problems.push(`${fn.address}: entry point ${entry} is not in the environment matrix`);
      continue;
    }
    const compare = (what: string, actual: string[], wanted: readonly string[]): void => {
      for (const name of wanted) if (!actual.includes(name)) problems.push(`${fn.address}: ${name} is not set${what}`);
      for (const name of actual) {
        if (lists.emulator.includes(name)) problems.push(`${fn.address}: emulator variable ${name} is set`);
        else if (!known.has(name)) problems.push(`${fn.address}: ${name} is not a variable the functions read`);
        else if (!wanted.includes(name)) problems.push(`${fn.address}: ${name} is set${what}, but the environment matrix does not give it to ${entry}${name === 'ACTION_SHARED_SECRET' ? ' (the secret comes from Secret Manager only)' : ''}`);
      }
    };
    compare('', Object.keys(env.always), spec.always);
    const gates = new Set([...env.gated.keys(), ...Object.keys(spec.gated ?? {})]);
    for (const gate of gates) compare(` when var.${gate}`, Object.keys(env.gated.get(gate) ?? {}), spec.gated?.[gate] ?? []);
    const buildEnv = resolve(m, first(fn.body['build_config'])?.['environment_variables']);
    for (const name of isObject(buildEnv) ? Object.keys(buildEnv) : []) {
      if (lists.emulator.includes(name)) problems.push(`${fn.address}: emulator variable ${name} is set in the build environment`);
    }
    if (service?.['secret_environment_variables'] !== undefined) {
      problems.push(`${fn.address}: secret_environment_variables must be a dynamic block gated by the opt-in variable`);
    }
    const dyn = service?.['dynamic'];
    const items = isObject(dyn) ? dyn['secret_environment_variables'] : undefined;
    for (const item of Array.isArray(items) ? items : []) {
      if (!isObject(item)) continue;
      const key = expand(m, first(item['content'])?.['key']);
      if (key !== 'ACTION_SHARED_SECRET') problems.push(`${fn.address}: secret variable ${key} is not ACTION_SHARED_SECRET`);
      if (lists.emulator.includes(key)) problems.push(`${fn.address}: emulator variable ${key} is set from a secret`);
      if (entry !== 'action') problems.push(`${fn.address}: only action takes ACTION_SHARED_SECRET`);
      const gatesOf = await varsIn(item['for_each']);
      if (!gatesOf.some((g) => isOffByDefault(m, g))) {
        problems.push(`${fn.address}: the secret variable ${key} is not gated by an off-by-default bool variable`);
      }
    }
  }
  return problems;
}

// --- invariant: function settings -----------------------------------------------------------------

function evalNumber(m: TfModule, value: Json | undefined, depth = 0): number | undefined {
  if (depth > 10) return undefined;
  if (typeof value === 'number') return value;
  if (typeof value !== 'string') return undefined;
  if (/^\d+$/.test(value)) return Number(value);
  const local = /^\$\{(?:tostring\()?local\.([\w-]+)\)?\}$/.exec(value)?.[1];
  if (local !== undefined) return evalNumber(m, m.locals[local], depth + 1);
  const literal = /^\$\{tostring\((\d+)\)\}$/.exec(value)?.[1];
  return literal !== undefined ? Number(literal) : undefined;
}

/**
 * Both functions run nodejs22 from the same source object; the worker's timeout is 1800 s (the
 * tasks' dispatch deadline) and WORKER_TIME_BUDGET_S is below it.
 */
export async function checkFunctionSettings(m: TfModule): Promise<string[]> {
  const problems: string[] = [];
  const fns = functionsByEntryPoint(m);
  const sources = new Set<string>();
  for (const [entry, fn] of fns) {
    const build = first(fn.body['build_config']);
    const runtime = expand(m, build?.['runtime']);
    if (runtime !== 'nodejs22') problems.push(`${fn.address} (${entry}): runtime ${runtime}, expected nodejs22`);
    sources.add(JSON.stringify(first(first(build?.['source'])?.['storage_source']) ?? null));
  }
  if (sources.size > 1) problems.push('action and worker are built from different source objects');
  const worker = fns.get('worker');
  if (!worker) return [...problems, 'no worker function'];
  const timeout = evalNumber(m, first(worker.body['service_config'])?.['timeout_seconds']);
  if (timeout !== 1800) problems.push(`${worker.address}: timeout_seconds is ${timeout}, expected 1800 (the tasks' dispatch deadline)`);
  const env = envOf(m, worker);
  const budget = evalNumber(m, env?.['WORKER_TIME_BUDGET_S']);
  if (budget === undefined || timeout === undefined || budget >= timeout) {
    problems.push(`${worker.address}: WORKER_TIME_BUDGET_S (${budget}) must be below the timeout (${timeout})`);
  }
  return problems;
}

// --- invariant: scheduled tasks -------------------------------------------------------------------

/** An evaluation error Terraform's try() and can() catch (a missing attribute, say). */
class EvalError extends Error {}
/** An expression this evaluator does not handle: reported, never guessed. */
class Unsupported extends Error {}

function literal(node: AstNode): unknown {
  const type = node.meta['type'];
  const value = String(node.meta['value']);
  if (type === 'bool') return value === 'true';
  if (type === 'number') return Number(value);
  if (type === 'string') return value;
  if (value === 'null') return null;
  throw new Unsupported(`literal ${value}`);
}

function deepEqual(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** Evaluates the small part of HCL a for-expression filter uses, on one task's data. */
export function evaluate(node: AstNode, names: ReadonlyMap<string, unknown>): unknown {
  const [c0, c1, c2] = node.children;
  switch (node.type) {
    case 'literalValue':
      return literal(node);
    case 'template':
      if (node.children.length === 1 && c0?.type === 'literalValue') return literal(c0);
      throw new Unsupported(String(node.meta['value']));
    case 'scopeTraversal': {
      const parts = (node.meta['traversal'] ?? []) as { type: string; segment: string }[];
      const [root, ...rest] = parts;
      if (!root || !names.has(root.segment)) throw new Unsupported(`unknown name ${String(node.meta['value'])}`);
      let current: unknown = names.get(root.segment);
      for (const part of rest) {
        const key = part.type === 'indexTraversal' ? String(JSON.parse(part.segment)) : part.segment;
        if (!isObject(current) || !(key in current)) throw new EvalError(`no attribute ${key}`);
        current = current[key];
      }
      return current;
    }
    case 'binaryOp': {
      if (!c0 || !c1) throw new Unsupported('binary operator without operands');
      const op = node.meta['operator'];
      if (op === 'logicalAnd') return evaluate(c0, names) === true && evaluate(c1, names) === true;
      if (op === 'logicalOr') return evaluate(c0, names) === true || evaluate(c1, names) === true;
      if (op === 'equal') return deepEqual(evaluate(c0, names), evaluate(c1, names));
      if (op === 'notEqual') return !deepEqual(evaluate(c0, names), evaluate(c1, names));
      throw new Unsupported(`operator ${String(op)}`);
    }
    case 'unaryOp':
      if (node.meta['operator'] === 'logicalNot' && c0) return evaluate(c0, names) !== true;
      throw new Unsupported(`operator ${String(node.meta['operator'])}`);
    case 'conditional':
      if (!c0 || !c1 || !c2) throw new Unsupported('conditional');
      return evaluate(c0, names) === true ? evaluate(c1, names) : evaluate(c2, names);
    case 'function': {
      const name = node.meta['name'];
      if (name === 'try') {
        for (const child of node.children) {
          try {
            return evaluate(child, names);
          } catch (e) {
            if (!(e instanceof EvalError)) throw e;
          }
        }
        throw new EvalError('no argument of try() succeeded');
      }
      if (name === 'can') {
        if (!c0) throw new Unsupported('can()');
        try {
          evaluate(c0, names);
          return true;
        } catch (e) {
          if (e instanceof EvalError) return false;
          throw e;
        }
      }
      if (name === 'lookup' && c0 && c1) {
        const object = evaluate(c0, names);
        const key = String(evaluate(c1, names));
        if (isObject(object) && key in object) return object[key];
        if (c2) return evaluate(c2, names);
        throw new EvalError(`no key ${key}`);
      }
      throw new Unsupported(`function ${String(name)}()`);
    }
    default:
      throw new Unsupported(`${node.type} ${String(node.meta['value'])}`);
  }
}

async function ast(expression: string): Promise<AstNode | null> {
  try {
    return await hcl.getExpressionAst('main.tf', expression);
  } catch {
    return null;
  }
}

/**
 * One Cloud Scheduler job resource iterates over the configured tasks, filtered on their
 * "schedule": the filter, evaluated on every example configuration, selects exactly the tasks that
 * have a schedule. Each job runs the task's cron in its time zone, calls action with
 * GET ?action=Fetch&FetchAction=Synchronize&TaskSections=<task>&Schedule=true, with an OIDC token
 * of an account that may invoke action and not the worker.
 */
export async function checkScheduledTasks(m: TfModule, examples: readonly ExampleConfig[]): Promise<string[]> {
  const problems: string[] = [];
  const jobs = resources(m, 'google_cloud_scheduler_job').filter((b) => b.body['for_each'] !== undefined);
  if (jobs.length !== 1) return [`expected one google_cloud_scheduler_job with for_each over the tasks, found ${jobs.length}`];
  const job = jobs[0] as Block;

  const forEach = resolve(m, job.body['for_each']);
  const tree = typeof forEach === 'string' ? await ast(strip(forEach)) : null;
  if (!tree || tree.type !== 'for') return [`${job.address}: for_each is not a for-expression over the tasks`];
  const meta = tree.meta as Record<string, string | boolean>;
  const keyVar = String(meta['keyVar']);
  const valVar = String(meta['valVar']);
  if (meta['keyExpression'] !== keyVar || meta['valueExpression'] !== valVar || meta['groupedValue'] === true) {
    problems.push(`${job.address}: for_each must map each task name to its task (${keyVar} => ${valVar})`);
  }
  const collection = String(meta['collectionExpression']);
  let expanded = collection;
  for (let i = 0; i < 10; i++) {
    const local = /^local\.([\w-]+)$/.exec(expanded)?.[1];
    const value = local !== undefined ? m.locals[local] : undefined;
    if (typeof value !== 'string') break;
    expanded = strip(value);
  }
  if (!expanded.endsWith('.tasks') || !closure(m, `\${${collection}}`).includes('var.connector_config')) {
    problems.push(`${job.address}: for_each iterates over ${collection}, not over the tasks of var.connector_config`);
  }

  const conditionText = String(meta['conditionalExpression'] ?? '');
  const condition = conditionText ? await ast(conditionText) : null;
  if (conditionText && !condition) problems.push(`${job.address}: cannot parse the filter ${conditionText}`);
  let scheduledSeen = 0;
  for (const example of examples) {
    const tasks = isObject(example.config) ? example.config['tasks'] : undefined;
    if (!isObject(tasks)) {
      problems.push(`${example.source}: no tasks`);
      continue;
    }
    for (const [name, task] of Object.entries(tasks)) {
      const expected = isObject(task) && isObject(task['schedule']);
      if (expected) scheduledSeen++;
      let selected = true;
      if (condition) {
        try {
          selected = evaluate(condition, new Map<string, unknown>([[keyVar, name], [valVar, task]])) === true;
        } catch (e) {
          problems.push(`${job.address}: cannot evaluate the filter ${conditionText} on ${example.source} task ${name}: ${(e as Error).message}`);
          continue;
        }
      }
      if (expected && !selected) problems.push(`${example.source}: task ${name} has a schedule but gets no scheduler job`);
      if (!expected && selected) problems.push(`${example.source}: task ${name} has no schedule but gets a scheduler job`);
      if (expected && isObject(task) && isObject(task['schedule']) && typeof task['schedule']['cron'] !== 'string') {
        problems.push(`${example.source}: task ${name}'s schedule has no cron`);
      }
    }
  }
  if (scheduledSeen === 0) problems.push('no example configuration schedules a task, so the filter is not exercised');

  const schedule = expand(m, job.body['schedule']);
  // A push task without a schedule of its own runs its hourly safety net (functions/src/config.ts, PUSH_SAFETY_NET).
  if (schedule !== '${each.value.schedule.cron}' && schedule !== '${try(each.value.schedule.cron, "0 * * * *")}') {
    problems.push(`${job.address}: schedule must be each.value.schedule.cron (or, for a push task without one, "0 * * * *"), got ${schedule}`);
  }
  if (!expand(m, job.body['time_zone']).includes('each.value.schedule.timeZone')) {
    problems.push(`${job.address}: time_zone must come from each.value.schedule.timeZone`);
  }

  const action = functionsByEntryPoint(m).get('action');
  const worker = functionsByEntryPoint(m).get('worker');
  const target = first(job.body['http_target']);
  if (!target || !action) return [...problems, `${job.address}: no http_target to action`];
  if (expand(m, target['http_method']) !== 'GET') problems.push(`${job.address}: http_method must be GET`);
  const uri = expand(m, target['uri']);
  // action's URL: its resource's, or ACTION_URL (the deterministic URL it checks tokens against).
  const actionUrl = expand(m, envOf(m, action)?.['ACTION_URL']);
  const callsAction = (text: string): boolean => text.startsWith(`\${${fnRef(action)}.`) || (actionUrl !== '' && text.startsWith(actionUrl));
  if (!callsAction(uri)) problems.push(`${job.address}: the job does not call action (${uri})`);
  const query = uri.replace(/^[^?]*\?/, '');
  for (const part of ['action=Fetch', 'FetchAction=Synchronize', 'Schedule=true']) {
    if (!query.split('&').includes(part)) problems.push(`${job.address}: the URL lacks ${part}`);
  }
  if (!/(^|&)TaskSections=\$\{[^}]*each\.key[^}]*\}(&|$)/.test(query)) problems.push(`${job.address}: the URL must set TaskSections to the task (each.key)`);

  const oidc = first(target['oidc_token']);
  const account = serviceAccountOf(expand(m, oidc?.['service_account_email']));
  if (!oidc || !account) return [...problems, `${job.address}: the job must call action with an OIDC token of a google_service_account`];
  const audience = expand(m, oidc['audience']);
  if (actionUrl !== '' ? audience !== actionUrl : !callsAction(audience)) {
    problems.push(`${job.address}: the OIDC audience must be action's URL${actionUrl ? ` (ACTION_URL, ${actionUrl}), which action checks in shared-secret mode` : ''}, got ${audience || '(unset)'}`);
  }
  const scheduler = expand(m, envOf(m, action)?.['SCHEDULER_SERVICE_ACCOUNT']);
  if (scheduler !== '' && serviceAccountOf(scheduler) !== account) {
    problems.push(`${job.address}: the job calls as google_service_account.${account}, but action's SCHEDULER_SERVICE_ACCOUNT is ${scheduler}`);
  }
  if (target['headers'] !== undefined) problems.push(`${job.address}: the job sends headers; a scheduler job carries no secret (action checks its OIDC token)`);
  const grants = invokerGrants(m);
  if (!grants.some((g) => g.target === action.name && g.account === account)) {
    problems.push(`${job.address}: google_service_account.${account} has no run.invoker grant on action`);
  }
  if (worker && grants.some((g) => g.target === worker.name && g.account === account)) {
    problems.push(`${job.address}: google_service_account.${account} may invoke the worker too; the scheduler account may invoke action only`);
  }
  return problems;
}

// --- invariant: the reconcile job ------------------------------------------------------------------

/** "300s" → 300; anything else → undefined. */
function durationSeconds(text: string): number | undefined {
  const match = /^(\d+(?:\.\d+)?)s$/.exec(text.trim());
  return match?.[1] !== undefined ? Number(match[1]) : undefined;
}

/**
 * One Cloud Scheduler job, gmail-connector-reconcile, POSTs to WORKER_URL + "/reconcile" with an
 * OIDC token exactly like a task delivery's: the account is TASKS_INVOKER_SERVICE_ACCOUNT (which
 * has run.invoker on the worker) and the audience is WORKER_URL itself, since the worker checks
 * both. Its schedule is var.reconcile_schedule (default every 5 minutes) in Etc/UTC; it retries at
 * most once (the next tick comes anyway) and its attempt deadline stays within the worker's timeout.
 */
export function checkReconcileJob(m: TfModule): Promise<string[]> {
  const problems: string[] = [];
  const worker = functionsByEntryPoint(m).get('worker');
  const env = worker ? envOf(m, worker) : undefined;
  if (!worker || !env) return Promise.resolve(['the worker function and its environment are needed to check the reconcile job']);
  const workerUrl = expand(m, env['WORKER_URL']);
  const invokerText = expand(m, env['TASKS_INVOKER_SERVICE_ACCOUNT']);
  const reconcileUrl = `${workerUrl.replace(/\/$/, '')}/reconcile`;

  const jobs = resources(m, 'google_cloud_scheduler_job').filter((b) => /\/reconcile$/.test(expand(m, first(b.body['http_target'])?.['uri'])));
  const named = resources(m, 'google_cloud_scheduler_job').filter((b) => expand(m, b.body['name']) === 'gmail-connector-reconcile');
  if (jobs.length === 0 && named.length === 0) return Promise.resolve(['no google_cloud_scheduler_job calls the worker\'s /reconcile route']);
  if (jobs.length > 1) problems.push(`expected one reconcile job, found ${jobs.length}: ${jobs.map((j) => j.address).join(', ')}`);
  const job = (named[0] ?? jobs[0]) as Block;

  const name = expand(m, job.body['name']);
  if (name !== 'gmail-connector-reconcile') problems.push(`${job.address}: the job must be named gmail-connector-reconcile, got ${name}`);
  if (job.body['for_each'] !== undefined || job.body['count'] !== undefined) problems.push(`${job.address}: there is exactly one reconcile job (no count or for_each)`);

  const schedule = expand(m, job.body['schedule']);
  if (schedule !== '${var.reconcile_schedule}') problems.push(`${job.address}: schedule must be var.reconcile_schedule, got ${schedule}`);
  const variable = m.variable['reconcile_schedule']?.[0];
  if (!variable) problems.push('variable "reconcile_schedule" is not declared');
  else if (variable['default'] !== '*/5 * * * *') problems.push(`variable "reconcile_schedule": default must be "*/5 * * * *", got ${JSON.stringify(variable['default'] ?? null)}`);
  const timeZone = expand(m, job.body['time_zone']);
  if (timeZone !== 'Etc/UTC') problems.push(`${job.address}: time_zone must be Etc/UTC, got ${timeZone || '(unset)'}`);

  const retries = first(job.body['retry_config'])?.['retry_count'];
  if (retries !== undefined && !(typeof retries === 'number' && retries <= 1)) {
    problems.push(`${job.address}: retry_count ${String(retries)}; at most 1, since the next tick comes anyway`);
  }
  const deadline = durationSeconds(expand(m, job.body['attempt_deadline']));
  const timeout = evalNumber(m, first(worker.body['service_config'])?.['timeout_seconds']);
  if (deadline === undefined || deadline < 15 || (timeout !== undefined && deadline > timeout)) {
    problems.push(`${job.address}: attempt_deadline must be set, from 15 s up to the worker's timeout (${timeout} s), got ${expand(m, job.body['attempt_deadline']) || '(unset)'}`);
  }

  const target = first(job.body['http_target']);
  if (!target) return Promise.resolve([...problems, `${job.address}: no http_target`]);
  const method = expand(m, target['http_method']);
  if (method !== 'POST') problems.push(`${job.address}: http_method must be POST, got ${method || '(unset, GET)'}`);
  const uri = expand(m, target['uri']);
  if (uri !== reconcileUrl) problems.push(`${job.address}: the job calls ${uri}, not ${reconcileUrl} (WORKER_URL + /reconcile)`);
  if (target['oauth_token'] !== undefined) problems.push(`${job.address}: the worker needs an OIDC token, not an OAuth token`);

  const oidc = first(target['oidc_token']);
  if (!oidc) return Promise.resolve([...problems, `${job.address}: the job must call the worker with an OIDC token`]);
  const email = expand(m, oidc['service_account_email']);
  if (email !== invokerText) problems.push(`${job.address}: the job's OIDC account ${email} is not TASKS_INVOKER_SERVICE_ACCOUNT ${invokerText}`);
  const audience = expand(m, oidc['audience']);
  if (audience !== workerUrl) problems.push(`${job.address}: the job's OIDC audience ${audience || '(unset, the full URI)'} is not WORKER_URL ${workerUrl}`);
  const account = serviceAccountOf(email);
  if (account && !invokerGrants(m).some((g) => g.target === worker.name && g.account === account)) {
    problems.push(`${job.address}: google_service_account.${account} has no run.invoker grant on the worker`);
  }
  return Promise.resolve(problems);
}

// --- invariant: the identity matrix --------------------------------------------------------------

/** The permissions of the predefined roles the checks know. */
const ROLE_PERMISSIONS: Record<string, readonly string[]> = {
  'roles/cloudtasks.viewer': ['cloudtasks.locations.get', 'cloudtasks.locations.list', 'cloudtasks.queues.get', 'cloudtasks.queues.list', 'cloudtasks.tasks.get', 'cloudtasks.tasks.list'],
  'roles/cloudtasks.enqueuer': ['cloudtasks.tasks.create', 'cloudtasks.tasks.fullView'],
  'roles/cloudtasks.taskDeleter': ['cloudtasks.tasks.delete'],
  'roles/cloudtasks.taskRunner': ['cloudtasks.tasks.run'],
  'roles/iam.serviceAccountUser': ['iam.serviceAccounts.actAs', 'iam.serviceAccounts.get', 'iam.serviceAccounts.list', 'resourcemanager.projects.get', 'resourcemanager.projects.list'],
  'roles/iam.serviceAccountTokenCreator': [
    'iam.serviceAccounts.get',
    'iam.serviceAccounts.getAccessToken',
    'iam.serviceAccounts.getOpenIdToken',
    'iam.serviceAccounts.implicitDelegation',
    'iam.serviceAccounts.list',
    'iam.serviceAccounts.signBlob',
    'iam.serviceAccounts.signJwt',
    'resourcemanager.projects.get',
  ],
};

/** The permissions of a role: a predefined role above, or a custom role of the module. */
function permissionsOf(m: TfModule, role: string): readonly string[] | undefined {
  if (role in ROLE_PERMISSIONS) return ROLE_PERMISSIONS[role];
  const custom = customRoleOf(role);
  const body = custom !== undefined ? m.resource['google_project_iam_custom_role']?.[custom]?.[0] : undefined;
  const permissions = body?.['permissions'];
  return Array.isArray(permissions) ? permissions.filter((p): p is string => typeof p === 'string') : undefined;
}

function customRoleOf(role: string): string | undefined {
  return /^\$\{google_project_iam_custom_role\.([\w-]+)\.(?:name|id)\}$/.exec(role)?.[1];
}

/** The accounts a grant names: `member`, or each of `members`. */
function grantAccounts(m: TfModule, body: JsonObject): string[] {
  const members = Array.isArray(body['members']) ? body['members'] : [body['member']];
  return members.map((x) => serviceAccountOf(expand(m, x))).filter((a): a is string => a !== undefined);
}

/** `${TYPE.NAME.attr}` or `${TYPE.NAME[0].attr}` → NAME. */
function resourceNameIn(text: string): string | undefined {
  return /^\$\{[\w-]+\.([\w-]+)(?:\[\d+\])?\.[\w-]+\}$/.exec(text.trim())?.[1];
}

/** Where a grant applies, as the matrix writes it. */
function grantScope(m: TfModule, block: Block): string {
  const target = (attr: string): string => {
    const raw = block.body[attr];
    return (typeof raw === 'string' ? resourceNameIn(raw) : undefined) ?? resourceNameIn(expand(m, raw)) ?? expand(m, raw);
  };
  switch (block.type) {
    case 'google_project_iam_member':
    case 'google_project_iam_binding':
      return 'project';
    case 'google_cloud_tasks_queue_iam_member':
    case 'google_cloud_tasks_queue_iam_binding':
      return `queue:${target('name')}`;
    case 'google_service_account_iam_member':
    case 'google_service_account_iam_binding':
      return `serviceAccount:${target('service_account_id')}`;
    case 'google_secret_manager_secret_iam_member':
      return `secret:${target('secret_id')}`;
    case 'google_storage_bucket_iam_member':
      return `bucket:${target('bucket')}`;
    case 'google_artifact_registry_repository_iam_member':
      return `repository:${target('repository')}`;
    default: {
      const grant = invokerGrants(m).find((g) => g.block.address === block.address);
      if (grant) return `function:${grant.target ?? expand(m, block.body[INVOKER_TARGET[block.type] ?? 'name'])}`;
      return block.type;
    }
  }
}

/**
 * Every grant to a service account of the module, rendered `SCOPE ROLE[ when CONDITION][ if
 * var.GATE]`, where a custom role is written as its sorted permissions in braces.
 */
export async function grantsByAccount(m: TfModule): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>();
  for (const account of Object.keys(m.resource['google_service_account'] ?? {})) out.set(account, []);
  for (const block of resources(m).filter((b) => /_iam_(member|binding)$/.test(b.type))) {
    const roleText = expand(m, block.body['role']);
    const custom = customRoleOf(roleText);
    const role = custom !== undefined ? `{${[...(permissionsOf(m, roleText) ?? [])].sort().join(',')}}` : roleText;
    const condition = first(block.body['condition']);
    const when = condition ? ` when ${expand(m, condition['title'])}` : '';
    const gates = await varsIn(block.body['count']);
    const gate = gates.length > 0 ? ` if ${gates.map((g) => `var.${g}`).join(' && ')}` : '';
    const text = `${grantScope(m, block)} ${role}${when}${gate}`;
    for (const account of grantAccounts(m, block.body)) out.set(account, [...(out.get(account) ?? []), text]);
  }
  return out;
}

/** A grant of the matrix (test/infra/identity.ts). */
export interface MatrixGrantLike {
  grant: string;
  covers: readonly string[];
  why: string;
  planned?: boolean;
}

/**
 * Every service account holds exactly the grants the matrix lists for it (no account outside the
 * matrix, no grant more or less); each runtime account's grants cover what its function's code
 * needs (requirements on `ENV` are checked against the account the function's ENV names); and
 * every grant that covers code requirements is still needed by the code, unless it is planned.
 */
export async function checkIdentityMatrix(
  m: TfModule,
  matrix: Readonly<Record<string, readonly MatrixGrantLike[]>>,
  needs: ReadonlyMap<string, ReadonlySet<string>>,
): Promise<string[]> {
  const problems: string[] = [];
  const granted = await grantsByAccount(m);
  for (const [account, grants] of granted) {
    const expected = matrix[account];
    if (!expected) {
      problems.push(`google_service_account.${account} is not in the identity matrix (grants: ${grants.join('; ') || 'none'})`);
      continue;
    }
    const want = expected.map((g) => g.grant);
    for (const g of grants) if (!want.includes(g)) problems.push(`google_service_account.${account} is granted "${g}", which the identity matrix does not list`);
    for (const g of want) if (!grants.includes(g)) problems.push(`google_service_account.${account} lacks "${g}" of the identity matrix`);
    if (new Set(grants).size !== grants.length) problems.push(`google_service_account.${account} holds a grant twice`);
  }
  for (const account of Object.keys(matrix)) {
    if (!granted.has(account)) problems.push(`the identity matrix lists google_service_account.${account}, which the module does not define`);
  }

  const fns = functionsByEntryPoint(m);
  for (const [entry, required] of needs) {
    const fn = fns.get(entry);
    if (!fn) {
      problems.push(`no function with entry point ${entry}`);
      continue;
    }
    const account = serviceAccountOf(expand(m, first(fn.body['service_config'])?.['service_account_email']));
    if (!account) {
      problems.push(`${fn.address}: service_account_email is not a google_service_account of the module`);
      continue;
    }
    const env = envOf(m, fn) ?? {};
    const entries = matrix[account] ?? [];
    // A requirement on ENV is a requirement on the account the function's ENV names.
    const rename = (need: string): string => {
      const [kind, name] = need.split(':');
      if (name === undefined) return need;
      const target = serviceAccountOf(expand(m, env[name] ?? ''));
      return `${kind}:${target ?? `(${name} unset)`}`;
    };
    const coveredBy = (need: string): MatrixGrantLike | undefined => entries.find((g) => g.covers.includes(need));
    for (const need of required) {
      const grant = coveredBy(need);
      if (!grant) {
        problems.push(`${entry}'s code needs ${need}, which no grant of google_service_account.${account} in the identity matrix covers`);
        continue;
      }
      // The grant must be on the account the environment names.
      const [kind, name] = need.split(':');
      if (name !== undefined) {
        const target = rename(need).split(':')[1] ?? '';
        const scope = `serviceAccount:${target}`;
        const permission = kind === 'actAs' ? 'iam.serviceAccounts.actAs' : 'iam.serviceAccounts.signJwt';
        if (!grant.grant.startsWith(`${scope} `) || !grant.grant.includes(permission)) {
          problems.push(`${entry}'s code needs ${permission} on the account ${name} names (${target}), but the matrix grants "${grant.grant}"`);
        }
      }
    }
    for (const grant of entries) {
      if (grant.planned) continue;
      for (const need of grant.covers) {
        if (!required.has(need)) problems.push(`google_service_account.${account} holds "${grant.grant}" for ${need}, which ${entry}'s code no longer needs`);
      }
    }
  }
  return problems;
}

// --- invariant: Firestore -------------------------------------------------------------------------

/**
 * firestore.indexes.json is well formed and holds, for every composite query the code declares,
 * an index on the same collection group and scope with the same fields in the same order (the
 * trailing __name__ Firestore adds is ignored).
 */
export function checkFirestoreIndexes(file: unknown, queries: Readonly<Record<string, QueryShapeLike>>): string[] {
  const problems: string[] = [];
  if (!isObject(file) || !Array.isArray(file['indexes'])) return ['firestore.indexes.json has no "indexes" list'];
  const indexes = file['indexes'].filter(isObject);
  const fieldsOf = (index: JsonObject): string[] => {
    const list = Array.isArray(index['fields']) ? index['fields'].filter(isObject) : [];
    const named = list.map((f) => `${String(f['fieldPath'])} ${String(f['order'] ?? f['arrayConfig'])}`);
    while (named.length > 0 && named[named.length - 1]?.startsWith('__name__ ')) named.pop();
    return named;
  };
  indexes.forEach((index, i) => {
    if (typeof index['collectionGroup'] !== 'string') problems.push(`index ${i}: no collectionGroup`);
    if (index['queryScope'] !== 'COLLECTION' && index['queryScope'] !== 'COLLECTION_GROUP') problems.push(`index ${i}: queryScope must be COLLECTION or COLLECTION_GROUP`);
    const fields = Array.isArray(index['fields']) ? index['fields'] : [];
    if (fields.length < 2) problems.push(`index ${i}: a composite index has at least two fields`);
    for (const f of fields) {
      if (!isObject(f) || typeof f['fieldPath'] !== 'string' || (f['order'] === undefined) === (f['arrayConfig'] === undefined)) {
        problems.push(`index ${i}: each field needs a fieldPath and either order or arrayConfig`);
      }
    }
  });
  for (const [name, query] of Object.entries(queries)) {
    const wanted = query.fields.map((f) => `${f.fieldPath} ${f.order}`);
    const same = indexes.filter((x) => x['collectionGroup'] === query.collectionGroup && x['queryScope'] === query.queryScope);
    if (same.some((x) => deepEqual(fieldsOf(x), wanted))) continue;
    const reordered = same.some((x) => deepEqual([...fieldsOf(x)].sort(), [...wanted].sort()));
    problems.push(
      `query ${name} (${query.collectionGroup}, ${query.queryScope}: ${wanted.join(', ')}) has no index in firestore.indexes.json${reordered ? ' (an index has its fields in another order; order matters)' : ''}`,
    );
  }
  return problems;
}

/**
 * Terraform deploys what the repository declares: the composite indexes iterate over
 * firestore.indexes.json, the field overrides too, the rules come from firestore.rules, and the
 * release for the (default) database points at that ruleset; the database is Native mode.
 */
export function checkFirestoreDeployment(m: TfModule): Promise<string[]> {
  const problems: string[] = [];
  const databases = resources(m, 'google_firestore_database');
  if (!databases.some((d) => expand(m, d.body['type']) === 'FIRESTORE_NATIVE' && expand(m, d.body['name']) === '(default)')) {
    problems.push('no google_firestore_database "(default)" in FIRESTORE_NATIVE mode');
  }
  const indexes = resources(m, 'google_firestore_index');
  if (indexes.length === 0) problems.push('no google_firestore_index resource');
  for (const index of indexes) {
    if (!closure(m, index.body['for_each']).includes('firestore.indexes.json')) {
      problems.push(`${index.address}: for_each does not come from firestore.indexes.json`);
    }
  }
  for (const field of resources(m, 'google_firestore_field')) {
    // TTL policies (checkRetention) are the module's own; index overrides come from the file.
    if (field.body['ttl_config'] !== undefined) continue;
    if (!closure(m, field.body['for_each']).includes('firestore.indexes.json')) {
      problems.push(`${field.address}: for_each does not come from firestore.indexes.json`);
    }
  }
  const rulesets = resources(m, 'google_firebaserules_ruleset');
  const fromFile = rulesets.filter((r) => closure(m, r.body['source']).includes('firestore.rules'));
  if (fromFile.length === 0) problems.push('no google_firebaserules_ruleset built from firestore.rules');
  const released = resources(m, 'google_firebaserules_release').some(
    (r) =>
      expand(m, r.body['name']) === 'cloud.firestore' &&
      fromFile.some((f) => expand(m, r.body['ruleset_name']).includes(`google_firebaserules_ruleset.${f.name}.name`)),
  );
  if (!released) problems.push('no google_firebaserules_release "cloud.firestore" of the firestore.rules ruleset');
  return Promise.resolve(problems);
}

/** firestore.rules closes every document: each allow has the condition `if false`. */
export function checkFirestoreRules(text: string): string[] {
  const problems: string[] = [];
  const code = text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/\/\/.*$/gm, '');
  if (!/service\s+cloud\.firestore/.test(code)) problems.push('firestore.rules has no "service cloud.firestore"');
  if (!/match\s+\/\{document=\*\*\}/.test(code)) problems.push('firestore.rules does not match every document ({document=**})');
  const allows = [...code.matchAll(/\ballow\s+([^:;]+?)\s*(?::\s*if\s+([^;]*))?;/g)];
  if (allows.length === 0) problems.push('firestore.rules has no allow statement (nothing to check)');
  for (const allow of allows) {
    const condition = allow[2]?.trim();
    if (condition !== 'false') problems.push(`firestore.rules: "allow ${allow[1]?.trim()}" ${condition === undefined ? 'has no condition (it allows everything)' : `allows when ${condition}`}`);
  }
  return problems;
}

// --- invariant: the worker is internal --------------------------------------------------------------

/**
 * The worker accepts internal traffic only (Cloud Tasks and Cloud Scheduler of the project count as
 * internal), and only TASKS_INVOKER_SERVICE_ACCOUNT may invoke it.
 */
export function checkWorkerIngress(m: TfModule): Promise<string[]> {
  const problems: string[] = [];
  const worker = functionsByEntryPoint(m).get('worker');
  if (!worker) return Promise.resolve(['no worker function']);
  const ingress = expand(m, first(worker.body['service_config'])?.['ingress_settings']);
  if (ingress !== 'ALLOW_INTERNAL_ONLY') problems.push(`${worker.address}: ingress_settings is ${ingress || '(unset, ALLOW_ALL)'}; the worker takes internal traffic only (ALLOW_INTERNAL_ONLY)`);
  const invoker = serviceAccountOf(expand(m, envOf(m, worker)?.['TASKS_INVOKER_SERVICE_ACCOUNT']));
  for (const g of invokerGrants(m).filter((g) => g.target === worker.name)) {
    if (g.account === undefined || g.account !== invoker) problems.push(`${g.block.address}: ${g.member} may invoke the worker; only TASKS_INVOKER_SERVICE_ACCOUNT may`);
  }
  return Promise.resolve(problems);
}

// --- invariant: versions, providers and state -----------------------------------------------------

/** ">= 1.11.0" → [1, 11, 0]; undefined when there is no lower bound. */
function lowerBound(constraint: string): number[] | undefined {
  const match = />=\s*(\d+)\.(\d+)(?:\.(\d+))?/.exec(constraint);
  return match ? [Number(match[1]), Number(match[2]), Number(match[3] ?? 0)] : undefined;
}

function atLeast(version: number[], wanted: number[]): boolean {
  for (let i = 0; i < wanted.length; i++) {
    const a = version[i] ?? 0;
    const b = wanted[i] ?? 0;
    if (a !== b) return a > b;
  }
  return true;
}

/**
 * A first apply that works: Terraform ≥ 1.11 (write-only arguments); google-beta neither required
 * nor configured nor used; the default google provider sends the project as quota project
 * (user_project_override and billing_project); the APIs are enabled through a provider alias
 * without the override; state lives in a gcs backend, with an example backend configuration.
 */
export function checkProvidersAndState(m: TfModule, backendExample: string | undefined): Promise<string[]> {
  const problems: string[] = [];
  const terraform = m.terraform[0] ?? {};
  const required = expand(m, terraform['required_version']);
  const bound = lowerBound(required);
  if (!bound || !atLeast(bound, [1, 11, 0])) problems.push(`required_version "${required || '(unset)'}" must be at least 1.11.0 (write-only arguments such as secret_data_wo)`);
  const providers = first(terraform['required_providers']) ?? {};
  if ('google-beta' in providers) problems.push('required_providers names google-beta, which no resource uses');
  if ('google-beta' in m.provider) problems.push('a provider "google-beta" block is configured, but no resource uses it');
  for (const block of [...resources(m)]) {
    if (String(block.body['provider'] ?? '').includes('google-beta')) problems.push(`${block.address} uses google-beta`);
  }
  const googles = m.provider['google'] ?? [];
  const main = googles.find((p) => p['alias'] === undefined);
  if (!main) problems.push('no default provider "google" block');
  else {
    if (main['user_project_override'] !== true) problems.push('provider "google": user_project_override must be true, so the quota project reaches APIs such as firebaserules.googleapis.com');
    if (expand(m, main['billing_project']) !== '${var.project_id}') problems.push(`provider "google": billing_project must be var.project_id, got ${expand(m, main['billing_project']) || '(unset)'}`);
  }
  for (const api of resources(m, 'google_project_service')) {
    const alias = /^\$\{google\.([\w-]+)\}$/.exec(expand(m, api.body['provider']))?.[1];
    const aliased = googles.find((p) => p['alias'] === alias);
    if (!alias || !aliased) problems.push(`${api.address}: enable the APIs through a provider alias without user_project_override (a fresh project has not enabled them for itself yet)`);
    else if (aliased['user_project_override'] === true) problems.push(`${api.address}: provider google.${alias} sets user_project_override`);
  }
  const backend = first(terraform['backend']);
  if (!backend || !('gcs' in backend)) problems.push('terraform has no backend "gcs" block: state would stay on the deployer\'s machine');
  if (backendExample === undefined) problems.push('infra/backend.hcl.example is missing');
  else for (const key of ['bucket', 'prefix']) if (!new RegExp(`^\\s*${key}\\s*=`, 'm').test(backendExample)) problems.push(`infra/backend.hcl.example does not set ${key}`);
  return Promise.resolve(problems);
}

// --- invariant: no secret in state ----------------------------------------------------------------

/**
 * The shared secret reaches neither plan nor state: its variable is ephemeral and sensitive, and it
 * is used only in the write-only secret_data_wo (with secret_data_wo_version) of the secret
 * version, and in variable validations. No scheduler job carries it.
 */
export async function checkSecretNotInState(m: TfModule): Promise<string[]> {
  const problems: string[] = [];
  const optIn = await optInVariable(m);
  const versions = resources(m, 'google_secret_manager_secret_version');
  if (versions.length === 0) problems.push('no google_secret_manager_secret_version');
  const secretVars = new Set<string>();
  for (const v of versions) {
    if (v.body['secret_data'] !== undefined) problems.push(`${v.address}: secret_data is stored in state; use secret_data_wo`);
    if (v.body['secret_data_wo'] === undefined) problems.push(`${v.address}: no secret_data_wo`);
    if (v.body['secret_data_wo_version'] === undefined) problems.push(`${v.address}: secret_data_wo needs secret_data_wo_version (a new value is written when it changes)`);
    for (const name of await varsIn(v.body['secret_data_wo'] ?? v.body['secret_data'])) secretVars.add(name);
  }
  for (const name of secretVars) {
    const variable = m.variable[name]?.[0];
    if (!variable) continue;
    if (variable['ephemeral'] !== true) problems.push(`variable "${name}" must be ephemeral, so that the secret is in neither plan nor state`);
    if (variable['sensitive'] !== true) problems.push(`variable "${name}" must be sensitive`);
  }
  for (const e of expressions(m)) {
    for (const ref of await referencesIn(e.text)) {
      const name = ref.split('.')[1] ?? '';
      if (!ref.startsWith('var.') || !secretVars.has(name)) continue;
      const allowed = /^google_secret_manager_secret_version\.[\w-]+\.secret_data_wo$/.test(e.where) || /^variable\.[\w-]+\.validation/.test(e.where);
      if (!allowed) problems.push(`var.${name} is used in ${e.where}; the secret may appear only in secret_data_wo`);
    }
  }
  if (optIn === undefined) problems.push('no opt-in variable gates the shared secret');
  return problems;
}

// --- invariant: Firestore location ----------------------------------------------------------------

/**
 * The database's location is derived (local.firestore_location), and a precondition refuses a
 * location on another continent than the region unless an off-by-default bool variable says so.
 */
export async function checkFirestoreLocation(m: TfModule): Promise<string[]> {
  const problems: string[] = [];
  const db = resources(m, 'google_firestore_database')[0];
  if (!db) return ['no google_firestore_database'];
  const location = String(db.body['location_id'] ?? '');
  if (location !== '${local.firestore_location}') problems.push(`${db.address}: location_id is ${location}, not the checked firestore_location`);
  const conditions = (Array.isArray(first(db.body['lifecycle'])?.['precondition']) ? (first(db.body['lifecycle'])?.['precondition'] as Json[]) : []).filter(isObject);
  const check = conditions.find((c) => {
    const text = closure(m, c['condition']);
    return text.includes('var.region') && text.includes('firestore_location');
  });
  if (!check) problems.push(`${db.address}: no precondition compares the Firestore location's continent with the region's`);
  else {
    const overrides = (await varsIn(check['condition'])).filter((v) => isOffByDefault(m, v));
    if (overrides.length === 0) problems.push(`${db.address}: the location precondition has no off-by-default variable to override it`);
  }
  const variable = m.variable['firestore_location']?.[0];
  if (variable && variable['default'] !== null && variable['default'] !== undefined) {
    problems.push(`variable "firestore_location" defaults to ${JSON.stringify(variable['default'])}; null derives it from the region`);
  }
  return problems;
}

// --- invariant: retention -------------------------------------------------------------------------

/** The collection groups whose ended records expire, and the field the code writes. */
export const TTL_COLLECTION_GROUPS = ['actions', 'mailboxes', 'results', 'locks', 'totals', 'gmailAddresses', 'actionIds'] as const;
export const TTL_FIELD = 'expireAt';

/**
 * A TTL policy on expireAt in each of the collection groups of actions and units, exempt from
 * single-field indexing; firestore.indexes.json does not also override that field; every function
 * gets ACTION_RETENTION_DAYS from var.action_retention_days (a number, default 30).
 */
export function checkRetention(m: TfModule, indexesFile: unknown): Promise<string[]> {
  const problems: string[] = [];
  const covered = new Set<string>();
  for (const field of resources(m, 'google_firestore_field').filter((f) => f.body['ttl_config'] !== undefined)) {
    const name = expand(m, field.body['field']);
    if (name !== TTL_FIELD) problems.push(`${field.address}: the TTL field is ${name}, but the code writes ${TTL_FIELD}`);
    const collection = expand(m, field.body['collection']);
    const groups = collection === '${each.value}' || collection === '${each.key}' ? [...expand(m, field.body['for_each']).matchAll(/"([^"]+)"/g)].map((x) => x[1] ?? '') : [collection];
    for (const g of groups) covered.add(g);
    const index = first(field.body['index_config']);
    if (index === undefined || Object.keys(index).length > 0) problems.push(`${field.address}: exempt the TTL field from single-field indexes (an empty index_config block)`);
  }
  for (const g of TTL_COLLECTION_GROUPS) if (!covered.has(g)) problems.push(`no TTL policy on ${TTL_FIELD} in collection group ${g}`);
  const overrides = isObject(indexesFile) && Array.isArray(indexesFile['fieldOverrides']) ? indexesFile['fieldOverrides'].filter(isObject) : [];
  for (const o of overrides) {
    if (o['fieldPath'] === TTL_FIELD) problems.push(`firestore.indexes.json overrides ${String(o['collectionGroup'])}.${TTL_FIELD}, which the TTL policy resource manages`);
  }
  for (const fn of resources(m, 'google_cloudfunctions2_function')) {
    const value = expand(m, envOf(m, fn)?.['ACTION_RETENTION_DAYS']);
    if (!value.includes('var.action_retention_days')) problems.push(`${fn.address}: ACTION_RETENTION_DAYS must come from var.action_retention_days, got ${value || '(unset)'}`);
  }
  const variable = m.variable['action_retention_days']?.[0];
  if (!variable) problems.push('variable "action_retention_days" is not declared');
  else if (variable['default'] !== 30 || expand(m, variable['type']) !== '${number}') problems.push('variable "action_retention_days" must be a number, default 30');
  return Promise.resolve(problems);
}

// --- Gmail scopes per mode ------------------------------------------------------------------------

/**
 * The scopes of each mode (`local.gmail_scopes_by_mode`) are exactly `expected` (what the code asks
 * for, in any order), each mode includes the one before, `output.gmail_scopes_by_mode` shows them,
 * and `delegation_scopes` is built from them.
 */
export function checkGmailScopeModes(m: TfModule, expected: Readonly<Record<string, readonly string[]>>): string[] {
  const problems: string[] = [];
  const modes = m.locals['gmail_scopes_by_mode'];
  if (!isObject(modes)) return ['local.gmail_scopes_by_mode is not a map of modes to scopes'];
  const order = Object.keys(expected);
  for (const mode of new Set([...order, ...Object.keys(modes)])) {
    const got = modes[mode];
    const want = expected[mode];
    if (want === undefined) {
      problems.push(`local.gmail_scopes_by_mode has mode ${mode}, which the code does not have`);
      continue;
    }
    if (!Array.isArray(got)) {
      problems.push(`local.gmail_scopes_by_mode has no mode ${mode}`);
      continue;
    }
    const have = new Set(got.map(String));
    for (const s of want) if (!have.has(s)) problems.push(`mode ${mode} lacks ${s}, which the code asks for`);
    for (const s of have) if (!want.includes(s)) problems.push(`mode ${mode} lists ${s}, which the code does not ask for`);
  }
  order.forEach((mode, i) => {
    const before = order[i - 1];
    if (before === undefined) return;
    for (const s of expected[before] ?? []) if (!(expected[mode] ?? []).includes(s)) problems.push(`mode ${mode} does not include mode ${before}'s ${s}`);
  });
  const output = first(m.output['gmail_scopes_by_mode']);
  if (!output || !JSON.stringify(output['value'] ?? '').includes('local.gmail_scopes_by_mode')) problems.push('no output gmail_scopes_by_mode showing local.gmail_scopes_by_mode');
  if (!JSON.stringify(m.locals['delegation_scopes'] ?? '').includes('local.gmail_scopes_by_mode')) problems.push('local.delegation_scopes is not built from local.gmail_scopes_by_mode');
  return problems;
}
