output "repository_id" {
  description = "Id of the repository."
  value       = google_artifact_registry_repository.this.repository_id
}

output "url" {
  description = "Registry URL of the repository: <location>-docker.pkg.dev/<project>/<repository_id>."
  value       = "${google_artifact_registry_repository.this.location}-docker.pkg.dev/${var.project_id}/${google_artifact_registry_repository.this.repository_id}"
}
