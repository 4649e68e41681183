resource "google_container_cluster" "this" {
  project  = var.project_id
  name     = var.name
  location = var.location

  # Node pools are managed as separate resources, so the default pool is removed right after creation.
  remove_default_node_pool = true
  initial_node_count       = 1
  deletion_protection      = var.deletion_protection

  network         = var.network_id
  subnetwork      = var.subnetwork_id
  networking_mode = "VPC_NATIVE"

  ip_allocation_policy {
    cluster_secondary_range_name  = var.pods_range_name
    services_secondary_range_name = var.services_range_name
  }

  private_cluster_config {
    enable_private_nodes    = true
    enable_private_endpoint = false
    master_ipv4_cidr_block  = var.master_cidr
  }

  dynamic "master_authorized_networks_config" {
    for_each = length(var.master_authorized_networks) > 0 ? [1] : []
    content {
      dynamic "cidr_blocks" {
        for_each = var.master_authorized_networks
        content {
          cidr_block   = cidr_blocks.value.cidr_block
          display_name = cidr_blocks.value.display_name
        }
      }
    }
  }

  release_channel {
    channel = var.release_channel
  }

  # Pods get Google identities through Kubernetes service accounts: no node-wide or JSON-key credentials.
  workload_identity_config {
    workload_pool = "${var.project_id}.svc.id.goog"
  }

  # GKE-managed Gateway API CRDs (Gateway, HTTPRoute) for the inference gateway.
  gateway_api_config {
    channel = var.gateway_api_channel
  }

  addons_config {
    gcs_fuse_csi_driver_config {
      enabled = true
    }
  }

  # The cluster is the platform; the pipeline refuses to destroy it too (protected-resources.yaml).
  lifecycle {
    prevent_destroy = true
  }
}

resource "google_container_node_pool" "cpu" {
  project  = var.project_id
  name     = "cpu"
  cluster  = google_container_cluster.this.name
  location = var.location

  autoscaling {
    location_policy      = "BALANCED"
    total_min_node_count = var.cpu_min_nodes
    total_max_node_count = var.cpu_max_nodes
  }

  management {
    auto_repair  = true
    auto_upgrade = true
  }

  node_config {
    machine_type    = var.cpu_machine_type
    disk_size_gb    = 100
    disk_type       = "pd-balanced"
    service_account = var.node_service_account
    oauth_scopes    = ["https://www.googleapis.com/auth/cloud-platform"]
    labels          = { "resource-type" = "cpu" }

    workload_metadata_config {
      mode = "GKE_METADATA"
    }

    shielded_instance_config {
      enable_secure_boot          = true
      enable_integrity_monitoring = true
    }
  }
}
