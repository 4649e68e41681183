output "members" {
  description = "The Workload Identity members granted, by binding key."
  value       = { for k, b in google_service_account_iam_member.this : k => b.member }
}
