"""`modelcar build`: spec + source + base -> OCI image layout, with a digest-pinned result."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict

from llm_platform.modelcar.layout import write_layout
from llm_platform.modelcar.prepare import SourceOptions, prepare


class BuiltFile(BaseModel):
    model_config = ConfigDict(frozen=True)

    path: str
    size: int
    sha256: str


class BuildResult(BaseModel):
    """What a build produced: the layout, the manifest digest and the reference it will have once pushed."""

    model_config = ConfigDict(frozen=True)

    spec: str
    reference: str
    manifest_digest: str
    layout: str
    revision: str
    base: str
    base_digest: str
    files: list[BuiltFile]


def build_layout(options: SourceOptions, *, output: Path) -> BuildResult:
    """Build the modelcar of `options.spec` into the OCI layout `output` (replacing an earlier layout there).

    With `options.cache_dir`, the digests learnt from local files go to the digest cache for a later publish.
    """
    prepared = prepare(options)
    plan = prepared.plan()
    digest = write_layout(plan, output)
    prepared.remember(plan)
    return BuildResult(
        spec=prepared.spec.name,
        reference=f"{prepared.spec.image.repository}@{digest}",
        manifest_digest=digest,
        layout=str(output),
        revision=prepared.source.revision,
        base=prepared.base_ref,
        base_digest=prepared.base.manifest_digest,
        files=[BuiltFile(path=f.path, size=f.size, sha256=f.sha256) for f in plan.model_files],
    )
