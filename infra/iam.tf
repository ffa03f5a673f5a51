# Service accounts and what each may do: one account per job, each with exactly the rights its
# code uses (docs/deploy.md, "Identity matrix", lists every Google call behind each grant; the offline
# tests in test/infra/ hold the same matrix and fail when a grant is added or dropped here without
# it).
#
#   action      identity of the action function: Firestore; on the fetch queue createTask (Fetch),
#               deleteTask (Cancel), getTask (the lazy reconcile of an action it reads), getQueue
#               (GetStatus's paused flag), pauseQueue/resumeQueue (Pause, Resume); actAs the tasks
#               account (tasks carry its OIDC token); the shared secret in the opt-in mode; signJwt
#               as the read-only View account when view_enabled.
#   worker      identity of the worker function: Firestore; createTask (fan-out, continuations,
#               re-queues) and getTask (reconcile) on the fetch queue; actAs the tasks account;
#               signJwt as the delegated account (Gmail and the Directory API for its users).
#   tasks       the account whose OIDC token Cloud Tasks (and the reconcile job) attaches; may
#               invoke the worker only.
#   scheduler   the account whose OIDC token Cloud Scheduler attaches; may invoke action only.
#   delegate    holds no roles; its OAuth client id is what the Workspace admin authorises for the
#               worker's scopes (domain-wide delegation), and only worker signs JWTs as it.
#   view        (view_enabled) holds no roles; authorised for gmail.readonly only; only action signs
#               JWTs as it, for the synchronous View.
#   build       Cloud Build's identity when it builds the functions from source.
#
# Predefined roles are used only where they hold nothing the code does not use beyond read-only
# metadata (roles/datastore.user); every other right comes from a custom role below that holds
# exactly the permissions named. Nothing here is granted to allUsers or allAuthenticatedUsers; the
# only public grant in the module is the opt-in one in secret.tf.

resource "google_service_account" "action" {
  project      = var.project_id
  account_id   = "gmail-connector-action"
  display_name = "Gmail connector action"
  description  = "Runtime identity of the action function (the ACI endpoint)."
  depends_on   = [google_project_service.apis]
}

resource "google_service_account" "worker" {
  project      = var.project_id
  account_id   = "gmail-connector-worker"
  display_name = "Gmail connector worker"
  description  = "Runtime identity of the worker function (the Cloud Tasks target)."
  depends_on   = [google_project_service.apis]
}

resource "google_service_account" "tasks_invoker" {
  project      = var.project_id
  account_id   = "gmail-connector-tasks"
  display_name = "Gmail connector task invoker"
  description  = "Cloud Tasks attaches this account's OIDC token to every fetch task, Cloud Scheduler to every reconcile call; it may invoke the worker only."
  depends_on   = [google_project_service.apis]
}

resource "google_service_account" "scheduler" {
  project      = var.project_id
  account_id   = "gmail-connector-scheduler"
  display_name = "Gmail connector scheduler"
  description  = "Cloud Scheduler calls action as this account; it may invoke action only."
  depends_on   = [google_project_service.apis]
}

# Re-creating this account (a new account_id, or a delete and apply) gives it a new unique id, i.e.
# a new client id, which the Workspace admin must authorise again before Gmail can be read.
resource "google_service_account" "gmail_delegate" {
  project      = var.project_id
  account_id   = var.delegated_service_account_id
  display_name = "Gmail connector domain-wide delegation"
  description  = "Authorised by the Workspace admin for domain-wide delegation (its unique id is the client id) with the worker's scopes. Holds no roles and no keys."
  depends_on   = [google_project_service.apis]
}

resource "google_service_account" "gmail_view" {
  count = var.view_enabled ? 1 : 0

  project      = var.project_id
  account_id   = var.view_service_account_id
  display_name = "Gmail connector View (read-only delegation)"
  description  = "Authorised by the Workspace admin for domain-wide delegation with gmail.readonly only; action signs JWTs as it for the synchronous View. Holds no roles and no keys."
  depends_on   = [google_project_service.apis]
}

