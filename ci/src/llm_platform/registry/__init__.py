"""OCI registry client: references, credentials, the distribution API with streamed, resumable uploads."""

# Where credentials may come from in the environment; here (not in auth.py, which imports httpx) so the
# CLI can name them in its help without importing the client.
USERNAME_ENV = "LLM_PLATFORM_REGISTRY_USERNAME"
PASSWORD_ENV = "LLM_PLATFORM_REGISTRY_PASSWORD"
