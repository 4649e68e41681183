terraform {
  required_version = ">= 1.8.0"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "7.28.0"
    }
  }

  # Creates the buckets that hold every other root's state, so it starts on local state; afterwards
  # its own state can be migrated into the dev bucket (see infra/README.md).
  backend "local" {}
}
