output "network_id" {
  description = "Self link id of the VPC."
  value       = google_compute_network.this.id
}

output "network_name" {
  description = "Name of the VPC."
  value       = google_compute_network.this.name
}

output "subnetwork_id" {
  description = "Id of the node subnet."
  value       = google_compute_subnetwork.nodes.id
}

output "pods_range_name" {
  description = "Secondary range name for pods."
  value       = google_compute_subnetwork.nodes.secondary_ip_range[0].range_name
}

output "services_range_name" {
  description = "Secondary range name for services."
  value       = google_compute_subnetwork.nodes.secondary_ip_range[1].range_name
}
