# Settings of the prod environment (nothing secret; the project id comes from project.tfvars).
# Attributes and defaults: the `settings` variable of infra/modules/platform.
settings = {
  environment         = "prod"
  region              = "us-east4"
  release_channel     = "REGULAR"
  deletion_protection = true
  gpu_zones           = ["us-east4-a", "us-east4-c"]
  gpu_max_nodes       = 8
  gpu_spot            = false
  cpu_min_nodes       = 2
  cpu_max_nodes       = 6
}
