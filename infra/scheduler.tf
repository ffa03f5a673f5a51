# One Cloud Scheduler job per task with a "schedule" in connector_config: at each tick it calls
# action with a Synchronize of that task, as the scheduler account (OIDC token for ACTION_URL).
# The job holds no secret: in the opt-in shared-secret mode action verifies that token itself. Schedule=true lets
# action answer with the token of a Synchronize of the task that is still queued or running
# instead of queuing a second one (DESIGN §3), so a slow run never piles up behind itself.
# Below them, one more job, gmail-connector-reconcile, calls the worker's reconcile pass.

resource "google_cloud_scheduler_job" "sync" {
  for_each = local.scheduled_tasks

  project     = var.project_id
  region      = var.region
  name        = "gmail-connector-sync-${each.key}"
  description = "Synchronize task ${each.key} of the Gmail connector."
  # A push task without a schedule: its hourly safety net.
  schedule  = try(each.value.schedule.cron, "0 * * * *")
  time_zone = try(each.value.schedule.timeZone, "Etc/UTC")

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
    uri         = "${local.action_url}/?action=Fetch&FetchAction=Synchronize&TaskSections=${urlencode(each.key)}&Schedule=true"

    oidc_token {
      service_account_email = google_service_account.scheduler.email
      audience              = local.action_url
    }
  }

  depends_on = [
    google_project_service.apis,
    google_cloudfunctions2_function.action,
    google_cloud_run_service_iam_member.action_scheduler_invoker,
  ]
}

# The reconcile pass: every few minutes (var.reconcile_schedule) Cloud Scheduler POSTs to the
# worker's /reconcile route. The worker looks for actions and mailboxes (units) whose lease has
# expired while no Cloud Task of theirs is pending on the fetch queue (its worker died, or its task
# was lost or ran out of retries), and queues them again or ends them in Firestore. Without it such
# an action would stay "running" until someone noticed. A dead action thus ends, or resumes, within
# about one schedule interval plus one lease.
#
# The call is authenticated exactly like a task delivery: an OIDC token of the tasks invoker
# account (TASKS_INVOKER_SERVICE_ACCOUNT, the only account with run.invoker on the worker) for the
# audience WORKER_URL, both of which the worker checks. The Cloud Scheduler service agent mints the
# token with the roles/cloudscheduler.serviceAgent role Google grants it when the API is enabled,
# as for the sync jobs above; whoever applies needs iam.serviceAccounts.actAs on the invoker
# account (Owner or Service Account User covers it). What reconcile itself calls (getTask and
# createTask on the queue) it calls as the worker's account: iam.tf. The worker's ingress is
# internal only; Cloud Scheduler of the same project counts as internal.

resource "google_cloud_scheduler_job" "reconcile" {
  project     = var.project_id
  region      = var.region
  name        = "gmail-connector-reconcile"
  description = "Re-queues or ends Gmail connector actions and mailboxes whose lease expired with no task pending."
  schedule    = var.reconcile_schedule
  time_zone   = "Etc/UTC"

  # A pass reads the expired leases and makes one getTask per candidate: seconds, normally. 300 s
  # bounds a pass over a large backlog; the worker's own timeout (1800 s) is far above it.
  attempt_deadline = "300s"

  # No retries: a failed pass changes nothing, and the next tick comes within the schedule interval.
  retry_config {
    retry_count = 0
  }

  http_target {
    http_method = "POST"
    uri         = "${local.worker_url}/reconcile"

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
