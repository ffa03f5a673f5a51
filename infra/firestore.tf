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
  location_id             = local.firestore_location
  type                    = "FIRESTORE_NATIVE"
  delete_protection_state = var.firestore_delete_protection ? "DELETE_PROTECTION_ENABLED" : "DELETE_PROTECTION_DISABLED"
  # `terraform destroy` leaves the database and its documents in place.
  deletion_policy = "ABANDON"

  lifecycle {
    precondition {
      condition     = var.firestore_location_any_continent || local.firestore_continent == local.region_continent
      error_message = "Firestore location ${local.firestore_location} (${local.firestore_continent}) is not on the continent of region ${var.region} (${local.region_continent}): every Firestore call would cross it. Pick a location there, or set firestore_location_any_continent = true if this is meant. The location cannot be changed once the database exists."
    }
  }

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

# Retention: a TTL policy on expireAt in both collection groups the connector's records live in.
# An action gets expireAt = its end + action_retention_days when it ends (Finished, Cancelled,
# Stopped, Error), and each of its units (actions/{token}/mailboxes/{unit}) when the unit ends;
# Firestore deletes a document some time (typically within a day) after its expireAt. The sync
# state (state/{task}/mailboxes/{address}) shares the collection group "mailboxes" but never
# carries expireAt, so it is never deleted; nor are the sink documents. An action's results
# (actions/{token}/results) and the lock documents of units that take no mailbox lock
# (actions/{token}/locks) and its totals' shards (actions/{token}/totals) are written while it runs, with expireAt = then + action_retention_days
# + 30 days, so they outlive any action that ends within 30 days of writing them. The field is exempt from
# single-field indexing: nothing queries it, and an index on a timestamp written in time order
# would only add cost. The hold documents of Gmail addresses (gmailAddresses/{address}, one per
# address read) carry expireAt = an hour past their hold's end, so an address nobody reads any
# more is deleted too. A Fetch's ActionID (actionIds/{hash}) carries expireAt = a day after the
# Fetch: after that the ActionID names a new action.
resource "google_firestore_field" "expire_at" {
  for_each = toset(["actions", "mailboxes", "results", "locks", "totals", "gmailAddresses", "actionIds"])

  project    = var.project_id
  database   = google_firestore_database.default.name
  collection = each.value
  field      = "expireAt"

  ttl_config {}

  index_config {}
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
