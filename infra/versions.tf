# Terraform and provider versions for the Gmail connector deployment.
#
# The google and google-beta providers are pinned to the same 7.x line: every resource here
# uses google (GA) arguments; google-beta is configured identically so a beta-only argument can
# be adopted later by adding `provider = google-beta` to one resource without re-initialising.
# archive builds the functions' source zip locally.

terraform {
  # 1.5: `check` blocks. Nothing newer is needed.
  required_version = ">= 1.5.0"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 7.45"
    }
    google-beta = {
      source  = "hashicorp/google-beta"
      version = "~> 7.45"
    }
    archive = {
      source  = "hashicorp/archive"
      version = ">= 2.4.0, < 3.0.0"
    }
  }
}

provider "google" {
  project        = var.project_id
  region         = var.region
  default_labels = local.labels
}

provider "google-beta" {
  project        = var.project_id
  region         = var.region
  default_labels = local.labels
}
