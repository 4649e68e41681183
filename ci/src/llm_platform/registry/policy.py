"""What each registry accepts: upload mode (chunked or monolithic), chunk size, largest layer.

Sources (see /work/shared/reference/modelcars.md §6): GHCR answers 416 to PATCHes over 4 MiB, Artifact
Registry / GCR have no chunked uploads, ECR answers 201 after the first part of a chunked upload (KitOps
`upload-format.go`), so those get one streamed PUT. ECR private layers are capped at 52,000 MiB and ECR
Public at 10,000 MiB (AWS service quotas); quay.io rejects single-PUT blobs over 20 GB (oras-py PR #137),
so Quay gets chunks. Everything else gets chunks, which is what lets a broken upload resume.
"""

from __future__ import annotations

import fnmatch

from pydantic import BaseModel, ConfigDict

from llm_platform.registry import MiB, UploadMode

__all__ = ["DEFAULT_CHUNK_SIZE", "MiB", "RegistryPolicy", "UploadMode", "policy_for"]

DEFAULT_CHUNK_SIZE = 128 * MiB


class RegistryPolicy(BaseModel):
    model_config = ConfigDict(frozen=True)

    upload_mode: UploadMode = UploadMode.CHUNKED
    chunk_size: int = DEFAULT_CHUNK_SIZE
    max_layer_size: int | None = None  # bytes; None = no known limit
    limit_source: str = ""


_RULES: list[tuple[str, RegistryPolicy]] = [
    ("ghcr.io", RegistryPolicy(upload_mode=UploadMode.MONOLITHIC)),
    ("*.pkg.dev", RegistryPolicy(upload_mode=UploadMode.MONOLITHIC)),
    ("gcr.io", RegistryPolicy(upload_mode=UploadMode.MONOLITHIC)),
    ("*.gcr.io", RegistryPolicy(upload_mode=UploadMode.MONOLITHIC)),
    (
        "public.ecr.aws",
        RegistryPolicy(
            upload_mode=UploadMode.MONOLITHIC,
            max_layer_size=10_000 * MiB,
            limit_source="ECR Public layer quota",
        ),
    ),
    (
        "*.dkr.ecr.*.amazonaws.com",
        RegistryPolicy(
            upload_mode=UploadMode.MONOLITHIC, max_layer_size=52_000 * MiB, limit_source="ECR layer quota"
        ),
    ),
]


def policy_for(
    host: str,
    *,
    upload_mode: UploadMode | None = None,
    chunk_size: int | None = None,
    max_layer_size: int | None = None,
) -> RegistryPolicy:
    """The built-in policy for `host` (port ignored), with any explicit override applied."""
    bare = host.rsplit(":", 1)[0].lower() if not host.startswith("[") else host
    policy = RegistryPolicy()
    for pattern, rule in _RULES:
        if fnmatch.fnmatchcase(bare, pattern):
            policy = rule
            break
    updates: dict[str, object] = {}
    if upload_mode is not None:
        updates["upload_mode"] = upload_mode
    if chunk_size is not None:
        updates["chunk_size"] = chunk_size
    if max_layer_size is not None:
        updates["max_layer_size"] = max_layer_size
        updates["limit_source"] = "--max-layer-size"
    return policy.model_copy(update=updates) if updates else policy
