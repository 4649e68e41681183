# Credentials come only from the environment (Application Default Credentials, GOOGLE_CREDENTIALS or
# GOOGLE_OAUTH_ACCESS_TOKEN); nothing secret is written here or passed on a command line.
locals {
  default_labels = {
    platform    = "llm-platform"
    environment = var.settings.environment
  }
}

provider "google" {
  project        = var.project_id
  region         = var.settings.region
  default_labels = local.default_labels
}

provider "google-beta" {
  project        = var.project_id
  region         = var.settings.region
  default_labels = local.default_labels
}
