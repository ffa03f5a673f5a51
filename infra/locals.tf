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
  # The same for action: the scheduler jobs call it and use it as their OIDC audience, and action
  # checks that audience itself in shared-secret mode (ACTION_URL).
  action_url = "https://${local.action_name}-${data.google_project.this.number}.${var.region}.run.app"

  # Seconds: the worker hands over to a continuation task after the budget; the function's
  # timeout equals the dispatch deadline the code gives every task (1800 s), so the last page
  # and the continuation's createTask have 300 s to finish.
  worker_timeout_s     = 1800
  worker_time_budget_s = 1500

  # The connector configuration: a JSON string or an object; both functions get it as JSON.
  connector_config      = try(jsondecode(var.connector_config), var.connector_config)
  connector_config_json = jsonencode(local.connector_config)
  tasks                 = local.connector_config.tasks

  # Tasks that Cloud Scheduler synchronizes: those with a "schedule", and push tasks (whose
  # safety net is hourly unless they name a schedule, as functions/src/config.ts says).
  scheduled_tasks = { for name, task in local.tasks : name => task if try(task.schedule, null) != null || try(task.push, false) }

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

  # Each function's environment: exactly the variables it reads in production (functions/src/
  # config.ts; test/infra/ holds the per-function lists). ACTION_SHARED_SECRET is added to action
  # only, from Secret Manager, in the opt-in mode; WORKER_LEASE_S and the Gmail timing variables
  # keep their defaults; emulator variables are never set.
  common_env = {
    GCLOUD_PROJECT                = var.project_id
    CONNECTOR_CONFIG              = local.connector_config_json
    TASKS_LOCATION                = google_cloud_tasks_queue.fetch.location
    TASKS_QUEUE                   = google_cloud_tasks_queue.fetch.name
    WORKER_URL                    = local.worker_url
    TASKS_INVOKER_SERVICE_ACCOUNT = google_service_account.tasks_invoker.email
    ACTION_RETENTION_DAYS         = tostring(var.action_retention_days)
    COLLECT_BUCKETS               = join(",", var.collect_buckets)
  }

  # action: its own URL and the scheduler's account, to check the scheduler's OIDC token itself in
  # shared-secret mode (where Cloud Run lets everyone in); the commit GetStatus reports.
  action_only_env = {
    ACTION_URL                = local.action_url
    SCHEDULER_SERVICE_ACCOUNT = google_service_account.scheduler.email
    BUILD_COMMIT              = var.build_commit
  }

  # action, when view_enabled: the read-only delegated account of the synchronous View.
  view_env = {
    GMAIL_VIEW_SERVICE_ACCOUNT = one(google_service_account.gmail_view[*].email)
    GMAIL_VIEW_CLIENT_ID       = one(google_service_account.gmail_view[*].unique_id)
  }

  # worker: its time budget and the delegated account it reads Gmail as.
  worker_only_env = {
    WORKER_TIME_BUDGET_S            = tostring(local.worker_time_budget_s)
    GMAIL_DELEGATED_SERVICE_ACCOUNT = google_service_account.gmail_delegate.email
    GMAIL_DELEGATED_CLIENT_ID       = google_service_account.gmail_delegate.unique_id
    PUSH_TOPIC                      = google_pubsub_topic.gmail_push.id
  }

  action_env = merge(local.common_env, local.action_only_env, var.view_enabled ? local.view_env : {})
  worker_env = merge(local.common_env, local.worker_only_env)

  # The Gmail scopes of each mode, exactly what the fetch actions ask for (test/infra checks them
  # against the code): read-only (Synchronize, Identifiers, Collect, View); writes (also Insert,
  # Update and Delete to the Trash, for tasks with "writes": true); permanent-delete (also Delete
  # with Permanent=true).
  gmail_scopes_by_mode = {
    "read-only" = ["https://www.googleapis.com/auth/gmail.readonly"]
    "writes" = [
      "https://www.googleapis.com/auth/gmail.readonly",
      "https://www.googleapis.com/auth/gmail.modify",
      "https://www.googleapis.com/auth/gmail.insert",
    ]
    "permanent-delete" = [
      "https://www.googleapis.com/auth/gmail.readonly",
      "https://www.googleapis.com/auth/gmail.modify",
      "https://www.googleapis.com/auth/gmail.insert",
      "https://mail.google.com/",
    ]
  }
  # The mode the deployment is for: gmail_mode, or "writes" with the older gmail_modify_scope.
  gmail_mode = var.gmail_mode == "read-only" && var.gmail_modify_scope ? "writes" : var.gmail_mode

  # Domain-wide delegation scopes the Workspace admin grants to the worker's delegated account.
  delegation_scopes = concat(
    local.gmail_scopes_by_mode[local.gmail_mode],
    ["https://www.googleapis.com/auth/admin.directory.user.readonly"],
  )

  # ... and to the View account's client id: read-only, nothing else.
  view_scopes = ["https://www.googleapis.com/auth/gmail.readonly"]

  # Firestore's location: var.firestore_location, or else derived from the region (nam5 for us-*
  # regions, eur3 for europe-* regions, the region itself elsewhere). A
  # location on another continent than the functions is refused unless
  # firestore_location_any_continent says it is meant (firestore.tf).
  location_continents = {
    us           = "north-america"
    northamerica = "north-america"
    nam          = "north-america"
    southamerica = "south-america"
    europe       = "europe"
    eur          = "europe"
    asia         = "asia"
    australia    = "oceania"
    me           = "middle-east"
    africa       = "africa"
  }
  region_continent   = lookup(local.location_continents, split("-", var.region)[0], "unknown")
  firestore_location = coalesce(var.firestore_location, lookup({ us = "nam5", europe = "eur3" }, split("-", var.region)[0], var.region))
  firestore_continent = lookup(
    local.location_continents,
    can(regex("^[a-z]+[0-9]+$", local.firestore_location)) ? regex("^[a-z]+", local.firestore_location) : split("-", local.firestore_location)[0],
    "unknown",
  )
}

data "google_project" "this" {
  project_id = var.project_id
}
