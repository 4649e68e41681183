variable "project_id" {
  type        = string
  description = "Project of the cluster; also names the Workload Identity pool <project>.svc.id.goog."
}

variable "name" {
  type        = string
  description = "Cluster name."
}

variable "location" {
  type        = string
  description = "Region (regional cluster) or zone of the cluster."
}

variable "network_id" {
  type        = string
  description = "VPC the cluster joins."
}

variable "subnetwork_id" {
  type        = string
  description = "Node subnet."
}

variable "pods_range_name" {
  type        = string
  description = "Secondary range name for pods."
}

variable "services_range_name" {
  type        = string
  description = "Secondary range name for services."
}

variable "master_cidr" {
  type        = string
  description = "/28 range for the private control plane."
}

variable "master_authorized_networks" {
  type = list(object({
    cidr_block   = string
    display_name = string
  }))
  description = "CIDRs allowed to reach the public control-plane endpoint; empty leaves it unrestricted (IAM still applies)."
  default     = []
}

variable "release_channel" {
  type        = string
  description = "GKE release channel."

  validation {
    condition     = contains(["RAPID", "REGULAR", "STABLE", "EXTENDED"], var.release_channel)
    error_message = "release_channel must be RAPID, REGULAR, STABLE or EXTENDED."
  }
}

variable "gateway_api_channel" {
  type        = string
  description = "GKE-managed Gateway API channel."
  default     = "CHANNEL_STANDARD"

  validation {
    condition     = contains(["CHANNEL_STANDARD", "CHANNEL_EXPERIMENTAL"], var.gateway_api_channel)
    error_message = "The platform routes through the Gateway API: gateway_api_channel must be CHANNEL_STANDARD or CHANNEL_EXPERIMENTAL."
  }
}

variable "deletion_protection" {
  type        = bool
  description = "GKE-side deletion protection (independent of the OpenTofu prevent_destroy)."
  default     = true
}

variable "node_service_account" {
  type        = string
  description = "Email of the node service account."
}

variable "cpu_machine_type" {
  type        = string
  description = "Machine type of the CPU (system) pool."
  default     = "e2-standard-8"
}

variable "cpu_min_nodes" {
  type        = number
  description = "Minimum CPU nodes across all zones."
  default     = 1
}

variable "cpu_max_nodes" {
  type        = number
  description = "Maximum CPU nodes across all zones."
  default     = 6
}
