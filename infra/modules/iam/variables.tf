variable "project_id" {
  type        = string
  description = "Project of the service accounts."
}

variable "name_prefix" {
  type        = string
  description = "Prefix of every account id, e.g. llm-dev (account ids are 6-30 characters)."

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,12}$", var.name_prefix))
    error_message = "name_prefix must be 2-13 lowercase letters, digits or dashes, starting with a letter."
  }
}

variable "pusher_federated_principals" {
  type        = list(string)
  description = "principal:// or principalSet:// identities (workload identity federation) allowed to act as the pusher."
  default     = []
}

variable "pusher_impersonators" {
  type        = list(string)
  description = "IAM members (user:, group:, serviceAccount:) allowed to impersonate the pusher."
  default     = []
}
