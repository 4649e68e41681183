resource "google_container_node_pool" "this" {
  project        = var.project_id
  name           = var.name
  cluster        = var.cluster_name
  location       = var.location
  node_locations = var.node_locations

  # GPUs cost money idle: the pool scales to zero and back on pending GPU pods. Totals span all zones.
  autoscaling {
    location_policy      = "ANY"
    total_min_node_count = 0
    total_max_node_count = var.max_nodes
  }

  management {
    auto_repair  = true
    auto_upgrade = true
  }

  node_config {
    machine_type    = var.machine_type
    spot            = var.spot
    disk_size_gb    = var.disk_size_gb
    disk_type       = "pd-ssd"
    service_account = var.service_account
    oauth_scopes    = ["https://www.googleapis.com/auth/cloud-platform"]
    labels          = { "resource-type" = "gpu" }

    guest_accelerator {
      type  = var.accelerator_type
      count = var.accelerator_count

      # GKE installs and upgrades the NVIDIA driver itself: no driver DaemonSet to maintain.
      gpu_driver_installation_config {
        gpu_driver_version = var.gpu_driver_version
      }
    }

    # Only pods that tolerate the GPU taint (model servers) land on these expensive nodes.
    taint {
      key    = "nvidia.com/gpu"
      value  = "present"
      effect = "NO_SCHEDULE"
    }

    # Image streaming: a multi-GB modelcar starts before it is fully pulled.
    gcfs_config {
      enabled = true
    }

    workload_metadata_config {
      mode = "GKE_METADATA"
    }

    shielded_instance_config {
      enable_secure_boot          = true
      enable_integrity_monitoring = true
    }
  }

  # GKE adds its own GPU labels and taint on these nodes; without this every plan would show drift.
  lifecycle {
    ignore_changes = [node_config[0].labels, node_config[0].taint]
  }
}
