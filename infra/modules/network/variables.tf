variable "project_id" {
  type        = string
  description = "Project of the VPC."
}

variable "name" {
  type        = string
  description = "Name of the VPC; subnet, router and NAT names derive from it."
}

variable "region" {
  type        = string
  description = "Region of the subnet, router and NAT."
}

variable "nodes_cidr" {
  type        = string
  description = "Primary range of the node subnet."
}

variable "pods_cidr" {
  type        = string
  description = "Secondary range for pod IPs."
}

variable "services_cidr" {
  type        = string
  description = "Secondary range for service IPs."
}
