# The two HTTP functions (Cloud Functions v2 API: each is a Cloud Run service). Each runs as its own
# account (iam.tf) with its own environment (locals.tf, action_env and worker_env); action also
# gets ACTION_SHARED_SECRET from Secret Manager in the opt-in mode.

locals {
  # Worker sizing. A request works one mailbox (an action over several mailboxes fans out to one
  # child task per mailbox), and the worker paces each mailbox with its own token bucket at the
  # per-user quota: at most 6,000 / 5 = 20 messages/s (50 at 15,000). A request is therefore
  # mostly waiting on the bucket and on Gmail, and one vCPU can serve several mailboxes; the
  # buckets do not interfere, because each paces only its own mailbox, and a second request for
  # the same mailbox in the same instance (another task's action) only shares what the quota
  # allows anyway. worker_concurrency (default 4) bounds CPU (parsing MIME and HTML of up to
  # 4 × 50 messages/s) and memory (4 mailboxes' pages of messages in 2 GiB). Instances: the
  # queue never runs more than queue_max_concurrent_dispatches requests, so that many divided by
  # the concurrency (plus two for deliveries that overlap a lease takeover) is all the worker
  # can use.
  worker_max_instances = coalesce(
    var.worker_max_instances,
    ceil(local.queue_max_concurrent_dispatches / var.worker_concurrency) + 2,
  )
}

resource "google_cloudfunctions2_function" "action" {
  project     = var.project_id
  name        = local.action_name
  location    = var.region
  description = "ACI endpoint of the Gmail connector: answers QueueInfo, GetStatus and GetVersion, queues every Fetch."

  build_config {
    runtime           = "nodejs22"
    entry_point       = "action"
    docker_repository = google_artifact_registry_repository.functions.id
    service_account   = google_service_account.build.id

    source {
      storage_source {
        bucket = google_storage_bucket.source.name
        object = google_storage_bucket_object.functions_source.name
      }
    }
  }

  service_config {
    # Synchronous ACI answers take milliseconds; 300 s leaves room for a Cancel that deletes the
    # tasks of an action with many mailboxes.
    timeout_seconds                  = 300
    available_memory                 = "512Mi"
    available_cpu                    = "1"
    max_instance_request_concurrency = 80
    min_instance_count               = 0
    max_instance_count               = var.action_max_instances
    # Clients call it over the internet (with an identity token, or the secret in the opt-in mode).
    ingress_settings               = "ALLOW_ALL"
    all_traffic_on_latest_revision = true
    service_account_email          = google_service_account.action.email
    environment_variables          = local.action_env

    # Opt-in shared-secret mode only (secret.tf): the secret, never a plain variable.
    dynamic "secret_environment_variables" {
      for_each = var.action_shared_secret_enabled ? [1] : []
      content {
        key        = "ACTION_SHARED_SECRET"
        project_id = var.project_id
        secret     = google_secret_manager_secret.action_shared_secret[0].secret_id
        version    = google_secret_manager_secret_version.action_shared_secret[0].version
      }
    }
  }

  lifecycle {
    precondition {
      condition     = length(local.domains_outside_workspace) == 0
      error_message = "connector_config names domains outside workspace_domains: ${join(", ", local.domains_outside_workspace)}."
    }
  }

  # The functions' queries need their composite indexes (firestore.tf): a new version is deployed
  # once the indexes it queries exist.
  depends_on = [
    google_project_service.apis,
    google_firestore_index.composite,
    google_project_iam_member.build_log_writer,
    google_project_iam_member.build_staging_objects,
    google_artifact_registry_repository_iam_member.build_image_writer,
    google_storage_bucket_iam_member.build_source_reader,
    google_secret_manager_secret_iam_member.action_reads_secret,
  ]
}

