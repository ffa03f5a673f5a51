# Opt-in shared-secret mode (action_shared_secret_enabled = true), for ACI clients that cannot
# obtain a Google identity token.
#
# What changes: action is invocable by allUsers at the Cloud Run layer, and the function itself
# requires the secret in the X-ACI-Secret header (ACTION_SHARED_SECRET, from Secret Manager), or,
# from Cloud Scheduler, an OIDC token of the scheduler account for ACTION_URL, which it verifies
# itself (so the scheduler jobs carry no copy of the secret). What it trades away (docs/deploy.md,
# "Shared-secret mode"): anyone on the internet can reach the function and cost a cold start even
# without the secret; the secret is a long-lived bearer credential with no per-caller identity,
# expiry or audit trail. It is not in Terraform's state or plan: the variable is ephemeral and the
# version takes it through the write-only secret_data_wo. The worker is never public: it keeps the
# invoker-only grant and internal ingress whatever this mode says.
#
# Every resource here exists only in that mode (count on the same variable), so the module has no
# public grant unless the operator opts in.

resource "google_secret_manager_secret" "action_shared_secret" {
  count = var.action_shared_secret_enabled ? 1 : 0

  project   = var.project_id
  secret_id = "gmail-connector-action-secret"

  replication {
    auto {}
  }

  depends_on = [google_project_service.apis]
}

resource "google_secret_manager_secret_version" "action_shared_secret" {
  count = var.action_shared_secret_enabled ? 1 : 0

  secret = google_secret_manager_secret.action_shared_secret[0].id
  # Write-only (Terraform 1.11): sent to Secret Manager, never stored in state. A new value is
  # written when action_shared_secret_version changes; the variable's validation checks its length.
  secret_data_wo         = var.action_shared_secret
  secret_data_wo_version = var.action_shared_secret_version
}

# Cloud Run reads the secret as action's account when it starts an instance.
resource "google_secret_manager_secret_iam_member" "action_reads_secret" {
  count = var.action_shared_secret_enabled ? 1 : 0

  project   = var.project_id
  secret_id = google_secret_manager_secret.action_shared_secret[0].secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = google_service_account.action.member
}

# The one public grant of the module: run.invoker for allUsers on action, in this mode only.
resource "google_cloud_run_service_iam_member" "action_public" {
  count = var.action_shared_secret_enabled ? 1 : 0

  project  = var.project_id
  location = google_cloudfunctions2_function.action.location
  service  = google_cloudfunctions2_function.action.name
  role     = "roles/run.invoker"
  member   = "allUsers"
}
