# The Cloud Tasks queue "fetch": every asynchronous action, its per-mailbox children and their
# continuations are tasks here, delivered to the worker.

locals {
  # Concurrency: the Gmail quota per project (1,200,000 units/min) divided by the quota per user
  # (6,000 units/min, or 15,000 for projects created before May 2026) is the number of mailboxes
  # that can each be read at their full per-user pace at once: 200 (or 80). A task is one mailbox
  # (an action over several mailboxes fans out to one child task each), so more concurrent
  # dispatches than this would not read faster; they would only turn into project-wide
  # rateLimitExceeded answers that slow every mailbox down.
  queue_max_concurrent_dispatches = coalesce(
    var.queue_max_concurrent_dispatches,
    floor(local.gmail_units_per_project_minute / local.gmail_units_per_user_minute),
  )
}

resource "google_cloud_tasks_queue" "fetch" {
  project  = var.project_id
  name     = local.queue_name
  location = var.region

  # desired_state is left unset on purpose: QueueInfo Pause/Resume change the queue's state at
  # run time, and the provider does not read the state back, so `terraform apply` never undoes a
  # Pause.

  rate_limits {
    max_concurrent_dispatches = local.queue_max_concurrent_dispatches
    # Deliveries are long (a worker runs up to the 1,500 s budget), so the start rate does not
    # bound throughput; 10 starts/s fills 200 slots in 20 s while keeping cold starts and the
    # first messages.list bursts of a large fan-out spread out.
    max_dispatches_per_second = var.queue_max_dispatches_per_second
  }

  # Retries cover faults of the worker itself (an instance that died, a 5xx, a 409 from a delivery
  # that found another live lease); Gmail's 429/403 rate limits and 5xx are retried inside the
  # worker, honouring Retry-After, and permanent failures answer 2xx, so they never come back here.
  #   min_backoff 30 s: half the ~60 s lease, so the second retry (after 30 + 60 s) finds the lease
  #     of a dead holder expired and takes over from the last checkpoint.
  #   doublings 4, max_backoff 600 s: 30, 60, 120, 240, 480, then every 600 s.
  #   max_attempts 20 (and at least 3 h): 930 s + 14 × 600 s ≈ 2.6 h of retries. A task that
  #     fails 20 times (say, a message that crashes the process each time) stops costing money;
  #     its action shows the error in QueueInfo GetStatus.
  # Each delivery's own deadline is the dispatchDeadline the code sets on every task (1800 s =
  # the worker's timeout); the worker's time budget (1500 s) ends a run before it.
  retry_config {
    max_attempts       = 20
    max_retry_duration = "10800s"
    min_backoff        = "30s"
    max_backoff        = "600s"
    max_doublings      = 4
  }

  # Queue-level routing: whatever URL or identity a task carries, Cloud Tasks delivers it to the
  # worker's host with an OIDC token of the invoker account for the worker's audience. The code
  # sets the same values on every task (WORKER_URL, TASKS_INVOKER_SERVICE_ACCOUNT); this makes a
  # task that says otherwise harmless.
  http_target {
    uri_override {
      scheme                    = "HTTPS"
      host                      = local.worker_host
      uri_override_enforce_mode = "ALWAYS"
    }

    oidc_token {
      service_account_email = google_service_account.tasks_invoker.email
      audience              = local.worker_url
    }
  }

  stackdriver_logging_config {
    sampling_ratio = var.queue_log_sampling_ratio
  }

  depends_on = [google_project_service.apis]
}
