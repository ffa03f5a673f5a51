# Service accounts and what each may do. Five accounts, each with one job:
#
#   runtime    — identity of both functions: Firestore, the fetch queue, signs delegation JWTs.
#   tasks      — the account whose OIDC token Cloud Tasks (and the reconcile job) attaches; may
#                invoke the worker only.
#   scheduler  — the account whose OIDC token Cloud Scheduler attaches; may invoke action only.
#   delegate   — holds no roles at all; its OAuth client id is what the Workspace admin
#                authorises for domain-wide delegation, and runtime signs JWTs as it.
#   build      — Cloud Build's identity when it builds the functions from source.
#
# Nothing here is granted to allUsers or allAuthenticatedUsers; the only public grant in the
# module is the opt-in one in secret.tf.

resource "google_service_account" "runtime" {
  project      = var.project_id
  account_id   = "gmail-connector-runtime"
  display_name = "Gmail connector functions"
  description  = "Runtime identity of the action and worker functions."
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

resource "google_service_account" "gmail_delegate" {
  project      = var.project_id
  account_id   = var.delegated_service_account_id
  display_name = "Gmail connector domain-wide delegation"
  description  = "Authorised by the Workspace admin for domain-wide delegation (its unique id is the client id). Holds no roles and no keys."
  depends_on   = [google_project_service.apis]
}

resource "google_service_account" "build" {
  project      = var.project_id
  account_id   = "gmail-connector-build"
  display_name = "Gmail connector build"
  description  = "Cloud Build builds the connector's functions as this account."
  depends_on   = [google_project_service.apis]
}

# --- runtime: Firestore ------------------------------------------------------------------------

# Read and write documents in the (default) database: actions, state, documents.
resource "google_project_iam_member" "runtime_datastore_user" {
  project = var.project_id
  role    = "roles/datastore.user"
  member  = google_service_account.runtime.member
}

# --- runtime: the fetch queue (granted on the queue, not the project) ----------------------------

# createTask: action queues every Fetch; the worker queues continuations and per-mailbox children,
# and its reconcile pass re-queues a unit whose lease expired with no task pending.
resource "google_cloud_tasks_queue_iam_member" "runtime_enqueuer" {
  project  = var.project_id
  location = google_cloud_tasks_queue.fetch.location
  name     = google_cloud_tasks_queue.fetch.name
  role     = "roles/cloudtasks.enqueuer"
  member   = google_service_account.runtime.member
}

# deleteTask: QueueInfo Cancel deletes the action's task and its children's.
resource "google_cloud_tasks_queue_iam_member" "runtime_task_deleter" {
  project  = var.project_id
  location = google_cloud_tasks_queue.fetch.location
  name     = google_cloud_tasks_queue.fetch.name
  role     = "roles/cloudtasks.taskDeleter"
  member   = google_service_account.runtime.member
}

# getQueue (GetStatus shows whether the queue is paused), getTask and listTasks (the worker's
# reconcile pass asks whether a unit whose lease expired still has a task pending). Granted on the
# fetch queue only: nothing about Cloud Tasks is granted project-wide.
resource "google_cloud_tasks_queue_iam_member" "runtime_viewer" {
  project  = var.project_id
  location = google_cloud_tasks_queue.fetch.location
  name     = google_cloud_tasks_queue.fetch.name
  role     = "roles/cloudtasks.viewer"
  member   = google_service_account.runtime.member
}

# pauseQueue / resumeQueue for QueueInfo Pause and Resume. No predefined role holds just these:
# roles/cloudtasks.queueAdmin would also let the functions delete or purge the queue, change its
# rate limits and retry policy, and rewrite its IAM policy. This custom role holds the two
# permissions and is granted on the fetch queue only.
resource "google_project_iam_custom_role" "queue_pauser" {
  project     = var.project_id
  role_id     = "gmailConnectorQueuePauser"
  title       = "Gmail connector queue pause/resume"
  description = "Pause and resume a Cloud Tasks queue, nothing else (QueueInfo Pause/Resume)."
  permissions = ["cloudtasks.queues.pause", "cloudtasks.queues.resume"]
  depends_on  = [google_project_service.apis]
}

resource "google_cloud_tasks_queue_iam_member" "runtime_pauser" {
  project  = var.project_id
  location = google_cloud_tasks_queue.fetch.location
  name     = google_cloud_tasks_queue.fetch.name
  role     = google_project_iam_custom_role.queue_pauser.name
  member   = google_service_account.runtime.member
}

# --- runtime: acting as the other accounts -------------------------------------------------------

# A task created with an OIDC token for the invoker account needs iam.serviceAccounts.actAs on
# that account (the code sets oidcToken.serviceAccountEmail = TASKS_INVOKER_SERVICE_ACCOUNT).
resource "google_service_account_iam_member" "runtime_acts_as_tasks_invoker" {
  service_account_id = google_service_account.tasks_invoker.name
  role               = "roles/iam.serviceAccountUser"
  member             = google_service_account.runtime.member
}

# Domain-wide delegation without key files: runtime calls IAM Credentials signJwt as the
# delegated account (iam.serviceAccounts.signJwt is in this role) and exchanges the JWT for a
# Gmail token for the mailbox's user.
resource "google_service_account_iam_member" "runtime_signs_for_delegate" {
  service_account_id = google_service_account.gmail_delegate.name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = google_service_account.runtime.member
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
