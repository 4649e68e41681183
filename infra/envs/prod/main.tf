locals {
  name = "${var.name_prefix}-${var.environment}"
}

module "services" {
  source = "../../modules/project-services"

  project_id = var.project_id
}

module "network" {
  source = "../../modules/network"

  project_id    = var.project_id
  name          = local.name
  region        = var.region
  nodes_cidr    = var.nodes_cidr
  pods_cidr     = var.pods_cidr
  services_cidr = var.services_cidr

  depends_on = [module.services]
}

module "iam" {
  source = "../../modules/iam"

  project_id                  = var.project_id
  name_prefix                 = local.name
  pusher_federated_principals = var.pusher_federated_principals
  pusher_impersonators        = var.pusher_impersonators

  depends_on = [module.services]
}

module "registry" {
  source = "../../modules/artifact-registry"

  project_id    = var.project_id
  location      = var.region
  repository_id = "modelcars"
  reader_members = [
    "serviceAccount:${module.iam.nodes_email}",
    "serviceAccount:${module.iam.argocd_email}",
  ]
  writer_members = ["serviceAccount:${module.iam.pusher_email}"]

  depends_on = [module.services]
}

module "gke" {
  source = "../../modules/gke"

  project_id                 = var.project_id
  name                       = local.name
  location                   = var.region
  network_id                 = module.network.network_id
  subnetwork_id              = module.network.subnetwork_id
  pods_range_name            = module.network.pods_range_name
  services_range_name        = module.network.services_range_name
  master_cidr                = var.master_cidr
  master_authorized_networks = var.master_authorized_networks
  release_channel            = var.release_channel
  gateway_api_channel        = "CHANNEL_STANDARD"
  deletion_protection        = var.deletion_protection
  node_service_account       = module.iam.nodes_email
  cpu_machine_type           = var.cpu_machine_type
  cpu_min_nodes              = var.cpu_min_nodes
  cpu_max_nodes              = var.cpu_max_nodes
}

module "gpu_pool" {
  source = "../../modules/gpu-pool"

  project_id        = var.project_id
  cluster_name      = module.gke.cluster_name
  location          = module.gke.location
  node_locations    = var.gpu_zones
  machine_type      = var.gpu_machine_type
  accelerator_type  = var.gpu_accelerator_type
  accelerator_count = var.gpu_accelerator_count
  max_nodes         = var.gpu_max_nodes
  spot              = var.gpu_spot
  service_account   = module.iam.nodes_email
}

module "workload_identity" {
  source = "../../modules/workload-identity"

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
