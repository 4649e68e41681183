"""`modelcar publish`: build a modelcar's image plan and push it, moving only the bytes the registry lacks.

Order of work: resolve the target and credentials, refuse oversize layers before any upload, learn layer
digests without reading files where possible (layer annotations of the previous image of the same spec in
the target repository, and a local digest cache keyed by file identity), then per blob, concurrently: HEAD
(skip) → cross-repository mount → upload (streamed; a chunked upload learns a new layer's digest while it
streams, so a cold push reads each file once). Then the config, the manifest by digest, a verification of
what the registry serves (manifest bytes and every blob's digest and size), and only then the tags. A
reference is returned only for a verified image.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from llm_platform.errors import InputError, RegistryError
from llm_platform.logs import get_logger
from llm_platform.modelcar import digest_cache, tar_layer
from llm_platform.modelcar.base_image import load_base, parse_platform
from llm_platform.modelcar.blob import MEDIA_OCI_CONFIG, Blob
from llm_platform.modelcar.image import (
    ANNOTATION_REVISION,
    ANNOTATION_SPEC,
    ImagePlan,
    ModelLayer,
    plan_image,
    reuse_from_manifest,
)
from llm_platform.modelcar.source import open_source
from llm_platform.modelcar.spec import load_spec
from llm_platform.registry.auth import Credentials, resolve_credentials
from llm_platform.registry.client import OCI_MANIFEST, RegistryClient, scheme_for
from llm_platform.registry.policy import UploadMode, policy_for
from llm_platform.registry.progress import UploadProgress, human_bytes
from llm_platform.registry.reference import ImageReference, parse_reference

log = get_logger("modelcar.publish")

# How many `<spec>-*` tags are read when looking for the previous image (each costs one manifest GET).
PREVIOUS_TAGS_LIMIT = 10
_TAG_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


class PublishResult(BaseModel):
    """What a publish did; `reference` is the verified, digest-pinned image."""

    model_config = ConfigDict(frozen=True)

    reference: str
    digest: str
    # What the lock and the bump record; the image's revision annotation carries the same value.
    hf_commit: str = Field(description="Hugging Face commit the weights came from (with --source-dir: the "
                                       "spec's revision as given)")
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


class StaleDigestError(RegistryError):
    """The registry refused a layer streamed under a digest recorded earlier: the file has changed since."""

    def __init__(self, message: str, *, path: str) -> None:
        super().__init__(message)
        self.path = path


class _KnownDigestLayer:
    """A model layer whose digest is known (a hashing pass just learnt it, or the digest cache or the previous
    image recorded it), streamed for upload without hashing: the registry checks the bytes against the digest
    on commit, so a file that changed since its digest was learnt is rejected there."""

    def __init__(self, layer: ModelLayer) -> None:
        self.layer = layer
        self.digest = layer.digest
        self.size = layer.size
        self.media_type = layer.media_type

    def open(self) -> Iterator[bytes]:
        model_file = self.layer.model_file
        return tar_layer.stream_layer(model_file.path, model_file.size, model_file.opener)


def _previous_images(
    client: RegistryClient, repository: str, spec_name: str, tags: Iterable[str]
) -> tuple[dict[tuple[str, str], tuple[str, int]], list[str], dict[str, str]]:
    """Layer reuse from earlier images of this spec in the target repository (explicit tag, `<spec>-*` tags);
    also what each tag looked at resolves to."""
    candidates = list(dict.fromkeys(tags))
    prefixed = sorted(t for t in client.list_tags(repository) if t.startswith(f"{spec_name}-"))
    candidates += [t for t in prefixed[-PREVIOUS_TAGS_LIMIT:] if t not in candidates]
    reuse: dict[tuple[str, str], tuple[str, int]] = {}
    found: list[str] = []
    seen_digests: set[str] = set()
    resolved: dict[str, str] = {}
    for tag in candidates:
        digest = client.manifest_digest(repository, tag)
        if digest is not None:
            resolved[tag] = digest
        if digest is None or digest in seen_digests:
            continue
        seen_digests.add(digest)
        body, _, _ = client.get_manifest(repository, digest)
        try:
            manifest = json.loads(body)
        except ValueError:
            continue
        if not isinstance(manifest, dict) or (manifest.get("annotations") or {}).get(ANNOTATION_SPEC) != spec_name:
            continue
        reuse.update(reuse_from_manifest(manifest))
        found.append(f"{tag}@{digest}")
    return reuse, found, resolved


class _Counters:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.bytes = 0
        self.uploaded = 0
        self.present = 0
        self.mounted = 0

    def add(self, field: str, amount: int = 1) -> None:
        with self.lock:
            setattr(self, field, getattr(self, field) + amount)


def _label(blob: Blob) -> str:
    if isinstance(blob, ModelLayer):
        return tar_layer.member_name(blob.model_file.path)
    if blob.media_type == MEDIA_OCI_CONFIG:
        return "image config"
    return f"base layer {blob.digest[7:19]}"


def _ensure_blob(
    client: RegistryClient,
    repository: str,
    blob: Blob,
    *,
    mount_sources: Sequence[str],
    stream_unknown: bool,
    counters: _Counters,
) -> None:
    """Make the registry hold `blob`: skip, mount, or upload it.

    `stream_unknown`: a layer whose digest is not known is uploaded at once (its digest learnt while it
    streams, one read of the file), instead of being hashed first to see whether the registry has it.
    """
    label = _label(blob)
    unknown = isinstance(blob, ModelLayer) and not blob.known
    if unknown and stream_unknown:
        counters.add("bytes", client.upload_blob(repository, blob, label=label))
        counters.add("uploaded")
        return
    digest = blob.digest  # reads and hashes a local file whose digest is not known yet
    size = client.blob_size(repository, digest)
    if size is not None:
        if size != blob.size:
            raise RegistryError(f"{client.host}: {repository} holds {digest} with size {size}, expected {blob.size}")
        counters.add("present")
        log.debug("%s already in %s", label, repository)
        return
    for source_repository in mount_sources:
        if source_repository != repository and client.mount_blob(repository, digest, source_repository):
            counters.add("mounted")
            log.info("mounted %s from %s", label, source_repository)
            return
    if not isinstance(blob, ModelLayer):
        counters.add("bytes", client.upload_blob(repository, blob, label=label))
        counters.add("uploaded")
        return
    try:
        counters.add("bytes", client.upload_blob(repository, _KnownDigestLayer(blob), label=label))
    except RegistryError as exc:
        if "DIGEST_INVALID" not in str(exc):
            raise
        raise StaleDigestError(
            f"{exc}; {label} no longer matches the digest recorded for it (the file changed after the digest "
            f"cache or the previous image recorded it). That record is dropped: run the publish again",
            path=blob.model_file.path,
        ) from None
    counters.add("uploaded")


def _run_all(client: RegistryClient, tasks: list[Callable[[], None]], concurrency: int) -> None:
    """Run tasks on a bounded pool; the first failure aborts uploads in flight and is raised."""
    with ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="publish") as pool:
        futures: list[Future[None]] = [pool.submit(task) for task in tasks]
        done, pending = wait(futures, return_when=FIRST_EXCEPTION)
        failed = [f for f in done if f.exception() is not None]
        if failed:
            client.abort()
            for future in pending:
                future.cancel()
            wait(pending)
            raise failed[0].exception()  # type: ignore[misc]


def _verify(client: RegistryClient, repository: str, plan: ImagePlan) -> None:
    """What the registry serves by digest is byte-identical to the plan, and every blob is there at its size."""
    body, digest, _ = client.get_manifest(repository, plan.manifest_digest)
    if digest != plan.manifest_digest or body != plan.manifest_bytes:
        raise RegistryError(
            f"{client.host}: verification failed: {repository}@{plan.manifest_digest} is served as {digest}"
        )
    manifest = json.loads(body)
    for descriptor in [manifest["config"], *manifest["layers"]]:
        size = client.blob_size(repository, descriptor["digest"])
        if size != int(descriptor["size"]):
            raise RegistryError(
                f"{client.host}: verification failed: blob {descriptor['digest']} of {repository} is "
                f"{'missing' if size is None else f'{size} bytes, expected ' + str(descriptor['size'])}"
            )


def publish_modelcar(
    spec_path: Path,
    target: str,
    *,
    source_dir: Path | None = None,
    base: str | None = None,
    platform: str = "linux/amd64",
    hf_token: str | None = None,
    insecure_registries: Sequence[str] = (),
    username: str | None = None,
    password: str | None = None,
    credentials: Credentials | None = None,
    concurrency: int = 4,
    mount_from: Sequence[str] = (),
    upload_mode: UploadMode | None = None,
    chunk_size: int | None = None,
    max_layer_size: int | None = None,
    retries: int = 4,
    backoff: float = 0.5,
    cache_dir: Path | None = None,
    use_cache: bool = True,
    progress: UploadProgress | None = None,
    environ: Mapping[str, str] | None = None,
) -> PublishResult:
    """Build the modelcar of `spec_path` and push it to `target` (REGISTRY/REPOSITORY[:TAG]); verified."""
    started = time.monotonic()
    spec = load_spec(spec_path)
    ref = parse_reference(target, what="--to")
    if ref.digest:
        raise InputError(f"--to {target!r}: name a repository (optionally :TAG), not a digest")
    if concurrency < 1:
        raise InputError(f"--concurrency {concurrency}: must be at least 1")
    mount_refs: list[ImageReference] = [parse_reference(m, what="--mount-from") for m in mount_from]
    for mount_ref in mount_refs:
        if mount_ref.registry != ref.registry:
            raise InputError(f"--mount-from {mount_ref.name}: not on {ref.registry}; mounts work within one registry")

    resolved_platform = parse_platform(platform)
    base_ref = base or spec.image.base
    base_image = load_base(base_ref, resolved_platform)
    source = open_source(spec, source_dir=source_dir, token=hf_token)

    creds = credentials or resolve_credentials(ref.api_host, username=username, password=password, environ=environ)
    policy = policy_for(ref.api_host, upload_mode=upload_mode, chunk_size=chunk_size, max_layer_size=max_layer_size)
    insecure = scheme_for(ref, insecure_registries) == "http"
    progress = progress or UploadProgress()
    with RegistryClient(ref.api_host, insecure=insecure, credentials=creds, policy=policy, retries=retries,
                        backoff=backoff, progress=progress, max_connections=concurrency + 2) as client:
        # Refuse what the registry cannot take before a single byte moves.
        for model_file in source.files:
            client.check_layer_size(tar_layer.layer_size(model_file.path, model_file.size),
                                    tar_layer.member_name(model_file.path))
        for layer in base_image.layers:
            client.check_layer_size(layer.size, f"base layer {layer.digest}")
        client.ping()

        tags = [ref.tag] if ref.tag else [default_tag(spec.name, source.revision)]
        previous_reuse, previous, tag_digests = _previous_images(client, ref.repository, spec.name, tags)
        cache = digest_cache.LayerDigestCache((cache_dir or digest_cache.default_cache_dir()) if use_cache else None)
        before = digest_cache.identities(source, cache)
        reuse = {**digest_cache.known_digests(source, cache), **previous_reuse}
        plan = plan_image(spec, source, base_image, platform=str(resolved_platform), reuse=reuse)
        known = sum(1 for layer in plan.model_layers if layer.known)
        log.info("publishing %s to %s: %d base + %d model layers (%d known without reading), previous: %s",
                 spec.name, ref.name, len(base_image.layers), len(plan.model_layers), known,
                 ", ".join(previous) or "none")

        # Mount sources: the base image's repository when it lives on the same registry, then --mount-from.
        mount_sources = [m.repository for m in mount_refs]
        if not base_ref.startswith("oci:"):
            base_parsed = parse_reference(base_ref, what="--base")
            if base_parsed.registry == ref.registry:
                mount_sources.insert(0, base_parsed.repository)
        # A layer of unknown digest streams at once (its digest goes in the final PUT of a chunked upload) when
        # the registry cannot already hold it: no earlier image or mount source at all, or its content is
        # known to differ from the earlier image's (a hub sha256 that matched no layer, a local file edited
        # since the last publish). Otherwise (say a fresh CI runner without cache) it is hashed first.
        chunked = policy.upload_mode is UploadMode.CHUNKED and not mount_refs
        edited = digest_cache.edited_since_seen(source, cache) if use_cache else set()

        def stream_unknown(blob: Blob) -> bool:
            if not chunked or not isinstance(blob, ModelLayer):
                return False
            return not previous or blob.model_file.known_sha256 is not None or blob.model_file.path in edited

        counters = _Counters()
        blobs: list[Blob] = sorted(plan.layers, key=lambda b: b.size, reverse=True)

        def ensure(blob: Blob) -> Callable[[], None]:
            return lambda: _ensure_blob(client, ref.repository, blob, mount_sources=mount_sources,
                                        stream_unknown=stream_unknown(blob), counters=counters)

        # A re-push of an image the repository already holds (every digest known without reading, and a tag
        # looked at above resolves to it): the verification below HEADs every blob anyway, so the per-blob
        # HEADs and the manifest PUT are skipped. Should verification find a blob missing, the full push runs.
        digest = plan.manifest_digest if known == len(plan.model_layers) else ""
        already_there = bool(digest) and digest in tag_digests.values()
        if already_there:
            try:
                _verify(client, ref.repository, plan)
                counters.add("present", len(plan.layers) + 1)
            except RegistryError as exc:
                log.info("%s is incomplete (%s); pushing it again", digest, exc)
                already_there = False
        if not already_there:
            stale: set[str] = set()
            try:
                _run_all(client, [ensure(blob) for blob in blobs], concurrency)
            except StaleDigestError as exc:
                stale.add(exc.path)
                raise
            finally:
                progress.close()
                if use_cache:
                    digest_cache.remember(plan, source, cache, before, stale=stale)
                    cache.save()
            _ensure_blob(client, ref.repository, plan.config, mount_sources=mount_sources, stream_unknown=False,
                         counters=counters)
            digest = client.put_manifest(ref.repository, plan.manifest_digest, plan.manifest_bytes, OCI_MANIFEST)
            if digest != plan.manifest_digest:
                raise RegistryError(f"{client.host}: manifest stored as {digest}, expected {plan.manifest_digest}")
            _verify(client, ref.repository, plan)
        for tag in tags:
            if tag_digests.get(tag) == digest:
                continue  # resolved to this very digest a moment ago
            client.put_manifest(ref.repository, tag, plan.manifest_bytes, OCI_MANIFEST)
            if client.manifest_digest(ref.repository, tag) != digest:
                raise RegistryError(f"{client.host}: tag {tag} of {ref.repository} does not resolve to {digest}")

    result = PublishResult(
        reference=str(ref.with_digest(digest)),
        digest=digest,
        hf_commit=plan.annotations[ANNOTATION_REVISION],
        tags=tags,
        bytes_uploaded=counters.bytes,
        blobs_uploaded=counters.uploaded,
        blobs_present=counters.present,
        blobs_mounted=counters.mounted,
        layers_known_without_reading=known,
        previous_images=previous,
        seconds=round(time.monotonic() - started, 3),
    )
    log.info("published %s (tags: %s): %s uploaded in %d blobs, %d already present, %d mounted, %.1fs",
             result.reference, ", ".join(tags), human_bytes(result.bytes_uploaded), result.blobs_uploaded,
             result.blobs_present, result.blobs_mounted, result.seconds)
    return result
