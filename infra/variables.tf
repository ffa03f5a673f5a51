# Inputs of the Gmail connector deployment. Only project_id and connector_config are required;
# see terraform.tfvars.example and docs/deploy.md.

variable "project_id" {
  description = "Google Cloud project that hosts the connector (one deployment per project: the queue name and Firestore collections are fixed)."
  type        = string
}

variable "region" {
  description = "Region of the functions, the Cloud Tasks queue and the Cloud Scheduler jobs."
  type        = string
  default     = "us-central1"
}

variable "firestore_location" {
  description = "Location of the (default) Firestore database, e.g. nam5 (multi-region US), eur3 (multi-region Europe), or a region. null derives it from region: nam5 for us-* regions, eur3 for europe-* regions, the region itself elsewhere. Cannot be changed once the database exists."
  type        = string
  default     = null
}

variable "firestore_location_any_continent" {
  description = "Allow a Firestore location on another continent than region (refused at plan time otherwise: every call of the functions would cross continents)."
  type        = bool
  default     = false
}

variable "collect_buckets" {
  description = "Cloud Storage buckets FetchAction=Collect may write to (COLLECT_BUCKETS). The worker gets storage.objects.create and storage.objects.get on these buckets only; a Destination in any other bucket is refused. The buckets must exist."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for b in var.collect_buckets : can(regex("^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$", b))])
    error_message = "collect_buckets must list Cloud Storage bucket names."
  }
}

variable "action_retention_days" {
  description = "Days an ended action and its units are kept; then Firestore's TTL policy deletes them (ACTION_RETENTION_DAYS). Sync state and sink documents are never deleted."
  type        = number
  default     = 30

  validation {
    condition     = var.action_retention_days >= 1 && var.action_retention_days <= 3650 && floor(var.action_retention_days) == var.action_retention_days
    error_message = "action_retention_days must be a whole number of days from 1 to 3650."
  }
}

variable "build_commit" {
  description = "The commit the functions are built from, which GetStatus reports as build (BUILD_COMMIT; the uploaded source has no .git), e.g. -var build_commit=$(git rev-parse HEAD). Empty: GetStatus says unknown."
  type        = string
  default     = ""

  validation {
    condition     = var.build_commit == "" || can(regex("^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$", var.build_commit))
    error_message = "build_commit must be a commit id: at most 64 letters, digits and . _ + -."
  }
}

