"""OCI registry client: references, credentials, the distribution API with streamed, resumable uploads."""
