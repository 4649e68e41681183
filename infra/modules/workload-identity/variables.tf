variable "workload_identity_pool" {
  type        = string
  description = "The cluster's pool, <project>.svc.id.goog."

  validation {
    condition     = endswith(var.workload_identity_pool, ".svc.id.goog")
    error_message = "workload_identity_pool must end in .svc.id.goog."
  }
}

variable "bindings" {
  type = map(object({
    service_account_name       = string
    namespace                  = string
    kubernetes_service_account = string
  }))
  description = "KSA -> GSA bindings; service_account_name is the GSA resource name (projects/.../serviceAccounts/...)."
}
