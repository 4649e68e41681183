"""`modelcar publish`: prepare a modelcar (`modelcar.prepare`, shared with `build`) and push it
(`modelcar.push`), moving only the bytes the registry lacks.

Order of work: resolve the target and credentials, refuse oversize layers before any upload, learn layer
digests without reading files where possible (layer annotations of the previous image of the same spec in
the target repository, and the digest cache), push, verify, tag. A reference is returned only for a
verified image.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from llm_platform.errors import InputError, RegistryError, StaleDigestError
from llm_platform.logs import get_logger
from llm_platform.modelcar.image import (
    ImagePlan,
    LayerMembers,
    ModelLayer,
    layer_members,
    reuse_from_manifest,
)
from llm_platform.modelcar.prepare import PreparedModelcar, SourceOptions, prepare
from llm_platform.modelcar.push import (
    HELD_IN_MEMORY_MAX,
    PushCounters,
    PushTarget,
    push_image,
    push_tags,
    verify_blobs,
)
from llm_platform.network import NetworkBounds
from llm_platform.oci import ANNOTATION_REVISION, ANNOTATION_SPEC
from llm_platform.registry.auth import resolve_credentials
from llm_platform.registry.client import RegistryClient, scheme_for
from llm_platform.registry.policy import UploadMode, policy_for
from llm_platform.registry.progress import UploadProgress, human_bytes
from llm_platform.registry.reference import ImageReference, parse_reference

log = get_logger("modelcar.publish")

# How many `<spec>-*` tags are read when looking for the previous image (each costs one manifest GET).
PREVIOUS_TAGS_LIMIT = 10
_TAG_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


class PushOptions(BaseModel):
    """Where a publish goes and how it talks to the registry."""

    model_config = ConfigDict(frozen=True)

    target: str = Field(description="REGISTRY/REPOSITORY[:TAG]")
    insecure_registries: list[str] = Field(default_factory=list)
    username: str | None = None
    password: SecretStr | None = None
    concurrency: int = 4
    mount_from: list[str] = Field(default_factory=list)
    upload_mode: UploadMode | None = None
    chunk_size: int | None = None
    max_layer_size: int | None = None
    retries: int = 4
    backoff: float = 0.5
    timeout: float | None = None  # the registry's stall bound, s (llm_platform.network); None: env or 60
    # Where a hub layer waits for its upload when the registry needs its digest first (None: read it twice).
    spool_dir: Path | None = None


class PublishResult(BaseModel):
    """What a publish did; `reference` is the verified, digest-pinned image."""

    model_config = ConfigDict(frozen=True)

    reference: str
    digest: str
    # What the lock and the bump record; the image's revision annotation carries the same value.
    hf_commit: str = Field(
        description="Hugging Face commit the weights came from (with --source-dir: the "
        "spec's revision as given)"
    )
    tags: list[str]
    bytes_uploaded: int
    blobs_uploaded: int
    blobs_present: int
    blobs_mounted: int
    layers_known_without_reading: int
    previous_images: list[str]
    seconds: float


def default_tag(spec_name: str, revision: str) -> str:
    """`<spec name>-<first 12 of the HF commit sha>` (a branch name when the source is not pinned)."""
    return f"{spec_name}-{_TAG_UNSAFE.sub('-', revision[:12])}"[:128]


@dataclass
class PreviousImages:
    """Earlier images of the spec in the target repository: their layer reuse, and what each tag looked at
    resolves to."""

    reuse: dict[LayerMembers, tuple[str, int]] = field(default_factory=dict)
    found: list[str] = field(default_factory=list)  # TAG@DIGEST
    resolved: dict[str, str] = field(default_factory=dict)  # tag -> digest

    def holds(self, digest: str) -> bool:
        return digest in self.resolved.values()


def previous_images(
    client: RegistryClient, repository: str, spec_name: str, tags: Iterable[str]
) -> PreviousImages:
    """Layer reuse from earlier images of this spec (the tags to be pushed, then the newest `<spec>-*` tags)."""
    candidates = list(dict.fromkeys(tags))
    prefixed = sorted(t for t in client.list_tags(repository) if t.startswith(f"{spec_name}-"))
    candidates += [t for t in prefixed[-PREVIOUS_TAGS_LIMIT:] if t not in candidates]
    previous = PreviousImages()
    seen: set[str] = set()
    for tag in candidates:
        digest = client.manifest_digest(repository, tag)
        if digest is None:
            continue
        previous.resolved[tag] = digest
        if digest in seen:
            continue
        seen.add(digest)
        body, _, _ = client.get_manifest(repository, digest)  # checked against the digest
        try:
            manifest = json.loads(body)
        except ValueError:
            continue
        if (
            not isinstance(manifest, dict)
            or (manifest.get("annotations") or {}).get(ANNOTATION_SPEC) != spec_name
        ):
            continue
        previous.reuse.update(reuse_from_manifest(manifest))
        previous.found.append(f"{tag}@{digest}")
    return previous


@dataclass(frozen=True)
class _Target:
    ref: ImageReference
    mounts: list[ImageReference]


def _resolve_target(options: PushOptions) -> _Target:
    ref = parse_reference(options.target, what="--to")
    if ref.digest:
        raise InputError(f"--to {options.target!r}: name a repository (optionally :TAG), not a digest")
    if options.concurrency < 1:
        raise InputError(f"--concurrency {options.concurrency}: must be at least 1")
    mounts = [parse_reference(m, what="--mount-from") for m in options.mount_from]
    for mount in mounts:
        if mount.registry != ref.registry:
            raise InputError(
                f"--mount-from {mount.name}: not on {ref.registry}; mounts work within one registry"
            )
    return _Target(ref, mounts)


def _mount_sources(prepared: PreparedModelcar, target: _Target) -> list[str]:
    """The base image's repository when it lives on the same registry, then --mount-from."""
    sources = [m.repository for m in target.mounts]
    if not prepared.base_ref.startswith("oci:"):
        base = parse_reference(prepared.base_ref, what="--base")
        if base.registry == target.ref.registry:
            sources.insert(0, base.repository)
    return sources


