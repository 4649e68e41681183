variable "project_id" {
  type        = string
  description = "Project that holds the state buckets. Not committed: pass --var-file or TF_VAR_project_id."
}

variable "location" {
  type        = string
  description = "Bucket location (a region or multi-region)."
  default     = "US"
}

variable "state_buckets" {
  type        = map(string)
  description = "Environment -> state bucket name; must match infra/envs/<env>/backend.hcl."
  default = {
    dev  = "llm-platform-tfstate-dev"
    prod = "llm-platform-tfstate-prod"
  }
}
