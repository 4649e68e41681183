output "nodes_email" {
  description = "Email of the GKE node service account."
  value       = google_service_account.nodes.email
}

output "argocd_email" {
  description = "Email of the Argo CD service account."
  value       = google_service_account.argocd.email
}

output "argocd_name" {
  description = "Resource name (projects/.../serviceAccounts/...) of the Argo CD service account."
  value       = google_service_account.argocd.name
}

output "external_secrets_email" {
  description = "Email of the External Secrets service account."
  value       = google_service_account.external_secrets.email
}

output "external_secrets_name" {
  description = "Resource name of the External Secrets service account."
  value       = google_service_account.external_secrets.name
}

output "pusher_email" {
  description = "Email of the pipeline's pusher service account."
  value       = google_service_account.pusher.email
}
