variable "project_id" {
  type        = string
  description = "Project of the repository."
}

variable "location" {
  type        = string
  description = "Region of the repository; keep it next to the cluster so pulls stay regional."
}

variable "repository_id" {
  type        = string
  description = "Repository id; images are pushed to <location>-docker.pkg.dev/<project>/<repository_id>."
  default     = "modelcars"
}

variable "description" {
  type        = string
  description = "Human description of the repository."
  default     = "Modelcars: OCI images carrying model weights under /models, deployed by digest."
}

variable "immutable_tags" {
  type        = bool
  description = "Refuse to move an existing tag to another digest."
  default     = true
}

variable "reader_members" {
  type        = list(string)
  description = "IAM members that pull (nodes, Argo CD)."
  default     = []
}

variable "writer_members" {
  type        = list(string)
  description = "IAM members that push (the pipeline's pusher)."
  default     = []
}
