"""OCI registry client: references, credentials, the distribution API with streamed, resumable uploads.

What the CLI needs to describe its options lives here, not in the modules that import httpx or pydantic,
so `llm-platform` can start without them.
"""

from enum import StrEnum

# Where credentials may come from in the environment.
USERNAME_ENV = "LLM_PLATFORM_REGISTRY_USERNAME"
PASSWORD_ENV = "LLM_PLATFORM_REGISTRY_PASSWORD"

MiB = 1024 * 1024


class UploadMode(StrEnum):
    """How a blob goes up: PATCHed in chunks (resumable) or in one streamed PUT."""

    CHUNKED = "chunked"
    MONOLITHIC = "monolithic"