resource "google_service_account" "build" {
  project      = var.project_id
  account_id   = "gmail-connector-build"
  display_name = "Gmail connector build"
  description  = "Cloud Build builds the connector's functions as this account."
  depends_on   = [google_project_service.apis]
}

# --- custom roles ----------------------------------------------------------------------------------
# Each holds only the permissions listed. The predefined roles that contain them are wider:
# roles/cloudtasks.enqueuer adds tasks.fullView, roles/cloudtasks.viewer lists every queue and task,
# roles/cloudtasks.queueAdmin can delete, purge and re-configure the queue and rewrite its IAM
# policy, roles/iam.serviceAccountUser adds get and list, roles/iam.serviceAccountTokenCreator mints
# access and ID tokens and signs blobs as the account.

# action on the fetch queue: createTask (Fetch), deleteTask (Cancel), getTask (lazy reconcile),
# getQueue (GetStatus), pauseQueue and resumeQueue (Pause, Resume).
resource "google_project_iam_custom_role" "action_queue" {
  project     = var.project_id
  role_id     = "gmailConnectorActionQueue"
  title       = "Gmail connector action: fetch queue"
  description = "What the action function calls on the fetch queue."
  permissions = [
    "cloudtasks.queues.get",
    "cloudtasks.queues.pause",
    "cloudtasks.queues.resume",
    "cloudtasks.tasks.create",
    "cloudtasks.tasks.delete",
    "cloudtasks.tasks.get",
  ]
  depends_on = [google_project_service.apis]
}

# worker on the fetch queue: createTask (fan-out, continuations, re-queues), getTask (reconcile).
resource "google_project_iam_custom_role" "worker_queue" {
  project     = var.project_id
  role_id     = "gmailConnectorWorkerQueue"
  title       = "Gmail connector worker: fetch queue"
  description = "What the worker function calls on the fetch queue."
  permissions = ["cloudtasks.tasks.create", "cloudtasks.tasks.get"]
  depends_on  = [google_project_service.apis]
}

# Creating a task that carries an OIDC token of the tasks account needs actAs on that account.
resource "google_project_iam_custom_role" "act_as" {
  project     = var.project_id
  role_id     = "gmailConnectorActAs"
  title       = "Gmail connector: act as an account"
  description = "iam.serviceAccounts.actAs only: create tasks that carry the account's OIDC token."
  permissions = ["iam.serviceAccounts.actAs"]
  depends_on  = [google_project_service.apis]
}

# Domain-wide delegation without key files: IAM Credentials signJwt as the delegated account.
resource "google_project_iam_custom_role" "jwt_signer" {
  project     = var.project_id
  role_id     = "gmailConnectorJwtSigner"
  title       = "Gmail connector: sign delegation JWTs"
  description = "iam.serviceAccounts.signJwt only: sign domain-wide delegation claims as the account."
  permissions = ["iam.serviceAccounts.signJwt"]
  depends_on  = [google_project_service.apis]
}

# --- both functions: Firestore ---------------------------------------------------------------------

# Read and write documents (actions, units, sync state, the sink). roles/datastore.user's other
# permissions are read-only metadata (databases.get, indexes.list, statistics); it cannot change
# indexes, rules, TTL policies or the database.
resource "google_project_iam_member" "action_datastore_user" {
  project = var.project_id
  role    = "roles/datastore.user"
  member  = google_service_account.action.member
}

resource "google_project_iam_member" "worker_datastore_user" {
  project = var.project_id
  role    = "roles/datastore.user"
  member  = google_service_account.worker.member
}

# --- the fetch queue (granted on the queue, never on the project) ----------------------------------