def _already_there(
    client: RegistryClient, repository: str, plan: ImagePlan, previous: PreviousImages
) -> bool:
    """An unchanged re-publish: every digest known without reading, and a tag looked at resolves to the very
    manifest (whose bytes `previous_images` fetched and checked). Then only the blobs are checked (one HEAD
    each); should one be missing, the full push runs."""
    if not all(layer.known for layer in plan.model_layers) or not previous.holds(plan.manifest_digest):
        return False
    try:
        verify_blobs(client, repository, plan)
    except RegistryError as exc:
        log.info("%s is incomplete (%s); pushing it again", plan.manifest_digest, exc)
        return False
    return True


def publish_modelcar(
    source: SourceOptions,
    options: PushOptions,
    *,
    progress: UploadProgress | None = None,
    environ: Mapping[str, str] | None = None,
) -> PublishResult:
    """Build the modelcar of `source` and push it to `options.target`; return the verified reference."""
    started = time.monotonic()
    target = _resolve_target(options)
    bounds = NetworkBounds.from_timeout(options.timeout)
    ref = target.ref
    prepared = prepare(source, stream_hub=True)
    credentials = resolve_credentials(
        ref.api_host,
        username=options.username,
        password=options.password.get_secret_value() if options.password else None,
        environ=environ,
    )
    policy = policy_for(
        ref.api_host,
        upload_mode=options.upload_mode,
        chunk_size=options.chunk_size,
        max_layer_size=options.max_layer_size,
    )
    progress = progress or UploadProgress()
    with RegistryClient(
        ref.api_host,
        insecure=scheme_for(ref, options.insecure_registries) == "http",
        credentials=credentials,
        policy=policy,
        retries=options.retries,
        backoff=options.backoff,
        progress=progress,
        max_connections=options.concurrency + 2,
        bounds=bounds,
    ) as client:
        # Refuse what the registry cannot take before a single byte moves.
        for files in prepared.layer_groups:
            model_layer = ModelLayer(files)
            client.check_layer_size(model_layer.size, model_layer.label)
        for layer in prepared.base.layers:
            client.check_layer_size(layer.size, f"base layer {layer.digest}")

        spec = prepared.spec
        tags = [ref.tag] if ref.tag else [default_tag(spec.name, prepared.source.revision)]
        previous = previous_images(client, ref.repository, spec.name, tags)
        plan = prepared.plan(previous.reuse)
        known = sum(1 for layer in plan.model_layers if layer.known)
        log.info(
            "publishing %s to %s: %d base + %d model layers (%d known without reading), previous: %s",
            spec.name,
            ref.name,
            len(prepared.base.layers),
            len(plan.model_layers),
            known,
            ", ".join(previous.found) or "none",
        )
        counters = PushCounters()
        if _already_there(client, ref.repository, plan, previous):
            counters.add("present", len({b.digest for b in plan.layers}) + 1)
        else:
            _push(client, prepared, plan, previous, target, options, counters, progress)
        push_tags(client, ref.repository, plan, tags, previous.resolved)

    result = PublishResult(
        reference=str(ref.with_digest(plan.manifest_digest)),
        digest=plan.manifest_digest,
        hf_commit=plan.annotations[ANNOTATION_REVISION],
        tags=tags,
        bytes_uploaded=counters.bytes_uploaded,
        blobs_uploaded=counters.uploaded,
        blobs_present=counters.present,
        blobs_mounted=counters.mounted,
        layers_known_without_reading=known,
        previous_images=previous.found,
        seconds=round(time.monotonic() - started, 3),
    )
    log.info(
        "published %s (tags: %s): %s uploaded in %d blobs, %d already present, %d mounted, %.1fs",
        result.reference,
        ", ".join(tags),
        human_bytes(result.bytes_uploaded),
        result.blobs_uploaded,
        result.blobs_present,
        result.blobs_mounted,
        result.seconds,
    )
    return result


