# The environment is modules/platform; this root adds its state backend, provider pins and values.
module "platform" {
  source = "../../modules/platform"

  project_id                  = var.project_id
  pusher_federated_principals = var.pusher_federated_principals
  pusher_impersonators        = var.pusher_impersonators
  settings                    = var.settings
  settings_keys               = keys(var.settings)
}
