"""The template's placeholders, defined once: what the upstream tree carries until a fork configures it.

Every placeholder contains MARKER (the placeholder GCP project id, also the placeholder GitHub owner), so
one substring finds them all: `configure --check` and the `config-placeholder` lint rule look for it.
"""

from __future__ import annotations

PROJECT_ID = "llm-platform-example"
MARKER = PROJECT_ID
REGION = "us-central1"
REPO_URL = f"https://github.com/{PROJECT_ID}/llm-platform.git"
# The revision of our own sources; "main" is a real branch name, so it is no placeholder to --check.
REVISION = "main"


def registry_host(region: str) -> str:
    """The Artifact Registry host of a region: REGION-docker.pkg.dev."""
    return f"{region}-docker.pkg.dev"


def default_registry(region: str, project_id: str) -> str:
    """Where modelcars are pushed (infra/ creates this repository): REGION-docker.pkg.dev/PROJECT/modelcars."""
    return f"{registry_host(region)}/{project_id}/modelcars"


REGISTRY = default_registry(REGION, PROJECT_ID)
