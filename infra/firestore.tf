# Firestore: the (default) database in Native mode, its composite indexes and field overrides
# from ../firestore.indexes.json (the file the Firebase emulator reads too, so local and deployed
# indexes cannot differ), and security rules from ../firestore.rules that deny every client:
# only the functions' service account reaches the data, through IAM.
#
# An existing (default) database is adopted with
#   terraform import google_firestore_database.default "projects/PROJECT_ID/databases/(default)"

locals {
  firestore_indexes_file = jsondecode(file("${path.module}/../firestore.indexes.json"))

  # Keyed by collection group, scope and fields, so reordering the file changes nothing.
  firestore_composite_indexes = {
    for index in local.firestore_indexes_file.indexes :
    "${index.collectionGroup}/${index.queryScope}/${join(",", [for f in index.fields : "${f.fieldPath}:${try(f.order, f.arrayConfig)}"])}" => index
  }

  firestore_field_overrides = {
    for override in try(local.firestore_indexes_file.fieldOverrides, []) :
    "${override.collectionGroup}/${override.fieldPath}" => override
  }
}

resource "google_firestore_database" "default" {
  project                 = var.project_id
  name                    = "(default)"
  location_id             = var.firestore_location
  type                    = "FIRESTORE_NATIVE"
  delete_protection_state = var.firestore_delete_protection ? "DELETE_PROTECTION_ENABLED" : "DELETE_PROTECTION_DISABLED"
  # `terraform destroy` leaves the database and its documents in place.
  deletion_policy = "ABANDON"

  depends_on = [google_project_service.apis]
}

resource "google_firestore_index" "composite" {
  for_each = local.firestore_composite_indexes

  project     = var.project_id
  database    = google_firestore_database.default.name
  collection  = each.value.collectionGroup
  query_scope = each.value.queryScope

  dynamic "fields" {
    for_each = each.value.fields
    content {
      field_path   = fields.value.fieldPath
      order        = try(fields.value.order, null)
      array_config = try(fields.value.arrayConfig, null)
    }
  }
}

# Field overrides: an empty "indexes" list exempts the field from single-field indexing (the
# large text fields of the sink, which nothing queries; they would add index storage to every
# document).
resource "google_firestore_field" "override" {
  for_each = local.firestore_field_overrides

  project    = var.project_id
  database   = google_firestore_database.default.name
  collection = each.value.collectionGroup
  field      = each.value.fieldPath

  index_config {
    dynamic "indexes" {
      for_each = each.value.indexes
      content {
        query_scope  = try(indexes.value.queryScope, "COLLECTION")
        order        = try(indexes.value.order, null)
        array_config = try(indexes.value.arrayConfig, null)
      }
    }
  }
}

resource "google_firebaserules_ruleset" "firestore" {
  project = var.project_id

  source {
    files {
      name    = "firestore.rules"
      content = file("${path.module}/../firestore.rules")
    }
  }

  depends_on = [google_project_service.apis, google_firestore_database.default]
}

# "cloud.firestore" is the release of the (default) database. ruleset_name forces a new release
# whenever the rules change.
resource "google_firebaserules_release" "firestore" {
  project      = var.project_id
  name         = "cloud.firestore"
  ruleset_name = "projects/${var.project_id}/rulesets/${google_firebaserules_ruleset.firestore.name}"
}
