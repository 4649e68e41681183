variable "project_id" {
  type        = string
  description = "GCP project of this environment. Not committed: pass --var-file project.tfvars or TF_VAR_project_id."

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a GCP project id: 6-30 lowercase letters, digits or dashes."
  }
}

variable "environment" {
  type        = string
  description = "Environment name; part of every resource name (set in env.auto.tfvars)."

  validation {
    condition     = can(regex("^[a-z][a-z0-9]{1,7}$", var.environment))
    error_message = "environment must be 2-8 lowercase letters or digits, starting with a letter."
  }
}

variable "name_prefix" {
  type        = string
  description = "Prefix of resource names; names are <name_prefix>-<environment>."
  default     = "llm"
}

variable "region" {
  type        = string
  description = "Region of the cluster, the registry and the network."
}

variable "nodes_cidr" {
  type        = string
  description = "Primary range of the node subnet."
  default     = "10.10.0.0/20"
}

variable "pods_cidr" {
  type        = string
  description = "Secondary range for pods."
  default     = "10.20.0.0/14"
}

variable "services_cidr" {
  type        = string
  description = "Secondary range for services."
  default     = "10.30.0.0/20"
}

variable "master_cidr" {
  type        = string
  description = "/28 range of the private control plane."
  default     = "172.16.0.0/28"
}

variable "master_authorized_networks" {
  type = list(object({
    cidr_block   = string
    display_name = string
  }))
  description = "CIDRs allowed to reach the control-plane endpoint (empty: any, IAM still applies)."
  default     = []
}

variable "release_channel" {
  type        = string
  description = "GKE release channel: RAPID, REGULAR, STABLE or EXTENDED."
}

variable "deletion_protection" {
  type        = bool
  description = "GKE-side deletion protection of the cluster."
  default     = true
}

variable "cpu_machine_type" {
  type        = string
  description = "Machine type of the CPU (system) pool."
  default     = "e2-standard-8"
}

variable "cpu_min_nodes" {
  type        = number
  description = "Minimum CPU nodes across zones."
  default     = 1
}

variable "cpu_max_nodes" {
  type        = number
  description = "Maximum CPU nodes across zones."
  default     = 6
}

variable "gpu_zones" {
  type        = list(string)
  description = "Zones of the GPU pool: where the accelerator type is offered."
}

variable "gpu_machine_type" {
  type        = string
  description = "Machine type of the GPU pool."
  default     = "g2-standard-8"
}

variable "gpu_accelerator_type" {
  type        = string
  description = "GPU type of the GPU pool."
  default     = "nvidia-l4"
}

variable "gpu_accelerator_count" {
  type        = number
  description = "GPUs per node."
  default     = 1
}

variable "gpu_max_nodes" {
  type        = number
  description = "Maximum GPU nodes across zones (the minimum is always 0)."
}

variable "gpu_spot" {
  type        = bool
  description = "Run GPU nodes on Spot VMs."
  default     = false
}

variable "pusher_federated_principals" {
  type        = list(string)
  description = "Workload identity federation principals (e.g. CI) that act as the modelcar pusher."
  default     = []
}

variable "pusher_impersonators" {
  type        = list(string)
  description = "IAM members that may impersonate the modelcar pusher."
  default     = []
}
