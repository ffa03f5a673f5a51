# Gmail push (docs/push.md): Gmail publishes a notification to the topic when a watched
# mailbox changes; the push subscription delivers it to the notify function with an OIDC token of
# the push account; notify queues an incremental Synchronize of that mailbox. The worker watches
# each address of a push task (users.watch names the topic) and renews every watch daily (the
# watches job below).
#
# Ingress: notify is internal only. Cloud Run counts Pub/Sub push from a subscription of the same
# project (or VPC Service Controls perimeter) as internal traffic, so the subscription reaches it
# while the internet does not; IAM then admits only the push account.

locals {
  notify_name = "gmail-connector-notify"
  # The deterministic run.app URL (as for worker_url in locals.tf): the push endpoint and the
  # audience of the push account's OIDC token, which notify checks (NOTIFY_URL).
  notify_url = "https://${local.notify_name}-${data.google_project.this.number}.${var.region}.run.app"
  # The Pub/Sub service agent: it mints the push tokens and moves undeliverable messages to the
  # dead-letter topic.
  pubsub_service_agent = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"
  # Gmail's own publisher (Google documents this account for users.watch).
  gmail_push_publisher = "serviceAccount:gmail-api-push@system.gserviceaccount.com"

  # notify: its own URL and the push account, to check the push's OIDC token.
  notify_only_env = {
    NOTIFY_URL           = local.notify_url
    PUSH_SERVICE_ACCOUNT = google_service_account.push.email
  }
  notify_env = merge(local.common_env, local.notify_only_env)
}

resource "google_pubsub_topic" "gmail_push" {
  project    = var.project_id
  name       = "gmail-connector-push"
  labels     = local.labels
  depends_on = [google_project_service.apis]
}

# Notifications notify refused (4xx) or could not take (5xx) after max_delivery_attempts land here,
# and are kept by the pull subscription below for an operator to read.
resource "google_pubsub_topic" "gmail_push_dead_letter" {
  project    = var.project_id
  name       = "gmail-connector-push-dead-letter"
  labels     = local.labels
  depends_on = [google_project_service.apis]
}

resource "google_pubsub_subscription" "gmail_push_dead_letter" {
  project                    = var.project_id
  name                       = "gmail-connector-push-dead-letter"
  topic                      = google_pubsub_topic.gmail_push_dead_letter.id
  labels                     = local.labels
  message_retention_duration = "604800s"
  expiration_policy {
    ttl = ""
  }
}

# Gmail publishes as gmail-api-push@system.gserviceaccount.com; nothing else may publish.
resource "google_pubsub_topic_iam_member" "gmail_publishes" {
  project = var.project_id
  topic   = google_pubsub_topic.gmail_push.name
  role    = "roles/pubsub.publisher"
  member  = local.gmail_push_publisher
}

resource "google_pubsub_subscription" "notify" {
  project = var.project_id
  name    = "gmail-connector-push-notify"
  topic   = google_pubsub_topic.gmail_push.id
  labels  = local.labels

  # notify answers in well under a second; a notification older than a day is no use (the hourly
  # safety net has caught its change by then).
  ack_deadline_seconds       = 60
  message_retention_duration = "86400s"

  push_config {
    push_endpoint = local.notify_url
    oidc_token {
      service_account_email = google_service_account.push.email
      audience              = local.notify_url
    }
  }

  retry_policy {
    minimum_backoff = "10s"
    maximum_backoff = "600s"
  }

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.gmail_push_dead_letter.id
    max_delivery_attempts = 10
  }

  expiration_policy {
    ttl = ""
  }

  depends_on = [
    google_cloud_run_service_iam_member.notify_push_invoker,
    google_service_account_iam_member.pubsub_mints_push_tokens,
  ]
}

# The Pub/Sub service agent forwards undeliverable messages: it publishes to the dead-letter topic
# and acknowledges them on the subscription.
resource "google_pubsub_topic_iam_member" "dead_letter_publisher" {
  project = var.project_id
  topic   = google_pubsub_topic.gmail_push_dead_letter.name
  role    = "roles/pubsub.publisher"
  member  = local.pubsub_service_agent
}

resource "google_pubsub_subscription_iam_member" "dead_letter_subscriber" {
  project      = var.project_id
  subscription = google_pubsub_subscription.notify.name
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_service_agent
}

# The push account: the subscription's OIDC tokens are issued to it; it may invoke notify only.
resource "google_service_account" "push" {
  project      = var.project_id
  account_id   = "gmail-connector-push"
  display_name = "Gmail connector push"
  description  = "The Pub/Sub push subscription attaches this account's OIDC token to every notification; it may invoke notify only."
  depends_on   = [google_project_service.apis]
}

