output "name" {
  description = "Name of the GPU node pool."
  value       = google_container_node_pool.this.name
}

output "accelerator_type" {
  description = "GPU type of the pool (the value of the cloud.google.com/gke-accelerator node label)."
  value       = var.accelerator_type
}
