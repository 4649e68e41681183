"""`gitops/crds.lock.yaml`: upstream CRD files (URL + sha256) per pinned release, and `crds sync`
which downloads them into a cache directory, verifying every byte before it lands there."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from llm_platform.cache_root import cache_root
from llm_platform.errors import InputError, RegistryError
from llm_platform.http_client import httpx
from llm_platform.logs import get_logger

log = get_logger("lint.crds")


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
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"{path}: cannot read lock file: {exc.strerror}") from exc
    try:
        data = YAML(typ="safe").load(text)
    except YAMLError as exc:
        line = exc.problem_mark.line + 1 if isinstance(exc, MarkedYAMLError) and exc.problem_mark else 1
        raise InputError(f"{path}:{line}: not valid YAML") from exc
    try:
        lock = CrdLock.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise InputError(f"{path}: field {'.'.join(map(str, err['loc']))}: {err['msg']}") from exc
    for entry in lock.crds:
        if entry.file.startswith("/") or ".." in Path(entry.file).parts or not re.fullmatch(r"[\w./-]+", entry.file):
            raise InputError(f"{path}: file {entry.file!r} must be a plain relative path")
    return lock


def default_crd_cache() -> Path:
    return Path(cache_root()) / "crds"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def sync_crds(lock: CrdLock, cache: Path, *, client: httpx.Client | None = None) -> tuple[int, int]:
    """Fetch every locked CRD not already cached with the right sha256. Returns (downloaded, cached).
    A mismatching download is refused (nothing written) and fails the sync after the others finish."""
    own = client is None
    client = client or httpx.Client(follow_redirects=True, timeout=httpx.Timeout(60.0))
    downloaded = cached = 0
    refused: list[str] = []
    try:
        for entry in lock.crds:
            dest = cache / entry.file
            if dest.is_file() and _sha256(dest) == entry.sha256:
                cached += 1
                continue
            try:
                resp = client.get(entry.url)
            except httpx.HTTPError as exc:
                refused.append(f"{entry.url}: {exc}")
                continue
            if resp.status_code != 200:
                refused.append(f"{entry.url}: HTTP {resp.status_code}")
                continue
            got = hashlib.sha256(resp.content).hexdigest()
            if got != entry.sha256:
                refused.append(f"{entry.url}: sha256 {got} does not match the lock ({entry.sha256})")
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
            tmp.write_bytes(resp.content)
            tmp.replace(dest)
            downloaded += 1
            log.info("fetched %s", entry.file)
    finally:
        if own:
            client.close()
    if refused:
        raise RegistryError("crds sync refused " + f"{len(refused)} file(s): " + "; ".join(refused))
    return downloaded, cached
