# Settings of the dev environment (nothing secret; the project id comes from project.tfvars).
# Attributes and defaults: the `settings` variable of infra/modules/platform.
settings = {
  environment         = "dev"
  region              = "us-east4"
  release_channel     = "RAPID"
  deletion_protection = false
  gpu_zones           = ["us-east4-a", "us-east4-c"]
  gpu_max_nodes       = 2
  gpu_spot            = true
  cpu_min_nodes       = 1
  cpu_max_nodes       = 3
}
