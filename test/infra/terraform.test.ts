// The deployment's invariants, checked on infra/*.tf, firestore.indexes.json and firestore.rules
// without a terraform binary. Each check runs on the real files (no problems) and on deliberately
// broken copies (the problem is reported), so a check that cannot fail would show here.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

import { EMULATOR_ENV_VARS, OPTIONAL_ENV_VARS, PRODUCTION_ENV_VARS } from '../../functions/src/config.js';
import { QUERIES } from '../../functions/src/store/queries.js';
import { FUNCTION_NAMES } from '../../functions/src/app/dispatch.js';
import { FETCH_REGISTRY } from '../../functions/src/fetch/registry.js';
import { GMAIL_SCOPES } from '../../functions/src/gmail/client.js';
import { codeNeeds, IDENTITY_MATRIX, unknownGoogleCalls, type MatrixGrant } from './identity.js';
import { checkPush } from './push.js';
import {
  checkFirestoreDeployment,
  checkFirestoreLocation,
  checkIdentityMatrix,
  checkProvidersAndState,
  checkRetention,
  checkSecretNotInState,
  checkWorkerIngress,
  checkFirestoreIndexes,
  checkFirestoreRules,
  checkFunctionEnvironment,
  checkGmailScopeModes,
  checkFunctionSettings,
  checkPublicAccess,
  checkReconcileJob,
  checkReferences,
  checkScheduledTasks,
  checkTaskWiring,
  checkVariables,
  first,
  grantsByAccount,
  isObject,
  loadExampleConfigs,
  parseModuleTexts,
  readModuleTexts,
  type ExampleConfig,
  type Json,
  type JsonObject,
  type EnvMatrix,
  type TfModule,
} from './terraform.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const ENV = { production: PRODUCTION_ENV_VARS, optional: OPTIONAL_ENV_VARS, emulator: EMULATOR_ENV_VARS };

/** Each function's plain environment (docs/deploy.md, "Environment of each function"); ACTION_SHARED_SECRET comes from Secret Manager. */
const COMMON_ENV = ['GCLOUD_PROJECT', 'CONNECTOR_CONFIG', 'TASKS_LOCATION', 'TASKS_QUEUE', 'WORKER_URL', 'TASKS_INVOKER_SERVICE_ACCOUNT', 'ACTION_RETENTION_DAYS', 'COLLECT_BUCKETS'];
const ENV_MATRIX: EnvMatrix = {
  action: {
    always: [...COMMON_ENV, 'ACTION_URL', 'SCHEDULER_SERVICE_ACCOUNT', 'BUILD_COMMIT'],
    gated: { view_enabled: ['GMAIL_VIEW_SERVICE_ACCOUNT', 'GMAIL_VIEW_CLIENT_ID'] },
  },
  worker: { always: [...COMMON_ENV, 'WORKER_TIME_BUDGET_S', 'GMAIL_DELEGATED_SERVICE_ACCOUNT', 'GMAIL_DELEGATED_CLIENT_ID', 'PUSH_TOPIC'] },
  notify: { always: [...COMMON_ENV, 'NOTIFY_URL', 'PUSH_SERVICE_ACCOUNT'] },
};

let texts: Record<string, string>;
let parsed: TfModule;
let examples: ExampleConfig[];
let indexesFile: Json;
let rulesText: string;
let backendExample: string | undefined;
let needs: Map<string, Set<string>>;

/** A deep copy of the parsed module, to break. */
function copy(): TfModule {
  return structuredClone(parsed);
}

/** Parses the module again with one file's text changed. */
async function withText(file: string, from: string | RegExp, to: string): Promise<TfModule> {
  const text = texts[file];
  assert.ok(text !== undefined, `no ${file}`);
  const changed = text.replace(from, to);
  assert.notEqual(changed, text, `${String(from)} not found in ${file}`);
  return parseModuleTexts({ ...texts, [file]: changed });
}

function body(m: TfModule, type: string, name: string): JsonObject {
  const found = m.resource[type]?.[name]?.[0];
  assert.ok(found, `no ${type}.${name}`);
  return found;
}

function env(m: TfModule): JsonObject {
  return envLocal(m, 'common_env');
}

function serviceConfig(m: TfModule, name: string): JsonObject {
  const service = first(body(m, 'google_cloudfunctions2_function', name)['service_config']);
  assert.ok(service);
  return service;
}

function assertReports(problems: string[], ...fragments: string[]): void {
  assert.ok(problems.length > 0, 'the check reported nothing');
  for (const fragment of fragments) {
    assert.ok(
      problems.some((p) => p.includes(fragment)),
      `no problem mentions "${fragment}":\n${problems.join('\n')}`,
    );
  }
}

before(async () => {
  texts = readModuleTexts(join(ROOT, 'infra'));
  parsed = await parseModuleTexts(texts);
  examples = await loadExampleConfigs(ROOT);
  indexesFile = JSON.parse(readFileSync(join(ROOT, 'firestore.indexes.json'), 'utf8')) as Json;
  rulesText = readFileSync(join(ROOT, 'firestore.rules'), 'utf8');
  try {
    backendExample = readFileSync(join(ROOT, 'infra', 'backend.hcl.example'), 'utf8');
  } catch {
    backendExample = undefined;
  }
  needs = new Map([
    ['action', codeNeeds(ROOT, 'functions/src/entry/aci.ts').needs],
    ['worker', codeNeeds(ROOT, 'functions/src/entry/worker.ts').needs],
    ['notify', codeNeeds(ROOT, 'functions/src/entry/notify.ts').needs],
  ]);
});

/** The env local of one function (action_only_env, worker_only_env, common_env). */
function envLocal(m: TfModule, name: string): JsonObject {
  const value = m.locals[name];
  assert.ok(isObject(value), `local.${name} is not a map`);
  return value;
}

