# One environment of the platform: every root under infra/envs calls this module once, so what an
# environment is lives here and an environment root holds only its state, pins and values.

locals {
  name = "${var.settings.name_prefix}-${var.settings.environment}"
}

module "services" {
  source = "../project-services"

  project_id = var.project_id
}

module "network" {
  source = "../network"

  project_id    = var.project_id
  name          = local.name
  region        = var.settings.region
  nodes_cidr    = var.settings.nodes_cidr
  pods_cidr     = var.settings.pods_cidr
  services_cidr = var.settings.services_cidr

  depends_on = [module.services]
}

module "iam" {
  source = "../iam"

  project_id                  = var.project_id
  name_prefix                 = local.name
  pusher_federated_principals = var.pusher_federated_principals
  pusher_impersonators        = var.pusher_impersonators

  depends_on = [module.services]
}

module "registry" {
  source = "../artifact-registry"

  project_id    = var.project_id
  location      = var.settings.region
  repository_id = "modelcars"
  reader_members = [
    "serviceAccount:${module.iam.nodes_email}",
    "serviceAccount:${module.iam.argocd_email}",
  ]
  writer_members = ["serviceAccount:${module.iam.pusher_email}"]

  depends_on = [module.services]
}

module "gke" {
  source = "../gke"

  project_id                 = var.project_id
  name                       = local.name
  location                   = var.settings.region
  network_id                 = module.network.network_id
  subnetwork_id              = module.network.subnetwork_id
  pods_range_name            = module.network.pods_range_name
  services_range_name        = module.network.services_range_name
  master_cidr                = var.settings.master_cidr
  master_authorized_networks = var.settings.master_authorized_networks
  release_channel            = var.settings.release_channel
  gateway_api_channel        = "CHANNEL_STANDARD"
  deletion_protection        = var.settings.deletion_protection
  node_service_account       = module.iam.nodes_email
  cpu_machine_type           = var.settings.cpu_machine_type
  cpu_min_nodes              = var.settings.cpu_min_nodes
  cpu_max_nodes              = var.settings.cpu_max_nodes
}

module "gpu_pool" {
  source = "../gpu-pool"

  project_id        = var.project_id
  cluster_name      = module.gke.cluster_name
  location          = module.gke.location
  node_locations    = var.settings.gpu_zones
  machine_type      = var.settings.gpu_machine_type
  accelerator_type  = var.settings.gpu_accelerator_type
  accelerator_count = var.settings.gpu_accelerator_count
  max_nodes         = var.settings.gpu_max_nodes
  spot              = var.settings.gpu_spot
  service_account   = module.iam.nodes_email
}

module "workload_identity" {
  source = "../workload-identity"

  workload_identity_pool = module.gke.workload_identity_pool
  bindings = {
    argocd_repo_server = {
      service_account_name       = module.iam.argocd_name
      namespace                  = "argocd"
      kubernetes_service_account = "argocd-repo-server"
    }
    argocd_application_controller = {
      service_account_name       = module.iam.argocd_name
      namespace                  = "argocd"
      kubernetes_service_account = "argocd-application-controller"
    }
    external_secrets = {
      service_account_name       = module.iam.external_secrets_name
      namespace                  = "external-secrets"
      kubernetes_service_account = "external-secrets"
    }
  }
}
