provider "google" {
  project = var.project_id
}

resource "google_storage_bucket" "state" {
  for_each = var.state_buckets

  project  = var.project_id
  name     = each.value
  location = var.location

  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false

  # Every state write is kept: a bad apply or a corrupted state can be rolled back.
  versioning {
    enabled = true
  }

  lifecycle_rule {
    condition {
      num_newer_versions = 20
      with_state         = "ARCHIVED"
    }
    action {
      type = "Delete"
    }
  }

  # Losing a state bucket orphans an environment; the pipeline also refuses such plans.
  lifecycle {
    prevent_destroy = true
  }
}
