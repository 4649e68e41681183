"""The model lock: `modelcars/<name>.lock.json`, what a spec resolved to when its image was last bumped.

It ties three facts together in git, beside the spec: the spec it was built from (by hash, so a
changed spec is visible), the Hugging Face commit the weights came from, and the pushed image.
`stale_specs` compares every spec of a directory with its lock: what a deploy has to publish.
"""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from llm_platform.documents import CONFIG_LIMITS, DocumentError, load_json, read_bytes
from llm_platform.errors import InputError
from llm_platform.modelcar.spec import load_spec, spec_sha256
from llm_platform.oci import DIGEST_PATTERN, GIT_COMMIT_RE, SHA256_HEX_RE

LOCK_SUFFIX = ".lock.json"

# REPOSITORY@sha256:<hex>: a lock pins by digest only; a tag would not be a lock.
_PINNED_IMAGE = rf"^[^\s@]+@{DIGEST_PATTERN}$"


class ModelLock(BaseModel):
    """One modelcar's lock; field order is the on-disk order."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    spec_sha256: str = Field(
        pattern=SHA256_HEX_RE.pattern, description="spec_sha256() of the spec the image was built from"
    )
    hf_commit: str = Field(
        pattern=GIT_COMMIT_RE.pattern, description="resolved Hugging Face commit sha of the weights"
    )
    image: str = Field(pattern=_PINNED_IMAGE, description="REPOSITORY@sha256:<hex> of the pushed modelcar")

    @property
    def digest(self) -> str:
        return self.image.rpartition("@")[2]


def lock_path_for(spec_path: Path) -> Path:
    """`modelcars/<name>.yaml` -> `modelcars/<name>.lock.json`."""
    return spec_path.with_name(spec_path.stem + LOCK_SUFFIX)


def lock_relpath_for(spec_relpath: str) -> str:
    """The same as lock_path_for, on a posix path inside a git tree."""
    path = PurePosixPath(spec_relpath)
    return str(path.with_name(path.stem + LOCK_SUFFIX))


def render_lock(lock: ModelLock) -> bytes:
    """Canonical bytes: stable key order, two-space indent, trailing newline (so re-writes diff cleanly)."""
    return (json.dumps(lock.model_dump(mode="json"), indent=2) + "\n").encode()


def parse_lock(data: bytes, *, source: str) -> ModelLock:
    """Parse a lock's bytes; `source` names the file in errors."""
    try:
        raw = load_json(data, source=source, limits=CONFIG_LIMITS)
    except DocumentError as exc:
        if exc.syntax:
            raise InputError(
                f"{exc.where}: not a valid JSON lock file: {exc.detail.removeprefix('not valid JSON: ')}"
            ) from None
        raise
    try:
        return ModelLock.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(top level)'}: {err['msg']}" for err in exc.errors()
        )
        raise InputError(f"{source}: invalid lock: {problems}") from exc


def read_lock(path: Path) -> ModelLock | None:
    """The lock at `path`, or None when there is none yet."""
    try:
        data = read_bytes(path, CONFIG_LIMITS)
    except DocumentError as exc:
        if exc.kind == "missing":
            return None
        raise
    return parse_lock(data, source=str(path))


class StaleSpecs(BaseModel):
    """The specs of a modelcars/ directory split by whether their image must be published (sorted names)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    changed: list[str] = Field(description="specs without a lock, or whose lock records another spec_sha256")
    unchanged: list[str] = Field(description="specs whose lock records their current spec_sha256")


def stale_specs(modelcars_dir: Path) -> StaleSpecs:
    """Which specs (`<name>.yaml`) of `modelcars_dir` need publishing.

    A spec is changed when its `<name>.lock.json` is missing or records another spec_sha256 than the
    spec has now; the hash is canonical, so comments and formatting don't count. A bad spec or lock is
    an InputError naming its file (as `modelcars_dir` spells it), line and field.
    """
    if not modelcars_dir.is_dir():
        raise InputError(f"{modelcars_dir}: no such directory (expected the modelcars/ of the repository)")
    changed: list[str] = []
    unchanged: list[str] = []
    for spec_path in sorted(modelcars_dir.glob("*.yaml")):
        spec = load_spec(spec_path)
        lock = read_lock(lock_path_for(spec_path))
        if lock is None or lock.spec_sha256 != spec_sha256(spec):
            changed.append(spec.name)
        else:
            unchanged.append(spec.name)
    return StaleSpecs(changed=changed, unchanged=unchanged)
