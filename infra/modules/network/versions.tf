# Source only: exact provider versions are pinned by each root (infra/envs/<env>/versions.tf).
terraform {
  required_providers {
    google = {
      source = "hashicorp/google"
    }
  }
}
