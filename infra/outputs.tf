output "action_url" {
  description = "The ACI endpoint: $ACTION_URL/action=GetVersion (path form) or $ACTION_URL/?action=GetVersion."
  value       = local.action_url
}

output "action_function_url" {
  description = "The same endpoint under its cloudfunctions.net URL."
  value       = google_cloudfunctions2_function.action.url
}

output "worker_url" {
  description = "The worker's URL: target and OIDC audience of every fetch task (WORKER_URL)."
  value       = local.worker_url
}

output "queue" {
  description = "Full name of the Cloud Tasks queue."
  value       = google_cloud_tasks_queue.fetch.id
}

output "delegated_service_account_email" {
  description = "The account the worker signs delegation JWTs as (GMAIL_DELEGATED_SERVICE_ACCOUNT)."
  value       = google_service_account.gmail_delegate.email
}

output "delegated_service_account_client_id" {
  description = "For the Workspace admin: the Client ID to authorise under Security > Access and data control > API controls > Domain-wide delegation (the account's unique id)."
  value       = google_service_account.gmail_delegate.unique_id
}

output "delegation_scopes" {
  description = "For the Workspace admin: the OAuth scopes to authorise for that Client ID, comma-separated as the Admin console takes them."
  value       = join(",", local.delegation_scopes)
}

output "gmail_scopes_by_mode" {
  description = "The Gmail scopes of each mode, comma-separated as the Admin console takes them: read-only, writes (Insert, Update, Delete for tasks with \"writes\": true), permanent-delete (Delete with Permanent=true). delegation_scopes is the deployment's mode (gmail_mode) plus the Directory scope."
  value       = { for mode, scopes in local.gmail_scopes_by_mode : mode => join(",", scopes) }
}

output "view_service_account_client_id" {
  description = "For the Workspace admin, when view_enabled: the Client ID of the read-only View account, to authorise for view_scopes only. null when View is off."
  value       = one(google_service_account.gmail_view[*].unique_id)
}

output "view_scopes" {
  description = "For the Workspace admin, when view_enabled: the scope to authorise for the View account's Client ID."
  value       = var.view_enabled ? join(",", local.view_scopes) : null
}

output "action_service_account_email" {
  description = "Identity of the action function."
  value       = google_service_account.action.email
}

output "worker_service_account_email" {
  description = "Identity of the worker function."
  value       = google_service_account.worker.email
}

output "tasks_invoker_service_account_email" {
  description = "Account whose OIDC token the queue and the reconcile job attach (TASKS_INVOKER_SERVICE_ACCOUNT); may invoke the worker only."
  value       = google_service_account.tasks_invoker.email
}

output "scheduler_service_account_email" {
  description = "Account Cloud Scheduler calls action as."
  value       = google_service_account.scheduler.email
}

output "scheduler_jobs" {
  description = "Cloud Scheduler job of each scheduled task."
  value       = { for task, job in google_cloud_scheduler_job.sync : task => job.name }
}

output "reconcile_job" {
  description = "Cloud Scheduler job that calls the worker's reconcile pass (gcloud scheduler jobs run NAME --location=REGION runs it now)."
  value       = google_cloud_scheduler_job.reconcile.name
}
