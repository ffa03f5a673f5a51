# Names and derived values shared by the whole module.

locals {
  labels = merge({ app = "gmail-connector" }, var.labels)

  # Names. The queue name is fixed by the connector (QueueName=fetch); the collections are fixed
  # too, so one project holds one deployment.
  queue_name  = "fetch"
  action_name = "gmail-connector-action"
  worker_name = "gmail-connector-worker"

  # The worker's URL, known before the worker exists: Cloud Run gives every service the
  # deterministic URL https://SERVICE-PROJECT_NUMBER.REGION.run.app, which is also an audience
  # Cloud Run always accepts in an identity token. The worker needs its own URL (it enqueues its
  # continuations and children) and a resource cannot read its own attributes, so the URL is
  # computed here; a check block in functions.tf compares it with what Cloud Run reports.
  worker_host = "${local.worker_name}-${data.google_project.this.number}.${var.region}.run.app"
  worker_url  = "https://${local.worker_host}"

  # Seconds: the worker hands over to a continuation task after the budget; the function's
  # timeout equals the dispatch deadline the code gives every task (1800 s), so the last page
  # and the continuation's createTask have 300 s to finish.
  worker_timeout_s     = 1800
  worker_time_budget_s = 1500

  # The connector configuration: a JSON string or an object; both functions get it as JSON.
  connector_config      = try(jsondecode(var.connector_config), var.connector_config)
  connector_config_json = jsonencode(local.connector_config)
  tasks                 = local.connector_config.tasks

  # Tasks that Cloud Scheduler synchronizes: those with a "schedule".
  scheduled_tasks = { for name, task in local.tasks : name => task if try(task.schedule, null) != null }

  # Gmail quotas (DESIGN §4): per user per minute from the configuration (6,000 for projects
  # created since May 2026, 15,000 before), per project per minute fixed by Google.
  gmail_units_per_user_minute    = try(local.connector_config.gmail.quotaUnitsPerUserPerMinute, 6000)
  gmail_units_per_project_minute = 1200000

  # Every address and domain the configuration names, for the workspace_domains check.
  configured_addresses = flatten([
    for name, task in local.tasks : concat(try(task.users, []), try([task.directoryAdmin], []))
  ])
  configured_domains = distinct(concat(
    [for address in local.configured_addresses : lower(element(split("@", address), 1))],
    [for name, task in local.tasks : lower(task.domain) if try(task.domain, null) != null],
  ))
  domains_outside_workspace = [
    for domain in local.configured_domains : domain
    if length(var.workspace_domains) > 0 && !contains([for d in var.workspace_domains : lower(d)], domain)
  ]

  # Exactly the variables the functions read in production (functions/src/config.ts,
  # PRODUCTION_ENV_VARS). ACTION_SHARED_SECRET is added to action only, from Secret Manager, in
  # the opt-in mode; WORKER_LEASE_S keeps its default; emulator variables are never set.
  function_env = {
    GCLOUD_PROJECT                  = var.project_id
    CONNECTOR_CONFIG                = local.connector_config_json
    TASKS_LOCATION                  = google_cloud_tasks_queue.fetch.location
    TASKS_QUEUE                     = google_cloud_tasks_queue.fetch.name
    WORKER_URL                      = local.worker_url
    TASKS_INVOKER_SERVICE_ACCOUNT   = google_service_account.tasks_invoker.email
    WORKER_TIME_BUDGET_S            = tostring(local.worker_time_budget_s)
    GMAIL_DELEGATED_SERVICE_ACCOUNT = google_service_account.gmail_delegate.email
    GMAIL_DELEGATED_CLIENT_ID       = google_service_account.gmail_delegate.unique_id
  }

  # Domain-wide delegation scopes the Workspace admin grants to the delegated account's client id.
  delegation_scopes = concat(
    [
      "https://www.googleapis.com/auth/gmail.readonly",
      "https://www.googleapis.com/auth/admin.directory.user.readonly",
    ],
    var.gmail_modify_scope ? ["https://www.googleapis.com/auth/gmail.modify"] : [],
  )
}

data "google_project" "this" {
  project_id = var.project_id
}
