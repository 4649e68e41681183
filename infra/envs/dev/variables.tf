variable "project_id" {
  type        = string
  description = "GCP project of this environment. Not committed: pass --var-file project.tfvars or TF_VAR_project_id."
}

variable "settings" {
  # `any` only to pass env.auto.tfvars through: modules/platform types, defaults and validates it,
  # and refuses attributes it does not know.
  type        = any
  description = "This environment's settings (env.auto.tfvars): the `settings` object of infra/modules/platform."
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
