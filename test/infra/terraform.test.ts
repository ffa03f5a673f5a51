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
import {
  checkFirestoreDeployment,
  checkFirestoreIndexes,
  checkFirestoreRules,
  checkFunctionEnvironment,
  checkFunctionSettings,
  checkPublicAccess,
  checkReconcileJob,
  checkReferences,
  checkScheduledTasks,
  checkTaskWiring,
  checkVariables,
  checkWorkerQueueAccess,
  first,
  isObject,
  loadExampleConfigs,
  parseModuleTexts,
  readModuleTexts,
  type ExampleConfig,
  type Json,
  type JsonObject,
  type TfModule,
} from './terraform.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const ENV = { production: PRODUCTION_ENV_VARS, optional: OPTIONAL_ENV_VARS, emulator: EMULATOR_ENV_VARS };

let texts: Record<string, string>;
let parsed: TfModule;
let examples: ExampleConfig[];
let indexesFile: Json;
let rulesText: string;

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
  const value = m.locals['function_env'];
  assert.ok(isObject(value), 'local.function_env is not a map');
  return value;
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
});

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
    const n = await withText('queue.tf', 'service_account_email = google_service_account.tasks_invoker.email', 'service_account_email = google_service_account.runtime.email');
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

  void it('reports a runtime account that may not act as the invoker account', async () => {
    const m = copy();
    delete m.resource['google_service_account_iam_member']?.['runtime_acts_as_tasks_invoker'];
    assertReports(await checkTaskWiring(m), 'roles/iam.serviceAccountUser');
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
  void it('is exactly PRODUCTION_ENV_VARS, plus ACTION_SHARED_SECRET from the opt-in secret', async () => {
    assert.deepEqual(await checkFunctionEnvironment(parsed, ENV), []);
  });

  void it('reports a missing production variable', async () => {
    const m = copy();
    delete env(m)['GMAIL_DELEGATED_SERVICE_ACCOUNT'];
    assertReports(await checkFunctionEnvironment(m, ENV), 'GMAIL_DELEGATED_SERVICE_ACCOUNT is not set');
  });

  void it('reports an emulator variable, in the runtime or the build environment', async () => {
    const m = copy();
    env(m)['FIRESTORE_EMULATOR_HOST'] = '127.0.0.1:8080';
    assertReports(await checkFunctionEnvironment(m, ENV), 'emulator variable FIRESTORE_EMULATOR_HOST is set');
    const n = copy();
    const build = first(body(n, 'google_cloudfunctions2_function', 'worker')['build_config']);
    assert.ok(build);
    build['environment_variables'] = { GMAIL_API_ROOT_URL: 'http://127.0.0.1:8124' };
    assertReports(await checkFunctionEnvironment(n, ENV), 'GMAIL_API_ROOT_URL is set in the build environment');
  });

  void it('reports optional and unknown variables set as plain variables', async () => {
    const m = copy();
    env(m)['ACTION_SHARED_SECRET'] = 'in-the-clear-secret';
    env(m)['WORKER_LEASE_S'] = '60';
    env(m)['DEBUG'] = '1';
    assertReports(await checkFunctionEnvironment(m, ENV), 'ACTION_SHARED_SECRET is set as a plain variable', 'WORKER_LEASE_S is set as a plain variable', 'DEBUG is not a variable the functions read');
  });

  void it('reports a secret variable that is not gated, not ACTION_SHARED_SECRET, or on the worker', async () => {
    const ungated = await withText('functions.tf', 'for_each = var.action_shared_secret_enabled ? [1] : []', 'for_each = [1]');
    assertReports(await checkFunctionEnvironment(ungated, ENV), 'is not gated by an off-by-default bool variable');
    const renamed = await withText('functions.tf', 'key        = "ACTION_SHARED_SECRET"', 'key        = "OIDC_JWKS_URL"');
    assertReports(await checkFunctionEnvironment(renamed, ENV), 'secret variable OIDC_JWKS_URL is not ACTION_SHARED_SECRET', 'emulator variable OIDC_JWKS_URL is set from a secret');
    const m = copy();
    serviceConfig(m, 'worker')['dynamic'] = structuredClone(serviceConfig(m, 'action')['dynamic'] ?? null);
    assertReports(await checkFunctionEnvironment(m, ENV), 'only action takes ACTION_SHARED_SECRET');
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

void describe("the worker's account on the queue", () => {
  void it('may get, list and create tasks on the fetch queue, and holds nothing about Cloud Tasks project-wide', async () => {
    assert.deepEqual(await checkWorkerQueueAccess(parsed), []);
  });

  void it('reports a runtime account without get/list (or create) on the queue', async () => {
    const m = copy();
    delete m.resource['google_cloud_tasks_queue_iam_member']?.['runtime_viewer'];
    assertReports(await checkWorkerQueueAccess(m), 'lacks cloudtasks.tasks.get', 'lacks cloudtasks.tasks.list');
    const n = copy();
    delete n.resource['google_cloud_tasks_queue_iam_member']?.['runtime_enqueuer'];
    assertReports(await checkWorkerQueueAccess(n), 'lacks cloudtasks.tasks.create');
  });

  void it('accepts a custom role holding get and list in place of the viewer role', async () => {
    const m = copy();
    body(m, 'google_project_iam_custom_role', 'queue_pauser')['permissions'] = ['cloudtasks.queues.pause', 'cloudtasks.queues.resume', 'cloudtasks.tasks.get', 'cloudtasks.tasks.list'];
    delete m.resource['google_cloud_tasks_queue_iam_member']?.['runtime_viewer'];
    assert.deepEqual(await checkWorkerQueueAccess(m), []);
  });

  void it('reports Cloud Tasks or basic roles granted project-wide, and admin roles on the queue', async () => {
    const m = copy();
    body(m, 'google_project_iam_member', 'runtime_datastore_user')['role'] = 'roles/cloudtasks.viewer';
    assertReports(await checkWorkerQueueAccess(m), 'google_project_iam_member.runtime_datastore_user: roles/cloudtasks.viewer project-wide');
    const n = copy();
    body(n, 'google_project_iam_member', 'runtime_datastore_user')['role'] = 'roles/editor';
    assertReports(await checkWorkerQueueAccess(n), 'roles/editor project-wide');
    const o = copy();
    body(o, 'google_project_iam_member', 'runtime_datastore_user')['role'] = '${google_project_iam_custom_role.queue_pauser.name}';
    assertReports(await checkWorkerQueueAccess(o), 'project-wide');
    const p = copy();
    body(p, 'google_cloud_tasks_queue_iam_member', 'runtime_viewer')['role'] = 'roles/cloudtasks.queueAdmin';
    assertReports(await checkWorkerQueueAccess(p), 'roles/cloudtasks.queueAdmin on the queue is broader');
  });
});

void describe('Firestore', () => {
  void it('firestore.indexes.json holds an index for every composite query the code makes', () => {
    assert.deepEqual(checkFirestoreIndexes(indexesFile, QUERIES), []);
  });

  void it('reports a query without its index', () => {
    const file = structuredClone(indexesFile) as JsonObject;
    (file['indexes'] as Json[]).pop();
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
    const index = (file['indexes'] as JsonObject[])[1];
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
