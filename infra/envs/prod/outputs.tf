# Re-exported from modules/platform under the names `llm-platform tofu output` reads
# (llm_platform.tofu.PlatformOutputs); see that module for what each one is.

output "project_id" {
  description = "Project of this environment."
  value       = module.platform.project_id
}

output "region" {
  description = "Region of the cluster and the registry."
  value       = module.platform.region
}

output "cluster_name" {
  description = "GKE cluster name."
  value       = module.platform.cluster_name
}

output "cluster_location" {
  description = "GKE cluster location."
  value       = module.platform.cluster_location
}

output "cluster_endpoint" {
  description = "Control-plane IP address (no scheme)."
  value       = module.platform.cluster_endpoint
  sensitive   = true
}

output "cluster_ca_certificate" {
  description = "Base64 PEM of the cluster CA."
  value       = module.platform.cluster_ca_certificate
  sensitive   = true
}

output "registry_url" {
  description = "Where modelcars are pushed: <region>-docker.pkg.dev/<project>/modelcars."
  value       = module.platform.registry_url
}

output "workload_identity_pool" {
  description = "Workload Identity pool of the cluster."
  value       = module.platform.workload_identity_pool
}

output "service_accounts" {
  description = "Google service account emails: argocd, external_secrets, pusher, nodes."
  value       = module.platform.service_accounts
}

output "gpu_pool" {
  description = "GPU node pool name and accelerator type (for nodeSelectors)."
  value       = module.platform.gpu_pool
}
