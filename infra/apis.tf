# The Google APIs the deployment and the functions use. disable_on_destroy = false: a
# `terraform destroy` leaves the APIs on, since other workloads in the project may use them.

locals {
  apis = toset([
    "admin.googleapis.com",                # Directory API: users of a task's "domain"
    "artifactregistry.googleapis.com",     # function images
    "cloudbuild.googleapis.com",           # builds the functions from source
    "cloudfunctions.googleapis.com",       # the two functions (Cloud Functions v2 API)
    "cloudresourcemanager.googleapis.com", # project IAM
    "cloudscheduler.googleapis.com",       # scheduled Synchronize
    "cloudtasks.googleapis.com",           # the fetch queue
    "firebaserules.googleapis.com",        # Firestore security rules
    "firestore.googleapis.com",            # state and sink
    "gmail.googleapis.com",                # the mailboxes
    "iam.googleapis.com",                  # service accounts, custom role
    "iamcredentials.googleapis.com",       # signJwt for domain-wide delegation (no key files)
    "logging.googleapis.com",              # structured logs
    "pubsub.googleapis.com",               # Gmail push notifications
    "run.googleapis.com",                  # Cloud Run services behind the functions
    "secretmanager.googleapis.com",        # the opt-in shared secret
    "serviceusage.googleapis.com",         # enabling the others (enable it by hand before the first apply)
    "storage.googleapis.com",              # the source bucket
  ])
}

resource "google_project_service" "apis" {
  for_each = local.apis
  provider = google.apis

  project            = var.project_id
  service            = each.value
  disable_on_destroy = false
}
