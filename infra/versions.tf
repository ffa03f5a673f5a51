# Terraform and provider versions, the providers' settings and the state backend.
#
# Terraform 1.11: the shared secret is written with a write-only argument (secret_data_wo) from an
# ephemeral variable, so it never reaches the plan or the state; write-only arguments need 1.11.
# google 7.x is the only cloud provider: every resource uses its GA arguments. archive builds the
# functions' source zip locally.
#
# The provider lock file (.terraform.lock.hcl) is written by the first `terraform init`, which
# needs the registry; commit it then, so that every later init installs the same provider builds.

terraform {
  required_version = ">= 1.11.0"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 7.45"
    }
    archive = {
      source  = "hashicorp/archive"
      version = ">= 2.4.0, < 3.0.0"
    }
  }

  # Remote state in a Cloud Storage bucket, configured at init time:
  #   terraform init -backend-config=backend.hcl
  # with backend.hcl made from backend.hcl.example (docs/deploy.md, "State bucket and backend").
  backend "gcs" {}
}

# Every API call bills quota to the deployment's project and sends it as the quota project
# (X-Goog-User-Project). With user credentials (gcloud auth application-default login) some APIs,
# Firebase Rules among them, refuse calls that name no quota project: "end user credentials ...
# not supported". The project must have Service Usage and Cloud Resource Manager enabled before
# the first plan (docs/deploy.md, "Apply").
provider "google" {
  project               = var.project_id
  region                = var.region
  default_labels        = local.labels
  user_project_override = true
  billing_project       = var.project_id
}

# Enabling the APIs themselves (apis.tf) goes without the override: on a fresh project the quota
# project would have to have those very APIs enabled already.
provider "google" {
  alias          = "apis"
  project        = var.project_id
  region         = var.region
  default_labels = local.labels
}
