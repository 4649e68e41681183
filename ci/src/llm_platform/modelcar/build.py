"""`modelcar build`: spec + source + base -> OCI image layout, with a digest-pinned result."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict

from llm_platform.logs import get_logger
from llm_platform.modelcar import digest_cache
from llm_platform.modelcar.base_image import load_base, parse_platform
from llm_platform.modelcar.image import plan_image
from llm_platform.modelcar.layout import write_layout
from llm_platform.modelcar.source import open_source
from llm_platform.modelcar.spec import load_spec

log = get_logger("modelcar.build")


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


def build_layout(
    spec_path: Path,
    *,
    output: Path,
    source_dir: Path | None = None,
    base: str | None = None,
    platform: str = "linux/amd64",
    hf_token: str | None = None,
    cache_dir: Path | None = None,
    use_cache: bool = False,
) -> BuildResult:
    """Build the modelcar of `spec_path` into the OCI layout `output`.

    `base` overrides the spec's base (a digest-pinned registry reference or `oci:DIR[:TAG]`);
    `source_dir` replaces the hub download with a local directory. With `use_cache`, the digests of local
    files go to the digest cache (`cache_dir`, else the default one) for a later publish.
    """
    spec = load_spec(spec_path)
    resolved_platform = parse_platform(platform)
    base_ref = base or spec.image.base
    base_image = load_base(base_ref, resolved_platform)
    source = open_source(spec, source_dir=source_dir, token=hf_token)
    log.info(
        "building %s: %d files from %s on %s (%s)",
        spec.name,
        len(source.files),
        source.location,
        base_ref,
        resolved_platform,
    )
    cache = digest_cache.LayerDigestCache((cache_dir or digest_cache.default_cache_dir()) if use_cache else None)
    before = digest_cache.identities(source, cache)
    plan = plan_image(spec, source, base_image, platform=str(resolved_platform))
    digest = write_layout(plan, output)
    if use_cache:
        digest_cache.remember(plan, source, cache, before)
        cache.save()
    return BuildResult(
        spec=spec.name,
        reference=f"{spec.image.repository}@{digest}",
        manifest_digest=digest,
        layout=str(output),
        revision=source.revision,
        base=base_ref,
        base_digest=base_image.manifest_digest,
        files=[BuiltFile(path=f.path, size=f.size, sha256=f.sha256) for f in plan.model_files],
    )
