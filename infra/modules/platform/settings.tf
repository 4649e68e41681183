# The environment's settings, kept apart from the rest of the module so that they can be checked
# (types, defaults, validations, unknown attributes) with no provider: see tests/test_infra_invariants.py.

# One object rather than one variable per setting so that an environment root passes its whole
# env.auto.tfvars through in one line instead of re-declaring every setting.
variable "settings" {
  type = object({
    # Part of every resource name: <name_prefix>-<environment>.
    environment = string
    name_prefix = optional(string, "llm")
    # Region of the cluster (regional), the registry and the network.
    region = string

    # Node subnet and its secondary ranges for pods and services; /28 of the private control plane.
    nodes_cidr    = optional(string, "10.10.0.0/20")
    pods_cidr     = optional(string, "10.20.0.0/14")
    services_cidr = optional(string, "10.30.0.0/20")
    master_cidr   = optional(string, "172.16.0.0/28")
    # CIDRs allowed to reach the control-plane endpoint; empty: any (IAM still applies).
    master_authorized_networks = optional(list(object({
      cidr_block   = string
      display_name = string
    })), [])

    # GKE release channel: RAPID, REGULAR, STABLE or EXTENDED.
    release_channel = string
    # GKE-side deletion protection of the cluster (prevent_destroy guards it on the OpenTofu side).
    deletion_protection = optional(bool, true)

    # CPU (system) pool, node counts across zones.
    cpu_machine_type = optional(string, "e2-standard-8")
    cpu_min_nodes    = optional(number, 1)
    cpu_max_nodes    = optional(number, 6)

    # GPU pool: zones where the accelerator type is offered; scales from 0 to gpu_max_nodes.
    gpu_zones             = list(string)
    gpu_max_nodes         = number
    gpu_machine_type      = optional(string, "g2-standard-8")
    gpu_accelerator_type  = optional(string, "nvidia-l4")
    gpu_accelerator_count = optional(number, 1)
    gpu_spot              = optional(bool, false)
  })
  description = "The environment's committed settings (infra/envs/<env>/env.auto.tfvars); the comments in the type say what each attribute is, unset optional attributes take the defaults shown."

  validation {
    condition     = can(regex("^[a-z][a-z0-9]{1,7}$", var.settings.environment))
    error_message = "settings.environment must be 2-8 lowercase letters or digits, starting with a letter."
  }

  validation {
    condition = alltrue([
      for cidr in [var.settings.nodes_cidr, var.settings.pods_cidr, var.settings.services_cidr, var.settings.master_cidr] :
      can(cidrhost(cidr, 0))
    ])
    error_message = "settings.nodes_cidr, pods_cidr, services_cidr and master_cidr must be CIDR ranges."
  }

  validation {
    condition     = length(var.settings.gpu_zones) > 0
    error_message = "settings.gpu_zones must name at least one zone offering the accelerator type."
  }

  validation {
    condition     = var.settings.cpu_min_nodes >= 0 && var.settings.cpu_max_nodes >= max(1, var.settings.cpu_min_nodes)
    error_message = "settings.cpu_min_nodes must be >= 0 and cpu_max_nodes >= max(1, cpu_min_nodes)."
  }
}

variable "settings_keys" {
  type        = list(string)
  description = "The attribute names the root set in settings (keys(var.settings)): converting to the object type drops unknown attributes silently, so a misspelt setting is refused by the `settings` output's precondition instead."
}

output "settings" {
  description = "The environment's settings with the defaults filled in."
  value       = var.settings

  precondition {
    condition     = length(setsubtract(var.settings_keys, keys(var.settings))) == 0
    error_message = "settings: unknown attribute(s) ${join(", ", setsubtract(var.settings_keys, keys(var.settings)))} (misspelt? see the settings variable of infra/modules/platform)."
  }
}
