variable "project_id" {
  type        = string
  description = "Project of the cluster."
}

variable "cluster_name" {
  type        = string
  description = "Cluster the pool belongs to."
}

variable "location" {
  type        = string
  description = "Location of the cluster."
}

variable "name" {
  type        = string
  description = "Node pool name."
  default     = "gpu"
}

variable "node_locations" {
  type        = list(string)
  description = "Zones where the accelerator type is offered (check `gcloud compute accelerator-types list`)."
}

variable "machine_type" {
  type        = string
  description = "Machine type matching the accelerator (g2-* for L4, a2/a3 for A100/H100)."
  default     = "g2-standard-8"
}

variable "accelerator_type" {
  type        = string
  description = "GPU type, e.g. nvidia-l4, nvidia-tesla-a100, nvidia-h100-80gb."
  default     = "nvidia-l4"
}

variable "accelerator_count" {
  type        = number
  description = "GPUs per node."
  default     = 1

  validation {
    condition     = var.accelerator_count >= 1
    error_message = "accelerator_count must be at least 1."
  }
}

variable "gpu_driver_version" {
  type        = string
  description = "GKE-managed NVIDIA driver: LATEST or DEFAULT."
  default     = "LATEST"

  validation {
    condition     = contains(["LATEST", "DEFAULT"], var.gpu_driver_version)
    error_message = "gpu_driver_version must be LATEST or DEFAULT (GKE-managed driver installation)."
  }
}

variable "max_nodes" {
  type        = number
  description = "Maximum GPU nodes across all zones (the minimum is always 0)."

  validation {
    condition     = var.max_nodes >= 1
    error_message = "max_nodes must be at least 1."
  }
}

variable "spot" {
  type        = bool
  description = "Use Spot VMs (cheaper, preemptible)."
  default     = false
}

variable "disk_size_gb" {
  type        = number
  description = "Boot disk size; modelcar images are unpacked here."
  default     = 200
}

variable "service_account" {
  type        = string
  description = "Email of the node service account."
}
