# The functions' source, as Cloud Build receives it.
#
# Cloud Build (Google's Node.js buildpack) runs `npm install` or `npm ci`, then the package's
# `gcp-build` script (tsc), then prunes devDependencies. In this repository `functions/` is an npm
# workspace: its tsconfig.json extends ../tsconfig.json, and typescript and @types/node are
# devDependencies of the root package. Neither is in a zip of functions/ alone, so the zip is
# assembled here to build on its own:
#
#   package.json   functions/package.json, with typescript and @types/node added to its
#                  devDependencies at the root package's exact versions (a version the functions
#                  package pins itself wins);
#   tsconfig.json  standalone: the root compilerOptions overlaid with functions/tsconfig.json's,
#                  include ["src"], so `tsc -p tsconfig.json` builds src/ into lib/ exactly as
#                  `npm run build` does locally (both tsconfig files must stay plain JSON);
#   src/**         the TypeScript sources.
#
# Lock file: the root package-lock.json covers the whole workspace and is not valid for
# functions/ alone, so it is not shipped. Top-level dependencies are pinned to exact versions in
# functions/package.json; transitive ones resolve when Cloud Build runs `npm install`. If a
# functions/package-lock.json is ever generated for the package alone, it is shipped and the build
# uses `npm ci` instead.

locals {
  functions_dir     = "${path.module}/../functions"
  functions_package = jsondecode(file("${local.functions_dir}/package.json"))
  root_package      = jsondecode(file("${path.module}/../package.json"))

  functions_build_package = merge(local.functions_package, {
    devDependencies = merge(
      {
        "typescript"  = local.root_package.devDependencies["typescript"]
        "@types/node" = local.root_package.devDependencies["@types/node"]
      },
      try(local.functions_package.devDependencies, {}),
    )
  })

  functions_tsconfig = {
    compilerOptions = merge(
      jsondecode(file("${path.module}/../tsconfig.json")).compilerOptions,
      jsondecode(file("${local.functions_dir}/tsconfig.json")).compilerOptions,
    )
    include = ["src"]
  }

  functions_sources   = fileset(local.functions_dir, "src/**")
  functions_lock_file = "${local.functions_dir}/package-lock.json"
}

data "archive_file" "functions" {
  type             = "zip"
  output_path      = "${path.module}/.terraform/build/functions-source.zip"
  output_file_mode = "0644"

  source {
    filename = "package.json"
    content  = jsonencode(local.functions_build_package)
  }

  source {
    filename = "tsconfig.json"
    content  = jsonencode(local.functions_tsconfig)
  }

  dynamic "source" {
    for_each = local.functions_sources
    content {
      filename = source.value
      content  = file("${local.functions_dir}/${source.value}")
    }
  }

  dynamic "source" {
    for_each = fileexists(local.functions_lock_file) ? [local.functions_lock_file] : []
    content {
      filename = "package-lock.json"
      content  = file(source.value)
    }
  }
}

resource "google_storage_bucket" "source" {
  project                     = var.project_id
  name                        = "${var.project_id}-gmail-connector-source"
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = true
  depends_on                  = [google_project_service.apis]
}

# The object name carries the zip's hash, so a source change is a new object and redeploys both
# functions; an unchanged source plans no change.
resource "google_storage_bucket_object" "functions_source" {
  bucket = google_storage_bucket.source.name
  name   = "functions-${data.archive_file.functions.output_md5}.zip"
  source = data.archive_file.functions.output_path
}

# Function images. The repository keeps the three newest versions of each image and deletes
# anything older than 30 days, so images of past deployments do not accumulate storage cost.
resource "google_artifact_registry_repository" "functions" {
  project                = var.project_id
  location               = var.region
  repository_id          = "gmail-connector"
  description            = "Images of the Gmail connector functions."
  format                 = "DOCKER"
  cleanup_policy_dry_run = false

  cleanup_policies {
    id     = "keep-recent"
    action = "KEEP"
    most_recent_versions {
      keep_count = 3
    }
  }

  cleanup_policies {
    id     = "delete-old"
    action = "DELETE"
    condition {
      tag_state  = "ANY"
      older_than = "30d"
    }
  }

  depends_on = [google_project_service.apis]
}
