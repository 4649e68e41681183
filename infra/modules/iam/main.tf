# Google service accounts of the platform. No keys are ever created: workloads use Workload Identity,
# the pipeline impersonates the pusher (short-lived tokens), so no long-lived secret exists to leak.

resource "google_service_account" "nodes" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-nodes"
  display_name = "GKE nodes (${var.name_prefix})"
  description  = "Least-privilege node identity instead of the Compute Engine default service account."
}

resource "google_service_account" "argocd" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-argocd"
  display_name = "Argo CD (${var.name_prefix})"
  description  = "Argo CD repo-server and controller: read OCI charts and modelcars from Artifact Registry."
}

resource "google_service_account" "external_secrets" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-external-secrets"
  display_name = "External Secrets Operator (${var.name_prefix})"
  description  = "Reads Secret Manager secrets for ExternalSecrets."
}

resource "google_service_account" "pusher" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-pusher"
  display_name = "Modelcar pusher (${var.name_prefix})"
  description  = "The delivery pipeline pushes modelcar images to Artifact Registry as this account."
}

resource "google_project_iam_member" "nodes" {
  for_each = toset([
    "roles/container.defaultNodeServiceAccount",
    "roles/logging.logWriter",
    "roles/monitoring.metricWriter",
  ])

  project = var.project_id
  role    = each.value
  member  = google_service_account.nodes.member
}

resource "google_project_iam_member" "external_secrets_accessor" {
  project = var.project_id
  role    = "roles/secretmanager.secretAccessor"
  member  = google_service_account.external_secrets.member
}

# Federated CI identities (e.g. a GitHub Actions workload identity pool principalSet) act as the pusher.
resource "google_service_account_iam_member" "pusher_federated" {
  for_each = toset(var.pusher_federated_principals)

  service_account_id = google_service_account.pusher.name
  role               = "roles/iam.workloadIdentityUser"
  member             = each.value
}

# People or other service accounts that may mint short-lived pusher tokens (impersonation).
resource "google_service_account_iam_member" "pusher_impersonators" {
  for_each = toset(var.pusher_impersonators)

  service_account_id = google_service_account.pusher.name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = each.value
}
