# Credentials come only from the environment (Application Default Credentials, GOOGLE_CREDENTIALS or
# GOOGLE_OAUTH_ACCESS_TOKEN); nothing secret is written here or passed on a command line.
provider "google" {
  project = var.project_id
  region  = var.region

  default_labels = {
    platform    = "llm-platform"
    environment = var.environment
  }
}

provider "google-beta" {
  project = var.project_id
  region  = var.region

  default_labels = {
    platform    = "llm-platform"
    environment = var.environment
  }
}
