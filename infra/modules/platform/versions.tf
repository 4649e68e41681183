# Source only: exact provider versions are pinned by each root (infra/envs/<env>/versions.tf), so a
# provider upgrade is one edit per root and the modules can never disagree with it.
terraform {
  required_providers {
    google = {
      source = "hashicorp/google"
    }
  }
}