# The Pub/Sub service agent mints the push account's OIDC tokens: getOpenIdToken on that account
# only (roles/iam.serviceAccountTokenCreator would add access tokens and signing).
resource "google_project_iam_custom_role" "open_id_token_minter" {
  project     = var.project_id
  role_id     = "gmailConnectorOpenIdTokenMinter"
  title       = "Gmail connector: mint push OIDC tokens"
  description = "iam.serviceAccounts.getOpenIdToken only: Pub/Sub mints the push subscription's OIDC tokens."
  permissions = ["iam.serviceAccounts.getOpenIdToken"]
  depends_on  = [google_project_service.apis]
}

resource "google_service_account_iam_member" "pubsub_mints_push_tokens" {
  service_account_id = google_service_account.push.name
  role               = google_project_iam_custom_role.open_id_token_minter.name
  member             = local.pubsub_service_agent
}

# notify's own identity: Firestore (the mailbox's history id, the queued push Synchronize, the
# action record), createTask on the fetch queue and actAs the tasks account (the task it queues).
resource "google_service_account" "notify" {
  project      = var.project_id
  account_id   = "gmail-connector-notify"
  display_name = "Gmail connector notify"
  description  = "Runtime identity of the notify function (the Gmail push endpoint)."
  depends_on   = [google_project_service.apis]
}

resource "google_project_iam_custom_role" "notify_queue" {
  project     = var.project_id
  role_id     = "gmailConnectorNotifyQueue"
  title       = "Gmail connector notify: fetch queue"
  description = "What the notify function calls on the fetch queue."
  permissions = ["cloudtasks.tasks.create"]
  depends_on  = [google_project_service.apis]
}

resource "google_project_iam_member" "notify_datastore_user" {
  project = var.project_id
  role    = "roles/datastore.user"
  member  = google_service_account.notify.member
}

resource "google_cloud_tasks_queue_iam_member" "notify_queue" {
  project  = var.project_id
  location = google_cloud_tasks_queue.fetch.location
  name     = google_cloud_tasks_queue.fetch.name
  role     = google_project_iam_custom_role.notify_queue.name
  member   = google_service_account.notify.member
}

resource "google_service_account_iam_member" "notify_acts_as_tasks_invoker" {
  service_account_id = google_service_account.tasks_invoker.name
  role               = google_project_iam_custom_role.act_as.name
  member             = google_service_account.notify.member
}

resource "google_cloudfunctions2_function" "notify" {
  project     = var.project_id
  name        = local.notify_name
  location    = var.region
  description = "Gmail push endpoint of the Gmail connector: queues a Synchronize of the mailbox a notification names."

  build_config {
    runtime           = "nodejs22"
    entry_point       = "notify"
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
    timeout_seconds                  = 60
    available_memory                 = "256Mi"
    available_cpu                    = "1"
    max_instance_request_concurrency = 80
    min_instance_count               = 0
    max_instance_count               = 10
    ingress_settings                 = "ALLOW_INTERNAL_ONLY"
    all_traffic_on_latest_revision   = true
    service_account_email            = google_service_account.notify.email
    environment_variables            = local.notify_env
  }

  depends_on = [
    google_project_service.apis,
    google_project_iam_member.build_log_writer,
    google_project_iam_member.build_staging_objects,
    google_artifact_registry_repository_iam_member.build_image_writer,
    google_storage_bucket_iam_member.build_source_reader,
  ]
}

check "notify_url_matches_cloud_run" {
  assert {
    condition     = google_cloudfunctions2_function.notify.service_config[0].uri == local.notify_url
    error_message = "Cloud Run reports ${google_cloudfunctions2_function.notify.service_config[0].uri} for notify, but the push subscription targets ${local.notify_url}. Check that deterministic run.app URLs are enabled for the service."
  }
}

# notify: only the push account.
resource "google_cloud_run_service_iam_member" "notify_push_invoker" {
  project  = var.project_id
  location = google_cloudfunctions2_function.notify.location
  service  = google_cloudfunctions2_function.notify.name
  role     = "roles/run.invoker"
  member   = google_service_account.push.member
}

# The daily renewal of every Gmail watch (Google asks for one a day; a watch lapses after 7): the
# worker's /watches route, called like the reconcile job (an OIDC token of the tasks account for
# WORKER_URL). It also stops the watches of addresses no push task includes any more.
resource "google_cloud_scheduler_job" "watches" {
  project     = var.project_id
  region      = var.region
  name        = "gmail-connector-watches"
  description = "Renews the Gmail watches of the connector's push tasks, and stops those no push task needs."
  schedule    = var.watch_renewal_schedule
  time_zone   = "Etc/UTC"

  # One users.watch per address, paced per address: seconds for hundreds of mailboxes.
  attempt_deadline = "1800s"

  retry_config {
    retry_count          = 2
    min_backoff_duration = "300s"
    max_backoff_duration = "1800s"
  }

  http_target {
    http_method = "POST"
    uri         = "${local.worker_url}/watches"

    oidc_token {
      service_account_email = google_service_account.tasks_invoker.email
      audience              = local.worker_url
    }
  }

  depends_on = [
    google_project_service.apis,
    google_cloud_run_service_iam_member.worker_tasks_invoker,
  ]
}
