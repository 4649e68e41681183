"""`gitops/crds.lock.yaml`: upstream CRD files (URL + sha256) per pinned release, and `crds sync`
which puts them into a cache directory, from upstream or from a mirror directory, verifying every byte
before it lands there (the sync itself is `llm_platform.pinned_files`, shared with other locks)."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from llm_platform.cache_root import cache_root
from llm_platform.errors import InputError
from llm_platform.http_client import httpx
from llm_platform.pinned_files import Mirror, SyncTarget, Upstream, load_lock_file, sync_pinned

# The default of `crds sync --mirror`: a directory laid out like the cache (<project>/<tag>/<file>).
CRDS_MIRROR_ENV = "LLM_PLATFORM_CRDS_MIRROR"
CRDS_SYNC = SyncTarget(command="crds sync", mirror_hint=f"--mirror DIR or {CRDS_MIRROR_ENV}=DIR")


class LockedCrd(BaseModel):
    model_config = ConfigDict(extra="forbid")

    project: str
    version: str = Field(description="upstream release tag the file is pinned to")
    url: str = Field(pattern=r"^https?://")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    file: str = Field(description="relative path inside the cache: <project>/<tag>/<name>.yaml")
    kinds: list[str] = Field(default_factory=list, description="group/Kind defined by the file")


class CrdLock(BaseModel):
    model_config = ConfigDict(extra="forbid")

    crds: list[LockedCrd]


def load_lock(path: Path) -> CrdLock:
    lock = load_lock_file(path, CrdLock)
    for entry in lock.crds:
        if (
            entry.file.startswith("/")
            or ".." in Path(entry.file).parts
            or not re.fullmatch(r"[\w./-]+", entry.file)
        ):
            raise InputError(f"{path}: file {entry.file!r} must be a plain relative path")
    return lock


def default_crd_cache() -> Path:
    return Path(cache_root()) / "crds"


def sync_crds(
    lock: CrdLock, cache: Path, *, mirror: Path | None = None, client: httpx.Client | None = None
) -> tuple[int, int]:
    """Fetch every locked CRD not already cached with the right sha256, from its upstream URL or, with
    `mirror`, from `mirror/<entry.file>`. Returns (fetched, cached). A missing or mismatching file is
    refused (nothing written) and fails the sync after the others finish (`pinned_files.sync_pinned`)."""
    source: Upstream | Mirror = Mirror(mirror) if mirror is not None else Upstream(client)
    return sync_pinned(lock.crds, cache, source, CRDS_SYNC)