void describe('variables', () => {
  void it('every var.X used is declared, and every declared variable is used', async () => {
    assert.deepEqual(await checkVariables(parsed), []);
  });

  void it('reports a variable that is used but not declared', async () => {
    const m = copy();
    delete m.variable['region'];
    assertReports(await checkVariables(m), 'var.region is used');
  });

  void it('reports a misspelt variable in the HCL text', async () => {
    const m = await withText('queue.tf', 'var.queue_max_dispatches_per_second', 'var.queue_max_dispatch_per_second');
    assertReports(await checkVariables(m), 'var.queue_max_dispatch_per_second is used', 'variable "queue_max_dispatches_per_second" is declared but never used');
  });
});

void describe('references', () => {
  void it('every resource, data, local and module reference resolves', async () => {
    assert.deepEqual(await checkReferences(parsed), []);
  });

  void it('reports a reference to a resource that does not exist', async () => {
    const m = copy();
    delete m.resource['google_service_account']?.['scheduler'];
    assertReports(await checkReferences(m), 'google_service_account.scheduler.email');
  });

  void it('reports an unknown local, data source and module', async () => {
    const m = await withText('locals.tf', 'data.google_project.this.number', 'data.google_project.that.number');
    assertReports(await checkReferences(m), 'data.google_project.that.number');
    const n = copy();
    delete n.locals['worker_host'];
    assertReports(await checkReferences(n), 'local.worker_host');
    const o = copy();
    o.output['extra'] = [{ value: '${module.missing.url}' }];
    assertReports(await checkReferences(o), 'module.missing.url');
  });

  void it('reports a counted resource used without an index, and an index on a single resource', async () => {
    const m = await withText('functions.tf', 'google_secret_manager_secret.action_shared_secret[0].secret_id', 'google_secret_manager_secret.action_shared_secret.secret_id');
    assertReports(await checkReferences(m), 'google_secret_manager_secret.action_shared_secret.secret_id (in google_cloudfunctions2_function.action', 'needs an instance index');
    const n = await withText('scheduler.tf', 'google_service_account.scheduler.email', 'google_service_account.scheduler[0].email');
    assertReports(await checkReferences(n), 'indexes a resource that has neither count nor for_each');
  });

  void it('accepts the iterator of a dynamic block only inside its content', async () => {
    const m = copy();
    const archive = m.data['archive_file']?.['functions']?.[0];
    assert.ok(archive);
    archive['output_path'] = '${source.value}';
    assertReports(await checkReferences(m), 'source.value');
  });
});

void describe('tasks reach the worker as the invoker account', () => {
  void it('the queue, WORKER_URL, TASKS_INVOKER_SERVICE_ACCOUNT and the worker invoker grant agree', async () => {
    assert.deepEqual(await checkTaskWiring(parsed), []);
  });

  void it('reports a WORKER_URL that is not the worker', async () => {
    const m = copy();
    env(m)['WORKER_URL'] = '${google_cloudfunctions2_function.action.url}';
    assertReports(await checkTaskWiring(m), 'does not denote the worker');
  });

  void it('reports a queue routed to another host or with another OIDC account', async () => {
    const m = await withText('queue.tf', 'host                      = local.worker_host', 'host = "example.com"');
    assertReports(await checkTaskWiring(m), 'routes tasks to https://example.com');
    const n = await withText('queue.tf', 'service_account_email = google_service_account.tasks_invoker.email', 'service_account_email = google_service_account.worker.email');
    assertReports(await checkTaskWiring(n), "the queue's OIDC account");
  });

  void it('reports an invoker account without run.invoker on the worker', async () => {
    const m = copy();
    delete m.resource['google_cloud_run_service_iam_member']?.['worker_tasks_invoker'];
    assertReports(await checkTaskWiring(m), 'has no run.invoker grant on the worker');
  });

  void it('reports TASKS_INVOKER_SERVICE_ACCOUNT naming an account that cannot invoke the worker', async () => {
    const m = copy();
    env(m)['TASKS_INVOKER_SERVICE_ACCOUNT'] = '${google_service_account.scheduler.email}';
    assertReports(await checkTaskWiring(m), 'google_service_account.scheduler (TASKS_INVOKER_SERVICE_ACCOUNT) has no run.invoker grant on the worker', "the queue's OIDC account");
  });

  void it('reports the invoker account also allowed on action', async () => {
    const m = copy();
    const grant = body(m, 'google_cloud_run_service_iam_member', 'action_scheduler_invoker');
    grant['member'] = '${google_service_account.tasks_invoker.member}';
    assertReports(await checkTaskWiring(m), 'may invoke the worker only');
  });

  void it('reports a function account that may not act as the invoker account', async () => {
    const m = copy();
    delete m.resource['google_service_account_iam_member']?.['worker_acts_as_tasks_invoker'];
    assertReports(await checkTaskWiring(m), "google_cloudfunctions2_function.worker's account (google_service_account.worker) needs iam.serviceAccounts.actAs");
    const n = copy();
    delete n.resource['google_service_account_iam_member']?.['action_acts_as_tasks_invoker'];
    assertReports(await checkTaskWiring(n), "google_cloudfunctions2_function.action's account (google_service_account.action) needs iam.serviceAccounts.actAs");
  });

  void it('reports a TASKS_QUEUE other than the queue', async () => {
    const m = copy();
    env(m)['TASKS_QUEUE'] = 'other';
    assertReports(await checkTaskWiring(m), 'TASKS_QUEUE (other)');
  });
});

