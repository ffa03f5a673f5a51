# One Cloud Scheduler job per task with a "schedule" in connector_config: at each tick it calls
# action with a Synchronize of that task, as the scheduler account (OIDC). Schedule=true lets
# action answer with the token of a Synchronize of the task that is still queued or running
# instead of queuing a second one (DESIGN §3), so a slow run never piles up behind itself.

resource "google_cloud_scheduler_job" "sync" {
  for_each = local.scheduled_tasks

  project     = var.project_id
  region      = var.region
  name        = "gmail-connector-sync-${each.key}"
  description = "Synchronize task ${each.key} of the Gmail connector."
  schedule    = each.value.schedule.cron
  time_zone   = try(each.value.schedule.timeZone, "Etc/UTC")

  # action answers at once (the work runs in the worker); a tick that fails is retried a few
  # times within the next minutes, and the next tick comes anyway.
  attempt_deadline = "60s"

  retry_config {
    retry_count          = 3
    min_backoff_duration = "10s"
    max_backoff_duration = "120s"
  }

  http_target {
    http_method = "GET"
    uri         = "${google_cloudfunctions2_function.action.service_config[0].uri}/?action=Fetch&FetchAction=Synchronize&TaskSections=${urlencode(each.key)}&Schedule=true"
    # In the opt-in shared-secret mode action requires the secret from every caller.
    headers = var.action_shared_secret_enabled ? { "X-ACI-Secret" = var.action_shared_secret } : {}

    oidc_token {
      service_account_email = google_service_account.scheduler.email
      audience              = google_cloudfunctions2_function.action.service_config[0].uri
    }
  }

  depends_on = [
    google_project_service.apis,
    google_cloud_run_service_iam_member.action_scheduler_invoker,
  ]
}
