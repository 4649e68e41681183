output "cluster_id" {
  description = "Id of the cluster."
  value       = google_container_cluster.this.id
}

output "cluster_name" {
  description = "Name of the cluster."
  value       = google_container_cluster.this.name
}

output "location" {
  description = "Location of the cluster."
  value       = google_container_cluster.this.location
}

output "endpoint" {
  description = "Control-plane IP address (no scheme)."
  value       = google_container_cluster.this.endpoint
  sensitive   = true
}

output "cluster_ca_certificate" {
  description = "Base64 PEM of the cluster CA certificate."
  value       = google_container_cluster.this.master_auth[0].cluster_ca_certificate
  sensitive   = true
}

output "workload_identity_pool" {
  description = "Workload Identity pool of the cluster: <project>.svc.id.goog."
  value       = google_container_cluster.this.workload_identity_config[0].workload_pool
}
