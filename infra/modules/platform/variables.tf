variable "project_id" {
  type        = string
  description = "GCP project of the environment; also names the Workload Identity pool <project>.svc.id.goog."

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a GCP project id: 6-30 lowercase letters, digits or dashes."
  }
}

variable "pusher_federated_principals" {
  type        = list(string)
  description = "Workload identity federation principals (principal:// or principalSet://, e.g. CI) that act as the modelcar pusher."
  default     = []
}

variable "pusher_impersonators" {
  type        = list(string)
  description = "IAM members (user:, group:, serviceAccount:) that may impersonate the modelcar pusher."
  default     = []
}
