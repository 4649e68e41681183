# Lets a Kubernetes service account act as a Google service account. The pool only exists once the
# cluster does, so callers pass the cluster's pool output (which also orders these after the cluster).
resource "google_service_account_iam_member" "this" {
  for_each = var.bindings

  service_account_id = each.value.service_account_name
  role               = "roles/iam.workloadIdentityUser"
  member             = "serviceAccount:${var.workload_identity_pool}[${each.value.namespace}/${each.value.kubernetes_service_account}]"
}