variable "connector_config" {
  description = <<-EOT
    The connector configuration (DESIGN §5), as a JSON string (the content of a config/*.json file)
    or as an HCL object of the same shape. It is passed to both functions as CONNECTOR_CONFIG, and
    every task with a "schedule" gets a Cloud Scheduler job.
  EOT
  type        = any

  validation {
    condition     = can(keys(try(jsondecode(var.connector_config), var.connector_config).tasks))
    error_message = "connector_config must be JSON (or an object) with a \"tasks\" object, as in DESIGN §5."
  }

  validation {
    condition     = try(length(keys(try(jsondecode(var.connector_config), var.connector_config).tasks)) > 0, true)
    error_message = "connector_config.tasks must configure at least one task."
  }
}

variable "workspace_domains" {
  description = "Google Workspace domains the delegated account is authorised for. When not empty, every address and domain in connector_config must belong to one of them (checked at plan time)."
  type        = list(string)
  default     = []
}

variable "delegated_service_account_id" {
  description = "Account id of the service account whose OAuth client id the Workspace admin authorises for domain-wide delegation."
  type        = string
  default     = "gmail-connector-delegate"
}

variable "view_enabled" {
  description = "Whether action gets a read-only delegated identity for the synchronous View: a second delegated account (view_service_account_id), authorised for gmail.readonly only, that only action may sign JWTs as."
  type        = bool
  default     = true
}

variable "view_service_account_id" {
  description = "Account id of the read-only delegated account of View (view_enabled), whose client id the Workspace admin authorises for gmail.readonly only."
  type        = string
  default     = "gmail-connector-view"
}

variable "gmail_modify_scope" {
  description = "Older form of gmail_mode = \"writes\": whether the scopes shown for the Workspace admin include the write scopes."
  type        = bool
  default     = false
}

variable "gmail_mode" {
  description = "Which Gmail scopes delegation_scopes lists for the Workspace admin: read-only (gmail.readonly), writes (also gmail.modify and gmail.insert, for Insert, Update and Delete on tasks with \"writes\": true) or permanent-delete (also https://mail.google.com/, for Delete with Permanent=true)."
  type        = string
  default     = "read-only"
  validation {
    condition     = contains(["read-only", "writes", "permanent-delete"], var.gmail_mode)
    error_message = "gmail_mode must be read-only, writes or permanent-delete."
  }
}

variable "action_invoker_members" {
  description = "Principals allowed to call the action endpoint with an identity token, e.g. [\"user:ops@example.com\", \"serviceAccount:client@p.iam.gserviceaccount.com\", \"group:search-admins@example.com\"]."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for m in var.action_invoker_members : !contains(["allUsers", "allAuthenticatedUsers"], m)])
    error_message = "action_invoker_members must name principals; allUsers and allAuthenticatedUsers are not accepted (see action_shared_secret_enabled)."
  }
}

variable "action_shared_secret_enabled" {
  description = "Opt-in shared-secret mode: action accepts unauthenticated calls (allUsers may invoke it) and requires the secret in the X-ACI-Secret header instead of an identity token. Off by default."
  type        = bool
  default     = false
}

variable "action_shared_secret" {
  description = "The shared secret (at least 16 characters) when action_shared_secret_enabled; written to Secret Manager and given to action as ACTION_SHARED_SECRET. Ephemeral: never in the plan or the state, so it is needed at every plan and apply that writes it (TF_VAR_action_shared_secret)."
  type        = string
  default     = null
  sensitive   = true
  ephemeral   = true

  validation {
    condition     = !var.action_shared_secret_enabled || try(length(var.action_shared_secret), 0) >= 16
    error_message = "action_shared_secret_enabled needs action_shared_secret, at least 16 characters."
  }
}

variable "action_shared_secret_version" {
  description = "Version of the shared secret: raise it by one to write a new action_shared_secret (the value itself is never in state, so Terraform cannot see that it changed)."
  type        = number
  default     = 1
}

variable "worker_concurrency" {
  description = "Requests (mailboxes) one worker instance serves at once. See the reasoning in functions.tf."
  type        = number
  default     = 4

  validation {
    condition     = var.worker_concurrency >= 1 && var.worker_concurrency <= 16
    error_message = "worker_concurrency must be from 1 to 16."
  }
}

variable "worker_memory" {
  description = "Memory of a worker instance."
  type        = string
  default     = "2Gi"
}

variable "worker_max_instances" {
  description = "Upper bound on worker instances; null derives it from the queue's concurrent dispatches and worker_concurrency."
  type        = number
  default     = null
}

variable "action_max_instances" {
  description = "Upper bound on action instances (a cost guard: action answers in milliseconds)."
  type        = number
  default     = 10
}

variable "queue_max_concurrent_dispatches" {
  description = "Tasks (mailboxes) the fetch queue runs at once; null derives it from the Gmail quotas (see queue.tf)."
  type        = number
  default     = null
}

variable "queue_max_dispatches_per_second" {
  description = "Rate at which the fetch queue starts tasks."
  type        = number
  default     = 10
}

variable "queue_log_sampling_ratio" {
  description = "Fraction of Cloud Tasks dispatch attempts written to Cloud Logging (0 to 1)."
  type        = number
  default     = 0
}

variable "firestore_delete_protection" {
  description = "Whether the Firestore database refuses deletion."
  type        = bool
  default     = true
}

variable "labels" {
  description = "Labels added to every resource that takes labels."
  type        = map(string)
  default     = {}
}

variable "reconcile_schedule" {
  description = "Cron (Etc/UTC) of the gmail-connector-reconcile job, which re-queues or ends actions and mailboxes whose lease expired with no task pending. A dead action ends within about this interval plus one lease."
  type        = string
  default     = "*/5 * * * *"

  validation {
    condition     = length(regexall("\\S+", var.reconcile_schedule)) == 5
    error_message = "reconcile_schedule must be a five-field cron expression, e.g. \"*/5 * * * *\"."
  }
}

variable "watch_renewal_schedule" {
  description = "Cron schedule (UTC) of the daily renewal of the Gmail watches of push tasks."
  type        = string
  default     = "17 3 * * *"
}
