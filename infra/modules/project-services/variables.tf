variable "project_id" {
  type        = string
  description = "Project whose APIs are enabled."
}

variable "services" {
  type        = list(string)
  description = "APIs the platform needs."
  default = [
    "artifactregistry.googleapis.com",
    "compute.googleapis.com",
    "container.googleapis.com",
    "iam.googleapis.com",
    "iamcredentials.googleapis.com",
    "secretmanager.googleapis.com",
    "sts.googleapis.com",
  ]
}
