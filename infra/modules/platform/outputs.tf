# Each environment root re-exports these under the same names: they are the contract read by
# `llm-platform tofu output` (llm_platform.tofu.PlatformOutputs).

output "project_id" {
  description = "Project of this environment."
  value       = var.project_id
}

output "region" {
  description = "Region of the cluster and the registry."
  value       = var.settings.region
}

output "cluster_name" {
  description = "GKE cluster name."
  value       = module.gke.cluster_name
}

output "cluster_location" {
  description = "GKE cluster location."
  value       = module.gke.location
}

output "cluster_endpoint" {
  description = "Control-plane IP address (no scheme)."
  value       = module.gke.endpoint
  sensitive   = true
}

output "cluster_ca_certificate" {
  description = "Base64 PEM of the cluster CA."
  value       = module.gke.cluster_ca_certificate
  sensitive   = true
}

output "registry_url" {
  description = "Where modelcars are pushed: <region>-docker.pkg.dev/<project>/modelcars."
  value       = module.registry.url
}

output "workload_identity_pool" {
  description = "Workload Identity pool of the cluster."
  value       = module.gke.workload_identity_pool
}

output "service_accounts" {
  description = "Google service account emails: argocd, external_secrets, pusher, nodes."
  value = {
    argocd           = module.iam.argocd_email
    external_secrets = module.iam.external_secrets_email
    pusher           = module.iam.pusher_email
    nodes            = module.iam.nodes_email
  }
}

output "gpu_pool" {
  description = "GPU node pool name and accelerator type (for nodeSelectors)."
  value = {
    name             = module.gpu_pool.name
    accelerator_type = module.gpu_pool.accelerator_type
  }
}