resource "google_cloudfunctions2_function" "worker" {
  project     = var.project_id
  name        = local.worker_name
  location    = var.region
  description = "Cloud Tasks target of the Gmail connector: reads Gmail through domain-wide delegation and writes Firestore."

  build_config {
    runtime           = "nodejs22"
    entry_point       = "worker"
    docker_repository = google_artifact_registry_repository.functions.id
    service_account   = google_service_account.build.id

    source {
      storage_source {
        bucket = google_storage_bucket.source.name
        object = google_storage_bucket_object.functions_source.name
      }
    }
  }

  service_config {
    # = the dispatchDeadline of every task (30 min); the worker's budget (1500 s) ends first.
    timeout_seconds                  = local.worker_timeout_s
    available_memory                 = var.worker_memory
    available_cpu                    = "1"
    max_instance_request_concurrency = var.worker_concurrency
    min_instance_count               = 0
    max_instance_count               = local.worker_max_instances
    # Internal only: Cloud Run counts Cloud Tasks and Cloud Scheduler of the same project as
    # internal sources, and they are its only callers; anything from the internet is refused
    # before IAM is even asked. Only the tasks account may invoke it (below).
    ingress_settings               = "ALLOW_INTERNAL_ONLY"
    all_traffic_on_latest_revision = true
    service_account_email          = google_service_account.worker.email
    environment_variables          = local.worker_env
  }

  lifecycle {
    precondition {
      condition     = length(local.domains_outside_workspace) == 0
      error_message = "connector_config names domains outside workspace_domains: ${join(", ", local.domains_outside_workspace)}."
    }
  }

  # The functions' queries need their composite indexes (firestore.tf): a new version is deployed
  # once the indexes it queries exist.
  depends_on = [
    google_project_service.apis,
    google_firestore_index.composite,
    google_project_iam_member.build_log_writer,
    google_project_iam_member.build_staging_objects,
    google_artifact_registry_repository_iam_member.build_image_writer,
    google_storage_bucket_iam_member.build_source_reader,
  ]
}

# The computed URLs (locals.tf) must be ones Cloud Run serves. A check reports without failing the
# apply: the deterministic URL works even when Cloud Run displays the older hash-based one, but a
# mismatch is worth a look.
check "worker_url_matches_cloud_run" {
  assert {
    condition     = google_cloudfunctions2_function.worker.service_config[0].uri == local.worker_url
    error_message = "Cloud Run reports ${google_cloudfunctions2_function.worker.service_config[0].uri} for the worker, but tasks target ${local.worker_url}. Check that deterministic run.app URLs are enabled for the service."
  }
}

check "action_url_matches_cloud_run" {
  assert {
    condition     = google_cloudfunctions2_function.action.service_config[0].uri == local.action_url
    error_message = "Cloud Run reports ${google_cloudfunctions2_function.action.service_config[0].uri} for action, but the scheduler jobs call ${local.action_url} (ACTION_URL). Check that deterministic run.app URLs are enabled for the service."
  }
}

# --- who may invoke what -------------------------------------------------------------------------

# The worker: only the invoker account, i.e. only Cloud Tasks deliveries of the fetch queue and the
# reconcile job (scheduler.tf).
resource "google_cloud_run_service_iam_member" "worker_tasks_invoker" {
  project  = var.project_id
  location = google_cloudfunctions2_function.worker.location
  service  = google_cloudfunctions2_function.worker.name
  role     = "roles/run.invoker"
  member   = google_service_account.tasks_invoker.member
}

# action: the scheduler account (scheduled Synchronize) ...
resource "google_cloud_run_service_iam_member" "action_scheduler_invoker" {
  project  = var.project_id
  location = google_cloudfunctions2_function.action.location
  service  = google_cloudfunctions2_function.action.name
  role     = "roles/run.invoker"
  member   = google_service_account.scheduler.member
}

# ... and the principals the operator names (people, client service accounts, groups).
resource "google_cloud_run_service_iam_member" "action_invokers" {
  for_each = toset(var.action_invoker_members)

  project  = var.project_id
  location = google_cloudfunctions2_function.action.location
  service  = google_cloudfunctions2_function.action.name
  role     = "roles/run.invoker"
  member   = each.value
}