void describe('no public access but the opt-in', () => {
  void it('only the opt-in allUsers grant on action exists', async () => {
    assert.deepEqual(await checkPublicAccess(parsed), []);
  });

  void it('reports allUsers on the worker', async () => {
    const m = copy();
    const grant = body(m, 'google_cloud_run_service_iam_member', 'worker_tasks_invoker');
    grant['member'] = 'allUsers';
    assertReports(await checkPublicAccess(m), 'google_cloud_run_service_iam_member.worker_tasks_invoker grants allUsers');
  });

  void it('reports the allUsers grant on action when it is not gated by the opt-in variable', async () => {
    const m = await withText('secret.tf', /(resource "google_cloud_run_service_iam_member" "action_public" \{\n)\s*count = var\.action_shared_secret_enabled \? 1 : 0\n/, '$1');
    assertReports(await checkPublicAccess(m), 'action_public grants allUsers');
  });

  void it('reports allAuthenticatedUsers anywhere, even on action', async () => {
    const m = copy();
    body(m, 'google_cloud_run_service_iam_member', 'action_public')['member'] = 'allAuthenticatedUsers';
    assertReports(await checkPublicAccess(m), 'grants allAuthenticatedUsers');
    const n = copy();
    body(n, 'google_storage_bucket_iam_member', 'build_source_reader')['member'] = 'allUsers';
    assertReports(await checkPublicAccess(n), 'google_storage_bucket_iam_member.build_source_reader grants allUsers');
  });

  void it('reports an opt-in that is on by default', async () => {
    const m = copy();
    const variable = m.variable['action_shared_secret_enabled']?.[0];
    assert.ok(variable);
    variable['default'] = true;
    assertReports(await checkPublicAccess(m), 'action_public grants allUsers');
  });

  void it('reports members taken from a variable that does not reject allUsers', async () => {
    const m = copy();
    const variable = m.variable['action_invoker_members']?.[0];
    assert.ok(variable);
    delete variable['validation'];
    assertReports(await checkPublicAccess(m), 'takes members from var.action_invoker_members');
  });
});

void describe('the functions environment', () => {
  void it("is exactly each function's variables of the matrix, plus ACTION_SHARED_SECRET from the opt-in secret", async () => {
    assert.deepEqual(await checkFunctionEnvironment(parsed, ENV, ENV_MATRIX), []);
  });

  void it('GetStatus names the functions as deployed, and reports the commit given as var.build_commit (default empty: unknown)', () => {
    assert.deepEqual({ action: parsed.locals['action_name'], worker: parsed.locals['worker_name'], notify: parsed.locals['notify_name'] }, FUNCTION_NAMES);
    assert.equal(envLocal(parsed, 'action_only_env')['BUILD_COMMIT'], '${var.build_commit}');
    assert.equal(parsed.variable['build_commit']?.[0]?.['default'], '');
  });

  void it('reports a missing variable', async () => {
    const m = copy();
    delete envLocal(m, 'worker_only_env')['GMAIL_DELEGATED_SERVICE_ACCOUNT'];
    assertReports(await checkFunctionEnvironment(m, ENV, ENV_MATRIX), 'google_cloudfunctions2_function.worker: GMAIL_DELEGATED_SERVICE_ACCOUNT is not set');
    const n = copy();
    delete envLocal(n, 'view_env')['GMAIL_VIEW_CLIENT_ID'];
    assertReports(await checkFunctionEnvironment(n, ENV, ENV_MATRIX), 'GMAIL_VIEW_CLIENT_ID is not set when var.view_enabled');
  });

  void it("reports a variable given to a function the matrix does not give it to (the old shared environment)", async () => {
    const m = copy();
    envLocal(m, 'common_env')['GMAIL_DELEGATED_SERVICE_ACCOUNT'] = '${google_service_account.gmail_delegate.email}';
    assertReports(await checkFunctionEnvironment(m, ENV, ENV_MATRIX), 'action: GMAIL_DELEGATED_SERVICE_ACCOUNT is set, but the environment matrix does not give it to action');
    const n = await withText('locals.tf', 'var.view_enabled ? local.view_env : {}', 'local.view_env');
    assertReports(await checkFunctionEnvironment(n, ENV, ENV_MATRIX), 'GMAIL_VIEW_SERVICE_ACCOUNT is set, but the environment matrix does not give it to action');
  });

  void it('reports an environment the checks cannot read', async () => {
    const m = await withText('locals.tf', 'worker_env = merge(local.common_env, local.worker_only_env)', 'worker_env = merge(local.common_env, jsondecode("{}"))');
    assertReports(await checkFunctionEnvironment(m, ENV, ENV_MATRIX), 'environment_variables is not a map (or merge of maps) the checks can read');
  });

  void it('reports an emulator variable, in the runtime or the build environment', async () => {
    const m = copy();
    env(m)['FIRESTORE_EMULATOR_HOST'] = '127.0.0.1:8080';
    assertReports(await checkFunctionEnvironment(m, ENV, ENV_MATRIX), 'emulator variable FIRESTORE_EMULATOR_HOST is set');
    const n = copy();
    const build = first(body(n, 'google_cloudfunctions2_function', 'worker')['build_config']);
    assert.ok(build);
    build['environment_variables'] = { GMAIL_API_ROOT_URL: 'http://127.0.0.1:8124' };
    assertReports(await checkFunctionEnvironment(n, ENV, ENV_MATRIX), 'GMAIL_API_ROOT_URL is set in the build environment');
  });

  void it('reports the secret or unknown variables set as plain variables', async () => {
    const m = copy();
    env(m)['ACTION_SHARED_SECRET'] = 'in-the-clear-secret';
    env(m)['WORKER_LEASE_S'] = '60';
    env(m)['DEBUG'] = '1';
    assertReports(await checkFunctionEnvironment(m, ENV, ENV_MATRIX), 'ACTION_SHARED_SECRET is set, but the environment matrix does not give it to action (the secret comes from Secret Manager only)', 'WORKER_LEASE_S is set, but', 'DEBUG is not a variable the functions read');
  });

  void it('reports a matrix naming variables the functions do not read, or leaving a production variable out', async () => {
    const matrix: EnvMatrix = { ...ENV_MATRIX, worker: { always: [...COMMON_ENV, 'WORKER_TIME_BUDGET_S', 'GMAIL_DELEGATED_SERVICE_ACCOUNT', 'NOPE'] } };
    assertReports(await checkFunctionEnvironment(parsed, ENV, matrix), 'gives worker NOPE', 'production variable GMAIL_DELEGATED_CLIENT_ID is set on no function');
  });

  void it('reports a secret variable that is not gated, not ACTION_SHARED_SECRET, or on the worker', async () => {
    const ungated = await withText('functions.tf', 'for_each = var.action_shared_secret_enabled ? [1] : []', 'for_each = [1]');
    assertReports(await checkFunctionEnvironment(ungated, ENV, ENV_MATRIX), 'is not gated by an off-by-default bool variable');
    const renamed = await withText('functions.tf', 'key        = "ACTION_SHARED_SECRET"', 'key        = "OIDC_JWKS_URL"');
    assertReports(await checkFunctionEnvironment(renamed, ENV, ENV_MATRIX), 'secret variable OIDC_JWKS_URL is not ACTION_SHARED_SECRET', 'emulator variable OIDC_JWKS_URL is set from a secret');
    const m = copy();
    serviceConfig(m, 'worker')['dynamic'] = structuredClone(serviceConfig(m, 'action')['dynamic'] ?? null);
    assertReports(await checkFunctionEnvironment(m, ENV, ENV_MATRIX), 'only action takes ACTION_SHARED_SECRET');
  });
});

void describe('function settings', () => {
  void it('nodejs22, one source, worker timeout 1800 s above the time budget', async () => {
    assert.deepEqual(await checkFunctionSettings(parsed), []);
  });

  void it('reports a worker timeout other than 30 minutes, or a budget that does not fit', async () => {
    const m = copy();
    m.locals['worker_timeout_s'] = 600;
    assertReports(await checkFunctionSettings(m), 'timeout_seconds is 600', 'must be below the timeout');
    const n = copy();
    n.locals['worker_time_budget_s'] = 1800;
    assertReports(await checkFunctionSettings(n), 'WORKER_TIME_BUDGET_S (1800)');
  });

  void it('reports another runtime', async () => {
    const m = await withText('functions.tf', /runtime           = "nodejs22"/, 'runtime           = "nodejs20"');
    assertReports(await checkFunctionSettings(m), 'runtime nodejs20');
  });
});

void describe('scheduled tasks', () => {
  void it('every task with a schedule in the examples gets a job, calling action with Schedule=true as the scheduler account', async () => {
    assert.ok(examples.some((e) => e.source === 'infra/terraform.tfvars.example'));
    assert.deepEqual(await checkScheduledTasks(parsed, examples), []);
  });

  void it('reports a filter that drops scheduled tasks', async () => {
    const m = await withText('locals.tf', 'try(task.schedule, null) != null', 'try(task.schedul, null) != null');
    assertReports(await checkScheduledTasks(m, examples), 'task SALES has a schedule but gets no scheduler job');
  });

  void it('reports a filter that also schedules unscheduled tasks', async () => {
    const m = await withText('locals.tf', 'if try(task.schedule, null) != null', 'if try(task.users, null) != null || can(task.schedule)');
    assertReports(await checkScheduledTasks(m, examples), 'task LEGALHOLD has no schedule but gets a scheduler job');
  });

  void it('reports jobs that do not iterate over the tasks', async () => {
    const m = copy();
    delete body(m, 'google_cloud_scheduler_job', 'sync')['for_each'];
    assertReports(await checkScheduledTasks(m, examples), 'expected one google_cloud_scheduler_job with for_each');
    const n = await withText('locals.tf', 'for name, task in local.tasks : name => task if', 'for name, task in var.labels : name => task if');
    assertReports(await checkScheduledTasks(n, examples), 'not over the tasks of var.connector_config');
  });

  void it('reports a URL without Schedule=true or TaskSections, and a wrong method', async () => {
    const m = await withText('scheduler.tf', '&Schedule=true', '');
    assertReports(await checkScheduledTasks(m, examples), 'lacks Schedule=true');
    const n = await withText('scheduler.tf', 'TaskSections=${urlencode(each.key)}', 'TaskSections=ALL');
    assertReports(await checkScheduledTasks(n, examples), 'TaskSections to the task');
    const o = await withText('scheduler.tf', 'http_method = "GET"', 'http_method = "POST"');
    assertReports(await checkScheduledTasks(o, examples), 'http_method must be GET');
  });

  void it('reports a job calling as an account that may not invoke action', async () => {
    const m = await withText('scheduler.tf', 'service_account_email = google_service_account.scheduler.email', 'service_account_email = google_service_account.tasks_invoker.email');
    assertReports(await checkScheduledTasks(m, examples), 'has no run.invoker grant on action', 'may invoke the worker too');
  });

  void it('evaluates the filter on the example data, not on its text', async () => {
    const noSchedule: ExampleConfig = { source: 'test', config: { tasks: { A: { users: ['a@example.com'] } } } };
    assertReports(await checkScheduledTasks(parsed, [noSchedule]), 'no example configuration schedules a task');
    const nullSchedule: ExampleConfig = {
      source: 'test',
      config: { tasks: { A: { users: ['a@example.com'], schedule: null }, B: { users: ['b@example.com'], schedule: { cron: '0 * * * *' } } } },
    };
    assert.deepEqual(await checkScheduledTasks(parsed, [nullSchedule]), []);
  });
});

void describe('the reconcile job', () => {
  void it('POSTs to WORKER_URL/reconcile every 5 minutes (Etc/UTC) with the tasks OIDC token for the worker audience', async () => {
    assert.deepEqual(await checkReconcileJob(parsed), []);
  });

  void it('reports a module without the job', async () => {
    const m = copy();
    delete m.resource['google_cloud_scheduler_job']?.['reconcile'];
    assertReports(await checkReconcileJob(m), "no google_cloud_scheduler_job calls the worker's /reconcile route");
  });

  void it('reports another route, host or method', async () => {
    const m = await withText('scheduler.tf', 'uri         = "${local.worker_url}/reconcile"', 'uri         = "${local.worker_url}/reconciler"');
    assertReports(await checkReconcileJob(m), 'not https://');
    const n = await withText('scheduler.tf', 'uri         = "${local.worker_url}/reconcile"', 'uri         = "${google_cloudfunctions2_function.action.service_config[0].uri}/reconcile"');
    assertReports(await checkReconcileJob(n), '(WORKER_URL + /reconcile)');
    const o = await withText('scheduler.tf', 'http_method = "POST"', 'http_method = "GET"');
    assertReports(await checkReconcileJob(o), 'http_method must be POST, got GET');
  });

  void it('reports an OIDC token of another account, or for another audience', async () => {
    const m = await withText('scheduler.tf', /service_account_email = google_service_account\.tasks_invoker\.email\n(\s*)audience {14}= local\.worker_url/, 'service_account_email = google_service_account.scheduler.email\n$1audience              = local.worker_url');
    assertReports(await checkReconcileJob(m), 'is not TASKS_INVOKER_SERVICE_ACCOUNT', 'google_service_account.scheduler has no run.invoker grant on the worker');
    const n = await withText('scheduler.tf', 'audience              = local.worker_url', 'audience              = "${local.worker_url}/reconcile"');
    assertReports(await checkReconcileJob(n), "the job's OIDC audience");
    const o = await withText('scheduler.tf', /\n\s*audience {14}= local\.worker_url\n/, '\n');
    assertReports(await checkReconcileJob(o), '(unset, the full URI) is not WORKER_URL');
  });

  void it('reports a schedule not taken from var.reconcile_schedule, another default, or another time zone', async () => {
    const m = await withText('scheduler.tf', 'schedule    = var.reconcile_schedule', 'schedule    = "*/5 * * * *"');
    assertReports(await checkReconcileJob(m), 'schedule must be var.reconcile_schedule');
    const n = await withText('variables.tf', 'default     = "*/5 * * * *"', 'default     = "0 * * * *"');
    assertReports(await checkReconcileJob(n), 'default must be "*/5 * * * *"');
    const o = copy();
    body(o, 'google_cloud_scheduler_job', 'reconcile')['time_zone'] = 'Europe/Paris';
    assertReports(await checkReconcileJob(o), 'time_zone must be Etc/UTC');
  });

  void it('reports many retries and a deadline beyond the worker timeout', async () => {
    const m = await withText('scheduler.tf', 'retry_count = 0', 'retry_count = 5');
    assertReports(await checkReconcileJob(m), 'retry_count 5');
    const n = await withText('scheduler.tf', 'attempt_deadline = "300s"', 'attempt_deadline = "3600s"');
    assertReports(await checkReconcileJob(n), 'attempt_deadline must be set');
  });
});

void describe('Gmail push', () => {
  void it('Gmail alone publishes to the topic; the subscription pushes to notify with the push account\'s token for its URL, with dead letters; notify is internal, invoked by the push account only; the renewal job POSTs /watches', () => {
    assert.deepEqual(checkPush(parsed), []);
  });

  void it('reports another publisher, a wrong push endpoint or audience, a public notify, a second invoker, a missing dead-letter right and a missing renewal job', async () => {
    assertReports(
      checkPush(await withText('push.tf', 'member  = local.gmail_push_publisher', 'member  = "allUsers"')),
      'its only grant must be roles/pubsub.publisher',
    );
    assertReports(checkPush(await withText('push.tf', 'push_endpoint = local.notify_url', 'push_endpoint = local.worker_url')), 'push_endpoint must be notify\'s URL');
    assertReports(checkPush(await withText('push.tf', /audience              = local.notify_url/, 'audience              = local.action_url')), 'oidc_token.audience must be NOTIFY_URL');
    const m = copy();
    const svc = serviceConfig(m, 'notify');
    svc['ingress_settings'] = 'ALLOW_ALL';
    assertReports(checkPush(m), 'ingress_settings must be ALLOW_INTERNAL_ONLY');
    const n = copy();
    const invokers = n.resource['google_cloud_run_service_iam_member'] ?? {};
    invokers['notify_extra'] = [{ ...structuredClone(body(n, 'google_cloud_run_service_iam_member', 'notify_push_invoker')), member: '${google_service_account.scheduler.member}' }];
    assertReports(checkPush(n), 'its only invoker must be the push account');
    const d = copy();
    delete d.resource['google_pubsub_topic_iam_member']?.['dead_letter_publisher'];
    delete d.resource['google_service_account_iam_member']?.['pubsub_mints_push_tokens'];
    assertReports(checkPush(d), 'roles/pubsub.publisher on the dead-letter topic', "mint the push account's OIDC tokens");
    const j = copy();
    delete j.resource['google_cloud_scheduler_job']?.['watches'];
    assertReports(checkPush(j), "POST to the worker's /watches");
  });
});

void describe('the identity matrix', () => {
  void it('the code of each function needs what the matrix says, and nothing the table does not know', () => {
    assert.deepEqual(unknownGoogleCalls(ROOT), []);
    assert.deepEqual([...(needs.get('action') ?? [])].sort(), [
      'actAs:TASKS_INVOKER_SERVICE_ACCOUNT',
      'cloudtasks.queues.get',
      'cloudtasks.queues.pause',
      'cloudtasks.queues.resume',
      'cloudtasks.tasks.create',
      'cloudtasks.tasks.delete',
      'cloudtasks.tasks.get',
      'firestore',
      'signJwt:GMAIL_VIEW_SERVICE_ACCOUNT',
    ]);
    assert.deepEqual([...(needs.get('worker') ?? [])].sort(), ['actAs:TASKS_INVOKER_SERVICE_ACCOUNT', 'cloudtasks.tasks.create', 'cloudtasks.tasks.get', 'firestore', 'signJwt:GMAIL_DELEGATED_SERVICE_ACCOUNT', 'storage.objects.create', 'storage.objects.get']);
  });

  void it('every account holds exactly its grants of the matrix, covering what its code needs', async () => {
    assert.deepEqual(await checkIdentityMatrix(parsed, IDENTITY_MATRIX, needs), []);
  });

  void it('each matrix grant says why', () => {
    for (const [account, grants] of Object.entries(IDENTITY_MATRIX)) {
      for (const g of grants) assert.ok(g.why.length > 10, `${account}: "${g.grant}" has no reason`);
    }
  });

  void it('reports the old wiring: one runtime account for both functions with Token Creator and the wide queue roles', async () => {
    const m = copy();
    const accounts = m.resource['google_service_account'] ?? {};
    accounts['runtime'] = accounts['worker'] ?? [];
    serviceConfig(m, 'action')['service_account_email'] = '${google_service_account.runtime.email}';
    serviceConfig(m, 'worker')['service_account_email'] = '${google_service_account.runtime.email}';
    body(m, 'google_service_account_iam_member', 'worker_signs_for_delegate')['member'] = '${google_service_account.runtime.member}';
    body(m, 'google_service_account_iam_member', 'worker_signs_for_delegate')['role'] = 'roles/iam.serviceAccountTokenCreator';
    body(m, 'google_cloud_tasks_queue_iam_member', 'worker_queue')['role'] = 'roles/cloudtasks.enqueuer';
    assertReports(
      await checkIdentityMatrix(m, IDENTITY_MATRIX, needs),
      'google_service_account.runtime is not in the identity matrix',
      'google_service_account.worker lacks "serviceAccount:gmail_delegate {iam.serviceAccounts.signJwt}"',
    );
  });

  void it('reports a grant the matrix does not list, and one it lists that is missing', async () => {
    const m = copy();
    body(m, 'google_service_account_iam_member', 'worker_signs_for_delegate')['role'] = 'roles/iam.serviceAccountTokenCreator';
    assertReports(await checkIdentityMatrix(m, IDENTITY_MATRIX, needs), 'is granted "serviceAccount:gmail_delegate roles/iam.serviceAccountTokenCreator"', 'lacks "serviceAccount:gmail_delegate {iam.serviceAccounts.signJwt}"');
    const n = copy();
    body(n, 'google_project_iam_custom_role', 'worker_queue')['permissions'] = ['cloudtasks.tasks.create', 'cloudtasks.tasks.get', 'cloudtasks.tasks.delete'];
    assertReports(await checkIdentityMatrix(n, IDENTITY_MATRIX, needs), 'google_service_account.worker is granted "queue:fetch {cloudtasks.tasks.create,cloudtasks.tasks.delete,cloudtasks.tasks.get}"');
    const o = copy();
    delete o.resource['google_service_account_iam_member']?.['action_signs_for_view'];
    assertReports(await checkIdentityMatrix(o, IDENTITY_MATRIX, needs), 'google_service_account.action lacks "serviceAccount:gmail_view {iam.serviceAccounts.signJwt} if var.view_enabled"');
    const p = copy();
    body(p, 'google_project_iam_member', 'worker_datastore_user')['role'] = 'roles/datastore.owner';
    assertReports(await checkIdentityMatrix(p, IDENTITY_MATRIX, needs), 'is granted "project roles/datastore.owner"');
  });

  void it('reports the delegation right given to action, which can then mint a token for any mailbox', async () => {
    const m = copy();
    body(m, 'google_service_account_iam_member', 'action_signs_for_view')['service_account_id'] = '${google_service_account.gmail_delegate.name}';
    assertReports(await checkIdentityMatrix(m, IDENTITY_MATRIX, needs), 'google_service_account.action is granted "serviceAccount:gmail_delegate {iam.serviceAccounts.signJwt} if var.view_enabled"');
  });

  void it('reports code that needs a right the matrix does not cover, and a grant the code no longer needs', async () => {
    const more = new Map(needs);
    more.set('worker', new Set([...(needs.get('worker') ?? []), 'cloudtasks.tasks.delete']));
    assertReports(await checkIdentityMatrix(parsed, IDENTITY_MATRIX, more), "worker's code needs cloudtasks.tasks.delete, which no grant");
    const less = new Map(needs);
    less.set('worker', new Set([...(needs.get('worker') ?? [])].filter((x) => x !== 'cloudtasks.tasks.get')));
    assertReports(await checkIdentityMatrix(parsed, IDENTITY_MATRIX, less), 'for cloudtasks.tasks.get, which worker\'s code no longer needs');
  });

  void it('reports a signing right on another account than the one the environment names', async () => {
    const m = copy();
    envLocal(m, 'worker_only_env')['GMAIL_DELEGATED_SERVICE_ACCOUNT'] = '${google_service_account.scheduler.email}';
    assertReports(await checkIdentityMatrix(m, IDENTITY_MATRIX, needs), 'needs iam.serviceAccounts.signJwt on the account GMAIL_DELEGATED_SERVICE_ACCOUNT names (scheduler)');
  });

  void it('the matrix covers a right the code does not show yet only when it is planned', async () => {
    const withoutView = new Map(needs);
    withoutView.set('action', new Set([...(needs.get('action') ?? [])].filter((x) => x !== 'signJwt:GMAIL_VIEW_SERVICE_ACCOUNT')));
    assertReports(await checkIdentityMatrix(parsed, IDENTITY_MATRIX, withoutView), "for signJwt:GMAIL_VIEW_SERVICE_ACCOUNT, which action's code no longer needs");
    const planned: Record<string, MatrixGrant[]> = {
      ...IDENTITY_MATRIX,
      action: (IDENTITY_MATRIX['action'] ?? []).map((g) => (g.covers.includes('signJwt:GMAIL_VIEW_SERVICE_ACCOUNT') ? { ...g, planned: true } : g)),
    };
    assert.deepEqual(await checkIdentityMatrix(parsed, planned, withoutView), []);
  });

  void it("reports action's code reaching the worker's delegated account", async () => {
    const more = new Map(needs);
    more.set('action', new Set([...(needs.get('action') ?? []), 'signJwt:GMAIL_DELEGATED_SERVICE_ACCOUNT']));
    assertReports(await checkIdentityMatrix(parsed, IDENTITY_MATRIX, more), "action's code needs signJwt:GMAIL_DELEGATED_SERVICE_ACCOUNT, which no grant of google_service_account.action");
  });

  void it('renders each grant with its scope, its permissions and its gate', async () => {
    const grants = await grantsByAccount(parsed);
    assert.deepEqual(grants.get('tasks_invoker'), ['function:worker roles/run.invoker']);
    assert.deepEqual(grants.get('gmail_delegate'), []);
  });
});

void describe('the worker is internal', () => {
  void it('takes internal traffic only, from the tasks account only', async () => {
    assert.deepEqual(await checkWorkerIngress(parsed), []);
  });

  void it('reports the old ALLOW_ALL ingress and another invoker', async () => {
    const m = await withText('functions.tf', 'ingress_settings               = "ALLOW_INTERNAL_ONLY"', 'ingress_settings               = "ALLOW_ALL"');
    assertReports(await checkWorkerIngress(m), 'ingress_settings is ALLOW_ALL');
    const n = copy();
    body(n, 'google_cloud_run_service_iam_member', 'worker_tasks_invoker')['member'] = 'user:ops@example.com';
    assertReports(await checkWorkerIngress(n), 'user:ops@example.com may invoke the worker');
  });
});

void describe('a first apply that works', () => {
  void it('Terraform 1.11, no google-beta, the quota project on the provider, APIs through an alias, a gcs backend', async () => {
    assert.deepEqual(await checkProvidersAndState(parsed, backendExample), []);
  });

  void it('reports the old versions.tf', async () => {
    const old = `terraform {
  required_version = ">= 1.5.0"
  required_providers {
    google      = { source = "hashicorp/google", version = "~> 7.45" }
    google-beta = { source = "hashicorp/google-beta", version = "~> 7.45" }
  }
}
provider "google" {
  project = var.project_id
}
provider "google-beta" {
  project = var.project_id
}
`;
    const m = await parseModuleTexts({ ...texts, 'versions.tf': old });
    assertReports(
      await checkProvidersAndState(m, undefined),
      'required_version ">= 1.5.0" must be at least 1.11.0',
      'required_providers names google-beta',
      'user_project_override must be true',
      'billing_project must be var.project_id',
      'no backend "gcs" block',
      'backend.hcl.example is missing',
      'enable the APIs through a provider alias',
    );
  });
});

void describe('no secret in state', () => {
  void it('the secret is ephemeral and written only through secret_data_wo', async () => {
    assert.deepEqual(await checkSecretNotInState(parsed), []);
  });

  void it('reports secret_data, a non-ephemeral variable, and the secret in a scheduler header', async () => {
    const m = await withText('secret.tf', /secret_data_wo {9}= var\.action_shared_secret\n\s*secret_data_wo_version = var\.action_shared_secret_version/, 'secret_data = var.action_shared_secret');
    assertReports(await checkSecretNotInState(m), 'secret_data is stored in state', 'needs secret_data_wo_version');
    const n = await withText('variables.tf', '  ephemeral   = true\n', '');
    assertReports(await checkSecretNotInState(n), 'variable "action_shared_secret" must be ephemeral');
    const o = await withText('scheduler.tf', 'http_method = "GET"', 'http_method = "GET"\n    headers     = { "X-ACI-Secret" = var.action_shared_secret }');
    assertReports(await checkSecretNotInState(o), 'var.action_shared_secret is used in google_cloud_scheduler_job.sync.http_target');
    assertReports(await checkScheduledTasks(o, examples), 'a scheduler job carries no secret');
  });
});

void describe('Firestore location', () => {
  void it('is derived from the region and checked against its continent', async () => {
    assert.deepEqual(await checkFirestoreLocation(parsed), []);
  });

  void it('reports the old unchecked nam5 default', async () => {
    const m = await withText('firestore.tf', 'location_id             = local.firestore_location', 'location_id             = var.firestore_location');
    const lifecycle = body(m, 'google_firestore_database', 'default');
    delete lifecycle['lifecycle'];
    const variable = m.variable['firestore_location']?.[0];
    assert.ok(variable);
    variable['default'] = 'nam5';
    assertReports(await checkFirestoreLocation(m), 'not the checked firestore_location', 'no precondition compares', 'defaults to "nam5"');
  });

  void it('reports a precondition that cannot be overridden', async () => {
    const m = await withText('firestore.tf', 'var.firestore_location_any_continent || ', '');
    assertReports(await checkFirestoreLocation(m), 'no off-by-default variable to override it');
  });
});

void describe('retention', () => {
  void it('TTL policies on expireAt of actions and mailboxes, and ACTION_RETENTION_DAYS from action_retention_days', async () => {
    assert.deepEqual(await checkRetention(parsed, indexesFile), []);
  });

  void it('reports no TTL policy, a policy on another field or group, and an indexed TTL field', async () => {
    const m = copy();
    delete m.resource['google_firestore_field']?.['expire_at'];
    assertReports(
      await checkRetention(m, indexesFile),
      'no TTL policy on expireAt in collection group actions',
      'no TTL policy on expireAt in collection group mailboxes',
      'no TTL policy on expireAt in collection group results',
      'no TTL policy on expireAt in collection group locks',
      'no TTL policy on expireAt in collection group totals',
      'no TTL policy on expireAt in collection group gmailAddresses',
      'no TTL policy on expireAt in collection group actionIds',
    );
    const n = await withText('firestore.tf', 'for_each = toset(["actions", "mailboxes", "results", "locks", "totals", "gmailAddresses", "actionIds"])', 'for_each = toset(["actions", "state", "results", "locks", "totals", "gmailAddresses", "actionIds"])');
    assertReports(await checkRetention(n, indexesFile), 'no TTL policy on expireAt in collection group mailboxes');
    const o = await withText('firestore.tf', 'field      = "expireAt"', 'field      = "expiresAt"');
    assertReports(await checkRetention(o, indexesFile), 'the TTL field is expiresAt');
    const p = await withText('firestore.tf', /\n  ttl_config \{\}\n\n  index_config \{\}\n/, '\n  ttl_config {}\n');
    assertReports(await checkRetention(p, indexesFile), 'exempt the TTL field from single-field indexes');
  });

  void it('reports a function without ACTION_RETENTION_DAYS, and an override of expireAt in firestore.indexes.json', async () => {
    const m = copy();
    delete envLocal(m, 'common_env')['ACTION_RETENTION_DAYS'];
    assertReports(await checkRetention(m, indexesFile), 'google_cloudfunctions2_function.action: ACTION_RETENTION_DAYS must come from var.action_retention_days');
    const file = structuredClone(indexesFile) as JsonObject;
    (file['fieldOverrides'] as Json[]).push({ collectionGroup: 'actions', fieldPath: 'expireAt', indexes: [] });
    assertReports(await checkRetention(parsed, file), 'firestore.indexes.json overrides actions.expireAt');
  });
});

void describe('Firestore', () => {
  void it('firestore.indexes.json holds an index for every composite query the code makes', () => {
    assert.deepEqual(checkFirestoreIndexes(indexesFile, QUERIES), []);
  });

  void it('reports a query without its index', () => {
    const file = structuredClone(indexesFile) as JsonObject;
    // The index of activeSyncOfTask (scheduleKey, status, queuedAt), wherever it is in the file.
    file['indexes'] = (file['indexes'] as JsonObject[]).filter((x) => !(x['fields'] as JsonObject[]).some((f) => f['fieldPath'] === 'scheduleKey'));
    assertReports(checkFirestoreIndexes(file, QUERIES), 'query activeSyncOfTask');
  });

  void it('reports an index whose fields are in another order', () => {
    const file = structuredClone(indexesFile) as JsonObject;
    const index = (file['indexes'] as JsonObject[])[0];
    assert.ok(index);
    (index['fields'] as Json[]).reverse();
    assertReports(checkFirestoreIndexes(file, QUERIES), 'query actionsByStatus', 'order matters');
  });

  void it('reports an index with another direction or scope', () => {
    const file = structuredClone(indexesFile) as JsonObject;
    // The index of activeSyncOfTask (scheduleKey, status, queuedAt), wherever it is in the file.
    const index = (file['indexes'] as JsonObject[]).find((x) => (x['fields'] as JsonObject[]).some((f) => f['fieldPath'] === 'scheduleKey'));
    assert.ok(index);
    const fields = index['fields'] as JsonObject[];
    const last = fields[fields.length - 1];
    assert.ok(last);
    last['order'] = 'ASCENDING';
    assertReports(checkFirestoreIndexes(file, QUERIES), 'query activeSyncOfTask');
    const other = structuredClone(indexesFile) as JsonObject;
    const first0 = (other['indexes'] as JsonObject[])[0];
    assert.ok(first0);
    first0['queryScope'] = 'COLLECTION_GROUP';
    assertReports(checkFirestoreIndexes(other, QUERIES), 'query actionsByStatus');
  });

  void it('Terraform deploys the indexes, field overrides and rules of the repository', async () => {
    assert.deepEqual(await checkFirestoreDeployment(parsed), []);
    const m = await withText('firestore.tf', 'for_each = local.firestore_composite_indexes', 'for_each = {}');
    assertReports(await checkFirestoreDeployment(m), 'google_firestore_index.composite: for_each does not come from firestore.indexes.json');
    const n = await withText('firestore.tf', 'name         = "cloud.firestore"', 'name         = "cloud.storage"');
    assertReports(await checkFirestoreDeployment(n), 'no google_firebaserules_release "cloud.firestore"');
  });

  void it('firestore.rules denies every client access', () => {
    assert.deepEqual(checkFirestoreRules(rulesText), []);
    assertReports(checkFirestoreRules(rulesText.replace('if false', 'if request.auth != null')), 'allows when request.auth != null');
    assertReports(checkFirestoreRules(rulesText.replace('allow read, write: if false;', 'allow read;')), 'has no condition');
  });
});

void describe('Gmail scopes per mode', () => {
  /** What the code asks for: reading (View and the reading actions), every action's scopes, and Delete's with Permanent=true. */
  function codeModes(): Record<string, string[]> {
    const specs = Object.values(FETCH_REGISTRY);
    const gmailScope = (s: string) => s.includes('gmail') || s === 'https://mail.google.com/';
    const readOnly = [...GMAIL_SCOPES];
    const writes = [...new Set([...readOnly, ...specs.flatMap((s) => s.scopes)])].filter(gmailScope);
    const permanent = [...new Set([...writes, ...specs.flatMap((s) => s.scopesFor?.({ permanent: true }) ?? [])])].filter(gmailScope);
    return { 'read-only': readOnly, writes, 'permanent-delete': permanent };
  }

  void it('read-only, writes and permanent-delete list exactly the scopes the fetch actions ask for', () => {
    const modes = codeModes();
    assert.deepEqual(modes, {
      'read-only': ['https://www.googleapis.com/auth/gmail.readonly'],
      writes: ['https://www.googleapis.com/auth/gmail.readonly', 'https://www.googleapis.com/auth/gmail.insert', 'https://www.googleapis.com/auth/gmail.modify'],
      'permanent-delete': ['https://www.googleapis.com/auth/gmail.readonly', 'https://www.googleapis.com/auth/gmail.insert', 'https://www.googleapis.com/auth/gmail.modify', 'https://mail.google.com/'],
    });
    assert.deepEqual(checkGmailScopeModes(parsed, modes), []);
  });

  void it('reports a scope missing from a mode, one too many, and an output or delegation list not built from them', async () => {
    const modes = codeModes();
    const m = await withText('locals.tf', '"https://www.googleapis.com/auth/gmail.insert",\n    ]\n    "permanent-delete"', ']\n    "permanent-delete"');
    assertReports(checkGmailScopeModes(m, modes), 'mode writes lacks https://www.googleapis.com/auth/gmail.insert');
    const n = await withText('locals.tf', '"read-only" = ["https://www.googleapis.com/auth/gmail.readonly"]', '"read-only" = ["https://www.googleapis.com/auth/gmail.readonly", "https://mail.google.com/"]');
    assertReports(checkGmailScopeModes(n, modes), 'mode read-only lists https://mail.google.com/');
    const o = await withText('outputs.tf', 'for mode, scopes in local.gmail_scopes_by_mode', 'for mode, scopes in {}');
    assertReports(checkGmailScopeModes(o, modes), 'no output gmail_scopes_by_mode');
    const p = await withText('locals.tf', 'local.gmail_scopes_by_mode[local.gmail_mode],', '["https://www.googleapis.com/auth/gmail.readonly"],');
    assertReports(checkGmailScopeModes(p, modes), 'local.delegation_scopes is not built from local.gmail_scopes_by_mode');
  });
});
