# Remote state in GCS (object versioning + locking). Bucket and prefix come from backend.hcl, which
# `llm-platform tofu` always passes to init (`-backend-config=backend.hcl`); with plain tofu:
#   tofu init -backend-config=backend.hcl
# The state buckets themselves are created by infra/bootstrap.
terraform {
  backend "gcs" {}
}