def _hub_strategy(client: RegistryClient, chunked: bool, spool_dir: Path | None) -> str:
    """How the files come from the hub to this registry, for the log."""
    if chunked:
        return (
            f"{client.host}: each hub file streams straight into a chunked upload (one download, its layer "
            f"digest learnt on the way, its sha256 checked before the upload is committed)"
        )
    why = (
        "takes no chunked upload"
        if client.policy.upload_mode is UploadMode.MONOLITHIC
        else "gets mounts (--mount-from), which need digests first"
    )
    held = f"held in memory up to {human_bytes(HELD_IN_MEMORY_MAX)}, else "
    if spool_dir is not None:
        return (
            f"{client.host} {why}: a hub layer of unknown digest is read once, {held}spooled to {spool_dir}"
        )
    return (
        f"{client.host} {why}: a hub layer of unknown digest is {held}read twice, once to learn its digest and "
        f"once for the upload (--spool-dir DIR reads it once, at the cost of disk)"
    )


def _push(
    client: RegistryClient,
    prepared: PreparedModelcar,
    plan: ImagePlan,
    previous: PreviousImages,
    target: _Target,
    options: PushOptions,
    counters: PushCounters,
    progress: UploadProgress,
) -> None:
    # A layer of unknown digest streams at once (its digest goes in the final PUT of a chunked upload) when
    # the registry cannot already hold it: no earlier image or mount source at all, or its content is known
    # to differ from the earlier image's (a hub sha256 that matched no layer, a local file edited since the
    # last publish). Otherwise (say a fresh CI runner without cache) it is hashed first.
    chunked = client.policy.upload_mode is UploadMode.CHUNKED and not target.mounts
    edited = prepared.edited_files()

    def stream_unknown(layer: ModelLayer) -> bool:
        return chunked and (
            not previous.found
            or layer_members(layer.files) is not None
            or any(f.path in edited for f in layer.files)
        )

    if prepared.source.kind == "huggingface":
        log.info("%s", _hub_strategy(client, chunked, options.spool_dir))
    push_target = PushTarget(
        client=client,
        repository=target.ref.repository,
        mount_sources=_mount_sources(prepared, target),
        stream_unknown=stream_unknown,
        concurrency=options.concurrency,
        spool_dir=options.spool_dir,
    )
    stale: set[str] = set()
    try:
        push_image(push_target, plan, counters)
    except StaleDigestError as exc:
        stale.add(exc.path)
        raise
    finally:
        progress.close()
        prepared.remember(plan, stale=stale)