resource "google_cloud_tasks_queue_iam_member" "action_queue" {
  project  = var.project_id
  location = google_cloud_tasks_queue.fetch.location
  name     = google_cloud_tasks_queue.fetch.name
  role     = google_project_iam_custom_role.action_queue.name
  member   = google_service_account.action.member
}

resource "google_cloud_tasks_queue_iam_member" "worker_queue" {
  project  = var.project_id
  location = google_cloud_tasks_queue.fetch.location
  name     = google_cloud_tasks_queue.fetch.name
  role     = google_project_iam_custom_role.worker_queue.name
  member   = google_service_account.worker.member
}

# --- acting as the other accounts ------------------------------------------------------------------

# Both functions create tasks with oidcToken.serviceAccountEmail = TASKS_INVOKER_SERVICE_ACCOUNT.
resource "google_service_account_iam_member" "action_acts_as_tasks_invoker" {
  service_account_id = google_service_account.tasks_invoker.name
  role               = google_project_iam_custom_role.act_as.name
  member             = google_service_account.action.member
}

resource "google_service_account_iam_member" "worker_acts_as_tasks_invoker" {
  service_account_id = google_service_account.tasks_invoker.name
  role               = google_project_iam_custom_role.act_as.name
  member             = google_service_account.worker.member
}

# The worker signs delegation claims as the delegated account and trades them for Gmail and
# Directory tokens of the mailbox's user (gmail/client.ts).
resource "google_service_account_iam_member" "worker_signs_for_delegate" {
  service_account_id = google_service_account.gmail_delegate.name
  role               = google_project_iam_custom_role.jwt_signer.name
  member             = google_service_account.worker.member
}

# action signs claims only as the read-only View account, and only when View is on.
resource "google_service_account_iam_member" "action_signs_for_view" {
  count = var.view_enabled ? 1 : 0

  service_account_id = google_service_account.gmail_view[0].name
  role               = google_project_iam_custom_role.jwt_signer.name
  member             = google_service_account.action.member
}

# --- build ---------------------------------------------------------------------------------------

resource "google_project_iam_member" "build_log_writer" {
  project = var.project_id
  role    = "roles/logging.logWriter"
  member  = google_service_account.build.member
}

resource "google_artifact_registry_repository_iam_member" "build_image_writer" {
  project    = var.project_id
  location   = google_artifact_registry_repository.functions.location
  repository = google_artifact_registry_repository.functions.name
  role       = "roles/artifactregistry.writer"
  member     = google_service_account.build.member
}

# worker on each bucket of var.collect_buckets: Collect writes each message as a new object
# (create) and reads an object's metadata to leave one with the same bytes alone (get). No list,
# no delete, no overwrite beyond a conditional create, and nothing on any other bucket.
resource "google_project_iam_custom_role" "worker_collect" {
  project     = var.project_id
  role_id     = "gmailConnectorWorkerCollect"
  title       = "Gmail connector worker: Collect"
  description = "What the worker calls on the buckets Collect writes to."
  permissions = ["storage.objects.create", "storage.objects.get"]
}

resource "google_storage_bucket_iam_member" "worker_collect" {
  for_each = toset(var.collect_buckets)
  bucket   = each.value
  role     = google_project_iam_custom_role.worker_collect.name
  member   = google_service_account.worker.member
}

resource "google_storage_bucket_iam_member" "build_source_reader" {
  bucket = google_storage_bucket.source.name
  role   = "roles/storage.objectViewer"
  member = google_service_account.build.member
}

# Cloud Functions stages the source in its own gcf-v2-* buckets, which the build reads; those
# buckets are created by the service, so the grant is conditioned on their name prefix.
resource "google_project_iam_member" "build_staging_objects" {
  project = var.project_id
  role    = "roles/storage.objectAdmin"
  member  = google_service_account.build.member

  condition {
    title       = "gcf-staging-buckets"
    description = "Only the buckets Cloud Functions creates for staging sources."
    expression  = "resource.name.startsWith(\"projects/_/buckets/gcf-v2-\")"
  }
}
